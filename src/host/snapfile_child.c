/* Saving a child file (docs/snapshot-format.md §9): each page of the blob
 * becomes a run into the file of the chain that holds it, or one of the
 * child's own pages.
 *
 * Two ways to know a chain file holds a page. A page the sandbox did not
 * touch since it ran on the parent (compaction's `kept` bits, valid when
 * the parent file is the snapshot it ran on) is the parent's page at the
 * same offset: it is neither read nor hashed, and its run points where the
 * parent's own run points. Every other page is hashed alone and looked up
 * in the chain files' content indexes and among the child's own pages so
 * far, and taken from where the same bytes are (compared, not trusted). So
 * a child costs what changed, and identical pages are shared even when
 * they moved or come from an unrelated snapshot. */
#include "snapfile.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "le.h"
#include "regfile.h"
#include "snapfile_index.h"
#include "snapfile_save.h"
#include "snapshot_impl.h" /* the file codec reads and builds the struct */
#include "u64map.h"

typedef struct child {
    const sl_snapshot *s;
    const sl_snapshot *parent; /* the parent file, loaded with its chain */
    bool use_kept;
    uint64_t parent_pages;
    sl_snaprun *runs;
    uint64_t n_runs, cap_runs;
    uint64_t *own; /* blob pages stored in the child, in file order */
    uint8_t *own_hash;
    uint64_t n_own, cap_own;
    sl_u64map own_by_hash; /* first 8 bytes of a page's hash -> own page + 1 */
    /* An index built here for a chain file that has none (a full file),
     * by level: only when no page is known kept (an unrelated parent). */
    uint8_t *built[SL_CHAIN_MAX + 1];
    sl_errbuf *e;
} child;

static bool grow(void **p, uint64_t *cap, uint64_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    uint64_t ncap = *cap ? *cap * 2 : 256;
    while (ncap < need)
        ncap *= 2;
    void *np = realloc(*p, ncap * elem);
    if (!np)
        return false;
    *p = np;
    *cap = ncap;
    return true;
}

/* Page `page` of the blob comes from page src of the file `level` up. */
static int add(child *c, uint64_t page, uint64_t src, uint32_t level)
{
    sl_snaprun *last = c->n_runs ? &c->runs[c->n_runs - 1] : NULL;
    if (last && last->level == level && last->src + last->count == src && last->page + last->count == page &&
        last->count < UINT32_MAX) {
        last->count++;
        return 0;
    }
    if (!grow((void **)&c->runs, &c->cap_runs, c->n_runs + 1, sizeof *c->runs))
        return sl_err(c->e, SL_ENOMEM, "out of memory");
    c->runs[c->n_runs++] = (sl_snaprun){.page = page, .src = src, .count = 1, .level = level};
    return 0;
}

static bool kept(const child *c, uint64_t j)
{
    return c->use_kept && j < c->s->kept_pages && j < c->parent_pages && (c->s->kept[j / 64] >> (j % 64) & 1);
}

/* Where page pj of the parent's blob is: page *src of the own pages of the
 * file *level steps up from the child (1: the parent itself). */
static bool locate(const sl_snapshot *p, uint64_t pj, uint64_t *src, uint32_t *level)
{
    if (!p->runs) {
        *src = pj, *level = 1;
        return pj < p->own_pages;
    }
    uint64_t lo = 0, hi = p->n_runs; /* the run that holds pj: the runs tile the blob in order */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (p->runs[mid].page + p->runs[mid].count <= pj)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo >= p->n_runs || pj < p->runs[lo].page)
        return false;
    *src = p->runs[lo].src + (pj - p->runs[lo].page);
    *level = p->runs[lo].level + 1;
    return true;
}

/* The file `level` steps up from the child (1: the parent). */
static const sl_snapshot *up(const child *c, uint32_t level)
{
    return level ? sl_snapfile_ancestor(c->parent, level - 1) : NULL;
}

/* The parent's page j, unchanged: where the parent has it. */
static int add_kept(child *c, uint64_t j)
{
    uint64_t src;
    uint32_t level;
    if (!locate(c->parent, j, &src, &level))
        return sl_err(c->e, SL_EINVAL, "internal: page 0x%" PRIx64 " is in no run of the parent", j);
    return add(c, j, src, level);
}

/* A page the parent has byte for byte at the same place (one compare, no
 * hash): a page table, since compaction rebuilds the tables in a fixed
 * order, or a page an unrelated snapshot of the same guest has where this
 * one has it. Taking that copy, rather than any page with those bytes,
 * keeps runs long and at their own offsets (one mapping at load). */
static int same_place(child *c, uint64_t j, bool *done)
{
    *done = false;
    const sl_snapshot *s = c->s, *p = c->parent;
    uint64_t vis = s->visible_size / SL_PAGE_SIZE, pvis = p->visible_size / SL_PAGE_SIZE;
    uint64_t pj = j < vis ? j : pvis + (j - vis), src; /* visible pages, then the table area */
    uint32_t level;
    if ((j < vis && pj >= pvis) || pj >= c->parent_pages || !locate(p, pj, &src, &level))
        return 0;
    const sl_snapshot *a = up(c, level);
    if (!a || !a->own || src >= a->own_pages ||
        memcmp(a->own + src * SL_PAGE_SIZE, s->mem + j * SL_PAGE_SIZE, SL_PAGE_SIZE) != 0)
        return 0;
    *done = true;
    return add(c, j, src, level);
}

/* A page found nowhere in the chain: among the child's own pages already,
 * or a new one. */
static int add_own(child *c, uint64_t j, const uint8_t hash[SL_HASH_LEN])
{
    const uint8_t *page = c->s->mem + j * SL_PAGE_SIZE;
    uint64_t key = sl_get64(hash), *at = sl_u64map_get(&c->own_by_hash, key);
    if (at && memcmp(c->s->mem + c->own[*at - 1] * SL_PAGE_SIZE, page, SL_PAGE_SIZE) == 0)
        return add(c, j, *at - 1, 0);
    uint64_t cap = c->cap_own;
    if (!grow((void **)&c->own, &c->cap_own, c->n_own + 1, sizeof *c->own))
        return sl_err(c->e, SL_ENOMEM, "out of memory");
    if (cap != c->cap_own) {
        uint8_t *h = realloc(c->own_hash, c->cap_own * SL_HASH_LEN);
        if (!h)
            return sl_err(c->e, SL_ENOMEM, "out of memory");
        c->own_hash = h;
    }
    if (!at && !sl_u64map_put(&c->own_by_hash, key, c->n_own + 1))
        return sl_err(c->e, SL_ENOMEM, "out of memory");
    c->own[c->n_own] = j;
    memcpy(c->own_hash + c->n_own * SL_HASH_LEN, hash, SL_HASH_LEN);
    return add(c, j, c->n_own++, 0);
}

/* A full file has no index (its bytes from the blob on are what its
 * identity hashes): a child of a snapshot it is unrelated to hashes that
 * file's pages once, here. A child of the snapshot its sandbox ran on
 * knows its unchanged pages without that, and matches the rest against
 * the indexes the chain has: its cost stays with what changed. */
static int index_of(child *c, const sl_snapshot *a, uint32_t level)
{
    if (c->built[level])
        return 0;
    return sl_snapindex_build(a->own, NULL, a->own_pages, NULL, &c->built[level], c->e);
}

static int add_by_content(child *c, uint64_t j)
{
    const uint8_t *page = c->s->mem + j * SL_PAGE_SIZE;
    uint8_t hash[SL_HASH_LEN];
    sl_hash_bytes(page, SL_PAGE_SIZE, hash);
    uint32_t level = 1;
    for (const sl_snapshot *a = c->parent; a && level <= SL_CHAIN_MAX; a = a->chain_parent, level++) {
        const uint8_t *index = a->index;
        uint64_t found, n = a->n_index;
        if (!index && !c->use_kept) {
            int rc = index_of(c, a, level);
            if (rc)
                return rc;
            index = c->built[level], n = a->own_pages;
        }
        if (sl_snapindex_find(index, n, a->own, a->own_pages, hash, page, &found))
            return add(c, j, found, level);
    }
    return add_own(c, j, hash);
}

static int plan_pages(child *c)
{
    uint64_t pages = c->s->mem_size / SL_PAGE_SIZE;
    int rc = 0;
    for (uint64_t j = 0; !rc && j < pages; j++) {
        bool done = false;
        if (kept(c, j))
            rc = add_kept(c, j);
        else if (!(rc = same_place(c, j, &done)) && !done)
            rc = add_by_content(c, j);
    }
    return rc;
}

/* The parent file and its chain, loaded as sl_snapshot_load_chain would. */
static int load_parent(const char *parent_path, sl_snapshot **out, sl_errbuf *e)
{
    sl_errbuf pe = {{0}};
    int fd = sl_open_regular(parent_path, "snapshot file", &pe);
    if (fd < 0)
        return sl_err(e, SL_EPARENT, "parent: %s", pe.msg);
    sl_snapfile_chain chain = {0};
    int rc = sl_snapfile_load_chained(out, fd, parent_path, 0, &chain, NULL, &pe);
    close(fd);
    return rc ? sl_err(e, SL_EPARENT, "parent file '%s': %s", parent_path, pe.msg) : 0;
}

/* The parent's file name, recorded for finding it again next to the
 * child; none when it is no plain name the format can hold. */
static const char *name_of(const char *path)
{
    const char *slash = strrchr(path, '/'), *n = slash ? slash + 1 : path;
    size_t len = strlen(n);
    return len && len <= SL_SNAPFILE_NAME_MAX && strcmp(n, ".") && strcmp(n, "..") ? n : NULL;
}

static int write_child(child *c, const char *parent_path, const char *path, sl_progress_fn progress, void *user)
{
    uint8_t *runs = malloc(c->n_runs * SL_SNAPFILE_RUN_SIZE), *index = NULL;
    if (!runs)
        return sl_err(c->e, SL_ENOMEM, "out of memory");
    for (uint64_t i = 0; i < c->n_runs; i++) {
        uint8_t *r = runs + i * SL_SNAPFILE_RUN_SIZE;
        sl_put64(r, c->runs[i].page);
        sl_put64(r + 8, c->runs[i].src);
        sl_put32(r + 16, c->runs[i].count);
        sl_put32(r + 20, c->runs[i].level);
    }
    int rc = sl_snapindex_build(c->s->mem, c->own, c->n_own, c->own_hash, &index, c->e);
    if (!rc) {
        sl_snapfile_out o = {.s = c->s,
                             .plan = {.own_size = c->n_own * SL_PAGE_SIZE,
                                      .runs_size = c->n_runs * SL_SNAPFILE_RUN_SIZE,
                                      .index_size = c->n_own * SL_SNAPFILE_INDEX_ENTRY,
                                      .child = 1,
                                      .parent_name = name_of(parent_path)},
                             .own = c->own,
                             .runs = runs,
                             .index = index,
                             .progress = progress,
                             .user = user};
        memcpy(o.plan.parent, c->parent->hash, SL_HASH_LEN);
        o.plan.parent_layout = c->parent->layout_pin;
        o.plan.other_parent = !c->s->has_parent || memcmp(c->s->parent, c->parent->hash, SL_HASH_LEN) != 0;
        rc = sl_snapfile_write(&o, path, c->e);
    }
    free(index);
    free(runs);
    return rc;
}

/* What a child of parent written to path may not be. */
static int check_child(const sl_snapshot *s, const sl_snapshot *parent, const char *parent_path, const char *path,
                       sl_errbuf *e)
{
    int rc = sl_snapfile_check_target(parent, path, e);
    if (rc)
        return rc;
    if (parent->depth + 1 > SL_CHAIN_MAX)
        return sl_err(e, SL_ERANGE, "a child of '%s' would make a chain of %u child files, more than %u: save it in "
                      "full or flatten the parent", parent_path, parent->depth + 1, SL_CHAIN_MAX);
    /* A chain names each snapshot once (load refuses a loop). */
    for (const sl_snapshot *a = parent; a; a = a->chain_parent)
        if (memcmp(s->hash, a->hash, SL_HASH_LEN) == 0)
            return sl_err(e, SL_EINVAL, "the snapshot is already in the chain of '%s' (%s): a file cannot be its own "
                          "descendant; it is that file", parent_path, a == parent ? "the parent itself" : "an ancestor");
    return 0;
}

int sl_snapfile_save_child(const sl_snapshot *s, const char *parent_path, const char *path, sl_progress_fn progress,
                           void *user, sl_errbuf *e)
{
    int rc = sl_snapfile_check(s, "before it was saved", e);
    if (rc)
        return rc;
    sl_snapshot *parent;
    if ((rc = load_parent(parent_path, &parent, e)))
        return rc;
    child c = {.s = s, .parent = parent, .parent_pages = parent->mem_size / SL_PAGE_SIZE, .e = e};
    c.use_kept = s->kept && s->has_parent && memcmp(s->parent, parent->hash, SL_HASH_LEN) == 0;
    sl_u64map_init(&c.own_by_hash);
    rc = check_child(s, parent, parent_path, path, e);
    /* The chain's pages compared while planning must be what its files
     * still hold (a page a file lost read as zeros). */
    if (!rc && !(rc = plan_pages(&c)) && !(rc = sl_snapfile_check(parent, "while a child of it was planned", e)))
        rc = write_child(&c, parent_path, path, progress, user);
    sl_u64map_free(&c.own_by_hash);
    for (unsigned i = 0; i <= SL_CHAIN_MAX; i++)
        free(c.built[i]);
    free(c.runs);
    free(c.own);
    free(c.own_hash);
    sl_snapshot_free(parent);
    return rc;
}
