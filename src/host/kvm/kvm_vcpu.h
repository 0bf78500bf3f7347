/* The KVM backend (backend.h), private to src/host/kvm/: one VM fd, one vCPU
 * fd and its mmap'ed kvm_run page per sl_vcpu. No in-kernel irqchip: the
 * guest gets no interrupts, `hlt` exits to us.
 *   vm.c       probing /dev/kvm (and PVM), opening the VM and vCPU, closing;
 *              the ops table
 *   memslot.c  memslots, the dirty log, dropping shadow page tables
 *   regs.c     neutral register groups to and from KVM's structures
 *   run.c      KVM_RUN, exit decoding, completing half-done I/O */
#ifndef SL_KVM_VCPU_H
#define SL_KVM_VCPU_H

#include <errno.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

#include "backend.h"

/* What the last exit left half-done inside KVM (completed at the next KVM_RUN). */
enum { SL_KVM_PEND_NONE, SL_KVM_PEND_IO_OUT, SL_KVM_PEND_IO_IN, SL_KVM_PEND_MMIO };

typedef struct sl_kvm_vcpu {
    sl_vcpu base; /* first: an sl_vcpu * is an sl_kvm_vcpu * */
    int vm_fd, vcpu_fd;
    struct kvm_run *run;
    size_t run_size;
    bool sync_regs, has_xsave, has_xcrs, has_debugregs;
    bool pvm;           /* /dev/kvm is PVM (sl_kvm_is_pvm) */
    bool shadow_paging; /* KVM shadows the guest's page tables: see memslot.c */
    unsigned zap_slot;  /* KVM slot number kept for forget_tables */
    void *zap_page;
    int stats_fd;      /* KVM binary statistics of the vCPU, or -1 */
    uint64_t emul_off; /* file offset of insn_emulation there, 0: none */
    size_t xsave_size;
    uint8_t *xsave_img; /* KVM_GET/SET_XSAVE buffer of xsave_size bytes */
    uint64_t apic_base;
    int pending;      /* SL_KVM_PEND_* */
    uint8_t *in_data; /* SL_KVM_PEND_IO_IN: where the `in` value goes, in the run page */
    unsigned in_size;
} sl_kvm_vcpu;

static inline sl_kvm_vcpu *sl_kvm_of(sl_vcpu *v)
{
    return (sl_kvm_vcpu *)v;
}

static inline const sl_kvm_vcpu *sl_kvm_of_const(const sl_vcpu *v)
{
    return (const sl_kvm_vcpu *)v;
}

/* SL_EHYPERVISOR naming the ioctl and errno. */
int sl_kvm_ioctl_err(sl_errbuf *e, const char *what);

/* ioctl that retries the EINTR our own kick signal can cause. */
static inline int sl_kvm_xioctl(int fd, unsigned long req, void *arg)
{
    int r;
    do
        r = ioctl(fd, req, arg);
    while (r < 0 && errno == EINTR);
    return r;
}

/* ioctls on behalf of one vCPU are counted (sl_vcpu_stats). */
#define sl_kvm_ioctl(k, fd, req, arg) ((k)->base.stats.ioctls++, sl_kvm_xioctl((fd), (req), (arg)))

/* 1 when /dev/kvm is PVM (kvm_pvm), 0 for hardware KVM or none. */
int sl_kvm_is_pvm(void);

/* memslot.c */
bool sl_kvm_uses_shadow_paging(const sl_kvm_vcpu *k);
int sl_kvm_set_slot(sl_vcpu *v, unsigned slot, const sl_vcpu_slot *s, sl_errbuf *e);
int sl_kvm_dirty_log(sl_vcpu *v, unsigned slot, uint64_t *bitmap, sl_errbuf *e);
int sl_kvm_forget_tables(sl_vcpu *v, sl_errbuf *e);

/* regs.c: the register hooks, and the kvm_sregs a state stands for. */
void sl_kvm_sregs_from_state(const sl_kvm_vcpu *k, const sl_cpu_state *s, struct kvm_sregs *out);
int sl_kvm_get_regs(sl_vcpu *v, sl_regs *r, sl_errbuf *e);
int sl_kvm_set_regs(sl_vcpu *v, const sl_regs *r, sl_errbuf *e);
int sl_kvm_get_sregs(sl_vcpu *v, sl_cpu_state *s, sl_errbuf *e);
int sl_kvm_set_sregs(sl_vcpu *v, const sl_cpu_state *s, bool flush_tlb, sl_errbuf *e);
int sl_kvm_get_fpu(sl_vcpu *v, sl_cpu_state *s, sl_errbuf *e);
int sl_kvm_set_fpu(sl_vcpu *v, const sl_cpu_state *s, sl_errbuf *e);
int sl_kvm_get_xcr0(sl_vcpu *v, uint64_t *xcr0, sl_errbuf *e);
int sl_kvm_set_xcr0(sl_vcpu *v, uint64_t xcr0, sl_errbuf *e);
int sl_kvm_get_debugregs(sl_vcpu *v, sl_cpu_state *s, sl_errbuf *e);
int sl_kvm_set_debugregs(sl_vcpu *v, const sl_cpu_state *s, sl_errbuf *e);
int sl_kvm_get_msrs(sl_vcpu *v, uint64_t msr[SL_CPU_NMSR], sl_errbuf *e);
int sl_kvm_set_msrs(sl_vcpu *v, const uint64_t msr[SL_CPU_NMSR], sl_errbuf *e);
int sl_kvm_clear_events(sl_vcpu *v, sl_errbuf *e);

/* run.c */
int sl_kvm_finish_exit(sl_vcpu *v, sl_errbuf *e);
int sl_kvm_enter(sl_vcpu *v, sl_exit *ex, sl_errbuf *e);
void sl_kvm_immediate_exit(sl_vcpu *v, bool on);
void sl_kvm_exit_rip(sl_vcpu *v, sl_exit *ex);
int sl_kvm_set_in_value(sl_vcpu *v, uint32_t value, sl_errbuf *e);

#endif
