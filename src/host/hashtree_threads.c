/* A whole input hashed on every core (hashtree.h, sl_hashtree_hash): the
 * pages split into aligned units of SL_HASHTREE_UNIT bytes that threads
 * claim in order from one counter; each thread hashes a unit's pages and
 * the levels of the tree inside it, so units never share a CV; then the
 * calling thread builds the few levels above the units and the root.
 *
 * Threads are created for each job and joined before it returns: a job
 * owns everything it touches (no pool, no global state), and a thread
 * costs tens of microseconds against the milliseconds of hashing that
 * SL_HASHTREE_THREAD_MIN bytes take. */
#include "hashtree.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "blake3.h"
#include "blake3_impl.h" /* blake3_simd_degree */

#define UNIT_PAGES ((uint64_t)1 << SL_HASHTREE_UNIT_LOG2)

typedef struct shared {
    const sl_hash_job *job;
    sl_hashtree *t;
    uint64_t n_pages, n_units;
    _Atomic uint64_t next;   /* the next unit to claim */
    _Atomic uint8_t *done;   /* per unit, set once hashed; only for report */
    /* The calling thread's alone: */
    uint64_t frontier;       /* every unit below it is hashed */
    uint64_t next_report;    /* the next value to report */
} shared;

static uint64_t unit_pages(const shared *sh, uint64_t u)
{
    uint64_t first = u << SL_HASHTREE_UNIT_LOG2;
    return sh->n_pages - first < UNIT_PAGES ? sh->n_pages - first : UNIT_PAGES;
}

static void hash_unit(shared *sh, uint64_t u)
{
    const sl_hash_job *job = sh->job;
    uint64_t first = u << SL_HASHTREE_UNIT_LOG2, n = unit_pages(sh, u);
    if (job->touch)
        job->touch(job->arg, first * SL_HASHTREE_PAGE, n * SL_HASHTREE_PAGE);
    /* The tree is sl_hashtree_new's, its blocks its own: neither fails. */
    (void)sl_hashtree_set_pages(sh->t, job->blob + first * SL_HASHTREE_PAGE, first, n);
    (void)sl_hashtree_build_range(sh->t, 1, first, n);
    if (sh->done)
        atomic_store_explicit(&sh->done[u], 1, memory_order_release);
}

static void *worker(void *arg)
{
    shared *sh = arg;
    for (uint64_t u; (u = atomic_fetch_add(&sh->next, 1)) < sh->n_units;)
        hash_unit(sh, u);
    return NULL;
}

/* On the calling thread: report each step the hash has passed. */
static void report(shared *sh)
{
    const sl_hash_job *job = sh->job;
    if (!job->report)
        return;
    while (sh->done && sh->frontier < sh->n_units &&
           atomic_load_explicit(&sh->done[sh->frontier], memory_order_acquire))
        sh->frontier++;
    uint64_t hashed = sh->frontier < sh->n_units ? sh->frontier * SL_HASHTREE_UNIT : job->blob_size;
    uint64_t every = job->every ? job->every : SL_HASHTREE_UNIT;
    for (; sh->next_report < job->blob_size && sh->next_report <= hashed; sh->next_report += every)
        job->report(job->arg, sh->next_report);
}

/* CPUs this thread may run on: sched_getaffinity sees taskset and cgroup
 * cpusets, which the count of online CPUs does not. */
static unsigned cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* Threads for work that `by_size` threads could share: at most `max` (0:
 * one per CPU) and SL_HASHTREE_MAX_THREADS, at least one. The CPUs are
 * asked only when more than one could help (a take of a few pages runs
 * this every time). */
static unsigned threads_for(uint64_t max, uint64_t by_size)
{
    if (by_size <= 1)
        return 1;
    uint64_t n = max ? max : cpus();
    if (n > SL_HASHTREE_MAX_THREADS)
        n = SL_HASHTREE_MAX_THREADS;
    if (n > by_size)
        n = by_size;
    return n ? (unsigned)n : 1;
}

static unsigned thread_count(const sl_hash_job *job, uint64_t n_units)
{
    uint64_t by_size = job->blob_size / (job->thread_min ? job->thread_min : SL_HASHTREE_THREAD_MIN);
    return threads_for(job->max_threads, by_size < n_units ? by_size : n_units);
}

/* Starts up to n helper threads running fn(arg); how many started. */
static unsigned start_helpers(pthread_t *tid, unsigned n, void *(*fn)(void *), void *arg)
{
    /* BLAKE3's dispatcher caches the CPU's features in a plain global on
     * first use: have it written here, before the helpers read it. */
    (void)blake3_simd_degree();
    /* The helpers take no signal meant for the program: only those their
     * own faults raise. */
    sigset_t mask, old;
    sigfillset(&mask);
    sigdelset(&mask, SIGBUS);
    sigdelset(&mask, SIGSEGV);
    sigdelset(&mask, SIGILL);
    sigdelset(&mask, SIGFPE);
    pthread_sigmask(SIG_SETMASK, &mask, &old);
    unsigned started = 0;
    while (started < n && pthread_create(&tid[started], NULL, fn, arg) == 0)
        started++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return started;
}

/* Hashes every unit on up to `threads` threads, the calling one among
 * them; returns once all are hashed. Threads that cannot be created leave
 * their share to the others. */
static void hash_units(shared *sh, unsigned threads)
{
    pthread_t tid[SL_HASHTREE_MAX_THREADS];
    unsigned started = threads > 1 ? start_helpers(tid, threads - 1, worker, sh) : 0;
    report(sh);
    for (uint64_t u; (u = atomic_fetch_add(&sh->next, 1)) < sh->n_units;) {
        hash_unit(sh, u);
        if (!sh->done) /* alone (or nothing to report): units come in order */
            sh->frontier = u + 1;
        report(sh);
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    report(sh);
}

/* Without memory for a tree: the plain hasher, one unit at a time on the
 * calling thread, with the same touch and report. */
static void hash_stream(shared *sh, uint8_t out[SL_HASH_LEN])
{
    const sl_hash_job *job = sh->job;
    blake3_hasher h;
    blake3_hasher_init(&h);
    report(sh);
    for (uint64_t u = 0; u < sh->n_units; u++) {
        uint64_t off = u * SL_HASHTREE_UNIT, len = unit_pages(sh, u) * SL_HASHTREE_PAGE;
        if (job->touch)
            job->touch(job->arg, off, len);
        blake3_hasher_update(&h, job->blob + off, (size_t)len);
        sh->frontier = u + 1;
        report(sh);
    }
    uint64_t whole = sh->n_pages * SL_HASHTREE_PAGE;
    if (job->blob_size > whole)
        blake3_hasher_update(&h, job->blob + whole, (size_t)(job->blob_size - whole));
    if (job->tail_len)
        blake3_hasher_update(&h, job->tail, job->tail_len);
    blake3_hasher_finalize(&h, out, SL_HASH_LEN);
}

void sl_hashtree_hash(const sl_hash_job *job, sl_hashtree **tree, uint8_t out[SL_HASH_LEN])
{
    shared sh = {.job = job, .n_pages = job->blob_size / SL_HASHTREE_PAGE};
    sh.n_units = (sh.n_pages + UNIT_PAGES - 1) >> SL_HASHTREE_UNIT_LOG2;
    atomic_init(&sh.next, 0);
    unsigned threads = thread_count(job, sh.n_units);
    sh.t = sl_hashtree_new(sh.n_pages);
    /* Progress across threads needs a flag per unit; alone, the calling
     * thread knows how far it got. */
    if (sh.t && job->report && threads > 1 && !(sh.done = calloc(sh.n_units, 1))) {
        sl_hashtree_free(sh.t);
        sh.t = NULL;
    }
    if (tree)
        *tree = NULL;
    if (!sh.t) {
        hash_stream(&sh, out);
        return;
    }
    hash_units(&sh, threads);
    free((void *)sh.done);
    (void)sl_hashtree_build_range(sh.t, SL_HASHTREE_UNIT_LOG2 + 1, 0, sh.n_pages);
    sl_hashtree_root(sh.t, job->blob, job->blob_size, job->tail, job->tail_len, out);
    if (tree)
        *tree = sh.t;
    else
        sl_hashtree_free(sh.t);
}

/* ---- a list of pages (sl_hashtree_set_page_list_threads) ----
 * The list is cut into segments that begin at a leaf block's first listed
 * page; threads, the calling one among them, claim segments in order. A
 * few segments a thread even out pages that cost unequally (runs of
 * neighbours hash four times faster than lone pages). */

#define LIST_SEGMENTS_PER_THREAD 4u

typedef struct list_job {
    sl_hashtree *t;
    const uint8_t *blob;
    const uint64_t *pages;
    size_t bound[SL_HASHTREE_MAX_THREADS * LIST_SEGMENTS_PER_THREAD + 1]; /* segment s: [bound[s], bound[s + 1]) */
    unsigned n_seg;
    _Atomic unsigned next;
    atomic_bool failed;
} list_job;

static void *list_worker(void *arg)
{
    list_job *j = arg;
    for (unsigned s; (s = atomic_fetch_add(&j->next, 1)) < j->n_seg;)
        if (!sl_hashtree_set_page_list(j->t, j->blob, j->pages + j->bound[s], j->bound[s + 1] - j->bound[s]))
            atomic_store(&j->failed, true);
    return NULL;
}

bool sl_hashtree_set_page_list_threads(sl_hashtree *t, const uint8_t *blob, const uint64_t *pages, size_t n)
{
    unsigned threads = threads_for(0, n / SL_HASHTREE_LIST_THREAD_MIN);
    if (threads == 1)
        return sl_hashtree_set_page_list(t, blob, pages, n);
    list_job j = {.t = t, .blob = blob, .pages = pages, .n_seg = threads * LIST_SEGMENTS_PER_THREAD};
    atomic_init(&j.next, 0);
    atomic_init(&j.failed, false);
    j.bound[0] = 0;
    for (unsigned s = 1; s < j.n_seg; s++) {
        size_t b = (size_t)((uint64_t)n * s / j.n_seg);
        if (b < j.bound[s - 1])
            b = j.bound[s - 1];
        while (b > 0 && b < n && pages[b] >> SL_HASHTREE_UNIT_LOG2 == pages[b - 1] >> SL_HASHTREE_UNIT_LOG2)
            b++;
        j.bound[s] = b;
    }
    j.bound[j.n_seg] = n;
    pthread_t tid[SL_HASHTREE_MAX_THREADS];
    unsigned started = start_helpers(tid, threads - 1, list_worker, &j);
    list_worker(&j);
    for (unsigned i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    return !atomic_load(&j.failed);
}
