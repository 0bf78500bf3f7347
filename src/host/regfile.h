/* Opening a file the user named (a guest ELF, a snapshot file) for reading,
 * without ever blocking on it: a FIFO, a socket, a device or a directory is
 * refused with a clear error instead of hanging the caller. */
#ifndef SL_REGFILE_H
#define SL_REGFILE_H

#include "err.h"

/* Opens path read-only (close-on-exec) and checks it is a regular file.
 * Returns the descriptor (blocking again), or a negative SL_E* with the
 * path in the message: SL_ENOTFOUND (no such file), SL_EIO (cannot open or
 * not a regular file). `what` names the file in messages ("guest ELF"). */
int sl_open_regular(const char *path, const char *what, sl_errbuf *e);

#endif
