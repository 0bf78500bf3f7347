/* Time to a first call: a new sandbox started from a snapshot file (load +
 * create + first Counter call) against one started from the same snapshot
 * already in memory (create + first call), measured in the same run.
 * Usage: bench_first_call [GUEST_DIR] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "sandlet.h"

static void fail(const char *what, const char *msg)
{
    fprintf(stderr, "bench_first_call: %s: %s\n", what, msg);
    exit(1);
}

static void first_call(sl_snapshot *snap)
{
    char err[256];
    sl_sandbox *sb;
    sl_value r;
    if (sl_sandbox_new_from_snapshot(&sb, snap, err, sizeof err))
        fail("new from snapshot", err);
    if (sl_sandbox_call(sb, "Counter", NULL, 0, &r))
        fail("Counter", sl_sandbox_errmsg(sb));
    sl_sandbox_free(sb);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "build/guests";
    char path[512], err[256], file[] = "/tmp/sandlet-bench-XXXXXX";
    snprintf(path, sizeof path, "%s/demo", dir);
    printf("# measured on: %s\n",
           getenv("SANDLET_IN_LAB")                   ? "KVM lab (QEMU TCG, nested): figures prove correctness, not speed"
           : access("/sys/module/kvm_pvm", F_OK) == 0 ? "PVM (KVM without VT-x/AMD-V): not representative"
                                                      : "native KVM");
    sl_sandbox *sb;
    sl_snapshot *mem, *loaded;
    if (sl_sandbox_new_from_file(&sb, path, NULL, err, sizeof err))
        fail(path, err);
    if (sl_sandbox_init(sb))
        fail("init", sl_sandbox_errmsg(sb));
    if (sl_sandbox_snapshot(sb, &mem))
        fail("snapshot", sl_sandbox_errmsg(sb));
    int fd = mkstemp(file);
    if (fd < 0)
        fail("mkstemp", file);
    close(fd);
    if (sl_snapshot_save(mem, file, err, sizeof err))
        fail("save", err);

    int reps = bench_reps(21);
    double t_file[64], t_mem[64];
    for (int i = 0; i < reps; i++) {
        double t0 = bench_now();
        if (sl_snapshot_load(&loaded, file, err, sizeof err))
            fail("load", err);
        first_call(loaded);
        sl_snapshot_free(loaded);
        t_file[i] = bench_now() - t0;
        t0 = bench_now();
        first_call(mem);
        t_mem[i] = bench_now() - t0;
    }
    bench_report("first_call_from_file_vs_memory", bench_median(t_file, reps), bench_median(t_mem, reps), "ms");
    unlink(file);
    sl_snapshot_free(mem);
    sl_sandbox_free(sb);
    return 0;
}
