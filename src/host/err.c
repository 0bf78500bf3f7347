/* sl_err() and sl_strerror(), whose texts come from SL_ERROR_MAP (sandlet.h). */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>

int sl_err(sl_errbuf *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

int sl_err_report(int rc, const sl_errbuf *e, char *err, size_t errlen)
{
    if (rc && err && errlen)
        snprintf(err, errlen, "%s", e->msg);
    return rc;
}

const char *sl_strerror(int code)
{
    switch (code) {
#define SL_ERROR_CASE_(name, value, text) \
    case SL_##name: return "SL_" #name ": " text;
        SL_ERROR_MAP(SL_ERROR_CASE_)
#undef SL_ERROR_CASE_
    default: return "SL_E?: unknown error code";
    }
}

const char *sl_err_printable(const char *in, char *out, size_t len)
{
    size_t n = 0;
    for (; in[n] && n + 1 < len; n++)
        out[n] = (unsigned char)in[n] < 0x20 || in[n] == 0x7F ? '?' : in[n];
    if (len)
        out[n] = 0;
    return out;
}
