/* A progress line for long snapshot saves and verifies: drawn on stderr with
 * \r when it is a terminal, erased when the work ends, so the result line
 * that follows starts clean. Nothing is drawn for work that is over before
 * anyone would wait for it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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

/* Columns of the terminal on stderr (80 when it does not say). */
static size_t term_cols(void)
{
    struct winsize ws;
    if (ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

/* The progress line, built in a buffer that never passes its limit. */
typedef struct pline {
    char buf[512];
    size_t len, max;
} pline;

static void pl_add(pline *l, const char *s, size_t n)
{
    for (size_t i = 0; i < n && l->len < l->max; i++) {
        unsigned char c = (unsigned char)s[i];
        l->buf[l->len++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
}

/* One line that never reaches the terminal's last column: a line that wraps
 * cannot be redrawn or erased with \r, and would stay on the screen half
 * drawn. A long file name loses its start ("..."), or all of it on a narrow
 * terminal; control characters (the name is anyone's) are shown as '?'.
 * Widths are counted in bytes, never fewer than the columns of UTF-8 text. */
static void draw(const progress *p, int pct, uint64_t done, uint64_t total)
{
    char head[64], tail[96];
    int hn = snprintf(head, sizeof head, "sandlet: %s ", p->verb);
    int tn = snprintf(tail, sizeof tail, ": %3d%% (%llu of %llu MiB)", pct, (unsigned long long)(done >> 20),
                      (unsigned long long)(total >> 20));
    if (hn < 0 || tn < 0)
        return;
    size_t hl = strlen(head), tl = strlen(tail), n = strlen(p->file);
    pline l = {.len = 0};
    l.max = term_cols() - 1;
    if (l.max > sizeof l.buf - 1)
        l.max = sizeof l.buf - 1;
    size_t room = l.max > hl + tl ? l.max - hl - tl : 0;
    pl_add(&l, head, hl);
    if (n <= room) {
        pl_add(&l, p->file, n);
    } else if (room > 3) {
        const char *f = p->file + n - (room - 3);
        while (*f && ((unsigned char)*f & 0xc0) == 0x80) /* not inside a UTF-8 sequence */
            f++;
        pl_add(&l, "...", 3);
        pl_add(&l, f, strlen(f));
    } else {
        pl_add(&l, tail + 1, tl - 1); /* no name: no ':' either */
        tl = 0;
    }
    pl_add(&l, tail, tl);
    l.buf[l.len] = 0;
    out_printf(2, "\r%s", l.buf);
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
    draw(p, pct, done, total);
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
