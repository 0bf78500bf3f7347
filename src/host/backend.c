/* Where this machine runs guests of each architecture (sl_backend_probe):
 * the one decision that the library, the CLI and the scripts share.
 *
 * PVM (kvm_pvm, "Pagetable Virtual Machine") is a KVM without VT-x/AMD-V: it
 * runs guest code at CPL3 on the hardware and emulates CPL0. It runs x86-64
 * guests (their code is user mode above sandlet's small kernel) but cannot
 * page in 32-bit mode, so i686 guests need hardware KVM or the KVM lab.
 * ../shared/notes/pvm.md has the measurements; docs/decisions.md the
 * consequences. The module's sysfs directory is the only marker PVM offers:
 * it reports no capability of its own through KVM_CHECK_EXTENSION. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "sandlet.h"

#ifndef SL_PVM_SYSFS
#define SL_PVM_SYSFS "/sys/module/kvm_pvm"
#endif

int sl_kvm_is_pvm(void)
{
    struct stat st;
    return stat(SL_PVM_SYSFS, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *sl_backend_probe(unsigned arch, char *why, size_t whylen)
{
    char dummy[1];
    if (!why || !whylen) {
        why = dummy;
        whylen = sizeof dummy;
    }
    why[0] = 0;
    if (arch != SL_ARCH_AMD64 && arch != SL_ARCH_I686) {
        snprintf(why, whylen, "unknown architecture %u", arch);
        return "lab";
    }
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "/dev/kvm: %s", strerror(errno));
        return "lab";
    }
    close(fd);
    if (!sl_kvm_is_pvm())
        return "kvm";
    if (arch == SL_ARCH_I686) {
        snprintf(why, whylen, "the host KVM is PVM (kvm_pvm), which cannot page in 32-bit mode");
        return "lab";
    }
    return "pvm";
}
