/* Snapshot file benchmarks (host only, no vCPU):
 *  - load time of a 1 MiB and a 256 MiB snapshot file: load validates the
 *    header and maps the file, so the two must be close (goal: ratio <= 2);
 *    the 1 MiB load is shown against open + 4 KiB pread + close;
 *  - verify of the 256 MiB file against the `b3sum` command on the same file
 *    in the same run (goal: ratio <= 1.25, i.e. >= 0.8x b3sum's throughput).
 * Files go to $TMPDIR (default /tmp) and are removed afterwards. Both files are
 * in the page cache when timed (a warm-up pass first): this measures our work,
 * not the disk. */
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tests/common/min_elf.h"
#include "bench.h"
#include "snapshot.h"

extern char **environ;

/* Saves a snapshot whose guest-visible memory is about `mib` MiB. */
static int make_file(const char *path, uint64_t mib)
{
    sl_config cfg = {.heap_size = mib > 1 ? (mib << 20) - (64 << 10) : 512 << 10,
                     .scratch_size = 32u << 20};
    sl_snapshot *s;
    sl_errbuf e;
    char err[256];
    static uint8_t elf[MIN_ELF_SIZE];
    size_t len = min_elf64(elf, (min_elf){.data_memsz = 0x1000});
    if (sl_snapshot_from_binary(&s, elf, len, &cfg, &e)) {
        fprintf(stderr, "snapshot: %s\n", e.msg);
        return -1;
    }
    int rc = sl_snapshot_save(s, path, err, sizeof err);
    if (rc)
        fprintf(stderr, "save: %s\n", err);
    sl_snapshot_free(s);
    return rc;
}

static double time_load(const char *path, int reps)
{
    double t[64];
    char err[256];
    for (int i = 0; i < reps; i++) {
        sl_snapshot *s;
        double a = bench_now();
        if (sl_snapshot_load(&s, path, err, sizeof err)) {
            fprintf(stderr, "load: %s\n", err);
            return -1;
        }
        sl_snapshot_free(s);
        t[i] = bench_now() - a;
    }
    return bench_median(t, reps);
}

static double time_open_pread(const char *path, int reps)
{
    double t[64];
    uint8_t buf[4096];
    for (int i = 0; i < reps; i++) {
        double a = bench_now();
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || pread(fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf)
            return -1;
        close(fd);
        t[i] = bench_now() - a;
    }
    return bench_median(t, reps);
}

static double time_verify(const char *path, int reps)
{
    double t[64];
    char err[256];
    for (int i = 0; i < reps; i++) {
        double a = bench_now();
        if (sl_snapshot_verify_file(path, err, sizeof err)) {
            fprintf(stderr, "verify: %s\n", err);
            return -1;
        }
        t[i] = bench_now() - a;
    }
    return bench_median(t, reps);
}

/* `b3sum --no-names FILE > /dev/null`, spawned directly (no shell). */
static double time_b3sum(const char *path, int reps)
{
    double t[64];
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    char *argv[] = {"b3sum", "--no-names", (char *)path, NULL};
    for (int i = 0; i < reps; i++) {
        pid_t pid;
        int st;
        double a = bench_now();
        if (posix_spawnp(&pid, "b3sum", &fa, NULL, argv, environ) != 0 || waitpid(pid, &st, 0) != pid ||
            !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            posix_spawn_file_actions_destroy(&fa);
            return -1;
        }
        t[i] = bench_now() - a;
    }
    posix_spawn_file_actions_destroy(&fa);
    return bench_median(t, reps);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    char small[512], big[512];
    snprintf(small, sizeof small, "%s/bench_snapfile_1m.%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    snprintf(big, sizeof big, "%s/bench_snapfile_256m.%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    if (make_file(small, 1) || make_file(big, 256)) {
        unlink(small);
        unlink(big);
        return 1;
    }
    int reps = bench_reps(31);
    int vreps = bench_reps(9);
    int rc = 0;

    time_load(small, 3);
    time_load(big, 3);
    double l1 = time_load(small, reps), l256 = time_load(big, reps), base = time_open_pread(small, reps);
    if (l1 < 0 || l256 < 0 || base < 0) {
        rc = 1;
        goto out;
    }
    bench_report("snapfile_load_1MiB_vs_open_pread", l1, base, "us");
    bench_report("snapfile_load_256MiB_vs_1MiB", l256, l1, "us");

    time_verify(big, 1);
    double v = time_verify(big, vreps);
    double b = time_b3sum(big, 1) < 0 ? -1 : time_b3sum(big, vreps);
    if (v < 0) {
        rc = 1;
        goto out;
    }
    if (b < 0)
        printf("BENCH snapfile_verify_256MiB_vs_b3sum skipped: the b3sum command is not available\n");
    else
        bench_report("snapfile_verify_256MiB_vs_b3sum", v, b, "ms");
out:
    unlink(small);
    unlink(big);
    return rc;
}
