/* Untrusted requests on a warm snapshot (issue 8): what isolation costs per
 * request, against the same work done natively in the host process, in the
 * same run (needs KVM: native hardware KVM or PVM for these x86-64 guests, or
 * the KVM lab):
 *
 *  - lua_request_restore: Call("score", "[...]") on the Lua plugin guest
 *    (guests/lua_plugin, the plugin library loaded with Load before the
 *    snapshot), then the restore to that snapshot; baseline: the same Call on
 *    a lua_State kept warm in this process (the plugin's own code,
 *    guests/lua_plugin/plugin.c and json.c, on Debian's liblua5.4).
 *    lua_request_restore_vs_fresh_state: the same guest figure against a
 *    fresh native state per request (luaL_newstate, open the libraries, load
 *    the plugin, call, lua_close): what a host that wants a clean state per
 *    request without sandlet pays.
 *  - sqlite_query_restore_point: Query(a point SELECT) on the SQLite guest
 *    (guests/sqlite, a 16 MiB database as init data) + restore; baseline:
 *    the same statement on an in-memory copy of the database in this process
 *    (Debian's libsqlite3, same version), prepared, stepped and finalized,
 *    every column read.
 *  - sqlite_query_restore_update: an UPDATE touching ~10 table pages, likewise.
 *
 * For each guest figure, a "# events" line gives what one request costs in
 * the hardware's terms: VM exits by reason, KVM ioctls (the call's and the
 * restore's), guest page faults, copy-on-write copies, and the scratch pages
 * the request dirtied.
 *
 * Usage: bench_requests   (guests from $SANDLET_GUESTS, default build/guests)
 * SANDLET_BENCH_QUICK=1: fewer repetitions. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "sandlet.h"

static void die(const char *what, int rc, const char *msg)
{
    fprintf(stderr, "bench_requests: %s: %s: %s\n", what, sl_strerror(rc), msg ? msg : "");
    exit(1);
}

#include "bench_kvm.h"
#include "../guests/lua_plugin/plugin.h"

/* Times reps runs of fn(arg) (after one warm-up run); the median in seconds. */
static double timed(int reps, void (*fn)(void *), void *arg)
{
    double *t = calloc((size_t)reps, sizeof *t);
    if (!t)
        die("calloc", SL_ENOMEM, NULL);
    for (int i = -1; i < reps; i++) {
        double t0 = bench_now();
        fn(arg);
        if (i >= 0)
            t[i] = bench_now() - t0;
    }
    double med = bench_median(t, reps);
    free(t);
    return med;
}

/* A guest request: one call, then the restore. */
typedef struct request {
    sl_sandbox *sb;
    sl_snapshot *snap;
    const char *fn;
    sl_value args[2];
    size_t nargs;
    const char *want; /* the result must start with this */
} request;

static void call_checked(request *q)
{
    sl_value r;
    int rc = sl_sandbox_call(q->sb, q->fn, q->args, q->nargs, &r);
    if (rc)
        die(q->fn, rc, sl_sandbox_errmsg(q->sb));
    size_t n = strlen(q->want);
    if (r.type != SL_TYPE_STRING || r.v.buf.len < n || memcmp(r.v.buf.ptr, q->want, n) != 0) {
        fprintf(stderr, "bench_requests: %s: got '%.*s', want '%s...'\n", q->fn,
                r.type == SL_TYPE_STRING ? (int)r.v.buf.len : 0, r.type == SL_TYPE_STRING ? (const char *)r.v.buf.ptr : "",
                q->want);
        exit(1);
    }
}

static void request_once(void *arg)
{
    request *q = arg;
    call_checked(q);
    restore_once(q->sb, q->snap);
}

/* The events of one request: the call's (counters read right after it) and
 * the restore's ioctls. */
static events request_events(request *q, const char *name)
{
    call_checked(q);
    events e = call_events(q->sb);
    events r = counted_restore(q->sb, q->snap, name);
    e.ioctls += r.ioctls;
    return e;
}

static sl_value str(const char *s)
{
    sl_value v = {.type = SL_TYPE_STRING};
    v.v.buf.ptr = s;
    v.v.buf.len = strlen(s);
    return v;
}

/* ------------------------------------------------------------------ Lua */

/* The plugin library a plugin host would load once, and the request. */
static const char LUA_PLUGIN[] =
    "function score(items, weight)\n"
    "  local total = 0\n"
    "  for i, v in ipairs(items) do total = total + v * weight + i end\n"
    "  return {total = total, n = #items}\n"
    "end\n";
#define LUA_FN "score"
#define LUA_ARGS "[[3, 1, 4, 1, 5, 9, 2, 6], 2]"
#define LUA_WANT "{\""

typedef struct native_lua {
    lua_State *L;
} native_lua;

static void native_lua_call(lua_State *L)
{
    char *res = NULL, *err = NULL;
    size_t len;
    if (lp_call(L, LUA_FN, LUA_ARGS, strlen(LUA_ARGS), &res, &len, &err) != 0)
        die("native Call", SL_EABI, err);
    if (len < 2 || memcmp(res, LUA_WANT, 2) != 0)
        die("native Call", SL_EABI, "wrong answer");
    free(res);
}

static lua_State *native_state(void)
{
    char *err = NULL;
    lua_State *L = lp_new();
    if (!L || lp_load(L, LUA_PLUGIN, strlen(LUA_PLUGIN), &err) != 0)
        die("native Load", SL_EABI, err);
    return L;
}

static void native_warm(void *arg) { native_lua_call(((native_lua *)arg)->L); }

static void native_fresh(void *arg)
{
    (void)arg;
    lua_State *L = native_state();
    native_lua_call(L);
    lp_close(L);
}

static void bench_lua(int reps)
{
    sl_sandbox *sb = open_guest("lua_plugin", NULL);
    sl_value chunk = str(LUA_PLUGIN), r;
    int rc = sl_sandbox_call(sb, "Load", &chunk, 1, &r);
    if (rc)
        die("Load", rc, sl_sandbox_errmsg(sb));
    request q = {.sb = sb, .fn = "Call", .args = {str(LUA_FN), str(LUA_ARGS)}, .nargs = 2, .want = LUA_WANT};
    if ((rc = sl_sandbox_snapshot(sb, &q.snap)))
        die("snapshot", rc, sl_sandbox_errmsg(sb));
    calibrate_info(sb);
    double guest = timed(reps, request_once, &q);
    native_lua warm = {native_state()};
    double native = timed(reps, native_warm, &warm);
    double fresh = timed(reps, native_fresh, NULL);
    lp_close(warm.L);

    bench_report("lua_request_restore", guest, native, "us");
    bench_report("lua_request_restore_vs_fresh_state", guest, fresh, "us");
    events e = request_events(&q, "lua_request_restore");
    print_events("lua_request_restore", &e);
    printf("# lua_request_restore: Call(\"%s\", \"%s\") + restore; baselines: the same call on a warm native "
           "lua_State, and on a fresh one per request (newstate + openlibs + load the plugin + call + close)\n",
           LUA_FN, LUA_ARGS);
    printf("# dirty pages per request (lua_plugin): %llu\n", (unsigned long long)e.dirty);
    sl_snapshot_free(q.snap);
    sl_sandbox_free(sb);
}

/* --------------------------------------------------------------- SQLite */

#define DB_ROWS 16000u /* ~1 KiB each: a 16 MiB database */
#define POINT_SQL "SELECT id, name, score FROM t WHERE id = 12345"
#define POINT_WANT "[{\"id\":12345,"
/* Ten rows 1,500 apart (each ~4 rows to a 4 KiB page): ten table pages. */
#define UPDATE_SQL                                                                                  \
    "UPDATE t SET score = score + 1 WHERE id IN (100, 1600, 3100, 4600, 6100, 7600, 9100, 10600, " \
    "12100, 13600)"
#define UPDATE_WANT "{\"changes\":10"

static void sql_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        die("sqlite", SL_EIO, msg);
}

/* The database's bytes, made in memory and serialized. */
static unsigned char *make_db(sqlite3_int64 *len)
{
    sqlite3 *db;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        die("sqlite3_open", SL_EIO, NULL);
    char sql[512];
    snprintf(sql, sizeof sql,
             "PRAGMA page_size=4096;"
             "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score INTEGER, v BLOB);"
             "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < %u)"
             " INSERT INTO t SELECT x, 'user' || x, x %% 100, randomblob(900) FROM c;",
             DB_ROWS);
    sql_exec(db, sql);
    unsigned char *p = sqlite3_serialize(db, "main", len, 0);
    if (!p)
        die("sqlite3_serialize", SL_ENOMEM, NULL);
    sqlite3_close(db);
    return p;
}

typedef struct native_sql {
    sqlite3 *db;
    const char *sql;
} native_sql;

static void native_query(void *arg)
{
    native_sql *n = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(n->db, n->sql, -1, &st, NULL) != SQLITE_OK)
        die("prepare", SL_EIO, sqlite3_errmsg(n->db));
    int rc, cols = sqlite3_column_count(st);
    size_t seen = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        for (int c = 0; c < cols; c++) {
            const unsigned char *t = sqlite3_column_text(st, c);
            seen += t ? strlen((const char *)t) : 0;
        }
    if (rc != SQLITE_DONE)
        die("step", SL_EIO, sqlite3_errmsg(n->db));
    sqlite3_finalize(st);
    if (cols && !seen)
        die("native query", SL_EABI, "no rows");
}

static void bench_sqlite(int reps)
{
    sqlite3_int64 len;
    unsigned char *bytes = make_db(&len);
    /* Writable init data (the database's own size: UPDATE needs no room to
     * grow); writes are copy-on-write. */
    sl_config cfg = {.init_data = bytes, .init_data_size = (uint64_t)len,
                     .init_data_perm = SL_PERM_READ | SL_PERM_WRITE};
    sl_sandbox *sb = open_guest("sqlite", &cfg);
    sl_snapshot *snap;
    int rc = sl_sandbox_snapshot(sb, &snap);
    if (rc)
        die("snapshot", rc, sl_sandbox_errmsg(sb));
    calibrate_info(sb);

    /* The native side: an in-memory copy, owned by SQLite. */
    sqlite3 *db;
    unsigned char *copy = sqlite3_malloc64((sqlite3_uint64)len);
    if (!copy || sqlite3_open(":memory:", &db) != SQLITE_OK)
        die("native db", SL_ENOMEM, NULL);
    memcpy(copy, bytes, (size_t)len);
    if (sqlite3_deserialize(db, "main", copy, len, len,
                            SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE) != SQLITE_OK)
        die("sqlite3_deserialize", SL_EIO, sqlite3_errmsg(db));

    static const struct {
        const char *name, *sql, *want;
    } cases[] = {
        {"sqlite_query_restore_point", POINT_SQL, POINT_WANT},
        {"sqlite_query_restore_update", UPDATE_SQL, UPDATE_WANT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        request q = {.sb = sb, .snap = snap, .fn = "Query", .args = {str(cases[i].sql)}, .nargs = 1,
                     .want = cases[i].want};
        double guest = timed(reps, request_once, &q);
        native_sql n = {db, cases[i].sql};
        double native = timed(reps, native_query, &n);
        bench_report(cases[i].name, guest, native, "us");
        events e = request_events(&q, cases[i].name);
        print_events(cases[i].name, &e);
        printf("# %s: Query(\"%s\") + restore, %.0f MiB database as init data; baseline: the statement on an "
               "in-memory copy in this process\n",
               cases[i].name, cases[i].sql, (double)len / (1 << 20));
        printf("# dirty pages per request (%s): %llu\n", cases[i].name, (unsigned long long)e.dirty);
    }
    sqlite3_close(db);
    sl_snapshot_free(snap);
    sl_sandbox_free(sb);
    sqlite3_free(bytes);
}

int main(void)
{
    bench_where(NULL);
    int reps = bench_reps(bench_in_lab() ? 9 : 201);
    bench_lua(reps);
    bench_sqlite(reps);
    return 0;
}
