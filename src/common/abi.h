/* Host <-> guest ABI: I/O ports and the message wire format (docs/abi.md is
 * normative). Freestanding and shared by both sides; every decode is bounds
 * checked and a malformed message is an SL_ABI_E* code, never a crash. */
#ifndef SL_ABI_H
#define SL_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ABI version, also carried by the guest's ELF note (name "sandlet", type
 * SL_NOTE_TYPE_VERSION, desc = u32 major, u32 minor). A host accepts a guest
 * with the same major and a minor <= its own. */
#define SL_ABI_VERSION_MAJOR 2u /* 2: user-mode guests above the guest kernel */
#define SL_ABI_VERSION_MINOR 1u /* 1: the reserved host function SL_ABI_HOST_SIGNATURES_FN */
#define SL_NOTE_NAME "sandlet"
#define SL_NOTE_TYPE_VERSION 0x534c0001u

/* I/O ports; the guest writes a 32-bit value with `out dx, eax`. */
#define SL_PORT_DONE 0x5100      /* init or call finished; value 0; result message in output */
#define SL_PORT_HOSTCALL 0x5101  /* HOSTCALL message in output; host answers in input */
#define SL_PORT_ABORT 0x5102     /* value = abort code; ABORT message (text) in output */
#define SL_PORT_PRINT 0x5103     /* PRINT message in output */
#define SL_PORT_LOG 0x5104       /* value = level; LOG message in output */
#define SL_PORT_FAULT 0x5105     /* unhandled exception; FAULT message in output */
/* Ports the guest kernel (CPL0) uses for the program's system calls. The TSS
 * I/O bitmap lets user code (CPL3) write SL_PORT_DONE..SL_PORT_LOG with
 * 32-bit accesses, which opens SL_PORT_DONE..SL_PORT_USER_LAST + 3 (so
 * SL_PORT_WRITE and SL_PORT_READ too: the host treats every port as
 * untrusted anyway); SL_PORT_EXIT and SL_PORT_CLOCK stay the kernel's. */
#define SL_PORT_WRITE 0x5106     /* WRITE message in output (code = fd 1 or 2, text = bytes) */
#define SL_PORT_READ 0x5107      /* value = bytes wanted from fd 0; host pushes DATA on input */
#define SL_PORT_EXIT 0x5108      /* value = exit status (bit 8 set: killed by signal value & 0x7f) */
#define SL_PORT_CLOCK 0x5109     /* value = clock id; host writes SL_BK_CLOCK_SEC/NSEC */
#define SL_PORT_PAGE 0x510A      /* value = SL_PAGE_OP_*, on SL_BK_PAGE_DST/SRC (kernel only) */
#define SL_PORT_PF 0x510B        /* a user page fault in SL_BK_PF_*, for the host (kernel only) */
#define SL_PAGE_OP_COPY 1u
#define SL_PAGE_OP_ZERO 2u
#define SL_PORT_USER_LAST SL_PORT_LOG /* highest port user code may write */

/* sandlet's own system calls, next to Linux's: user code reaches the guest
 * kernel with these numbers through the normal system-call instruction. */
#define SL_SYS_BASE 0x5100
#define SL_SYS_INIT_DONE (SL_SYS_BASE + 0)   /* (dispatch entry GVA): the program is ready for calls */
#define SL_SYS_GENERATION (SL_SYS_BASE + 1)  /* () -> snapshot generation */
#define SL_SYS_IO_BUFFERS (SL_SYS_BASE + 2)  /* (u64 out[4]) <- input GVA, size, output GVA, size */
#define SL_SYS_SPACE_CREATE (SL_SYS_BASE + 3) /* () -> new space index, or -errno */
#define SL_SYS_SPACE_SWITCH (SL_SYS_BASE + 4) /* (index) */
#define SL_SYS_SPACE_CURRENT (SL_SYS_BASE + 5) /* () -> index */
#define SL_SYS_SPACE_COUNT (SL_SYS_BASE + 6) /* () -> count */
#define SL_SYS_SPACE_MAP (SL_SYS_BASE + 7)   /* (index, gva): a fresh private zero page */
#define SL_SYS_CALL_STACK (SL_SYS_BASE + 8)  /* () -> top of the function model's call stack */
#define SL_SYS_INIT_DATA (SL_SYS_BASE + 9)   /* (u64 out[3]) <- init data GVA, size, perm bits (r 1, w 2, x 4) */

/* Value types on the wire (one byte): enum sl_type, defined with the result
 * statuses (SL_ABI_OK, ...) and SL_ABI_MAX_VALUES/NAME in the guest's public
 * header, which owns them; only its freestanding wire part is taken here. */
#define SANDLET_GUEST_WIRE_ONLY
#include "../../include/sandlet_guest.h"
#undef SANDLET_GUEST_WIRE_ONLY
#define SL_T_MAX SL_T_BYTES

/* Message kinds. */
enum sl_msg_kind {
    SL_MSG_CALL = 1,        /* host -> guest: function name + arguments */
    SL_MSG_RESULT = 2,      /* guest -> host: status + return value or error text */
    SL_MSG_HOSTCALL = 3,    /* guest -> host: host function name + arguments */
    SL_MSG_HOSTRESULT = 4,  /* host -> guest: status + return value or error text */
    SL_MSG_PRINT = 5,       /* guest -> host: text */
    SL_MSG_ABORT = 6,       /* guest -> host: code + text */
    SL_MSG_FAULT = 7,       /* guest -> host: vector, error code, address, ip */
    SL_MSG_LOG = 8,         /* guest -> host: level + text */
    SL_MSG_WRITE = 9,       /* guest -> host: fd (1 or 2) in code + bytes written to it */
    SL_MSG_DATA = 10,       /* host -> guest: bytes read from stdin (code 0, empty text = end of
                             * input; or code = -errno of the host's reader) */
    SL_MSG_EXEC = 11,       /* host -> guest before init: code = argc; text = argc argv strings
                             * then the environment, each NUL-terminated */
};

/* Decode/encode errors (negative). */
#define SL_ABI_E_TRUNCATED (-1) /* a size or offset points past the buffer */
#define SL_ABI_E_VERSION (-2)   /* wire version not understood */
#define SL_ABI_E_KIND (-3)      /* unexpected message kind */
#define SL_ABI_E_TYPE (-4)      /* unknown type tag */
#define SL_ABI_E_SPACE (-5)     /* encoder ran out of buffer */
#define SL_ABI_E_LIMIT (-6)     /* too many values / too long */
#define SL_ABI_E_EMPTY (-7)     /* stack has no message / registry has no more entries */
#define SL_ABI_E_MALFORMED (-8) /* inconsistent sizes, non-zero reserved or padding
                                 * bytes, trailing bytes, bool not 0/1, NULL data */

#define SL_ABI_WIRE_VERSION 1u

/* Sizes of the fixed parts (docs/abi.md, "Frame format" and "Message stacks"). */
#define SL_ABI_HDR_SIZE 16u     /* frame header: size, version, kind, flags, body_len */
#define SL_ABI_ALIGN 8u         /* frames are padded with zeros to a multiple of this */
#define SL_ABI_STACK_HDR 8u     /* u64 top at the start of a stack buffer */
#define SL_ABI_FOOTER_SIZE 8u   /* u32 frame size + u32 reserved (0) after each frame */

/* Reserved guest function: no arguments, returns SL_T_BYTES holding the
 * signature registry (see sl_abi_sig_*). */
#define SL_ABI_SIGNATURES_FN "sl.signatures"
/* Reserved host function (ABI 2.1), answered by the host itself: no
 * arguments, returns SL_T_BYTES holding the registry of the host functions
 * in the same encoding. */
#define SL_ABI_HOST_SIGNATURES_FN "sl.host_signatures"

/* A decoded or to-be-encoded value. String and bytes point into the message
 * buffer (decode) or into caller memory (encode); strings are not NUL
 * terminated on the wire. */
typedef struct sl_wire_value {
    uint8_t type; /* enum sl_type */
    union {
        int32_t i32;
        uint32_t u32;
        int64_t i64;
        uint64_t u64;
        float f32;
        double f64;
        bool b;
        struct {
            const uint8_t *ptr;
            uint32_t len;
        } buf; /* SL_T_STRING and SL_T_BYTES */
    } v;
} sl_wire_value;

/* A whole message, decoded. Which fields are meaningful depends on kind:
 * CALL/HOSTCALL: name, values[0..count) are the arguments.
 * RESULT/HOSTRESULT: status; status 0 -> values[0] is the return value
 *   (type VOID for none, count 1); else text is the error message.
 * PRINT/LOG/ABORT/WRITE/DATA/EXEC: code (log level / abort code / fd /
 *   argc), text.
 * FAULT: code = vector, and fault[] = {error code, address (CR2), ip}.
 * Decode sets every scalar field (0 when unused) and values[0..count);
 * values[count..] are left untouched. */
typedef struct sl_msg {
    uint16_t kind;
    int32_t status;
    int64_t code;
    const uint8_t *name;
    uint32_t name_len;
    const uint8_t *text;
    uint32_t text_len;
    uint64_t fault[3];
    uint32_t count;
    sl_wire_value values[SL_ABI_MAX_VALUES];
} sl_msg;

/* Encodes `m` into buf[0..cap) as one framed message; *len gets its size.
 * Returns 0 or a negative SL_ABI_E*. */
int sl_abi_encode(const sl_msg *m, uint8_t *buf, size_t cap, size_t *len);

/* Decodes one framed message from buf[0..len). Pointers in *m point into buf.
 * Returns 0 or a negative SL_ABI_E*. Never reads outside buf[0..len). */
int sl_abi_decode(const uint8_t *buf, size_t len, sl_msg *m);

/* Message stack in a scratch buffer (input or output): the buffer starts with
 * a u64 `top` (bytes used after the header); messages are pushed one after the
 * other, each followed by a footer (u32 framed size, u32 reserved 0; 8 bytes so
 * frames stay 8-aligned) so the last one can be popped. Both sides re-validate
 * `top` and every size on every access, since the other side may have written
 * anything. Empty stack: SL_ABI_E_EMPTY. Popping only moves `top`. */
int sl_abi_push(uint8_t *buf, size_t cap, const sl_msg *m);
/* Decodes the top message into *m without removing it (pointers into buf). */
int sl_abi_peek(const uint8_t *buf, size_t cap, sl_msg *m);
int sl_abi_pop(uint8_t *buf, size_t cap);
void sl_abi_reset(uint8_t *buf, size_t cap);
/* The output protocol (abi.md): empties the stack and pushes m, the one
 * message the next port write refers to. buf may be NULL (SL_ABI_E_SPACE). */
int sl_abi_replace(uint8_t *buf, size_t cap, const sl_msg *m);
/* Zeroes *m and sets its kind. */
void sl_msg_init(sl_msg *m, uint16_t kind);

/* Signature registry (the value returned by SL_ABI_SIGNATURES_FN):
 * u32 count, then per function: u8 name_len, name, u8 ret type, u8 nparams,
 * nparams u8 param types. ret may be SL_T_VOID; params may not. */
typedef struct sl_abi_sig {
    const uint8_t *name;
    uint32_t name_len; /* <= SL_ABI_MAX_NAME */
    uint8_t ret;       /* enum sl_type */
    uint8_t nparams;   /* <= SL_ABI_MAX_VALUES */
    uint8_t params[SL_ABI_MAX_VALUES];
} sl_abi_sig;

/* Writing: sl_abi_sig_init starts an empty registry in buf[0..cap) and sets
 * *len; each sl_abi_sig_add appends one entry and updates *len and the count.
 * sl_abi_sig_encode does both for an array. Return 0 or a negative SL_ABI_E*. */
int sl_abi_sig_init(uint8_t *buf, size_t cap, size_t *len);
int sl_abi_sig_add(uint8_t *buf, size_t cap, size_t *len, const sl_abi_sig *s);
int sl_abi_sig_encode(const sl_abi_sig *sigs, uint32_t n, uint8_t *buf, size_t cap, size_t *len);

/* Reading: sl_abi_sig_open validates the whole registry buf[0..len) (every
 * entry, exact count, no trailing bytes), returns the count and sets *pos to
 * the first entry; each sl_abi_sig_next decodes the entry at *pos into *s
 * (name points into buf) and advances *pos; SL_ABI_E_EMPTY after the last. */
int sl_abi_sig_open(const uint8_t *buf, size_t len, uint32_t *count, size_t *pos);
int sl_abi_sig_next(const uint8_t *buf, size_t len, size_t *pos, sl_abi_sig *s);

#endif
