/* SQLite in the function model (guests/sqlite.c), on both architectures:
 * a database made here with Debian's libsqlite3 becomes the sandbox's init
 * data, the sandbox is snapshotted after init, and requests that read,
 * insert, update and delete run with a restore after each: every request
 * sees the original database, writes dirty a handful of pages (the region
 * is never copied whole), errors are failed calls with SQLite's message,
 * the JSON is exact, a read-only region refuses writes, and hostile init
 * data (truncated, lying header, garbage) fails init cleanly. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sandlet.h"
#include "t.h"
#include "../common/e2e.h"
#include "../common/files.h"
#include "../common/sqlite_db.h"

#define ROWS 8000 /* rows of ~1 KB: a database of about 2050 pages */
/* What one single-row write may cost, in pages; the database is 20 times
 * larger. Dirty pages count page-table pages too, and in the KVM lab every
 * table page a page walk touched (docs/guest-runtime.md): a looser bound. */
#define COW_MAX 48
#define DIRTY_MAX 96

/* items(id, name, qty, price, data): id 1..ROWS, name "item-<id>",
 * qty id % 97, price id / 4.0, data 900 random bytes. */
static int make_db(const char *path)
{
    remove(path);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "PRAGMA page_size=4096; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
             "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER, price REAL, "
             "data BLOB);"
             "CREATE INDEX items_name ON items(name);"
             "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d)"
             " INSERT INTO items SELECT x, 'item-' || x, x %% 97, x / 4.0, randomblob(900) FROM c;",
             ROWS);
    return db_exec(path, sql);
}

static int query(sl_sandbox *sb, const char *sql, char *out, size_t cap)
{
    return call_text(sb, "Query", sql, out, cap);
}

static int expect(sl_sandbox *sb, const char *sql, const char *want)
{
    return expect_text(sb, "Query", sql, want);
}

static int expect_error(sl_sandbox *sb, const char *sql, const char *needle)
{
    char got[4096];
    int rc = query(sb, sql, got, sizeof got);
    if (rc != SL_EABORT || !has(got, needle)) {
        printf("  Query(%.200s) = %.300s (rc %d), want an error with \"%s\"\n", sql, got, rc, needle);
        t_failed_now = 1;
        return -1;
    }
    return 0;
}

/* A temporary directory with the test database; its bytes in *db. */
static uint8_t *setup(size_t *len)
{
    if (!mkdtemp(strcpy(g_dir, "/tmp/sandlet-sqlite-XXXXXX")))
        return NULL;
    const char *path = tpath("items.db");
    uint8_t *b = make_db(path) == 0 ? read_file(path, len) : NULL;
    remove(path);
    return b;
}

static void teardown(void) { rmdir(g_dir); }

static sl_sandbox *sandbox(const char *guest, const void *init, size_t len, unsigned perm, int *rc_out,
                           char *err, size_t errlen)
{
    sl_config cfg = {.init_data = init, .init_data_size = len, .init_data_perm = perm};
    sl_sandbox *sb = NULL;
    int rc = sl_sandbox_new_from_file(&sb, guest_path(guest), len ? &cfg : NULL, err, errlen);
    if (rc == 0 && (rc = sl_sandbox_init(sb)) != 0)
        snprintf(err, errlen, "%s", sl_sandbox_errmsg(sb));
    if (rc) {
        sl_sandbox_free(sb);
        sb = NULL;
    }
    *rc_out = rc;
    return sb;
}

/* `requests` requests on the snapshot taken after init, a restore after
 * each, cycling through a read by index, an insert, a one-row update and a
 * ten-row delete, with the database's totals (a full scan) checked every
 * hundred requests. */
static void requests(const char *guest, int requests)
{
    size_t len;
    uint8_t *bytes = setup(&len);
    REQUIRE(bytes != NULL);
    int rc;
    char err[512], want[512], sql[512];
    sl_sandbox *sb = sandbox(guest, bytes, len, SL_PERM_READ | SL_PERM_WRITE, &rc, err, sizeof err);
    if (!sb)
        printf("  %s: %s\n", guest, err);
    free(bytes);
    teardown();
    REQUIRE(sb != NULL);
    sl_snapshot *snap;
    REQUIRE(sl_sandbox_snapshot(sb, &snap) == 0);
    long long qty_sum = 0;
    for (int id = 1; id <= ROWS; id++)
        qty_sum += id % 97;
    char totals[128];
    snprintf(totals, sizeof totals, "[{\"n\":%d,\"q\":%lld,\"p\":%.1f}]", ROWS, qty_sum,
             (double)ROWS * (ROWS + 1) / 8.0);
    const char *totals_sql = "SELECT count(*) AS n, sum(qty) AS q, sum(price) AS p FROM items";
    CHECK(expect(sb, totals_sql, totals) == 0);

    uint64_t max_dirty = 0, max_cow = 0, db_pages = len / 4096;
    int failures = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < requests && failures < 5; i++) {
        int id = 1 + (i * 7919) % ROWS, f = t_failed_now;
        t_failed_now = 0;
        bool single_write = false;
        switch (i % 4) {
        case 0: /* sees the original row, whatever the requests before it wrote */
            snprintf(sql, sizeof sql, "SELECT id, name, qty, price FROM items WHERE name = 'item-%d'", id);
            /* Prices are x.0, x.25, x.5, x.75: %g is exact, and a whole
             * number keeps its ".0" (it is a REAL). */
            snprintf(want, sizeof want, "[{\"id\":%d,\"name\":\"item-%d\",\"qty\":%d,\"price\":%g%s}]", id,
                     id, id % 97, id / 4.0, id % 4 == 0 ? ".0" : "");
            expect(sb, sql, want);
            break;
        case 1: /* every insert gets the same fresh id: the previous one is gone */
            snprintf(sql, sizeof sql,
                     "INSERT INTO items(name, qty, price, data) VALUES ('new-%d', 1, 0.5, x'00ff');"
                     " SELECT count(*) AS n, max(id) AS m FROM items",
                     i);
            snprintf(want, sizeof want, "[{\"n\":%d,\"m\":%d}]", ROWS + 1, ROWS + 1);
            expect(sb, sql, want);
            single_write = true;
            break;
        case 2:
            snprintf(sql, sizeof sql, "UPDATE items SET qty = -1, name = 'changed' WHERE id = %d", id);
            expect(sb, sql, "{\"changes\":1,\"last_insert_rowid\":0}");
            single_write = true;
            break;
        default: /* ten rows */
            snprintf(sql, sizeof sql,
                     "DELETE FROM items WHERE id BETWEEN %d AND %d; SELECT count(*) AS n FROM items", id,
                     id + 9);
            snprintf(want, sizeof want, "[{\"n\":%d}]", id + 9 <= ROWS ? ROWS - 10 : ROWS - (ROWS - id + 1));
            expect(sb, sql, want);
            break;
        }
        if (single_write) {
            sl_sandbox_info info;
            CHECK(sl_sandbox_info_get(sb, &info) == 0);
            if (info.dirty_pages > max_dirty)
                max_dirty = info.dirty_pages;
            if (info.cow_copies > max_cow)
                max_cow = info.cow_copies;
        }
        if (sl_sandbox_restore(sb, snap) != 0) {
            printf("  restore after request %d: %s\n", i, sl_sandbox_errmsg(sb));
            t_failed_now = 1;
        }
        if (i % 100 == 99)
            expect(sb, totals_sql, totals);
        failures += t_failed_now;
        t_failed_now |= f;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3 / requests;
    printf("  %s: %d requests, %.0f us each with its restore; single-row writes dirtied at most %" PRIu64
           " pages (%" PRIu64 " copy-on-write copies) of a %" PRIu64 "-page database\n",
           guest, requests, us, max_dirty, max_cow, db_pages);
    CHECK(max_cow > 0);
    CHECK(max_cow <= COW_MAX);
    CHECK(max_dirty <= DIRTY_MAX);
    CHECK(db_pages > 20 * COW_MAX && db_pages > 20 * DIRTY_MAX);
    /* The snapshot itself was never written. */
    CHECK(expect(sb, totals_sql, totals) == 0);
    CHECK(expect(sb, "SELECT count(*) AS n FROM items WHERE qty = -1 OR name LIKE 'new-%'", "[{\"n\":0}]") == 0);
    sl_snapshot_free(snap);
    sl_sandbox_free(sb);
}

static void test_sqlite_requests(void) { requests("sqlite", 1000); }
static void test_sqlite32_requests(void) { requests("sqlite32", 1000); }

/* SQL errors, exact JSON for every type, statement sequences, the output
 * buffer's limit: all on one sandbox, without restores (a failed query does
 * not poison it). */
static void json_and_errors(const char *guest)
{
    int rc;
    char err[512], got[4096];
    sl_sandbox *sb = sandbox(guest, NULL, 0, 0, &rc, err, sizeof err);
    if (!sb)
        printf("  %s: %s\n", guest, err);
    REQUIRE(sb != NULL);
    /* No init data: an empty in-memory database. */
    expect(sb, "SELECT count(*) AS n FROM sqlite_schema", "[{\"n\":0}]");
    expect(sb, "", "{\"changes\":0,\"last_insert_rowid\":0}");
    expect(sb, "  -- only a comment\n", "{\"changes\":0,\"last_insert_rowid\":0}");
    expect(sb, "CREATE TABLE x(a); INSERT INTO x VALUES (1), (2); SELECT a FROM x ORDER BY a; UPDATE x SET a = a + 10",
           "[{\"a\":1},{\"a\":2}]");
    expect(sb, "INSERT INTO x VALUES (3); INSERT INTO x VALUES (4)", "{\"changes\":2,\"last_insert_rowid\":4}");
    expect(sb, "SELECT a FROM x WHERE a > 100", "[]");
    expect(sb, "SELECT sum(a) AS s FROM x; SELECT count(*) AS n FROM x", "[{\"n\":4}]");

    /* Every type, escaping, invalid UTF-8, extreme numbers. */
    expect(sb,
           "SELECT char(34, 92, 10, 13, 9, 8, 12, 1, 31, 127) AS s, 'é€😀' AS u,"
           " CAST(x'61ff62c0af63eda080' AS TEXT) AS bad, CAST(x'610062' AS TEXT) AS nul, x'00ff10' AS b,"
           " x'' AS e, NULL AS n, 9223372036854775807 AS big, -9223372036854775807 - 1 AS small,"
           " 0.1 AS f, 2.0 AS two, -0.0 AS mz, 1e-5 AS tiny, 1e308 * 10 AS inf, -1e308 * 10 AS ninf,"
           " 1.0 / 3 AS third, 1 AS \"a\"\"b\"",
           "[{\"s\":\"\\\"\\\\\\n\\r\\t\\b\\f\\u0001\\u001f\x7f\",\"u\":\"é€😀\","
           "\"bad\":\"a\\ufffdb\\ufffd\\ufffdc\\ufffd\\ufffd\\ufffd\",\"nul\":\"a\\u0000b\","
           "\"b\":\"x'00ff10'\",\"e\":\"x''\",\"n\":null,\"big\":9223372036854775807,"
           "\"small\":-9223372036854775808,\"f\":0.1,\"two\":2.0,\"mz\":-0.0,\"tiny\":1e-05,"
           "\"inf\":9.0e+999,\"ninf\":-9.0e+999,\"third\":0.3333333333333333,\"a\\\"b\":1}]");

    /* Errors: SQLite's message, and the sandbox goes on. */
    expect_error(sb, "SELECT * FROM nope", "no such table: nope");
    expect_error(sb, "SELEC 1", "syntax error");
    expect_error(sb, "CREATE TABLE u(k PRIMARY KEY); INSERT INTO u VALUES (1); INSERT INTO u VALUES (1)",
                 "UNIQUE constraint failed: u.k");
    expect(sb, "SELECT count(*) AS n FROM u", "[{\"n\":1}]"); /* statements before the error stay */
    expect_error(sb, "ATTACH 'other.db' AS o", "unable to open database");
    /* A journal that is not in memory would be a file: SQLite keeps the
     * in-memory database's journal in memory. */
    expect(sb, "PRAGMA journal_mode=DELETE; INSERT INTO x VALUES (5)", "[{\"journal_mode\":\"memory\"}]");
    CHECK_EQ(sl_sandbox_status(sb), SL_STATUS_READY);
    /* The argument's length counts, not a terminator. */
    sl_value a = {.type = SL_TYPE_STRING, .v.buf = {"SELECT 1 AS one; SELECT 2 AS two", 16}}, r;
    CHECK_EQ(sl_sandbox_call(sb, "Query", &a, 1, &r), 0);
    CHECK(r.v.buf.len == 11 && memcmp(r.v.buf.ptr, "[{\"one\":1}]", 11) == 0);
    char nul_sql[] = "SELECT 1;\0 DROP TABLE x";
    a.v.buf.ptr = nul_sql;
    a.v.buf.len = sizeof nul_sql - 1;
    CHECK_EQ(sl_sandbox_call(sb, "Query", &a, 1, &r), SL_EABORT);
    CHECK(has(sl_sandbox_errmsg(sb), "NUL byte"));
    expect(sb, "SELECT count(*) AS n FROM x", "[{\"n\":5}]");

    /* The output buffer (64 KiB by default): the largest result fits to
     * within a few bytes of it, a larger one is a clear error. JSON of n
     * characters: [{"s":"..."}] is n + 10 bytes. */
    int lo = 0, hi = 70000;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT replace(hex(zeroblob(%d)), '00', 'a') AS s", mid);
        if (query(sb, sql, got, sizeof got) == 0)
            lo = mid;
        else {
            if (!has(got, "result too large"))
                printf("  n=%d: %s\n", mid, got), t_failed_now = 1;
            hi = mid - 1;
        }
    }
    printf("  %s: the largest result is %d bytes of JSON in a %d-byte output buffer\n", guest, lo + 10,
           SL_DEFAULT_IO_SIZE);
    CHECK(lo + 10 <= (int)SL_DEFAULT_IO_SIZE - 40);
    CHECK(lo + 10 >= (int)SL_DEFAULT_IO_SIZE - 128);
    expect_error(sb, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100000)"
                     " SELECT i FROM c", "result too large");
    expect(sb, "SELECT 42 AS answer", "[{\"answer\":42}]");
    CHECK_EQ(sl_sandbox_status(sb), SL_STATUS_READY);

    /* Deep expressions: SQLite's compiler recurses per level; past the
     * guest's limit a plain SQL error, not the end of the call stack (a
     * fault that poisons the sandbox, as SQLite's own limit of 1000 was). */
    char deep[4096] = "SELECT 1";
    for (int i = 0; i < 600; i++)
        strcat(deep, "+1");
    expect_error(sb, deep, "Expression tree is too large");
    CHECK_EQ(sl_sandbox_status(sb), SL_STATUS_READY);
    strcpy(deep + strlen("SELECT 1") + 2 * 200, " AS n");
    expect(sb, deep, "[{\"n\":201}]");
    sl_sandbox_free(sb);
}

static void test_sqlite_json_errors(void) { json_and_errors("sqlite"); }
static void test_sqlite32_json_errors(void) { json_and_errors("sqlite32"); }

/* A read-only region: reads work, writes fail with SQLite's message. A
 * writable one with room to spare grows into it, and a full one says so. */
static void perms_and_room(const char *guest)
{
    size_t len;
    uint8_t *bytes = setup(&len);
    REQUIRE(bytes != NULL);
    teardown();
    int rc;
    char err[512];
    sl_sandbox *sb = sandbox(guest, bytes, len, SL_PERM_READ, &rc, err, sizeof err);
    if (!sb)
        printf("  %s: %s\n", guest, err);
    if (sb) {
        expect(sb, "SELECT count(*) AS n FROM items", "[{\"n\":8000}]");
        expect_error(sb, "UPDATE items SET qty = 0 WHERE id = 1", "attempt to write a readonly database");
        expect_error(sb, "CREATE TABLE t(a)", "attempt to write a readonly database");
        expect(sb, "SELECT qty FROM items WHERE id = 1", "[{\"qty\":1}]");
        sl_sandbox_free(sb);
    }
    CHECK(sb != NULL);

    /* Exactly the database: no room for 200 KB more. */
    sb = sandbox(guest, bytes, len, SL_PERM_READ | SL_PERM_WRITE, &rc, err, sizeof err);
    CHECK(sb != NULL);
    if (sb) {
        expect_error(sb, "INSERT INTO items(name, data) VALUES ('big', randomblob(200000))",
                     "database or disk is full");
        expect(sb, "SELECT count(*) AS n FROM items", "[{\"n\":8000}]");
        sl_sandbox_free(sb);
    }
    /* 1 MiB of zeros after it: room to grow. */
    uint8_t *roomy = calloc(1, len + (1 << 20));
    REQUIRE(roomy != NULL);
    memcpy(roomy, bytes, len);
    sb = sandbox(guest, roomy, len + (1 << 20), SL_PERM_READ | SL_PERM_WRITE, &rc, err, sizeof err);
    CHECK(sb != NULL);
    if (sb) {
        expect(sb, "INSERT INTO items(name, data) VALUES ('big', randomblob(200000));"
                   " SELECT count(*) AS n, max(length(data)) AS l FROM items",
               "[{\"n\":8001,\"l\":200000}]");
        sl_sandbox_free(sb);
    }
    /* A region of zeros is a new empty database that grows into it. */
    memset(roomy, 0, 1 << 16);
    sb = sandbox(guest, roomy, 1 << 16, SL_PERM_READ | SL_PERM_WRITE, &rc, err, sizeof err);
    if (!sb)
        printf("  zeros: %s\n", err);
    CHECK(sb != NULL);
    if (sb) {
        expect(sb, "CREATE TABLE t(a); INSERT INTO t VALUES ('fresh'); SELECT a FROM t", "[{\"a\":\"fresh\"}]");
        sl_sandbox_free(sb);
    }
    free(roomy);
    free(bytes);
}

static void test_sqlite_perms(void) { perms_and_room("sqlite"); }
static void test_sqlite32_perms(void) { perms_and_room("sqlite32"); }

/* Hostile init data: a clear failed init (or, for damage deeper than the
 * schema, failed queries), never a crash. */
static void hostile(const char *guest)
{
    size_t len;
    uint8_t *bytes = setup(&len);
    REQUIRE(bytes != NULL);
    teardown();
    uint8_t *b = malloc(len);
    REQUIRE(b != NULL);
    int rc;
    char err[512];
    static const struct {
        const char *what, *needle;
    } cases[] = {
        {"truncated", "truncated"},
        {"more pages", "truncated"},
        {"garbage", "not an SQLite database"},
        {"page size", "invalid page size"},
        {"garbage after the header", "not a usable database"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(b, bytes, len);
        size_t n = len;
        switch (k) {
        case 0: n = len / 2; break;
        case 1: b[28] = 0x7f; break; /* page count 0x7f...: far more than the region */
        case 2:
            for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t)(i * 2654435761u >> 13);
            break;
        case 3: b[16] = 0x03, b[17] = 0x00; break; /* 768 */
        default: memset(b + 100, 0xA5, 4096 - 100); break;
        }
        sl_sandbox *sb = sandbox(guest, b, n, SL_PERM_READ | SL_PERM_WRITE, &rc, err, sizeof err);
        if (sb || rc != SL_EABORT || !has(err, cases[k].needle)) {
            printf("  %s: rc %d, %s (want SL_EABORT and \"%s\")\n", cases[k].what, rc, sb ? "created" : err,
                   cases[k].needle);
            t_failed_now = 1;
        }
        sl_sandbox_free(sb);
    }
    /* A database in WAL mode (header bytes 18 and 19 are 2): a clear
     * message that says how to convert it, not "file is not a database". */
    sqlite3 *wdb;
    REQUIRE(mkdtemp(strcpy(g_dir, "/tmp/sandlet-sqlite-XXXXXX")) != NULL);
    const char *wal = tpath("wal.db");
    CHECK(sqlite3_open(wal, &wdb) == SQLITE_OK &&
          sqlite3_exec(wdb, "PRAGMA journal_mode=WAL; CREATE TABLE a(x); INSERT INTO a VALUES (1)", NULL, NULL,
                       NULL) == SQLITE_OK);
    sqlite3_close(wdb);
    size_t wlen;
    uint8_t *wbytes = read_file(wal, &wlen);
    remove(wal);
    teardown();
    REQUIRE(wbytes != NULL);
    CHECK(wlen >= 100 && wbytes[18] == 2 && wbytes[19] == 2);
    for (int w = 0; w < 2; w++) {
        sl_sandbox *sb = sandbox(guest, wbytes, wlen, SL_PERM_READ | (w ? SL_PERM_WRITE : 0), &rc, err, sizeof err);
        if (sb || rc != SL_EABORT || !has(err, "WAL mode") || !has(err, "journal_mode=DELETE")) {
            printf("  WAL database (%s): rc %d, %s\n", w ? "rw" : "r", rc, sb ? "created" : err);
            t_failed_now = 1;
        }
        sl_sandbox_free(sb);
    }
    free(wbytes);

    /* A damaged table page: init reads only the schema; the query that
     * reaches the page fails, the next one works. */
    memcpy(b, bytes, len);
    memset(b + 40 * 4096, 0x5A, 4096);
    sl_sandbox *sb = sandbox(guest, b, len, SL_PERM_READ, &rc, err, sizeof err);
    CHECK(sb != NULL);
    if (sb) {
        expect_error(sb, "SELECT sum(length(data)) FROM items", "malformed");
        expect(sb, "SELECT 1 AS one", "[{\"one\":1}]");
        sl_sandbox_free(sb);
    }
    free(b);
    free(bytes);
}

/* What identifies the database's content: computed natively (Debian's
 * libsqlite3) on the original bytes and in the guest after each restore. */
static const char FINGERPRINT[] =
    "SELECT printf('%d|%d|%.2f|%d|%d|%s|%s|%d|%d|%d|%d', count(*), sum(qty), sum(price), sum(length(data)),"
    " sum(id * instr(data, x'41')), substr(hex(min(data)), 1, 64), substr(hex(max(data)), 1, 64),"
    " (SELECT sum(length(sql)) FROM sqlite_schema), (SELECT page_count FROM pragma_page_count()),"
    " (SELECT user_version FROM pragma_user_version()), (SELECT freelist_count FROM pragma_freelist_count()))"
    " AS f FROM items";

static int native_fingerprint(const uint8_t *bytes, size_t len, char *out, size_t cap)
{
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    unsigned char *copy = sqlite3_malloc64(len);
    int rc = -1;
    if (!copy || sqlite3_open(":memory:", &db) != SQLITE_OK) {
        sqlite3_free(copy);
        return -1;
    }
    memcpy(copy, bytes, len);
    if (sqlite3_deserialize(db, "main", copy, (sqlite3_int64)len, (sqlite3_int64)len,
                            SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_READONLY) == SQLITE_OK &&
        sqlite3_prepare_v2(db, FINGERPRINT, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        snprintf(out, cap, "[{\"f\":\"%s\"}]", (const char *)sqlite3_column_text(st, 0));
        rc = 0;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

/* A restore after a write gives back exactly the database of the snapshot:
 * its content, schema, header fields and integrity, whatever the request
 * did to it (every row, the schema, VACUUM, growth into the room after it,
 * a transaction left open, an error or a timeout halfway through). */
static void restore_exact(const char *guest)
{
    size_t len;
    uint8_t *bytes = setup(&len);
    REQUIRE(bytes != NULL);
    teardown();
    char want[512], err[512], got[4096];
    REQUIRE(native_fingerprint(bytes, len, want, sizeof want) == 0);
    uint8_t *roomy = calloc(1, len + (4 << 20));
    REQUIRE(roomy != NULL);
    memcpy(roomy, bytes, len);
    /* Rewriting the whole database takes a copy of every page plus
     * SQLite's journal of them: scratch to match. */
    sl_config cfg = {.init_data = roomy, .init_data_size = len + (4 << 20),
                     .init_data_perm = SL_PERM_READ | SL_PERM_WRITE, .scratch_size = 96u << 20};
    sl_sandbox *sb = NULL;
    int rc = sl_sandbox_new_from_file(&sb, guest_path(guest), &cfg, err, sizeof err);
    if (rc == 0 && (rc = sl_sandbox_init(sb)) != 0)
        snprintf(err, sizeof err, "%s", sl_sandbox_errmsg(sb));
    if (rc)
        printf("  %s: %s\n", guest, err);
    REQUIRE(rc == 0);
    sl_snapshot *snap;
    REQUIRE(sl_sandbox_snapshot(sb, &snap) == 0);
    CHECK(expect(sb, FINGERPRINT, want) == 0);
    static const struct {
        const char *sql;
        int rc; /* of the request itself */
    } writes[] = {
        {"DELETE FROM items", 0},
        {"UPDATE items SET data = zeroblob(900), name = upper(name), price = -price", 0},
        {"DROP TABLE items", 0},
        {"DROP INDEX items_name; CREATE INDEX i2 ON items(qty, price)", 0},
        {"VACUUM", 0},
        {"PRAGMA user_version = 77; PRAGMA application_id = 5; PRAGMA auto_vacuum = FULL; VACUUM", 0},
        {"INSERT INTO items(name, data) SELECT name, data FROM items WHERE id <= 2000", 0},
        {"BEGIN; DELETE FROM items WHERE id % 2 = 0", 0},
        {"CREATE TABLE big AS SELECT * FROM items WHERE id < 300; ALTER TABLE items RENAME TO old", 0},
        {"UPDATE items SET qty = 0 WHERE id = 1; SELECT * FROM nope", SL_EABORT},
        {"UPDATE items SET qty = qty + 1; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
         " SELECT count(*) FROM c",
         SL_ETIMEOUT},
    };
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        sl_sandbox_set_timeout(sb, writes[i].rc == SL_ETIMEOUT ? 500 : 0);
        rc = query(sb, writes[i].sql, got, sizeof got);
        sl_sandbox_set_timeout(sb, 0);
        if (rc != writes[i].rc) {
            printf("  '%s': rc %d (want %d): %.300s\n", writes[i].sql, rc, writes[i].rc, got);
            t_failed_now = 1;
        }
        REQUIRE(sl_sandbox_restore(sb, snap) == 0);
        if (expect(sb, FINGERPRINT, want) != 0 || expect(sb, "PRAGMA integrity_check", "[{\"integrity_check\":\"ok\"}]"))
            printf("  after '%s'\n", writes[i].sql);
    }
    sl_snapshot_free(snap);
    sl_sandbox_free(sb);

    /* With the default 16 MiB of scratch the same rewrite runs out of it
     * (the page copies, or SQLite's heap): a failed call, and the restore
     * after it gives the database back all the same. */
    sb = sandbox(guest, roomy, len + (4 << 20), SL_PERM_READ | SL_PERM_WRITE, &rc, err, sizeof err);
    if (!sb)
        printf("  %s: %s\n", guest, err);
    REQUIRE(sb != NULL);
    REQUIRE(sl_sandbox_snapshot(sb, &snap) == 0);
    rc = query(sb, "UPDATE items SET data = zeroblob(900), name = upper(name), price = -price", got, sizeof got);
    if (rc != SL_ENOSCRATCH && !(rc == SL_EABORT && has(got, "out of memory"))) {
        printf("  a rewrite in 16 MiB of scratch: rc %d, %.300s\n", rc, got);
        t_failed_now = 1;
    }
    REQUIRE(sl_sandbox_restore(sb, snap) == 0);
    CHECK(expect(sb, FINGERPRINT, want) == 0);
    CHECK(expect(sb, "PRAGMA integrity_check", "[{\"integrity_check\":\"ok\"}]") == 0);
    sl_snapshot_free(snap);
    sl_sandbox_free(sb);
    free(roomy);
    free(bytes);
}

static void test_sqlite_restore_exact(void) { restore_exact("sqlite"); }
static void test_sqlite32_restore_exact(void) { restore_exact("sqlite32"); }
static void test_sqlite_hostile(void) { hostile("sqlite"); }
static void test_sqlite32_hostile(void) { hostile("sqlite32"); }

int main(void)
{
    RUN_ARCH(T_AMD64, test_sqlite_requests);
    RUN_ARCH(T_AMD64, test_sqlite_json_errors);
    RUN_ARCH(T_AMD64, test_sqlite_perms);
    RUN_ARCH(T_AMD64, test_sqlite_hostile);
    RUN_ARCH(T_AMD64, test_sqlite_restore_exact);
    RUN_ARCH(T_I686, test_sqlite32_requests);
    RUN_ARCH(T_I686, test_sqlite32_json_errors);
    RUN_ARCH(T_I686, test_sqlite32_perms);
    RUN_ARCH(T_I686, test_sqlite32_hostile);
    RUN_ARCH(T_I686, test_sqlite32_restore_exact);
    T_EXIT();
}
