/* What a snapshot file is written from (snapfile_save.c): the snapshot, the
 * plan of its sections, and a child's own pages, runs and index. */
#ifndef SL_SNAPFILE_SAVE_H
#define SL_SNAPFILE_SAVE_H

#include "snapfile.h"

typedef struct sl_snapfile_out {
    const sl_snapshot *s;
    sl_snapfile_plan plan;
    const uint64_t *own;  /* which blob pages are the file's own pages, in order; NULL: the whole blob */
    const uint8_t *runs;  /* plan.runs_size bytes of run records */
    const uint8_t *index; /* plan.index_size bytes of index records */
    sl_progress_fn progress;
    void *user;
} sl_snapfile_out;

/* Builds the bytes around the pages, checks them as load would, and writes
 * the file atomically and durably (sl_file_replace). */
int sl_snapfile_write(const sl_snapfile_out *o, const char *path, sl_errbuf *e);

#endif
