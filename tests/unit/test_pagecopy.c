/* sl_pagecopy (pagecopy.h): batched copies into a private mapping of a
 * memfd and into fresh anonymous memory land exactly as memcpy() in the
 * same order would put them, through the kernel's path and, when a
 * seccomp filter refuses process_vm_writev (with EPERM, EINVAL, or a
 * return of 0), through the fallback; a source page that faults midway is
 * copied by the fallback after the kernel's part, under the program's
 * signal handler. */
#include <errno.h>
#include <signal.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"
#include "pagecopy.h"

#define PG 4096u
#define N (3 * SL_PAGECOPY_BATCH + 5) /* more ranges than one batch holds */

static void fill(uint8_t *p, size_t pages, uint8_t seed)
{
    for (size_t i = 0; i < pages * PG; i++)
        p[i] = (uint8_t)(seed + i * 7 + i / PG);
}

/* Queues scattered single pages, a run that merges, a page written twice
 * (the later copy wins), adjacent destinations from sources apart and
 * more ranges than a batch; dst through
 * pagecopy, ref through memcpy in the same order. */
static void copies(uint8_t *dst, uint8_t *ref, const uint8_t *src)
{
    sl_pagecopy c;
    sl_pagecopy_init(&c);
    for (size_t i = 0; i < N; i += 2) {
        size_t from = (i * 5) % N;
        sl_pagecopy_add(&c, dst + i * PG, src + from * PG, PG);
        memcpy(ref + i * PG, src + from * PG, PG);
    }
    for (size_t i = 1; i < 9; i += 2) { /* pages 1, 3, 5, 7 from 10.. */
        sl_pagecopy_add(&c, dst + i * PG, src + (10 + i) * PG, PG);
        memcpy(ref + i * PG, src + (10 + i) * PG, PG);
    }
    sl_pagecopy_add(&c, dst + 11 * PG, src + 40 * PG, 2 * PG); /* a merged run... */
    sl_pagecopy_add(&c, dst + 13 * PG, src + 42 * PG, PG);
    memcpy(ref + 11 * PG, src + 40 * PG, 3 * PG);
    sl_pagecopy_add(&c, dst + 15 * PG, src + 50 * PG, PG); /* adjacent pages, sources apart: no merge */
    sl_pagecopy_add(&c, dst + 16 * PG, src + 60 * PG, PG);
    memcpy(ref + 15 * PG, src + 50 * PG, PG);
    memcpy(ref + 16 * PG, src + 60 * PG, PG);
    sl_pagecopy_add(&c, dst + 2 * PG, src + 3 * PG, PG); /* ...and page 2 again */
    memcpy(ref + 2 * PG, src + 3 * PG, PG);
    sl_pagecopy_flush(&c);
    sl_pagecopy_flush(&c); /* an empty flush does nothing */
}

/* Copies into a private mapping of a memfd holding `base` and into a
 * fresh anonymous mapping; 0 when both equal the reference and the memfd
 * is untouched. */
static int run_copies(void)
{
    int fails = 0;
    uint8_t *src = malloc((size_t)N * PG), *ref = malloc((size_t)N * PG), *base = malloc((size_t)N * PG);
    int fd = memfd_create("test-pagecopy", MFD_CLOEXEC);
    if (!src || !ref || !base || fd < 0 || ftruncate(fd, (off_t)N * PG))
        return 1;
    fill(src, N, 1);
    fill(base, N, 99);
    if (pwrite(fd, base, (size_t)N * PG, 0) != (ssize_t)N * PG)
        return 1;
    uint8_t *priv = mmap(NULL, (size_t)N * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    uint8_t *anon = mmap(NULL, (size_t)N * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (priv == MAP_FAILED || anon == MAP_FAILED)
        return 1;
    memcpy(ref, base, (size_t)N * PG);
    copies(priv, ref, src);
    fails += memcmp(priv, ref, (size_t)N * PG) != 0;
    memset(ref, 0, (size_t)N * PG);
    copies(anon, ref, src);
    fails += memcmp(anon, ref, (size_t)N * PG) != 0;
    uint8_t *back = malloc((size_t)N * PG); /* the file keeps its pages */
    fails += !back || pread(fd, back, (size_t)N * PG, 0) != (ssize_t)N * PG || memcmp(back, base, (size_t)N * PG);
    free(back);
    munmap(priv, (size_t)N * PG);
    munmap(anon, (size_t)N * PG);
    close(fd);
    free(src);
    free(ref);
    free(base);
    return fails;
}

static void test_kernel_path(void)
{
    CHECK_EQ(run_copies(), 0);
#if SL_PAGECOPY_SANITIZED
    CHECK(!sl_pagecopy_kernel_path()); /* the sanitizers check memcpy's writes */
#else
    /* These machines allow the call: the copies went through the kernel. */
    if (!sl_pagecopy_kernel_path())
        printf("  process_vm_writev was refused here: the kernel path could not be tested\n");
    CHECK(sl_pagecopy_kernel_path());
#endif
}

/* In a child: a seccomp filter makes process_vm_writev return -1 with
 * errno err, or 0 when err is 0. */
static int refuse_process_vm_writev(int err)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_vm_writev, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static void test_refused_falls_back(void)
{
    static const int errs[] = {EPERM, EINVAL, 0};
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            if (refuse_process_vm_writev(errs[i]))
                _exit(2);
            int fails = run_copies();
            /* Refused once, never asked again. */
            _exit(fails ? 1 : sl_pagecopy_kernel_path() ? 3 : 0);
        }
        int status = 0;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status));
        if (WEXITSTATUS(status))
            printf("  filter returning errno %d: child exit %d\n", errs[i], WEXITSTATUS(status));
        CHECK_EQ(WEXITSTATUS(status), 0);
    }
}

/* A source whose middle page lies past the end of its file: reading it
 * raises SIGBUS, which the handler answers by mapping a page of 0x5A
 * there (as sandlet's own handler maps zeros over a truncated snapshot
 * file). The kernel stops at that page; the fallback copies the rest. */
static uint8_t *bus_page;
static volatile sig_atomic_t bus_count;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    uint8_t *at = (uint8_t *)((uintptr_t)si->si_addr & ~(uintptr_t)(PG - 1));
    if (at != bus_page || mmap(at, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != at)
        _exit(7);
    memset(at, 0x5A, PG);
    bus_count++;
}

static void test_faulting_source(void)
{
    uint8_t *src = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint8_t *dst = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int fd = memfd_create("test-pagecopy-empty", MFD_CLOEXEC); /* no bytes: its page is past the end */
    REQUIRE(src != MAP_FAILED && dst != MAP_FAILED && fd >= 0);
    memset(src, 0x11, PG);
    memset(src + 2 * PG, 0x33, PG);
    bus_page = src + PG;
    REQUIRE(mmap(bus_page, PG, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0) == bus_page);
    struct sigaction sa = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO}, old;
    sigemptyset(&sa.sa_mask);
    REQUIRE(sigaction(SIGBUS, &sa, &old) == 0);
    sl_pagecopy c;
    sl_pagecopy_init(&c);
    sl_pagecopy_add(&c, dst, src, 3 * PG);
    sl_pagecopy_flush(&c);
    sigaction(SIGBUS, &old, NULL);
    CHECK_EQ(bus_count, 1);
    CHECK(dst[0] == 0x11 && dst[PG - 1] == 0x11);
    CHECK(dst[PG] == 0x5A && dst[2 * PG - 1] == 0x5A);
    CHECK(dst[2 * PG] == 0x33 && dst[3 * PG - 1] == 0x33);
    munmap(src, 3 * PG);
    munmap(dst, 3 * PG);
    close(fd);
}

int main(void)
{
    RUN(test_kernel_path);
    RUN(test_refused_falls_back);
    RUN(test_faulting_source);
    return t_failed_total ? 1 : 0;
}
