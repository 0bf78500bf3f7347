/* The public snapshot-file calls of sandlet.h: open the file by path, run
 * the descriptor-level call (snapfile.h), and copy any error message into
 * the caller's buffer. */
#include "snapfile.h"

#include <stdlib.h>
#include <unistd.h>

#include "regfile.h"

static int open_ro(const char *path, sl_errbuf *e) { return sl_open_regular(path, "snapshot file", e); }

int sl_snapshot_save(const sl_snapshot *snap, const char *path, char *err, size_t errlen)
{
    return sl_snapshot_save_progress(snap, path, NULL, NULL, err, errlen);
}

int sl_snapshot_save_progress(const sl_snapshot *snap, const char *path, sl_progress_fn progress, void *user,
                              char *err, size_t errlen)
{
    sl_errbuf e = {{0}};
    int rc = !snap || !path ? sl_err(&e, SL_EINVAL, "snapshot file: no snapshot or no path")
                            : sl_snapfile_save(snap, path, progress, user, &e);
    return sl_err_report(rc, &e, err, errlen);
}

int sl_snapshot_save_child(const sl_snapshot *snap, const char *parent_path, const char *path,
                           sl_progress_fn progress, void *user, char *err, size_t errlen)
{
    sl_errbuf e = {{0}};
    int rc = !snap || !path || !parent_path ? sl_err(&e, SL_EINVAL, "snapshot file: no snapshot, parent or path")
                                            : sl_snapfile_save_child(snap, parent_path, path, progress, user, &e);
    return sl_err_report(rc, &e, err, errlen);
}

int sl_snapshot_load(sl_snapshot **out, const char *path, char *err, size_t errlen)
{
    return sl_snapshot_load_chain(out, path, NULL, err, errlen);
}

int sl_snapshot_load_chain(sl_snapshot **out, const char *path, const char *parents, char *err, size_t errlen)
{
    sl_errbuf e = {{0}};
    if (!out)
        return sl_err_report(sl_err(&e, SL_EINVAL, "snapshot file: no output"), &e, err, errlen);
    *out = NULL;
    int fd = open_ro(path, &e);
    if (fd < 0)
        return sl_err_report(fd, &e, err, errlen);
    sl_snapfile_chain chain = {.parents = parents};
    int rc = sl_snapfile_load_chained(out, fd, path, SL_SNAPFILE_FOR_USE, &chain, NULL, &e);
    close(fd); /* the snapshot keeps a descriptor of its own */
    return sl_err_report(rc, &e, err, errlen);
}

int sl_snapshot_verify_file(const char *path, char *err, size_t errlen)
{
    return sl_snapshot_verify_chain(path, NULL, NULL, NULL, err, errlen);
}

int sl_snapshot_verify_file_progress(const char *path, sl_progress_fn progress, void *user, char *err,
                                     size_t errlen)
{
    return sl_snapshot_verify_chain(path, NULL, progress, user, err, errlen);
}

int sl_snapshot_verify_chain(const char *path, const char *parents, sl_progress_fn progress, void *user,
                             char *err, size_t errlen)
{
    sl_errbuf e = {{0}};
    int fd = open_ro(path, &e);
    if (fd < 0)
        return sl_err_report(fd, &e, err, errlen);
    int rc = sl_snapfile_verify_chain(fd, path, parents, progress, user, &e);
    close(fd);
    return sl_err_report(rc, &e, err, errlen);
}

const char *sl_snapshot_file(const sl_snapshot *snap)
{
    return sl_snapfile_path(snap);
}

const char *sl_snapshot_chain_file(const sl_snapshot *snap, unsigned level)
{
    return sl_snapfile_path(sl_snapfile_ancestor(snap, level));
}

int sl_snapshot_inspect(const char *path, void (*line)(void *user, const char *text), void *user, char *err,
                        size_t errlen)
{
    sl_errbuf e = {{0}};
    if (!line)
        return sl_err_report(sl_err(&e, SL_EINVAL, "snapshot inspect: no line callback"), &e, err, errlen);
    int fd = open_ro(path, &e);
    if (fd < 0)
        return sl_err_report(fd, &e, err, errlen);
    int rc = sl_snapfile_inspect_fd(fd, path, line, user, &e);
    close(fd);
    return sl_err_report(rc, &e, err, errlen);
}

int sl_snapshot_inspect_json(const char *path, char **json, char *err, size_t errlen)
{
    sl_errbuf e = {{0}};
    if (!json)
        return sl_err_report(sl_err(&e, SL_EINVAL, "snapshot inspect: no output"), &e, err, errlen);
    *json = NULL;
    int fd = open_ro(path, &e);
    if (fd < 0)
        return sl_err_report(fd, &e, err, errlen);
    int rc = sl_snapfile_inspect_json_fd(fd, path, json, &e);
    close(fd);
    return sl_err_report(rc, &e, err, errlen);
}
