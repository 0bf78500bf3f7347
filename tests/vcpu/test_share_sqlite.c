/* Many sandboxes on one snapshot file share its pages (issue 8, "Sharing").
 *
 * A 64 MiB SQLite database (made here with Debian's libsqlite3) becomes the
 * init data of the SQLite guest (guests/sqlite.c); the sandbox is snapshotted
 * after init and saved to a file. Then 32 sandboxes start from that file,
 * once in one process and once spread over 4 processes (8 each), and each
 * answers a full scan (every page of the database is read, so all of it is
 * resident) and an UPDATE of one row (a few pages written). While all of them
 * are alive, the parent adds up the proportional set size (Pss, from
 * /proc/PID/smaps_rollup) that the children gained since they started: pages
 * of the file count once however many sandboxes and processes map them.
 *
 * The bound is the issue's: the database once plus what each sandbox
 * wrote, 32 times. Spelled out: the whole snapshot file once (the database
 * plus the program and its page tables, ~1.5 MiB more), plus each sandbox's
 * private memory (sl_sandbox_info.resident_pages: the scratch pages written
 * by the guest or by sandlet since the sandbox was made, i.e. its dirty
 * pages counted from its start rather than from its last restore), plus
 * small allowances for the host's own structures per sandbox and for each
 * process's own pages. If the file's
 * pages were copied per sandbox or per process, the total would be at least
 * 4 times the file and the test fails. In the KVM lab the database is 8 MiB
 * (see DB_BYTES). */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandlet.h"
#include "t.h"
#include "../common/e2e.h"
#include "../common/files.h"
#include "../common/sqlite_db.h"

/* 64 MiB; 8 MiB inside the KVM lab, whose emulated CPU would take minutes
 * for 32 full scans of 64 MiB (the sharing it shows is the same). */
static unsigned DB_BYTES = 64u << 20;
#define ROW_BYTES 1000
#define SANDBOXES 32
#define PAGE 4096u
/* The host's own memory per sandbox, outside scratch: the vCPU's kvm_run
 * page, the sandbox's structures, its dirty bitmap and CPU-state buffers
 * (measured here: about 35 KiB). */
#if defined(__SANITIZE_ADDRESS__)
/* ASan's allocator adds redzones and keeps freed blocks in quarantine. */
#define HOST_ALLOWANCE (512u << 10)
#else
#define HOST_ALLOWANCE (96u << 10)
#endif
/* Each process's own pages: its heap, its stack, the program's and the C
 * library's data it writes once forked (measured here: about 250 KiB). */
#define PROC_ALLOWANCE (1u << 20)

/* A database of about DB_BYTES: rows of ROW_BYTES random bytes, 4 KiB pages. */
static int make_db(const char *path)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "PRAGMA page_size=4096; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
             "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);"
             "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < %u)"
             " INSERT INTO t SELECT x, randomblob(%u) FROM c;",
             DB_BYTES / (ROW_BYTES + 40), ROW_BYTES);
    return db_exec(path, sql);
}

/* Pss of a process in bytes (smaps_rollup), or 0 when unreadable. */
static uint64_t pss_of(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    FILE *f = fopen(path, "r");
    uint64_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Pss: %" SCNu64 " kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

static int query(sl_sandbox *sb, const char *sql, char *out, size_t cap)
{
    return call_text(sb, "Query", sql, out, cap);
}

/* What a child reports to the parent once its sandboxes have answered. */
typedef struct report {
    int ok;
    uint64_t private_pages; /* scratch pages holding memory (resident_pages), summed */
    uint64_t dirty_pages;   /* scratch pages written since the last restore, summed */
    char err[1024];
} report;

/* Blocks until the other end of the pipe is closed. */
static void wait_close(int fd)
{
    char c;
    while (read(fd, &c, 1) < 0 && errno == EINTR)
        ;
}

/* A child: waits for `go` to close, makes `n` sandboxes from the file, each
 * answers two requests; reports, and stays alive until `hold` closes. */
static void child(const char *snap_path, int n, int go, int wfd, int hold, const char *want_count)
{
    report r = {.ok = 0};
    wait_close(go);
    char err[256];
    sl_snapshot *snap;
    sl_sandbox **sb = calloc((size_t)n, sizeof *sb);
    if (sl_snapshot_load(&snap, snap_path, err, sizeof err)) {
        snprintf(r.err, sizeof r.err, "load: %.256s", err);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        char got[512], sql[128];
        if (sl_sandbox_new_from_snapshot(&sb[i], snap, err, sizeof err)) {
            snprintf(r.err, sizeof r.err, "sandbox %d: %.256s", i, err);
            goto out;
        }
        if (query(sb[i], "SELECT count(*) AS n, sum(length(v)) AS bytes FROM t", got, sizeof got) ||
            strcmp(got, want_count) != 0) {
            snprintf(r.err, sizeof r.err, "scan in sandbox %d: %.300s (want %.300s)", i, got, want_count);
            goto out;
        }
        snprintf(sql, sizeof sql, "UPDATE t SET v = zeroblob(%d) WHERE id = %d", ROW_BYTES, 100 + i * 997);
        if (query(sb[i], sql, got, sizeof got)) {
            snprintf(r.err, sizeof r.err, "update in sandbox %d: %.300s", i, got);
            goto out;
        }
        sl_sandbox_info info;
        sl_sandbox_info_get(sb[i], &info);
        r.private_pages += info.resident_pages;
        r.dirty_pages += info.dirty_pages;
    }
    r.ok = 1;
out:
    if (write(wfd, &r, sizeof r) != (ssize_t)sizeof r)
        _exit(3);
    wait_close(hold);
    _exit(r.ok ? 0 : 1);
}

/* Runs `procs` children with SANDBOXES / procs sandboxes each and checks the
 * bound while they are all alive. */
static void measure(const char *snap_path, uint64_t file_bytes, int procs, const char *want_count)
{
    int rep[2], hold[2], go[2];
    REQUIRE(pipe(rep) == 0 && pipe(hold) == 0 && pipe(go) == 0);
    pid_t pid[8];
    for (int p = 0; p < procs; p++) {
        pid[p] = fork();
        REQUIRE(pid[p] >= 0);
        if (pid[p] == 0) {
            close(rep[0]);
            close(hold[1]);
            close(go[1]);
            child(snap_path, SANDBOXES / procs, go[0], rep[1], hold[0], want_count);
        }
    }
    close(rep[1]);
    close(hold[0]);
    close(go[0]);
    /* The baseline, with every child alive and none started: the pages they
     * share with this process (and, under ASan, its shadow memory) are
     * split the same way now as at the end. */
    uint64_t pss = 0;
    for (int p = 0; p < procs; p++)
        pss -= pss_of(pid[p]); /* unsigned: the sum at the end brings it back up */
    close(go[1]);
    uint64_t private_pages = 0, dirty = 0;
    int ok = 1;
    for (int p = 0; p < procs; p++) {
        report r;
        if (read(rep[0], &r, sizeof r) != (ssize_t)sizeof r) {
            printf("  a child died before reporting\n");
            ok = 0;
            continue;
        }
        if (!r.ok) {
            printf("  %s\n", r.err);
            ok = 0;
        }
        private_pages += r.private_pages;
        dirty += r.dirty_pages;
    }
    /* Every child is alive and done: their Pss splits shared pages fairly. */
    for (int p = 0; p < procs; p++)
        pss += pss_of(pid[p]);
    close(hold[1]);
    close(rep[0]);
    for (int p = 0; p < procs; p++) {
        int st;
        waitpid(pid[p], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            ok = 0;
    }
    CHECK(ok);
    uint64_t bound = file_bytes + private_pages * PAGE + SANDBOXES * HOST_ALLOWANCE + procs * PROC_ALLOWANCE;
    printf("  %d sandboxes in %d process%s: Pss gained %.1f MiB; bound %.1f MiB = the snapshot file %.1f MiB "
           "(database %u MiB, program, tables) once + %.1f MiB private to the sandboxes (%.1f pages each; "
           "%.1f dirty since their last restore) + %u KiB each for the host's structures + %u MiB per "
           "process; "
           "one copy of the file per sandbox would be %.0f MiB\n",
           SANDBOXES, procs, procs > 1 ? "es" : "", (double)pss / (1 << 20), (double)bound / (1 << 20),
           (double)file_bytes / (1 << 20), DB_BYTES >> 20, (double)private_pages * PAGE / (1 << 20),
           (double)private_pages / SANDBOXES, (double)dirty / SANDBOXES, HOST_ALLOWANCE >> 10, PROC_ALLOWANCE >> 20,
           (double)file_bytes * SANDBOXES / (1 << 20));
    fflush(stdout);
    CHECK(pss < bound);
    /* ...and the bound means something: the file's pages were read (the
     * scans made them resident), and no sandbox holds a private copy of the
     * database (that would be at least its size). Not a tighter fraction:
     * where the host backs scratch with transparent huge pages (the KVM lab's
     * kernel does), a sandbox that wrote a few pages holds 2 MiB of it. */
    CHECK(pss >= file_bytes * 9 / 10);
    CHECK(private_pages / SANDBOXES * PAGE < DB_BYTES);
}

static void test_share_sqlite(void)
{
    REQUIRE(mkdtemp(strcpy(g_dir, "/tmp/sandlet-share-XXXXXX")) != NULL);
    const char *db = tpath("share.db"), *snap_path = tpath("share.snap");
    REQUIRE(make_db(db) == 0);
    size_t len;
    uint8_t *bytes = read_file(db, &len);
    REQUIRE(bytes != NULL && len >= DB_BYTES * 9ull / 10);

    /* The snapshot file: the database as writable init data (writes are
     * copy-on-write, undone by restore), snapshotted after init. */
    char err[256];
    sl_config cfg = {.init_data = bytes, .init_data_size = len,
                     .init_data_perm = SL_PERM_READ | SL_PERM_WRITE};
    sl_sandbox *sb;
    int rc = sl_sandbox_new_from_file(&sb, guest_path("sqlite"), &cfg, err, sizeof err);
    if (rc)
        printf("  %s\n", err);
    REQUIRE(rc == 0);
    REQUIRE(sl_sandbox_init(sb) == 0);
    char want[128];
    REQUIRE(query(sb, "SELECT count(*) AS n, sum(length(v)) AS bytes FROM t", want, sizeof want) == 0);
    sl_snapshot *snap;
    REQUIRE(sl_sandbox_snapshot(sb, &snap) == 0);
    rc = sl_snapshot_save(snap, snap_path, err, sizeof err);
    if (rc)
        printf("  save: %s\n", err);
    CHECK(rc == 0);
    sl_snapshot_free(snap);
    sl_sandbox_free(sb);
    free(bytes);
    remove(db);

    if (rc == 0) {
        struct stat st;
        REQUIRE(stat(snap_path, &st) == 0);
        measure(snap_path, (uint64_t)st.st_size, 1, want);
        measure(snap_path, (uint64_t)st.st_size, 4, want);
    }
    remove(snap_path);
    rmdir(g_dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *lab = getenv("SANDLET_IN_LAB");
    if (lab && *lab && strcmp(lab, "0") != 0)
        DB_BYTES = 8u << 20;
    RUN_ARCH(T_AMD64, test_share_sqlite);
    T_EXIT();
}
