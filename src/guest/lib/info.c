/* What the guest learns about its sandbox beyond calls: the init data the
 * host gave it, and how large a result the output buffer holds. Asked of
 * the kernel once; the answers are part of every later snapshot (they are
 * the same for a whole configuration family). */
#include "guest.h"

static struct {
    uint64_t gva, size, perm;
    bool known;
} init;

static void init_data_ask(void)
{
    if (init.known)
        return;
    uint64_t v[3];
    if (lib_syscall(SL_SYS_INIT_DATA, (long)(uintptr_t)v, 0) == 0 && v[1] && v[0] &&
        v[0] <= UINTPTR_MAX && v[1] <= UINTPTR_MAX - v[0]) {
        init.gva = v[0];
        init.size = v[1];
        init.perm = v[2];
    }
    init.known = true;
}

const void *sl_init_data(uint64_t *size)
{
    init_data_ask();
    if (size)
        *size = init.size;
    return init.size ? (const void *)(uintptr_t)init.gva : NULL;
}

unsigned sl_init_data_perm(void)
{
    init_data_ask();
    return (unsigned)init.perm & (SL_PERM_READ | SL_PERM_WRITE | SL_PERM_EXEC);
}

size_t sl_result_max_len(void)
{
    static size_t max;
    static bool known;
    if (known)
        return max;
    known = true;
    size_t cap;
    if (!lib_output(&cap))
        return 0;
    /* A RESULT holding an empty string: its frame is the fixed cost; the
     * string's bytes add to it, padded to SL_ABI_ALIGN. */
    sl_msg m;
    sl_msg_init(&m, SL_MSG_RESULT);
    m.count = 1;
    m.values[0].type = SL_T_STRING;
    m.values[0].v.buf.ptr = (const uint8_t *)"";
    m.values[0].v.buf.len = 0;
    uint8_t frame[128];
    size_t fixed;
    if (sl_abi_encode(&m, frame, sizeof frame, &fixed) != 0)
        return 0;
    size_t room = cap - SL_ABI_STACK_HDR - SL_ABI_FOOTER_SIZE;
    if (cap < SL_ABI_STACK_HDR + SL_ABI_FOOTER_SIZE + fixed)
        return 0;
    room = (room & ~(size_t)(SL_ABI_ALIGN - 1)) - fixed;
    max = room > UINT32_MAX ? UINT32_MAX : room;
    return max;
}
