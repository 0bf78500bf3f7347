/* The sandbox's insides, shared by the files that implement sl_sandbox_*:
 *   sandbox.c           lifecycle: create, free, setters, init, info
 *   sandbox_call.c      the call loop: enter the guest, run it, read its exits
 *   sandbox_snapshot.c  snapshot and restore of a sandbox
 *   functions.c         the host and guest function tables
 *   hostcall.c          answering the guest's host calls
 *   kservice.c          the guest kernel's requests (read, clock, pages, faults, exit)
 *   fault.c             a guest's failures as SL_E* codes and messages
 *   value.c             sl_value and the wire's values, type names
 * Functions they share are named sl_sb_*. Not for users of the library
 * (they see sandlet.h). */
#ifndef SL_SANDBOX_H
#define SL_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "abi.h"
#include "err.h"
#include "hash.h"
#include "mem.h"
#include "vcpu.h"

/* vCPU memory slots. */
#define SLOT_SNAPSHOT 0u
#define SLOT_SCRATCH 1u

/* A function's signature; host functions also carry their callback. */
typedef struct sl_func {
    char *name;
    int ret;
    int params[SL_ABI_MAX_VALUES];
    size_t n;
    sl_host_fn fn; /* host functions only */
    void *user;
} sl_func;

struct sl_sandbox {
    sl_errbuf err;
    int status;
    unsigned arch;
    sl_vcpu *vcpu;
    sl_mem *mem;
    sl_snapshot *snap; /* the snapshot mapped now (a reference is held) */
    /* snap is the one sl_sandbox_new_from_elf made: the caller never held
     * it, so it is no parent of the snapshots taken here (lineage). A
     * restore to any snapshot clears it. */
    bool snap_from_elf;
    sl_func *host;
    size_t n_host;
    sl_func *guest;
    size_t n_guest;
    /* The identity of the snapshot whose guest `guest` describes: a restore to
     * another one (possibly another program of the same family) asks the
     * guest again (issue 9, fault 2). */
    uint8_t sig_hash[SL_HASH_LEN];
    bool sig_hash_set;
    uint64_t dispatch, stack_top, generation;
    uint64_t timeout_ms;
    sl_print_fn print;
    void *print_user;
    uint8_t *ret_buf; /* returned strings/bytes, valid until the next call */
    size_t ret_cap;
    uint64_t *dirty_tmp;
    bool in_call;
    /* standard streams and the program's arguments */
    sl_read_fn read;
    sl_write_fn write;
    void *stdio_user;
    uint8_t *read_buf;
    char *exec_text; /* EXEC message text: argv then environment, NUL-terminated */
    size_t exec_len, exec_argc;
    sl_run_result exit; /* SL_PORT_EXIT: how the program ended */
    /* getrandom: a key from the host's getrandom, a seed per restore */
    uint8_t rng_key[32];
    uint64_t rng_restores;
    sl_vcpu_stats stats_base; /* vCPU counters at the last restore */
    bool full_takes; /* sl_sb_set_full_takes: no incremental takes */
};

/* Results of the call loop's steps besides 0 (done) and a negative SL_E*. */
#define RUN_EXITED 1 /* the program exited (SL_PORT_EXIT): not an error */
#define RUN_MORE 2   /* the exit is handled: run the guest again */

/* ---- sandbox.c */

/* With full set, every later snapshot of sb compacts the whole guest, as
 * before incremental takes (snapinc.h): what tests and benchmarks compare
 * those with. Same result either way. */
void sl_sb_set_full_takes(sl_sandbox *sb, bool full);

/* Marks the sandbox POISONED and returns code. */
int sl_sb_poison(sl_sandbox *sb, int code);
/* SL_ECHANGED (rc) from sl_snapfile_check for `snap`: when the sandbox runs
 * on it, it is poisoned, and the next restore copies every table. */
int sl_sb_file_changed(sl_sandbox *sb, const sl_snapshot *snap, int rc);

/* ---- sandbox_call.c */

/* The message buffers at the start of scratch. Pointers are taken without
 * marking anything dirty; sl_sb_io_written() marks just the bytes a host
 * write reached, so an idle 64 KiB buffer costs no reset. */
static inline uint8_t *sl_sb_input(sl_sandbox *sb) { return sb->mem->scratch; }
static inline uint8_t *sl_sb_output(sl_sandbox *sb) { return sb->mem->scratch + sb->mem->layout.input_size; }
void sl_sb_io_written(sl_sandbox *sb, bool output);

/* Enters the guest kernel at its boot entry and runs init (or the whole
 * program): 0 with *res the RESULT, RUN_EXITED, or an error. */
int sl_sb_start(sl_sandbox *sb, sl_msg *res);
/* One guest call without the signature check (used for sl.signatures too). */
int sl_sb_raw_call(sl_sandbox *sb, const char *name, const sl_value *args, size_t nargs, sl_msg *res);

/* ---- sandbox_snapshot.c */

/* Restore without running init; leaves status NEW for an Initialise snapshot. */
int sl_sb_restore_raw(sl_sandbox *sb, sl_snapshot *snap);

/* ---- functions.c */

const sl_func *sl_sb_find(const sl_func *f, size_t n, const uint8_t *name, size_t len);
void sl_sb_free_funcs(sl_func *f, size_t n);
/* Asks the guest for its functions (SL_ABI_SIGNATURES_FN). */
int sl_sb_load_signatures(sl_sandbox *sb);
/* The function table now describes the guest of the snapshot `hash`. */
void sl_sb_table_is_for(sl_sandbox *sb, const uint8_t hash[SL_HASH_LEN]);

/* ---- hostcall.c */

/* SL_PORT_HOSTCALL: calls the host function and pushes its HOSTRESULT. */
int sl_sb_host_call(sl_sandbox *sb);

/* ---- kservice.c */

/* The guest kernel's ports (SL_PORT_READ, _CLOCK, _PAGE, _PF, _EXIT):
 * RUN_MORE when answered, RUN_EXITED, or an error. */
int sl_sb_kernel_port(sl_sandbox *sb, const sl_exit *ex);

/* ---- fault.c */

/* SL_PORT_FAULT's message as SL_EFAULT with the exception named (poisons). */
int sl_sb_fault_error(sl_sandbox *sb, const sl_msg *m);
/* A RESULT's non-zero status as the matching SL_E* and message. */
int sl_sb_status_error(sl_sandbox *sb, const sl_msg *m);

/* ---- value.c */

/* sl_value <-> the wire; false for a value that cannot travel. */
bool sl_value_to_wire(const sl_value *v, sl_wire_value *w);
/* Strings and bytes are copied to `buf` (NUL added). */
void sl_value_from_wire(const sl_wire_value *w, sl_value *v, uint8_t *buf);

#endif
