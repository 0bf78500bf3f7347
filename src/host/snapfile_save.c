/* Saving a snapshot file: the bytes around the blob are built and checked
 * as load would check them, then the whole file is written through
 * sl_file_replace (fileio.h): a temporary file, fsync, rename, directory
 * fsync. */
#include "snapfile.h"

#include <stdlib.h>

#include "fileio.h"
#include "snapshot_impl.h" /* the file codec reads and builds the struct */

#define WHAT "snapshot file"

typedef struct save_job {
    const sl_snapshot *s;
    const uint8_t *meta, *regions;
    uint64_t meta_size, regions_size;
    sl_progress_fn progress;
    void *user;
} save_job;

/* Never write a file that load would refuse. */
static int check_as_loaded(const save_job *j, sl_errbuf *e)
{
    sl_snapshot *check = calloc(1, sizeof *check);
    if (!check)
        return sl_err(e, SL_ENOMEM, "out of memory");
    sl_snapfile_header h;
    sl_snapfile_header_decode(j->meta, &h);
    int rc = sl_snapfile_check_geometry(&h, j->meta_size + j->s->mem_size + j->regions_size, e);
    if (!rc)
        rc = sl_snapfile_parse(check, &h, j->meta, j->regions, e);
    free(check);
    return rc;
}

/* The file: meta, the blob in SL_SNAPFILE_PROGRESS_CHUNK pieces with a
 * progress call before each when asked, the region records. */
static int write_file(void *arg, int fd, sl_errbuf *e)
{
    const save_job *j = arg;
    const sl_snapshot *s = j->s;
    uint64_t total = j->meta_size + s->mem_size + j->regions_size;
    int rc = sl_file_write_all(fd, j->meta, j->meta_size, WHAT, e);
    for (uint64_t off = 0, n; !rc && off < s->mem_size; off += n) {
        n = s->mem_size - off < SL_SNAPFILE_PROGRESS_CHUNK ? s->mem_size - off : SL_SNAPFILE_PROGRESS_CHUNK;
        if (j->progress)
            j->progress(j->user, j->meta_size + off, total);
        rc = sl_file_write_all(fd, s->mem + off, n, WHAT, e);
    }
    if (!rc)
        rc = sl_file_write_all(fd, j->regions, j->regions_size, WHAT, e);
    if (!rc && j->progress)
        j->progress(j->user, total, total);
    return rc;
}

/* A loaded snapshot whose file changed while we copied it: its copy is not
 * the snapshot; the target keeps what it had. */
static int confirm_unchanged(void *arg, sl_errbuf *e)
{
    const save_job *j = arg;
    return sl_snapfile_check(j->s, "while it was saved", e);
}

int sl_snapfile_save(const sl_snapshot *s, const char *path, sl_progress_fn progress, void *user, sl_errbuf *e)
{
    int rc = sl_snapfile_check(s, "before it was saved", e);
    if (rc)
        return rc;
    uint8_t regions[SL_SNAPFILE_REGIONS_MAX];
    save_job j = {.s = s,
                  .regions = regions,
                  .meta_size = sl_snapfile_meta_size(s),
                  .regions_size = (uint64_t)s->n_regions * SL_REGION_RECORD_SIZE,
                  .progress = progress,
                  .user = user};
    uint8_t *meta = calloc(1, j.meta_size);
    if (!meta)
        return sl_err(e, SL_ENOMEM, "out of memory");
    j.meta = meta;
    if ((rc = sl_snapfile_build(s, meta, regions, e)) == 0 && (rc = check_as_loaded(&j, e)) == 0) {
        sl_file_writer w = {.write = write_file, .confirm = confirm_unchanged, .arg = &j};
        rc = sl_file_replace(path, WHAT, &w, e);
    }
    free(meta);
    return rc;
}
