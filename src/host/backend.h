/* The hypervisor side of the vCPU seam (vcpu.h has the caller's side): what
 * every backend provides, as a table of hooks in the manner of SQLite's
 * sqlite3_io_methods, and the part of a vCPU that belongs to no backend.
 *
 * A backend's vCPU embeds struct sl_vcpu as its first member and allocates
 * the whole (as SQLite's unixFile extends sqlite3_file); the neutral layer
 * (vcpu.c, vcpu_run.c) keeps the memory-slot table, the cancellation latch,
 * the timeout timer, the counters and the x86 register policy (cpureset.c),
 * and calls a hook only to make the hypervisor do something. Register hooks
 * exchange the neutral types of vcpu.h and cpustate.h, one hook per register
 * group, so a backend translates and decides nothing.
 *
 * Hooks return 0 or a negative SL_E* with a message in e, unless they say
 * otherwise. None is optional. Backends are listed in backend.c; the first
 * that opens wins. */
#ifndef SL_BACKEND_H
#define SL_BACKEND_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpustate.h"
#include "kick.h"
#include "vcpu.h"

typedef struct sl_vcpu_ops sl_vcpu_ops;

/* A guest-physical memory slot as the caller mapped it. */
typedef struct sl_vcpu_slot {
    bool used;
    uint64_t gpa, size;
    void *host;
    unsigned flags; /* SL_VMEM_* */
} sl_vcpu_slot;

struct sl_vcpu {
    const sl_vcpu_ops *ops;
    unsigned arch;          /* SL_ARCH_* */
    const char *name;       /* ops->name, or the variant open found ("pvm"): sl_vcpu_backend_name */
    bool cpl0_emulated;     /* set by open: guest kernel code is emulated (PVM) */
    bool msr_filter;        /* set by open: guest MSR accesses are denied */
    unsigned max_slots;     /* set by open: at most SL_VCPU_MAX_SLOTS */
    uint8_t tr_type;        /* sl_cpu_tr_type() */
    bool keep_tlb;          /* the next sl_vcpu_reset may skip its TLB flush */
    sl_cpu_state *state;    /* scratch for the register hooks (one thread at a time) */
    sl_vcpu_slot slots[SL_VCPU_MAX_SLOTS];
    sl_vcpu_stats stats;    /* backends count exits and hypervisor calls here */

    pthread_mutex_t lock;   /* guards cancel_req, in_run, runner and ops->immediate_exit */
    bool cancel_req, in_run;
    pthread_t runner;
    sl_kick_timer timer;
};

/* What one entry into the guest came back with (ops->enter). */
enum {
    SL_ENTER_EXIT = 1, /* ex holds an exit for the caller */
    SL_ENTER_AGAIN,    /* an exit the backend handled: enter again */
    SL_ENTER_KICKED,   /* the kick signal or immediate_exit stopped the entry */
};

struct sl_vcpu_ops {
    const char *name; /* the backend's own name, "kvm" */
    size_t vcpu_size; /* bytes of the backend's vCPU, struct sl_vcpu first */

    /* sl_backend_probe: the name of what runs guests of arch here, or NULL
     * with a one-line reason in why. */
    const char *(*probe)(unsigned arch, char *why, size_t whylen);
    /* Creates the VM and its vCPU in v (zeroed but for the neutral part) and
     * sets cpl0_emulated, msr_filter, max_slots and, for a variant, name. SL_ENOHYPERVISOR
     * when this hypervisor is absent (the next backend is tried). close
     * releases what open made, also after open failed half-way. */
    int (*open)(sl_vcpu *v, sl_errbuf *e);
    void (*close)(sl_vcpu *v);

    /* Memory: the slot as now recorded in v->slots (size 0: delete it). */
    int (*set_slot)(sl_vcpu *v, unsigned slot, const sl_vcpu_slot *s, sl_errbuf *e);
    int (*dirty_log)(sl_vcpu *v, unsigned slot, uint64_t *bitmap, sl_errbuf *e);
    /* The host rewrote guest page tables: drop any copy the hypervisor keeps. */
    int (*forget_tables)(sl_vcpu *v, sl_errbuf *e);

    /* Completes the instruction the last exit left half-done, before any
     * register access. */
    int (*finish_exit)(sl_vcpu *v, sl_errbuf *e);
    /* Register groups. sregs: segments, descriptor tables, CR0-CR4, CR8,
     * EFER; set_sregs flushes the guest TLB when flush_tlb. fpu: `legacy`,
     * xstate_bv and the XSAVE components. debugregs: DR0-3, DR6, DR7. msrs:
     * sl_cpu_state.msr. Where a hypervisor lacks a group (xcr0, debugregs),
     * get leaves the state as it is and set does nothing. */
    int (*get_regs)(sl_vcpu *v, sl_regs *r, sl_errbuf *e);
    int (*set_regs)(sl_vcpu *v, const sl_regs *r, sl_errbuf *e);
    int (*get_sregs)(sl_vcpu *v, sl_cpu_state *s, sl_errbuf *e);
    int (*set_sregs)(sl_vcpu *v, const sl_cpu_state *s, bool flush_tlb, sl_errbuf *e);
    int (*get_fpu)(sl_vcpu *v, sl_cpu_state *s, sl_errbuf *e);
    int (*set_fpu)(sl_vcpu *v, const sl_cpu_state *s, sl_errbuf *e);
    int (*get_xcr0)(sl_vcpu *v, uint64_t *xcr0, sl_errbuf *e);
    int (*set_xcr0)(sl_vcpu *v, uint64_t xcr0, sl_errbuf *e);
    int (*get_debugregs)(sl_vcpu *v, sl_cpu_state *s, sl_errbuf *e);
    int (*set_debugregs)(sl_vcpu *v, const sl_cpu_state *s, sl_errbuf *e);
    int (*get_msrs)(sl_vcpu *v, uint64_t msr[SL_CPU_NMSR], sl_errbuf *e);
    int (*set_msrs)(sl_vcpu *v, const uint64_t msr[SL_CPU_NMSR], sl_errbuf *e);
    /* No pending exception, interrupt, NMI or interrupt shadow. */
    int (*clear_events)(sl_vcpu *v, sl_errbuf *e);

    /* Enters the guest once: SL_ENTER_*, or a negative SL_E* (ex->detail
     * says why). Counts v->stats. */
    int (*enter)(sl_vcpu *v, sl_exit *ex, sl_errbuf *e);
    /* Makes entries return SL_ENTER_KICKED at once while on; called with
     * v->lock held. */
    void (*immediate_exit)(sl_vcpu *v, bool on);
    /* ex->rip from the vCPU, best effort (after a kick). */
    void (*exit_rip)(sl_vcpu *v, sl_exit *ex);
    int (*set_in_value)(sl_vcpu *v, uint32_t value, sl_errbuf *e);
    /* The hypervisor's count of emulated instructions; false when unknown. */
    bool (*emulated)(const sl_vcpu *v, uint64_t *n);
};

/* The backends, in the order sl_vcpu_open tries them; NULL-terminated. */
extern const sl_vcpu_ops *const sl_vcpu_backends[];

/* The KVM backend (kvm/). */
extern const sl_vcpu_ops sl_kvm_ops;

#endif
