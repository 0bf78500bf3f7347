/* Error messages for host objects: a fixed buffer per object, filled by
 * sl_err() which also returns the code so that `return sl_err(...)` reads well. */
#ifndef SL_ERR_H
#define SL_ERR_H

#include "sandlet.h"

#define SL_ERRMSG_MAX 256

typedef struct sl_errbuf {
    char msg[SL_ERRMSG_MAX];
} sl_errbuf;

/* Formats the message into e (if not NULL) and returns code. */
int sl_err(sl_errbuf *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* For a public call that takes char *err, size_t errlen: copies e's message
 * there when rc is non-zero and err is not NULL, and returns rc. */
int sl_err_report(int rc, const sl_errbuf *e, char *err, size_t errlen);
/* in, truncated to fit out[0..len), with every control byte (below 0x20,
 * and 0x7F) as '?': for names that come from a file (a child's record of
 * its parent's name) and end up in a message or on a terminal. Returns out. */
const char *sl_err_printable(const char *in, char *out, size_t len);

#endif
