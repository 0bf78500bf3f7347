/* Where the request server's lines come from: a stream (stdin), read by the
 * thread that runs the server, whose answers come out in whatever order the
 * workers finish; or the connections of a Unix stream socket, one thread
 * each, each waiting for the answer to one request before it reads the next,
 * so that a connection's answers come in the order of its requests.
 *
 * Lines are read whole up to SERVE_MAX_LINE bytes; a longer one is dropped
 * as it arrives (never held in memory) and answered with an error. Blank
 * lines are skipped (they still count for line numbers). Every read waits on
 * the stop pipe too, so serve_stop ends a run however quiet its inputs. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "serve_internal.h"

/* ------------------------------------------------------------ line reader */

#define READ_CHUNK (64u << 10)

typedef struct line_reader {
    serve *s;
    int fd, is_socket;
    char *buf; /* holds a whole line of SERVE_MAX_LINE bytes, its newline and a chunk */
    size_t cap, start, end;
    int eof;
    int skipping; /* inside a line too long to keep: dropping bytes until its newline */
    uint64_t lineno;
} line_reader;

static int lr_init(line_reader *r, serve *s, int fd, int is_socket)
{
    memset(r, 0, sizeof *r);
    r->s = s;
    r->fd = fd;
    r->is_socket = is_socket;
    r->cap = SERVE_MAX_LINE + 1 + READ_CHUNK;
    r->buf = malloc(r->cap);
    return r->buf ? 0 : -1;
}

/* Waits until fd has input or the server stops; 1: readable, 0: stopped. */
static int wait_input(serve *s, int fd)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = serve_stop_fd(s), .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue; /* a signal: its handler may have stopped us */
            return 1;     /* let the read report the error */
        }
        if (p[1].revents)
            return 0;
        if (p[0].revents)
            return 1;
    }
}

/* The next line: 1 with *line, *len (not NUL-terminated; *too_long set and
 * no bytes for a line over the limit) and its number; 0 at the end of the
 * input; -1 when the server stops or a read fails (errno set, 0 for a stop). */
static int lr_next(line_reader *r, const char **line, size_t *len, int *too_long)
{
    for (;;) {
        if (serve_stopping(r->s)) {
            errno = 0;
            return -1;
        }
        char *p = r->buf + r->start;
        size_t have = r->end - r->start;
        char *nl = memchr(p, '\n', have);
        if (nl || (r->eof && (have || r->skipping))) {
            size_t n = nl ? (size_t)(nl - p) : have;
            r->start += nl ? n + 1 : n;
            r->lineno++;
            *too_long = r->skipping || n > SERVE_MAX_LINE;
            r->skipping = 0;
            *line = *too_long ? NULL : p;
            *len = *too_long ? 0 : n;
            return 1;
        }
        if (r->eof)
            return 0;
        if (have > SERVE_MAX_LINE) { /* no newline yet: drop what we have */
            r->skipping = 1;
            r->start = r->end = 0;
            have = 0;
        }
        if (r->start) {
            memmove(r->buf, p, have);
            r->start = 0;
            r->end = have;
        }
        if (!wait_input(r->s, r->fd)) {
            errno = 0;
            return -1;
        }
        ssize_t got = r->is_socket ? recv(r->fd, r->buf + r->end, r->cap - r->end, 0)
                                   : read(r->fd, r->buf + r->end, r->cap - r->end);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got < 0)
            return -1;
        if (got == 0)
            r->eof = 1;
        r->end += (size_t)got;
    }
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

/* ----------------------------------------------------------------- stream */

int serve_run_stream(serve *s, int in_fd, int out_fd, char *err, size_t errlen)
{
    line_reader r;
    if (lr_init(&r, s, in_fd, 0) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (serve_begin(s, out_fd, err, errlen) != 0) {
        free(r.buf);
        return -1;
    }
    const char *line;
    size_t len;
    int too_long, rc;
    while ((rc = lr_next(&r, &line, &len, &too_long)) > 0) {
        if (!too_long && blank(line, len))
            continue;
        serve_job *j = serve_job_new(line, len, r.lineno, too_long, NULL);
        if (!j) {
            fprintf(stderr, "serve: out of memory reading line %llu; stopping\n", (unsigned long long)r.lineno);
            break;
        }
        serve_submit(s, j);
    }
    if (rc < 0 && errno)
        fprintf(stderr, "serve: reading requests: %s\n", strerror(errno));
    serve_end(s);
    free(r.buf);
    return 0;
}

/* ----------------------------------------------------------------- socket */

typedef struct conns {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned live;              /* connection threads still running */
    int fd[SERVE_MAX_CONNS];    /* their sockets (-1: free slot), to cut them off at the end */
} conns;

typedef struct conn {
    serve *s;
    conns *all;
    unsigned slot;
} conn;

/* One connection: a request, its answer, the next request. */
static void *conn_main(void *arg)
{
    conn *c = arg;
    serve_reply rep = {.done = 0};
    pthread_mutex_init(&rep.mu, NULL);
    pthread_cond_init(&rep.cv, NULL);
    line_reader r;
    const char *line;
    size_t len;
    int too_long;
    int fd = c->all->fd[c->slot];
    if (lr_init(&r, c->s, fd, 1) != 0)
        serve_write_all(fd, SERVE_OOM_ANSWER, strlen(SERVE_OOM_ANSWER), 1);
    else
        while (lr_next(&r, &line, &len, &too_long) > 0) {
            if (!too_long && blank(line, len))
                continue;
            serve_job *j = serve_job_new(line, len, r.lineno, too_long, &rep);
            if (!j) {
                serve_write_all(fd, SERVE_OOM_ANSWER, strlen(SERVE_OOM_ANSWER), 1);
                break;
            }
            rep.done = 0;
            serve_submit(c->s, j);
            pthread_mutex_lock(&rep.mu);
            while (!rep.done)
                pthread_cond_wait(&rep.cv, &rep.mu);
            pthread_mutex_unlock(&rep.mu);
            int wrc = rep.text ? serve_write_all(fd, rep.text, rep.len, 1)
                               : serve_write_all(fd, SERVE_OOM_ANSWER, strlen(SERVE_OOM_ANSWER), 1);
            free(rep.text);
            if (wrc != 0)
                break; /* the client went away */
        }
    free(r.buf);
    pthread_mutex_destroy(&rep.mu);
    pthread_cond_destroy(&rep.cv);
    conns *all = c->all;
    unsigned slot = c->slot;
    free(c);
    /* The last thing this thread does with anything shared; the socket is
     * closed under the lock, so that the end never shuts down a reused fd. */
    pthread_mutex_lock(&all->mu);
    close(all->fd[slot]);
    all->fd[slot] = -1;
    all->live--;
    pthread_cond_broadcast(&all->cv);
    pthread_mutex_unlock(&all->mu);
    return NULL;
}

static int listen_on(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) {
        snprintf(err, errlen, "socket path %s: longer than %zu bytes", path, sizeof a.sun_path - 1);
        return -1;
    }
    strcpy(a.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        snprintf(err, errlen, "socket path %s: %s%s", path, strerror(errno),
                 errno == EADDRINUSE ? " (remove it if no server uses it)" : "");
        close(fd);
        return -1;
    }
    if (listen(fd, 64) != 0) {
        snprintf(err, errlen, "listen on %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    return fd;
}

/* Starts a thread for a new connection, or turns it away. */
static void accept_one(serve *s, conns *all, int lfd)
{
    static const char busy[] = "{\"id\":null,\"ok\":false,\"error\":\"too many connections\",\"code\":-6}\n";
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS)
            poll(NULL, 0, 10); /* out of descriptors: let connections finish */
        return;
    }
    conn *c = malloc(sizeof *c);
    pthread_mutex_lock(&all->mu);
    unsigned slot = 0;
    while (slot < SERVE_MAX_CONNS && all->fd[slot] >= 0)
        slot++;
    if (c && slot < SERVE_MAX_CONNS) {
        *c = (conn){.s = s, .all = all, .slot = slot};
        all->fd[slot] = fd;
        all->live++;
        pthread_t t;
        if (serve_spawn(&t, conn_main, c) == 0) {
            pthread_detach(t);
            pthread_mutex_unlock(&all->mu);
            return;
        }
        all->fd[slot] = -1;
        all->live--;
    }
    pthread_mutex_unlock(&all->mu);
    serve_write_all(fd, busy, sizeof busy - 1, 1);
    close(fd);
    free(c);
}

/* Waits for every connection thread; after grace_s seconds, cuts off the
 * clients that do not read their answers (their sends return errors). */
static void end_conns(conns *all, double grace_s)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)grace_s;
    pthread_mutex_lock(&all->mu);
    while (all->live && pthread_cond_timedwait(&all->cv, &all->mu, &until) == 0)
        ;
    for (unsigned k = 0; k < SERVE_MAX_CONNS; k++)
        if (all->fd[k] >= 0)
            shutdown(all->fd[k], SHUT_RDWR);
    while (all->live)
        pthread_cond_wait(&all->cv, &all->mu);
    pthread_mutex_unlock(&all->mu);
}

int serve_run_socket(serve *s, const char *path, char *err, size_t errlen)
{
    int lfd = listen_on(path, err, errlen);
    if (lfd < 0)
        return -1;
    if (serve_begin(s, -1, err, errlen) != 0) {
        close(lfd);
        unlink(path);
        return -1;
    }
    conns all = {.live = 0};
    for (unsigned k = 0; k < SERVE_MAX_CONNS; k++)
        all.fd[k] = -1;
    pthread_mutex_init(&all.mu, NULL);
    pthread_cond_init(&all.cv, NULL);
    fprintf(stderr, "serve: listening on %s\n", path);
    while (wait_input(s, lfd))
        accept_one(s, &all, lfd);
    close(lfd);
    unlink(path);
    /* Stopped: calls in flight end now; each connection gets its answer,
     * sees the stop and closes. */
    serve_kill_calls(s);
    end_conns(&all, 2);
    serve_end(s);
    pthread_mutex_destroy(&all.mu);
    pthread_cond_destroy(&all.cv);
    return 0;
}
