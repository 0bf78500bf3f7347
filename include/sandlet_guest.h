/* sandlet guest API: what a guest program in the function model uses to
 * export functions, call host functions, print and manage address spaces.
 * Guests are ordinary C programs on musl (use the standard headers for the C
 * library); docs/guest-runtime.md explains how to write and build one.
 *
 * The guest author defines `void sandlet_main(void)`, which runs once during
 * initialisation and registers the exported functions with sl_register().
 * The guest library supplies main(); a program with its own main() is an
 * ordinary program (`sandlet run`) and may still call the functions below
 * that do not need a call in progress (sl_print, sl_log, sl_call_host,
 * sl_generation, address spaces). Not thread-safe: a guest has one thread. */

/* The wire format's value types, result statuses and limits (docs/abi.md).
 * Defined here, once: guests see them in this header, and the library's
 * src/common/abi.h takes them from it (defining SANDLET_GUEST_WIRE_ONLY, so
 * that it gets only this part, which needs nothing but <stdint.h>). The
 * host's sandlet.h numbers its SL_TYPE_* the same; the library checks. */
#ifndef SANDLET_GUEST_WIRE_H
#define SANDLET_GUEST_WIRE_H
#include <stdint.h>
enum sl_type {
    SL_T_VOID = 0,
    SL_T_I32 = 1,
    SL_T_U32 = 2,
    SL_T_I64 = 3,
    SL_T_U64 = 4,
    SL_T_F32 = 5,
    SL_T_F64 = 6,
    SL_T_STRING = 7,
    SL_T_BOOL = 8,
    SL_T_BYTES = 9,
};
/* Status codes inside RESULT / HOSTRESULT (0 = ok). */
#define SL_ABI_OK 0
#define SL_ABI_ENOTFOUND 1  /* no such function */
#define SL_ABI_ETYPE 2      /* parameter count or type mismatch */
#define SL_ABI_EABORT 3     /* guest aborted / function failed */
#define SL_ABI_EHOSTFN 4    /* host function failed */
#define SL_ABI_ENOMEM 5     /* out of memory (guest heap or scratch) */
#define SL_ABI_EMALFORMED 6 /* message failed validation */
#define SL_ABI_MAX_VALUES 32u /* arguments per call */
#define SL_ABI_MAX_NAME 255u  /* bytes in a function name */
#endif

#if !defined(SANDLET_GUEST_H) && !defined(SANDLET_GUEST_WIRE_ONLY)
#define SANDLET_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Log levels for sl_log (the host decides what to do with them). */
#define SL_LOG_ERROR 1
#define SL_LOG_WARN 2
#define SL_LOG_INFO 3
#define SL_LOG_DEBUG 4

/* One argument or return value. For SL_T_STRING and SL_T_BYTES, v.s.ptr and
 * v.s.len describe the bytes:
 *  - arguments: strings are NUL-terminated copies (valid until the function
 *    returns); bytes point into the input buffer (read-only, same lifetime);
 *  - return values: the runtime copies the bytes into the result message after
 *    the function returns; if `owned` is set it then free()s v.s.ptr;
 *  - values passed to the host: a string with len 0 and a non-NULL ptr is
 *    measured with strlen. */
typedef struct sl_gvalue {
    uint8_t type;  /* enum sl_type */
    uint8_t owned; /* return values only: runtime frees v.s.ptr after use */
    union {
        int32_t i32;
        uint32_t u32;
        int64_t i64;
        uint64_t u64;
        float f32;
        double f64;
        bool b;
        struct {
            const char *ptr;
            uint32_t len;
        } s;
    } v;
} sl_gvalue;

/* An exported function: reads args[0..nparams) (types already checked), sets
 * the value fields of *ret (ret->type is preset to the declared return type)
 * and returns SL_ABI_OK, or a non-zero SL_ABI_* status (see sl_fail). */
typedef int (*sl_guest_fn)(const sl_gvalue *args, sl_gvalue *ret);

/* Registers a function; only valid inside sandlet_main. Returns 0, or -1 when
 * the name is empty, too long, reserved ("sl." prefix) or already taken, a type
 * is invalid (VOID is allowed as return type only), or the table is full
 * (SL_GUEST_MAX_FUNCTIONS). `name` must stay valid forever (a literal). */
#define SL_GUEST_MAX_FUNCTIONS 128
int sl_register(const char *name, uint8_t ret_type, unsigned nparams, const uint8_t *param_types,
                sl_guest_fn fn);

/* Defined by the guest author. */
void sandlet_main(void);

/* Helpers for return values. */
static inline void sl_ret_str(sl_gvalue *ret, const char *s, uint32_t len)
{
    ret->type = SL_T_STRING;
    ret->v.s.ptr = s;
    ret->v.s.len = len;
}
/* Sets the error text (a static or borrowed string) and returns `status`, so a
 * function can `return sl_fail(ret, SL_ABI_EABORT, "bad input");`. */
int sl_fail(sl_gvalue *ret, int status, const char *msg);

/* Calls host function `name` with args[0..nargs) and waits for its result.
 * Returns 0 with *ret filled (strings/bytes are NUL-terminated heap copies
 * with ret->owned = 1: release them with sl_gvalue_free), or a non-zero
 * SL_ABI_* status: the host's status, SL_ABI_ETYPE when the result type is not
 * `ret_type`, SL_ABI_EMALFORMED for a malformed reply, SL_ABI_ENOMEM when the
 * request does not fit the output buffer or a copy does not fit the heap. */
int sl_call_host(const char *name, uint8_t ret_type, unsigned nargs, const sl_gvalue *args,
                 sl_gvalue *ret);
void sl_gvalue_free(sl_gvalue *v);
/* Why the last sl_call_host failed, in the host's words, or the guest library's
 * when it refused the call itself ("" after a success).
 * Valid until the next host call. */
const char *sl_host_error(void);

/* The signature of host function `name` as the host registered it now: one
 * host call to the reserved host function "sl.host_signatures" (ABI 2.1) on
 * every use, nothing cached, because a sandbox restored from a snapshot (in
 * another process, say) may have other host functions than the one that took
 * the snapshot. Returns 0 and sets *ret_type (enum sl_type, VOID allowed),
 * *nparams (<= SL_ABI_MAX_VALUES) and params[0..*nparams) (the caller's
 * array holds SL_ABI_MAX_VALUES bytes); SL_ABI_ENOTFOUND when the host has no
 * such function; SL_ABI_ETYPE for a NULL pointer; SL_ABI_EMALFORMED when the
 * host's answer does not decode; otherwise the failed host call's status, as
 * sl_call_host returns it, with sl_host_error() saying why (a host older than
 * ABI 2.1 answers SL_ABI_EHOSTFN: no such host function). */
int sl_host_signature(const char *name, uint8_t *ret_type, unsigned *nparams, uint8_t *params);

/* Output to the host. Text longer than the output buffer is truncated. */
void sl_print(const char *str);
void sl_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sl_log(int level, const char *str);
/* Ends the current call (or initialisation) with an ABORT message. */
__attribute__((noreturn)) void sl_abort(int32_t code, const char *msg);

/* Snapshot generation (0 for a sandbox started from a binary; the N-th
 * snapshot on this execution path otherwise). */
uint64_t sl_generation(void);

/* ---- init data (sl_config.init_data; the CLI's --init-data FILE) ----
 * Bytes the host handed the sandbox when it created it, mapped at a fixed
 * address for the sandbox's whole life and part of every snapshot.
 * sl_init_data returns their start and sets *size (when size is not NULL)
 * to the region's size in bytes: the host's bytes rounded up to whole 4 KiB
 * pages, the rest zero, so a guest that needs the data's own length must
 * find it in the data. NULL with *size = 0 when there is none. The bytes
 * come from the host's caller: treat them as hostile (check every length
 * and offset against *size).
 * sl_init_data_perm says how the region is mapped, SL_PERM_* bits (0 without
 * init data): always SL_PERM_READ; SL_PERM_WRITE when the host asked for it
 * (sl_config.init_data_perm), and then writes land in copy-on-write copies
 * private to this sandbox, which a restore takes back; without it a write
 * is a page fault that fails the call. The pointer is const because the
 * region is read-only by default: cast it only when SL_PERM_WRITE is set.
 * SL_PERM_EXEC as mapped (i686 has no no-execute bit: always set there).
 * Both ask the kernel once, then answer from memory. */
#ifndef SL_PERM_READ
#define SL_PERM_READ 1u
#define SL_PERM_WRITE 2u
#define SL_PERM_EXEC 4u
#endif
const void *sl_init_data(uint64_t *size);
unsigned sl_init_data_perm(void);

/* The largest string or bytes return value, in bytes, that the output
 * buffer (sl_config.output_size) holds: a longer one fails the call with
 * SL_ABI_ENOMEM ("result does not fit in the output buffer"). At most 7 bytes
 * below the exact limit. 0 when the buffer is unusable. */
size_t sl_result_max_len(void);

/* ---- address spaces (page-table roots, kept by the guest kernel) ----
 * Space 0 is the one the host created. A new space starts as a copy of the
 * current root table, so it shares every existing mapping (and the tables
 * below the root) with it. Returns the new index, or -1 (table full or out
 * of scratch). */
int sl_space_create(void);
int sl_space_switch(unsigned index);  /* 0, or -1 for a bad index */
unsigned sl_space_current(void);
unsigned sl_space_count(void);
/* Maps a fresh zeroed page RW (not executable, user-accessible) at
 * page-aligned `gva` in space `index` only. The root-level entry covering gva
 * must not be shared with another space (pick a root slot that was empty when
 * the spaces were created; amd64: one slot covers 512 GiB, i686: 4 MiB), and
 * gva must not be below the kernel's end (page 0 included: NULL always
 * faults) nor in the stack's or mmap's range. 0, or -1 (bad
 * argument, shared slot, already mapped, out of scratch). */
int sl_space_map_private(unsigned index, uint64_t gva);

/* A string argument or value for sl_call_host. */
static inline sl_gvalue sl_gstr(const char *s)
{
    sl_gvalue v;
    v.type = SL_T_STRING;
    v.owned = 0;
    v.v.s.ptr = s;
    v.v.s.len = (uint32_t)strlen(s);
    return v;
}

#ifdef __cplusplus
}
#endif

#endif
