/* The neutral half of the vCPU interface (vcpu.h): argument checks, the
 * memory-slot table and the x86 register policy (cpureset.c), carried out
 * through the hooks of whichever backend opened (backend.h). Running and
 * cancelling are in vcpu_run.c. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpureset.h"
#include "vcpu.h"

/* ---- open / free ---- */

static int open_with(const sl_vcpu_ops *ops, unsigned arch, sl_vcpu **out, sl_errbuf *e)
{
    sl_vcpu *v = calloc(1, ops->vcpu_size);
    if (!v)
        return sl_err(e, SL_ENOMEM, "out of memory for the vCPU");
    v->ops = ops;
    v->name = ops->name; /* open may name a variant ("pvm") */
    v->arch = arch;
    v->tr_type = sl_cpu_tr_type();
    int rc = pthread_mutex_init(&v->lock, NULL);
    if (rc || !(v->state = malloc(sizeof *v->state))) {
        if (!rc)
            pthread_mutex_destroy(&v->lock);
        free(v);
        return rc ? sl_err(e, SL_ENOMEM, "pthread_mutex_init: %s", strerror(rc))
                  : sl_err(e, SL_ENOMEM, "out of memory for the CPU state");
    }
    if ((rc = ops->open(v, e))) {
        sl_vcpu_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

int sl_vcpu_open(sl_vcpu **out, unsigned arch, sl_errbuf *e)
{
    if (!out)
        return sl_err(e, SL_EINVAL, "sl_vcpu_open: NULL out");
    *out = NULL;
    if (arch != SL_ARCH_AMD64 && arch != SL_ARCH_I686)
        return sl_err(e, SL_EINVAL, "sl_vcpu_open: unknown arch %u", arch);
    int err = sl_kick_install();
    if (err)
        return sl_err(e, SL_EHYPERVISOR, "cannot install the vCPU kick handler for signal %d: %s",
                      sl_vcpu_kick_signal(), err == EBUSY ? "another handler owns it" : strerror(err));
    int rc = sl_err(e, SL_ENOHYPERVISOR, "no hypervisor backend in this build");
    for (size_t i = 0; sl_vcpu_backends[i] && rc == SL_ENOHYPERVISOR; i++)
        rc = open_with(sl_vcpu_backends[i], arch, out, e);
    return rc;
}

void sl_vcpu_free(sl_vcpu *v)
{
    if (!v)
        return;
    sl_kick_timer_delete(&v->timer);
    v->ops->close(v);
    free(v->state);
    pthread_mutex_destroy(&v->lock);
    free(v);
}

const char *sl_vcpu_backend_name(const sl_vcpu *v) { return v->name; }
bool sl_vcpu_is_pvm(const sl_vcpu *v) { return v->cpl0_emulated; }
bool sl_vcpu_msr_filter_active(const sl_vcpu *v) { return v && v->msr_filter; }

void sl_vcpu_get_stats(const sl_vcpu *v, sl_vcpu_stats *out)
{
    *out = v->stats;
    uint64_t n;
    if (v->ops->emulated(v, &n))
        out->emulated = n;
}

/* ---- memory ---- */

static int delete_slot(sl_vcpu *v, unsigned slot, sl_errbuf *e)
{
    sl_vcpu_slot *s = &v->slots[slot], gone = *s;
    gone.size = 0;
    int rc = v->ops->set_slot(v, slot, &gone, e);
    if (rc == 0)
        memset(s, 0, sizeof *s);
    return rc;
}

static int check_mapping(const sl_vcpu *v, unsigned slot, const sl_vcpu_slot *n, sl_errbuf *e)
{
    if (n->flags & ~(SL_VMEM_READONLY | SL_VMEM_DIRTY_LOG))
        return sl_err(e, SL_EINVAL, "slot %u: unknown flags 0x%x", slot, n->flags);
    if (n->flags == (SL_VMEM_READONLY | SL_VMEM_DIRTY_LOG))
        return sl_err(e, SL_EINVAL, "slot %u: a read-only slot has nothing to dirty-log", slot);
    if (!n->host || ((uintptr_t)n->host | n->gpa | n->size) & 4095u)
        return sl_err(e, SL_EINVAL, "slot %u: host %p, GPA 0x%llx and size 0x%llx must be page-aligned",
                      slot, n->host, (unsigned long long)n->gpa, (unsigned long long)n->size);
    if (n->gpa + n->size < n->gpa || (uintptr_t)n->host + n->size < (uintptr_t)n->host)
        return sl_err(e, SL_ERANGE, "slot %u: GPA or host range wraps", slot);
    for (unsigned i = 0; i < v->max_slots; i++) {
        const sl_vcpu_slot *o = &v->slots[i];
        if (i != slot && o->used && n->gpa < o->gpa + o->size && o->gpa < n->gpa + n->size)
            return sl_err(e, SL_EINVAL, "slot %u [0x%llx, +0x%llx) overlaps slot %u [0x%llx, +0x%llx)",
                          slot, (unsigned long long)n->gpa, (unsigned long long)n->size, i,
                          (unsigned long long)o->gpa, (unsigned long long)o->size);
    }
    return 0;
}

int sl_vcpu_map(sl_vcpu *v, unsigned slot, uint64_t gpa, void *host, uint64_t size, unsigned flags,
                sl_errbuf *e)
{
    if (!v)
        return sl_err(e, SL_EINVAL, "sl_vcpu_map: NULL vCPU");
    if (slot >= v->max_slots)
        return sl_err(e, SL_ERANGE, "slot %u out of range (max %u)", slot, v->max_slots);
    sl_vcpu_slot *s = &v->slots[slot];
    if (size == 0)
        return s->used ? delete_slot(v, slot, e) : 0;
    sl_vcpu_slot n = {.used = true, .gpa = gpa, .size = size, .host = host, .flags = flags};
    int rc = check_mapping(v, slot, &n, e);
    if (rc)
        return rc;
    if (s->used && s->gpa == gpa && s->host == host && s->size == size && s->flags == flags)
        return 0;
    /* A hypervisor cannot change a live slot's host address or size (KVM
     * refuses): delete, then add. */
    if (s->used && (rc = delete_slot(v, slot, e)))
        return rc;
    if ((rc = v->ops->set_slot(v, slot, &n, e)))
        return rc;
    *s = n;
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
    return v->ops->dirty_log(v, slot, bitmap, e);
}

int sl_vcpu_tables_changed(sl_vcpu *v, bool changed, sl_errbuf *e)
{
    v->keep_tlb = !changed;
    return changed ? v->ops->forget_tables(v, e) : 0;
}

/* ---- registers ---- */

int sl_vcpu_get_regs(sl_vcpu *v, sl_regs *r, sl_errbuf *e)
{
    if (!v || !r)
        return sl_err(e, SL_EINVAL, "sl_vcpu_get_regs: NULL argument");
    int rc = v->ops->finish_exit(v, e);
    return rc ? rc : v->ops->get_regs(v, r, e);
}

int sl_vcpu_set_regs(sl_vcpu *v, const sl_regs *r, sl_errbuf *e)
{
    if (!v || !r)
        return sl_err(e, SL_EINVAL, "sl_vcpu_set_regs: NULL argument");
    int rc = v->ops->finish_exit(v, e);
    return rc ? rc : v->ops->set_regs(v, r, e);
}

/* Register groups a hypervisor lacks read as a fresh vCPU's. */
int sl_vcpu_get_sregs(sl_vcpu *v, sl_sregs_blob *b, sl_errbuf *e)
{
    if (!v || !b)
        return sl_err(e, SL_EINVAL, "sl_vcpu_get_sregs: NULL argument");
    const sl_vcpu_ops *ops = v->ops;
    sl_cpu_state *st = v->state;
    int rc = ops->finish_exit(v, e);
    if (rc)
        return rc;
    sl_cpu_state_fresh(st, v->arch, v->tr_type);
    if ((rc = ops->get_sregs(v, st, e)) || (rc = ops->get_xcr0(v, &st->xcr0, e)) ||
        (rc = ops->get_debugregs(v, st, e)) || (rc = ops->get_msrs(v, st->msr, e)) ||
        (rc = ops->get_fpu(v, st, e)))
        return rc;
    size_t len;
    memset(b, 0, sizeof *b);
    return sl_cpu_state_encode(st, b->bytes, sizeof b->bytes, &len, e);
}

/* The state a reset loads: saved, or a fresh vCPU's; then what every reset
 * changes (cpureset.h). */
static int reset_state(sl_vcpu *v, uint64_t cr3, const sl_sregs_blob *saved, sl_errbuf *e)
{
    sl_cpu_state *st = v->state;
    if (saved) {
        int rc = sl_cpu_state_decode(saved->bytes, sl_sregs_blob_len(saved), v->arch, st, e);
        if (rc)
            return rc;
    } else {
        sl_cpu_state_fresh(st, v->arch, v->tr_type);
    }
    sl_cpu_state_prepare(st, cr3, v->tr_type);
    return 0;
}

static int reset_sregs(sl_vcpu *v, sl_errbuf *e)
{
    bool flush = !v->keep_tlb; /* sl_vcpu_tables_changed(v, false) skips one flush */
    v->keep_tlb = false;
    return v->ops->set_sregs(v, v->state, flush, e);
}

int sl_vcpu_reset(sl_vcpu *v, uint64_t cr3, const sl_sregs_blob *saved, sl_errbuf *e)
{
    if (!v)
        return sl_err(e, SL_EINVAL, "sl_vcpu_reset: NULL vCPU");
    const sl_vcpu_ops *ops = v->ops;
    const sl_cpu_state *st = v->state;
    int rc;
    if ((rc = ops->finish_exit(v, e)) || (rc = reset_state(v, cr3, saved, e)))
        return rc;
    if ((rc = reset_sregs(v, e)) || (rc = ops->set_fpu(v, st, e)) || (rc = ops->set_xcr0(v, st->xcr0, e)) ||
        (rc = ops->set_debugregs(v, st, e)) || (rc = ops->set_msrs(v, st->msr, e)))
        return rc;
    return ops->clear_events(v, e);
}
