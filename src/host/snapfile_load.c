/* Loading a snapshot file: validate everything before the blob (O(1) in the
 * file's size), then map the blob straight from the file and watch it; and
 * verify, which also recomputes the identity over every byte. */
#include "snapfile.h"

#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "family.h"
#include "fileio.h"
#include "snapshot_impl.h" /* the file codec reads and builds the struct */

#define WHAT "snapshot file"

/* The file's status, with what load refuses before reading a byte. */
static int stat_file(int fd, const char *path, unsigned flags, struct stat *st, sl_errbuf *e)
{
    if (fstat(fd, st) < 0)
        return sl_err(e, SL_EIO, "snapshot file: fstat: %s", strerror(errno));
    if (!S_ISREG(st->st_mode))
        return sl_err(e, SL_EINVAL, "snapshot file: not a regular file");
    /* A loaded file must not change (§8): one that anybody may write could.
     * A file without a name (a memfd, an unlinked file) is written only
     * through descriptors its owner hands out, whatever its mode says. */
    if ((flags & SL_SNAPFILE_FOR_USE) && (st->st_mode & S_IWOTH) && st->st_nlink > 0)
        return sl_err(e, SL_EINVAL,
                      "snapshot file %s is world-writable (mode 0%03o): anyone could change it while it is loaded; "
                      "remove that permission (chmod o-w)",
                      path ? path : "", (unsigned)(st->st_mode & 07777));
    if ((uint64_t)st->st_size < SL_SNAPFILE_HEADER_SIZE)
        return sl_err(e, SL_EFORMAT, "snapshot file: %" PRIu64 " bytes, shorter than the %u-byte header",
                      (uint64_t)st->st_size, SL_SNAPFILE_HEADER_SIZE);
    return 0;
}

/* Reads the bytes before the blob (meta, h->blob_offset bytes), the region
 * records and a child's run table, checks the checksum over them and
 * parses them into s. */
static int parse_sections(sl_snapshot *s, int fd, const uint8_t *hdr, const sl_snapfile_header *h, sl_errbuf *e)
{
    uint8_t regions[SL_SNAPFILE_REGIONS_MAX];
    uint8_t *meta = malloc(h->blob_offset), *runs = malloc(h->runs_size ? h->runs_size : 1);
    int rc;
    if (!meta || !runs) {
        rc = sl_err(e, SL_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = sl_file_read_at(fd, meta, h->blob_offset, 0, WHAT, e)) ||
        (rc = sl_file_read_at(fd, regions, h->regions_size, h->regions_offset, WHAT, e)) ||
        (rc = sl_file_read_at(fd, runs, h->runs_size, h->runs_offset, WHAT, e)))
        goto done;
    /* The header read first (which sized everything) must be the one about
     * to be checksummed and parsed: the file could have changed in between. */
    if (memcmp(hdr, meta, SL_SNAPFILE_HEADER_SIZE) != 0) {
        rc = sl_err(e, SL_EIO, "snapshot file: the file changed while loading");
        goto done;
    }
    /* The checksum covers exactly the bytes parsed below. */
    uint8_t sum[SL_HASH_LEN];
    sl_snapfile_checksum(meta, h->blob_offset, regions, h->regions_size, runs, h->runs_size, sum);
    if (memcmp(sum, h->checksum, SL_HASH_LEN) != 0) {
        rc = sl_err(e, SL_EFORMAT, "snapshot file: header checksum mismatch (header, small sections, region "
                                   "records or runs corrupted)");
        goto done;
    }
    if ((rc = sl_snapfile_parse(s, h, meta, regions, runs, e)) == 0)
        rc = sl_family_of_layout(&s->layout, &s->family, e);
    s->layout_pin = sl_snapfile_is_child(h) ? sl_snapfile_layout_pin(h->own_size, runs, h->runs_size) : 0;
done:
    free(runs);
    free(meta);
    return rc;
}

/* Validates the file on fd without touching the blob; on success *out has
 * everything but the mapping, *h the header and *st the file as validated. */
static int parse_fd(sl_snapshot **out, int fd, const char *path, unsigned flags, sl_snapfile_header *h,
                    struct stat *st, sl_errbuf *e)
{
    uint8_t hdr[SL_SNAPFILE_HEADER_SIZE];
    int rc;
    if ((rc = stat_file(fd, path, flags, st, e)) || (rc = sl_file_read_at(fd, hdr, sizeof hdr, 0, WHAT, e)))
        return rc;
    sl_snapfile_header_decode(hdr, h);
    if ((rc = sl_snapfile_check_geometry(h, (uint64_t)st->st_size, e)))
        return rc;
    sl_snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return sl_err(e, SL_ENOMEM, "out of memory");
    atomic_store(&s->refs, 1);
    if ((rc = parse_sections(s, fd, hdr, h, e))) {
        sl_snapshot_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* Maps the whole file and watches it; a full file's blob is its own pages. */
static int map_file(sl_snapshot *s, int fd, const char *path, const sl_snapfile_header *h, const struct stat *st,
                    sl_errbuf *e)
{
    void *p = mmap(NULL, h->file_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        return sl_err(e, SL_EIO, "snapshot file: mmap of %" PRIu64 " bytes failed: %s", h->file_size,
                      strerror(errno));
    s->map_base = p;
    s->map_len = h->file_size;
    /* From here on the file is watched (a change while we looked at it is
     * caught now; a later one by every use, sl_snapfile_check). */
    int rc = sl_snapfile_watch(s, fd, path, st, e);
    if (rc)
        return rc;
    s->own = (const uint8_t *)p + h->blob_offset;
    s->own_offset = h->blob_offset;
    s->own_pages = h->own_size / SL_PAGE_SIZE;
    s->index = h->index_size ? (const uint8_t *)p + h->index_offset : NULL;
    s->n_index = h->index_size / SL_SNAPFILE_INDEX_ENTRY;
    s->mem_size = h->blob_size;
    if (!sl_snapfile_is_child(h))
        s->mem = (uint8_t *)p + h->blob_offset;
    return 0;
}

static void fill_info(const sl_snapshot *s, const sl_snapfile_header *h, sl_snapfile_info *info)
{
    if (info)
        *info = (sl_snapfile_info){.version = h->version,
                                   .file_size = h->file_size,
                                   .blob_offset = h->blob_offset,
                                   .blob_size = h->blob_size,
                                   .own_size = h->own_size,
                                   .regions_offset = h->regions_offset,
                                   .regions_size = h->regions_size,
                                   .runs_offset = h->runs_offset,
                                   .runs_size = h->runs_size,
                                   .index_offset = h->index_offset,
                                   .index_size = h->index_size,
                                   .child = sl_snapfile_is_child(h),
                                   /* where writers put it, as load always said */
                                   .sregs_offset = s->sregs_len ? SL_SNAPFILE_SREGS_AT : 0,
                                   .sregs_size = s->sregs_len};
}

int sl_snapfile_load_chained(sl_snapshot **out, int fd, const char *path, unsigned flags, sl_snapfile_chain *chain,
                             sl_snapfile_info *info, sl_errbuf *e)
{
    sl_snapfile_header h;
    sl_snapshot *s = NULL;
    struct stat st;
    *out = NULL;
    int rc = parse_fd(&s, fd, path, flags, &h, &st, e);
    if (!rc)
        rc = map_file(s, fd, path, &h, &st, e);
    /* A child's blob is its chain's: without one (inspect) it has none. */
    if (!rc && sl_snapfile_is_child(&h) && chain)
        rc = sl_snapfile_chain_load(s, path, flags, chain, e);
    if (rc) {
        sl_snapshot_free(s);
        return rc;
    }
    fill_info(s, &h, info);
    *out = s;
    return 0;
}

int sl_snapfile_load_file(sl_snapshot **out, int fd, const char *path, unsigned flags, sl_snapfile_info *info,
                          sl_errbuf *e)
{
    sl_snapfile_chain chain = {0};
    return sl_snapfile_load_chained(out, fd, path, flags, &chain, info, e);
}

int sl_snapfile_load_fd(sl_snapshot **out, int fd, sl_snapfile_info *info, sl_errbuf *e)
{
    return sl_snapfile_load_file(out, fd, NULL, 0, info, e);
}


typedef struct verify_watch {
    const sl_snapshot *s;
    sl_progress_fn progress;
    void *user;
    uint64_t total;
} verify_watch;

/* On the thread about to hash them (sl_hash_job.touch): read the pages in
 * one go, cheaper than a page fault per page, and on every hashing thread
 * at once (where MADV_POPULATE_READ is missing, the hash's own page faults
 * read them). A page the file lost is the SIGBUS handler's, whichever
 * thread reads it (snapfile_watch.c). */
static void verify_touch(void *arg, uint64_t off, uint64_t len)
{
    const verify_watch *w = arg;
#ifdef MADV_POPULATE_READ
    /* madvise takes a page-aligned start (the pieces of the blob are). */
    uintptr_t a = (uintptr_t)(w->s->mem + off) & ~(uintptr_t)(SL_PAGE_SIZE - 1);
    (void)madvise((void *)a, (size_t)((uintptr_t)(w->s->mem + off + len) - a), MADV_POPULATE_READ);
#else
    (void)w, (void)off, (void)len;
#endif
}

/* On the calling thread, once every SL_SNAPFILE_PROGRESS_CHUNK bytes hashed. */
static void verify_report(void *arg, uint64_t done)
{
    const verify_watch *w = arg;
    w->progress(w->user, done, w->total);
}

/* The identity, on every core, telling progress when asked. */
static void hash_with_progress(const sl_snapshot *s, sl_progress_fn progress, void *user, uint8_t out[SL_HASH_LEN])
{
    uint8_t tail[SL_SNAPSHOT_TAIL_MAX];
    sl_hash_job job = sl_snapshot_hash_input(s, tail);
    verify_watch w = {s, progress, user, job.blob_size + job.tail_len};
    job.touch = verify_touch;
    job.report = progress ? verify_report : NULL;
    job.every = SL_SNAPFILE_PROGRESS_CHUNK;
    job.arg = &w;
    sl_hashtree_hash(&job, NULL, out);
    if (progress)
        progress(user, w.total, w.total);
}

/* Recomputes the identity of s and compares it with the one it carries. */
static int verify_one(const sl_snapshot *s, sl_progress_fn progress, void *user, sl_errbuf *e)
{
    uint8_t id[SL_HASH_LEN];
    hash_with_progress(s, progress, user, id);
    /* A file that changed under the hash (a truncated page reads as zeros)
     * says so, rather than "corrupted". */
    int rc = sl_snapfile_check(s, "while it was verified", e);
    if (rc)
        return rc;
    if (memcmp(id, s->hash, SL_HASH_LEN) != 0) {
        char want[2 * SL_HASH_LEN + 1], got[2 * SL_HASH_LEN + 1];
        sl_hash_hex(s->hash, want);
        sl_hash_hex(id, got);
        const char *path = sl_snapfile_path(s);
        return sl_err(e, SL_EHASH, "snapshot file%s%s%s: identity mismatch: header says %.16s..., contents hash to "
                      "%.16s...", path && *path ? " '" : "", path ? path : "", path && *path ? "'" : "", want, got);
    }
    return 0;
}

int sl_snapfile_verify_chain(int fd, const char *path, const char *parents, sl_progress_fn progress, void *user,
                             sl_errbuf *e)
{
    sl_snapshot *s;
    sl_snapfile_chain chain = {.parents = parents};
    int rc = sl_snapfile_load_chained(&s, fd, path, 0, &chain, NULL, e);
    if (rc)
        return rc;
    /* From the full file down, so that a damaged file is named as itself
     * rather than as the child whose pages it holds; each ancestor's blob
     * mapped only while it is hashed (a deep chain's mappings add up).
     * Progress is told about the file asked for, last. */
    sl_snapshot *files[SL_CHAIN_MAX + 1];
    unsigned n = 0;
    for (sl_snapshot *a = s; a && n <= SL_CHAIN_MAX; a = a->chain_parent)
        files[n++] = a;
    while (n-- && !rc) {
        bool mapped_here = !files[n]->mem && !(rc = sl_snapfile_chain_map(files[n], e));
        if (!rc)
            rc = verify_one(files[n], n ? NULL : progress, user, e);
        if (mapped_here)
            sl_snapfile_chain_unmap(files[n]);
    }
    sl_snapshot_free(s);
    return rc;
}

int sl_snapfile_verify_progress(int fd, sl_progress_fn progress, void *user, sl_errbuf *e)
{
    return sl_snapfile_verify_chain(fd, NULL, NULL, progress, user, e);
}

int sl_snapfile_verify_fd(int fd, sl_errbuf *e)
{
    return sl_snapfile_verify_progress(fd, NULL, NULL, e);
}
