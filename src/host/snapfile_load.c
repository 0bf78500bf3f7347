/* Loading a snapshot file: validate everything before the blob (O(1) in the
 * file's size), then map the blob straight from the file and watch it; and
 * verify, which also recomputes the identity over every byte. */
#include "snapfile.h"

#include <errno.h>
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

/* Reads the bytes before the blob (meta, h->blob_offset bytes) and the
 * region records, checks the checksum over them and parses them into s. */
static int parse_sections(sl_snapshot *s, int fd, const uint8_t *hdr, const sl_snapfile_header *h, sl_errbuf *e)
{
    uint8_t regions[SL_SNAPFILE_REGIONS_MAX];
    uint8_t *meta = malloc(h->blob_offset);
    if (!meta)
        return sl_err(e, SL_ENOMEM, "out of memory");
    int rc;
    if ((rc = sl_file_read_at(fd, meta, h->blob_offset, 0, WHAT, e)) ||
        (rc = sl_file_read_at(fd, regions, h->regions_size, h->regions_offset, WHAT, e)))
        goto done;
    /* The header read first (which sized everything) must be the one about
     * to be checksummed and parsed: the file could have changed in between. */
    if (memcmp(hdr, meta, SL_SNAPFILE_HEADER_SIZE) != 0) {
        rc = sl_err(e, SL_EIO, "snapshot file: the file changed while loading");
        goto done;
    }
    /* The checksum covers exactly the bytes parsed below. */
    uint8_t sum[SL_HASH_LEN];
    sl_snapfile_checksum(meta, h->blob_offset, regions, h->regions_size, sum);
    if (memcmp(sum, h->checksum, SL_HASH_LEN) != 0) {
        rc = sl_err(e, SL_EFORMAT, "snapshot file: header checksum mismatch (header, small sections or "
                                   "region records corrupted)");
        goto done;
    }
    if ((rc = sl_snapfile_parse(s, h, meta, regions, e)) == 0)
        rc = sl_family_of_layout(&s->layout, &s->family, e);
done:
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
    if ((rc = parse_sections(s, fd, hdr, h, e))) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

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
    if (rc) {
        munmap(p, h->file_size);
        s->map_base = NULL;
        return rc;
    }
    s->mem = (uint8_t *)p + h->blob_offset;
    s->mem_size = h->blob_size;
    atomic_store(&s->refs, 1);
    return 0;
}

int sl_snapfile_load_file(sl_snapshot **out, int fd, const char *path, unsigned flags, sl_snapfile_info *info,
                          sl_errbuf *e)
{
    sl_snapfile_header h;
    sl_snapshot *s = NULL;
    struct stat st;
    *out = NULL;
    int rc = parse_fd(&s, fd, path, flags, &h, &st, e);
    if (rc)
        return rc;
    if ((rc = map_file(s, fd, path, &h, &st, e))) {
        free(s);
        return rc;
    }
    if (info)
        *info = (sl_snapfile_info){.version = h.version,
                                   .file_size = h.file_size,
                                   .blob_offset = h.blob_offset,
                                   .blob_size = h.blob_size,
                                   .regions_offset = h.regions_offset,
                                   .regions_size = h.regions_size,
                                   /* where writers put it, as load always said */
                                   .sregs_offset = s->sregs_len ? SL_SNAPFILE_SREGS_AT : 0,
                                   .sregs_size = s->sregs_len};
    *out = s;
    return 0;
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

int sl_snapfile_verify_progress(int fd, sl_progress_fn progress, void *user, sl_errbuf *e)
{
    sl_snapshot *s;
    int rc = sl_snapfile_load_file(&s, fd, NULL, 0, NULL, e);
    if (rc)
        return rc;
    uint8_t id[SL_HASH_LEN];
    hash_with_progress(s, progress, user, id);
    /* A file that changed under the hash (a truncated page reads as zeros)
     * says so, rather than "corrupted". */
    if ((rc = sl_snapfile_check(s, "while it was verified", e))) {
        sl_snapshot_free(s);
        return rc;
    }
    if (memcmp(id, s->hash, SL_HASH_LEN) != 0) {
        char want[2 * SL_HASH_LEN + 1], got[2 * SL_HASH_LEN + 1];
        sl_hash_hex(s->hash, want);
        sl_hash_hex(id, got);
        rc = sl_err(e, SL_EHASH, "snapshot file: identity mismatch: header says %.16s..., contents hash to %.16s...",
                    want, got);
    }
    sl_snapshot_free(s);
    return rc;
}

int sl_snapfile_verify_fd(int fd, sl_errbuf *e)
{
    return sl_snapfile_verify_progress(fd, NULL, NULL, e);
}
