/* KVM backend of the vCPU interface (vcpu.h, DESIGN.md §4).
 *
 * One sl_vcpu = one VM fd + one vCPU fd + its mmap'ed kvm_run page. No
 * in-kernel irqchip: the guest gets no interrupts, `hlt` exits to us.
 *
 * Cancellation: sl_vcpu_cancel() latches a request under v->lock, sets
 * kvm_run->immediate_exit and, when a run is in progress, sends the reserved
 * real-time signal to the running thread. The signal's handler does nothing;
 * its only job is to make KVM_RUN return EINTR. The two mechanisms cover each
 * other's races: a signal that lands just before the thread enters KVM_RUN is
 * consumed in user space, but then immediate_exit (set before the signal,
 * read by KVM at entry) stops the entry; a cancel after entry is seen by the
 * signal. A request that finds no run stays latched for the next one.
 *
 * Timeouts use a POSIX timer that sends the same signal to the running thread
 * (SIGEV_THREAD_ID). A timer signal can also land just before KVM_RUN and be
 * lost, and there is no lock to order it against; so after the first expiry
 * the timer keeps firing every millisecond until the run returns, and each
 * EINTR compares the clock with the deadline.
 *
 * We deliberately do not call KVM_SET_TSS_ADDR / KVM_SET_IDENTITY_MAP_ADDR.
 * Both create KVM-private memslots of ordinary RAM inside the guest-physical
 * space; a guest with its own page tables could map them and keep data there
 * that no snapshot restore ever resets. VMX needs them only to emulate real
 * mode and unpaged protected mode on CPUs without "unrestricted guest"; our
 * vCPUs are switched to paged protected or long mode by KVM_SET_SREGS before
 * their first KVM_RUN and never leave it. */
#include "backend.h"
#include "cpustate.h"
#include "vcpu.h"

#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

#define KICK_SIGNAL_OFFSET 6 /* SIGRTMIN + 6 */

#define CR0_PE (1ull << 0)
#define CR0_MP (1ull << 1)
#define CR0_ET (1ull << 4)
#define CR0_NE (1ull << 5)
#define CR0_WP (1ull << 16)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)
#define EFER_SCE (1ull << 0)
#define MSR_STAR 0xC0000081u
#define MSR_LSTAR 0xC0000082u
#define MSR_CSTAR 0xC0000083u
#define MSR_SFMASK 0xC0000084u
#define MSR_FS_BASE 0xC0000100u
#define MSR_KERNEL_GS_BASE 0xC0000102u

/* TSS descriptor types (32- and 64-bit alike). */
#define TSS_AVAILABLE 0x9u
#define TSS_BUSY 0xbu

#define FCW_RESET 0x37fu
#define MXCSR_RESET 0x1f80u
#define XCR0_RESET 1u /* x87 only, the power-on value */

/* The state a snapshot carries is the architectural one of cpustate.h,
 * converted here to and from KVM's structures. XCR0 and KERNEL_GS_BASE ride
 * along because a guest changes them without any MSR write (xsetbv, swapgs);
 * STAR, LSTAR, CSTAR and SFMASK because the guest kernel sets them once at
 * boot and every later `syscall` needs them. */
static const uint32_t blob_msrs[SL_CPU_NMSR] = {MSR_KERNEL_GS_BASE, MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SFMASK};
#define N_BLOB_MSRS SL_CPU_NMSR

struct slot {
    bool used;
    uint64_t gpa, size;
    void *host;
    unsigned flags;
};

/* What the last exit left half-done inside KVM (completed at the next KVM_RUN). */
enum { PEND_NONE, PEND_IO_OUT, PEND_IO_IN, PEND_MMIO };

struct sl_vcpu {
    unsigned arch;
    int vm_fd, vcpu_fd;
    struct kvm_run *run;
    size_t run_size;
    unsigned max_slots;
    bool msr_filter, sync_regs, has_xsave, has_xcrs, has_debugregs;
    bool pvm;           /* /dev/kvm is PVM (backend.c) */
    bool shadow_paging; /* KVM shadows the guest's page tables: see sl_vcpu_tables_changed */
    unsigned zap_slot;  /* KVM slot number kept for sl_vcpu_tables_changed */
    void *zap_page;
    bool keep_tlb;      /* the next sl_vcpu_reset may skip its TLB flush */
    int stats_fd;       /* KVM binary statistics of the vCPU, or -1 */
    uint64_t emul_off;  /* file offset of insn_emulation there, 0: none */
    size_t xsave_size;
    void *xsave_clean; /* KVM_SET_XSAVE image of the reset FPU state */
    uint64_t apic_base;
    struct kvm_sregs initial_sregs;
    struct slot slots[SL_VCPU_MAX_SLOTS];
    sl_vcpu_stats stats;
    uint8_t tr_type; /* TSS_AVAILABLE or TSS_BUSY: see tr_type() */
    int pending;
    uint8_t *in_data; /* PEND_IO_IN: where the `in` value goes, in the run page */
    unsigned in_size;

    pthread_mutex_t lock; /* guards cancel_req, in_run, runner, run->immediate_exit */
    bool cancel_req, in_run;
    pthread_t runner;

    bool timer_ok;
    timer_t timer;
    pid_t timer_tid;
};

/* ---- errors ---- */

static int ioctl_err(sl_errbuf *e, const char *what)
{
    int err = errno;
    return sl_err(e, SL_EHYPERVISOR, "%s failed: %s (errno %d)", what, strerror(err), err);
}

/* ioctl that retries the EINTR our own kick signal can cause. */
static int xioctl(int fd, unsigned long req, void *arg)
{
    int r;
    do
        r = ioctl(fd, req, arg);
    while (r < 0 && errno == EINTR);
    return r;
}

/* ioctls on behalf of one vCPU are counted (sl_vcpu_stats). */
#define vioctl(v, fd, req, arg) ((v)->stats.ioctls++, xioctl((fd), (req), (arg)))

/* ---- the kick signal ---- */

static void kick_handler(int sig)
{
    (void)sig; /* existing only makes KVM_RUN return EINTR */
}

static pthread_once_t kick_once = PTHREAD_ONCE_INIT;
static int kick_install_errno;  /* 0 = installed */
static bool kick_install_taken; /* someone else owns the signal */

static void kick_install(void)
{
    int sig = sl_vcpu_kick_signal();
    struct sigaction old;
    if (sigaction(sig, NULL, &old) < 0) {
        kick_install_errno = errno;
        return;
    }
    bool custom = (old.sa_flags & SA_SIGINFO) ? old.sa_sigaction != NULL
                                               : (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN);
    if (custom) {
        kick_install_taken = true;
        kick_install_errno = EBUSY;
        return;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = kick_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: KVM_RUN must come back with EINTR */
    if (sigaction(sig, &sa, NULL) < 0)
        kick_install_errno = errno;
}

int sl_vcpu_kick_signal(void)
{
    return SIGRTMIN + KICK_SIGNAL_OFFSET;
}

/* ---- sregs blob ---- */

size_t sl_sregs_blob_len(const sl_sregs_blob *b)
{
    uint64_t plen = (uint64_t)b->bytes[8] | (uint64_t)b->bytes[9] << 8 | (uint64_t)b->bytes[10] << 16 |
                    (uint64_t)b->bytes[11] << 24;
    return plen > SL_SREGS_BLOB_SIZE - 16 ? SL_SREGS_BLOB_SIZE : (size_t)plen + 16;
}

int sl_sregs_blob_check(const sl_sregs_blob *b, unsigned arch, sl_errbuf *e)
{
    if (!b)
        return sl_err(e, SL_EINVAL, "sregs blob: NULL");
    sl_cpu_state *st = malloc(sizeof *st);
    if (!st)
        return sl_err(e, SL_ENOMEM, "out of memory for the CPU state");
    int rc = sl_cpu_state_decode(b->bytes, sl_sregs_blob_len(b), arch, st, e);
    free(st);
    return rc;
}

/* The TR type a reset loads. Intel's VM entry requires a busy TSS. AMD
 * hardware ignores the busy bit of the loaded TR, but KVM's SVM code reports
 * TR as busy whatever it is, and QEMU's emulated SVM (the KVM lab) keeps TR
 * "available" in its CPU state: handed a busy TR it aborts on the first
 * privilege change in 32-bit mode and fails every I/O-bitmap check. So on
 * AMD the reset loads TR as available, as `ltr` leaves it there. */
static uint8_t tr_type(void)
{
    unsigned a, b, c, d;
    bool amd = __get_cpuid(0, &a, &b, &c, &d) &&
               ((b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163) || /* "AuthenticAMD" */
                (b == 0x6f677948 && d == 0x6e65476e && c == 0x656e6975));  /* "HygonGenuine" */
    return amd ? TSS_AVAILABLE : TSS_BUSY;
}

/* ---- open / free ---- */

static void fresh_sregs(const sl_vcpu *v, struct kvm_sregs *s);

static int check_cap(int fd, long cap)
{
    int r = ioctl(fd, KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
}

/* CPUID as KVM supports it, minus VMX and SVM: the guest must not believe it
 * can run a hypervisor of its own. */
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
        if (xioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
            break;
        int err = errno;
        free(c);
        if (err != E2BIG) {
            errno = err;
            return ioctl_err(e, "KVM_GET_SUPPORTED_CPUID");
        }
    }
    for (unsigned i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *ent = &c->entries[i];
        if (ent->function == 1)
            ent->ecx &= ~(1u << 5); /* VMX */
        else if (ent->function == 0x80000001u)
            ent->ecx &= ~(1u << 2); /* SVM */
    }
    int rc = 0;
    if (xioctl(vcpu_fd, KVM_SET_CPUID2, c) < 0)
        rc = ioctl_err(e, "KVM_SET_CPUID2");
    free(c);
    return rc;
}

/* Deny every guest RDMSR/WRMSR (KVM then injects #GP) except the ones a
 * kernel owns for system calls and segment bases: STAR, LSTAR, CSTAR,
 * SFMASK, FS_BASE, GS_BASE and KERNEL_GS_BASE, which the guest kernel
 * writes at boot and for arch_prctl. */
static int setup_msr_filter(sl_vcpu *v, sl_errbuf *e)
{
    if (!check_cap(v->vm_fd, KVM_CAP_X86_MSR_FILTER)) {
        v->msr_filter = false; /* old kernel: callers see sl_vcpu_msr_filter_active() */
        return 0;
    }
    uint8_t syscall_msrs = 0x0F, base_msrs = 0x07;
    struct kvm_msr_filter f;
    memset(&f, 0, sizeof f);
    f.flags = KVM_MSR_FILTER_DEFAULT_DENY;
    f.ranges[0].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
    f.ranges[0].nmsrs = 4;
    f.ranges[0].base = MSR_STAR;
    f.ranges[0].bitmap = &syscall_msrs;
    f.ranges[1].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
    f.ranges[1].nmsrs = 3;
    f.ranges[1].base = MSR_FS_BASE;
    f.ranges[1].bitmap = &base_msrs;
    if (vioctl(v, v->vm_fd, KVM_X86_SET_MSR_FILTER, &f) < 0)
        return ioctl_err(e, "KVM_X86_SET_MSR_FILTER");
    v->msr_filter = true;
    return 0;
}

/* Little-endian stores into the XSAVE image (standard format). */
static void put16(uint8_t *p, uint16_t x)
{
    p[0] = (uint8_t)x;
    p[1] = (uint8_t)(x >> 8);
}
static void put32(uint8_t *p, uint32_t x)
{
    put16(p, (uint16_t)x);
    put16(p + 2, (uint16_t)(x >> 16));
}

static int setup_fpu_image(sl_vcpu *v, sl_errbuf *e)
{
    v->has_xsave = check_cap(v->vm_fd, KVM_CAP_XSAVE) > 0;
    v->has_xcrs = check_cap(v->vm_fd, KVM_CAP_XCRS) > 0;
    v->has_debugregs = check_cap(v->vm_fd, KVM_CAP_DEBUGREGS) > 0;
    if (!v->has_xsave)
        return 0;
    /* KVM_CAP_XSAVE2 gives the size KVM_SET_XSAVE reads when it exceeds 4 KiB. */
    int sz2 = check_cap(v->vm_fd, KVM_CAP_XSAVE2);
    v->xsave_size = sizeof(struct kvm_xsave);
    if (sz2 > 0 && (size_t)sz2 > v->xsave_size)
        v->xsave_size = (size_t)sz2;
    uint8_t *img = calloc(1, v->xsave_size);
    if (!img)
        return sl_err(e, SL_ENOMEM, "out of memory for the XSAVE image");
    put16(img + 0, FCW_RESET);    /* FCW; FSW, abridged FTW (all empty) stay 0 */
    put32(img + 24, MXCSR_RESET); /* MXCSR */
    img[512] = 0x3;               /* XSTATE_BV: x87 and SSE as given; all else init */
    v->xsave_clean = img;
    return 0;
}

static int map_run(sl_vcpu *v, int kvm_fd, sl_errbuf *e)
{
    int sz = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (sz < (int)sizeof(struct kvm_run))
        return ioctl_err(e, "KVM_GET_VCPU_MMAP_SIZE");
    void *p = mmap(NULL, (size_t)sz, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu_fd, 0);
    if (p == MAP_FAILED)
        return ioctl_err(e, "mmap of the kvm_run page");
    v->run = p;
    v->run_size = (size_t)sz;
    return 0;
}

/* Not every KVM runs every mode: PVM (kvm_pvm, a KVM without hardware
 * virtualization) accepts KVM_SET_SREGS for 32-bit paging but silently drops
 * CR0.PG. Set the fresh state once and read it back, so that such a KVM is a
 * clear error at open instead of a guest that triple-faults. */
static int probe_mode(sl_vcpu *v, sl_errbuf *e)
{
    struct kvm_sregs want, got;
    fresh_sregs(v, &want);
    want.cr3 = 0;
    if (vioctl(v, v->vcpu_fd, KVM_SET_SREGS, &want) < 0)
        return ioctl_err(e, "KVM_SET_SREGS (fresh state)");
    if (vioctl(v, v->vcpu_fd, KVM_GET_SREGS, &got) < 0)
        return ioctl_err(e, "KVM_GET_SREGS");
    const uint64_t efer_mask = EFER_LME | EFER_LMA | EFER_NXE;
    if (got.cr0 != want.cr0 || got.cr4 != want.cr4 ||
        (got.efer & efer_mask) != (want.efer & efer_mask)) {
        if (v->pvm)
            return sl_err(e, SL_EUNSUPPORTED,
                          "this KVM is PVM (kvm_pvm), which cannot run %s guests (no paging outside "
                          "long mode); run them under hardware KVM or in the KVM lab (scripts/kvm-lab)",
                          v->arch == SL_ARCH_AMD64 ? "amd64" : "i686");
        return sl_err(e, SL_EUNSUPPORTED,
                      "this KVM cannot run %s guests: it turned CR0/CR4/EFER 0x%llx/0x%llx/0x%llx "
                      "into 0x%llx/0x%llx/0x%llx",
                      v->arch == SL_ARCH_AMD64 ? "amd64" : "i686", (unsigned long long)want.cr0,
                      (unsigned long long)want.cr4, (unsigned long long)want.efer,
                      (unsigned long long)got.cr0, (unsigned long long)got.cr4,
                      (unsigned long long)got.efer);
    }
    return 0;
}

static bool uses_shadow_paging(const sl_vcpu *v);
static void open_stats(sl_vcpu *v);

static int open_vm(sl_vcpu *v, int kvm_fd, sl_errbuf *e)
{
    int api = ioctl(kvm_fd, KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION)
        return sl_err(e, SL_EHYPERVISOR, "KVM API version %d, need %d", api, KVM_API_VERSION);
    v->pvm = sl_kvm_is_pvm();
    v->shadow_paging = uses_shadow_paging(v);
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

    do
        v->vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
    while (v->vm_fd < 0 && errno == EINTR);
    if (v->vm_fd < 0)
        return ioctl_err(e, "KVM_CREATE_VM");
    int nslots = check_cap(v->vm_fd, KVM_CAP_NR_MEMSLOTS);
    /* One slot beyond ours is kept for sl_vcpu_tables_changed. */
    v->max_slots = nslots > 1 && (unsigned)nslots <= SL_VCPU_MAX_SLOTS ? (unsigned)nslots - 1
                                                                       : SL_VCPU_MAX_SLOTS;
    v->zap_slot = v->max_slots;
    v->sync_regs = (check_cap(v->vm_fd, KVM_CAP_SYNC_REGS) & KVM_SYNC_X86_REGS) != 0;

    int rc = setup_msr_filter(v, e);
    if (rc)
        return rc;
    v->vcpu_fd = ioctl(v->vm_fd, KVM_CREATE_VCPU, 0);
    if (v->vcpu_fd < 0)
        return ioctl_err(e, "KVM_CREATE_VCPU");
    if ((rc = map_run(v, kvm_fd, e)) || (rc = setup_cpuid(kvm_fd, v->vcpu_fd, e)) ||
        (rc = setup_fpu_image(v, e)))
        return rc;
    if (vioctl(v, v->vcpu_fd, KVM_GET_SREGS, &v->initial_sregs) < 0)
        return ioctl_err(e, "KVM_GET_SREGS");
    v->apic_base = v->initial_sregs.apic_base;
    open_stats(v);
    if ((rc = probe_mode(v, e)))
        return rc;
    /* KVM copies the GPRs into the run page at every exit: RIP for free. */
    v->run->kvm_valid_regs = v->sync_regs ? KVM_SYNC_X86_REGS : 0;
    return 0;
}

int sl_vcpu_open(sl_vcpu **out, unsigned arch, sl_errbuf *e)
{
    if (!out)
        return sl_err(e, SL_EINVAL, "sl_vcpu_open: NULL out");
    *out = NULL;
    if (arch != SL_ARCH_AMD64 && arch != SL_ARCH_I686)
        return sl_err(e, SL_EINVAL, "sl_vcpu_open: unknown arch %u", arch);
    pthread_once(&kick_once, kick_install);
    if (kick_install_errno)
        return sl_err(e, SL_EHYPERVISOR, "cannot install the vCPU kick handler for signal %d: %s",
                      sl_vcpu_kick_signal(),
                      kick_install_taken ? "another handler owns it" : strerror(kick_install_errno));

    int kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm_fd < 0) {
        int err = errno;
        return sl_err(e, SL_EKVM_MISSING, "cannot open /dev/kvm: %s (errno %d)", strerror(err), err);
    }
    sl_vcpu *v = calloc(1, sizeof *v);
    if (!v) {
        close(kvm_fd);
        return sl_err(e, SL_ENOMEM, "out of memory for the vCPU");
    }
    v->arch = arch;
    v->tr_type = tr_type();
    v->vm_fd = v->vcpu_fd = v->stats_fd = -1;
    int rc = pthread_mutex_init(&v->lock, NULL);
    if (rc) {
        free(v);
        close(kvm_fd);
        return sl_err(e, SL_ENOMEM, "pthread_mutex_init: %s", strerror(rc));
    }
    rc = open_vm(v, kvm_fd, e);
    close(kvm_fd); /* the VM fd keeps KVM alive; /dev/kvm is only needed to set up */
    if (rc) {
        sl_vcpu_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

void sl_vcpu_free(sl_vcpu *v)
{
    if (!v)
        return;
    if (v->timer_ok)
        timer_delete(v->timer);
    if (v->run)
        munmap(v->run, v->run_size);
    if (v->zap_page)
        munmap(v->zap_page, 4096);
    if (v->stats_fd >= 0)
        close(v->stats_fd);
    if (v->vcpu_fd >= 0)
        close(v->vcpu_fd);
    if (v->vm_fd >= 0)
        close(v->vm_fd); /* drops the memslots; the host memory stays the caller's */
    free(v->xsave_clean);
    pthread_mutex_destroy(&v->lock);
    free(v);
}

bool sl_vcpu_msr_filter_active(const sl_vcpu *v)
{
    return v && v->msr_filter;
}

/* ---- memory ---- */

static int set_region(sl_vcpu *v, unsigned slot, uint64_t gpa, void *host, uint64_t size,
                      unsigned flags, sl_errbuf *e)
{
    struct kvm_userspace_memory_region r;
    memset(&r, 0, sizeof r);
    r.slot = slot;
    r.guest_phys_addr = gpa;
    r.memory_size = size;
    r.userspace_addr = (uint64_t)(uintptr_t)host;
    r.flags = ((flags & SL_VMEM_READONLY) ? KVM_MEM_READONLY : 0) |
              ((flags & SL_VMEM_DIRTY_LOG) ? KVM_MEM_LOG_DIRTY_PAGES : 0);
    if (vioctl(v, v->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
        int err = errno;
        return sl_err(e, SL_EHYPERVISOR,
                      "KVM_SET_USER_MEMORY_REGION (slot %u, GPA 0x%llx, size 0x%llx) failed: %s "
                      "(errno %d)",
                      slot, (unsigned long long)gpa, (unsigned long long)size, strerror(err), err);
    }
    return 0;
}

/* Y/N or 1/0 in a module parameter file; -1 when absent. */
static int module_flag(const char *path)
{
    char c = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, &c, 1);
    close(fd);
    if (n != 1)
        return -1;
    return c == 'Y' || c == 'y' || c == '1';
}

/* Shadow paging (PVM always; hardware KVM loaded with ept=0 or npt=0) keeps
 * its own copy of the guest's page tables and learns of changes by
 * write-protecting them against the guest. Writes by the host (a restore
 * copying table pages back, a snapshot rebuilding the tables) go unseen,
 * and the vCPU would go on translating through the old tables. Deleting any
 * memslot makes KVM drop every shadow page (KVM_X86_QUIRK_SLOT_ZAP_ALL, the
 * default), so a one-page slot kept for that is deleted and added again.
 * With EPT/NPT the hardware walks the guest's tables in memory and a TLB
 * flush (every sl_vcpu_reset) is enough. */
static bool uses_shadow_paging(const sl_vcpu *v)
{
    return v->pvm || module_flag("/sys/module/kvm_intel/parameters/ept") == 0 ||
           module_flag("/sys/module/kvm_amd/parameters/npt") == 0;
}

#define ZAP_SLOT_GPA 0x1000ull /* below SL_BASE_ADDRESS: no layout uses it */

int sl_vcpu_tables_changed(sl_vcpu *v, bool changed, sl_errbuf *e)
{
    v->keep_tlb = !changed;
    if (!changed || !v->shadow_paging)
        return 0;
    int rc;
    if (!v->zap_page) {
        void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return sl_err(e, SL_ENOMEM, "out of memory for the shadow-paging slot");
        v->zap_page = p;
    } else if ((rc = set_region(v, v->zap_slot, ZAP_SLOT_GPA, v->zap_page, 0, SL_VMEM_READONLY, e))) {
        return rc;
    }
    return set_region(v, v->zap_slot, ZAP_SLOT_GPA, v->zap_page, 4096, SL_VMEM_READONLY, e);
}

int sl_vcpu_map(sl_vcpu *v, unsigned slot, uint64_t gpa, void *host, uint64_t size, unsigned flags,
                sl_errbuf *e)
{
    if (!v)
        return sl_err(e, SL_EINVAL, "sl_vcpu_map: NULL vCPU");
    if (slot >= v->max_slots)
        return sl_err(e, SL_ERANGE, "slot %u out of range (max %u)", slot, v->max_slots);
    struct slot *s = &v->slots[slot];
    if (size == 0) {
        if (!s->used)
            return 0;
        int rc = set_region(v, slot, s->gpa, s->host, 0, s->flags, e);
        if (rc == 0)
            memset(s, 0, sizeof *s);
        return rc;
    }
    if (flags & ~(SL_VMEM_READONLY | SL_VMEM_DIRTY_LOG))
        return sl_err(e, SL_EINVAL, "slot %u: unknown flags 0x%x", slot, flags);
    if (flags == (SL_VMEM_READONLY | SL_VMEM_DIRTY_LOG))
        return sl_err(e, SL_EINVAL, "slot %u: a read-only slot has nothing to dirty-log", slot);
    if (!host || ((uintptr_t)host | gpa | size) & 4095u)
        return sl_err(e, SL_EINVAL, "slot %u: host %p, GPA 0x%llx and size 0x%llx must be page-aligned",
                      slot, host, (unsigned long long)gpa, (unsigned long long)size);
    if (gpa + size < gpa || (uintptr_t)host + size < (uintptr_t)host)
        return sl_err(e, SL_ERANGE, "slot %u: GPA or host range wraps", slot);
    for (unsigned i = 0; i < v->max_slots; i++) {
        const struct slot *o = &v->slots[i];
        if (i != slot && o->used && gpa < o->gpa + o->size && o->gpa < gpa + size)
            return sl_err(e, SL_EINVAL, "slot %u [0x%llx, +0x%llx) overlaps slot %u [0x%llx, +0x%llx)",
                          slot, (unsigned long long)gpa, (unsigned long long)size, i,
                          (unsigned long long)o->gpa, (unsigned long long)o->size);
    }
    if (s->used && s->gpa == gpa && s->host == host && s->size == size && s->flags == flags)
        return 0;
    /* KVM cannot change a live slot's host address or size: delete, then add. */
    if (s->used) {
        int rc = set_region(v, slot, s->gpa, s->host, 0, s->flags, e);
        if (rc)
            return rc;
        memset(s, 0, sizeof *s);
    }
    int rc = set_region(v, slot, gpa, host, size, flags, e);
    if (rc)
        return rc;
    *s = (struct slot){.used = true, .gpa = gpa, .size = size, .host = host, .flags = flags};
    return 0;
}

int sl_vcpu_dirty_log(sl_vcpu *v, unsigned slot, uint64_t *bitmap, sl_errbuf *e)
{
    if (!v || !bitmap)
        return sl_err(e, SL_EINVAL, "sl_vcpu_dirty_log: NULL argument");
    if (slot >= v->max_slots || !v->slots[slot].used)
        return sl_err(e, SL_EINVAL, "dirty log: slot %u is not mapped", slot);
    if (!(v->slots[slot].flags & SL_VMEM_DIRTY_LOG))
        return sl_err(e, SL_EINVAL, "dirty log: slot %u was mapped without SL_VMEM_DIRTY_LOG", slot);
    struct kvm_dirty_log d;
    memset(&d, 0, sizeof d);
    d.slot = slot;
    d.dirty_bitmap = bitmap;
    if (vioctl(v, v->vm_fd, KVM_GET_DIRTY_LOG, &d) < 0)
        return ioctl_err(e, "KVM_GET_DIRTY_LOG");
    return 0;
}

/* ---- state ---- */

/* KVM finishes an `in`/`out`/MMIO instruction only on the next KVM_RUN, and
 * that completion writes RIP (and for `in`/reads a register) from state saved
 * at exit time - it would undo a KVM_SET_REGS made in between. KVM's
 * documented cure: re-enter with immediate_exit set, which completes the
 * instruction and returns EINTR without running guest code. */
static int complete_pending(sl_vcpu *v, sl_errbuf *e)
{
    for (int i = 0; v->pending != PEND_NONE && i < 16; i++) {
        pthread_mutex_lock(&v->lock);
        v->run->immediate_exit = 1;
        pthread_mutex_unlock(&v->lock);
        int r = (v->stats.ioctls++, ioctl(v->vcpu_fd, KVM_RUN, 0));
        int err = errno;
        pthread_mutex_lock(&v->lock);
        v->run->immediate_exit = v->cancel_req;
        pthread_mutex_unlock(&v->lock);
        if (r < 0 && err == EINTR) {
            v->pending = PEND_NONE;
            return 0;
        }
        if (r < 0) {
            v->pending = PEND_NONE;
            errno = err;
            return ioctl_err(e, "KVM_RUN (completing I/O)");
        }
        /* Another piece of the same instruction (a split MMIO access): reads
         * see all-ones, like the first piece. */
        struct kvm_run *run = v->run;
        if (run->exit_reason == KVM_EXIT_MMIO && !run->mmio.is_write) {
            memset(run->mmio.data, 0xff, sizeof run->mmio.data);
        } else if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_IN) {
            uint64_t off = run->io.data_offset, n = (uint64_t)run->io.size * run->io.count;
            if (off <= v->run_size && n <= v->run_size - off)
                memset((uint8_t *)run + off, 0xff, (size_t)n);
        } else if (run->exit_reason != KVM_EXIT_MMIO && run->exit_reason != KVM_EXIT_IO) {
            v->pending = PEND_NONE;
        }
    }
    if (v->pending != PEND_NONE)
        return sl_err(e, SL_EHYPERVISOR, "KVM_RUN kept exiting while completing an I/O instruction");
    return 0;
}

static struct kvm_segment flat_seg(uint16_t sel, uint8_t type, bool code64, bool big)
{
    struct kvm_segment s;
    memset(&s, 0, sizeof s);
    s.base = 0;
    s.limit = 0xffffffffu;
    s.selector = sel;
    s.type = type;
    s.present = 1;
    s.dpl = 0;
    s.db = big;
    s.s = 1;
    s.l = code64;
    s.g = 1;
    return s;
}

static void fresh_sregs(const sl_vcpu *v, struct kvm_sregs *s)
{
    bool amd64 = v->arch == SL_ARCH_AMD64;
    *s = v->initial_sregs;
    s->cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    s->cr4 = CR4_OSFXSR | CR4_OSXMMEXCPT | (amd64 ? CR4_PAE : 0);
    s->efer = amd64 ? (EFER_LME | EFER_LMA | EFER_NXE | EFER_SCE) : 0;
    s->cr2 = 0;
    s->cr8 = 0;
    /* selectors 0x08 code, 0x10 data, 0x18 TSS: what a guest GDT would use */
    s->cs = flat_seg(0x08, 0xb, amd64, !amd64); /* execute/read, accessed */
    s->ds = flat_seg(0x10, 0x3, false, true);   /* read/write, accessed */
    s->es = s->fs = s->gs = s->ss = s->ds;
    /* VM entry insists on a usable TR holding a busy TSS (type 11 serves both
     * the 32-bit and, in long mode, the 64-bit TSS). */
    memset(&s->tr, 0, sizeof s->tr);
    s->tr.selector = 0x18;
    s->tr.limit = 0x67;
    s->tr.type = v->tr_type;
    s->tr.present = 1;
    memset(&s->ldt, 0, sizeof s->ldt);
    s->ldt.type = 0x2;
    s->ldt.unusable = 1;
    s->gdt.base = 0;
    s->gdt.limit = 0;
    s->idt.base = 0;
    s->idt.limit = 0; /* any exception triple-faults until the guest loads an IDT */
}

/* Reads or writes the payload's MSRs in one ioctl. */
static int blob_msrs_io(sl_vcpu *v, bool set, uint64_t *vals, sl_errbuf *e)
{
    union {
        struct kvm_msrs h;
        uint8_t buf[sizeof(struct kvm_msrs) + N_BLOB_MSRS * sizeof(struct kvm_msr_entry)];
    } m;
    memset(&m, 0, sizeof m);
    m.h.nmsrs = N_BLOB_MSRS;
    for (size_t i = 0; i < N_BLOB_MSRS; i++) {
        struct kvm_msr_entry ent = {.index = blob_msrs[i], .data = set ? vals[i] : 0};
        memcpy(m.buf + sizeof(struct kvm_msrs) + i * sizeof ent, &ent, sizeof ent);
    }
    int n = vioctl(v, v->vcpu_fd, set ? KVM_SET_MSRS : KVM_GET_MSRS, &m);
    if (n < 0)
        return ioctl_err(e, set ? "KVM_SET_MSRS (system-call MSRs)" : "KVM_GET_MSRS (system-call MSRs)");
    if (n != (int)N_BLOB_MSRS) /* KVM stops at the first MSR it refuses */
        return sl_err(e, SL_EHYPERVISOR, "KVM %s MSR 0x%x (value 0x%llx)", set ? "refused to set" : "could not read",
                      blob_msrs[n], set ? (unsigned long long)vals[n] : 0ull);
    for (size_t i = 0; !set && i < N_BLOB_MSRS; i++) {
        struct kvm_msr_entry ent;
        memcpy(&ent, m.buf + sizeof(struct kvm_msrs) + i * sizeof ent, sizeof ent);
        vals[i] = ent.data;
    }
    return 0;
}

/* ---- the CPU state a snapshot carries, to and from KVM ---- */

static void seg_from_kvm(sl_cpu_seg *o, const struct kvm_segment *k)
{
    o->base = k->base;
    o->limit = k->limit;
    o->selector = k->selector;
    o->type = k->type & 0xf;
    o->flags = (uint16_t)((k->present ? SL_SEGF_PRESENT : 0) | (unsigned)(k->dpl & 3) << SL_SEGF_DPL_SHIFT |
                          (k->db ? SL_SEGF_DB : 0) | (k->s ? SL_SEGF_S : 0) | (k->l ? SL_SEGF_L : 0) |
                          (k->g ? SL_SEGF_G : 0) | (k->avl ? SL_SEGF_AVL : 0) |
                          (k->unusable ? SL_SEGF_UNUSABLE : 0));
}

static void seg_to_kvm(struct kvm_segment *k, const sl_cpu_seg *o)
{
    memset(k, 0, sizeof *k);
    k->base = o->base;
    k->limit = o->limit;
    k->selector = o->selector;
    k->type = o->type;
    k->present = (o->flags & SL_SEGF_PRESENT) != 0;
    k->dpl = (o->flags >> SL_SEGF_DPL_SHIFT) & 3;
    k->db = (o->flags & SL_SEGF_DB) != 0;
    k->s = (o->flags & SL_SEGF_S) != 0;
    k->l = (o->flags & SL_SEGF_L) != 0;
    k->g = (o->flags & SL_SEGF_G) != 0;
    k->avl = (o->flags & SL_SEGF_AVL) != 0;
    k->unusable = (o->flags & SL_SEGF_UNUSABLE) != 0;
}

static struct kvm_segment *kseg(struct kvm_sregs *k, unsigned i)
{
    struct kvm_segment *t[SL_SEG_COUNT] = {&k->cs, &k->ds, &k->es, &k->fs, &k->gs, &k->ss, &k->tr, &k->ldt};
    return t[i];
}

/* Where this CPU's XSAVE standard format keeps component i (CPUID leaf 0xD,
 * which KVM's KVM_GET/SET_XSAVE image follows); false when it has none. */
static bool xcomp_place(unsigned i, uint32_t *off, uint32_t *size)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(0xD, i, &a, &b, &c, &d) || a == 0 || b == 0)
        return false;
    *size = a;
    *off = b;
    return true;
}

#define FXSAVE_FCW 0
#define FXSAVE_MXCSR 24
#define FXSAVE_ST 32
#define FXSAVE_XMM 160
#define XSAVE_HDR 512

/* XSAVE image (KVM's, standard format, xsave_size bytes) -> state. A
 * component in its initial state (its XSTATE_BV bit clear) is normalised:
 * x87 and SSE to their initial values in `legacy`, the others left out. */
static void xsave_to_state(const sl_vcpu *v, const uint8_t *img, sl_cpu_state *st)
{
    uint64_t bv;
    memcpy(&bv, img + XSAVE_HDR, 8);
    memcpy(st->legacy, img, sizeof st->legacy);
    if (!(bv & 1)) { /* x87 in its initial state */
        memset(st->legacy, 0, FXSAVE_MXCSR);
        memset(st->legacy + FXSAVE_ST, 0, FXSAVE_XMM - FXSAVE_ST);
        put16(st->legacy + FXSAVE_FCW, FCW_RESET);
    }
    if (!(bv & 2)) /* XMM registers zero; MXCSR is kept whatever XSTATE_BV says */
        memset(st->legacy + FXSAVE_XMM, 0, 256);
    st->xstate_bv = 3;
    for (unsigned i = SL_CPU_XCOMP_FIRST; i < SL_CPU_XCOMP_LIMIT; i++) {
        uint32_t off, size;
        if ((bv >> i & 1) && xcomp_place(i, &off, &size) && off <= v->xsave_size &&
            size <= v->xsave_size - off)
            sl_cpu_state_add_xcomp(st, i, img + off, size);
    }
}

/* state -> XSAVE image; SL_EUNSUPPORTED when a component does not exist on
 * this CPU with the same size. */
static int state_to_xsave(const sl_vcpu *v, const sl_cpu_state *st, uint8_t *img, sl_errbuf *e)
{
    memset(img, 0, v->xsave_size);
    memcpy(img, st->legacy, sizeof st->legacy);
    uint64_t bv = 3;
    for (unsigned i = SL_CPU_XCOMP_FIRST; i < SL_CPU_XCOMP_LIMIT; i++) {
        if (!st->xcomp_size[i])
            continue;
        uint32_t off, size;
        if (!xcomp_place(i, &off, &size) || size != st->xcomp_size[i] || off > v->xsave_size ||
            size > v->xsave_size - off) {
            /* A component outside the saved XCR0 was never the guest's to set
             * (a hypervisor's default, e.g. PKRU under QEMU's CPU model): a CPU
             * without it loses nothing the guest could have used. */
            if (!(st->xcr0 >> i & 1))
                continue;
            return sl_err(e, SL_EUNSUPPORTED,
                          "the snapshot holds XSAVE component %u (%u bytes), which this CPU does not have in "
                          "that size",
                          i, st->xcomp_size[i]);
        }
        memcpy(img + off, st->xcomp + st->xcomp_off[i], size);
        bv |= 1ull << i;
    }
    memcpy(img + XSAVE_HDR, &bv, 8);
    return 0;
}

/* Without KVM_CAP_XSAVE: x87 and SSE through struct kvm_fpu. */
static void fpu_to_legacy(const struct kvm_fpu *f, uint8_t *l)
{
    memset(l, 0, 512);
    put16(l + 0, f->fcw);
    put16(l + 2, f->fsw);
    l[4] = f->ftwx;
    put16(l + 6, f->last_opcode);
    memcpy(l + 8, &f->last_ip, 8);
    memcpy(l + 16, &f->last_dp, 8);
    put32(l + FXSAVE_MXCSR, f->mxcsr);
    for (unsigned i = 0; i < 8; i++)
        memcpy(l + FXSAVE_ST + 16 * i, f->fpr[i], 16);
    for (unsigned i = 0; i < 16; i++)
        memcpy(l + FXSAVE_XMM + 16 * i, f->xmm[i], 16);
}

static void legacy_to_fpu(const uint8_t *l, struct kvm_fpu *f)
{
    memset(f, 0, sizeof *f);
    f->fcw = (uint16_t)(l[0] | l[1] << 8);
    f->fsw = (uint16_t)(l[2] | l[3] << 8);
    f->ftwx = l[4];
    f->last_opcode = (uint16_t)(l[6] | l[7] << 8);
    memcpy(&f->last_ip, l + 8, 8);
    memcpy(&f->last_dp, l + 16, 8);
    f->mxcsr = (uint32_t)l[24] | (uint32_t)l[25] << 8 | (uint32_t)l[26] << 16 | (uint32_t)l[27] << 24;
    for (unsigned i = 0; i < 8; i++)
        memcpy(f->fpr[i], l + FXSAVE_ST + 16 * i, 16);
    for (unsigned i = 0; i < 16; i++)
        memcpy(f->xmm[i], l + FXSAVE_XMM + 16 * i, 16);
}

static int load_fpu(sl_vcpu *v, const sl_cpu_state *st, sl_errbuf *e)
{
    int rc = 0;
    if (v->has_xsave) {
        if (!st) {
            if (vioctl(v, v->vcpu_fd, KVM_SET_XSAVE, v->xsave_clean) < 0)
                return ioctl_err(e, "KVM_SET_XSAVE");
            return 0;
        }
        uint8_t *img = malloc(v->xsave_size);
        if (!img)
            return sl_err(e, SL_ENOMEM, "out of memory for the XSAVE image");
        if (!(rc = state_to_xsave(v, st, img, e)) && vioctl(v, v->vcpu_fd, KVM_SET_XSAVE, img) < 0)
            rc = ioctl_err(e, "KVM_SET_XSAVE");
        free(img);
        return rc;
    }
    struct kvm_fpu f;
    if (st) {
        legacy_to_fpu(st->legacy, &f);
    } else {
        memset(&f, 0, sizeof f);
        f.fcw = FCW_RESET;
        f.mxcsr = MXCSR_RESET;
    }
    if (vioctl(v, v->vcpu_fd, KVM_SET_FPU, &f) < 0)
        return ioctl_err(e, "KVM_SET_FPU");
    return 0;
}

int sl_vcpu_reset(sl_vcpu *v, uint64_t cr3, const sl_sregs_blob *saved, sl_errbuf *e)
{
    if (!v)
        return sl_err(e, SL_EINVAL, "sl_vcpu_reset: NULL vCPU");
    int rc = complete_pending(v, e);
    if (rc)
        return rc;
    sl_cpu_state *st = NULL;
    struct kvm_sregs sr;
    uint64_t xcr0 = XCR0_RESET, msrs[N_BLOB_MSRS] = {0};
    struct kvm_debugregs d;
    memset(&d, 0, sizeof d);
    d.dr6 = 0xffff0ff0u;
    d.dr7 = 0x400u;
    if (saved) {
        if (!(st = malloc(sizeof *st)))
            return sl_err(e, SL_ENOMEM, "out of memory for the CPU state");
        if ((rc = sl_cpu_state_decode(saved->bytes, sl_sregs_blob_len(saved), v->arch, st, e))) {
            free(st);
            return rc;
        }
        memset(&sr, 0, sizeof sr);
        for (unsigned i = 0; i < SL_SEG_COUNT; i++)
            seg_to_kvm(kseg(&sr, i), &st->seg[i]);
        sr.gdt.base = st->gdt_base;
        sr.gdt.limit = st->gdt_limit;
        sr.idt.base = st->idt_base;
        sr.idt.limit = st->idt_limit;
        sr.cr0 = st->cr0;
        sr.cr2 = st->cr2;
        sr.cr4 = st->cr4;
        sr.cr8 = st->cr8;
        sr.efer = st->efer;
        xcr0 = st->xcr0;
        memcpy(msrs, st->msr, sizeof msrs);
        for (unsigned i = 0; i < 4; i++)
            d.db[i] = st->dr[i];
        d.dr6 = st->dr6;
        d.dr7 = st->dr7;
    } else {
        fresh_sregs(v, &sr);
    }
    struct kvm_sregs *s = &sr;
    s->cr3 = cr3;
    s->apic_base = v->apic_base; /* not the guest's (nor a file's) to choose */
    s->cr8 &= 0xf;                /* KVM_RUN rejects a larger TPR */
    if (s->tr.type == TSS_AVAILABLE || s->tr.type == TSS_BUSY)
        s->tr.type = v->tr_type;
    memset(s->interrupt_bitmap, 0, sizeof s->interrupt_bitmap);

    /* KVM flushes the guest TLB on KVM_SET_SREGS only when CR0, CR3, CR4 or
     * EFER differ from the current values (kvm_mmu_reset_context, plus
     * KVM_REQ_TLB_FLUSH_GUEST on newer kernels). A restore usually reuses the
     * same CR3 for freshly rewritten page tables, so set the state twice: first
     * with CR4.OSXMMEXCPT flipped, then as wanted; the second call always sees
     * a change and drops every translation the guest had cached. */
    struct kvm_sregs bounce = *s;
    bounce.cr4 ^= CR4_OSXMMEXCPT;
    bool flush = !v->keep_tlb;
    v->keep_tlb = false;
    if ((flush && vioctl(v, v->vcpu_fd, KVM_SET_SREGS, &bounce) < 0) ||
        vioctl(v, v->vcpu_fd, KVM_SET_SREGS, s) < 0) {
        free(st);
        return ioctl_err(e, "KVM_SET_SREGS");
    }
    /* Without an in-kernel LAPIC, KVM reloads CR8 from kvm_run at every entry. */
    v->run->cr8 = s->cr8;

    rc = load_fpu(v, st, e);
    free(st);
    if (rc)
        return rc;
    if (v->has_xcrs) {
        struct kvm_xcrs x;
        memset(&x, 0, sizeof x);
        x.nr_xcrs = 1;
        x.xcrs[0].xcr = 0;
        x.xcrs[0].value = xcr0;
        if (vioctl(v, v->vcpu_fd, KVM_SET_XCRS, &x) < 0)
            return ioctl_err(e, "KVM_SET_XCRS");
    }
    if (v->has_debugregs && vioctl(v, v->vcpu_fd, KVM_SET_DEBUGREGS, &d) < 0)
        return ioctl_err(e, "KVM_SET_DEBUGREGS");
    if ((rc = blob_msrs_io(v, true, msrs, e)))
        return rc;

    struct kvm_vcpu_events ev;
    memset(&ev, 0, sizeof ev);
    ev.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW;
    if (vioctl(v, v->vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
        return ioctl_err(e, "KVM_SET_VCPU_EVENTS");
    return 0;
}

int sl_vcpu_get_regs(sl_vcpu *v, sl_regs *r, sl_errbuf *e)
{
    if (!v || !r)
        return sl_err(e, SL_EINVAL, "sl_vcpu_get_regs: NULL argument");
    int rc = complete_pending(v, e);
    if (rc)
        return rc;
    struct kvm_regs k;
    if (vioctl(v, v->vcpu_fd, KVM_GET_REGS, &k) < 0)
        return ioctl_err(e, "KVM_GET_REGS");
    *r = (sl_regs){
        .rax = k.rax, .rbx = k.rbx, .rcx = k.rcx, .rdx = k.rdx, .rsi = k.rsi, .rdi = k.rdi,
        .rsp = k.rsp, .rbp = k.rbp, .r8 = k.r8,   .r9 = k.r9,   .r10 = k.r10, .r11 = k.r11,
        .r12 = k.r12, .r13 = k.r13, .r14 = k.r14, .r15 = k.r15, .rip = k.rip, .rflags = k.rflags,
    };
    return 0;
}

int sl_vcpu_set_regs(sl_vcpu *v, const sl_regs *r, sl_errbuf *e)
{
    if (!v || !r)
        return sl_err(e, SL_EINVAL, "sl_vcpu_set_regs: NULL argument");
    int rc = complete_pending(v, e);
    if (rc)
        return rc;
    struct kvm_regs k = {
        .rax = r->rax, .rbx = r->rbx, .rcx = r->rcx, .rdx = r->rdx, .rsi = r->rsi, .rdi = r->rdi,
        .rsp = r->rsp, .rbp = r->rbp, .r8 = r->r8,   .r9 = r->r9,   .r10 = r->r10, .r11 = r->r11,
        .r12 = r->r12, .r13 = r->r13, .r14 = r->r14, .r15 = r->r15, .rip = r->rip, .rflags = r->rflags,
    };
    if (vioctl(v, v->vcpu_fd, KVM_SET_REGS, &k) < 0)
        return ioctl_err(e, "KVM_SET_REGS");
    return 0;
}

int sl_vcpu_get_sregs(sl_vcpu *v, sl_sregs_blob *b, sl_errbuf *e)
{
    if (!v || !b)
        return sl_err(e, SL_EINVAL, "sl_vcpu_get_sregs: NULL argument");
    int rc = complete_pending(v, e);
    if (rc)
        return rc;
    sl_cpu_state *st = calloc(1, sizeof *st);
    uint8_t *img = v->has_xsave ? malloc(v->xsave_size) : NULL;
    if (!st || (v->has_xsave && !img)) {
        rc = sl_err(e, SL_ENOMEM, "out of memory for the CPU state");
        goto out;
    }
    st->arch = v->arch;
    struct kvm_sregs sr;
    if (vioctl(v, v->vcpu_fd, KVM_GET_SREGS, &sr) < 0) {
        rc = ioctl_err(e, "KVM_GET_SREGS");
        goto out;
    }
    for (unsigned i = 0; i < SL_SEG_COUNT; i++)
        seg_from_kvm(&st->seg[i], kseg(&sr, i));
    st->gdt_base = sr.gdt.base;
    st->gdt_limit = sr.gdt.limit;
    st->idt_base = sr.idt.base;
    st->idt_limit = sr.idt.limit;
    st->cr0 = sr.cr0;
    st->cr2 = sr.cr2;
    st->cr3 = sr.cr3;
    st->cr4 = sr.cr4;
    st->cr8 = sr.cr8;
    st->efer = sr.efer;
    st->xcr0 = XCR0_RESET;
    if (v->has_xcrs) {
        struct kvm_xcrs x;
        memset(&x, 0, sizeof x);
        if (vioctl(v, v->vcpu_fd, KVM_GET_XCRS, &x) < 0) {
            rc = ioctl_err(e, "KVM_GET_XCRS");
            goto out;
        }
        for (unsigned i = 0; i < x.nr_xcrs && i < KVM_MAX_XCRS; i++)
            if (x.xcrs[i].xcr == 0)
                st->xcr0 = x.xcrs[i].value;
    }
    st->dr6 = 0xffff0ff0u;
    st->dr7 = 0x400u;
    if (v->has_debugregs) {
        struct kvm_debugregs d;
        if (vioctl(v, v->vcpu_fd, KVM_GET_DEBUGREGS, &d) < 0) {
            rc = ioctl_err(e, "KVM_GET_DEBUGREGS");
            goto out;
        }
        for (unsigned i = 0; i < 4; i++)
            st->dr[i] = d.db[i];
        st->dr6 = d.dr6;
        st->dr7 = d.dr7;
    }
    if ((rc = blob_msrs_io(v, false, st->msr, e)))
        goto out;
    if (v->has_xsave) {
        unsigned long req = v->xsave_size > sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
        if (vioctl(v, v->vcpu_fd, req, img) < 0) {
            rc = ioctl_err(e, "KVM_GET_XSAVE");
            goto out;
        }
        xsave_to_state(v, img, st);
    } else {
        struct kvm_fpu f;
        if (vioctl(v, v->vcpu_fd, KVM_GET_FPU, &f) < 0) {
            rc = ioctl_err(e, "KVM_GET_FPU");
            goto out;
        }
        fpu_to_legacy(&f, st->legacy);
        st->xstate_bv = 3;
    }
    size_t len;
    memset(b, 0, sizeof *b);
    rc = sl_cpu_state_encode(st, b->bytes, sizeof b->bytes, &len, e);
out:
    free(img);
    free(st);
    return rc;
}

/* ---- running ---- */

void sl_vcpu_cancel(sl_vcpu *v)
{
    if (!v)
        return;
    pthread_mutex_lock(&v->lock);
    v->cancel_req = true;
    v->run->immediate_exit = 1; /* before the signal: see the top of the file */
    if (v->in_run)
        pthread_kill(v->runner, sl_vcpu_kick_signal());
    pthread_mutex_unlock(&v->lock);
}

void sl_vcpu_clear_cancel(sl_vcpu *v)
{
    if (!v)
        return;
    pthread_mutex_lock(&v->lock);
    v->cancel_req = false;
    v->run->immediate_exit = 0;
    pthread_mutex_unlock(&v->lock);
}

/* True (and the request consumed) when a cancel is latched. */
static bool take_cancel(sl_vcpu *v, bool leaving)
{
    pthread_mutex_lock(&v->lock);
    bool c = v->cancel_req;
    if (c) {
        v->cancel_req = false;
        v->run->immediate_exit = 0;
    }
    if (c || leaving)
        v->in_run = false;
    pthread_mutex_unlock(&v->lock);
    return c;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int arm_timer(sl_vcpu *v, uint64_t ns, sl_errbuf *e)
{
    pid_t tid = gettid();
    if (!v->timer_ok || v->timer_tid != tid) {
        if (v->timer_ok)
            timer_delete(v->timer);
        v->timer_ok = false;
        struct sigevent sev;
        memset(&sev, 0, sizeof sev);
        sev.sigev_notify = SIGEV_THREAD_ID;
        sev.sigev_signo = sl_vcpu_kick_signal();
        sev.sigev_notify_thread_id = tid;
        if (timer_create(CLOCK_MONOTONIC, &sev, &v->timer) < 0)
            return ioctl_err(e, "timer_create");
        v->timer_ok = true;
        v->timer_tid = tid;
    }
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = (time_t)(ns / 1000000000u);
    its.it_value.tv_nsec = (long)(ns % 1000000000u);
    its.it_interval.tv_nsec = 1000000; /* re-kick in case a kick was lost */
    if (timer_settime(v->timer, 0, &its, NULL) < 0)
        return ioctl_err(e, "timer_settime");
    return 0;
}

static void disarm_timer(sl_vcpu *v)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    timer_settime(v->timer, 0, &its, NULL);
}

static void put_rip(sl_vcpu *v, sl_exit *ex)
{
    if (v->sync_regs) {
        ex->rip = v->run->s.regs.regs.rip;
        return;
    }
    struct kvm_regs k;
    if (vioctl(v, v->vcpu_fd, KVM_GET_REGS, &k) == 0)
        ex->rip = k.rip;
}

static void decode_io(sl_vcpu *v, sl_exit *ex)
{
    struct kvm_run *run = v->run;
    unsigned size = run->io.size, count = run->io.count;
    uint64_t off = run->io.data_offset;
    ex->port = run->io.port;
    ex->size = (uint8_t)size;
    bool in = run->io.direction == KVM_EXIT_IO_IN;
    v->pending = in ? PEND_IO_IN : PEND_IO_OUT;
    if ((size != 1 && size != 2 && size != 4) || count == 0 ||
        off > v->run_size || (uint64_t)size * count > v->run_size - off) {
        ex->reason = SL_EXIT_INTERNAL;
        snprintf(ex->detail, sizeof ex->detail, "malformed I/O exit (port 0x%x, size %u, count %u)",
                 ex->port, size, count);
        return;
    }
    uint8_t *data = (uint8_t *)run + off;
    if (in)
        memset(data, 0xff, (size_t)size * count); /* what an unanswered `in` reads */
    if (count != 1) {
        ex->reason = SL_EXIT_INTERNAL;
        snprintf(ex->detail, sizeof ex->detail, "string I/O (rep %s) on port 0x%x is not supported",
                 in ? "ins" : "outs", ex->port);
        put_rip(v, ex);
        return;
    }
    if (in) {
        ex->reason = SL_EXIT_IO_IN;
        v->in_data = data;
        v->in_size = size;
    } else {
        uint32_t val = 0;
        for (unsigned i = 0; i < size; i++)
            val |= (uint32_t)data[i] << (8 * i);
        ex->reason = SL_EXIT_IO_OUT;
        ex->value = val;
    }
    if (v->sync_regs)
        ex->rip = run->s.regs.regs.rip;
}

static bool in_readonly_slot(const sl_vcpu *v, uint64_t gpa)
{
    for (unsigned i = 0; i < v->max_slots; i++) {
        const struct slot *s = &v->slots[i];
        if (s->used && (s->flags & SL_VMEM_READONLY) && gpa >= s->gpa && gpa - s->gpa < s->size)
            return true;
    }
    return false;
}

static const char *internal_name(uint32_t sub)
{
    switch (sub) {
    case KVM_INTERNAL_ERROR_EMULATION: return "instruction emulation failed";
    case KVM_INTERNAL_ERROR_SIMUL_EX: return "exception while delivering an exception";
    case KVM_INTERNAL_ERROR_DELIVERY_EV: return "exit during event delivery";
    case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON: return "unexpected hardware exit";
    default: return "unknown";
    }
}

/* Fills ex from a KVM exit; false when the exit needs no caller action. */
static void count_exit(sl_vcpu *v)
{
    switch (v->run->exit_reason) {
    case KVM_EXIT_IO: v->stats.exits_io++; break;
    case KVM_EXIT_MMIO: v->stats.exits_mmio++; break;
    default: v->stats.exits_other++; break;
    }
}

/* KVM's own count of emulated instructions (the vCPU's binary statistics,
 * KVM_GET_STATS_FD, "insn_emulation"): on PVM, every CPL0 instruction. Best
 * effort: without it the count stays 0. */
static void open_stats(sl_vcpu *v)
{
    struct kvm_stats_header h;
    int fd = ioctl(v->vcpu_fd, KVM_GET_STATS_FD, NULL);
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
            struct kvm_stats_desc *k = (struct kvm_stats_desc *)(void *)(d + i * dsz);
            if (k->size == 1 && strncmp(k->name, "insn_emulation", h.name_size) == 0) {
                v->emul_off = (uint64_t)h.data_offset + k->offset;
                break;
            }
        }
    }
    free(d);
    if (v->emul_off)
        v->stats_fd = fd;
    else
        close(fd);
}

void sl_vcpu_get_stats(const sl_vcpu *v, sl_vcpu_stats *out)
{
    *out = v->stats;
    uint64_t n;
    if (v->stats_fd >= 0 && pread(v->stats_fd, &n, sizeof n, (off_t)v->emul_off) == (ssize_t)sizeof n)
        out->emulated = n;
}

const char *sl_vcpu_backend_name(const sl_vcpu *v) { return v->pvm ? "pvm" : "kvm"; }
bool sl_vcpu_is_pvm(const sl_vcpu *v) { return v->pvm; }

static bool decode_exit(sl_vcpu *v, sl_exit *ex)
{
    struct kvm_run *run = v->run;
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        decode_io(v, ex);
        return true;
    case KVM_EXIT_HLT:
        ex->reason = SL_EXIT_HLT;
        put_rip(v, ex);
        snprintf(ex->detail, sizeof ex->detail, "guest executed hlt");
        return true;
    case KVM_EXIT_MMIO: {
        ex->reason = SL_EXIT_MEMFAULT;
        ex->gpa = run->mmio.phys_addr;
        ex->write = run->mmio.is_write != 0;
        v->pending = PEND_MMIO;
        if (!ex->write)
            memset(run->mmio.data, 0xff, sizeof run->mmio.data);
        put_rip(v, ex);
        const char *what = !ex->write                     ? "read of unmapped"
                           : in_readonly_slot(v, ex->gpa) ? "write to read-only"
                                                          : "write to unmapped";
        snprintf(ex->detail, sizeof ex->detail,
                 "memory access violation: %s guest memory at GPA 0x%llx", what,
                 (unsigned long long)ex->gpa);
        return true;
    }
    case KVM_EXIT_SHUTDOWN:
        ex->reason = SL_EXIT_SHUTDOWN;
        put_rip(v, ex);
        snprintf(ex->detail, sizeof ex->detail, "guest triple fault (shutdown)");
        return true;
    case KVM_EXIT_FAIL_ENTRY:
        ex->reason = SL_EXIT_INTERNAL;
        put_rip(v, ex);
        snprintf(ex->detail, sizeof ex->detail, "VM entry failed (hardware reason 0x%llx)",
                 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        return true;
    case KVM_EXIT_INTERNAL_ERROR:
        ex->reason = SL_EXIT_INTERNAL;
        put_rip(v, ex);
        snprintf(ex->detail, sizeof ex->detail, "KVM internal error %u: %s", run->internal.suberror,
                 internal_name(run->internal.suberror));
        return true;
    case KVM_EXIT_INTR:
    case KVM_EXIT_IRQ_WINDOW_OPEN:
        return false;
    default:
        ex->reason = SL_EXIT_INTERNAL;
        put_rip(v, ex);
        snprintf(ex->detail, sizeof ex->detail, "unexpected KVM exit reason %u", run->exit_reason);
        return true;
    }
}

int sl_vcpu_run(sl_vcpu *v, sl_exit *ex, uint64_t timeout_ns, sl_errbuf *e)
{
    if (!v || !ex)
        return sl_err(e, SL_EINVAL, "sl_vcpu_run: NULL argument");
    memset(ex, 0, sizeof *ex);
    ex->reason = SL_EXIT_INTERNAL;

    /* The kick only interrupts KVM_RUN if this thread accepts the signal. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sl_vcpu_kick_signal());
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);

    pthread_mutex_lock(&v->lock);
    v->in_run = true;
    v->runner = pthread_self();
    pthread_mutex_unlock(&v->lock);
    if (take_cancel(v, false)) {
        ex->reason = SL_EXIT_CANCELLED;
        snprintf(ex->detail, sizeof ex->detail, "run cancelled before it started");
        return 0;
    }
    uint64_t deadline = 0;
    if (timeout_ns) {
        int rc = arm_timer(v, timeout_ns, e);
        if (rc) {
            take_cancel(v, true);
            return rc;
        }
        deadline = now_ns() + timeout_ns;
    }

    int rc = 0;
    for (;;) {
        int r = ioctl(v->vcpu_fd, KVM_RUN, 0);
        int err = errno;
        v->stats.ioctls++;
        v->stats.exits++;
        if (r == 0)
            count_exit(v);
        v->pending = PEND_NONE; /* whatever was half-done got completed */
        v->in_data = NULL;
        if (r == 0) {
            if (decode_exit(v, ex))
                break;
            continue;
        }
        if (err == EINTR || err == EAGAIN) {
            if (take_cancel(v, false)) {
                ex->reason = SL_EXIT_CANCELLED;
                put_rip(v, ex);
                snprintf(ex->detail, sizeof ex->detail, "run cancelled");
                break;
            }
            if (deadline && now_ns() >= deadline) {
                ex->reason = SL_EXIT_TIMEOUT;
                put_rip(v, ex);
                snprintf(ex->detail, sizeof ex->detail, "run exceeded its timeout of %llu ns",
                         (unsigned long long)timeout_ns);
                break;
            }
            continue; /* a stray signal, or a kick whose cause was consumed */
        }
        errno = err;
        rc = ioctl_err(e, "KVM_RUN");
        snprintf(ex->detail, sizeof ex->detail, "KVM_RUN failed: %s", strerror(err));
        break;
    }
    if (timeout_ns)
        disarm_timer(v);
    pthread_mutex_lock(&v->lock);
    v->in_run = false;
    pthread_mutex_unlock(&v->lock);
    return rc;
}

int sl_vcpu_set_in_value(sl_vcpu *v, uint32_t value, sl_errbuf *e)
{
    if (!v)
        return sl_err(e, SL_EINVAL, "sl_vcpu_set_in_value: NULL vCPU");
    if (v->pending != PEND_IO_IN || !v->in_data)
        return sl_err(e, SL_ESTATE, "no `in` instruction is waiting for a value");
    for (unsigned i = 0; i < v->in_size; i++)
        v->in_data[i] = (uint8_t)(value >> (8 * i));
    return 0;
}
