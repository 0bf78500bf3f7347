/* A minimal sandlet guest: one function, Greet(string) -> string.
 * Build: scripts/sandlet-cc -o hello examples/hello_guest.c */
#include <sandlet_guest.h>
#include <stdio.h>
#include <stdlib.h>

static int greet(const sl_gvalue *args, sl_gvalue *ret)
{
    static char buf[128]; /* the result is read after greet returns */
    int n = snprintf(buf, sizeof buf, "hello, %.*s", (int)args[0].v.s.len, args[0].v.s.ptr);
    sl_ret_str(ret, buf, (uint32_t)n);
    return SL_ABI_OK;
}

void sandlet_main(void)
{
    static const uint8_t params[] = {SL_T_STRING};
    sl_register("Greet", SL_T_STRING, 1, params, greet);
}
