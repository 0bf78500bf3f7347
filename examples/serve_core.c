/* The request server's core: one snapshot, a sandbox per worker thread, a
 * bounded queue of request lines between the readers (serve_io.c) and the
 * workers, and the run's figures.
 *
 * Every worker restores its sandbox to the snapshot after every call, so
 * each request starts from the same state whatever the one before did,
 * faults and timeouts included (a restore also recovers a POISONED
 * sandbox). A restore that fails (the snapshot file was changed under us:
 * SL_ECHANGED) leaves no clean state to serve from: that worker refuses
 * every later request and the server stops. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve_internal.h"

typedef struct worker {
    serve *s;
    unsigned index;
    sl_sandbox *sb;
    pthread_t thread;
    char *upper; /* HostUpper's result, valid until its next call */
    size_t upper_cap;
    int refuse_code; /* non-zero once a restore failed */
    char refuse_msg[320];
    /* this run's figures */
    uint64_t requests, errors;
    uint64_t *lat_ns; /* one per request, while memory lasts */
    size_t nlat, lat_cap;
} worker;

struct serve {
    serve_opts opts;
    sl_snapshot *snap;
    worker *w;
    /* the queue */
    pthread_mutex_t qmu;
    pthread_cond_t qnonempty, qnonfull;
    serve_job *head, *tail;
    size_t qlen, qcap;
    int qclosed;
    /* the stream's answers */
    int out_fd;
    pthread_mutex_t out_mu;
    int out_failed;
    /* stopping: serve_stop writes a byte to the pipe, which stays readable */
    int stop_pipe[2];
    atomic_int stopping;
    int done_pipe[2]; /* a byte from each worker as it ends */
    int killed;       /* serve_kill_calls ran (the run's thread only) */
    pthread_mutex_t err_mu; /* one guest output message at a time on stderr */
    unsigned running;       /* worker threads of this run */
    double t_begin, t_end;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --------------------------------------------------------- host function */

/* HostUpper(string) -> string: ASCII upper case, as the sandlet CLI has it
 * (the demo guest's Upper calls it). */
static int host_upper(void *user, const sl_value *args, size_t nargs, sl_value *ret, char *err, size_t errlen)
{
    worker *w = user;
    if (nargs != 1 || args[0].type != SL_TYPE_STRING) {
        snprintf(err, errlen, "HostUpper takes one string");
        return -1;
    }
    size_t n = args[0].v.buf.len;
    if (n + 1 > w->upper_cap) {
        char *p = realloc(w->upper, n + 1);
        if (!p) {
            snprintf(err, errlen, "HostUpper: out of memory");
            return -1;
        }
        w->upper = p;
        w->upper_cap = n + 1;
    }
    const char *s = args[0].v.buf.ptr;
    for (size_t i = 0; i < n; i++)
        w->upper[i] = s[i] >= 'a' && s[i] <= 'z' ? (char)(s[i] - 'a' + 'A') : s[i];
    w->upper[n] = 0;
    ret->type = SL_TYPE_STRING;
    ret->v.buf.ptr = w->upper;
    ret->v.buf.len = n;
    return 0;
}

/* ------------------------------------------------------ writing streams */

/* After a stop, how long a write to stdout or stderr may wait for a reader
 * that does not read before the rest is dropped. */
#define STOP_GRACE_S 2.0

/* Writes all of buf to a stream (the answers' out_fd, stderr), each piece
 * once poll says the fd takes it, at most PIPE_BUF bytes (what a pipe that
 * polls writable takes without blocking), so that a reader that stops
 * reading cannot hold a stop up forever: until the server stops, a write
 * waits as long as it takes; once it stops, STOP_GRACE_S at most. 0, or -1
 * with errno set (ETIMEDOUT: the grace ran out). */
static int write_stream(serve *s, int fd, const char *buf, size_t len)
{
    double deadline = 0;
    while (len) {
        int stopping = serve_stopping(s);
        if (stopping && deadline == 0)
            deadline = now_s() + STOP_GRACE_S;
        int wait_ms = -1;
        if (stopping) {
            wait_ms = (int)((deadline - now_s()) * 1e3);
            if (wait_ms <= 0) {
                errno = ETIMEDOUT;
                return -1;
            }
        }
        /* Before the stop, the stop pipe wakes the wait; after it, the
         * pipe stays readable and only the clock counts. */
        struct pollfd p[2] = {{.fd = fd, .events = POLLOUT},
                              {.fd = stopping ? -1 : s->stop_pipe[0], .events = POLLIN}};
        int r = poll(p, 2, wait_ms);
        if (r < 0 && errno != EINTR)
            return -1;
        if (r <= 0 || !p[0].revents)
            continue; /* a signal, the stop, or the grace (checked above) */
        ssize_t n = write(fd, buf, len < PIPE_BUF ? len : PIPE_BUF);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---------------------------------------------------------- guest output */

/* Stdout carries the answers: whatever a guest prints or writes goes to
 * stderr, one message per write, tagged with the worker (or nowhere with
 * --quiet). */
static void guest_out(worker *w, const char *tag, const char *msg, size_t len, int newline)
{
    char head[48];
    int n = snprintf(head, sizeof head, "[guest %u%s] ", w->index, tag);
    pthread_mutex_lock(&w->s->err_mu);
    if (write_stream(w->s, 2, head, (size_t)n) == 0 && write_stream(w->s, 2, msg, len) == 0 && newline)
        write_stream(w->s, 2, "\n", 1);
    pthread_mutex_unlock(&w->s->err_mu);
}

static void guest_print(void *user, int level, const char *msg, size_t len)
{
    (void)level;
    if (len && msg[len - 1] == '\n')
        len--;
    guest_out(user, "", msg, len, 1);
}

static void guest_write(void *user, int fd, const void *buf, size_t len)
{
    guest_out(user, fd == 1 ? " stdout" : " stderr", buf, len, 0);
}

static void discard_print(void *user, int level, const char *msg, size_t len)
{
    (void)user, (void)level, (void)msg, (void)len;
}

static void discard_write(void *user, int fd, const void *buf, size_t len)
{
    (void)user, (void)fd, (void)buf, (void)len;
}

/* --------------------------------------------------------------- creation */

static int worker_init(serve *s, unsigned i, char *err, size_t errlen)
{
    worker *w = &s->w[i];
    w->s = s;
    w->index = i;
    char why[256] = "";
    int rc = sl_sandbox_new_from_snapshot(&w->sb, s->snap, why, sizeof why);
    if (rc) {
        snprintf(err, errlen, "worker %u: cannot start a sandbox from the snapshot: %s", i, why);
        return -1;
    }
    static const int str[] = {SL_TYPE_STRING};
    if ((rc = sl_sandbox_register(w->sb, "HostUpper", SL_TYPE_STRING, str, 1, host_upper, w))) {
        snprintf(err, errlen, "worker %u: HostUpper: %s", i, sl_sandbox_errmsg(w->sb));
        return -1;
    }
    sl_sandbox_set_timeout(w->sb, s->opts.timeout_ms);
    sl_sandbox_set_print(w->sb, s->opts.quiet ? discard_print : guest_print, w);
    sl_sandbox_set_stdio(w->sb, NULL, s->opts.quiet ? discard_write : guest_write, w);
    return 0;
}

int serve_new(serve **out, const char *snapshot_path, const serve_opts *opts, char *err, size_t errlen)
{
    *out = NULL;
    if (opts->workers < 1 || opts->workers > SERVE_MAX_WORKERS) {
        snprintf(err, errlen, "workers: %u is not in 1..%u", opts->workers, SERVE_MAX_WORKERS);
        return -1;
    }
    serve *s = calloc(1, sizeof *s);
    if (!s || !(s->w = calloc(opts->workers, sizeof *s->w))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->opts = *opts;
    s->qcap = 2 * (size_t)opts->workers + 2; /* enough to keep every worker busy */
    s->out_fd = -1;
    s->stop_pipe[0] = s->stop_pipe[1] = s->done_pipe[0] = s->done_pipe[1] = -1;
    pthread_mutex_init(&s->qmu, NULL);
    pthread_cond_init(&s->qnonempty, NULL);
    pthread_cond_init(&s->qnonfull, NULL);
    pthread_mutex_init(&s->out_mu, NULL);
    pthread_mutex_init(&s->err_mu, NULL);
    if (pipe2(s->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0 || pipe2(s->done_pipe, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        serve_free(s);
        return -1;
    }
    char why[256] = "";
    if (sl_snapshot_load(&s->snap, snapshot_path, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", snapshot_path, why);
        serve_free(s);
        return -1;
    }
    /* One loaded snapshot serves every sandbox (sl_snapshot may be shared
     * by any number of sandboxes in any threads: sandlet.h). */
    for (unsigned i = 0; i < opts->workers; i++)
        if (worker_init(s, i, err, errlen) != 0) {
            serve_free(s);
            return -1;
        }
    *out = s;
    return 0;
}

void serve_free(serve *s)
{
    if (!s)
        return;
    for (unsigned i = 0; s->w && i < s->opts.workers; i++) {
        sl_sandbox_free(s->w[i].sb);
        free(s->w[i].upper);
        free(s->w[i].lat_ns);
    }
    free(s->w);
    sl_snapshot_free(s->snap);
    for (int k = 0; k < 2; k++) {
        if (s->stop_pipe[k] >= 0)
            close(s->stop_pipe[k]);
        if (s->done_pipe[k] >= 0)
            close(s->done_pipe[k]);
    }
    pthread_mutex_destroy(&s->qmu);
    pthread_cond_destroy(&s->qnonempty);
    pthread_cond_destroy(&s->qnonfull);
    pthread_mutex_destroy(&s->out_mu);
    pthread_mutex_destroy(&s->err_mu);
    free(s);
}

/* --------------------------------------------------------------- stopping */

void serve_stop(serve *s)
{
    atomic_store(&s->stopping, 1);
    ssize_t r = write(s->stop_pipe[1], "x", 1); /* full (EAGAIN): readable already */
    (void)r;
}

int serve_stop_fd(const serve *s)
{
    return s->stop_pipe[0];
}

int serve_stopping(const serve *s)
{
    return atomic_load(&((serve *)s)->stopping);
}

void serve_kill_calls(serve *s)
{
    if (s->killed)
        return; /* a kill with no call running would cancel the next one */
    s->killed = 1;
    for (unsigned i = 0; i < s->opts.workers; i++)
        sl_sandbox_kill(s->w[i].sb);
}

/* ------------------------------------------------------------------ queue */

serve_job *serve_job_new(const char *line, size_t len, uint64_t lineno, int too_long, serve_reply *reply)
{
    serve_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    if (!too_long) {
        if (!(j->line = malloc(len + 1))) {
            free(j);
            return NULL;
        }
        memcpy(j->line, line, len);
        j->line[len] = 0;
        j->len = len;
    }
    j->lineno = lineno;
    j->too_long = too_long;
    j->reply = reply;
    return j;
}

static void job_free(serve_job *j)
{
    free(j->line);
    free(j);
}

void serve_submit(serve *s, serve_job *j)
{
    pthread_mutex_lock(&s->qmu);
    while (s->qlen >= s->qcap)
        pthread_cond_wait(&s->qnonfull, &s->qmu);
    j->next = NULL;
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    s->qlen++;
    pthread_cond_signal(&s->qnonempty);
    pthread_mutex_unlock(&s->qmu);
}

/* The next job, or NULL once the queue is closed and empty. */
static serve_job *take(serve *s)
{
    pthread_mutex_lock(&s->qmu);
    while (!s->head && !s->qclosed)
        pthread_cond_wait(&s->qnonempty, &s->qmu);
    serve_job *j = s->head;
    if (j) {
        s->head = j->next;
        if (!s->head)
            s->tail = NULL;
        s->qlen--;
        pthread_cond_signal(&s->qnonfull);
    }
    pthread_mutex_unlock(&s->qmu);
    return j;
}

/* ---------------------------------------------------------------- workers */

int serve_write_all(int fd, const char *buf, size_t len, int is_socket)
{
    while (len) {
        ssize_t n = is_socket ? send(fd, buf, len, MSG_NOSIGNAL) : write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Hands the answer over: to the waiting connection, or whole to the
 * stream's output (a failed output stops the server: nobody reads). */
static void deliver(serve *s, serve_job *j, char *text, size_t len)
{
    serve_reply *r = j->reply;
    job_free(j);
    if (r) {
        pthread_mutex_lock(&r->mu);
        r->text = text;
        r->len = len;
        r->done = 1;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        return;
    }
    pthread_mutex_lock(&s->out_mu);
    if (!s->out_failed &&
        write_stream(s, s->out_fd, text ? text : SERVE_OOM_ANSWER, text ? len : strlen(SERVE_OOM_ANSWER))) {
        s->out_failed = 1;
        if (errno == ETIMEDOUT)
            fprintf(stderr, "serve: stopping, and nobody reads the answers: the rest are dropped\n");
        else
            fprintf(stderr, "serve: writing answers: %s; stopping\n", strerror(errno));
        serve_stop(s);
    }
    pthread_mutex_unlock(&s->out_mu);
    free(text);
}

static void restore(worker *w)
{
    int rc = sl_sandbox_restore(w->sb, w->s->snap);
    if (rc == 0 || w->refuse_code)
        return;
    w->refuse_code = rc;
    snprintf(w->refuse_msg, sizeof w->refuse_msg, "worker %u cannot restore its sandbox: %s", w->index,
             sl_sandbox_errmsg(w->sb));
    fprintf(stderr, "serve: %s; stopping\n", w->refuse_msg);
    serve_stop(w->s);
}

static void record(worker *w, int ok, double seconds)
{
    w->requests++;
    w->errors += !ok;
    if (w->nlat == w->lat_cap) {
        size_t cap = w->lat_cap ? 2 * w->lat_cap : 1024;
        uint64_t *p = realloc(w->lat_ns, cap * sizeof *p);
        if (!p)
            return; /* the percentiles then leave this request out */
        w->lat_ns = p;
        w->lat_cap = cap;
    }
    w->lat_ns[w->nlat++] = (uint64_t)(seconds * 1e9);
}

/* Once the server stops, the requests still queued are refused rather
 * than called: only the calls in flight then need a kill (serve_end). */
static void *worker_main(void *arg)
{
    worker *w = arg;
    serve_job *j;
    while ((j = take(w->s))) {
        double t0 = now_s();
        char *text;
        size_t len;
        int called;
        int code = w->refuse_code;
        const char *msg = w->refuse_msg;
        if (!code && serve_stopping(w->s)) {
            code = SL_ECANCELLED;
            msg = "the server is stopping";
        }
        int ok = serve_answer(w->sb, code, msg, j, &text, &len, &called);
        if (called)
            restore(w);
        deliver(w->s, j, text, len);
        record(w, ok, now_s() - t0);
    }
    ssize_t r = write(w->s->done_pipe[1], "x", 1);
    (void)r;
    return NULL;
}

int serve_spawn(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int serve_begin(serve *s, int out_fd, char *err, size_t errlen)
{
    s->out_fd = out_fd;
    s->out_failed = 0;
    s->qclosed = 0;
    for (unsigned i = 0; i < s->opts.workers; i++) {
        s->w[i].requests = s->w[i].errors = 0;
        s->w[i].nlat = 0;
    }
    s->t_begin = now_s();
    for (s->running = 0; s->running < s->opts.workers; s->running++) {
        int rc = serve_spawn(&s->w[s->running].thread, worker_main, &s->w[s->running]);
        if (rc) {
            snprintf(err, errlen, "cannot start worker %u: %s", s->running, strerror(rc));
            serve_end(s); /* the ones started end with the queue */
            return -1;
        }
    }
    return 0;
}

/* Waits for the workers to answer what is queued; a stop while they do
 * (a signal after the end of stdin, say) kills the calls in flight. */
void serve_end(serve *s)
{
    pthread_mutex_lock(&s->qmu);
    s->qclosed = 1;
    pthread_cond_broadcast(&s->qnonempty);
    pthread_mutex_unlock(&s->qmu);
    for (unsigned left = s->running; left;) {
        struct pollfd p[2] = {{.fd = s->done_pipe[0], .events = POLLIN},
                              {.fd = s->killed ? -1 : s->stop_pipe[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0)
            continue; /* EINTR: a signal, perhaps the stop */
        if (p[1].revents)
            serve_kill_calls(s);
        char b[SERVE_MAX_WORKERS];
        ssize_t n = p[0].revents ? read(s->done_pipe[0], b, left) : 0;
        if (n > 0)
            left -= (unsigned)n;
    }
    for (unsigned i = 0; i < s->running; i++)
        pthread_join(s->w[i].thread, NULL);
    s->running = 0;
    s->t_end = now_s();
}

/* ------------------------------------------------------------------ stats */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile (per mille) of sorted v[0..n), in microseconds. */
static double percentile_us(const uint64_t *v, size_t n, unsigned permille)
{
    if (n == 0)
        return 0;
    size_t rank = (permille * n + 999) / 1000; /* ceil(p * n) */
    return (double)v[rank ? rank - 1 : 0] / 1e3;
}

void serve_stats_get(const serve *s, serve_stats *st)
{
    memset(st, 0, sizeof *st);
    size_t n = 0;
    for (unsigned i = 0; i < s->opts.workers; i++) {
        st->requests += s->w[i].requests;
        st->errors += s->w[i].errors;
        n += s->w[i].nlat;
    }
    st->wall_s = s->t_end > s->t_begin ? s->t_end - s->t_begin : 0;
    uint64_t *all = malloc((n ? n : 1) * sizeof *all);
    if (!all)
        return;
    size_t k = 0;
    for (unsigned i = 0; i < s->opts.workers; i++) {
        if (s->w[i].nlat)
            memcpy(all + k, s->w[i].lat_ns, s->w[i].nlat * sizeof *all);
        k += s->w[i].nlat;
    }
    qsort(all, n, sizeof *all, cmp_u64);
    st->p50_us = percentile_us(all, n, 500);
    st->p90_us = percentile_us(all, n, 900);
    st->p99_us = percentile_us(all, n, 990);
    st->max_us = n ? (double)all[n - 1] / 1e3 : 0;
    free(all);
}

void serve_stats_print(const serve *s, FILE *f)
{
    serve_stats st;
    serve_stats_get(s, &st);
    fprintf(f,
            "serve: requests=%llu errors=%llu wall_s=%.3f throughput=%.1f/s latency_us p50=%.1f p90=%.1f "
            "p99=%.1f max=%.1f\n",
            (unsigned long long)st.requests, (unsigned long long)st.errors, st.wall_s,
            st.wall_s > 0 ? (double)st.requests / st.wall_s : 0.0, st.p50_us, st.p90_us, st.p99_us, st.max_us);
    for (unsigned i = 0; i < s->opts.workers; i++)
        fprintf(f, "serve: worker %u: requests=%llu errors=%llu\n", i, (unsigned long long)s->w[i].requests,
                (unsigned long long)s->w[i].errors);
    fflush(f);
}
