/* Stress test (issue 9, item 6): STRESS_THREADS worker threads (default 4)
 * each drive three sandboxes for STRESS_SECONDS (default 60) while a killer
 * thread kills sandboxes of theirs at random moments. Every result is checked
 * exactly; a watchdog aborts when a thread stops making progress (deadlock);
 * open file descriptors and resident memory must stay flat after a warm-up.
 * docs/stress.md describes what it does, checks and prints, and the figures.
 *
 * Per worker: slot 0 and slot 1 run the demo guest (x86-64), slot 2 the
 * faulty guest. Slot 0 is never killed by the killer: every call there must
 * succeed (or fail exactly as asked). Slots 1 and 2 are killed at random
 * moments (see killer_main), so any of their calls, and a restore that asks
 * the guest for its function table, may return SL_ECANCELLED; the sandbox
 * must then be POISONED, and the test checks that it never saw more cancels
 * on a slot than kills were sent to it. Each loop picks a slot and a random
 * operation:
 *   calls: Add, Echo, Counter, Fill, Generation, Upper (the host function
 *     HostUpper answers, fails with SL_EHOSTFN, or kills its own sandbox);
 *     faulty: Counter, Spin under a 1-20 ms timeout (SL_ETIMEOUT, never
 *     earlier than the timeout), Spin killed by the killer thread on request
 *     (SL_ECANCELLED), DivZero (SL_EFAULT);
 *   snapshots into a ring of the worker's own, restores to its own, to
 *     shared ones and to those other workers publish (checked: Generation,
 *     Counter continue from the snapshot's values), a restore to a snapshot
 *     of another configuration family (SL_EFAMILY, the sandbox unchanged);
 *   saves to files in a per-worker directory (renamed over files that are
 *     still loaded), loads (same identity and generation), new sandboxes
 *     from snapshots of every kind (the old one freed), info.
 * Snapshots are shared between threads: sandboxes in several threads
 * restore, start from and save one snapshot at the same time. sandlet.h
 * implies that this is allowed (snapshots are reference counted, "made by any
 * sandbox", a file change is seen "also in other threads") without saying so
 * in as many words. Shared are four made before the workers start, one
 * loaded file, and a board of four that workers replace (freeing the old
 * handle while sandboxes of other workers may still run on it) and borrow.
 *
 * Flatness: every `interval` the main thread pauses the workers at a point
 * where each holds the same number of objects (3 sandboxes, each restored to
 * a shared snapshot, full rings), reads /proc/self/fd and /proc/self/statm,
 * and lets them go on. After the warm-up (the first 20 %), the descriptor
 * count must equal the first sample exactly, less the memfds through which
 * incremental takes share a parent's memory (one per snapshot that served
 * as a parent, so at most one per snapshot held: bounded instead); resident memory may grow by at
 * most 10 % + 16 MiB over it (test_stress_flat says why; in the normal build
 * after a warm-up of 1000 operations or more: not in the KVM lab's short run,
 * nor under a sanitizer, where the figure is printed only). After everything
 * is freed, the descriptor count must equal the one before the test started.
 *
 * Environment: STRESS_SECONDS (default 60), STRESS_THREADS (4), STRESS_SEED
 * (the workers' random choices; default random, printed; the threads' timing
 * still differs from run to run), STRESS_KILL_EVERY (12: a random kill after that many operations
 * of all workers on average), STRESS_WATCHDOG (seconds without progress
 * before it aborts: 30, 120 in the KVM lab, doubled under a sanitizer),
 * TMPDIR. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sandlet.h"
#include "t.h"
#include "../common/e2e.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define STRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define STRESS_SANITIZER 1
#endif
#endif
#ifndef STRESS_SANITIZER
#define STRESS_SANITIZER 0
#endif

#define MAX_WORKERS 16
#define NSLOTS 3      /* 0, 1: demo; 2: faulty */
#define MEM_RING 4    /* the worker's own in-memory demo snapshots */
#define FILE_RING 2   /* the worker's own loaded snapshot files */
#define FAULTY_RING 2 /* the worker's own faulty snapshots */
#define NSHARED 4     /* shared demo snapshots, Counter at 0..3 */
#define NBOARD 4      /* snapshots workers publish and borrow */
#define NFILES 4      /* file names per worker */
#define MAX_SAMPLES 256
#define CALL_TIMEOUT_MS 30000 /* on slot 1's calls: armed every time, never reached */

/* Configuration families: A, the demo ELF's (every snapshot made in memory
 * from it); F, every loaded file (same sizes: one family); B, the faulty ELF's. */
enum { FAM_A, FAM_F, FAM_B };
static const char *const fam_name[] = {"A", "F", "B"};

/* A snapshot handle and what the guest holds in it. */
typedef struct rec {
    sl_snapshot *snap;
    int fam;
    int64_t counter;
    uint64_t gen;
    uint8_t id[32];
} rec;

enum { UP_OK, UP_FAIL, UP_KILL };

struct slot;
typedef struct upper_ctx {
    int mode;
    unsigned long calls;
    struct slot *slot;
    char buf[4096];
} upper_ctx;

typedef struct slot {
    int idx;
    int killable;
    /* sb is written by the owner under mu, read by the killer under mu. */
    pthread_mutex_t mu;
    sl_sandbox *sb;
    int fam;
    int64_t counter; /* the guest's Counter now */
    uint64_t gen;    /* its generation now */
    upper_ctx up;
    atomic_ulong kills;       /* kills sent to this slot (before each kill) */
    unsigned long cancels;    /* SL_ECANCELLED seen */
    _Atomic uint64_t kill_at; /* a kill the killer thread sends at this time (ns), 0: none */
} slot;

enum {
    OP_ADD, OP_ECHO, OP_COUNTER, OP_FILL, OP_GENERATION, OP_UPPER, OP_UPPER_FAIL, OP_UPPER_KILL,
    OP_SNAPSHOT, OP_RESTORE, OP_WRONG_FAMILY, OP_SAVE_LOAD, OP_NEW, OP_INFO, OP_PUBLISH, OP_BORROW,
    OP_F_COUNTER, OP_F_TIMEOUT, OP_F_KILL, OP_F_FAULT, OP_F_SNAPSHOT, OP_F_RESTORE, OP_F_NEW,
    OP_NORMALIZE, N_OPS
};
static const char *const op_name[N_OPS] = {
    "add", "echo", "counter", "fill", "generation", "upper", "upper-fail", "upper-kill",
    "snapshot", "restore", "wrong-family", "save-load", "new", "info", "publish", "borrow",
    "f-counter", "f-timeout", "f-kill", "f-fault", "f-snapshot", "f-restore", "f-new",
    "normalize"};

typedef struct worker {
    int idx;
    pthread_t th;
    uint64_t rng;
    slot slots[NSLOTS];
    rec mem[MEM_RING], files[FILE_RING], fring[FAULTY_RING];
    char dir[600];
    unsigned file_seq;
    atomic_int failed; /* read by the killer and the watchdog */
    atomic_int ready;
    _Atomic uint64_t progress_ns;
    _Atomic int cur_op;
    _Atomic int cur_slot;
    /* counts */
    unsigned long ops[N_OPS];
    uint64_t op_max_ns[N_OPS], op_sum_ns[N_OPS];
    unsigned long cancels_call, cancels_restore, timeouts, efamily, ehostfn, efault;
    char restore_cancel_msg[160]; /* the first restore that returned SL_ECANCELLED */
} worker;

typedef struct board_entry {
    pthread_mutex_t mu;
    rec r;
    int users;
} board_entry;

typedef struct sample {
    double t;
    long fds;
    long bases; /* of fds: parents' memfds (count_fds_bases) */
    uint64_t rss;
    unsigned long ops; /* operations done by then */
} sample;

static struct {
    int nworkers;
    double seconds, watchdog;
    unsigned kill_every;
    atomic_ulong total_ops;
    uint64_t seed;
    char dir[512];
    rec shared[NSHARED], l0, fs0;
    board_entry board[NBOARD];
    worker *w;
    atomic_int stop, killer_stop;
    atomic_int pause_req;
    pthread_mutex_t pmu;
    pthread_cond_t pcv;
    int paused, done;
    unsigned epoch;
    pthread_mutex_t outmu;
    atomic_int failed;
    _Atomic uint64_t killer_progress;
    unsigned long kills_random, kills_directed;
    atomic_ulong kills_self;
    /* results for test_stress_flat */
    int ran;
    long fds_start, fds_end;
    uint64_t rss_start, rss_end;
    sample samples[MAX_SAMPLES];
    int nsamples, first_after_warmup;
    double elapsed;
} G = {.pmu = PTHREAD_MUTEX_INITIALIZER, .pcv = PTHREAD_COND_INITIALIZER, .outmu = PTHREAD_MUTEX_INITIALIZER};

/* ------------------------------------------------------------------ helpers */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_us(unsigned us)
{
    struct timespec ts = {.tv_sec = us / 1000000u, .tv_nsec = (long)(us % 1000000u) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static unsigned below(worker *w, unsigned n) { return (unsigned)(xorshift(&w->rng) % n); }

/* Open descriptors; *bases (may be NULL) gets how many of them are the
 * memfds incremental takes share a parent's memory through (snapinc.c):
 * one per snapshot learned as a parent, held while it or a snapshot taken
 * on its line lives, so their number follows which held snapshots have
 * served as parents, not the operations done. */
static long count_fds_bases(long *bases)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0, b = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            char link[300], path[PATH_MAX];
            snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
            ssize_t len = readlink(link, path, sizeof path - 1);
            path[len > 0 ? len : 0] = 0;
            b += strncmp(path, "/memfd:sandlet-snapshot", 23) == 0;
            n++;
        }
    closedir(d);
    if (bases)
        *bases = b;
    return n - 1; /* the directory's own descriptor */
}

static long count_fds(void) { return count_fds_bases(NULL); }

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static double env_num(const char *name, double def, double lo, double hi)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return def;
    char *end;
    double v = strtod(s, &end);
    if (*end || v < lo || v > hi) {
        printf("  %s=%s ignored (want %g..%g), using %g\n", name, s, lo, hi, def);
        return def;
    }
    return v;
}

static int wfail(worker *w, slot *s, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int wfail(worker *w, slot *s, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&G.outmu);
    printf("  worker %d slot %d (family %s, op %s) line %d: ", w->idx, s ? s->idx : -1, s ? fam_name[s->fam] : "-",
           op_name[atomic_load(&w->cur_op)], line);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    pthread_mutex_unlock(&G.outmu);
    va_end(ap);
    atomic_store(&w->failed, 1);
    atomic_store(&G.failed, 1);
    return -1;
}
#define FAIL(...) wfail(w, s, __LINE__, __VA_ARGS__)
#define ERRS(rc) sl_strerror(rc), sl_sandbox_errmsg(s->sb)

static sl_value str_v(const char *p, size_t n)
{
    sl_value v = {.type = SL_TYPE_STRING};
    v.v.buf.ptr = p;
    v.v.buf.len = n;
    return v;
}

/* The demo guest's Fill(n): the sum of (i * 131 + 17) mod 256 for i < n. 131
 * is odd, so every 256 consecutive terms are a permutation of 0..255. */
static uint64_t fill_sum(uint64_t n)
{
    uint64_t s = (n / 256) * 32640;
    for (uint64_t i = 0; i < n % 256; i++)
        s += (uint8_t)(i * 131u + 17u);
    return s;
}

static void rec_free(rec *r)
{
    sl_snapshot_free(r->snap);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------- host function */

static int host_upper(void *user, const sl_value *args, size_t nargs, sl_value *ret, char *err, size_t errlen)
{
    upper_ctx *u = user;
    u->calls++;
    if (nargs != 1 || args[0].type != SL_TYPE_STRING || args[0].v.buf.len >= sizeof u->buf) {
        snprintf(err, errlen, "HostUpper: unexpected arguments");
        return -1;
    }
    if (u->mode == UP_FAIL) {
        snprintf(err, errlen, "HostUpper refuses on request");
        return -1;
    }
    if (u->mode == UP_KILL && u->slot) {
        /* The host function stops its own call: counted like the killer's. */
        atomic_fetch_add(&u->slot->kills, 1);
        atomic_fetch_add(&G.kills_self, 1);
        sl_sandbox_kill(u->slot->sb);
    }
    upper_string(ret, u->buf, &args[0]);
    return 0;
}

/* Puts a new sandbox in the slot (the killer sees it from now on) and frees
 * the old one. */
static void slot_set(slot *s, sl_sandbox *sb)
{
    pthread_mutex_lock(&s->mu);
    sl_sandbox *old = s->sb;
    s->sb = sb;
    pthread_mutex_unlock(&s->mu);
    sl_sandbox_free(old);
}

/* ------------------------------------------------------- cancels, restores */

/* Slot s returned SL_ECANCELLED: it must be POISONED, and the cancel must be
 * one of the kills sent to the slot (a kill cancels one call at most). */
static int note_cancel(worker *w, slot *s)
{
    s->cancels++;
    unsigned long k = atomic_load(&s->kills);
    if (s->cancels > k)
        return FAIL("SL_ECANCELLED number %lu, but only %lu kills were sent to this slot", s->cancels, k);
    if (sl_sandbox_status(s->sb) != SL_STATUS_POISONED)
        return FAIL("status %d after SL_ECANCELLED, not POISONED", sl_sandbox_status(s->sb));
    return 0;
}

/* Restores slot s to r and checks what can be checked without a call. A
 * killable slot may see SL_ECANCELLED from the restore only when kills keep
 * landing during the function-table call a restore to another program's
 * snapshot makes (sl_sandbox_restore discards a few); it retries. */
static int restore_to(worker *w, slot *s, const rec *r)
{
    int rc;
    for (int tries = 0;; tries++) {
        rc = sl_sandbox_restore(s->sb, r->snap);
        if (rc == 0)
            break;
        if (rc == SL_ECANCELLED && s->killable && tries < 1000) {
            if (!w->cancels_restore++)
                snprintf(w->restore_cancel_msg, sizeof w->restore_cancel_msg, "%s", sl_sandbox_errmsg(s->sb));
            if (note_cancel(w, s))
                return -1;
            continue;
        }
        return FAIL("restore to a family-%s snapshot (Counter %lld, generation %llu): %s: %s", fam_name[r->fam],
                    (long long)r->counter, (unsigned long long)r->gen, ERRS(rc));
    }
    if (sl_sandbox_status(s->sb) != SL_STATUS_READY)
        return FAIL("status %d after a restore", sl_sandbox_status(s->sb));
    if (sl_sandbox_generation(s->sb) != r->gen)
        return FAIL("generation %llu after a restore to generation %llu",
                    (unsigned long long)sl_sandbox_generation(s->sb), (unsigned long long)r->gen);
    s->counter = r->counter;
    s->gen = r->gen;
    return 0;
}

/* A shared snapshot of the slot's family. */
static const rec *shared_of(worker *w, int fam)
{
    return fam == FAM_A ? &G.shared[below(w, NSHARED)] : fam == FAM_F ? &G.l0 : &G.fs0;
}

/* After a cancelled call (or an expected failure): checks the poisoned state
 * is refused, then restores a shared snapshot of the slot's family. Returns 1
 * (the operation ended early), or -1 on a failure. */
static int recover(worker *w, slot *s, int cancelled)
{
    if (cancelled && note_cancel(w, s))
        return -1;
    if (sl_sandbox_status(s->sb) != SL_STATUS_POISONED)
        return FAIL("status %d after a failed call, not POISONED", sl_sandbox_status(s->sb));
    sl_value r;
    int rc = sl_sandbox_call(s->sb, "Counter", NULL, 0, &r);
    if (rc != SL_ESTATE)
        return FAIL("Counter on a poisoned sandbox: %s, not SL_ESTATE", sl_strerror(rc));
    sl_snapshot *snap = NULL;
    rc = sl_sandbox_snapshot(s->sb, &snap);
    if (rc != SL_ESTATE || snap) {
        sl_snapshot_free(snap);
        return FAIL("snapshot of a poisoned sandbox: %s, not SL_ESTATE", sl_strerror(rc));
    }
    return restore_to(w, s, shared_of(w, s->fam)) ? -1 : 1;
}

/* A call on slot s: 0 when it returned 0, 1 when it was cancelled on a
 * killable slot (then recovered), -1 (reported) otherwise. */
static int scall(worker *w, slot *s, const char *fn, const sl_value *a, size_t n, sl_value *ret)
{
    memset(ret, 0, sizeof *ret);
    int rc = sl_sandbox_call(s->sb, fn, a, n, ret);
    if (rc == 0)
        return 0;
    if (rc == SL_ECANCELLED && s->killable) {
        w->cancels_call++;
        return recover(w, s, 1);
    }
    return FAIL("%s: %s: %s", fn, ERRS(rc));
}

static int check_counter(worker *w, slot *s)
{
    sl_value r;
    int rc = scall(w, s, "Counter", NULL, 0, &r);
    if (rc)
        return rc;
    if (r.type != SL_TYPE_I64 || r.v.i64 != s->counter + 1)
        return FAIL("Counter returned %lld (type %d), expected %lld", (long long)r.v.i64, r.type,
                    (long long)s->counter + 1);
    s->counter++;
    return 0;
}

static int check_generation(worker *w, slot *s)
{
    sl_value r;
    int rc = scall(w, s, "Generation", NULL, 0, &r);
    if (rc)
        return rc;
    if (r.type != SL_TYPE_U64 || r.v.u64 != s->gen)
        return FAIL("Generation returned %llu (type %d), expected %llu", (unsigned long long)r.v.u64, r.type,
                    (unsigned long long)s->gen);
    return 0;
}

/* After a restore or a new sandbox: the guest answers from the snapshot. */
static int verify(worker *w, slot *s)
{
    int rc = 0;
    if (s->fam != FAM_B)
        rc = check_generation(w, s);
    return rc ? rc : check_counter(w, s);
}

/* Takes a snapshot of slot s (READY) into *out. */
static int take(worker *w, slot *s, rec *out)
{
    sl_snapshot *snap = NULL;
    int rc = sl_sandbox_snapshot(s->sb, &snap);
    if (rc)
        return FAIL("snapshot: %s: %s", ERRS(rc));
    if (sl_snapshot_generation(snap) != s->gen + 1 || sl_sandbox_generation(s->sb) != s->gen + 1) {
        sl_snapshot_free(snap);
        return FAIL("snapshot generation %llu, sandbox %llu, expected %llu",
                    (unsigned long long)sl_snapshot_generation(snap),
                    (unsigned long long)sl_sandbox_generation(s->sb), (unsigned long long)s->gen + 1);
    }
    s->gen++;
    out->snap = snap;
    out->fam = s->fam;
    out->counter = s->counter;
    out->gen = s->gen;
    sl_snapshot_id(snap, out->id);
    return 0;
}

/* A new sandbox from r, with HostUpper, checked, in slot s (the old one freed). */
static int new_into(worker *w, slot *s, const rec *r)
{
    char err[256] = "";
    sl_sandbox *sb;
    int rc = sl_sandbox_new_from_snapshot(&sb, r->snap, err, sizeof err);
    if (rc)
        return FAIL("new sandbox from a family-%s snapshot: %s: %s", fam_name[r->fam], sl_strerror(rc), err);
    if (r->fam != FAM_B) {
        static const int s1[] = {SL_TYPE_STRING};
        if ((rc = sl_sandbox_register(sb, "HostUpper", SL_TYPE_STRING, s1, 1, host_upper, &s->up))) {
            FAIL("register HostUpper: %s: %s", sl_strerror(rc), sl_sandbox_errmsg(sb));
            sl_sandbox_free(sb);
            return -1;
        }
    }
    if (s->killable && r->fam != FAM_B)
        sl_sandbox_set_timeout(sb, CALL_TIMEOUT_MS);
    if (sl_sandbox_status(sb) != SL_STATUS_READY || sl_sandbox_generation(sb) != r->gen) {
        FAIL("new sandbox: status %d, generation %llu (snapshot's %llu)", sl_sandbox_status(sb),
             (unsigned long long)sl_sandbox_generation(sb), (unsigned long long)r->gen);
        sl_sandbox_free(sb);
        return -1;
    }
    slot_set(s, sb);
    s->fam = r->fam;
    s->counter = r->counter;
    s->gen = r->gen;
    return verify(w, s);
}

/* Saves r to the next file of this worker and loads it into *out (family F). */
static int save_load(worker *w, slot *s, const rec *r, rec *out)
{
    char path[700], err[256] = "";
    snprintf(path, sizeof path, "%s/f%u.snap", w->dir, w->file_seq++ % NFILES);
    int rc = sl_snapshot_save(r->snap, path, err, sizeof err);
    if (rc)
        return FAIL("save of a family-%s snapshot to %s: %s: %s", fam_name[r->fam], path, sl_strerror(rc), err);
    sl_snapshot *ld;
    if ((rc = sl_snapshot_load(&ld, path, err, sizeof err)))
        return FAIL("load of %s: %s: %s", path, sl_strerror(rc), err);
    uint8_t id[32];
    sl_snapshot_id(ld, id);
    if (memcmp(id, r->id, 32) || sl_snapshot_generation(ld) != r->gen) {
        sl_snapshot_free(ld);
        return FAIL("loaded %s: identity or generation (%llu) differ from the saved snapshot's (%llu)", path,
                    (unsigned long long)sl_snapshot_generation(ld), (unsigned long long)r->gen);
    }
    out->snap = ld;
    out->fam = FAM_F;
    out->counter = r->counter;
    out->gen = r->gen;
    memcpy(out->id, id, 32);
    return 0;
}

/* A random demo snapshot of family fam (fam < 0: any demo family). */
static const rec *pick_demo(worker *w, int fam)
{
    const rec *c[NSHARED + 1 + MEM_RING + FILE_RING];
    unsigned n = 0;
    for (int i = 0; i < NSHARED; i++)
        if (fam < 0 || fam == FAM_A)
            c[n++] = &G.shared[i];
    if (fam < 0 || fam == FAM_F)
        c[n++] = &G.l0;
    for (int i = 0; i < MEM_RING; i++)
        if (fam < 0 || w->mem[i].fam == fam)
            c[n++] = &w->mem[i];
    for (int i = 0; i < FILE_RING; i++)
        if (fam < 0 || fam == FAM_F)
            c[n++] = &w->files[i];
    return c[below(w, n)];
}

/* --------------------------------------------------------------- operations */

static int op_demo(worker *w, slot *s, int op)
{
    sl_value a[2], r;
    int rc;
    char buf[8192];
    switch (op) {
    case OP_ADD: {
        int32_t x = (int32_t)xorshift(&w->rng), y = (int32_t)xorshift(&w->rng);
        a[0] = (sl_value){.type = SL_TYPE_I32, .v.i32 = x};
        a[1] = (sl_value){.type = SL_TYPE_I32, .v.i32 = y};
        if ((rc = scall(w, s, "Add", a, 2, &r)))
            return rc;
        if (r.type != SL_TYPE_I32 || r.v.i32 != (int32_t)((uint32_t)x + (uint32_t)y))
            return FAIL("Add(%d, %d) = %d (type %d)", x, y, r.v.i32, r.type);
        return 0;
    }
    case OP_ECHO: {
        size_t n = below(w, 16) ? below(w, 300) : below(w, sizeof buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)(0x20 + below(w, 0x5f));
        a[0] = str_v(buf, n);
        if ((rc = scall(w, s, "Echo", a, 1, &r)))
            return rc;
        if (r.type != SL_TYPE_STRING || r.v.buf.len != n || memcmp(r.v.buf.ptr, buf, n) ||
            ((const char *)r.v.buf.ptr)[n] != 0)
            return FAIL("Echo of %zu bytes came back as %zu bytes (type %d), or different", n, r.v.buf.len, r.type);
        return 0;
    }
    case OP_COUNTER:
        return check_counter(w, s);
    case OP_FILL: {
        uint64_t n = below(w, 4) ? below(w, 4096) : below(w, 256 << 10);
        a[0] = (sl_value){.type = SL_TYPE_U64, .v.u64 = n};
        if ((rc = scall(w, s, "Fill", a, 1, &r)))
            return rc;
        if (r.type != SL_TYPE_U64 || r.v.u64 != fill_sum(n))
            return FAIL("Fill(%llu) = %llu, expected %llu", (unsigned long long)n, (unsigned long long)r.v.u64,
                        (unsigned long long)fill_sum(n));
        return 0;
    }
    case OP_GENERATION:
        return check_generation(w, s);
    case OP_UPPER:
    case OP_UPPER_FAIL:
    case OP_UPPER_KILL: {
        size_t n = below(w, 200);
        char up[256];
        for (size_t i = 0; i < n; i++) {
            buf[i] = (char)(0x20 + below(w, 0x5f));
            up[i] = (char)toupper((unsigned char)buf[i]);
        }
        a[0] = str_v(buf, n);
        s->up.mode = op == OP_UPPER ? UP_OK : op == OP_UPPER_FAIL ? UP_FAIL : UP_KILL;
        unsigned long calls = s->up.calls;
        memset(&r, 0, sizeof r);
        rc = sl_sandbox_call(s->sb, "Upper", a, 1, &r);
        s->up.mode = UP_OK;
        if (op == OP_UPPER_KILL) {
            if (rc != SL_ECANCELLED)
                return FAIL("Upper with a host function that kills its sandbox: %s (SL_ECANCELLED expected): %s", ERRS(rc));
            w->cancels_call++;
            return recover(w, s, 1);
        }
        if (rc == SL_ECANCELLED && s->killable) {
            w->cancels_call++;
            return recover(w, s, 1);
        }
        if (op == OP_UPPER_FAIL) {
            if (rc != SL_EHOSTFN || !has(sl_sandbox_errmsg(s->sb), "refuses on request"))
                return FAIL("Upper with a failing host function: %s (SL_EHOSTFN expected): %s", ERRS(rc));
            if (sl_sandbox_status(s->sb) != SL_STATUS_READY)
                return FAIL("status %d after a host function failed, not READY", sl_sandbox_status(s->sb));
            w->ehostfn++;
        } else {
            if (rc)
                return FAIL("Upper: %s: %s", ERRS(rc));
            if (r.type != SL_TYPE_STRING || r.v.buf.len != n || memcmp(r.v.buf.ptr, up, n))
                return FAIL("Upper of %zu bytes: wrong answer (%zu bytes, type %d)", n, r.v.buf.len, r.type);
        }
        if (s->up.calls != calls + 1)
            return FAIL("HostUpper ran %lu times for one Upper", s->up.calls - calls);
        return 0;
    }
    case OP_SNAPSHOT: {
        rec n;
        if (take(w, s, &n))
            return -1;
        unsigned i = below(w, MEM_RING);
        rec_free(&w->mem[i]);
        w->mem[i] = n;
        return 0;
    }
    case OP_RESTORE:
        if (restore_to(w, s, pick_demo(w, s->fam)))
            return -1;
        return verify(w, s);
    case OP_WRONG_FAMILY: {
        const rec *o = below(w, 4) == 0 ? &G.fs0 : pick_demo(w, s->fam == FAM_A ? FAM_F : FAM_A);
        rc = sl_sandbox_restore(s->sb, o->snap);
        if (rc != SL_EFAMILY)
            return FAIL("restore to a family-%s snapshot: %s (SL_EFAMILY expected): %s", fam_name[o->fam], ERRS(rc));
        if (sl_sandbox_status(s->sb) != SL_STATUS_READY || sl_sandbox_generation(s->sb) != s->gen)
            return FAIL("after SL_EFAMILY: status %d, generation %llu (was READY, %llu)", sl_sandbox_status(s->sb),
                        (unsigned long long)sl_sandbox_generation(s->sb), (unsigned long long)s->gen);
        w->efamily++;
        return verify(w, s); /* the guest went on unchanged */
    }
    case OP_SAVE_LOAD: {
        rec n;
        if (save_load(w, s, pick_demo(w, -1), &n))
            return -1;
        unsigned i = below(w, FILE_RING);
        rec_free(&w->files[i]);
        w->files[i] = n;
        if (s->fam == FAM_F && below(w, 2)) {
            if (restore_to(w, s, &w->files[i]))
                return -1;
            return verify(w, s);
        }
        return 0;
    }
    case OP_NEW:
        return new_into(w, s, pick_demo(w, -1));
    case OP_INFO: {
        sl_sandbox_info info;
        if ((rc = sl_sandbox_info_get(s->sb, &info)))
            return FAIL("info: %s: %s", ERRS(rc));
        if (info.status != SL_STATUS_READY || info.generation != s->gen || info.arch != SL_ARCH_AMD64 ||
            !info.backend)
            return FAIL("info: status %d, generation %llu, arch %u", info.status,
                        (unsigned long long)info.generation, info.arch);
        return 0;
    }
    case OP_PUBLISH: {
        /* A snapshot of a family-A sandbox replaces a board entry no one is
         * borrowing; the old handle is freed here, while sandboxes of other
         * workers may still run on it. */
        if (s->fam != FAM_A)
            return op_demo(w, s, OP_SNAPSHOT);
        rec n;
        if (take(w, s, &n))
            return -1;
        board_entry *b = &G.board[below(w, NBOARD)];
        rec old = n;
        pthread_mutex_lock(&b->mu);
        if (b->users == 0) {
            old = b->r;
            b->r = n;
        }
        pthread_mutex_unlock(&b->mu);
        rec_free(&old);
        return 0;
    }
    case OP_BORROW: {
        board_entry *b = &G.board[below(w, NBOARD)];
        pthread_mutex_lock(&b->mu);
        b->users++;
        rec br = b->r;
        pthread_mutex_unlock(&b->mu);
        unsigned what = below(w, 3);
        if (what == 0 && s->fam != FAM_A)
            what = 1;
        if (what == 0) {
            rc = restore_to(w, s, &br);
            if (!rc)
                rc = verify(w, s);
        } else if (what == 1) {
            rc = new_into(w, s, &br);
        } else {
            rec n;
            rc = save_load(w, s, &br, &n);
            if (!rc) {
                unsigned i = below(w, FILE_RING);
                rec_free(&w->files[i]);
                w->files[i] = n;
            }
        }
        pthread_mutex_lock(&b->mu);
        b->users--;
        pthread_mutex_unlock(&b->mu);
        return rc;
    }
    }
    return FAIL("unknown op %d", op);
}

static int op_faulty(worker *w, slot *s, int op)
{
    sl_value r;
    int rc;
    switch (op) {
    case OP_F_COUNTER:
        return check_counter(w, s);
    case OP_F_TIMEOUT: {
        unsigned ms = 1 + below(w, 20);
        sl_sandbox_set_timeout(s->sb, ms);
        uint64_t t0 = now_ns();
        rc = sl_sandbox_call(s->sb, "Spin", NULL, 0, &r);
        uint64_t dt = now_ns() - t0;
        sl_sandbox_set_timeout(s->sb, 0);
        if (rc == SL_ECANCELLED) {
            w->cancels_call++;
            return recover(w, s, 1);
        }
        if (rc != SL_ETIMEOUT || !has(sl_sandbox_errmsg(s->sb), "timeout"))
            return FAIL("Spin with a %u ms timeout: %s (SL_ETIMEOUT expected): %s", ms, ERRS(rc));
        if (dt < (uint64_t)ms * 1000000u)
            return FAIL("Spin with a %u ms timeout returned SL_ETIMEOUT after %.3f ms", ms, (double)dt / 1e6);
        w->timeouts++;
        return recover(w, s, 0);
    }
    case OP_F_KILL: {
        /* The killer thread kills this call after 0-3 ms; no timeout. */
        atomic_store(&s->kill_at, now_ns() + 1000ull * below(w, 3000));
        rc = sl_sandbox_call(s->sb, "Spin", NULL, 0, &r);
        while (atomic_load(&s->kill_at))
            sleep_us(100);
        if (rc != SL_ECANCELLED)
            return FAIL("Spin killed from another thread: %s (SL_ECANCELLED expected): %s", ERRS(rc));
        w->cancels_call++;
        return recover(w, s, 1);
    }
    case OP_F_FAULT:
        rc = sl_sandbox_call(s->sb, "DivZero", NULL, 0, &r);
        if (rc == SL_ECANCELLED) {
            w->cancels_call++;
            return recover(w, s, 1);
        }
        if (rc != SL_EFAULT)
            return FAIL("DivZero: %s (SL_EFAULT expected): %s", ERRS(rc));
        w->efault++;
        return recover(w, s, 0);
    case OP_F_SNAPSHOT: {
        rec n;
        if (take(w, s, &n))
            return -1;
        unsigned i = below(w, FAULTY_RING);
        rec_free(&w->fring[i]);
        w->fring[i] = n;
        return 0;
    }
    case OP_F_RESTORE: {
        unsigned i = below(w, FAULTY_RING + 1);
        if (restore_to(w, s, i == FAULTY_RING ? &G.fs0 : &w->fring[i]))
            return -1;
        return verify(w, s);
    }
    case OP_F_NEW: {
        unsigned i = below(w, FAULTY_RING + 1);
        return new_into(w, s, i == FAULTY_RING ? &G.fs0 : &w->fring[i]);
    }
    }
    return FAIL("unknown op %d", op);
}

/* Weighted choice of an operation for a slot. */
typedef struct wop {
    int op, weight;
} wop;
static const wop demo_ops[] = {
    {OP_ADD, 10},    {OP_ECHO, 8},     {OP_COUNTER, 12},      {OP_FILL, 6},      {OP_GENERATION, 4},
    {OP_UPPER, 8},   {OP_UPPER_FAIL, 1}, {OP_UPPER_KILL, 1},  {OP_SNAPSHOT, 6},  {OP_RESTORE, 12},
    {OP_WRONG_FAMILY, 1}, {OP_SAVE_LOAD, 2}, {OP_NEW, 3},     {OP_INFO, 2},      {OP_PUBLISH, 2},
    {OP_BORROW, 4},
};
static const wop faulty_ops[] = {
    {OP_F_COUNTER, 30}, {OP_F_TIMEOUT, 12}, {OP_F_KILL, 8}, {OP_F_FAULT, 8},
    {OP_F_SNAPSHOT, 10}, {OP_F_RESTORE, 15}, {OP_F_NEW, 4},
};

static int pick_op(worker *w, const wop *t, size_t n)
{
    int total = 0;
    for (size_t i = 0; i < n; i++)
        total += t[i].weight;
    int x = (int)below(w, (unsigned)total);
    for (size_t i = 0; i < n; i++)
        if ((x -= t[i].weight) < 0)
            return t[i].op;
    return t[0].op;
}

/* ------------------------------------------------------------------ workers */

static int worker_setup(worker *w)
{
    slot *s = NULL;
    snprintf(w->dir, sizeof w->dir, "%s/w%d", G.dir, w->idx);
    if (mkdir(w->dir, 0700))
        return FAIL("mkdir %s: %s", w->dir, strerror(errno));
    for (int i = 0; i < NSLOTS; i++) {
        s = &w->slots[i];
        const rec *r = i == 0 ? &G.shared[w->idx % NSHARED] : i == 1 ? &G.l0 : &G.fs0;
        if (new_into(w, s, r))
            return -1;
    }
    for (int i = 0; i < MEM_RING; i++) {
        s = &w->slots[i % 2];
        if (check_counter(w, s) || take(w, s, &w->mem[i]))
            return -1;
    }
    s = &w->slots[0];
    if (save_load(w, s, &w->mem[0], &w->files[0]) || save_load(w, s, &G.shared[1], &w->files[1]))
        return -1;
    s = &w->slots[2];
    for (int i = 0; i < FAULTY_RING; i++)
        if (check_counter(w, s) || take(w, s, &w->fring[i]))
            return -1;
    return 0;
}

/* At a pause: every sandbox back on a shared snapshot, so that the objects
 * alive are the same at every pause (see the top of the file). */
static int normalize(worker *w)
{
    atomic_store(&w->cur_op, OP_NORMALIZE);
    for (int i = 0; i < NSLOTS; i++) {
        slot *s = &w->slots[i];
        atomic_store(&w->cur_slot, i);
        if (restore_to(w, s, shared_of(w, s->fam)))
            return -1;
    }
    w->ops[OP_NORMALIZE]++;
    return 0;
}

static void worker_done(void)
{
    pthread_mutex_lock(&G.pmu);
    G.done++;
    pthread_cond_broadcast(&G.pcv);
    pthread_mutex_unlock(&G.pmu);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    atomic_store(&w->progress_ns, now_ns());
    atomic_store(&w->cur_op, OP_NEW);
    if (worker_setup(w) == 0)
        w->ready = 1;
    while (w->ready && !w->failed && !atomic_load(&G.stop)) {
        if (atomic_load(&G.pause_req)) {
            if (normalize(w))
                break;
            pthread_mutex_lock(&G.pmu);
            unsigned ep = G.epoch;
            G.paused++;
            pthread_cond_broadcast(&G.pcv);
            while (G.epoch == ep)
                pthread_cond_wait(&G.pcv, &G.pmu);
            G.paused--;
            pthread_mutex_unlock(&G.pmu);
            atomic_store(&w->progress_ns, now_ns());
            continue;
        }
        unsigned si = below(w, 20);
        int sidx = si < 8 ? 0 : si < 15 ? 1 : 2;
        slot *s = &w->slots[sidx];
        int op = sidx == 2 ? pick_op(w, faulty_ops, sizeof faulty_ops / sizeof faulty_ops[0])
                           : pick_op(w, demo_ops, sizeof demo_ops / sizeof demo_ops[0]);
        atomic_store(&w->cur_slot, sidx);
        atomic_store(&w->cur_op, op);
        uint64_t t0 = now_ns();
        int rc = sidx == 2 ? op_faulty(w, s, op) : op_demo(w, s, op);
        uint64_t t1 = now_ns();
        if (rc < 0)
            break;
        w->ops[op]++;
        atomic_fetch_add(&G.total_ops, 1);
        w->op_sum_ns[op] += t1 - t0;
        if (t1 - t0 > w->op_max_ns[op])
            w->op_max_ns[op] = t1 - t0;
        atomic_store(&w->progress_ns, t1);
    }
    worker_done();
    return NULL;
}

/* Frees what the worker holds (after it stopped). */
static void worker_free(worker *w)
{
    for (int i = 0; i < NSLOTS; i++) {
        slot_set(&w->slots[i], NULL);
        pthread_mutex_destroy(&w->slots[i].mu);
    }
    for (int i = 0; i < MEM_RING; i++)
        rec_free(&w->mem[i]);
    for (int i = 0; i < FILE_RING; i++)
        rec_free(&w->files[i]);
    for (int i = 0; i < FAULTY_RING; i++)
        rec_free(&w->fring[i]);
    char path[700];
    for (int i = 0; i < NFILES; i++) {
        snprintf(path, sizeof path, "%s/f%d.snap", w->dir, i);
        unlink(path);
    }
    rmdir(w->dir);
}

/* ------------------------------------------------------------------- killer */

static void kill_slot(slot *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->sb) {
        atomic_fetch_add(&s->kills, 1);
        sl_sandbox_kill(s->sb);
    }
    pthread_mutex_unlock(&s->mu);
}

/* Directed kills when due; a random kill after every STRESS_KILL_EVERY
 * operations of all workers on average (so that the share of cancelled calls
 * does not depend on the machine's speed), at a random moment up to 2 ms
 * later, to slot 1 or 2 of a random worker. */
static void *killer_main(void *arg)
{
    (void)arg;
    uint64_t rng = G.seed ^ 0x9e3779b97f4a7c15ull, due = 0;
    unsigned long after = 0;
    while (!atomic_load(&G.killer_stop)) {
        uint64_t t = now_ns();
        for (int i = 0; i < G.nworkers; i++) {
            slot *s = &G.w[i].slots[2];
            uint64_t at = atomic_load(&s->kill_at);
            if (at && t >= at) {
                kill_slot(s);
                G.kills_directed++;
                atomic_store(&s->kill_at, 0);
            }
        }
        if (!due && atomic_load(&G.total_ops) >= after)
            due = t + 1000ull * (xorshift(&rng) % 2001);
        if (due && t >= due) {
            worker *w = &G.w[xorshift(&rng) % (unsigned)G.nworkers];
            if (w->ready && !w->failed) {
                kill_slot(&w->slots[1 + xorshift(&rng) % 2]);
                G.kills_random++;
            }
            due = 0;
            after = atomic_load(&G.total_ops) + 1 + xorshift(&rng) % (2 * G.kill_every);
        }
        atomic_store(&G.killer_progress, t);
        sleep_us(100);
    }
    return NULL;
}

/* ------------------------------------------------------------ the main test */

static void die(const char *why, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *why, ...)
{
    va_list ap;
    va_start(ap, why);
    pthread_mutex_lock(&G.outmu);
    printf("  watchdog: ");
    vprintf(why, ap);
    printf("\n");
    uint64_t t = now_ns();
    for (int i = 0; i < G.nworkers; i++) {
        worker *w = &G.w[i];
        printf("  worker %d: %s, op %s on slot %d, last progress %.1f s ago\n", i,
               w->failed ? "failed" : w->ready ? "running" : "setting up", op_name[atomic_load(&w->cur_op)],
               atomic_load(&w->cur_slot), (double)(t - atomic_load(&w->progress_ns)) / 1e9);
    }
    printf("  killer: last progress %.1f s ago\n", (double)(t - atomic_load(&G.killer_progress)) / 1e9);
    printf("FAIL test_stress_run (deadlock or hang; seed %llu)\n", (unsigned long long)G.seed);
    fflush(stdout);
    va_end(ap);
    abort();
}

/* Aborts when a running worker, or the killer, made no progress for the
 * watchdog's time. Workers waiting at a pause are not running. */
static void watchdog_check(uint64_t pause_since)
{
    uint64_t t = now_ns(), wd = (uint64_t)(G.watchdog * 1e9);
    if (pause_since && t - pause_since > wd)
        die("the workers did not reach the pause within %.0f s", G.watchdog);
    if (!pause_since)
        for (int i = 0; i < G.nworkers; i++) {
            worker *w = &G.w[i];
            uint64_t p = atomic_load(&w->progress_ns);
            if (!w->failed && t > p && t - p > wd)
                die("worker %d made no progress for %.0f s", i, G.watchdog);
        }
    uint64_t k = atomic_load(&G.killer_progress);
    if (!atomic_load(&G.killer_stop) && t > k && t - k > wd)
        die("the killer thread made no progress for %.0f s", G.watchdog);
}

/* Pauses every worker (normalized), samples, and lets them go on unless stop. */
static void pause_and_sample(double t, int stop)
{
    uint64_t since = now_ns();
    atomic_store(&G.pause_req, 1);
    pthread_mutex_lock(&G.pmu);
    while (G.paused + G.done < G.nworkers) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&G.pcv, &G.pmu, &ts);
        pthread_mutex_unlock(&G.pmu);
        watchdog_check(since);
        pthread_mutex_lock(&G.pmu);
    }
    if (G.nsamples < MAX_SAMPLES) {
        sample *sm = &G.samples[G.nsamples++];
        sm->t = t;
        sm->fds = count_fds_bases(&sm->bases);
        sm->rss = rss_bytes();
        sm->ops = atomic_load(&G.total_ops);
    }
    if (stop)
        atomic_store(&G.stop, 1);
    atomic_store(&G.pause_req, 0);
    G.epoch++;
    pthread_cond_broadcast(&G.pcv);
    pthread_mutex_unlock(&G.pmu);
}

static int make_shared(void)
{
    char err[256] = "";
    sl_sandbox *d = NULL, *f = NULL;
    static upper_ctx up;
    static const int s1[] = {SL_TYPE_STRING};
    int rc = sl_sandbox_new_from_file(&d, guest_path("demo"), NULL, err, sizeof err);
    if (rc) {
        printf("  cannot create a sandbox from %s: %s: %s\n", guest_path("demo"), sl_strerror(rc), err);
        return -1;
    }
    if ((rc = sl_sandbox_register(d, "HostUpper", SL_TYPE_STRING, s1, 1, host_upper, &up)) ||
        (rc = sl_sandbox_init(d)))
        goto fail_d;
    int64_t c = 0;
    sl_value r;
    /* shared[k]: Counter at k; the board: Counter at 10..13 */
    for (int k = 0; k < NSHARED + NBOARD; k++) {
        int64_t want = k < NSHARED ? k : 10 + (k - NSHARED);
        while (c < want) {
            if ((rc = sl_sandbox_call(d, "Counter", NULL, 0, &r)))
                goto fail_d;
            if (r.v.i64 != ++c) {
                printf("  Counter returned %lld, expected %lld\n", (long long)r.v.i64, (long long)c);
                goto fail;
            }
        }
        rec *o = k < NSHARED ? &G.shared[k] : &G.board[k - NSHARED].r;
        if ((rc = sl_sandbox_snapshot(d, &o->snap)))
            goto fail_d;
        o->fam = FAM_A;
        o->counter = c;
        o->gen = sl_snapshot_generation(o->snap);
        sl_snapshot_id(o->snap, o->id);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/shared.snap", G.dir);
    if ((rc = sl_snapshot_save(G.shared[2].snap, path, err, sizeof err)) ||
        (rc = sl_snapshot_load(&G.l0.snap, path, err, sizeof err))) {
        printf("  save or load of %s: %s: %s\n", path, sl_strerror(rc), err);
        goto fail;
    }
    G.l0.fam = FAM_F;
    G.l0.counter = G.shared[2].counter;
    G.l0.gen = G.shared[2].gen;
    memcpy(G.l0.id, G.shared[2].id, 32);
    if ((rc = sl_sandbox_new_from_file(&f, guest_path("faulty"), NULL, err, sizeof err))) {
        printf("  cannot create a sandbox from %s: %s: %s\n", guest_path("faulty"), sl_strerror(rc), err);
        goto fail;
    }
    if ((rc = sl_sandbox_init(f)) || (rc = sl_sandbox_snapshot(f, &G.fs0.snap))) {
        printf("  faulty: %s: %s\n", sl_strerror(rc), sl_sandbox_errmsg(f));
        goto fail;
    }
    G.fs0.fam = FAM_B;
    G.fs0.counter = 0;
    G.fs0.gen = sl_snapshot_generation(G.fs0.snap);
    sl_snapshot_id(G.fs0.snap, G.fs0.id);
    /* The origins go: their snapshots live on. */
    sl_sandbox_free(d);
    sl_sandbox_free(f);
    return 0;
fail_d:
    printf("  demo: %s: %s\n", sl_strerror(rc), sl_sandbox_errmsg(d));
fail:
    sl_sandbox_free(d);
    sl_sandbox_free(f);
    return -1;
}

static void free_shared(void)
{
    for (int i = 0; i < NSHARED; i++)
        rec_free(&G.shared[i]);
    for (int i = 0; i < NBOARD; i++)
        rec_free(&G.board[i].r);
    rec_free(&G.l0);
    rec_free(&G.fs0);
    char path[600];
    snprintf(path, sizeof path, "%s/shared.snap", G.dir);
    unlink(path);
    rmdir(G.dir);
}

static void report(void)
{
    unsigned long ops[N_OPS] = {0}, total = 0, cc = 0, cr = 0, to = 0, ef = 0, eh = 0, fa = 0, cancels = 0, kills = 0;
    uint64_t mx[N_OPS] = {0}, sum[N_OPS] = {0};
    for (int i = 0; i < G.nworkers; i++) {
        worker *w = &G.w[i];
        for (int k = 0; k < N_OPS; k++) {
            ops[k] += w->ops[k];
            total += k == OP_NORMALIZE ? 0 : w->ops[k];
            sum[k] += w->op_sum_ns[k];
            if (w->op_max_ns[k] > mx[k])
                mx[k] = w->op_max_ns[k];
        }
        cc += w->cancels_call;
        cr += w->cancels_restore;
        to += w->timeouts;
        ef += w->efamily;
        eh += w->ehostfn;
        fa += w->efault;
        for (int s = 0; s < NSLOTS; s++) {
            cancels += w->slots[s].cancels;
            kills += atomic_load(&w->slots[s].kills);
        }
    }
    printf("# stress: %d workers x %d sandboxes for %.1f s, seed %llu, watchdog %.0f s, %s build\n", G.nworkers,
           NSLOTS, G.elapsed, (unsigned long long)G.seed, G.watchdog, STRESS_SANITIZER ? "sanitizer" : "normal");
    printf("# ops: %lu (%.0f/s)", total, total / (G.elapsed > 0 ? G.elapsed : 1));
    for (int k = 0; k < N_OPS; k++)
        printf(" %s=%lu", op_name[k], ops[k]);
    printf("\n# ms per op, mean/max:");
    for (int k = 0; k < N_OPS; k++)
        if (ops[k])
            printf(" %s=%.2f/%.0f", op_name[k], (double)sum[k] / 1e6 / (double)ops[k], (double)mx[k] / 1e6);
    printf("\n# kills: %lu sent (random %lu, directed %lu, by the host function %lu); SL_ECANCELLED seen %lu "
           "(calls %lu, restores %lu)\n",
           kills, G.kills_random, G.kills_directed, (unsigned long)atomic_load(&G.kills_self), cancels, cc, cr);
    for (int i = 0; i < G.nworkers; i++)
        if (G.w[i].restore_cancel_msg[0]) {
            printf("# a restore that returned SL_ECANCELLED said: %s\n", G.w[i].restore_cancel_msg);
            break;
        }
    printf("# expected errors: SL_ETIMEOUT %lu, SL_EFAULT %lu, SL_EHOSTFN %lu, SL_EFAMILY %lu\n", to, fa, eh, ef);
    printf("# samples (t s: fds, rss MiB):");
    for (int i = 0; i < G.nsamples; i++)
        printf("%s %.1f: %ld, %.1f", i == G.first_after_warmup ? " |" : "", G.samples[i].t, G.samples[i].fds,
               (double)G.samples[i].rss / (1 << 20));
    printf("\n# fds: %ld before, %ld after everything was freed\n", G.fds_start, G.fds_end);
    printf("# rss: %.1f MiB before, %.1f MiB after everything was freed\n", (double)G.rss_start / (1 << 20),
           (double)G.rss_end / (1 << 20));
}

static void test_stress_run(void)
{
    G.seconds = env_num("STRESS_SECONDS", 60, 1, 86400);
    G.nworkers = (int)env_num("STRESS_THREADS", 4, 1, MAX_WORKERS);
    G.kill_every = (unsigned)env_num("STRESS_KILL_EVERY", 12, 1, 1e9);
    double wd = getenv("SANDLET_IN_LAB") ? 120 : 30;
    G.watchdog = env_num("STRESS_WATCHDOG", STRESS_SANITIZER ? 2 * wd : wd, 1, 86400);
    G.seed = (uint64_t)env_num("STRESS_SEED", 0, 0, 1e15);
    if (!G.seed)
        G.seed = (now_ns() ^ ((uint64_t)getpid() << 32)) % 1000000000000ull + 1;
    printf("# seed %llu (STRESS_SEED=%llu repeats the workers' choices)\n", (unsigned long long)G.seed,
           (unsigned long long)G.seed);
    fflush(stdout);

    G.fds_start = count_fds();
    G.rss_start = rss_bytes();
    const char *tmp = getenv("TMPDIR");
    snprintf(G.dir, sizeof G.dir, "%s/sandlet-stress.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    REQUIRE(mkdtemp(G.dir) != NULL);
    for (int i = 0; i < NBOARD; i++)
        pthread_mutex_init(&G.board[i].mu, NULL);
    if (make_shared()) {
        free_shared();
        REQUIRE(0);
    }

    worker *ws = calloc((size_t)G.nworkers, sizeof *ws);
    REQUIRE(ws != NULL);
    G.w = ws;
    uint64_t t0 = now_ns();
    atomic_store(&G.killer_progress, t0);
    for (int i = 0; i < G.nworkers; i++) {
        ws[i].idx = i;
        for (int k = 0; k < NSLOTS; k++) {
            slot *s = &ws[i].slots[k];
            s->idx = k;
            s->killable = k > 0;
            s->up.slot = s;
            pthread_mutex_init(&s->mu, NULL);
        }
        ws[i].rng = G.seed * 0x9e3779b97f4a7c15ull + (uint64_t)i * 0x632be59bd9b4e019ull + 1;
        atomic_store(&ws[i].progress_ns, t0);
    }
    pthread_t killer;
    REQUIRE(pthread_create(&killer, NULL, killer_main, NULL) == 0);
    for (int i = 0; i < G.nworkers; i++)
        REQUIRE(pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) == 0);

    /* Samples: at the end of the warm-up (the first 20 %), then every tenth
     * of the rest (at least 2 s apart), the last at the end. */
    double warm = 0.2 * G.seconds, interval = 0.08 * G.seconds;
    if (interval < 2)
        interval = 2;
    double next = warm;
    G.first_after_warmup = -1;
    for (;;) {
        sleep_us(50000);
        watchdog_check(0);
        double t = (double)(now_ns() - t0) / 1e9;
        if (atomic_load(&G.failed))
            break;
        if (t >= G.seconds) {
            pause_and_sample(t, 1);
            break;
        }
        if (t >= next) {
            if (G.first_after_warmup < 0)
                G.first_after_warmup = G.nsamples;
            pause_and_sample(t, 0);
            next += interval;
        }
    }
    atomic_store(&G.stop, 1);
    G.elapsed = (double)(now_ns() - t0) / 1e9;
    /* Join with the watchdog still on: a worker stuck in a call is a hang. */
    uint64_t js = now_ns();
    for (int i = 0; i < G.nworkers; i++)
        for (;;) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            if (pthread_timedjoin_np(ws[i].th, NULL, &ts) == 0)
                break;
            if ((double)(now_ns() - js) / 1e9 > G.watchdog)
                die("worker %d did not stop within %.0f s", i, G.watchdog);
        }
    atomic_store(&G.killer_stop, 1);
    pthread_join(killer, NULL);
    for (int i = 0; i < G.nworkers; i++) {
        CHECK(!ws[i].failed);
        /* every cancel was a kill sent (checked as they came), and every
         * directed kill and host-function kill cancelled a call */
        for (int s = 0; s < NSLOTS; s++)
            CHECK(ws[i].slots[s].cancels <= atomic_load(&ws[i].slots[s].kills));
    }
    CHECK(!atomic_load(&G.failed));
    for (int i = 0; i < G.nworkers; i++)
        worker_free(&ws[i]);
    free_shared();
    for (int i = 0; i < NBOARD; i++)
        pthread_mutex_destroy(&G.board[i].mu);
    G.fds_end = count_fds();
    G.rss_end = rss_bytes();
    G.ran = 1;
    report();
    /* Every kind of operation ran, once the run is long enough for the
     * rarest (1 % of the operations) to be all but certain: 3000 operations
     * (a normal build runs that many in about 10 s here; the KVM lab and the
     * sanitizers run fewer). */
    unsigned long total = atomic_load(&G.total_ops);
    for (int k = 0; k < N_OPS && !atomic_load(&G.failed); k++) {
        unsigned long n = 0;
        for (int i = 0; i < G.nworkers; i++)
            n += ws[i].ops[k];
        if (!n)
            printf("%s operation %s never ran in %lu operations\n", total >= 3000 ? " " : "#", op_name[k], total);
        CHECK(n > 0 || total < 3000);
    }
    free(ws);
    G.w = NULL;
}

/* Descriptors and resident memory after the warm-up (see the top). */
static void test_stress_flat(void)
{
    REQUIRE(G.ran);
    REQUIRE(G.first_after_warmup >= 0 && G.nsamples > G.first_after_warmup + 1);
    const sample *ref = &G.samples[G.first_after_warmup];
    uint64_t max_rss = 0;
    /* Parents' memfds: at most one per snapshot held at a pause (rings,
     * each sandbox's, shared, loaded, board), whichever of them served as
     * parents; every other descriptor exactly as after the warm-up. */
    long held = G.nworkers * (MEM_RING + FILE_RING + FAULTY_RING + 3) + NSHARED + 2 + NBOARD;
    for (int i = G.first_after_warmup; i < G.nsamples; i++) {
        long other = G.samples[i].fds - G.samples[i].bases, ref_other = ref->fds - ref->bases;
        if (other != ref_other)
            printf("  %ld descriptors open at %.1f s, %ld after the warm-up (not counting %ld and %ld parents' "
                   "memfds)\n",
                   other, G.samples[i].t, ref_other, G.samples[i].bases, ref->bases);
        CHECK_EQ(other, ref_other);
        CHECK(G.samples[i].bases <= held);
        if (G.samples[i].rss > max_rss)
            max_rss = G.samples[i].rss;
    }
    /* The bound: 10 % + 16 MiB, the scratch of one sandbox. Resident memory
     * at a pause varies with the scratch pages each sandbox holds (a restore
     * resets what the guest dirtied, the pages stay mapped), the heap arenas
     * of the threads and the pages of loaded files; a leak of an object per
     * operation crosses it within seconds. It holds only after a warm-up of
     * 1000 operations or more (not in the KVM lab's 10 s), and not under a
     * sanitizer, whose allocator keeps freed memory (ASan's quarantine). */
    uint64_t bound = ref->rss + ref->rss / 10 + (16u << 20);
    int enforce = !STRESS_SANITIZER && ref->ops >= 1000;
    printf("# parents' memfds at the samples:");
    for (int i = G.first_after_warmup; i < G.nsamples; i++)
        printf(" %ld", G.samples[i].bases);
    printf(" (at most %ld)\n", held);
    printf("# flat: fds %ld after the warm-up (%lu operations) and at every sample; rss %.1f MiB after the warm-up, "
           "at most %.1f MiB later (bound %.1f MiB%s)\n",
           ref->fds, ref->ops, (double)ref->rss / (1 << 20), (double)max_rss / (1 << 20), (double)bound / (1 << 20),
           enforce ? "" : STRESS_SANITIZER ? ", not enforced under a sanitizer" : ", not enforced after so short a warm-up");
    if (enforce) {
        if (max_rss > bound)
            printf("  resident memory grew from %.1f MiB to %.1f MiB\n", (double)ref->rss / (1 << 20),
                   (double)max_rss / (1 << 20));
        CHECK(max_rss <= bound);
    }
    if (G.fds_end != G.fds_start)
        printf("  %ld descriptors open after everything was freed, %ld before the test\n", G.fds_end, G.fds_start);
    CHECK_EQ(G.fds_end, G.fds_start);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    RUN_ARCH(T_AMD64, test_stress_run);
    RUN_ARCH(T_AMD64, test_stress_flat);
    T_EXIT();
}
