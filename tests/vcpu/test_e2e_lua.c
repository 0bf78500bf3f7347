/* A real program in the function model: Lua 5.4 (guests/lua_eval.c) on both
 * architectures. Initialised once, snapshotted, restored between calls: what
 * one call does to the Lua state is gone after the restore, the identity of
 * snapshot -> restore -> snapshot is unchanged, Lua errors are ordinary
 * failed calls, and what Lua prints reaches the host's stdout callback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandlet.h"
#include "t.h"
#include "../common/e2e.h"

typedef struct out {
    char buf[4096];
    size_t len;
} out;

static void capture(void *user, int fd, const void *buf, size_t len)
{
    out *o = user;
    if (fd != 1)
        return;
    if (len > sizeof o->buf - 1 - o->len)
        len = sizeof o->buf - 1 - o->len;
    memcpy(o->buf + o->len, buf, len);
    o->len += len;
    o->buf[o->len] = 0;
}

static int eval(sl_sandbox *sb, const char *code, char *res, size_t cap)
{
    return call_text(sb, "Eval", code, res, cap);
}

static void expect(sl_sandbox *sb, const char *code, const char *want)
{
    expect_text(sb, "Eval", code, want);
}

static void lua_snapshots(const char *guest)
{
    char err[512];
    sl_sandbox *sb;
    int rc = sl_sandbox_new_from_file(&sb, guest_path(guest), NULL, err, sizeof err);
    if (rc)
        printf("  %s: %s\n", guest, err);
    REQUIRE(rc == 0);
    out o = {.len = 0};
    sl_sandbox_set_stdio(sb, NULL, capture, &o);
    REQUIRE(sl_sandbox_init(sb) == 0);
    expect(sb, "1 + 1", "2");
    expect(sb, "string.format('%.3f|%5.1e|%g', math.pi, math.pi, 0.1)", "3.142|3.1e+00|0.1");
    expect(sb, "greeting = 'hello from the snapshot'", "");

    sl_snapshot *s1, *s2;
    REQUIRE(sl_sandbox_snapshot(sb, &s1) == 0);
    /* A request changes the state... */
    expect(sb, "counter = (counter or 0) + 1; return counter", "1");
    expect(sb, "counter = counter + 1; return counter, greeting", "2\thello from the snapshot");
    expect(sb, "print('printed', 42)", "");
    CHECK(strcmp(o.buf, "printed\t42\n") == 0);
    /* ... and the restore takes it back. */
    REQUIRE(sl_sandbox_restore(sb, s1) == 0);
    expect(sb, "counter", "nil");
    expect(sb, "greeting", "hello from the snapshot");
    expect(sb, "counter = (counter or 0) + 1; return counter", "1");

    /* snapshot -> restore -> snapshot keeps the identity. */
    REQUIRE(sl_sandbox_restore(sb, s1) == 0);
    REQUIRE(sl_sandbox_snapshot(sb, &s2) == 0);
    char h1[65], h2[65];
    sl_snapshot_id_hex(s1, h1);
    sl_snapshot_id_hex(s2, h2);
    CHECK(strcmp(h1, h2) == 0);

    /* Lua errors are failed calls with Lua's message; the sandbox goes on. */
    char got[1024];
    CHECK_EQ(eval(sb, "error('boom')", got, sizeof got), SL_EABORT);
    CHECK(has(got, "boom"));
    CHECK_EQ(eval(sb, "this is not lua", got, sizeof got), SL_EABORT);
    CHECK(has(got, "syntax error") || has(got, "expected"));
    expect(sb, "greeting", "hello from the snapshot");
    sl_snapshot_free(s1);
    sl_snapshot_free(s2);
    sl_sandbox_free(sb);
}

static void test_lua_eval(void) { lua_snapshots("lua_eval"); }
static void test_lua_eval32(void) { lua_snapshots("lua_eval32"); }

int main(void)
{
    RUN_ARCH(T_AMD64, test_lua_eval);
    RUN_ARCH(T_I686, test_lua_eval32);
    T_EXIT();
}
