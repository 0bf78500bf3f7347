/* Snapshot files end to end: a snapshot saved and loaded behaves exactly like
 * the in-memory one, keeps its identity, and sandboxes started from loaded
 * files share the file's pages (no copy of the blob is ever made). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sandlet.h"
#include "t.h"
#include "../common/e2e.h"

static int host_upper(void *user, const sl_value *a, size_t n, sl_value *r, char *err, size_t errlen)
{
    static char buf[256];
    (void)user, (void)n, (void)err, (void)errlen;
    size_t len = a[0].v.buf.len < sizeof buf ? a[0].v.buf.len : sizeof buf;
    for (size_t i = 0; i < len; i++) {
        char c = ((const char *)a[0].v.buf.ptr)[i];
        buf[i] = c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
    }
    r->type = SL_TYPE_STRING;
    r->v.buf.ptr = buf;
    r->v.buf.len = len;
    return 0;
}

static void add_upper(sl_sandbox *sb)
{
    static const int p[] = {SL_TYPE_STRING};
    sl_sandbox_register(sb, "HostUpper", SL_TYPE_STRING, p, 1, host_upper, NULL);
}

static char *upper(sl_sandbox *sb, const char *s)
{
    static char out[256];
    sl_value a = {.type = SL_TYPE_STRING, .v.buf = {s, strlen(s)}}, r;
    if (sl_sandbox_call(sb, "Upper", &a, 1, &r))
        return NULL;
    snprintf(out, sizeof out, "%s", (const char *)r.v.buf.ptr);
    return out;
}

/* Copied (anonymous) and total resident kB of the mappings of `path`. A copy
 * of a page of a private file mapping is an anonymous page; Private_Dirty is
 * no sign of one (on tmpfs every page-cache page counts as dirty). */
static void file_rss(const char *path, long *priv, long *rss)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int in = 0;
    long v;
    *priv = *rss = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (strchr(line, '-') && strstr(line, " ") && (line[0] != ' ')) {
            /* a mapping header: "start-end perms offset dev inode path" */
            size_t n = strlen(line);
            if (n && line[n - 1] == '\n')
                line[n - 1] = 0;
            in = strstr(line, path) != NULL;
            continue;
        }
        if (!in)
            continue;
        if (sscanf(line, "Rss: %ld kB", &v) == 1)
            *rss += v;
        else if (sscanf(line, "Anonymous: %ld kB", &v) == 1)
            *priv += v;
    }
    if (f)
        fclose(f);
}

static void check_arch(const char *guest)
{
    char path[512], err[256], file[] = "/tmp/sandlet-e2e-XXXXXX";
    snprintf(path, sizeof path, "%s", guest_path(guest));
    sl_sandbox *sb;
    int rc = sl_sandbox_new_from_file(&sb, path, NULL, err, sizeof err);
    if (rc)
        printf("  %s: %s\n", path, err);
    REQUIRE(rc == 0);
    add_upper(sb);
    REQUIRE(sl_sandbox_init(sb) == 0);
    CHECK_EQ(demo_counter(sb), 1);
    CHECK_EQ(demo_counter(sb), 2);
    sl_snapshot *mem;
    REQUIRE(sl_sandbox_snapshot(sb, &mem) == 0);
    int fd = mkstemp(file);
    REQUIRE(fd >= 0);
    close(fd);
    rc = sl_snapshot_save(mem, file, err, sizeof err);
    if (rc)
        printf("  save: %s\n", err);
    REQUIRE(rc == 0);
    CHECK_EQ(sl_snapshot_verify_file(file, err, sizeof err), 0);

    sl_snapshot *loaded, *loaded2;
    REQUIRE(sl_snapshot_load(&loaded, file, err, sizeof err) == 0);
    REQUIRE(sl_snapshot_load(&loaded2, file, err, sizeof err) == 0);
    char id_mem[65], id_file[65];
    sl_snapshot_id_hex(mem, id_mem);
    sl_snapshot_id_hex(loaded, id_file);
    /* (test_snapfile checks the identity against the b3sum command.) */
    CHECK(strcmp(id_mem, id_file) == 0);
    CHECK_EQ(sl_snapshot_generation(loaded), sl_snapshot_generation(mem));

    /* Same results from the in-memory and the loaded snapshot. */
    sl_sandbox *a, *b, *c;
    REQUIRE(sl_sandbox_new_from_snapshot(&a, mem, err, sizeof err) == 0);
    REQUIRE(sl_sandbox_new_from_snapshot(&b, loaded, err, sizeof err) == 0);
    REQUIRE(sl_sandbox_new_from_snapshot(&c, loaded2, err, sizeof err) == 0);
    add_upper(a);
    add_upper(b);
    CHECK_EQ(sl_sandbox_generation(b), sl_sandbox_generation(a));
    for (int i = 0; i < 3; i++) {
        long long x = demo_counter(a), y = demo_counter(b), z = demo_counter(c);
        CHECK_EQ(x, 3 + i);
        CHECK_EQ(y, x);
        CHECK_EQ(z, x);
    }
    char *ua = upper(a, "file"), ub_copy[256];
    REQUIRE(ua != NULL);
    snprintf(ub_copy, sizeof ub_copy, "%s", ua);
    char *ub = upper(b, "file");
    CHECK(ub && strcmp(ub, ub_copy) == 0 && strcmp(ub, "FILE") == 0);
    /* Restores work across loads of the same file (one family). */
    REQUIRE(sl_sandbox_restore(b, loaded2) == 0);
    CHECK_EQ(demo_counter(b), 3);
    CHECK_EQ(sl_sandbox_restore(b, mem), SL_EFAMILY);

    /* Two loads, three sandboxes: the blob is never copied. */
    long priv, rss;
    file_rss(file, &priv, &rss);
    CHECK_EQ(priv, 0);
    CHECK(rss > 0);

    sl_sandbox_free(a);
    sl_sandbox_free(b);
    sl_sandbox_free(c);
    sl_snapshot_free(loaded);
    sl_snapshot_free(loaded2);
    sl_snapshot_free(mem);
    sl_sandbox_free(sb);
    unlink(file);
}

static void test_file_roundtrip_amd64(void) { check_arch("demo"); }
static void test_file_roundtrip_i686(void) { check_arch("demo32"); }

/* A file whose blob was damaged still loads (load is O(1)), but verify
 * catches it; a damaged header is refused by load with the field named. */
static void test_damaged_files(void)
{
    char path[512], err[256], file[] = "/tmp/sandlet-e2e-XXXXXX";
    snprintf(path, sizeof path, "%s", guest_path("demo"));
    sl_sandbox *sb;
    REQUIRE(sl_sandbox_new_from_file(&sb, path, NULL, err, sizeof err) == 0);
    add_upper(sb);
    REQUIRE(sl_sandbox_init(sb) == 0);
    sl_snapshot *s;
    REQUIRE(sl_sandbox_snapshot(sb, &s) == 0);
    int fd = mkstemp(file);
    REQUIRE(fd >= 0);
    close(fd);
    REQUIRE(sl_snapshot_save(s, file, err, sizeof err) == 0);
    FILE *f = fopen(file, "r+b");
    REQUIRE(f != NULL);
    fseek(f, 4096 + 12345, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 4096 + 12345, SEEK_SET);
    fputc(ch ^ 0x10, f);
    fclose(f);
    CHECK_EQ(sl_snapshot_verify_file(file, err, sizeof err), SL_EHASH);
    f = fopen(file, "r+b");
    REQUIRE(f != NULL);
    fseek(f, 8, SEEK_SET);
    ch = fgetc(f);
    fseek(f, 8, SEEK_SET);
    fputc(ch ^ 0x01, f);
    fclose(f);
    sl_snapshot *bad = NULL;
    int rc = sl_snapshot_load(&bad, file, err, sizeof err);
    CHECK(rc < 0 && bad == NULL);
    CHECK(strlen(err) > 0);
    sl_snapshot_free(s);
    sl_sandbox_free(sb);
    unlink(file);
}

/* Saves an initialised snapshot of guest `name` to a temp file; the path in file. */
static int save_guest(const char *name, char *file)
{
    char err[256];
    sl_sandbox *sb;
    sl_snapshot *s;
    int fd = mkstemp(file);
    if (fd < 0)
        return -1;
    close(fd);
    if (sl_sandbox_new_from_file(&sb, guest_path(name), NULL, err, sizeof err))
        return -1;
    add_upper(sb);
    int rc = sl_sandbox_init(sb) || sl_sandbox_snapshot(sb, &s);
    if (!rc) {
        rc = sl_snapshot_save(s, file, err, sizeof err);
        sl_snapshot_free(s);
    }
    sl_sandbox_free(sb);
    return rc;
}

/* Two programs' files of one family (default sizes): a sandbox started from
 * one and restored to the other describes and dispatches exactly the
 * restored guest's functions, and back again (issue 9, fault 2). */
static void test_restore_other_guest(void)
{
    char a[] = "/tmp/sandlet-e2e-XXXXXX", b[] = "/tmp/sandlet-e2e-XXXXXX", err[256];
    REQUIRE(save_guest("demo", a) == 0 && save_guest("hello", b) == 0);
    sl_snapshot *sa, *sbn;
    REQUIRE(sl_snapshot_load(&sa, a, err, sizeof err) == 0);
    REQUIRE(sl_snapshot_load(&sbn, b, err, sizeof err) == 0);
    sl_sandbox *sb;
    REQUIRE(sl_sandbox_new_from_snapshot(&sb, sa, err, sizeof err) == 0);
    size_t n_demo = sl_sandbox_function_count(sb);
    CHECK(n_demo > 1 && sl_sandbox_find_function(sb, "Add") >= 0);
    REQUIRE(sl_sandbox_restore(sb, sbn) == 0);
    CHECK_EQ(sl_sandbox_function_count(sb), 1);
    CHECK(sl_sandbox_find_function(sb, "Greet") == 0);
    CHECK_EQ(sl_sandbox_find_function(sb, "Add"), SL_ENOTFOUND);
    sl_value arg = {.type = SL_TYPE_STRING, .v.buf = {"you", 3}}, r;
    CHECK(sl_sandbox_call(sb, "Greet", &arg, 1, &r) == 0 && r.v.buf.len == 10 && !memcmp(r.v.buf.ptr, "hello, you", 10));
    sl_value two[2] = {{.type = SL_TYPE_I32, .v.i32 = 1}, {.type = SL_TYPE_I32, .v.i32 = 2}};
    CHECK_EQ(sl_sandbox_call(sb, "Add", two, 2, &r), SL_ENOTFOUND);
    REQUIRE(sl_sandbox_restore(sb, sa) == 0);
    CHECK_EQ(sl_sandbox_function_count(sb), n_demo);
    CHECK(sl_sandbox_call(sb, "Add", two, 2, &r) == 0 && r.v.i32 == 3);
    sl_sandbox_free(sb);
    sl_snapshot_free(sa);
    sl_snapshot_free(sbn);
    unlink(a);
    unlink(b);
}

int main(void)
{
    RUN_ARCH(T_AMD64, test_file_roundtrip_amd64);
    RUN_ARCH(T_I686, test_file_roundtrip_i686);
    RUN_ARCH(T_AMD64, test_damaged_files);
    RUN_ARCH(T_AMD64, test_restore_other_guest);
    T_EXIT();
}
