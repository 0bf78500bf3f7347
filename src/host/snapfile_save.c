/* Saving a snapshot file: the bytes around the pages are built and checked
 * as load would check them, then the whole file is written through
 * sl_file_replace (fileio.h): a temporary file, fsync, rename, directory
 * fsync. A full file holds every page of the blob; a child
 * (snapfile_child.c) comes here with its own pages, runs and index. */
#include "snapfile.h"

#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "snapfile_save.h"
#include "snapshot_impl.h" /* the file codec reads and builds the struct */

#define WHAT "snapshot file"

/* Never write a file that load would refuse. */
static int check_as_loaded(const sl_snapfile_out *o, const uint8_t *meta, uint64_t meta_size,
                           const uint8_t *regions, uint64_t regions_size, sl_errbuf *e)
{
    sl_snapshot *check = calloc(1, sizeof *check);
    if (!check)
        return sl_err(e, SL_ENOMEM, "out of memory");
    sl_snapfile_header h;
    sl_snapfile_header_decode(meta, &h);
    uint64_t size = meta_size + o->plan.own_size + regions_size + o->plan.runs_size + o->plan.index_size;
    int rc = sl_snapfile_check_geometry(&h, size, e);
    if (!rc)
        rc = sl_snapfile_parse(check, &h, meta, regions, o->runs, e);
    free(check->runs);
    free(check);
    return rc;
}

typedef struct save_job {
    const sl_snapfile_out *o;
    const uint8_t *meta, *regions;
    uint64_t meta_size, regions_size, total;
} save_job;

/* The own pages: the blob (a full file), or the pages o->own lists, in
 * SL_SNAPFILE_PROGRESS_CHUNK pieces with a progress call before each. */
static int write_pages(const save_job *j, int fd, sl_errbuf *e)
{
    const sl_snapfile_out *o = j->o;
    uint64_t n_own = o->plan.own_size / SL_PAGE_SIZE, chunk = SL_SNAPFILE_PROGRESS_CHUNK / SL_PAGE_SIZE;
    int rc = 0;
    for (uint64_t i = 0, n; !rc && i < n_own; i += n) {
        n = n_own - i < chunk ? n_own - i : chunk;
        if (o->progress && i)
            o->progress(o->user, j->meta_size + i * SL_PAGE_SIZE, j->total);
        if (!o->own) {
            rc = sl_file_write_all(fd, o->s->mem + i * SL_PAGE_SIZE, n * SL_PAGE_SIZE, WHAT, e);
            continue;
        }
        /* One write per run of pages that lie one after the other in the blob. */
        for (uint64_t k = i, m; !rc && k < i + n; k += m) {
            for (m = 1; k + m < i + n && o->own[k + m] == o->own[k] + m; m++)
                ;
            rc = sl_file_write_all(fd, o->s->mem + o->own[k] * SL_PAGE_SIZE, m * SL_PAGE_SIZE, WHAT, e);
        }
    }
    return rc;
}

/* The file: meta, the own pages, the region records, the runs, the index. */
static int write_file(void *arg, int fd, sl_errbuf *e)
{
    const save_job *j = arg;
    const sl_snapfile_out *o = j->o;
    if (o->progress)
        o->progress(o->user, 0, j->total);
    int rc = sl_file_write_all(fd, j->meta, j->meta_size, WHAT, e);
    if (!rc)
        rc = write_pages(j, fd, e);
    if (!rc)
        rc = sl_file_write_all(fd, j->regions, j->regions_size, WHAT, e);
    if (!rc)
        rc = sl_file_write_all(fd, o->runs, o->plan.runs_size, WHAT, e);
    if (!rc)
        rc = sl_file_write_all(fd, o->index, o->plan.index_size, WHAT, e);
    /* write() from a page a loaded file lost fails (EFAULT) rather than
     * raising SIGBUS: the file changed, and that is the error. */
    if (rc && sl_snapfile_lost(o->s))
        rc = sl_snapfile_check(o->s, "while it was saved", e);
    if (!rc && o->progress)
        o->progress(o->user, j->total, j->total);
    return rc;
}

/* A loaded snapshot whose file changed while we copied it: its copy is not
 * the snapshot; the target keeps what it had. */
static int confirm_unchanged(void *arg, sl_errbuf *e)
{
    const save_job *j = arg;
    return sl_snapfile_check(j->o->s, "while it was saved", e);
}

int sl_snapfile_write(const sl_snapfile_out *o, const char *path, sl_errbuf *e)
{
    uint8_t regions[SL_SNAPFILE_REGIONS_MAX];
    save_job j = {.o = o,
                  .regions = regions,
                  .meta_size = sl_snapfile_plan_meta_size(o->s, &o->plan),
                  .regions_size = (uint64_t)o->s->n_regions * SL_REGION_RECORD_SIZE};
    j.total = j.meta_size + o->plan.own_size + j.regions_size + o->plan.runs_size + o->plan.index_size;
    uint8_t *meta = calloc(1, j.meta_size);
    if (!meta)
        return sl_err(e, SL_ENOMEM, "out of memory");
    j.meta = meta;
    int rc;
    if ((rc = sl_snapfile_build(o->s, &o->plan, o->runs, meta, regions, e)) == 0 &&
        (rc = check_as_loaded(o, meta, j.meta_size, regions, j.regions_size, e)) == 0) {
        sl_file_writer w = {.write = write_file, .confirm = confirm_unchanged, .arg = &j};
        rc = sl_file_replace(path, WHAT, &w, e);
    }
    free(meta);
    return rc;
}

int sl_snapfile_save(const sl_snapshot *s, const char *path, sl_progress_fn progress, void *user, sl_errbuf *e)
{
    int rc = sl_snapfile_check(s, "before it was saved", e);
    if (rc)
        return rc;
    /* Saving a chain in full over one of the files it maps would orphan
     * the children of that file (flatten CHILD ANCESTOR). */
    if ((rc = sl_snapfile_check_target(s->chain_parent, path, e)))
        return rc;
    /* A full file has no index: its bytes from the blob on are exactly what
     * its identity hashes (docs/decisions.md, "Child files"). */
    sl_snapfile_out o = {.s = s, .plan = {.own_size = s->mem_size}, .progress = progress, .user = user};
    return sl_snapfile_write(&o, path, e);
}
