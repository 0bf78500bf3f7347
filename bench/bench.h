/* Benchmark helpers: every figure is a median over repetitions, printed next
 * to a baseline measured in the same run, because these machines are shared
 * and noisy:
 *   BENCH <name> median=<value><unit> baseline=<value><unit> ratio=<value> */
#ifndef SL_BENCH_H
#define SL_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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

/* Repetitions: fewer in CI or when asked (SANDLET_BENCH_QUICK=1). */
static inline int bench_reps(int normal)
{
    const char *q = getenv("SANDLET_BENCH_QUICK");
    return q && *q == '1' ? (normal >= 5 ? 5 : normal) : normal;
}

#endif
