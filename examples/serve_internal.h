/* What the request server's parts share (not for users of serve.h):
 *   serve_core.c     the server object, its job queue and worker threads, stats
 *   serve_request.c  one request: JSON line -> typed call -> JSON answer
 *   serve_io.c       reading request lines: a stream, or a Unix socket's
 *                    connections */
#ifndef SERVE_INTERNAL_H
#define SERVE_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "sandlet.h"
#include "serve.h"

/* Where a connection waits for the answer to its request. */
typedef struct serve_reply {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    char *text; /* the answer line (malloc'd; NULL: out of memory, see SERVE_OOM_ANSWER) */
    size_t len;
} serve_reply;

/* One request line, owned by the queue and then by the worker that takes
 * it (which frees it). */
typedef struct serve_job {
    char *line; /* malloc'd copy, NULL for a line that was too long */
    size_t len;
    uint64_t lineno;    /* 1-based, in its stream or connection: the id when it has none */
    int too_long;       /* over SERVE_MAX_LINE: answered with an error */
    serve_reply *reply; /* NULL: the answer goes to the run's out_fd */
    struct serve_job *next;
} serve_job;

/* The answer when no memory was left to make one. */
#define SERVE_OOM_ANSWER "{\"id\":null,\"ok\":false,\"error\":\"out of host memory\",\"code\":-2}\n"

/* --- serve_core.c, for serve_io.c --- */

/* A job for one line; NULL when out of memory. */
serve_job *serve_job_new(const char *line, size_t len, uint64_t lineno, int too_long, serve_reply *reply);
/* Queues a job (waits while the queue is full); the queue owns it. */
void serve_submit(serve *s, serve_job *j);
/* Starts the workers for a run whose stream answers go to out_fd (-1 for
 * sockets); serve_end closes the queue, waits for the workers to answer
 * what it holds (killing the calls in flight if the server is or gets
 * stopped meanwhile), and ends the run's clock. serve_kill_calls kills the
 * calls in flight once (the socket mode's end does it before it waits for
 * the connections). */
int serve_begin(serve *s, int out_fd, char *err, size_t errlen);
void serve_end(serve *s);
void serve_kill_calls(serve *s);
/* The read end of the stop pipe (readable once serve_stop ran), and whether
 * it did. */
int serve_stop_fd(const serve *s);
int serve_stopping(const serve *s);
/* pthread_create with SIGINT and SIGTERM blocked in the new thread. */
int serve_spawn(pthread_t *t, void *(*fn)(void *), void *arg);
/* Writes all of buf to fd (send with MSG_NOSIGNAL for sockets); 0 or -1. */
int serve_write_all(int fd, const char *buf, size_t len, int is_socket);

/* --- serve_request.c --- */

/* Answers one request on sb: parses the line, converts its arguments by the
 * function's registered signature, calls it and formats the answer line
 * (ending in '\n') into *text (malloc'd; NULL when out of memory), *len.
 * refuse_code != 0 answers every request with that error and refuse_msg
 * instead of calling. *called tells whether the guest was called (the
 * sandbox then needs a restore: the answer no longer points into it).
 * Returns 1 for an "ok": true answer, 0 for an error answer. */
int serve_answer(sl_sandbox *sb, int refuse_code, const char *refuse_msg, const serve_job *j, char **text,
                 size_t *len, int *called);

#endif
