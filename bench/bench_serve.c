/* The request server's cost (examples/serve.h, run in-process: the same
 * core as build/serve): N request lines {"id":i,"fn":"Add","args":[2,3]}
 * read from a file, answered by 1 and by 2 workers (answers to /dev/null),
 * each sandbox restored after every call. Reported as time per request:
 *  - serve_add_1worker against the same call + restore in a plain loop in
 *    one thread, without JSON, queue or threads (what the server adds);
 *  - serve_add_2workers against serve_add_1worker (what a second worker
 *    buys; on a 2-CPU machine the reading thread competes with both).
 * Every run's answers are checked: N answers, no error, and the first run
 * of each kind has every value equal to 5.
 * Guests come from $SANDLET_GUESTS (default build/guests); x86-64 only. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "sandlet.h"
#include "serve.h"

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench_serve: %s: %s\n", what, msg ? msg : "");
    exit(1);
}

static const char *guest_path(const char *name)
{
    static char buf[4096];
    const char *dir = getenv("SANDLET_GUESTS");
    snprintf(buf, sizeof buf, "%s/%s", dir && *dir ? dir : "build/guests", name);
    return buf;
}

/* The demo guest right after init, saved to dir/demo.snap. */
static void make_snapshot(const char *path)
{
    sl_sandbox *sb;
    sl_snapshot *s;
    char err[256] = "";
    if (sl_sandbox_new_from_file(&sb, guest_path("demo"), NULL, err, sizeof err))
        die("demo", err);
    if (sl_sandbox_init(sb) || sl_sandbox_snapshot(sb, &s))
        die("demo", sl_sandbox_errmsg(sb));
    if (sl_snapshot_save(s, path, err, sizeof err))
        die("save", err);
    sl_snapshot_free(s);
    sl_sandbox_free(sb);
}

static void write_requests(const char *path, int n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        die(path, "cannot create");
    for (int i = 1; i <= n; i++)
        fprintf(f, "{\"id\":%d,\"fn\":\"Add\",\"args\":[2,3]}\n", i);
    if (fclose(f))
        die(path, "cannot write");
}

/* Seconds per request of the plain loop: Add(2, 3) + restore, n times. */
static double plain_loop(const char *snap_path, int n, int reps)
{
    sl_snapshot *snap;
    sl_sandbox *sb;
    char err[256] = "";
    if (sl_snapshot_load(&snap, snap_path, err, sizeof err) || sl_sandbox_new_from_snapshot(&sb, snap, err, sizeof err))
        die("plain loop", err);
    sl_value args[2] = {{.type = SL_TYPE_I32, .v.i32 = 2}, {.type = SL_TYPE_I32, .v.i32 = 3}}, ret;
    double *t = calloc((size_t)reps, sizeof *t);
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        double t0 = bench_now();
        for (int i = 0; i < n; i++) {
            if (sl_sandbox_call(sb, "Add", args, 2, &ret) || ret.v.i32 != 5)
                die("Add", sl_sandbox_errmsg(sb));
            if (sl_sandbox_restore(sb, snap))
                die("restore", sl_sandbox_errmsg(sb));
        }
        if (r >= 0)
            t[r] = (bench_now() - t0) / n;
    }
    double med = bench_median(t, reps);
    free(t);
    sl_sandbox_free(sb);
    sl_snapshot_free(snap);
    return med;
}

/* Every line of the answers file is {"id":I,"ok":true,"type":"i32","value":5}. */
static void check_answers(const char *path, int n)
{
    FILE *f = fopen(path, "r");
    char line[256];
    int count = 0;
    while (f && fgets(line, sizeof line, f)) {
        int id;
        char tail[64];
        if (sscanf(line, "{\"id\":%d,\"ok\":true,\"type\":\"i32\",\"value\":%63s", &id, tail) != 2 ||
            strcmp(tail, "5}") != 0 || id < 1 || id > n)
            die("wrong answer", line);
        count++;
    }
    if (f)
        fclose(f);
    if (count != n)
        die("answers", "not one per request");
}

/* Seconds per request with `workers` workers. */
static double serve_runs(const char *snap_path, const char *in_path, const char *check_path, int n, int reps,
                         unsigned workers, serve_stats *last)
{
    serve_opts o = {.workers = workers, .quiet = 1};
    serve *s;
    char err[512] = "";
    if (serve_new(&s, snap_path, &o, err, sizeof err))
        die("serve_new", err);
    int in = open(in_path, O_RDONLY | O_CLOEXEC);
    int out = open("/dev/null", O_WRONLY | O_CLOEXEC);
    int chk = open(check_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (in < 0 || out < 0 || chk < 0)
        die("open", in_path);
    double *t = calloc((size_t)reps, sizeof *t);
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up, its answers checked */
        lseek(in, 0, SEEK_SET);
        double t0 = bench_now();
        if (serve_run_stream(s, in, r < 0 ? chk : out, err, sizeof err))
            die("serve_run_stream", err);
        double dt = bench_now() - t0;
        serve_stats_get(s, last);
        if (last->requests != (uint64_t)n || last->errors != 0)
            die("serve", "a request went unanswered or failed");
        if (r >= 0)
            t[r] = dt / n;
    }
    close(chk);
    check_answers(check_path, n);
    double med = bench_median(t, reps);
    free(t);
    close(in);
    close(out);
    serve_free(s);
    return med;
}

int main(void)
{
    bench_where("the server runs in-process; 1 reading thread + N workers");
    int lab = bench_in_lab();
    int n = lab ? 50 : bench_quick() ? 300 : 2000;
    int reps = bench_reps(lab ? 3 : 11);
    char dir[] = "/tmp/sandlet-bench-serve.XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp", dir);
    char snap[128], in[128], chk[128];
    snprintf(snap, sizeof snap, "%s/demo.snap", dir);
    snprintf(in, sizeof in, "%s/requests", dir);
    snprintf(chk, sizeof chk, "%s/answers", dir);
    make_snapshot(snap);
    write_requests(in, n);
    printf("# %d requests per run, median of %d runs; request: {\"id\":I,\"fn\":\"Add\",\"args\":[2,3]}\n", n, reps);

    double plain = plain_loop(snap, n, reps);
    serve_stats st1, st2;
    double one = serve_runs(snap, in, chk, n, reps, 1, &st1);
    bench_report("serve_add_1worker", one, plain, "us");
    printf("# serve_add_1worker: baseline = Add + restore in a plain loop (no JSON, queue, threads); last run: "
           "latency p50=%.1fus p99=%.1fus, %.0f requests/s\n",
           st1.p50_us, st1.p99_us, st1.wall_s > 0 ? (double)st1.requests / st1.wall_s : 0.0);
    double two = serve_runs(snap, in, chk, n, reps, 2, &st2);
    bench_report("serve_add_2workers", two, one, "us");
    printf("# serve_add_2workers: baseline = serve_add_1worker (ratio 0.5 would be perfect scaling); last run: "
           "latency p50=%.1fus p99=%.1fus, %.0f requests/s\n",
           st2.p50_us, st2.p99_us, st2.wall_s > 0 ? (double)st2.requests / st2.wall_s : 0.0);

    unlink(snap);
    unlink(in);
    unlink(chk);
    rmdir(dir);
    return 0;
}
