/* The sandlet walk-through behind `make demo`: a guest called, a snapshot
 * taken, the guest changed, the snapshot restored and the change gone; a host
 * function; a guest fault reported as an error and the sandbox working again
 * after a restore. Usage: demo GUEST_DIR */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandlet.h"

static int host_upper(void *user, const sl_value *args, size_t nargs, sl_value *ret, char *err, size_t errlen)
{
    static char buf[1024];
    (void)user, (void)nargs, (void)err, (void)errlen;
    size_t n = args[0].v.buf.len < sizeof buf ? args[0].v.buf.len : sizeof buf;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)toupper(((const unsigned char *)args[0].v.buf.ptr)[i]);
    ret->type = SL_TYPE_STRING;
    ret->v.buf.ptr = buf;
    ret->v.buf.len = n;
    return 0;
}

static void die(const char *what, int rc, const char *msg)
{
    printf("FAILED: %s: %s: %s\n", what, sl_strerror(rc), msg);
    exit(1);
}

static sl_sandbox *open_guest(const char *dir, const char *name)
{
    char path[4096], err[512];
    sl_sandbox *sb;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = sl_sandbox_new_from_file(&sb, path, NULL, err, sizeof err);
    if (rc)
        die(path, rc, err);
    static const int one_string[] = {SL_TYPE_STRING};
    sl_sandbox_register(sb, "HostUpper", SL_TYPE_STRING, one_string, 1, host_upper, NULL);
    if ((rc = sl_sandbox_init(sb)))
        die("init", rc, sl_sandbox_errmsg(sb));
    return sb;
}

static long long counter(sl_sandbox *sb)
{
    sl_value r;
    int rc = sl_sandbox_call(sb, "Counter", NULL, 0, &r);
    if (rc)
        die("Counter", rc, sl_sandbox_errmsg(sb));
    printf("  Counter()            -> %lld\n", (long long)r.v.i64);
    return r.v.i64;
}

static sl_snapshot *snapshot(sl_sandbox *sb)
{
    sl_snapshot *s;
    char id[65];
    int rc = sl_sandbox_snapshot(sb, &s);
    if (rc)
        die("snapshot", rc, sl_sandbox_errmsg(sb));
    sl_snapshot_id_hex(s, id);
    printf("  snapshot             -> generation %llu, %llu KiB, id %.16s...\n",
           (unsigned long long)sl_snapshot_generation(s), (unsigned long long)sl_snapshot_memory_size(s) / 1024,
           id);
    return s;
}

static void restore(sl_sandbox *sb, sl_snapshot *s)
{
    sl_sandbox_info before;
    sl_sandbox_info_get(sb, &before);
    int rc = sl_sandbox_restore(sb, s);
    if (rc)
        die("restore", rc, sl_sandbox_errmsg(sb));
    printf("  restore              -> done (the guest had dirtied %llu scratch pages)\n",
           (unsigned long long)before.dirty_pages);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "build/guests";
    int ok = 1;
    printf("sandlet demo: a guest in a KVM micro-VM%s\n\n",
           getenv("SANDLET_IN_LAB") ? " (inside the KVM lab: QEMU-emulated AMD SVM)" : "");

    printf("1. Call a guest, snapshot it, change it, restore it (guest 'demo', x86-64)\n");
    sl_sandbox *sb = open_guest(dir, "demo");
    ok &= counter(sb) == 1;
    ok &= counter(sb) == 2;
    sl_snapshot *snap = snapshot(sb);
    ok &= counter(sb) == 3;
    restore(sb, snap);
    ok &= counter(sb) == 3;
    printf("     the change is gone: after the restore the counter continues from the snapshot\n");
    sl_value r;
    if (sl_sandbox_call(sb, "Generation", NULL, 0, &r) == 0)
        printf("  Generation()         -> %llu (the guest sees which snapshot it runs on)\n",
               (unsigned long long)r.v.u64);
    ok &= r.v.u64 == 1;

    printf("\n2. The guest calls back into the host\n");
    sl_value arg = {.type = SL_TYPE_STRING, .v.buf = {"hello from the guest", 20}};
    int rc = sl_sandbox_call(sb, "Upper", &arg, 1, &r);
    if (rc)
        die("Upper", rc, sl_sandbox_errmsg(sb));
    printf("  Upper(\"hello from the guest\") -> \"%s\" (via host function HostUpper)\n", (const char *)r.v.buf.ptr);
    ok &= strcmp((const char *)r.v.buf.ptr, "HELLO FROM THE GUEST") == 0;

    printf("\n3. A faulty guest: the fault is an error, never a crash (guest 'faulty')\n");
    sl_sandbox *bad = open_guest(dir, "faulty");
    counter(bad);
    sl_snapshot *clean = snapshot(bad);
    rc = sl_sandbox_call(bad, "WriteReadOnly", NULL, 0, &r);
    printf("  WriteReadOnly()      -> %s\n     %s\n", sl_strerror(rc), sl_sandbox_errmsg(bad));
    ok &= rc == SL_EFAULT;
    rc = sl_sandbox_call(bad, "Counter", NULL, 0, &r);
    printf("  Counter()            -> %s (poisoned until restored)\n", sl_strerror(rc));
    ok &= rc == SL_ESTATE;
    restore(bad, clean);
    ok &= counter(bad) == 2;

    sl_snapshot_free(snap);
    sl_snapshot_free(clean);
    sl_sandbox_free(sb);
    sl_sandbox_free(bad);
    printf("\n%s\n", ok ? "demo OK" : "demo FAILED: a result was not what it should be");
    return ok ? 0 : 1;
}
