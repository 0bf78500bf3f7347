/* User page faults served by the host on PVM (hostfault.c). */
#ifndef SL_HOSTFAULT_H
#define SL_HOSTFAULT_H

#include "mem.h"

/* SL_PORT_PF: serves the fault the guest kernel described in the
 * bookkeeping page (SL_BK_PF_ADDR/ERR/ROOT) when it is a copy-on-write write
 * or a user stack page, leaving SL_BK_PF_SLOT/PTE for the kernel to write;
 * otherwise SL_BK_PF_SLOT = 0 and the kernel handles the fault itself.
 * amd64 only (PVM runs no i686 guest). */
void sl_hostfault_serve(sl_mem *m);

#endif
