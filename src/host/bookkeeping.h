/* The two pages the host and the guest kernel share by convention: the
 * bookkeeping page (the top page of scratch, SL_BK_* in sl_layout.h) and the
 * PEB (the first page of the snapshot region, SL_PEB_*). Every host access
 * to either goes through these functions, so a slot's meaning and who may
 * write it are spelled in one place.
 *
 * Everything read from the bookkeeping page was last written by the guest:
 * callers check a value before they trust it. */
#ifndef SL_BOOKKEEPING_H
#define SL_BOOKKEEPING_H

#include <stdbool.h>
#include <stdint.h>

#include "layout.h"
#include "mem.h"

/* ---- at a restore: the slots the host sets afresh (the rest are zero) */

/* The bookkeeping page as restore leaves it: where scratch, the tables and
 * the buffers are, and the snapshot's roots and entry point. The kernel
 * reads it on every entry, so it is written afresh whatever the guest left. */
void sl_bk_write_restore(sl_mem *m, const sl_snapshot *s);
/* SL_BK_RNG_SEED: the guest kernel's getrandom key. */
void sl_bk_set_rng_seed(sl_mem *m, const uint8_t seed[32]);
/* SL_BK_HOST_PAGES: whether the kernel hands page copies, zeroing and user
 * page faults to the host (SL_PORT_PAGE, SL_PORT_PF). */
void sl_bk_set_host_pages(sl_mem *m, bool on);

/* ---- what the guest reports */

/* The kernel's boot stack, where the Initialise entry starts. */
uint64_t sl_bk_exc_stack_top(const sl_mem *m);
/* Written at the end of init: the user program's dispatch entry, and the
 * top of the call stack the kernel set up for it. */
uint64_t sl_bk_dispatch(const sl_mem *m);
uint64_t sl_bk_stack_top(const sl_mem *m);
/* The page-table roots the guest lists (page-aligned, at most
 * SL_BK_MAX_ROOTS; 0 when the count is out of range) and, in *cur, the
 * root in use. */
unsigned sl_bk_roots(const sl_mem *m, uint64_t roots[SL_BK_MAX_ROOTS], uint64_t *cur);
/* The snapshot generation the guest reads (sl_generation). */
void sl_bk_set_generation(sl_mem *m, uint64_t generation);

/* Event counters since the last restore (sl_sandbox_info). */
typedef struct sl_bk_events {
    uint64_t faults, cow, demand, syscalls;
} sl_bk_events;
void sl_bk_get_events(const sl_mem *m, sl_bk_events *ev);
/* The events the host counts itself when it serves a page fault. */
typedef enum sl_bk_event {
    SL_BK_EVENT_FAULT = SL_BK_EV_FAULTS,
    SL_BK_EVENT_COW = SL_BK_EV_COW,
    SL_BK_EVENT_DEMAND = SL_BK_EV_DEMAND,
} sl_bk_event;
void sl_bk_count_event(sl_mem *m, sl_bk_event ev);

/* ---- the kernel's scratch page allocator (k_scratch_take_st) */

/* Head of the free list (a GPA whose page holds the next), 0 = empty. */
uint64_t sl_bk_free_list(const sl_mem *m);
/* Takes the head: the list starts at `next`, one page fewer. */
void sl_bk_free_list_pop(sl_mem *m, uint64_t next);
/* The bump allocator: the next free page and the end of the free pages. */
uint64_t sl_bk_alloc_cursor(const sl_mem *m);
uint64_t sl_bk_alloc_limit(const sl_mem *m);
/* Takes the page at the cursor, counting it in the dirty hint as the
 * kernel does. */
void sl_bk_alloc_bump(sl_mem *m);

/* ---- requests of the guest kernel (its I/O ports) */

/* SL_PORT_CLOCK's answer; nsec ~0 for an unknown clock. */
void sl_bk_set_clock(sl_mem *m, uint64_t sec, uint64_t nsec);
/* SL_PORT_PAGE: the pages to write and (for a copy) to read. */
void sl_bk_page_op(const sl_mem *m, uint64_t *dst, uint64_t *src);

/* SL_PORT_PF: the user page fault the kernel's entry describes. */
typedef struct sl_bk_fault {
    uint64_t addr, err, root; /* CR2, the error code, CR3 */
} sl_bk_fault;
void sl_bk_get_fault(const sl_mem *m, sl_bk_fault *f);
/* The kernel handles the fault itself. */
void sl_bk_fault_unserved(sl_mem *m);
/* The kernel writes `pte` at the entry whose GVA is `slot`. */
void sl_bk_fault_served(sl_mem *m, uint64_t slot, uint64_t pte);

/* ---- the PEB */

/* The user program, as the PEB tells the kernel where to start it. */
typedef struct sl_peb_user {
    uint64_t entry, phdr; /* GVAs; phdr 0 when the headers are not loaded */
    uint64_t phnum, phent;
} sl_peb_user;
/* Fills the PEB page at `peb` (host memory) for layout l. */
void sl_peb_write(uint8_t *peb, const sl_layout *l, const sl_peb_user *u);

#endif
