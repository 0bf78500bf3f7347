/* A progress line for long snapshot saves and verifies: drawn on stderr with
 * \r when it is a terminal, erased when the work ends, so the result line
 * that follows starts clean. Nothing is drawn for work that is over before
 * anyone would wait for it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define PROGRESS_BIG (64ull << 20) /* bytes: show from the start */
#define PROGRESS_SLOW 0.5          /* seconds: show once this long has passed */
#define PROGRESS_EVERY 0.1         /* seconds between redraws */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_init(progress *p, const char *verb, const char *file, int quiet)
{
    memset(p, 0, sizeof *p);
    p->verb = verb;
    p->file = file;
    p->last_pct = -1;
    /* In the KVM lab stderr comes back when the VM stops: no live progress. */
    p->enabled = !quiet && isatty(2) && !getenv("SANDLET_IN_LAB");
    p->start = now();
}

void progress_update(void *user, uint64_t done, uint64_t total)
{
    progress *p = user;
    if (!p->enabled || done > total)
        return;
    double t = now();
    if (!p->shown && (done == total || (total <= PROGRESS_BIG && t - p->start < PROGRESS_SLOW)))
        return;
    /* done and total are file sizes (below 2^40): done * 100 cannot overflow. */
    int pct = total ? (int)(done * 100 / total) : 100;
    if (p->shown && (pct == p->last_pct || (t - p->last_draw < PROGRESS_EVERY && done < total)))
        return;
    /* Long paths are cut from the left so the line fits a terminal. */
    size_t n = strlen(p->file);
    const char *f = n > 40 ? p->file + n - 37 : p->file;
    out_printf(2, "\rsandlet: %s %s%s: %3d%% (%llu of %llu MiB)", p->verb, n > 40 ? "..." : "", f, pct,
               (unsigned long long)(done >> 20), (unsigned long long)(total >> 20));
    p->shown = 1;
    p->last_pct = pct;
    p->last_draw = t;
}

void progress_end(progress *p)
{
    if (p->shown)
        out_printf(2, "\r\033[K");
    p->shown = 0;
}
