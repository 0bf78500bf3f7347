/* The Linux system calls the user program makes (through musl), served
 * inside the guest. Only standard streams exist: fd 0 reads bytes the host
 * supplies, fds 1 and 2 write to the host. There is no file system, no
 * process, no signal delivery: those calls return the errno a sandboxed
 * program expects. docs/guest-runtime.md has the table of every call. */
#include "kernel.h"
#include "le.h"

#define EPERM 1
#define ENOENT 2
#define EIO 5
#define EBADF 9
#define EACCES 13
#define EFAULT 14
#define EINVAL 22
#define ENOTTY 25
#define ESPIPE 29
#define ENOSYS 38

#define TIOCGWINSZ 0x5413
#define ARCH_SET_GS 0x1001
#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003
#define ARCH_GET_GS 0x1004
#define MSR_FS_BASE 0xC0000100u
#define MSR_GS_BASE 0xC0000101u

/* The calls, by meaning; each architecture maps its numbers onto these. */
enum {
    S_UNKNOWN, S_READ, S_WRITE, S_READV, S_WRITEV, S_OPEN, S_CLOSE, S_LSEEK, S_PREADWRITE, S_IOCTL, S_FCNTL,
    S_BRK, S_MMAP, S_MMAP2, S_MUNMAP, S_MREMAP, S_MPROTECT, S_MADVISE, S_EXIT, S_EXIT_GROUP,
    S_ARCH_PRCTL, S_SET_THREAD_AREA, S_SET_TID_ADDRESS, S_CLOCK_GETTIME, S_CLOCK_GETTIME32,
    S_CLOCK_GETRES, S_CLOCK_GETRES32, S_GETTIMEOFDAY, S_TIME, S_NANOSLEEP, S_GETRANDOM, S_SIGACTION,
    S_SIGPROCMASK, S_SIGALTSTACK, S_GETPID, S_GETTID,
    S_GETPPID, S_GETID, S_UNAME, S_KILL, S_TKILL, S_TGKILL, S_PATH_EACCES, S_GETCWD, S_UMASK,
    S_SCHED_YIELD,
};

/* Indexed by system-call number (gaps read S_UNKNOWN): one load per call,
 * which on PVM, where each kernel instruction is emulated, matters. */
#if defined(__x86_64__)
static const uint8_t table[] = {
    [0] = S_READ, [1] = S_WRITE, [2] = S_OPEN, [3] = S_CLOSE, [4] = S_PATH_EACCES, [6] = S_PATH_EACCES,
    [8] = S_LSEEK, [9] = S_MMAP, [10] = S_MPROTECT, [11] = S_MUNMAP, [12] = S_BRK, [13] = S_SIGACTION,
    [14] = S_SIGPROCMASK, [16] = S_IOCTL, [17] = S_PREADWRITE, [18] = S_PREADWRITE, [19] = S_READV, [20] = S_WRITEV,
    [21] = S_PATH_EACCES, [24] = S_SCHED_YIELD, [25] = S_MREMAP, [28] = S_MADVISE, [35] = S_NANOSLEEP,
    [39] = S_GETPID, [60] = S_EXIT, [62] = S_KILL, [63] = S_UNAME, [72] = S_FCNTL, [79] = S_GETCWD,
    [80] = S_PATH_EACCES, [82] = S_PATH_EACCES, [83] = S_PATH_EACCES, [84] = S_PATH_EACCES, [87] = S_PATH_EACCES,
    [89] = S_PATH_EACCES, [95] = S_UMASK, [96] = S_GETTIMEOFDAY, [102] = S_GETID, [104] = S_GETID, [107] = S_GETID,
    [108] = S_GETID, [110] = S_GETPPID, [131] = S_SIGALTSTACK, [158] = S_ARCH_PRCTL, [186] = S_GETTID, [200] = S_TKILL,
    [201] = S_TIME, [218] = S_SET_TID_ADDRESS, [228] = S_CLOCK_GETTIME, [229] = S_CLOCK_GETRES,
    [230] = S_NANOSLEEP, [231] = S_EXIT_GROUP, [234] = S_TGKILL, [257] = S_OPEN, [262] = S_PATH_EACCES,
    [267] = S_PATH_EACCES, [269] = S_PATH_EACCES, [318] = S_GETRANDOM, [332] = S_PATH_EACCES,
    [439] = S_PATH_EACCES,
};
#define TIMESPEC_LONG 8 /* bytes of each field of struct timespec */
#else
static const uint8_t table[] = {
    [1] = S_EXIT, [3] = S_READ, [4] = S_WRITE, [5] = S_OPEN, [6] = S_CLOSE, [10] = S_PATH_EACCES, [12] = S_PATH_EACCES,
    [13] = S_TIME, [19] = S_LSEEK, [20] = S_GETPID, [33] = S_PATH_EACCES, [37] = S_KILL, [38] = S_PATH_EACCES,
    [39] = S_PATH_EACCES, [40] = S_PATH_EACCES, [45] = S_BRK, [54] = S_IOCTL, [55] = S_FCNTL, [60] = S_UMASK,
    [64] = S_GETPPID, [78] = S_GETTIMEOFDAY, [85] = S_PATH_EACCES, [91] = S_MUNMAP, [106] = S_PATH_EACCES,
    [107] = S_PATH_EACCES, [122] = S_UNAME, [125] = S_MPROTECT, [126] = S_SIGPROCMASK, [140] = S_LSEEK,
    [145] = S_READV, [146] = S_WRITEV, [158] = S_SCHED_YIELD, [162] = S_NANOSLEEP, [163] = S_MREMAP,
    [174] = S_SIGACTION, [175] = S_SIGPROCMASK, [180] = S_PREADWRITE, [181] = S_PREADWRITE, [183] = S_GETCWD,
    [186] = S_SIGALTSTACK, [192] = S_MMAP2, [195] = S_PATH_EACCES, [196] = S_PATH_EACCES, [199] = S_GETID,
    [200] = S_GETID, [201] = S_GETID, [202] = S_GETID, [219] = S_MADVISE, [221] = S_FCNTL, [224] = S_GETTID,
    [238] = S_TKILL, [243] = S_SET_THREAD_AREA, [252] = S_EXIT_GROUP, [258] = S_SET_TID_ADDRESS,
    [265] = S_CLOCK_GETTIME32, [266] = S_CLOCK_GETRES32, [267] = S_NANOSLEEP, [270] = S_TGKILL, [295] = S_OPEN,
    [300] = S_PATH_EACCES, [305] = S_PATH_EACCES, [307] = S_PATH_EACCES, [355] = S_GETRANDOM,
    [383] = S_PATH_EACCES, [403] = S_CLOCK_GETTIME, [406] = S_CLOCK_GETRES, [407] = S_NANOSLEEP,
};
#define TIMESPEC_LONG 8 /* the time64 calls: struct __kernel_timespec */
#endif

static unsigned op_of(long nr)
{
    return nr >= 0 && (unsigned long)nr < sizeof table ? table[nr] : S_UNKNOWN;
}

/* ---- helpers over user memory (every pointer checked first) ---- */

static bool put_user(uint64_t p, const void *src, size_t n)
{
    if (!k_user_ok(p, n, true))
        return false;
    k_memcpy((void *)(uintptr_t)p, src, n);
    return true;
}

static long write_user_fd(long fd, uint64_t buf, uint64_t len)
{
    if (fd != 1 && fd != 2)
        return -EBADF;
    if (!k_user_ok(buf, len, false))
        return -EFAULT;
    return k_write_fd((int)fd, buf, len);
}

static long read_user_fd(long fd, uint64_t buf, uint64_t len)
{
    if (fd != 0)
        return -EBADF;
    if (len == 0)
        return 0;
    if (!k_user_ok(buf, len, true))
        return -EFAULT;
    return k_read_stdin(buf, len);
}

/* readv/writev: iovecs of two native words. */
static long vector_io(long fd, uint64_t iov, long cnt, bool write)
{
    const unsigned w = sizeof(uintptr_t);
    if (cnt < 0 || cnt > 1024)
        return -EINVAL;
    if (!k_user_ok(iov, (uint64_t)cnt * 2 * w, false))
        return -EFAULT;
    long total = 0;
    for (long i = 0; i < cnt; i++) {
        const uint8_t *e = (const uint8_t *)(uintptr_t)(iov + (uint64_t)i * 2 * w);
        uint64_t base = sl_get_le(e, w), len = sl_get_le(e + w, w);
        if (len == 0)
            continue;
        long n = write ? write_user_fd(fd, base, len) : read_user_fd(fd, base, len);
        if (n < 0)
            return total ? total : n;
        total += n;
        if ((uint64_t)n < len)
            break; /* short read (end of input) or write */
    }
    return total;
}

static long clock_gettime_user(long id, uint64_t ts, unsigned field)
{
    uint64_t sec, nsec;
    if (id < 0 || id > 15 || k_clock((uint32_t)id, &sec, &nsec) != 0)
        return -EINVAL;
    uint8_t buf[16];
    sl_put_le(buf, sec, field);
    sl_put_le(buf + field, nsec, field);
    return put_user(ts, buf, 2 * field) ? 0 : -EFAULT;
}

/* Every clock counts in nanoseconds; ids the host does not know are EINVAL. */
static long clock_getres_user(long id, uint64_t ts, unsigned field)
{
    uint64_t sec, nsec;
    if (id < 0 || id > 15 || k_clock((uint32_t)id, &sec, &nsec) != 0)
        return -EINVAL;
    uint8_t buf[16];
    k_memset(buf, 0, sizeof buf);
    buf[field] = 1;
    return !ts || put_user(ts, buf, 2 * field) ? 0 : -EFAULT;
}

static long gettimeofday_user(uint64_t tv)
{
    uint64_t sec, nsec;
    if (k_clock(0, &sec, &nsec) != 0)
        return -EINVAL;
    if (!tv)
        return 0;
    const unsigned f = sizeof(uintptr_t);
    uint8_t buf[16];
    sl_put_le(buf, sec, f);
    sl_put_le(buf + f, nsec / 1000, f);
    return put_user(tv, buf, 2 * f) ? 0 : -EFAULT;
}

static long uname_user(uint64_t p)
{
    static const char *const fields[6] = {"Linux", "sandlet", "6.1.0-sandlet", "#1 sandlet",
#if defined(__x86_64__)
                                          "x86_64",
#else
                                          "i686",
#endif
                                          "(none)"};
    uint8_t u[6 * 65];
    k_memset(u, 0, sizeof u);
    for (unsigned i = 0; i < 6; i++)
        k_memcpy(u + 65 * i, fields[i], k_strlen(fields[i]));
    return put_user(p, u, sizeof u) ? 0 : -EFAULT;
}

static long getrandom_user(uint64_t buf, uint64_t len)
{
    if (len > (32u << 20) - 1)
        len = (32u << 20) - 1;
    if (!k_user_ok(buf, len, true))
        return -EFAULT;
    /* In chunks on the kernel stack: the user range may fault pages in. */
    uint8_t tmp[256];
    for (uint64_t done = 0; done < len;) {
        uint64_t n = len - done < sizeof tmp ? len - done : sizeof tmp;
        k_random(tmp, (size_t)n);
        k_memcpy((void *)(uintptr_t)(buf + done), tmp, (size_t)n);
        done += n;
    }
    k_memset(tmp, 0, sizeof tmp);
    return (long)len;
}

/* A signal sent to ourselves with its default action ends the program, as
 * it would a process: abort() ends here with SIGABRT. */
static long signal_self(long sig)
{
    if (sig < 0 || sig > 64)
        return -EINVAL;
    /* 0 probes; SIGCHLD, SIGCONT, SIGURG and SIGWINCH are ignored by default */
    if (sig == 0 || sig == 17 || sig == 18 || sig == 23 || sig == 28)
        return 0;
    k_exit(0x100u | (uint32_t)sig);
}

/* No handler ever runs (docs/guest-runtime.md): the old action reads as
 * SIG_DFL, the old mask as empty, the old alternate stack as disabled. */
static long zero_old(uint64_t old, size_t n)
{
    uint8_t z[32];
    k_memset(z, 0, sizeof z);
    return !old || put_user(old, z, n) ? 0 : -EFAULT;
}

static long sigaltstack_old(uint64_t old)
{
    const unsigned w = sizeof(uintptr_t);
    uint8_t ss[24];
    k_memset(ss, 0, sizeof ss);
    sl_put_le(ss + w, 2 /* SS_DISABLE */, 4);
    return !old || put_user(old, ss, 3 * w) ? 0 : -EFAULT;
}

#if defined(__x86_64__)
static long arch_prctl_user(long code, uint64_t addr)
{
    switch (code) {
    case ARCH_SET_FS:
    case ARCH_SET_GS:
        if (addr >= 0x0000800000000000ull)
            return -EPERM;
        k_wrmsr(code == ARCH_SET_FS ? MSR_FS_BASE : MSR_GS_BASE, addr);
        return 0;
    case ARCH_GET_FS:
    case ARCH_GET_GS: {
        uint32_t lo, hi;
        __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(code == ARCH_GET_FS ? MSR_FS_BASE : MSR_GS_BASE));
        uint64_t v = (uint64_t)hi << 32 | lo;
        return put_user(addr, &v, sizeof v) ? 0 : -EFAULT;
    }
    default: return -EINVAL;
    }
}
#else
/* set_thread_area(struct user_desc *): installs a flat DPL3 data segment
 * with the given base in one of the GDT's TLS slots (6..8) and writes the
 * chosen entry number back, as Linux does; musl then loads %gs with it. */
static long set_thread_area_user(uint64_t p)
{
    if (!k_user_ok(p, 16, true))
        return -EFAULT;
    uint8_t *u = (uint8_t *)(uintptr_t)p;
    uint32_t entry = (uint32_t)sl_get_le(u, 4), base = (uint32_t)sl_get_le(u + 4, 4), limit = (uint32_t)sl_get_le(u + 8, 4);
    uint32_t flags = (uint32_t)sl_get_le(u + 12, 4);
    if (entry == 0xFFFFFFFFu) {
        entry = GDT_TLS_FIRST;
        for (unsigned i = GDT_TLS_FIRST; i < GDT_TLS_FIRST + GDT_TLS_COUNT; i++)
            if (k_cpu_pages.gdt[i] == 0) {
                entry = i;
                break;
            }
        sl_put_le(u, entry, 4);
    }
    if (entry < GDT_TLS_FIRST || entry >= GDT_TLS_FIRST + GDT_TLS_COUNT)
        return -EINVAL;
    bool seg32 = flags & 1, pages = flags & 0x10, absent = flags & 0x20;
    uint64_t d = 0;
    if (!absent) {
        /* data, read/write, accessed preset (the CPU must not write the GDT) */
        uint8_t access = 0xF3;
        uint8_t fl = (uint8_t)((pages ? 0x8 : 0) | (seg32 ? 0x4 : 0));
        d = (limit & 0xFFFFull) | ((uint64_t)(base & 0xFFFFFF) << 16) | ((uint64_t)access << 40) |
            ((uint64_t)((limit >> 16) & 0xF) << 48) | ((uint64_t)fl << 52) | ((uint64_t)(base >> 24) << 56);
    }
    k_cpu_pages.gdt[entry] = d;
    return 0;
}
#endif

static long fd_only_stdio(long fd, long ok, long other)
{
    return fd >= 0 && fd <= 2 ? ok : other;
}

/* The init-data region (PEB, which user code cannot read) and how it is
 * mapped: the page tables, not the host's word, say whether a write would
 * be a copy-on-write copy or a fault. All zero without init data. */
static long init_data_info(uint64_t out)
{
    volatile const uint64_t *peb = (volatile const uint64_t *)(uintptr_t)SL_BASE_ADDRESS;
    uint64_t v[3] = {peb[SL_PEB_INIT_DATA_PTR / 8], peb[SL_PEB_INIT_DATA_SIZE / 8], 0};
    sl_perm p;
    if (v[1] && k_page_perm(v[0], &p) && p.user)
        v[2] = 1u | (p.writable || p.kind == SL_MAP_COW ? 2u : 0u) | (p.executable ? 4u : 0u);
    else
        v[0] = v[1] = 0;
    return put_user(out, v, sizeof v) ? 0 : -EFAULT;
}

/* Arguments arrive zero-extended (an i686 address above 2 GiB is no
 * negative number). */
static long sl_syscall(long nr, uint64_t a0, uint64_t a1)
{
    switch (nr) {
    case SL_SYS_INIT_DONE:
        *k_bk_slot(SL_BK_DISPATCH) = a0;
        return 0;
    case SL_SYS_GENERATION: return (long)k_bk(SL_BK_GENERATION);
    case SL_SYS_IO_BUFFERS: {
        uint64_t v[4] = {k_st.input_gva, k_st.input_size, k_st.output_gva, k_st.output_size};
        return put_user(a0, v, sizeof v) ? 0 : -EFAULT;
    }
    case SL_SYS_SPACE_CREATE: return k_space_create();
    case SL_SYS_SPACE_SWITCH: return k_space_switch((unsigned long)a0);
    case SL_SYS_SPACE_CURRENT: return (long)k_space_current();
    case SL_SYS_SPACE_COUNT: return (long)k_space_count();
    case SL_SYS_SPACE_MAP: return k_space_map_private((unsigned long)a0, a1);
    case SL_SYS_CALL_STACK: return (long)k_bk(SL_BK_STACK_TOP);
    case SL_SYS_INIT_DATA: return init_data_info(a0);
    default: return -ENOSYS;
    }
}

long k_syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
    k_count(SL_BK_EV_SYSCALLS);
    uint64_t u0 = (uint64_t)(unsigned long)a0, u1 = (uint64_t)(unsigned long)a1;
    uint64_t u2 = (uint64_t)(unsigned long)a2;
    switch (op_of(nr)) {
    case S_READ: return read_user_fd(a0, u1, u2);
    case S_WRITE: return write_user_fd(a0, u1, u2);
    case S_READV: return vector_io(a0, u1, a2, false);
    case S_WRITEV: return vector_io(a0, u1, a2, true);
    case S_OPEN: return -EACCES;
    case S_PATH_EACCES: return -EACCES;
    case S_CLOSE: return fd_only_stdio(a0, 0, -EBADF);
    case S_LSEEK:
    case S_PREADWRITE: return fd_only_stdio(a0, -ESPIPE, -EBADF);
    case S_IOCTL: return fd_only_stdio(a0, -ENOTTY, -EBADF);
    case S_FCNTL: /* F_GETFD, F_SETFD, F_GETFL (O_RDWR), F_SETFL; no duplicates */
        return fd_only_stdio(a0, a1 == 1 || a1 == 2 || a1 == 4 ? 0 : a1 == 3 ? 2 : -EINVAL, -EBADF);
    case S_BRK: return k_brk(u0);
    case S_MMAP: return k_mmap(u0, u1, a2, a3, a4, (uint64_t)a5);
    case S_MMAP2: return k_mmap(u0, u1, a2, a3, a4, (uint64_t)(unsigned long)a5 << 12);
    case S_MUNMAP: return k_munmap(u0, u1);
    case S_MREMAP: return k_mremap(u0, u1, u2, a3, (uint64_t)(unsigned long)a4);
    case S_MPROTECT: return k_mprotect(u0, u1, a2);
    case S_MADVISE: return k_madvise(u0, u1, a2);
    case S_EXIT:
    case S_EXIT_GROUP: k_exit((uint32_t)a0 & 0xFFu);
#if defined(__x86_64__)
    case S_ARCH_PRCTL: return arch_prctl_user(a0, u1);
#else
    case S_SET_THREAD_AREA: return set_thread_area_user(u0);
#endif
    case S_SET_TID_ADDRESS:
    case S_GETPID:
    case S_GETTID: return 1;
    case S_GETPPID:
    case S_GETID: return 0;
    case S_CLOCK_GETTIME: return clock_gettime_user(a0, u1, TIMESPEC_LONG);
    case S_CLOCK_GETTIME32: return clock_gettime_user(a0, u1, 4);
    case S_CLOCK_GETRES: return clock_getres_user(a0, u1, TIMESPEC_LONG);
    case S_CLOCK_GETRES32: return clock_getres_user(a0, u1, 4);
    case S_GETTIMEOFDAY: return gettimeofday_user(u0);
    case S_TIME: {
        uint64_t sec, nsec;
        if (k_clock(0, &sec, &nsec) != 0)
            return -EINVAL;
        if (a0 && !put_user(u0, &sec, sizeof(uintptr_t)))
            return -EFAULT;
        return (long)sec;
    }
    case S_NANOSLEEP: return 0; /* a sandbox does not wait: time is the host's */
    case S_SCHED_YIELD: return 0;
    case S_GETRANDOM: return getrandom_user(u0, u1);
    case S_SIGACTION: return zero_old(u2, 4 * sizeof(uintptr_t) + (sizeof(uintptr_t) == 4 ? 4 : 0));
    case S_SIGPROCMASK: return zero_old(u2, nr == 126 ? 4 : 8);
    case S_SIGALTSTACK: return sigaltstack_old(u1);
    case S_UNAME: return uname_user(u0);
    case S_KILL: return a0 == 1 || a0 == 0 ? signal_self(a1) : -EPERM;
    case S_TKILL: return a0 == 1 ? signal_self(a1) : -EINVAL;
    case S_TGKILL: return a1 == 1 ? signal_self(a2) : -EINVAL;
    case S_GETCWD: return u1 >= 2 && put_user(u0, "/", 2) ? 2 : -EINVAL;
    case S_UMASK: return 022;
    default: return sl_syscall(nr, u0, u1);
    }
}

#if defined(__x86_64__)
void k_syscall64_c(k_sysframe *f)
{
    f->rax = (uint64_t)k_syscall((long)f->rax, (long)f->rdi, (long)f->rsi, (long)f->rdx, (long)f->r10,
                                 (long)f->r8, (long)f->r9);
    /* Intel's sysret faults at CPL0, on the user's stack, when the return
     * address is not canonical: a `syscall` in the last bytes of the lower
     * half must never get there (nothing is mapped there today). */
    if (f->ip >= 0x0000800000000000ull)
        k_abort(SL_ABI_EMALFORMED, "system call from the end of the user address space");
}
#endif

void k_syscall_int80(k_frame *f)
{
#if defined(__i386__)
    *k_bk_slot(SL_BK_EXC_DEPTH) = 0;
    f->eax = (uint32_t)k_syscall((int32_t)f->eax, (int32_t)f->ebx, (int32_t)f->ecx, (int32_t)f->edx,
                                 (int32_t)f->esi, (int32_t)f->edi, (int32_t)f->ebp);
#else
    (void)f;
#endif
}

