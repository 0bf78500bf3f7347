/* The Lua plugin's JSON codec (guests/lua_plugin/plugin.c), natively on
 * Debian's liblua5.4: the input is the JSON text of a Call's arguments, the
 * one part of a request the plugin parses itself.
 *
 * Invariants: no crash, leak or sanitizer report for any input; an input the
 * codec accepts comes back as JSON that the codec reads again into the same
 * values, i.e. Call(id, "[" R "]") gives R again, where R is what
 * Call(id, input) gave and id returns its arguments. Lua errors (refused
 * JSON, values JSON cannot hold) are ordinary outcomes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "../guests/lua_plugin/plugin.h"

static lua_State *L;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static const char lib[] = "function id(...) return ... end";
    char *err = NULL;
    L = lp_new();
    FUZZ_ASSERT(L && lp_load(L, lib, sizeof lib - 1, &err) == 0);
    /* Deep or huge inputs fail with "not enough memory", not the fuzzer's
     * RSS limit. */
    lp_set_limit(L, 256u << 20);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *res = NULL, *err = NULL;
    size_t len = 0;
    if (lp_call(L, "id", (const char *)data, size, &res, &len, &err) != 0) {
        FUZZ_ASSERT(res == NULL);
        free(err);
        return 0;
    }
    FUZZ_ASSERT(res != NULL && err == NULL && strlen(res) == len);
    char *wrapped = malloc(len + 3);
    FUZZ_ASSERT(wrapped != NULL);
    wrapped[0] = '[';
    memcpy(wrapped + 1, res, len);
    wrapped[len + 1] = ']';
    wrapped[len + 2] = 0;
    char *again = NULL;
    size_t again_len = 0;
    int rc = lp_call(L, "id", wrapped, len + 2, &again, &again_len, &err);
    if (rc != 0)
        fprintf(stderr, "re-reading %s failed: %s\n", res, err ? err : "?");
    FUZZ_ASSERT(rc == 0);
    if (again_len != len || memcmp(again, res, len) != 0)
        fprintf(stderr, "%s became %s\n", res, again);
    FUZZ_ASSERT(again_len == len && memcmp(again, res, len) == 0);
    free(again);
    free(wrapped);
    free(res);
    return 0;
}
