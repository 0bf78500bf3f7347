/* The README's minimal host program: run a guest function, resetting the guest
 * to a clean snapshot after every call. Usage: hello_host (from the repo root). */
#include <stdio.h>
#include "sandlet.h"

int main(void)
{
    char err[256];
    sl_sandbox *sb;
    int rc = sl_sandbox_new_from_file(&sb, "build/guests/hello", NULL, err, sizeof err);
    if (rc) {
        fprintf(stderr, "create: %s\n", err);
        return 1;
    }
    if ((rc = sl_sandbox_init(sb))) {
        fprintf(stderr, "init: %s\n", sl_sandbox_errmsg(sb));
        return 1;
    }
    sl_snapshot *clean;
    sl_sandbox_snapshot(sb, &clean); /* the state every request starts from */

    sl_value arg = {.type = SL_TYPE_STRING, .v.buf = {"world", 5}}, ret;
    for (int i = 0; i < 3; i++) {
        if ((rc = sl_sandbox_call(sb, "Greet", &arg, 1, &ret)))
            fprintf(stderr, "call: %s\n", sl_sandbox_errmsg(sb));
        else
            printf("%s\n", (const char *)ret.v.buf.ptr);
        sl_sandbox_restore(sb, clean); /* back to the clean state after every call */
    }
    sl_snapshot_free(clean);
    sl_sandbox_free(sb);
    return 0;
}
