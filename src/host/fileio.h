/* Durable file I/O for files the library writes and reads whole (snapshot
 * files). A file is replaced atomically, the way Redis's rdbSave does it: the
 * contents go to a fresh temporary file in the target's directory, which is
 * fsynced and closed, then renamed over the target, and the directory is
 * fsynced so that the rename survives a crash. Readers therefore see the
 * old file or the new one, never a mix. Every error names the file (`what`,
 * e.g. "snapshot file") and the step that failed; a failed replace leaves
 * no temporary file behind. */
#ifndef SL_FILEIO_H
#define SL_FILEIO_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Reads exactly len bytes at offset off (SL_EIO at an error or the end of
 * the file). */
int sl_file_read_at(int fd, void *buf, size_t len, uint64_t off, const char *what, sl_errbuf *e);

/* Writes all of buf at the file position (SL_EIO). */
int sl_file_write_all(int fd, const void *buf, uint64_t len, const char *what, sl_errbuf *e);

/* How sl_file_replace gets the contents: write() puts them into fd (with
 * sl_file_write_all); confirm(), when given, is asked once they are durable
 * and before the rename, and refuses with an error (the target keeps what it
 * had). Both return 0 or a negative SL_E*. */
typedef struct sl_file_writer {
    int (*write)(void *arg, int fd, sl_errbuf *e);
    int (*confirm)(void *arg, sl_errbuf *e);
    void *arg;
} sl_file_writer;

/* Replaces the file at path with what w writes, atomically and durably
 * (above). New files get mode 0644. */
int sl_file_replace(const char *path, const char *what, const sl_file_writer *w, sl_errbuf *e);

#endif
