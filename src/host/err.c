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

const char *sl_strerror(int code)
{
    switch (code) {
    case SL_OK: return "SL_OK: success";
    case SL_EINVAL: return "SL_EINVAL: invalid argument";
    case SL_ENOMEM: return "SL_ENOMEM: out of memory";
    case SL_EIO: return "SL_EIO: I/O error";
    case SL_EFORMAT: return "SL_EFORMAT: malformed input";
    case SL_EVERSION: return "SL_EVERSION: version mismatch";
    case SL_ERANGE: return "SL_ERANGE: size out of range";
    case SL_EUNSUPPORTED: return "SL_EUNSUPPORTED: not supported";
    case SL_EPAGETABLE: return "SL_EPAGETABLE: unusable guest page tables";
    case SL_EFAMILY: return "SL_EFAMILY: snapshot of another configuration family";
    case SL_ESTATE: return "SL_ESTATE: wrong state";
    case SL_EHYPERVISOR: return "SL_EHYPERVISOR: hypervisor error";
    case SL_EABORT: return "SL_EABORT: guest aborted";
    case SL_EFAULT: return "SL_EFAULT: guest exception";
    case SL_EMEMACCESS: return "SL_EMEMACCESS: memory access violation";
    case SL_ETIMEOUT: return "SL_ETIMEOUT: timed out";
    case SL_ECANCELLED: return "SL_ECANCELLED: cancelled";
    case SL_ENOTFOUND: return "SL_ENOTFOUND: not found";
    case SL_ETYPE: return "SL_ETYPE: type mismatch";
    case SL_EHOSTFN: return "SL_EHOSTFN: host function failed";
    case SL_EABI: return "SL_EABI: malformed host/guest message";
    case SL_ENOSCRATCH: return "SL_ENOSCRATCH: guest out of scratch memory";
    case SL_EHASH: return "SL_EHASH: identity mismatch";
    case SL_ENOHYPERVISOR: return "SL_ENOHYPERVISOR: no hypervisor available (/dev/kvm)";
    case SL_ECHANGED: return "SL_ECHANGED: snapshot file changed while loaded";
    default: return "SL_E?: unknown error code";
    }
}
