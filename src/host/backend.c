/* The hypervisor backends this build has (backend.h), and the one decision
 * the library, the CLI and the scripts share: where guests of each
 * architecture run here (sl_backend_probe). "lab" is no backend: the KVM lab
 * re-runs the command inside QEMU (scripts/kvm-lab). */
#include <stdio.h>

#include "backend.h"
#include "sandlet.h"

/* Adding a backend: one line here, before the ones it should win over. */
const sl_vcpu_ops *const sl_vcpu_backends[] = {
    &sl_kvm_ops,
    NULL,
};

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
    for (size_t i = 0; sl_vcpu_backends[i]; i++) {
        const char *name = sl_vcpu_backends[i]->probe(arch, why, whylen);
        if (name)
            return name;
    }
    return "lab";
}
