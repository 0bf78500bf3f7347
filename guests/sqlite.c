/* SQLite (Debian's sqlite3 source, the amalgamation built unmodified,
 * mk/sqlite.mk) in the function model, for x86-64 (sqlite) and i686
 * (sqlite32):
 *   Query(string sql) -> string
 * runs the statements of `sql` in turn on one database connection that
 * lives across calls (so a snapshot keeps it) and returns JSON: the rows of
 * the last statement that returns rows, as [{"column": value, ...}, ...],
 * or, when no statement returns rows, {"changes":N,"last_insert_rowid":R}.
 * An SQLite error fails the call with SQLite's message (sqlite3_errmsg);
 * the sandbox stays usable. docs/sqlite-guest.md has the details.
 *
 * The database is the sandbox's init data (sl_init_data), opened in place
 * with sqlite3_deserialize: never copied, read straight from the region
 * (memory-mapped I/O, PRAGMA mmap_size), and, when the region is writable,
 * written there too: copy-on-write copies of the pages a write touches,
 * which a restore takes back. Without init data the database is an empty
 * in-memory one. Nothing reaches a file system: SQLite is built with
 * SQLITE_OS_OTHER and the only VFS is the one below, which opens no file;
 * journals and temporary tables live in memory. */
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <sandlet_guest.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "json_double.h"
#include "sqlite3.h"

/* ---- the VFS: no files, the guest kernel's clock and random numbers ---- */

static int vfs_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    (void)vfs, (void)name, (void)flags, (void)out_flags;
    f->pMethods = NULL; /* nothing to close */
    return SQLITE_CANTOPEN;
}

static int vfs_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs, (void)name, (void)sync_dir;
    return SQLITE_IOERR_DELETE;
}

static int vfs_access(sqlite3_vfs *vfs, const char *name, int flags, int *res)
{
    (void)vfs, (void)name, (void)flags;
    *res = 0;
    return SQLITE_OK;
}

static int vfs_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    size_t len = strlen(name);
    if (n <= 0 || len >= (size_t)n)
        return SQLITE_CANTOPEN;
    memcpy(out, name, len + 1);
    return SQLITE_OK;
}

/* getrandom is the guest kernel's ChaCha20 stream, reseeded by the host on
 * every restore. */
static int vfs_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    int done = 0;
    while (done < n) {
        ssize_t got = getrandom(out + done, (size_t)(n - done), 0);
        if (got <= 0)
            break;
        done += (int)got;
    }
    if (done < n)
        memset(out + done, 0, (size_t)(n - done));
    return n;
}

static int vfs_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
    return us;
}

/* Milliseconds since the Julian epoch, as SQLite's own VFSes count. */
static int vfs_time64(sqlite3_vfs *vfs, sqlite3_int64 *t)
{
    (void)vfs;
    static const sqlite3_int64 unix_epoch_ms = 24405875 * (sqlite3_int64)8640000;
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return SQLITE_ERROR;
    *t = unix_epoch_ms + (sqlite3_int64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return SQLITE_OK;
}

static int vfs_time(sqlite3_vfs *vfs, double *t)
{
    sqlite3_int64 ms = 0;
    int rc = vfs_time64(vfs, &ms);
    *t = (double)ms / 86400000.0;
    return rc;
}

static int vfs_last_error(sqlite3_vfs *vfs, int n, char *buf)
{
    (void)vfs, (void)n, (void)buf;
    return 0;
}

static sqlite3_vfs vfs = {
    .iVersion = 2,
    .szOsFile = sizeof(sqlite3_file),
    .mxPathname = 512,
    .zName = "sandlet",
    .xOpen = vfs_open,
    .xDelete = vfs_delete,
    .xAccess = vfs_access,
    .xFullPathname = vfs_full_pathname,
    .xRandomness = vfs_randomness,
    .xSleep = vfs_sleep,
    .xCurrentTime = vfs_time,
    .xGetLastError = vfs_last_error,
    .xCurrentTimeInt64 = vfs_time64,
};

/* SQLITE_OS_OTHER: the application supplies these. sqlite3_initialize
 * registers the memdb VFS (sqlite3_deserialize) on top of this default. */
int sqlite3_os_init(void) { return sqlite3_vfs_register(&vfs, 1); }
int sqlite3_os_end(void) { return SQLITE_OK; }

/* ---- JSON text, built in one buffer that lives across calls ---- */

typedef struct jbuf {
    char *p;
    size_t len, cap;
    size_t max;  /* longest content allowed */
    bool over;   /* an append did not fit max */
    bool nomem;  /* realloc failed */
} jbuf;

static bool jb_room(jbuf *b, size_t n)
{
    if (n <= b->cap - b->len)
        return true;
    if (n > b->max - b->len) {
        b->over = true;
        return false;
    }
    size_t want = b->len + n, cap = b->cap ? b->cap : 4096;
    while (cap < want)
        cap = cap > SIZE_MAX / 2 ? want : cap * 2;
    if (cap > b->max)
        cap = b->max;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->nomem = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static bool jb_put(jbuf *b, const void *s, size_t n)
{
    if (!jb_room(b, n))
        return false;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return true;
}

static bool jb_ch(jbuf *b, char c)
{
    if (b->len == b->cap && !jb_room(b, 1))
        return false;
    b->p[b->len++] = c;
    return true;
}

#define JB_LIT(b, s) jb_put((b), (s), sizeof(s) - 1)

static bool jb_i64(jbuf *b, sqlite3_int64 v)
{
    char tmp[24], *e = tmp + sizeof tmp, *p = e;
    /* The magnitude as unsigned: -INT64_MIN does not fit an int64. */
    unsigned long long m = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + m % 10);
    while (m /= 10);
    if (v < 0)
        *--p = '-';
    return jb_put(b, p, (size_t)(e - p));
}

/* JSON has no infinities: SQLite's own JSON functions write 9.0e+999, which
 * parsers read as infinity or the largest double; so do we. SQLite never
 * stores a NaN (it becomes NULL), but one is null here too. */
static bool jb_double(jbuf *b, double d)
{
    if (isnan(d))
        return JB_LIT(b, "null");
    if (isinf(d))
        return d > 0 ? JB_LIT(b, "9.0e+999") : JB_LIT(b, "-9.0e+999");
    char tmp[40];
    return jb_put(b, tmp, json_double(tmp, sizeof tmp, d));
}

/* Length of the well-formed UTF-8 sequence at s (1..4 bytes, no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. s[0] >= 0x80. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        k = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < k || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < k; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return k;
}

/* A JSON string: quotes, backslashes and control characters escaped (NUL
 * too: SQLite text may hold it), each byte that is not part of well-formed
 * UTF-8 replaced by U+FFFD. Runs of plain bytes are copied at once. */
static bool jb_str(jbuf *b, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (!jb_ch(b, '"'))
        return false;
    size_t start = 0, i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = utf8_len(s + i, n - i);
            if (k) {
                i += k;
                continue;
            }
        }
        if (!jb_put(b, s + start, i - start))
            return false;
        char esc[6] = {'\\', 0};
        size_t elen = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            if (c >= 0x80) {
                memcpy(esc, "\\ufffd", 6);
            } else {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
            }
            elen = 6;
            break;
        }
        if (!jb_put(b, esc, elen))
            return false;
        start = ++i;
    }
    return jb_put(b, s + start, n - start) && jb_ch(b, '"');
}

/* A blob as the SQL literal that makes it: "x'00ff'". */
static bool jb_blob(jbuf *b, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (n > (SIZE_MAX - 5) / 2 || !jb_room(b, 2 * n + 5))
        return false;
    char *o = b->p + b->len;
    *o++ = '"';
    *o++ = 'x';
    *o++ = '\'';
    for (size_t i = 0; i < n; i++) {
        *o++ = hex[s[i] >> 4];
        *o++ = hex[s[i] & 15];
    }
    *o++ = '\'';
    *o++ = '"';
    b->len = (size_t)(o - b->p);
    return true;
}

/* ---- the database and Query ---- */

static sqlite3 *db;
static jbuf out; /* the result */
static jbuf keys; /* the current statement's "name": prefixes, escaped once */
static size_t *key_end; /* keys.p[key_end[i - 1] .. key_end[i]) is column i's */
static int key_cap;
static char errbuf[1024]; /* the last error message, returned by sl_fail */

static int fail_msg(sl_gvalue *ret, const char *msg)
{
    snprintf(errbuf, sizeof errbuf, "%s", msg);
    return sl_fail(ret, SL_ABI_EABORT, errbuf);
}

/* SQLite's message for the failure now, before finalize may clear it. */
static int fail_db(sl_gvalue *ret, sqlite3_stmt *st)
{
    snprintf(errbuf, sizeof errbuf, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return sl_fail(ret, SL_ABI_EABORT, errbuf);
}

static int fail_out(sl_gvalue *ret, sqlite3_stmt *st, const jbuf *b)
{
    sqlite3_finalize(st);
    if (b->nomem)
        return fail_msg(ret, "out of guest memory while building the result");
    snprintf(errbuf, sizeof errbuf,
             "result too large: the rows need more than the %zu bytes of JSON the output buffer holds "
             "(select fewer rows or columns, or give the sandbox a larger output buffer: "
             "sl_config.output_size, sandlet --output)",
             out.max);
    return sl_fail(ret, SL_ABI_EABORT, errbuf);
}

static bool column_keys(sqlite3_stmt *st, int ncol)
{
    if (ncol > key_cap) {
        size_t *p = realloc(key_end, (size_t)ncol * sizeof *p);
        if (!p) {
            keys.nomem = true;
            return false;
        }
        key_end = p;
        key_cap = ncol;
    }
    keys.len = 0;
    for (int i = 0; i < ncol; i++) {
        const char *name = sqlite3_column_name(st, i);
        if (!name)
            name = "";
        if (!jb_str(&keys, (const unsigned char *)name, strlen(name)) || !jb_ch(&keys, ':'))
            return false;
        key_end[i] = keys.len;
    }
    return true;
}

static bool put_value(sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        return jb_i64(&out, sqlite3_column_int64(st, i));
    case SQLITE_FLOAT:
        return jb_double(&out, sqlite3_column_double(st, i));
    case SQLITE_TEXT: {
        const unsigned char *s = sqlite3_column_text(st, i);
        size_t n = (size_t)sqlite3_column_bytes(st, i);
        return jb_str(&out, s ? s : (const unsigned char *)"", s ? n : 0);
    }
    case SQLITE_BLOB: {
        const unsigned char *s = sqlite3_column_blob(st, i);
        size_t n = (size_t)sqlite3_column_bytes(st, i);
        return jb_blob(&out, s, s ? n : 0);
    }
    default:
        return JB_LIT(&out, "null");
    }
}

/* Steps st to the end, writing its rows into `out` (replacing what was
 * there). Returns SQLITE_DONE, an SQLite error code, or -1 when the JSON
 * did not fit (out.over / out.nomem / keys.*). */
static int rows_json(sqlite3_stmt *st, int ncol)
{
    out.len = 0;
    if (!column_keys(st, ncol) || !jb_ch(&out, '['))
        return -1;
    int rc;
    bool first = true;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!(first ? jb_ch(&out, '{') : JB_LIT(&out, ",{")))
            return -1;
        first = false;
        size_t k = 0;
        for (int i = 0; i < ncol; i++) {
            if ((i && !jb_ch(&out, ',')) || !jb_put(&out, keys.p + k, key_end[i] - k) || !put_value(st, i))
                return -1;
            k = key_end[i];
        }
        if (!jb_ch(&out, '}'))
            return -1;
    }
    if (rc == SQLITE_DONE && !jb_ch(&out, ']'))
        return -1;
    return rc;
}

static int query(const sl_gvalue *a, sl_gvalue *ret)
{
    const char *sql = a[0].v.s.ptr, *end = sql + a[0].v.s.len;
    /* SQLite stops at a NUL: what follows would be dropped without a word. */
    if (memchr(sql, 0, a[0].v.s.len))
        return fail_msg(ret, "the SQL text contains a NUL byte");
    if (a[0].v.s.len > INT_MAX)
        return fail_msg(ret, "the SQL text is longer than SQLite takes (2 GiB)");
    out.over = out.nomem = keys.over = keys.nomem = false;
    sqlite3_int64 changes = sqlite3_total_changes64(db);
    bool rows = false;
    const char *tail = sql;
    while (tail < end) {
        sqlite3_stmt *st = NULL;
        const char *next = tail;
        if (sqlite3_prepare_v2(db, tail, (int)(end - tail), &st, &next) != SQLITE_OK)
            return fail_db(ret, st);
        if (next <= tail && !st)
            break;
        tail = next;
        if (!st) /* only blanks or a comment */
            continue;
        int ncol = sqlite3_column_count(st), rc;
        if (ncol > 0) {
            rows = true;
            rc = rows_json(st, ncol);
            if (rc == -1)
                return fail_out(ret, st, keys.nomem ? &keys : &out);
        } else {
            while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                ;
        }
        if (rc != SQLITE_DONE)
            return fail_db(ret, st);
        sqlite3_finalize(st);
    }
    if (!rows) {
        out.len = 0;
        if (!JB_LIT(&out, "{\"changes\":") || !jb_i64(&out, sqlite3_total_changes64(db) - changes) ||
            !JB_LIT(&out, ",\"last_insert_rowid\":") || !jb_i64(&out, sqlite3_last_insert_rowid(db)) ||
            !jb_ch(&out, '}'))
            return fail_out(ret, NULL, &out);
    }
    sl_ret_str(ret, out.p, (uint32_t)out.len);
    return SL_ABI_OK;
}

/* ---- init: the database from the init data ---- */

static uint32_t be16(const unsigned char *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

__attribute__((noreturn, format(printf, 1, 2))) static void init_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(errbuf, sizeof errbuf, "sqlite: ");
    vsnprintf(errbuf + n, sizeof errbuf - (size_t)n, fmt, ap);
    va_end(ap);
    sl_abort(1, errbuf);
}

/* Bytes of the database in the region (hostile: every header field is
 * checked against the region's size). 0 for a region that starts with 100
 * zero bytes (no database yet: an empty one that grows into the region). */
static uint64_t database_size(const unsigned char *p, uint64_t region)
{
    static const unsigned char zero[100];
    if (region < sizeof zero)
        init_fail("the init data (%llu bytes) is too small for an SQLite database", (unsigned long long)region);
    if (memcmp(p, zero, sizeof zero) == 0)
        return 0;
    if (memcmp(p, "SQLite format 3", 16) != 0)
        init_fail("the init data is not an SQLite database (it does not start with \"SQLite format 3\")");
    /* File format versions (offsets 18, 19): 2 is WAL, which a database
     * in memory cannot use (and WAL is compiled out): SQLite would refuse
     * the file as "not a database", or take it read-only. */
    if (p[18] == 2 || p[19] == 2)
        init_fail("the database is in WAL mode, which a database in memory cannot use: convert the file first "
                  "with sqlite3 FILE 'PRAGMA journal_mode=DELETE' (which also takes in what its -wal file "
                  "holds)");
    uint32_t page = be16(p + 16);
    if (page == 1)
        page = 65536;
    if (page < 512 || page > 65536 || (page & (page - 1)))
        init_fail("the database header gives an invalid page size (%u)", (unsigned)be16(p + 16));
    /* The header's page count is valid when its version-valid-for number
     * (offset 92) equals the change counter (offset 24), as every SQLite
     * since 3.7.0 writes it; otherwise the database is the whole region, as
     * SQLite reads a file of that size. */
    uint64_t pages = be32(p + 28);
    if (pages == 0 || be32(p + 92) != be32(p + 24))
        pages = region / page;
    uint64_t bytes = pages * page;
    if (bytes == 0 || bytes > region)
        init_fail("the database header says %llu pages of %u bytes (%llu bytes), but the init data holds "
                  "only %llu bytes: a truncated file?",
                  (unsigned long long)pages, (unsigned)page, (unsigned long long)bytes,
                  (unsigned long long)region);
    return bytes;
}

/* Expression nesting allowed (sqlite3_limit): about 590 levels fit in the
 * default 256 KiB call stack (x86-64). */
#define EXPR_DEPTH_MAX 250

/* Runs one statement of ours at init; its failure ends init. */
static void init_exec(const char *sql, const char *what)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        init_fail("%s: %s", what, msg ? msg : sqlite3_errmsg(db));
}

static void open_database(void)
{
    int rc = sqlite3_initialize();
    if (rc != SQLITE_OK)
        init_fail("sqlite3_initialize: %s", sqlite3_errstr(rc));
    if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
        init_fail("cannot open a database: %s", db ? sqlite3_errmsg(db) : "out of memory");
    /* Untrusted SQL must not corrupt the database on purpose
     * (writable_schema, journal_mode=OFF, ...). */
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    /* SQLite's compiler recurses once per level of an expression tree, a
     * few hundred bytes each: its default limit (1000 levels, `SELECT
     * 1+1+...+1`) runs off the end of the default 256 KiB call stack (a
     * fault that poisons the sandbox). This limit keeps that a plain SQL
     * error with room to spare. */
    sqlite3_limit(db, SQLITE_LIMIT_EXPR_DEPTH, EXPR_DEPTH_MAX);

    uint64_t region;
    const unsigned char *data = sl_init_data(&region);
    if (!data)
        return; /* no init data: the empty in-memory database */
    if (region > (uint64_t)INT64_MAX || region > SIZE_MAX)
        init_fail("the init data is too large");
    uint64_t size = database_size(data, region);
    bool writable = (sl_init_data_perm() & SL_PERM_WRITE) != 0;
    /* In place: SQLite reads and writes the region itself (the cast drops
     * const only when the region is writable). Without RESIZEABLE the
     * database grows up to the region's end, then writes fail with
     * SQLITE_FULL. */
    rc = sqlite3_deserialize(db, "main", (unsigned char *)(uintptr_t)data, (sqlite3_int64)size,
                             (sqlite3_int64)region, writable ? 0 : SQLITE_DESERIALIZE_READONLY);
    if (rc != SQLITE_OK)
        init_fail("sqlite3_deserialize: %s", sqlite3_errmsg(db));
    /* Memory-mapped I/O over the region: pages are read where they are
     * instead of being copied into SQLite's page cache. */
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA mmap_size=%llu", (unsigned long long)region);
    init_exec(pragma, "PRAGMA mmap_size");
    /* Reads the schema now: a damaged database fails init, and the parsed
     * schema is part of the snapshot instead of being parsed per request. */
    init_exec("SELECT count(*) FROM sqlite_schema", "the init data is not a usable database");
}

void sandlet_main(void)
{
    static const uint8_t s1[] = {SL_T_STRING};
    open_database();
    out.max = sl_result_max_len();
    keys.max = SIZE_MAX;
    /* Allocated now, so that requests write into buffers of the snapshot. */
    if (!jb_room(&out, out.max < 16384 ? out.max : 16384) || !jb_room(&keys, 1024))
        sl_abort(SL_ABI_ENOMEM, "sqlite: out of memory");
    /* Each request restored from the snapshot seeds SQLite's PRNG afresh
     * from getrandom (random(), randomblob()) instead of repeating the
     * snapshot's sequence. */
    sqlite3_randomness(0, NULL);
    if (sl_register("Query", SL_T_STRING, 1, s1, query))
        sl_abort(1, "sqlite: registration failed");
}
