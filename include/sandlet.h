/* sandlet — run untrusted code in micro-VMs, snapshot and restore them.
 *
 * The only header a host program includes. Every function returns 0 or a
 * negative SL_E* code; objects keep a message describing their last error
 * (sl_*_errmsg), and sl_strerror() names every code. Handles are opaque and
 * owned by the caller, who frees them with the matching *_free. */
#ifndef SANDLET_H
#define SANDLET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SANDLET_VERSION_MAJOR 0
#define SANDLET_VERSION_MINOR 1
#define SANDLET_VERSION_PATCH 0

/* Error codes. */
#define SL_OK 0
#define SL_EINVAL (-1)       /* invalid argument */
#define SL_ENOMEM (-2)       /* out of host memory */
#define SL_EIO (-3)          /* I/O error (see the message for errno) */
#define SL_EFORMAT (-4)      /* malformed ELF or snapshot file */
#define SL_EVERSION (-5)     /* guest/host or file format version mismatch */
#define SL_ERANGE (-6)       /* a size or count does not fit the limits */
#define SL_EUNSUPPORTED (-7) /* valid but not supported (relocation type, large page, ...) */
#define SL_EPAGETABLE (-8)   /* guest page tables unusable */
#define SL_EFAMILY (-9)      /* snapshot belongs to another configuration family */
#define SL_ESTATE (-10)      /* object in the wrong state (poisoned, not initialised, ...) */
#define SL_EHYPERVISOR (-11) /* the vCPU backend failed */
#define SL_EABORT (-12)      /* the guest aborted */
#define SL_EFAULT (-13)      /* the guest took an exception */
#define SL_EMEMACCESS (-14)  /* memory access violation (write to read-only snapshot memory) */
#define SL_ETIMEOUT (-15)    /* the call ran past its timeout */
#define SL_ECANCELLED (-16)  /* the call was killed */
#define SL_ENOTFOUND (-17)   /* no such guest function or snapshot */
#define SL_ETYPE (-18)       /* parameter or return type mismatch */
#define SL_EHOSTFN (-19)     /* a host function failed */
#define SL_EABI (-20)        /* malformed message between host and guest */
#define SL_ENOSCRATCH (-21)  /* the guest ran out of scratch memory */
#define SL_EHASH (-22)       /* identity mismatch: data corrupted */
#define SL_EKVM_MISSING (-23) /* /dev/kvm cannot be opened */

/* Name of an error code ("SL_EINVAL: invalid argument"). Never NULL. */
const char *sl_strerror(int code);

/* Guest architectures (values shared with the snapshot file format). */
#define SL_ARCH_AMD64 1u
#define SL_ARCH_I686 2u

/* Permissions for init data (and region flags in `inspect`). */
#define SL_PERM_READ 1u
#define SL_PERM_WRITE 2u
#define SL_PERM_EXEC 4u

/* Sandbox memory configuration. Zero fields take the defaults below. Sizes are
 * rounded up to whole 4 KiB pages. The sum may not exceed 16 GiB (on i686 the
 * guest's memory must also fit below 0xFEE00000). */
typedef struct sl_config {
    uint64_t input_size;   /* host -> guest message buffer (default 64 KiB) */
    uint64_t output_size;  /* guest -> host message buffer (default 64 KiB) */
    uint64_t heap_size;    /* guest heap, part of every snapshot (default 1 MiB) */
    uint64_t stack_size;   /* guest stack, mapped on demand (default 256 KiB) */
    uint64_t scratch_size; /* the only writable guest memory (default 16 MiB) */
    const void *init_data; /* optional bytes mapped into the guest (PEB init data) */
    uint64_t init_data_size;
    unsigned init_data_perm; /* SL_PERM_* (default read-only) */
} sl_config;

#define SL_DEFAULT_IO_SIZE (64u << 10)
#define SL_DEFAULT_HEAP_SIZE (1u << 20)
#define SL_DEFAULT_STACK_SIZE (256u << 10)
#define SL_DEFAULT_SCRATCH_SIZE (16u << 20)
#define SL_MAX_MEMORY (16ull << 30)

#ifdef __cplusplus
}
#endif

#endif
