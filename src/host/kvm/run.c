/* KVM_RUN and its exits: one entry into the guest, the exit decoded into an
 * sl_exit, and the instruction an exit leaves half-done inside KVM. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kvm_vcpu.h"

void sl_kvm_immediate_exit(sl_vcpu *v, bool on)
{
    sl_kvm_of(v)->run->immediate_exit = on;
}

/* Another piece of the same instruction (a split MMIO access): reads see
 * all-ones, like the first piece. False when the exit was something else. */
static bool answer_split_piece(sl_kvm_vcpu *k)
{
    struct kvm_run *run = k->run;
    if (run->exit_reason == KVM_EXIT_MMIO && !run->mmio.is_write) {
        memset(run->mmio.data, 0xff, sizeof run->mmio.data);
    } else if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_IN) {
        uint64_t off = run->io.data_offset, n = (uint64_t)run->io.size * run->io.count;
        if (off <= k->run_size && n <= k->run_size - off)
            memset((uint8_t *)run + off, 0xff, (size_t)n);
    } else if (run->exit_reason != KVM_EXIT_MMIO && run->exit_reason != KVM_EXIT_IO) {
        return false;
    }
    return true;
}

/* KVM finishes an `in`/`out`/MMIO instruction only on the next KVM_RUN, and
 * that completion writes RIP (and for `in`/reads a register) from state saved
 * at exit time - it would undo a KVM_SET_REGS made in between. KVM's
 * documented cure: re-enter with immediate_exit set, which completes the
 * instruction and returns EINTR without running guest code. */
int sl_kvm_finish_exit(sl_vcpu *v, sl_errbuf *e)
{
    sl_kvm_vcpu *k = sl_kvm_of(v);
    for (int i = 0; k->pending != SL_KVM_PEND_NONE && i < 16; i++) {
        pthread_mutex_lock(&v->lock);
        k->run->immediate_exit = 1;
        pthread_mutex_unlock(&v->lock);
        int r = (v->stats.ioctls++, ioctl(k->vcpu_fd, KVM_RUN, 0));
        int err = errno;
        pthread_mutex_lock(&v->lock);
        k->run->immediate_exit = v->cancel_req;
        pthread_mutex_unlock(&v->lock);
        if (r < 0 && err == EINTR) {
            k->pending = SL_KVM_PEND_NONE;
            return 0;
        }
        if (r < 0) {
            k->pending = SL_KVM_PEND_NONE;
            errno = err;
            return sl_kvm_ioctl_err(e, "KVM_RUN (completing I/O)");
        }
        if (!answer_split_piece(k))
            k->pending = SL_KVM_PEND_NONE;
    }
    if (k->pending != SL_KVM_PEND_NONE)
        return sl_err(e, SL_EHYPERVISOR, "KVM_RUN kept exiting while completing an I/O instruction");
    return 0;
}

void sl_kvm_exit_rip(sl_vcpu *v, sl_exit *ex)
{
    sl_kvm_vcpu *k = sl_kvm_of(v);
    if (k->sync_regs) {
        ex->rip = k->run->s.regs.regs.rip;
        return;
    }
    struct kvm_regs r;
    if (sl_kvm_ioctl(k, k->vcpu_fd, KVM_GET_REGS, &r) == 0)
        ex->rip = r.rip;
}

static void decode_io(sl_kvm_vcpu *k, sl_exit *ex)
{
    struct kvm_run *run = k->run;
    unsigned size = run->io.size, count = run->io.count;
    uint64_t off = run->io.data_offset;
    ex->port = run->io.port;
    ex->size = (uint8_t)size;
    bool in = run->io.direction == KVM_EXIT_IO_IN;
    k->pending = in ? SL_KVM_PEND_IO_IN : SL_KVM_PEND_IO_OUT;
    if ((size != 1 && size != 2 && size != 4) || count == 0 || off > k->run_size ||
        (uint64_t)size * count > k->run_size - off) {
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
        sl_kvm_exit_rip(&k->base, ex);
        return;
    }
    if (in) {
        ex->reason = SL_EXIT_IO_IN;
        k->in_data = data;
        k->in_size = size;
    } else {
        uint32_t val = 0;
        for (unsigned i = 0; i < size; i++)
            val |= (uint32_t)data[i] << (8 * i);
        ex->reason = SL_EXIT_IO_OUT;
        ex->value = val;
    }
    if (k->sync_regs)
        ex->rip = run->s.regs.regs.rip;
}

int sl_kvm_set_in_value(sl_vcpu *v, uint32_t value, sl_errbuf *e)
{
    sl_kvm_vcpu *k = sl_kvm_of(v);
    if (k->pending != SL_KVM_PEND_IO_IN || !k->in_data)
        return sl_err(e, SL_ESTATE, "no `in` instruction is waiting for a value");
    for (unsigned i = 0; i < k->in_size; i++)
        k->in_data[i] = (uint8_t)(value >> (8 * i));
    return 0;
}

static bool in_readonly_slot(const sl_vcpu *v, uint64_t gpa)
{
    for (unsigned i = 0; i < v->max_slots; i++) {
        const sl_vcpu_slot *s = &v->slots[i];
        if (s->used && (s->flags & SL_VMEM_READONLY) && gpa >= s->gpa && gpa - s->gpa < s->size)
            return true;
    }
    return false;
}

static void decode_mmio(sl_kvm_vcpu *k, sl_exit *ex)
{
    struct kvm_run *run = k->run;
    ex->reason = SL_EXIT_MEMFAULT;
    ex->gpa = run->mmio.phys_addr;
    ex->write = run->mmio.is_write != 0;
    k->pending = SL_KVM_PEND_MMIO;
    if (!ex->write)
        memset(run->mmio.data, 0xff, sizeof run->mmio.data);
    sl_kvm_exit_rip(&k->base, ex);
    const char *what = !ex->write                           ? "read of unmapped"
                       : in_readonly_slot(&k->base, ex->gpa) ? "write to read-only"
                                                             : "write to unmapped";
    snprintf(ex->detail, sizeof ex->detail, "memory access violation: %s guest memory at GPA 0x%llx", what,
             (unsigned long long)ex->gpa);
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
static bool decode_exit(sl_kvm_vcpu *k, sl_exit *ex)
{
    struct kvm_run *run = k->run;
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        decode_io(k, ex);
        return true;
    case KVM_EXIT_MMIO:
        decode_mmio(k, ex);
        return true;
    case KVM_EXIT_INTR:
    case KVM_EXIT_IRQ_WINDOW_OPEN:
        return false;
    case KVM_EXIT_HLT:
        ex->reason = SL_EXIT_HLT;
        snprintf(ex->detail, sizeof ex->detail, "guest executed hlt");
        break;
    case KVM_EXIT_SHUTDOWN:
        ex->reason = SL_EXIT_SHUTDOWN;
        snprintf(ex->detail, sizeof ex->detail, "guest triple fault (shutdown)");
        break;
    case KVM_EXIT_FAIL_ENTRY:
        ex->reason = SL_EXIT_INTERNAL;
        snprintf(ex->detail, sizeof ex->detail, "VM entry failed (hardware reason 0x%llx)",
                 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        break;
    case KVM_EXIT_INTERNAL_ERROR:
        ex->reason = SL_EXIT_INTERNAL;
        snprintf(ex->detail, sizeof ex->detail, "KVM internal error %u: %s", run->internal.suberror,
                 internal_name(run->internal.suberror));
        break;
    default:
        ex->reason = SL_EXIT_INTERNAL;
        snprintf(ex->detail, sizeof ex->detail, "unexpected KVM exit reason %u", run->exit_reason);
        break;
    }
    sl_kvm_exit_rip(&k->base, ex);
    return true;
}

static void count_exit(sl_kvm_vcpu *k)
{
    switch (k->run->exit_reason) {
    case KVM_EXIT_IO: k->base.stats.exits_io++; break;
    case KVM_EXIT_MMIO: k->base.stats.exits_mmio++; break;
    default: k->base.stats.exits_other++; break;
    }
}

int sl_kvm_enter(sl_vcpu *v, sl_exit *ex, sl_errbuf *e)
{
    sl_kvm_vcpu *k = sl_kvm_of(v);
    int r = ioctl(k->vcpu_fd, KVM_RUN, 0);
    int err = errno;
    v->stats.ioctls++;
    v->stats.exits++;
    if (r == 0)
        count_exit(k);
    k->pending = SL_KVM_PEND_NONE; /* whatever was half-done got completed */
    k->in_data = NULL;
    if (r == 0)
        return decode_exit(k, ex) ? SL_ENTER_EXIT : SL_ENTER_AGAIN;
    if (err == EINTR || err == EAGAIN)
        return SL_ENTER_KICKED;
    errno = err;
    int rc = sl_kvm_ioctl_err(e, "KVM_RUN");
    snprintf(ex->detail, sizeof ex->detail, "KVM_RUN failed: %s", strerror(err));
    return rc;
}
