/* A loaded file must not change (snapfile.h, docs/snapshot-format.md §8):
 * the watch load puts on every file it maps, and the process-wide SIGBUS
 * handler that turns a read of a lost page into zeros and a changed mark.
 *
 * A loaded snapshot's blob is the file itself, mapped MAP_PRIVATE: pages
 * nobody wrote privately are the page cache's, so a rewrite shows through,
 * and a truncation takes pages away (a guest's access then fails KVM_RUN
 * with EFAULT, a host read raises SIGBUS). The contract (snapshot-format.md
 * §8) is that the file does not change while loaded; this enforces what can
 * be: every use of the snapshot first compares the file with what load saw
 * (sl_snapfile_check, one fstat on a descriptor of our own), and a host read
 * that finds no page gets a page of zeros from the SIGBUS handler below,
 * which marks the snapshot changed. Whatever was computed from such a read
 * is thrown away by the check that follows it. */
#include "snapfile.h"
#include "snapshot_impl.h" /* the file codec reads and builds the struct */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { WATCH_OK, WATCH_WRITING, WATCH_STAT, WATCH_SIGBUS }; /* watch state; sticky once not WATCH_OK */

typedef struct watch_slot watch_slot;

struct sl_snapfile_watch {
    int fd;              /* our own descriptor of the mapped file */
    struct stat at_load; /* what the file was when it was validated */
    uintptr_t map_start, map_end; /* the mapping (file offset 0), end page-aligned */
    watch_slot *slot;    /* in the SIGBUS registry */
    watch_slot *blob_slot; /* a child's blob (its chain's runs), or NULL */
    _Atomic int state;
    _Atomic uint64_t lost_off; /* WATCH_SIGBUS: the file offset that had no page */
    char what[112];      /* WATCH_STAT: how the file changed (set before the state) */
    char path[];         /* as given to load; "" for a bare descriptor */
};

static bool ts_equal(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* Whether the file `now` differs from what load saw (`was`), and how. The
 * status-change time also moves when the file is renamed over, unlinked or
 * linked (its link count changes) or its owner or mode changes, none of
 * which touches the contents; when nothing of that changed, it moved
 * because the contents did and the modification time was set back. */
static bool file_differs(const struct stat *was, const struct stat *now, char *what, size_t len)
{
    if (was->st_dev != now->st_dev || was->st_ino != now->st_ino)
        snprintf(what, len, "another file: device/inode changed");
    else if (was->st_size != now->st_size)
        snprintf(what, len, "size %lld -> %lld bytes", (long long)was->st_size, (long long)now->st_size);
    else if (!ts_equal(was->st_mtim, now->st_mtim))
        snprintf(what, len, "modified: mtime %lld.%09ld -> %lld.%09ld", (long long)was->st_mtim.tv_sec,
                 was->st_mtim.tv_nsec, (long long)now->st_mtim.tv_sec, now->st_mtim.tv_nsec);
    else if (!ts_equal(was->st_ctim, now->st_ctim) && was->st_nlink == now->st_nlink &&
             was->st_mode == now->st_mode && was->st_uid == now->st_uid && was->st_gid == now->st_gid)
        snprintf(what, len, "modified: ctime moved, mtime set back");
    else
        return false;
    return true;
}

static void mark_changed(struct sl_snapfile_watch *w, const char *what)
{
    int expect = WATCH_OK;
    if (atomic_compare_exchange_strong(&w->state, &expect, WATCH_WRITING)) {
        snprintf(w->what, sizeof w->what, "%s", what);
        atomic_store_explicit(&w->state, WATCH_STAT, memory_order_release);
    }
}

static int changed_error(struct sl_snapfile_watch *w, const char *during, sl_errbuf *e)
{
    char why[sizeof w->what + 64];
    switch (atomic_load_explicit(&w->state, memory_order_acquire)) {
    case WATCH_STAT: snprintf(why, sizeof why, "%s", w->what); break;
    case WATCH_SIGBUS:
        snprintf(why, sizeof why, "no page at file offset 0x%" PRIx64 ": truncated, or unreadable",
                 atomic_load(&w->lost_off));
        break;
    default: snprintf(why, sizeof why, "changed"); break;
    }
    /* The path's tail names the file best when it does not all fit. */
    size_t n = strlen(w->path);
    const char *tail = n > 96 ? w->path + n - 93 : w->path;
    char p[100]; /* a parent's name is a child file's bytes */
    sl_err_printable(tail, p, sizeof p);
    return sl_err(e, SL_ECHANGED, "snapshot file %s%s%s%s changed while loaded (%s)%s%s: files must not change "
                  "while loaded; load it again",
                  *p ? "'" : "", tail != w->path ? "..." : "", p, *p ? "'" : "", why, during ? ", " : "",
                  during ? during : "");
}

/* A child is as loaded when its file and every file of its chain are. */
int sl_snapfile_check(const sl_snapshot *s, const char *during, sl_errbuf *e)
{
    struct sl_snapfile_watch *w = s ? s->file : NULL;
    if (!w)
        return 0;
    if (s->chain_parent) {
        int rc = sl_snapfile_check(s->chain_parent, during, e);
        if (rc)
            return rc;
    }
    if (atomic_load_explicit(&w->state, memory_order_acquire) == WATCH_OK) {
        struct stat now;
        char what[sizeof w->what];
        if (fstat(w->fd, &now) != 0)
            snprintf(what, sizeof what, "fstat failed: %s", strerror(errno));
        else if (!file_differs(&w->at_load, &now, what, sizeof what))
            return 0;
        mark_changed(w, what);
    }
    return changed_error(w, during, e);
}

bool sl_snapfile_lost(const sl_snapshot *s)
{
    for (; s && s->file; s = s->chain_parent)
        if (atomic_load_explicit(&s->file->state, memory_order_acquire) != WATCH_OK)
            return true;
    return false;
}

const char *sl_snapfile_path(const sl_snapshot *s)
{
    return s && s->file ? s->file->path : NULL;
}

const sl_snapshot *sl_snapfile_ancestor(const sl_snapshot *s, unsigned level)
{
    while (s && level--)
        s = s->chain_parent;
    return s;
}

int sl_snapfile_fd(const sl_snapshot *s)
{
    return s && s->file ? s->file->fd : -1;
}

/* ---- the SIGBUS registry ----
 * Every loaded file's mapping, in slots the handler reads without a lock:
 * each slot is a seqlock (odd sequence: being written), chunks are appended
 * and never freed. Writers hold slots_lock. */

#define SLOTS_PER_CHUNK 64

struct watch_slot {
    atomic_uint seq;
    atomic_uintptr_t start, end;
    _Atomic(struct sl_snapfile_watch *) w;
};

typedef struct slot_chunk {
    watch_slot slot[SLOTS_PER_CHUNK];
    _Atomic(struct slot_chunk *) next;
} slot_chunk;

static slot_chunk slots_first;
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t sigbus_once = PTHREAD_ONCE_INIT;
static struct sigaction sigbus_prev;

static void slot_write(watch_slot *sl, uintptr_t start, uintptr_t end, struct sl_snapfile_watch *w)
{
    unsigned q = atomic_load_explicit(&sl->seq, memory_order_relaxed);
    atomic_store_explicit(&sl->seq, q + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&sl->start, start, memory_order_relaxed);
    atomic_store_explicit(&sl->end, end, memory_order_relaxed);
    atomic_store_explicit(&sl->w, w, memory_order_relaxed);
    atomic_store_explicit(&sl->seq, q + 2, memory_order_release);
}

/* The watch whose mapping holds addr, with its bounds; async-signal-safe. */
static struct sl_snapfile_watch *slot_find(uintptr_t addr, uintptr_t *start, uintptr_t *end)
{
    for (slot_chunk *c = &slots_first; c; c = atomic_load_explicit(&c->next, memory_order_acquire))
        for (unsigned i = 0; i < SLOTS_PER_CHUNK; i++) {
            watch_slot *sl = &c->slot[i];
            for (int tries = 0; tries < 1000; tries++) {
                unsigned q = atomic_load_explicit(&sl->seq, memory_order_acquire);
                if (q & 1)
                    continue;
                uintptr_t a = atomic_load_explicit(&sl->start, memory_order_relaxed);
                uintptr_t b = atomic_load_explicit(&sl->end, memory_order_relaxed);
                struct sl_snapfile_watch *w = atomic_load_explicit(&sl->w, memory_order_relaxed);
                atomic_thread_fence(memory_order_acquire);
                if (atomic_load_explicit(&sl->seq, memory_order_relaxed) != q)
                    continue;
                if (w && addr >= a && addr < b) {
                    *start = a;
                    *end = b;
                    return w;
                }
                break;
            }
        }
    return NULL;
}

/* What the handler before ours would have done. */
static void sigbus_chain(int sig, siginfo_t *si, void *uc)
{
    const struct sigaction *p = &sigbus_prev;
    if (p->sa_flags & SA_SIGINFO) {
        if (p->sa_sigaction) {
            p->sa_sigaction(sig, si, uc);
            return;
        }
    } else if (p->sa_handler == SIG_IGN) {
        if (si->si_code <= 0) /* sent by a process, and ignored; a fault cannot be */
            return;
    } else if (p->sa_handler != SIG_DFL) {
        p->sa_handler(sig);
        return;
    }
    /* The default action, terminate with a core dump: restore it and let the
     * signal come again (a fault repeats when we return; a sent one is
     * raised, pending until this handler returns). */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGBUS, &dfl, NULL);
    if (si->si_code <= 0)
        raise(SIGBUS);
}

/* A read of a page that a loaded file lost: map zeros from that page to the
 * end of the mapping (the file ends before it: truncated; or it could not
 * be read), mark the snapshot changed, and let the read go on. Everything
 * here is async-signal-safe (the raw mmap system call, atomics). */
static void sigbus_handler(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    uintptr_t addr = (uintptr_t)si->si_addr, start, end;
    struct sl_snapfile_watch *w = si->si_code == BUS_ADRERR ? slot_find(addr, &start, &end) : NULL;
    if (w) {
        uintptr_t page = addr & ~(uintptr_t)(SL_PAGE_SIZE - 1);
        long r = syscall(SYS_mmap, (void *)page, (size_t)(end - page), PROT_READ,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0L);
        if (r != -1) {
            int expect = WATCH_OK;
            atomic_store(&w->lost_off, (uint64_t)(page - start));
            atomic_compare_exchange_strong(&w->state, &expect, WATCH_SIGBUS);
            errno = saved;
            return;
        }
    }
    errno = saved;
    sigbus_chain(sig, si, uc);
}

static void sigbus_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = sigbus_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    /* The previous action is known before ours can run. */
    if (sigaction(SIGBUS, NULL, &sigbus_prev) == 0)
        sigaction(SIGBUS, &sa, NULL);
}

static int watch_register(struct sl_snapfile_watch *w, uintptr_t start, uintptr_t end, watch_slot **out,
                          sl_errbuf *e)
{
    pthread_once(&sigbus_once, sigbus_install);
    pthread_mutex_lock(&slots_lock);
    slot_chunk *c = &slots_first, *last = c;
    watch_slot *free_slot = NULL;
    for (; c && !free_slot; last = c, c = atomic_load_explicit(&c->next, memory_order_acquire))
        for (unsigned i = 0; i < SLOTS_PER_CHUNK && !free_slot; i++)
            if (!atomic_load_explicit(&c->slot[i].w, memory_order_relaxed))
                free_slot = &c->slot[i];
    if (!free_slot) {
        slot_chunk *n = calloc(1, sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&slots_lock);
            return sl_err(e, SL_ENOMEM, "out of memory");
        }
        atomic_store_explicit(&last->next, n, memory_order_release);
        free_slot = &n->slot[0];
    }
    slot_write(free_slot, start, end, w);
    *out = free_slot;
    pthread_mutex_unlock(&slots_lock);
    return 0;
}

void sl_snapfile_release(sl_snapshot *s)
{
    struct sl_snapfile_watch *w = s->file;
    if (!w)
        return;
    pthread_mutex_lock(&slots_lock);
    slot_write(w->slot, 0, 0, NULL);
    if (w->blob_slot)
        slot_write(w->blob_slot, 0, 0, NULL);
    pthread_mutex_unlock(&slots_lock);
    close(w->fd);
    free(w);
    s->file = NULL;
}

int sl_snapfile_watch(sl_snapshot *s, int fd, const char *path, const struct stat *at_load, sl_errbuf *e)
{
    size_t plen = path ? strlen(path) : 0;
    struct sl_snapfile_watch *w = calloc(1, sizeof *w + plen + 1);
    if (!w)
        return sl_err(e, SL_ENOMEM, "out of memory");
    memcpy(w->path, path ? path : "", plen + 1);
    w->at_load = *at_load;
    w->map_start = (uintptr_t)s->map_base;
    w->map_end = w->map_start + ((s->map_len + SL_PAGE_SIZE - 1) & SL_PAGE_MASK);
    atomic_init(&w->state, WATCH_OK);
    atomic_init(&w->lost_off, 0);
    w->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (w->fd < 0) {
        int err = errno;
        free(w);
        return sl_err(e, SL_EIO, "snapshot file: cannot keep a descriptor of it: %s", strerror(err));
    }
    /* The file mapped must be the file validated. */
    struct stat now;
    char what[sizeof w->what];
    if (fstat(w->fd, &now) != 0 || file_differs(at_load, &now, what, sizeof what)) {
        close(w->fd);
        free(w);
        return sl_err(e, SL_EIO, "snapshot file: the file changed while loading");
    }
    int rc = watch_register(w, w->map_start, w->map_end, &w->slot, e);
    if (rc) {
        close(w->fd);
        free(w);
        return rc;
    }
    s->file = w;
    return 0;
}

void sl_snapfile_unwatch_blob(sl_snapshot *s)
{
    struct sl_snapfile_watch *w = s->file;
    if (!w || !w->blob_slot)
        return;
    pthread_mutex_lock(&slots_lock);
    slot_write(w->blob_slot, 0, 0, NULL);
    pthread_mutex_unlock(&slots_lock);
    w->blob_slot = NULL;
}

int sl_snapfile_watch_blob(sl_snapshot *s, sl_errbuf *e)
{
    struct sl_snapfile_watch *w = s->file;
    if (!w || w->blob_slot || !s->mem)
        return sl_err(e, SL_EINVAL, "internal: no file, or its blob is already watched");
    uintptr_t start = (uintptr_t)s->mem;
    return watch_register(w, start, start + s->mem_size, &w->blob_slot, e);
}
