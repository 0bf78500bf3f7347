/* Benchmark helpers: every figure is a median over repetitions, printed next
 * to a baseline measured in the same run, because these machines are shared
 * and noisy:
 *   BENCH <name> median=<value><unit> baseline=<value><unit> ratio=<value> */
#ifndef SL_BENCH_H
#define SL_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Prints one result line; values in seconds are scaled to `unit` (us or ms). */
static inline void bench_report(const char *name, double median_s, double baseline_s, const char *unit)
{
    double scale = unit[0] == 'm' ? 1e3 : unit[0] == 'u' ? 1e6 : 1e9;
    printf("BENCH %s median=%.3f%s baseline=%.3f%s ratio=%.3f\n", name, median_s * scale, unit,
           baseline_s * scale, unit, baseline_s > 0 ? median_s / baseline_s : 0.0);
    fflush(stdout);
}

/* SANDLET_BENCH_QUICK=1 (scripts/bench.sh --quick): fewer repetitions. */
static inline int bench_quick(void)
{
    const char *q = getenv("SANDLET_BENCH_QUICK");
    return q && *q == '1';
}

/* Repetitions: fewer in CI or when asked (SANDLET_BENCH_QUICK=1). */
static inline int bench_reps(int normal)
{
    return bench_quick() ? (normal >= 5 ? 5 : normal) : normal;
}

/* Running inside the KVM lab (scripts/kvm-lab sets SANDLET_IN_LAB=1). */
static inline int bench_in_lab(void)
{
    const char *e = getenv("SANDLET_IN_LAB");
    return e && *e && strcmp(e, "0") != 0;
}

/* The "# measured on: ..." line (with `extra` appended when not NULL), the
 * CPU model and the number of online CPUs, for benchmarks that need KVM. */
static inline void bench_where(const char *extra)
{
    if (bench_in_lab())
        printf("# measured on: KVM lab (QEMU TCG, nested): figures prove correctness, not speed");
    else if (access("/sys/module/kvm_pvm", F_OK) == 0)
        printf("# measured on: PVM (kvm_pvm, KVM without VT-x/AMD-V; guest instructions are partly "
               "emulated): figures are not representative of hardware KVM");
    else
        printf("# measured on: native KVM");
    printf("%s%s\n", extra ? "; " : "", extra ? extra : "");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            printf("# cpu:%s", p ? p + 1 : line);
            break;
        }
    if (f)
        fclose(f);
    printf("# online cpus: %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
    fflush(stdout);
}

#endif
