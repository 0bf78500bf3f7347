/* A child file's chain (docs/snapshot-format.md §9): finding the parent
 * file by its identity, loading it (and so, recursively, its own parent),
 * checking the child's runs against the files they name, and mapping them
 * into one reservation that becomes the child's blob. Time grows with the
 * number of runs and files, never with their sizes; no page is read.
 *
 * Every file of the chain is hostile on its own: a parent is taken only
 * when its header names the identity the child needs, the loads below it
 * check it as any file, and a chain that names an identity twice or holds
 * more than SL_CHAIN_MAX children is refused before it is followed. */
#include "snapfile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "regfile.h"
#include "snapshot_impl.h" /* the file codec reads and builds the struct */

#define TRIED_MAX 1024 /* bytes of "where we looked" kept for the message */

/* One parent search: what it needs and what it saw, for the message. */
typedef struct search {
    const uint8_t *want; /* the identity the child names */
    uint64_t want_layout; /* and which file of it (sl_snapfile_layout_pin; 0: a full file) */
    char want_hex[2 * SL_HASH_LEN + 1];
    char name[256];      /* the name the child recorded, or "", shown safely */
    const char *raw_name; /* the same as recorded, for opening */
    char tried[TRIED_MAX];
    size_t tried_len;
    int failed;          /* the first candidate that failed other than by absence or mismatch */
    char failed_msg[SL_ERRMSG_MAX];
} search;

/* Adds "PATH WHY" to what the search tried: the path shown safely (a name
 * a child recorded is the file's bytes), the rest as printf formats it. */
static void note(search *q, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(search *q, const char *path, const char *fmt, ...)
{
    size_t left = sizeof q->tried - q->tried_len;
    if (left <= 1)
        return;
    char shown[4096];
    int n = snprintf(q->tried + q->tried_len, left, "%s%s ", q->tried_len ? "; " : "",
                     sl_err_printable(path, shown, sizeof shown));
    if (n > 0 && (size_t)n < left) {
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(q->tried + q->tried_len + n, left - (size_t)n, fmt, ap);
        va_end(ap);
        n = m > 0 ? n + m : n;
    }
    if (n > 0)
        q->tried_len += (size_t)n < left ? (size_t)n : left - 1;
}

/* A descriptor of the file at path when it is a snapshot file whose header
 * names the identity wanted (one header read; the load that follows, from
 * this descriptor, checks it all); else -1, and why is noted unless the
 * file is simply not there. */
static int open_wanted(search *q, const char *path)
{
    sl_errbuf e;
    int fd = sl_open_regular(path, "snapshot file", &e);
    if (fd < 0) {
        struct stat st;
        if (fd == SL_ENOTFOUND)
            return -1;
        if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
            note(q, path, "is not a regular file");
            return -1;
        }
        if (!q->failed) { /* out of descriptors, no permission, ...: that is the error, if nothing is found */
            q->failed = fd;
            snprintf(q->failed_msg, sizeof q->failed_msg, "%s", e.msg);
        }
        note(q, path, "cannot be opened");
        return -1;
    }
    uint8_t hdr[SL_SNAPFILE_HEADER_SIZE];
    ssize_t n = pread(fd, hdr, sizeof hdr, 0);
    if (n != (ssize_t)sizeof hdr || memcmp(hdr, SL_SNAPFILE_MAGIC, 8) != 0) {
        note(q, path, "is not a snapshot file");
    } else if (memcmp(hdr + SF_IDENTITY, q->want, SL_HASH_LEN) != 0) {
        char hex[2 * SL_HASH_LEN + 1];
        sl_hash_hex(hdr + SF_IDENTITY, hex);
        note(q, path, "is snapshot %.16s..., another", hex);
    } else if (!(hdr[SF_LINEAGE_FLAGS] & SL_SNAPFILE_CHILD) != !q->want_layout) {
        note(q, path, "is that snapshot saved %s, not as the file the child was saved against",
             q->want_layout ? "in full" : "as a child");
    } else {
        return fd;
    }
    close(fd);
    return -1;
}

/* dir/name into buf; false when it does not fit. */
static bool join(char *buf, size_t len, const char *dir, size_t dir_len, const char *name)
{
    int n = snprintf(buf, len, "%.*s%s%s", (int)dir_len, dir, dir_len && dir[dir_len - 1] != '/' ? "/" : "", name);
    return n > 0 && (size_t)n < len;
}

/* In the directory dir[0..len): the recorded name, then "<identity>.snap". */
static int try_dir(search *q, const char *dir, size_t len, char *out, size_t out_len)
{
    char by_id[2 * SL_HASH_LEN + 8];
    snprintf(by_id, sizeof by_id, "%s.snap", q->want_hex);
    const char *names[2] = {q->raw_name, by_id};
    for (int i = 0; i < 2; i++) {
        int fd;
        if (*names[i] && join(out, out_len, dir, len, names[i]) && (fd = open_wanted(q, out)) >= 0)
            return fd;
    }
    char d[4096];
    snprintf(d, sizeof d, "%.*s", (int)len, dir);
    note(q, d, "holds neither '%s' nor '<identity>.snap'", q->name);
    return -1;
}

/* One entry of a list: a file is taken if it is the one; a directory is
 * looked in. */
static int try_entry(search *q, const char *entry, size_t len, char *out, size_t out_len)
{
    struct stat st;
    if (!len || len >= out_len)
        return -1;
    memcpy(out, entry, len);
    out[len] = 0;
    if (stat(out, &st) != 0) {
        note(q, out, "does not exist");
        return -1;
    }
    return S_ISDIR(st.st_mode) ? try_dir(q, entry, len, out, out_len) : open_wanted(q, out);
}

/* Each ':'-separated entry of list, in order. */
static int try_list(search *q, const char *list, char *out, size_t out_len)
{
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int fd = try_entry(q, p, len, out, out_len);
        if (fd >= 0)
            return fd;
        p = end ? end + 1 : p + len;
    }
    return -1;
}

/* The parent of the child at child_path, open, its path in out: from the
 * explicit list, the child's directory, SANDLET_SNAPSHOT_PATH. */
static int find_parent(const sl_snapshot *s, const char *child_path, const char *parents, char *out, size_t out_len,
                       sl_errbuf *e)
{
    search q = {.want = s->parent, .want_layout = s->parent_layout, .raw_name = s->parent_name};
    sl_hash_hex(s->parent, q.want_hex);
    sl_err_printable(s->parent_name, q.name, sizeof q.name); /* the file's bytes */
    int fd = try_list(&q, parents, out, out_len);
    if (fd < 0 && child_path && *child_path) {
        const char *slash = strrchr(child_path, '/');
        fd = slash ? try_dir(&q, child_path, (size_t)(slash - child_path) + 1, out, out_len)
                   : try_dir(&q, ".", 1, out, out_len);
    }
    if (fd < 0)
        fd = try_list(&q, getenv("SANDLET_SNAPSHOT_PATH"), out, out_len);
    if (fd >= 0)
        return fd;
    if (q.failed)
        return sl_err(e, q.failed, "parent snapshot %.16s...: %s", q.want_hex, q.failed_msg);
    return sl_err(e, SL_EPARENT,
                  "parent snapshot %s%s%s%s not found (%s): give its path (--parent), or put it next to the child or "
                  "in SANDLET_SNAPSHOT_PATH",
                  q.want_hex, *q.name ? " ('" : "", q.name, *q.name ? "')" : "", q.tried_len ? q.tried : "no place to look");
}

/* Every run names a file of the chain and pages that file holds. */
static int check_runs(const sl_snapshot *s, sl_errbuf *e)
{
    for (uint64_t i = 0; i < s->n_runs; i++) {
        const sl_snaprun *r = &s->runs[i];
        const sl_snapshot *a = sl_snapfile_ancestor(s, r->level);
        if (!a || (r->level && !a->file))
            return sl_err(e, SL_EFORMAT, "snapshot file: run %" PRIu64 " names level %u; the chain has %u files above "
                          "this one", i, r->level, s->depth);
        if (r->src > a->own_pages || r->count > a->own_pages - r->src)
            return sl_err(e, SL_EFORMAT, "snapshot file: run %" PRIu64 " takes pages 0x%" PRIx64 "+%u of the file %u "
                          "level(s) up, which holds 0x%" PRIx64 " pages", i, r->src, r->count, r->level, a->own_pages);
    }
    return 0;
}

/* A run that takes the root's page at the same offset: stable compaction
 * keeps pages where the parent had them, so along a chain most pages are
 * the full file's at their own offset, which one mapping covers. */
static bool at_home(const sl_snapshot *s, const sl_snaprun *r, uint64_t home_pages)
{
    return r->level == s->depth && r->src == r->page && r->page + r->count <= home_pages;
}

/* The runs, each mapped from the file that holds it over a reservation of
 * the blob's size, read-only and private: the pages are the page cache's,
 * shared with every other mapping of those files. The root's pages go in
 * first, in one mapping at their own offsets; the runs that take a page
 * from anywhere else are laid over it. */
static int map_runs(sl_snapshot *s, sl_errbuf *e)
{
    uint8_t *base = mmap(NULL, s->mem_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return sl_err(e, SL_ENOMEM, "snapshot file: cannot reserve %" PRIu64 " bytes for the blob: %s", s->mem_size,
                      strerror(errno));
    s->composite = base;
    s->composite_len = s->mem_size;
    const sl_snapshot *root = sl_snapfile_ancestor(s, s->depth);
    uint64_t home = root->own_pages < s->mem_size / SL_PAGE_SIZE ? root->own_pages : s->mem_size / SL_PAGE_SIZE;
    if (home && mmap(base, (size_t)home * SL_PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_FIXED, sl_snapfile_fd(root),
                     (off_t)root->own_offset) == MAP_FAILED)
        return sl_err(e, SL_EIO, "snapshot file: mapping the chain's full file failed: %s", strerror(errno));
    for (uint64_t i = 0; i < s->n_runs; i++) {
        const sl_snaprun *r = &s->runs[i];
        if (at_home(s, r, home))
            continue;
        /* The writer merges what it can; so does the kernel, for runs
         * adjacent in the same file. */
        const sl_snapshot *a = sl_snapfile_ancestor(s, r->level);
        void *at = base + r->page * SL_PAGE_SIZE;
        if (mmap(at, (size_t)r->count * SL_PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_FIXED, sl_snapfile_fd(a),
                 (off_t)(a->own_offset + r->src * SL_PAGE_SIZE)) == MAP_FAILED)
            return errno == ENOMEM ? sl_err(e, SL_ENOMEM, "snapshot file: mapping run %" PRIu64 " of %" PRIu64 " failed:"
                                            " out of mappings (each run is one; see vm.max_map_count) or memory", i,
                                            s->n_runs)
                                   : sl_err(e, SL_EIO, "snapshot file: mapping run %" PRIu64 " failed: %s", i,
                                            strerror(errno));
    }
    s->mem = base;
    return sl_snapfile_watch_blob(s, e);
}

int sl_snapfile_check_target(const sl_snapshot *first, const char *path, sl_errbuf *e)
{
    struct stat at, f;
    if (!first || stat(path, &at) != 0)
        return 0;
    for (const sl_snapshot *a = first; a; a = a->chain_parent) {
        if (fstat(sl_snapfile_fd(a), &f) == 0 && f.st_dev == at.st_dev && f.st_ino == at.st_ino)
            return sl_err(e, SL_EINVAL, "'%s' is a file of the snapshot's own chain: saving over it would orphan the "
                          "children of that file", path);
    }
    return 0;
}

int sl_snapfile_chain_map(sl_snapshot *s, sl_errbuf *e)
{
    return s->runs && !s->composite ? map_runs(s, e) : 0;
}

void sl_snapfile_chain_unmap(sl_snapshot *s)
{
    if (!s->composite)
        return;
    sl_snapfile_unwatch_blob(s);
    munmap(s->composite, s->composite_len);
    s->composite = NULL;
    s->composite_len = 0;
    s->mem = NULL;
}

/* Loads the parent open on fd, at path, for s, one level further down the
 * chain; closes fd. */
static int load_parent(sl_snapshot *s, int fd, const char *path, unsigned flags, sl_snapfile_chain *chain,
                       sl_errbuf *e)
{
    sl_errbuf pe = {{0}};
    sl_snapshot *p = NULL;
    int rc = sl_snapfile_load_chained(&p, fd, path, flags, chain, NULL, &pe);
    close(fd);
    char at[4096];
    path = sl_err_printable(path, at, sizeof at); /* from here on, only in messages */
    /* The deepest failure names its own file; the levels above add nothing
     * a message of SL_ERRMSG_MAX bytes has room for. */
    if (rc && strncmp(pe.msg, "parent ", 7) == 0)
        return sl_err(e, rc, "%s", pe.msg);
    if (rc)
        return sl_err(e, rc, "parent file '%s': %s", path, pe.msg);
    /* The header named the identity; the load may have read another file
     * if the path was replaced in between. */
    if (memcmp(p->hash, s->parent, SL_HASH_LEN) != 0) {
        char want[2 * SL_HASH_LEN + 1], got[2 * SL_HASH_LEN + 1];
        sl_hash_hex(s->parent, want);
        sl_hash_hex(p->hash, got);
        sl_snapshot_free(p);
        return sl_err(e, SL_EPARENT, "parent file '%s' is snapshot %s, not %s, the one this child needs", path, got,
                      want);
    }
    if (p->layout_pin != s->parent_layout) {
        sl_snapshot_free(p);
        return sl_err(e, SL_EPARENT, "parent file '%s' is the snapshot this child needs saved another way (re-saved or "
                      "flattened): the child needs the file it was saved against", path);
    }
    s->chain_parent = p;
    s->depth = p->depth + 1;
    return 0;
}

int sl_snapfile_chain_load(sl_snapshot *s, const char *path, unsigned flags, sl_snapfile_chain *chain, sl_errbuf *e)
{
    /* This child joins the chain: it must be new to it, and fit. */
    if (chain->children >= SL_CHAIN_MAX)
        return sl_err(e, SL_EFORMAT, "snapshot file: the chain holds more than %u child files", SL_CHAIN_MAX);
    for (unsigned i = 0; i < chain->children; i++)
        if (memcmp(chain->seen[i], s->hash, SL_HASH_LEN) == 0 || memcmp(chain->seen[i], s->parent, SL_HASH_LEN) == 0)
            return sl_err(e, SL_EFORMAT, "snapshot file: the chain loops (a snapshot is its own ancestor)");
    if (memcmp(s->hash, s->parent, SL_HASH_LEN) == 0)
        return sl_err(e, SL_EFORMAT, "snapshot file: the chain loops (the child names itself as its parent)");
    memcpy(chain->seen[chain->children++], s->hash, SL_HASH_LEN);
    bool asked = chain->children == 1; /* the file loaded, not one of its ancestors */
    char parent_path[4096];
    int fd = find_parent(s, path, chain->parents, parent_path, sizeof parent_path, e), rc;
    if (fd < 0)
        return fd;
    if ((rc = load_parent(s, fd, parent_path, flags, chain, e)) || (rc = check_runs(s, e)))
        return rc;
    return asked ? map_runs(s, e) : 0;
}
