/* Learning a parent of incremental takes (snapinc.h): compacting P as
 * restored and unchanged must reproduce P byte for byte, and the trace of
 * that compaction says, for every leaf, which table entry maps which page
 * in which walk order. A P that compaction does not reproduce (a file
 * written by something else, say) is never a parent. */
#include "snapinc_prep.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fileio.h"
#include "pt_owners.h"

void sl_incprep_free(struct sl_incprep *p)
{
    if (!p)
        return;
    if (p->base && atomic_fetch_sub(&p->base->refs, 1) == 1) {
        close(p->base->fd);
        free(p->base);
    }
    sl_hashtree_free(p->tree);
    free(p->priv);
    free(p->tab);
    free(p->refs);
    free(p);
}

/* ---- learning a parent ---- */

typedef struct learner {
    struct sl_incprep *p;
    uint64_t pt_gpa;
    unsigned n_roots, leaf_depth, esz;
    uint32_t next_ord;
    bool bad;
} learner;

static void learn_tables(void *arg, const sl_pt_owners *reached)
{
    learner *l = arg;
    for (uint64_t t = 0; t < l->p->n_pt; t++) {
        const sl_pt_owner *o = sl_pt_owners_get(reached, l->pt_gpa + t * SL_PAGE_SIZE);
        if (!o) { /* a table page no space reaches: compaction would drop it */
            l->bad = true;
            return;
        }
        inc_tab *tb = &l->p->tab[t];
        tb->kind = o->root >= l->n_roots ? TAB_WINDOW : o->depth == l->leaf_depth ? TAB_LEAF : TAB_NONLEAF;
        tb->va = o->va;
    }
}

static void learn_piece(void *arg, uint64_t entry, uint64_t size, uint64_t gva, uint64_t slot, bool first,
                        bool cow)
{
    learner *l = arg;
    struct sl_incprep *p = l->p;
    uint64_t t = (entry - l->pt_gpa) / SL_PAGE_SIZE, idx = (entry % SL_PAGE_SIZE) / l->esz;
    if (l->bad || size != SL_PAGE_SIZE || entry < l->pt_gpa || t >= p->n_pt || slot >= p->n_vis ||
        p->tab[t].kind != TAB_LEAF || gva != p->tab[t].va + idx * SL_PAGE_SIZE ||
        (p->refs[slot] & REF_MAX) == REF_MAX) {
        l->bad = true;
        return;
    }
    if (!p->tab[t].ord)
        p->tab[t].ord = ++l->next_ord;
    p->tab[t].pieces++;
    p->refs[slot]++;
    if (first && cow)
        p->refs[slot] |= REF_COW;
}

/* A memfd holding len bytes of src: the base later takes map privately. */
static int base_fd(const uint8_t *src, uint64_t len)
{
    int fd = memfd_create("sandlet-snapshot", MFD_CLOEXEC);
    sl_errbuf e;
    if (fd >= 0 && sl_file_write_all(fd, src, len, "a parent's blob", &e) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Compacts P as restored and unchanged (its tables in an otherwise empty
 * scratch), tracing the walk into p; true when that reproduced P. */
static bool learn_by_compacting(struct sl_incprep *p, const sl_snapshot *P, const sl_layout *lay)
{
    uint64_t pt_off = lay->pt_gpa - lay->scratch_gpa;
    if (lay->pt_gpa < lay->scratch_gpa || pt_off > lay->scratch_size || lay->scratch_size - pt_off < P->pt_size)
        return false;
    uint8_t *scratch = mmap(NULL, lay->scratch_size, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (scratch == MAP_FAILED)
        return false;
    memcpy(scratch + pt_off, P->mem + P->visible_size, P->pt_size);
    learner l = {.p = p, .pt_gpa = lay->pt_gpa, .n_roots = P->n_roots, .leaf_depth = sl_pt_levels(P->arch) - 1,
                 .esz = P->arch == SL_ARCH_I686 ? 4 : 8};
    sl_compact_trace tr = {.arg = &l, .piece = learn_piece, .tables = learn_tables};
    sl_guest_state st = {.layout = lay, .snap_mem = P->mem, .snap_size = P->visible_size, .scratch = scratch,
                         .roots = P->roots, .n_roots = P->n_roots, .cur_root = P->cur_root,
                         .parent = P->hash, .sregs = P->sregs, .sregs_len = P->sregs_len, .trace = &tr,
                         .family = P->family, .generation = P->generation, .next_kind = SL_NEXT_CALL};
    sl_snapshot *q = NULL;
    sl_errbuf e;
    memset(&e, 0, sizeof e);
    int rc = sl_snapshot_from_memory(&q, &st, &e);
    munmap(scratch, lay->scratch_size);
    bool ok = !rc && !l.bad && q->mem_size == P->mem_size && q->visible_size == P->visible_size &&
              memcmp(q->hash, P->hash, SL_HASH_LEN) == 0 && memcmp(q->mem, P->mem, P->mem_size) == 0 &&
              memcmp(q->roots, P->roots, sizeof P->roots) == 0;
    if (ok) {
        p->stats = q->stats;
        if (!P->tree) {
            p->tree = q->tree;
            q->tree = NULL;
        }
    }
    if (!rc)
        sl_snapshot_free(q);
    return ok;
}

static struct sl_incprep *learn(const sl_snapshot *P, const sl_layout *lay)
{
    struct sl_incprep *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->layout = *lay;
    if (P->n_regions || !P->sregs_len || !P->n_roots || P->visible_size % SL_PAGE_SIZE ||
        P->pt_size % SL_PAGE_SIZE || P->mem_size != P->visible_size + P->pt_size || !P->visible_size)
        return p;
    p->n_vis = P->visible_size / SL_PAGE_SIZE;
    p->n_pt = P->pt_size / SL_PAGE_SIZE;
    if (!(p->tab = calloc(p->n_pt, sizeof *p->tab)) || !(p->refs = calloc(p->n_vis, sizeof *p->refs)))
        return p;
    if (!learn_by_compacting(p, P, lay))
        return p;
    for (uint64_t i = 0; i < p->n_vis; i++)
        if (!(p->refs[i] & REF_MAX)) /* every page mapped: the blob is dense, as compaction makes it */
            return p;
    if (!(p->base = malloc(sizeof *p->base)))
        return p;
    atomic_init(&p->base->refs, 1);
    if ((p->base->fd = base_fd(P->mem, P->mem_size)) < 0) {
        free(p->base);
        p->base = NULL;
        return p;
    }
    p->base_pages = P->mem_size / SL_PAGE_SIZE;
    p->ok = true;
    return p;
}

/* Learning takes about a full take, so parents learn under locks of their
 * own: a few, picked by address, rather than one for the process. */
#define LEARN_LOCKS 16
static pthread_mutex_t learn_lock[LEARN_LOCKS] = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER};

struct sl_incprep *sl_incprep_of(sl_snapshot *P, const sl_layout *lay)
{
    struct sl_incprep *p = atomic_load_explicit(&P->inc, memory_order_acquire);
    if (p)
        return p;
    pthread_mutex_t *lock = &learn_lock[((uintptr_t)P >> 6) % LEARN_LOCKS];
    pthread_mutex_lock(lock);
    if (!(p = atomic_load_explicit(&P->inc, memory_order_acquire)) && (p = learn(P, lay)))
        atomic_store_explicit(&P->inc, p, memory_order_release);
    pthread_mutex_unlock(lock);
    return p;
}
