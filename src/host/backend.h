/* Which KVM this is (backend.c). */
#ifndef SL_BACKEND_H
#define SL_BACKEND_H

/* 1 when /dev/kvm is PVM (kvm_pvm), 0 for hardware KVM or none. */
int sl_kvm_is_pvm(void);

#endif
