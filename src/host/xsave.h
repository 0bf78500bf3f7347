/* The XSAVE standard format (Intel SDM vol. 1, ch. 13), the image that
 * XSAVE/XRSTOR use and that KVM's KVM_GET/SET_XSAVE exchange, to and from
 * the neutral sl_cpu_state. Component places come from this CPU's CPUID
 * leaf 0xD. */
#ifndef SL_XSAVE_H
#define SL_XSAVE_H

#include <stddef.h>
#include <stdint.h>

#include "cpustate.h"
#include "err.h"

/* img[0..size) -> st's legacy area, xstate_bv and components. A component
 * in its initial state (its XSTATE_BV bit clear) is normalised: x87 and SSE
 * to their initial values in `legacy`, the others left out. */
void sl_xsave_to_state(const uint8_t *img, size_t size, sl_cpu_state *st);

/* st -> img[0..size); SL_EUNSUPPORTED when a component the guest enabled in
 * XCR0 does not exist on this CPU with the same size. */
int sl_xsave_from_state(const sl_cpu_state *st, uint8_t *img, size_t size, sl_errbuf *e);

#endif
