/* The guest library's internals (not for guest authors): the function model
 * in user mode (CPL3) on musl. It talks to the host through the message
 * buffers at the start of scratch (mapped for the user) and the sandlet I/O
 * ports the TSS bitmap opens to user code, and to the guest kernel through
 * sandlet's own system calls (SL_SYS_*). */
#ifndef SL_GUEST_LIB_H
#define SL_GUEST_LIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "sandlet_guest.h"

static inline void lib_out(uint16_t port, uint32_t v)
{
    __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port) : "memory");
}

long lib_syscall(long nr, long a0, long a1); /* SL_SYS_* through musl's syscall() */
void lib_flush(void);                         /* stdout and stderr, when anything is pending */

/* host.c */
uint8_t *lib_input(size_t *cap);
uint8_t *lib_output(size_t *cap);
int lib_push_output(const sl_msg *m); /* resets the output stack first */
void lib_to_wire(const sl_gvalue *g, sl_wire_value *w);
bool lib_from_wire(const sl_wire_value *w, sl_gvalue *g);

/* dispatch.c */
void lib_dispatch(void);
void lib_registry_seal(void);
void lib_init_begin(void);

/* entry_*.S */
void lib_dispatch_entry(void);
__attribute__((noreturn)) void lib_done(void);

#endif
