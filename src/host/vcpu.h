/* Internal vCPU interface (DESIGN.md §4): one virtual CPU in its own VM, its
 * guest-physical memory slots, registers, and a run loop that returns every
 * exit the caller must handle. It names no hypervisor type: callers
 * (the sandbox files, the tests and benchmarks) see only this file.
 *
 * The seam. Behind these functions sit two layers:
 *   - neutral, in src/host/: vcpu.c (argument checks, the memory-slot table,
 *     sl_vcpu_reset composed of one step per register group), vcpu_run.c (the
 *     run loop, cancellation, timeouts), kick.c (the kick signal and timer),
 *     cpureset.c (the x86 register policy: what a fresh or reset vCPU holds,
 *     over the neutral sl_cpu_state of cpustate.h), xsave.c (the XSAVE
 *     standard format);
 *   - a backend, in its own folder: src/host/kvm/ for KVM (and PVM, a KVM
 *     variant), which only translates neutral register groups to its own
 *     structures and runs the guest.
 * backend.h is the contract between them: struct sl_vcpu (the neutral part
 * of every vCPU) and sl_vcpu_ops, the table of hooks a backend fills in.
 *
 * Adding a backend (MSHV, Hypervisor.framework, WHP, ...): make a folder
 * src/host/NAME/ (the Makefile compiles src/host/ and its subfolders), define
 * a vCPU struct that begins with struct sl_vcpu, fill in an sl_vcpu_ops
 * (every hook; backend.h says what each must do), and list it in
 * sl_vcpu_backends (backend.c). sl_vcpu_open tries the backends in order and
 * takes the first whose open does not return SL_ENOHYPERVISOR;
 * sl_backend_probe asks each probe hook the same way. The register policy,
 * the snapshot's CPU-state format and everything above this file stay as
 * they are.
 *
 * Threading: one thread at a time may use an sl_vcpu, except sl_vcpu_cancel(),
 * which any thread may call at any time while the sl_vcpu exists.
 *
 * Signals: the vCPU layer reserves one real-time signal (sl_vcpu_kick_signal())
 * to kick a thread out of the guest. It installs a handler that does nothing
 * (without SA_RESTART) and unblocks the signal in the thread that calls
 * sl_vcpu_run(). Host programs must leave that signal alone. */
#ifndef SL_VCPU_H
#define SL_VCPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct sl_vcpu sl_vcpu;

/* General-purpose registers, RIP and RFLAGS (i686 uses the low 32 bits). */
typedef struct sl_regs {
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rip, rflags;
} sl_regs;

/* The CPU state a snapshot carries: segments, descriptor tables, control
 * registers, EFER, XCR0, debug registers, the system-call MSRs and the whole
 * XSAVE state (x87, MXCSR, XMM and every other component), encoded in the
 * architectural form of cpustate.h, which belongs to no hypervisor. Its
 * header (magic, version, arch, payload length) and every field are checked
 * by sl_sregs_blob_check(), so a blob read from a file is rejected before it
 * reaches the hypervisor. */
#define SL_SREGS_BLOB_SIZE 16384u /* SL_CPU_STATE_MAX (cpustate.h) */
typedef struct sl_sregs_blob {
    uint8_t bytes[SL_SREGS_BLOB_SIZE];
} sl_sregs_blob;

/* Format version of the blob header; bump when the payload layout changes. */
#define SL_SREGS_BLOB_VERSION 3u /* SL_CPU_STATE_VERSION */

/* 0 when b is a well-formed CPU state for arch, else SL_EFORMAT (bad magic,
 * length or field), SL_EVERSION (another version) or SL_EFAMILY (other
 * arch). */
int sl_sregs_blob_check(const sl_sregs_blob *b, unsigned arch, sl_errbuf *e);
/* Bytes of b that hold the encoded state (header included). */
size_t sl_sregs_blob_len(const sl_sregs_blob *b);

enum sl_exit_reason {
    SL_EXIT_IO_OUT = 1, /* guest `out`: port, size, value */
    SL_EXIT_IO_IN,      /* guest `in`: port, size; answer with sl_vcpu_set_in_value */
    SL_EXIT_HLT,        /* guest `hlt` (RIP already past it) */
    SL_EXIT_MEMFAULT,   /* write to a read-only slot, or any access to unmapped GPA */
    SL_EXIT_SHUTDOWN,   /* triple fault */
    SL_EXIT_CANCELLED,  /* sl_vcpu_cancel() */
    SL_EXIT_TIMEOUT,    /* the run's timeout expired */
    SL_EXIT_INTERNAL,   /* the hypervisor could not run the guest; see detail */
};

typedef struct sl_exit {
    int reason;        /* enum sl_exit_reason */
    uint16_t port;     /* IO_OUT / IO_IN */
    uint8_t size;      /* IO_OUT / IO_IN: 1, 2 or 4 bytes */
    uint32_t value;    /* IO_OUT: the value written (zero-extended) */
    uint64_t gpa;      /* MEMFAULT: guest-physical address accessed */
    bool write;        /* MEMFAULT: the access was a write */
    uint64_t rip;      /* guest RIP at the exit, for diagnostics: at or just past
                          the exiting instruction depending on kernel and exit
                          (KVM 6.18 reports `out` and faulting writes past it,
                          faulting reads at it); 0 when the guest did not run */
    char detail[96];   /* human-readable description; empty for IO exits */
} sl_exit;

/* Memory slot flags. */
#define SL_VMEM_READONLY 1u  /* guest writes exit with SL_EXIT_MEMFAULT */
#define SL_VMEM_DIRTY_LOG 2u /* track written pages for sl_vcpu_dirty_log */

/* Number of memory slots an sl_vcpu offers (slot numbers 0..N-1). */
#define SL_VCPU_MAX_SLOTS 32u

/* Running totals since the vCPU was opened: every return of the
 * hypervisor's run call (KVM_RUN) is an exit, counted by reason; every call
 * into the hypervisor for the VM or vCPU (KVM: ioctl) is counted; emulated:
 * the instructions the hypervisor emulated (KVM's insn_emulation statistic;
 * on PVM every CPL0 instruction), 0 where it does not report them. */
typedef struct sl_vcpu_stats {
    uint64_t exits, exits_io, exits_mmio, exits_other, ioctls, emulated;
} sl_vcpu_stats;
void sl_vcpu_get_stats(const sl_vcpu *v, sl_vcpu_stats *out);

/* The backend's name for what runs the vCPU: "kvm" (hardware KVM) or "pvm"
 * (kvm_pvm: CPL0 emulated, CPL3 on the hardware; the guest kernel then lets
 * the host copy and zero its pages, and sl_vcpu_is_pvm is true). */
const char *sl_vcpu_backend_name(const sl_vcpu *v);
bool sl_vcpu_is_pvm(const sl_vcpu *v);

/* Creates a VM with one vCPU for arch (SL_ARCH_AMD64 or SL_ARCH_I686), with
 * CPUID filtered (no VMX/SVM) and MSR access denied where the hypervisor
 * allows. The vCPU has no valid state until sl_vcpu_reset(). Errors:
 * SL_ENOHYPERVISOR when no hypervisor can be opened (KVM: /dev/kvm),
 * SL_EINVAL for a bad arch, SL_EUNSUPPORTED when this hypervisor cannot hold
 * the arch's CPU mode (PVM, a KVM without VT-x/AMD-V, drops CR0.PG outside
 * long mode, so it cannot run i686), SL_ENOMEM, SL_EHYPERVISOR for any other
 * failure. */
int sl_vcpu_open(sl_vcpu **out, unsigned arch, sl_errbuf *e);
void sl_vcpu_free(sl_vcpu *v);

/* True when guest MSR accesses are denied (KVM_CAP_X86_MSR_FILTER present and
 * installed). False only on kernels without the capability. */
bool sl_vcpu_msr_filter_active(const sl_vcpu *v);

/* Says, before sl_vcpu_reset, whether the host rewrote guest page tables
 * since the guest last ran (a restore copying table pages back, another
 * snapshot's tables). changed: the hypervisor forgets any copy it keeps of
 * them (two ioctls under shadow paging: PVM, KVM with ept=0/npt=0) and the
 * reset flushes the guest TLB. Unchanged: the next reset skips its TLB flush
 * (one ioctl less). Without this call a reset always flushes. */
int sl_vcpu_tables_changed(sl_vcpu *v, bool changed, sl_errbuf *e);

/* Maps size bytes at host (page-aligned, owned by the caller, must outlive the
 * mapping) at guest-physical gpa in slot. size 0 deletes the slot. Mapping an
 * existing slot again with other parameters replaces it (its dirty log starts
 * afresh); the same parameters are a no-op. Slots must not overlap. */
int sl_vcpu_map(sl_vcpu *v, unsigned slot, uint64_t gpa, void *host, uint64_t size,
                unsigned flags, sl_errbuf *e);

/* Bytes of bitmap sl_vcpu_dirty_log needs for a slot of size bytes. */
static inline uint64_t sl_vcpu_dirty_bitmap_bytes(uint64_t size)
{
    return ((size / 4096u) + 63u) / 64u * 8u;
}

/* Fills bitmap (sl_vcpu_dirty_bitmap_bytes(slot size) bytes, one bit per
 * 4 KiB page, bit i of word i/64 = page i) with the pages written since the
 * slot was mapped or since the last call, and clears the log. The slot must
 * have SL_VMEM_DIRTY_LOG. A written page is always reported; the log may also
 * hold a page the guest only read (KVM promises a superset: a shadow or nested
 * MMU can map a read page writable and count it), which costs a restore one
 * needless copy, never a lost write. */
int sl_vcpu_dirty_log(sl_vcpu *v, unsigned slot, uint64_t *bitmap, sl_errbuf *e);

/* Puts the vCPU in a clean state for a new run: special registers either fresh
 * (saved == NULL: flat long mode for amd64, flat paged 32-bit protected mode
 * without PAE for i686; CS/DS/ES/FS/GS/SS flat ring 0, an empty IDT and GDT,
 * a busy TSS in TR) or loaded from saved; CR3 = cr3 either way. Always resets
 * the x87/SSE (and XSAVE) state, XCR0, debug registers, KERNEL_GS_BASE and
 * pending events, completes any half-done I/O, and flushes the guest TLB.
 * General registers are not touched: set them with sl_vcpu_set_regs. */
int sl_vcpu_reset(sl_vcpu *v, uint64_t cr3, const sl_sregs_blob *saved, sl_errbuf *e);

int sl_vcpu_get_regs(sl_vcpu *v, sl_regs *r, sl_errbuf *e);
int sl_vcpu_set_regs(sl_vcpu *v, const sl_regs *r, sl_errbuf *e);
int sl_vcpu_get_sregs(sl_vcpu *v, sl_sregs_blob *b, sl_errbuf *e);

/* Runs the guest until an exit the caller must handle (filled into ex) and
 * returns 0, or returns a negative SL_E* when the hypervisor call itself
 * failed (ex->reason is then SL_EXIT_INTERNAL). timeout_ns bounds this call
 * only (0 = no limit); a caller with an overall deadline passes what is left.
 * After SL_EXIT_IO_IN, call sl_vcpu_set_in_value before anything else, or the
 * guest reads all-ones. After an IO or MEMFAULT exit the guest instruction
 * completes on the next run or state access (a faulting write is dropped,
 * a faulting read returns all-ones). */
int sl_vcpu_run(sl_vcpu *v, sl_exit *ex, uint64_t timeout_ns, sl_errbuf *e);

/* Answers the pending SL_EXIT_IO_IN (low `size` bytes of value). SL_ESTATE
 * when the last exit was not an `in`. */
int sl_vcpu_set_in_value(sl_vcpu *v, uint32_t value, sl_errbuf *e);

/* Thread-safe and async-signal-unsafe: makes the running sl_vcpu_run return
 * SL_EXIT_CANCELLED promptly, or, when none is running, the next one (the
 * request is latched until a run consumes it or sl_vcpu_clear_cancel). */
void sl_vcpu_cancel(sl_vcpu *v);
/* Drops a latched cancel request that no run has consumed yet. */
void sl_vcpu_clear_cancel(sl_vcpu *v);

/* The real-time signal reserved for kicking vCPU threads. */
int sl_vcpu_kick_signal(void);

#endif
