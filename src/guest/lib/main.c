/* The function model's program: musl starts it like any program, main()
 * runs the author's sandlet_main (which registers functions), and init ends
 * with the program telling the kernel where calls enter (SL_SYS_INIT_DONE)
 * and the host that it is ready (SL_PORT_DONE). From then on every call
 * enters at lib_dispatch_entry on a fresh stack; main never resumes. */
#include "guest.h"

/* The version note (src/guest/note.c) lives in an archive member nothing
 * else refers to: this reference links it in. */
extern const char sl_version_note[];
__attribute__((used)) static const void *const keep_note = sl_version_note;

int main(void)
{
    lib_init_begin();
    sandlet_main();
    lib_registry_seal();
    lib_flush();
    size_t cap;
    uint8_t *out = lib_output(&cap);
    if (out)
        sl_abi_reset(out, cap); /* init ends without a RESULT */
    lib_syscall(SL_SYS_INIT_DONE, (long)(uintptr_t)lib_dispatch_entry, 0);
    lib_done();
}
