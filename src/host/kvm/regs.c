/* The register hooks of the KVM backend: each neutral register group
 * (sl_regs, sl_cpu_state) to and from KVM's structure for it, in one ioctl.
 * What the values should be is decided in cpureset.c, not here. */
#include <string.h>

#include "cpureset.h"
#include "kvm_vcpu.h"
#include "le.h"
#include "x86.h"
#include "xsave.h"

/* ---- general-purpose registers ---- */

#define SL_GPRS(X)                                                                                      \
    X(rax) X(rbx) X(rcx) X(rdx) X(rsi) X(rdi) X(rsp) X(rbp) X(r8) X(r9) X(r10) X(r11) X(r12) X(r13)       \
        X(r14) X(r15) X(rip) X(rflags)

int sl_kvm_get_regs(sl_vcpu *v, sl_regs *r, sl_errbuf *e)
{
    sl_kvm_vcpu *k = sl_kvm_of(v);
    struct kvm_regs kr;
    if (sl_kvm_ioctl(k, k->vcpu_fd, KVM_GET_REGS, &kr) < 0)
        return sl_kvm_ioctl_err(e, "KVM_GET_REGS");
#define FROM_KVM(f) r->f = kr.f;
    SL_GPRS(FROM_KVM)
#undef FROM_KVM
    return 0;
}

int sl_kvm_set_regs(sl_vcpu *v, const sl_regs *r, sl_errbuf *e)
{
    sl_kvm_vcpu *k = sl_kvm_of(v);
    struct kvm_regs kr;
#define TO_KVM(f) kr.f = r->f;
    SL_GPRS(TO_KVM)
#undef TO_KVM
    if (sl_kvm_ioctl(k, k->vcpu_fd, KVM_SET_REGS, &kr) < 0)
        return sl_kvm_ioctl_err(e, "KVM_SET_REGS");
    return 0;
}

/* ---- segments, descriptor tables, control registers, EFER ---- */

/* Control registers and EFER: the same names in kvm_sregs and sl_cpu_state. */
#define SL_CRS(X) X(cr0) X(cr2) X(cr3) X(cr4) X(cr8) X(efer)

static void seg_from_kvm(sl_cpu_seg *o, const struct kvm_segment *s)
{
    o->base = s->base;
    o->limit = s->limit;
    o->selector = s->selector;
    o->type = s->type & 0xf;
    o->flags = (uint16_t)((s->present ? SL_SEGF_PRESENT : 0) | (unsigned)(s->dpl & 3) << SL_SEGF_DPL_SHIFT |
                          (s->db ? SL_SEGF_DB : 0) | (s->s ? SL_SEGF_S : 0) | (s->l ? SL_SEGF_L : 0) |
                          (s->g ? SL_SEGF_G : 0) | (s->avl ? SL_SEGF_AVL : 0) |
                          (s->unusable ? SL_SEGF_UNUSABLE : 0));
}

static void seg_to_kvm(struct kvm_segment *s, const sl_cpu_seg *o)
{
    memset(s, 0, sizeof *s);
    s->base = o->base;
    s->limit = o->limit;
    s->selector = o->selector;
    s->type = o->type;
    s->present = (o->flags & SL_SEGF_PRESENT) != 0;
    s->dpl = (o->flags >> SL_SEGF_DPL_SHIFT) & 3;
    s->db = (o->flags & SL_SEGF_DB) != 0;
    s->s = (o->flags & SL_SEGF_S) != 0;
    s->l = (o->flags & SL_SEGF_L) != 0;
    s->g = (o->flags & SL_SEGF_G) != 0;
    s->avl = (o->flags & SL_SEGF_AVL) != 0;
    s->unusable = (o->flags & SL_SEGF_UNUSABLE) != 0;
}

static struct kvm_segment *kseg(struct kvm_sregs *s, unsigned i)
{
    struct kvm_segment *t[SL_SEG_COUNT] = {&s->cs, &s->ds, &s->es, &s->fs, &s->gs, &s->ss, &s->tr, &s->ldt};
    return t[i];
}

void sl_kvm_sregs_from_state(const sl_kvm_vcpu *k, const sl_cpu_state *st, struct kvm_sregs *s)
{
    memset(s, 0, sizeof *s); /* no interrupt pending in interrupt_bitmap */
    for (unsigned i = 0; i < SL_SEG_COUNT; i++)
        seg_to_kvm(kseg(s, i), &st->seg[i]);
    s->gdt.base = st->gdt_base;
    s->gdt.limit = st->gdt_limit;
    s->idt.base = st->idt_base;
    s->idt.limit = st->idt_limit;
#define TO_KVM(f) s->f = st->f;
    SL_CRS(TO_KVM)
#undef TO_KVM
    s->apic_base = k->apic_base; /* not the guest's (nor a file's) to choose */
}

int sl_kvm_get_sregs(sl_vcpu *v, sl_cpu_state *st, sl_errbuf *e)
{
    sl_kvm_vcpu *k = sl_kvm_of(v);
    struct kvm_sregs s;
    if (sl_kvm_ioctl(k, k->vcpu_fd, KVM_GET_SREGS, &s) < 0)
        return sl_kvm_ioctl_err(e, "KVM_GET_SREGS");
    for (unsigned i = 0; i < SL_SEG_COUNT; i++)
        seg_from_kvm(&st->seg[i], kseg(&s, i));
    st->gdt_base = s.gdt.base;
    st->gdt_limit = s.gdt.limit;
    st->idt_base = s.idt.base;
    st->idt_limit = s.idt.limit;
#define FROM_KVM(f) st->f = s.f;
    SL_CRS(FROM_KVM)
#undef FROM_KVM
    return 0;
}

int sl_kvm_set_sregs(sl_vcpu *v, const sl_cpu_state *st, bool flush_tlb, sl_errbuf *e)
{
    sl_kvm_vcpu *k = sl_kvm_of(v);
    struct kvm_sregs s;
    sl_kvm_sregs_from_state(k, st, &s);
    /* KVM flushes the guest TLB on KVM_SET_SREGS only when CR0, CR3, CR4 or
     * EFER differ from the current values (kvm_mmu_reset_context, plus
     * KVM_REQ_TLB_FLUSH_GUEST on newer kernels). A restore usually reuses the
     * same CR3 for freshly rewritten page tables, so set the state twice: first
     * with CR4.OSXMMEXCPT flipped, then as wanted; the second call always sees
     * a change and drops every translation the guest had cached. */
    struct kvm_sregs bounce = s;
    bounce.cr4 ^= SL_CR4_OSXMMEXCPT;
    if ((flush_tlb && sl_kvm_ioctl(k, k->vcpu_fd, KVM_SET_SREGS, &bounce) < 0) ||
        sl_kvm_ioctl(k, k->vcpu_fd, KVM_SET_SREGS, &s) < 0)
        return sl_kvm_ioctl_err(e, "KVM_SET_SREGS");
    /* Without an in-kernel LAPIC, KVM reloads CR8 from kvm_run at every entry. */
    k->run->cr8 = s.cr8;
    return 0;
}

/* ---- x87, SSE and XSAVE ---- */

/* Without KVM_CAP_XSAVE: x87 and SSE through struct kvm_fpu. */
static void fpu_to_legacy(const struct kvm_fpu *f, uint8_t *l)
{
    memset(l, 0, 512);
    sl_put16(l + SL_FXSAVE_FCW, f->fcw);
    sl_put16(l + 2, f->fsw);
    l[4] = f->ftwx;
    sl_put16(l + 6, f->last_opcode);
    sl_put64(l + 8, f->last_ip);
    sl_put64(l + 16, f->last_dp);
    sl_put32(l + SL_FXSAVE_MXCSR, f->mxcsr);
    for (unsigned i = 0; i < 8; i++)
        memcpy(l + SL_FXSAVE_ST + 16 * i, f->fpr[i], 16);
    for (unsigned i = 0; i < 16; i++)
        memcpy(l + SL_FXSAVE_XMM + 16 * i, f->xmm[i], 16);
}

static void legacy_to_fpu(const uint8_t *l, struct kvm_fpu *f)
{
    memset(f, 0, sizeof *f);
    f->fcw = sl_get16(l + SL_FXSAVE_FCW);
    f->fsw = sl_get16(l + 2);
    f->ftwx = l[4];
    f->last_opcode = sl_get16(l + 6);
    f->last_ip = sl_get64(l + 8);
    f->last_dp = sl_get64(l + 16);
    f->mxcsr = sl_get32(l + SL_FXSAVE_MXCSR);
    for (unsigned i = 0; i < 8; i++)
        memcpy(f->fpr[i], l + SL_FXSAVE_ST + 16 * i, 16);
    for (unsigned i = 0; i < 16; i++)
        memcpy(f->xmm[i], l + SL_FXSAVE_XMM + 16 * i, 16);
}

int sl_kvm_get_fpu(sl_vcpu *v, sl_cpu_state *st, sl_errbuf *e)
{
    sl_kvm_vcpu *k = sl_kvm_of(v);
    if (k->has_xsave) {
        unsigned long req = k->xsave_size > sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
        if (sl_kvm_ioctl(k, k->vcpu_fd, req, k->xsave_img) < 0)
            return sl_kvm_ioctl_err(e, "KVM_GET_XSAVE");
        sl_xsave_to_state(k->xsave_img, k->xsave_size, st);
        return 0;
    }
    struct kvm_fpu f;
    if (sl_kvm_ioctl(k, k->vcpu_fd, KVM_GET_FPU, &f) < 0)
        return sl_kvm_ioctl_err(e, "KVM_GET_FPU");
    fpu_to_legacy(&f, st->legacy);
    st->xstate_bv = 3;
    return 0;
}

int sl_kvm_set_fpu(sl_vcpu *v, const sl_cpu_state *st, sl_errbuf *e)
{
    sl_kvm_vcpu *k = sl_kvm_of(v);
    if (k->has_xsave) {
        int rc = sl_xsave_from_state(st, k->xsave_img, k->xsave_size, e);
        if (rc)
            return rc;
        if (sl_kvm_ioctl(k, k->vcpu_fd, KVM_SET_XSAVE, k->xsave_img) < 0)
            return sl_kvm_ioctl_err(e, "KVM_SET_XSAVE");
        return 0;
    }
    struct kvm_fpu f;
    legacy_to_fpu(st->legacy, &f);
    if (sl_kvm_ioctl(k, k->vcpu_fd, KVM_SET_FPU, &f) < 0)
        return sl_kvm_ioctl_err(e, "KVM_SET_FPU");
    return 0;
}

int sl_kvm_get_xcr0(sl_vcpu *v, uint64_t *xcr0, sl_errbuf *e)
{
    sl_kvm_vcpu *k = sl_kvm_of(v);
    if (!k->has_xcrs)
        return 0;
    struct kvm_xcrs x;
    memset(&x, 0, sizeof x);
    if (sl_kvm_ioctl(k, k->vcpu_fd, KVM_GET_XCRS, &x) < 0)
        return sl_kvm_ioctl_err(e, "KVM_GET_XCRS");
    for (unsigned i = 0; i < x.nr_xcrs && i < KVM_MAX_XCRS; i++)
        if (x.xcrs[i].xcr == 0)
            *xcr0 = x.xcrs[i].value;
    return 0;
}

int sl_kvm_set_xcr0(sl_vcpu *v, uint64_t xcr0, sl_errbuf *e)
{
    sl_kvm_vcpu *k = sl_kvm_of(v);
    if (!k->has_xcrs)
        return 0;
    struct kvm_xcrs x;
    memset(&x, 0, sizeof x);
    x.nr_xcrs = 1;
    x.xcrs[0].xcr = 0;
    x.xcrs[0].value = xcr0;
    if (sl_kvm_ioctl(k, k->vcpu_fd, KVM_SET_XCRS, &x) < 0)
        return sl_kvm_ioctl_err(e, "KVM_SET_XCRS");
    return 0;
}

/* ---- debug registers, MSRs, events ---- */

int sl_kvm_get_debugregs(sl_vcpu *v, sl_cpu_state *st, sl_errbuf *e)
{
    sl_kvm_vcpu *k = sl_kvm_of(v);
    if (!k->has_debugregs)
        return 0;
    struct kvm_debugregs d;
    if (sl_kvm_ioctl(k, k->vcpu_fd, KVM_GET_DEBUGREGS, &d) < 0)
        return sl_kvm_ioctl_err(e, "KVM_GET_DEBUGREGS");
    for (unsigned i = 0; i < 4; i++)
        st->dr[i] = d.db[i];
    st->dr6 = d.dr6;
    st->dr7 = d.dr7;
    return 0;
}

int sl_kvm_set_debugregs(sl_vcpu *v, const sl_cpu_state *st, sl_errbuf *e)
{
    sl_kvm_vcpu *k = sl_kvm_of(v);
    if (!k->has_debugregs)
        return 0;
    struct kvm_debugregs d;
    memset(&d, 0, sizeof d);
    for (unsigned i = 0; i < 4; i++)
        d.db[i] = st->dr[i];
    d.dr6 = st->dr6;
    d.dr7 = st->dr7;
    if (sl_kvm_ioctl(k, k->vcpu_fd, KVM_SET_DEBUGREGS, &d) < 0)
        return sl_kvm_ioctl_err(e, "KVM_SET_DEBUGREGS");
    return 0;
}

/* Reads or writes the state's MSRs (cpureset.h) in one ioctl. */
static int msrs_io(sl_kvm_vcpu *k, bool set, uint64_t *vals, sl_errbuf *e)
{
    union {
        struct kvm_msrs h;
        uint8_t buf[sizeof(struct kvm_msrs) + SL_CPU_NMSR * sizeof(struct kvm_msr_entry)];
    } m;
    memset(&m, 0, sizeof m);
    m.h.nmsrs = SL_CPU_NMSR;
    for (size_t i = 0; i < SL_CPU_NMSR; i++) {
        struct kvm_msr_entry ent = {.index = sl_cpu_state_msrs[i], .data = set ? vals[i] : 0};
        memcpy(m.buf + sizeof(struct kvm_msrs) + i * sizeof ent, &ent, sizeof ent);
    }
    int n = sl_kvm_ioctl(k, k->vcpu_fd, set ? KVM_SET_MSRS : KVM_GET_MSRS, &m);
    if (n < 0)
        return sl_kvm_ioctl_err(e, set ? "KVM_SET_MSRS (system-call MSRs)" : "KVM_GET_MSRS (system-call MSRs)");
    if (n != (int)SL_CPU_NMSR) /* KVM stops at the first MSR it refuses */
        return sl_err(e, SL_EHYPERVISOR, "KVM %s MSR 0x%x (value 0x%llx)", set ? "refused to set" : "could not read",
                      sl_cpu_state_msrs[n], set ? (unsigned long long)vals[n] : 0ull);
    for (size_t i = 0; !set && i < SL_CPU_NMSR; i++) {
        struct kvm_msr_entry ent;
        memcpy(&ent, m.buf + sizeof(struct kvm_msrs) + i * sizeof ent, sizeof ent);
        vals[i] = ent.data;
    }
    return 0;
}

int sl_kvm_get_msrs(sl_vcpu *v, uint64_t msr[SL_CPU_NMSR], sl_errbuf *e)
{
    return msrs_io(sl_kvm_of(v), false, msr, e);
}

int sl_kvm_set_msrs(sl_vcpu *v, const uint64_t msr[SL_CPU_NMSR], sl_errbuf *e)
{
    uint64_t vals[SL_CPU_NMSR];
    memcpy(vals, msr, sizeof vals);
    return msrs_io(sl_kvm_of(v), true, vals, e);
}

int sl_kvm_clear_events(sl_vcpu *v, sl_errbuf *e)
{
    sl_kvm_vcpu *k = sl_kvm_of(v);
    struct kvm_vcpu_events ev;
    memset(&ev, 0, sizeof ev);
    ev.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW;
    if (sl_kvm_ioctl(k, k->vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
        return sl_kvm_ioctl_err(e, "KVM_SET_VCPU_EVENTS");
    return 0;
}
