/* Finding KVM, opening a VM with one vCPU, closing it, and the KVM ops table
 * (backend.h).
 *
 * PVM (kvm_pvm, "Pagetable Virtual Machine") is a KVM without VT-x/AMD-V: it
 * runs guest code at CPL3 on the hardware and emulates CPL0. It runs x86-64
 * guests (their code is user mode above sandlet's small kernel) but cannot
 * page in 32-bit mode, so i686 guests need hardware KVM or the KVM lab.
 * ../shared/notes/pvm.md has the measurements; docs/decisions.md the
 * consequences. The module's sysfs directory is the only marker PVM offers:
 * it reports no capability of its own through KVM_CHECK_EXTENSION.
 *
 * We deliberately do not call KVM_SET_TSS_ADDR / KVM_SET_IDENTITY_MAP_ADDR.
 * Both create KVM-private memslots of ordinary RAM inside the guest-physical
 * space; a guest with its own page tables could map them and keep data there
 * that no snapshot restore ever resets. VMX needs them only to emulate real
 * mode and unpaged protected mode on CPUs without "unrestricted guest"; our
 * vCPUs are switched to paged protected or long mode by KVM_SET_SREGS before
 * their first KVM_RUN and never leave it. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpureset.h"
#include "kvm_vcpu.h"
#include "x86.h"

#ifndef SL_PVM_SYSFS
#define SL_PVM_SYSFS "/sys/module/kvm_pvm"
#endif

int sl_kvm_ioctl_err(sl_errbuf *e, const char *what)
{
    int err = errno;
    return sl_err(e, SL_EHYPERVISOR, "%s failed: %s (errno %d)", what, strerror(err), err);
}

int sl_kvm_is_pvm(void)
{
    struct stat st;
    return stat(SL_PVM_SYSFS, &st) == 0 && S_ISDIR(st.st_mode);
}

static const char *kvm_probe(unsigned arch, char *why, size_t whylen)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "/dev/kvm: %s", strerror(errno));
        return NULL;
    }
    close(fd);
    if (!sl_kvm_is_pvm())
        return "kvm";
    if (arch == SL_ARCH_I686) {
        snprintf(why, whylen, "the host KVM is PVM (kvm_pvm), which cannot page in 32-bit mode");
        return NULL;
    }
    return "pvm";
}

static int check_cap(int fd, long cap)
{
    int r = ioctl(fd, KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
}

static int check_kvm(int kvm_fd, sl_errbuf *e)
{
    int api = ioctl(kvm_fd, KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION)
        return sl_err(e, SL_EHYPERVISOR, "KVM API version %d, need %d", api, KVM_API_VERSION);
    static const struct {
        long cap;
        const char *name;
    } need[] = {
        {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
        {KVM_CAP_READONLY_MEM, "KVM_CAP_READONLY_MEM"},
        {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
        {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
        {KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS"},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (!check_cap(kvm_fd, need[i].cap))
            return sl_err(e, SL_EHYPERVISOR, "KVM lacks %s", need[i].name);
    return 0;
}

/* CPUID as KVM supports it, filtered by the policy (sl_cpuid_filter). */
static int setup_cpuid(int kvm_fd, int vcpu_fd, sl_errbuf *e)
{
    struct kvm_cpuid2 *c = NULL;
    for (unsigned n = 64;; n *= 2) {
        if (n > 4096)
            return sl_err(e, SL_EHYPERVISOR, "KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
        c = calloc(1, sizeof *c + n * sizeof(struct kvm_cpuid_entry2));
        if (!c)
            return sl_err(e, SL_ENOMEM, "out of memory for CPUID entries");
        c->nent = n;
        if (sl_kvm_xioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
            break;
        int err = errno;
        free(c);
        if (err != E2BIG) {
            errno = err;
            return sl_kvm_ioctl_err(e, "KVM_GET_SUPPORTED_CPUID");
        }
    }
    for (unsigned i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *ent = &c->entries[i];
        uint32_t regs[4] = {ent->eax, ent->ebx, ent->ecx, ent->edx};
        sl_cpuid_filter(ent->function, regs);
        ent->eax = regs[0];
        ent->ebx = regs[1];
        ent->ecx = regs[2];
        ent->edx = regs[3];
    }
    int rc = 0;
    if (sl_kvm_xioctl(vcpu_fd, KVM_SET_CPUID2, c) < 0)
        rc = sl_kvm_ioctl_err(e, "KVM_SET_CPUID2");
    free(c);
    return rc;
}

/* The MSR policy (sl_guest_msrs) as KVM's filter: deny by default (KVM then
 * injects #GP), allow reads and writes in each range. */
static int setup_msr_filter(sl_kvm_vcpu *k, sl_errbuf *e)
{
    if (!check_cap(k->vm_fd, KVM_CAP_X86_MSR_FILTER)) {
        k->base.msr_filter = false; /* old kernel: callers see sl_vcpu_msr_filter_active() */
        return 0;
    }
    _Static_assert(SL_GUEST_MSR_RANGES <= KVM_MSR_FILTER_MAX_RANGES, "more MSR ranges than KVM's filter holds");
    uint8_t bitmaps[SL_GUEST_MSR_RANGES][8];
    struct kvm_msr_filter f;
    memset(&f, 0, sizeof f);
    memset(bitmaps, 0xff, sizeof bitmaps);
    f.flags = KVM_MSR_FILTER_DEFAULT_DENY;
    for (unsigned i = 0; i < SL_GUEST_MSR_RANGES; i++) {
        /* KVM reads ceil(nmsrs / 8) bytes of bitmap, one bit an MSR. */
        if (sl_guest_msrs[i].count > 8 * sizeof bitmaps[i])
            return sl_err(e, SL_EHYPERVISOR, "MSR range of %u exceeds the filter bitmap", sl_guest_msrs[i].count);
        f.ranges[i].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
        f.ranges[i].nmsrs = sl_guest_msrs[i].count;
        f.ranges[i].base = sl_guest_msrs[i].base;
        f.ranges[i].bitmap = bitmaps[i];
    }
    if (sl_kvm_ioctl(k, k->vm_fd, KVM_X86_SET_MSR_FILTER, &f) < 0)
        return sl_kvm_ioctl_err(e, "KVM_X86_SET_MSR_FILTER");
    k->base.msr_filter = true;
    return 0;
}

/* Which FPU interface KVM has, and the size of its XSAVE image. */
static int setup_fpu(sl_kvm_vcpu *k, sl_errbuf *e)
{
    k->has_xsave = check_cap(k->vm_fd, KVM_CAP_XSAVE) > 0;
    k->has_xcrs = check_cap(k->vm_fd, KVM_CAP_XCRS) > 0;
    k->has_debugregs = check_cap(k->vm_fd, KVM_CAP_DEBUGREGS) > 0;
    if (!k->has_xsave)
        return 0;
    /* KVM_CAP_XSAVE2 gives the size KVM_SET_XSAVE reads when it exceeds 4 KiB. */
    int sz2 = check_cap(k->vm_fd, KVM_CAP_XSAVE2);
    k->xsave_size = sizeof(struct kvm_xsave);
    if (sz2 > 0 && (size_t)sz2 > k->xsave_size)
        k->xsave_size = (size_t)sz2;
    if (!(k->xsave_img = calloc(1, k->xsave_size)))
        return sl_err(e, SL_ENOMEM, "out of memory for the XSAVE image");
    return 0;
}

static int map_run(sl_kvm_vcpu *k, int kvm_fd, sl_errbuf *e)
{
    int sz = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (sz < (int)sizeof(struct kvm_run))
        return sl_kvm_ioctl_err(e, "KVM_GET_VCPU_MMAP_SIZE");
    void *p = mmap(NULL, (size_t)sz, PROT_READ | PROT_WRITE, MAP_SHARED, k->vcpu_fd, 0);
    if (p == MAP_FAILED)
        return sl_kvm_ioctl_err(e, "mmap of the kvm_run page");
    k->run = p;
    k->run_size = (size_t)sz;
    return 0;
}

/* KVM's own count of emulated instructions (the vCPU's binary statistics,
 * KVM_GET_STATS_FD, "insn_emulation"): on PVM, every CPL0 instruction. Best
 * effort: without it the count stays 0. */
static void open_stats(sl_kvm_vcpu *k)
{
    struct kvm_stats_header h;
    int fd = ioctl(k->vcpu_fd, KVM_GET_STATS_FD, NULL);
    if (fd < 0)
        return;
    if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h || h.num_desc > 4096 || h.name_size > 256) {
        close(fd);
        return;
    }
    size_t dsz = sizeof(struct kvm_stats_desc) + h.name_size;
    char *d = malloc(dsz * h.num_desc);
    if (d && pread(fd, d, dsz * h.num_desc, h.desc_offset) == (ssize_t)(dsz * h.num_desc)) {
        for (uint32_t i = 0; i < h.num_desc; i++) {
            struct kvm_stats_desc *s = (struct kvm_stats_desc *)(void *)(d + i * dsz);
            if (s->size == 1 && strncmp(s->name, "insn_emulation", h.name_size) == 0) {
                k->emul_off = (uint64_t)h.data_offset + s->offset;
                break;
            }
        }
    }
    free(d);
    if (k->emul_off)
        k->stats_fd = fd;
    else
        close(fd);
}

static bool kvm_emulated(const sl_vcpu *v, uint64_t *n)
{
    const sl_kvm_vcpu *k = sl_kvm_of_const(v);
    return k->stats_fd >= 0 && pread(k->stats_fd, n, sizeof *n, (off_t)k->emul_off) == (ssize_t)sizeof *n;
}

static const char *arch_name(unsigned arch)
{
    return arch == SL_ARCH_AMD64 ? "amd64" : "i686";
}

/* Not every KVM runs every mode: PVM (kvm_pvm, a KVM without hardware
 * virtualization) accepts KVM_SET_SREGS for 32-bit paging but silently drops
 * CR0.PG. Set the fresh state once and read it back, so that such a KVM is a
 * clear error at open instead of a guest that triple-faults. */
static int probe_mode(sl_kvm_vcpu *k, sl_errbuf *e)
{
    struct kvm_sregs want, got;
    sl_cpu_state_fresh(k->base.state, k->base.arch, k->base.tr_type);
    sl_kvm_sregs_from_state(k, k->base.state, &want);
    if (sl_kvm_ioctl(k, k->vcpu_fd, KVM_SET_SREGS, &want) < 0)
        return sl_kvm_ioctl_err(e, "KVM_SET_SREGS (fresh state)");
    if (sl_kvm_ioctl(k, k->vcpu_fd, KVM_GET_SREGS, &got) < 0)
        return sl_kvm_ioctl_err(e, "KVM_GET_SREGS");
    const uint64_t efer_mask = SL_EFER_LME | SL_EFER_LMA | SL_EFER_NXE;
    if (got.cr0 == want.cr0 && got.cr4 == want.cr4 && (got.efer & efer_mask) == (want.efer & efer_mask))
        return 0;
    if (k->pvm)
        return sl_err(e, SL_EUNSUPPORTED,
                      "this KVM is PVM (kvm_pvm), which cannot run %s guests (no paging outside "
                      "long mode); run them under hardware KVM or in the KVM lab (scripts/kvm-lab)",
                      arch_name(k->base.arch));
    return sl_err(e, SL_EUNSUPPORTED,
                  "this KVM cannot run %s guests: it turned CR0/CR4/EFER 0x%llx/0x%llx/0x%llx "
                  "into 0x%llx/0x%llx/0x%llx",
                  arch_name(k->base.arch), (unsigned long long)want.cr0, (unsigned long long)want.cr4,
                  (unsigned long long)want.efer, (unsigned long long)got.cr0, (unsigned long long)got.cr4,
                  (unsigned long long)got.efer);
}

static int create_vm(sl_kvm_vcpu *k, int kvm_fd, sl_errbuf *e)
{
    do
        k->vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
    while (k->vm_fd < 0 && errno == EINTR);
    if (k->vm_fd < 0)
        return sl_kvm_ioctl_err(e, "KVM_CREATE_VM");
    int nslots = check_cap(k->vm_fd, KVM_CAP_NR_MEMSLOTS);
    /* One slot beyond ours is kept for sl_kvm_forget_tables. */
    k->base.max_slots = nslots > 1 && (unsigned)nslots <= SL_VCPU_MAX_SLOTS ? (unsigned)nslots - 1
                                                                            : SL_VCPU_MAX_SLOTS;
    k->zap_slot = k->base.max_slots;
    k->sync_regs = (check_cap(k->vm_fd, KVM_CAP_SYNC_REGS) & KVM_SYNC_X86_REGS) != 0;
    return setup_msr_filter(k, e);
}

static int create_vcpu(sl_kvm_vcpu *k, int kvm_fd, sl_errbuf *e)
{
    k->vcpu_fd = ioctl(k->vm_fd, KVM_CREATE_VCPU, 0);
    if (k->vcpu_fd < 0)
        return sl_kvm_ioctl_err(e, "KVM_CREATE_VCPU");
    int rc;
    if ((rc = map_run(k, kvm_fd, e)) || (rc = setup_cpuid(kvm_fd, k->vcpu_fd, e)) || (rc = setup_fpu(k, e)))
        return rc;
    struct kvm_sregs initial;
    if (sl_kvm_ioctl(k, k->vcpu_fd, KVM_GET_SREGS, &initial) < 0)
        return sl_kvm_ioctl_err(e, "KVM_GET_SREGS");
    k->apic_base = initial.apic_base;
    open_stats(k);
    if ((rc = probe_mode(k, e)))
        return rc;
    /* KVM copies the GPRs into the run page at every exit: RIP for free. */
    k->run->kvm_valid_regs = k->sync_regs ? KVM_SYNC_X86_REGS : 0;
    return 0;
}

static int kvm_open(sl_vcpu *v, sl_errbuf *e)
{
    sl_kvm_vcpu *k = sl_kvm_of(v);
    k->vm_fd = k->vcpu_fd = k->stats_fd = -1;
    int kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm_fd < 0) {
        int err = errno;
        return sl_err(e, SL_ENOHYPERVISOR, "cannot open /dev/kvm: %s (errno %d)", strerror(err), err);
    }
    int rc = check_kvm(kvm_fd, e);
    if (!rc) {
        k->pvm = sl_kvm_is_pvm();
        k->shadow_paging = sl_kvm_uses_shadow_paging(k);
        v->name = k->pvm ? "pvm" : "kvm";
        v->cpl0_emulated = k->pvm;
        rc = create_vm(k, kvm_fd, e);
    }
    if (!rc)
        rc = create_vcpu(k, kvm_fd, e);
    close(kvm_fd); /* the VM fd keeps KVM alive; /dev/kvm is only needed to set up */
    return rc;
}

static void kvm_close(sl_vcpu *v)
{
    sl_kvm_vcpu *k = sl_kvm_of(v);
    if (k->run)
        munmap(k->run, k->run_size);
    if (k->zap_page)
        munmap(k->zap_page, 4096);
    if (k->stats_fd >= 0)
        close(k->stats_fd);
    if (k->vcpu_fd >= 0)
        close(k->vcpu_fd);
    if (k->vm_fd >= 0)
        close(k->vm_fd); /* drops the memslots; the host memory stays the caller's */
    free(k->xsave_img);
}

const sl_vcpu_ops sl_kvm_ops = {
    .name = "kvm",
    .vcpu_size = sizeof(sl_kvm_vcpu),
    .probe = kvm_probe,
    .open = kvm_open,
    .close = kvm_close,
    .set_slot = sl_kvm_set_slot,
    .dirty_log = sl_kvm_dirty_log,
    .forget_tables = sl_kvm_forget_tables,
    .finish_exit = sl_kvm_finish_exit,
    .get_regs = sl_kvm_get_regs,
    .set_regs = sl_kvm_set_regs,
    .get_sregs = sl_kvm_get_sregs,
    .set_sregs = sl_kvm_set_sregs,
    .get_fpu = sl_kvm_get_fpu,
    .set_fpu = sl_kvm_set_fpu,
    .get_xcr0 = sl_kvm_get_xcr0,
    .set_xcr0 = sl_kvm_set_xcr0,
    .get_debugregs = sl_kvm_get_debugregs,
    .set_debugregs = sl_kvm_set_debugregs,
    .get_msrs = sl_kvm_get_msrs,
    .set_msrs = sl_kvm_set_msrs,
    .clear_events = sl_kvm_clear_events,
    .enter = sl_kvm_enter,
    .immediate_exit = sl_kvm_immediate_exit,
    .exit_rip = sl_kvm_exit_rip,
    .set_in_value = sl_kvm_set_in_value,
    .emulated = kvm_emulated,
};
