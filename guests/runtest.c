/* An ordinary program (main(), musl) for `sandlet run` tests, x86-64
 * (runtest) and i686 (runtest32). argv[1] picks the behaviour:
 *   args            prints argc and each argument on a line
 *   env NAME        prints NAME's value, or "(unset)"
 *   cat             copies stdin to stdout
 *   big N           writes N bytes ('a'..'z' repeating) to stdout
 *   stderr TEXT     writes TEXT to stderr
 *   exit N          exits with status N
 *   abort           abort(): ends with SIGABRT
 *   segv            writes through a NULL pointer
 *   spin            loops forever
 *   malloc          allocates 1 MiB blocks until malloc fails, prints how many
 *   stack           recurses until the stack or the memory runs out
 *   time            checks the clocks and prints "ok"
 *   random          prints 16 bytes from getrandom in hex
 *   files           tries to open a file and prints the errno name
 *   mremap MIB      maps MIB MiB, fills the rest of memory, then a growing
 *                   mremap must fail with ENOMEM and leave the mapping intact
 *   fixed           a MAP_FIXED page below the mmap cursor is never handed
 *                   out again by a later mmap
 *   nullmap         sandlet's SL_SYS_SPACE_MAP at address 0 is refused */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int depth(int n)
{
    volatile char pad[4096];
    pad[0] = (char)n;
    return n > 1000000 ? pad[0] : depth(n + 1) + pad[0];
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "";
    if (!strcmp(what, "args")) {
        printf("%d\n", argc);
        for (int i = 0; i < argc; i++)
            printf("%s\n", argv[i]);
    } else if (!strcmp(what, "env") && argc > 2) {
        const char *v = getenv(argv[2]);
        printf("%s\n", v ? v : "(unset)");
    } else if (!strcmp(what, "cat")) {
        char buf[3000];
        ssize_t n;
        while ((n = read(0, buf, sizeof buf)) > 0)
            if (write(1, buf, (size_t)n) != n)
                return 2;
        return n < 0 ? 3 : 0;
    } else if (!strcmp(what, "big") && argc > 2) {
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++)
            putchar('a' + (int)(i % 26));
    } else if (!strcmp(what, "stderr") && argc > 2) {
        fprintf(stderr, "%s\n", argv[2]);
    } else if (!strcmp(what, "exit") && argc > 2) {
        exit(atoi(argv[2]));
    } else if (!strcmp(what, "abort")) {
        abort();
    } else if (!strcmp(what, "segv")) {
        volatile int *p = NULL;
        *p = 1;
    } else if (!strcmp(what, "spin")) {
        for (volatile unsigned long i = 0;; i++)
            ;
    } else if (!strcmp(what, "malloc")) {
        unsigned long n = 0;
        char *p;
        while ((p = malloc(1 << 20)) != NULL) {
            memset(p, 1, 1 << 20);
            n++;
        }
        printf("malloc failed after %lu MiB\n", n);
    } else if (!strcmp(what, "stack")) {
        return depth(0) == 42;
    } else if (!strcmp(what, "time")) {
        struct timespec r, m1, m2;
        if (clock_gettime(CLOCK_REALTIME, &r) || clock_gettime(CLOCK_MONOTONIC, &m1) ||
            clock_gettime(CLOCK_MONOTONIC, &m2))
            return 4;
        time_t t = time(NULL);
        if (r.tv_sec < 1577836800 || t < r.tv_sec || m2.tv_sec < m1.tv_sec ||
            (m2.tv_sec == m1.tv_sec && m2.tv_nsec < m1.tv_nsec) || clock() < 0)
            return 5;
        printf("ok\n");
    } else if (!strcmp(what, "random")) {
        unsigned char b[16];
        if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
            return 6;
        for (int i = 0; i < 16; i++)
            printf("%02x", b[i]);
        printf("\n");
    } else if (!strcmp(what, "files")) {
        int fd = open("/etc/passwd", O_RDONLY);
        printf("%s\n", fd >= 0 ? "opened" : errno == EACCES ? "EACCES" : "other");
    } else if (!strcmp(what, "mremap") && argc > 2) {
        size_t len = (size_t)atol(argv[2]) << 20;
        char *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (a == MAP_FAILED)
            return 7;
        for (size_t i = 0; i < len; i += 4096)
            a[i] = (char)(i >> 12);
        char *last = NULL, *p;
        while ((p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) != MAP_FAILED)
            last = p;
        if (last)
            munmap(last, 4096);
        if (mremap(a, len, len + 4096, MREMAP_MAYMOVE) != MAP_FAILED || errno != ENOMEM)
            return 8;
        for (size_t i = 0; i < len; i += 4096)
            if (a[i] != (char)(i >> 12))
                return 9;
        printf("ok\n");
    } else if (!strcmp(what, "fixed")) {
        char *a = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        char *f = a - 16 * 4096;
        if (a == MAP_FAILED ||
            mmap(f, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != f)
            return 7;
        strcpy(f, "fixed data");
        for (int i = 0; i < 32; i++) {
            char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED || p == f)
                return 8;
        }
        printf("%s\n", f);
    } else if (!strcmp(what, "nullmap")) {
        printf("%s\n", syscall(0x5107, 0L, 0L) == -1 ? "refused" : "mapped");
    } else {
        fprintf(stderr, "runtest: unknown mode '%s'\n", what);
        return 64;
    }
    return 0;
}
