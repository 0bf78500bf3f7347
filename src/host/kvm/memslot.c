/* KVM memslots, the dirty log, and making KVM forget its shadow copies of
 * the guest's page tables. */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm_vcpu.h"

static int set_region(sl_kvm_vcpu *k, unsigned slot, const sl_vcpu_slot *s, sl_errbuf *e)
{
    struct kvm_userspace_memory_region r;
    memset(&r, 0, sizeof r);
    r.slot = slot;
    r.guest_phys_addr = s->gpa;
    r.memory_size = s->size;
    r.userspace_addr = (uint64_t)(uintptr_t)s->host;
    r.flags = ((s->flags & SL_VMEM_READONLY) ? KVM_MEM_READONLY : 0) |
              ((s->flags & SL_VMEM_DIRTY_LOG) ? KVM_MEM_LOG_DIRTY_PAGES : 0);
    if (sl_kvm_ioctl(k, k->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
        int err = errno;
        return sl_err(e, SL_EHYPERVISOR,
                      "KVM_SET_USER_MEMORY_REGION (slot %u, GPA 0x%llx, size 0x%llx) failed: %s "
                      "(errno %d)",
                      slot, (unsigned long long)s->gpa, (unsigned long long)s->size, strerror(err), err);
    }
    return 0;
}

int sl_kvm_set_slot(sl_vcpu *v, unsigned slot, const sl_vcpu_slot *s, sl_errbuf *e)
{
    return set_region(sl_kvm_of(v), slot, s, e);
}

int sl_kvm_dirty_log(sl_vcpu *v, unsigned slot, uint64_t *bitmap, sl_errbuf *e)
{
    sl_kvm_vcpu *k = sl_kvm_of(v);
    struct kvm_dirty_log d;
    memset(&d, 0, sizeof d);
    d.slot = slot;
    d.dirty_bitmap = bitmap;
    if (sl_kvm_ioctl(k, k->vm_fd, KVM_GET_DIRTY_LOG, &d) < 0)
        return sl_kvm_ioctl_err(e, "KVM_GET_DIRTY_LOG");
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
bool sl_kvm_uses_shadow_paging(const sl_kvm_vcpu *k)
{
    return k->pvm || module_flag("/sys/module/kvm_intel/parameters/ept") == 0 ||
           module_flag("/sys/module/kvm_amd/parameters/npt") == 0;
}

#define ZAP_SLOT_GPA 0x1000ull /* below SL_BASE_ADDRESS: no layout uses it */

int sl_kvm_forget_tables(sl_vcpu *v, sl_errbuf *e)
{
    sl_kvm_vcpu *k = sl_kvm_of(v);
    if (!k->shadow_paging)
        return 0;
    sl_vcpu_slot zap = {.used = true, .gpa = ZAP_SLOT_GPA, .host = k->zap_page, .flags = SL_VMEM_READONLY};
    if (!k->zap_page) {
        void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return sl_err(e, SL_ENOMEM, "out of memory for the shadow-paging slot");
        k->zap_page = zap.host = p;
    } else {
        int rc = set_region(k, k->zap_slot, &zap, e); /* size 0: delete */
        if (rc)
            return rc;
    }
    zap.size = 4096;
    return set_region(k, k->zap_slot, &zap, e);
}
