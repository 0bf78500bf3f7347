/* The shell's input lines. On a terminal the user gets line editing and a
 * history through libedit (Debian's libedit, its readline interface); a
 * script or a pipe gets plain reads, so the lines and the output stay exactly
 * what they were. History lives in memory and, like other interactive tools
 * (sqlite3, python), in a file in the home directory. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <editline/readline.h>

#include "cli.h"

#define HISTORY_MAX 1000

/* $SANDLET_HISTORY (empty: no file), else ~/.sandlet_history; malloc'd or
 * NULL. Only a regular file (or none yet) will do: libedit would block
 * forever reading a FIFO, and read a device such as /dev/zero without end. */
static char *history_path(void)
{
    const char *e = getenv("SANDLET_HISTORY");
    const char *home = getenv("HOME");
    char *p = NULL;
    if (e) {
        if (!*e || !(p = strdup(e)))
            return NULL;
    } else if (!home || !*home || asprintf(&p, "%s/.sandlet_history", home) < 0) {
        return NULL;
    }
    struct stat st;
    if (stat(p, &st) == 0 && !S_ISREG(st.st_mode)) {
        cli_err("%s is not a regular file: no history kept (SANDLET_HISTORY=FILE elsewhere)", p);
        free(p);
        return NULL;
    }
    return p;
}

void lines_open(line_reader *r)
{
    memset(r, 0, sizeof *r);
    r->prompt_fd = -1;
    int in_tty = isatty(0);
    /* Editing echoes on stdout: only when the user sees it there too. */
    if (!in_tty || !isatty(1) || getenv("SANDLET_IN_LAB")) {
        /* Someone types, but stdout goes to a file or a pipe (`shell --json
         * | jq`): the prompt goes to the terminal on stderr, never into
         * the results. */
        r->prompt_fd = !in_tty ? -1 : isatty(1) ? 1 : isatty(2) ? 2 : -1;
        return;
    }
    r->edit = 1;
    rl_readline_name = "sandlet"; /* "sandlet:" lines in ~/.editrc apply */
    using_history();
    stifle_history(HISTORY_MAX);
    r->history = history_path();
    if (r->history)
        read_history(r->history); /* none yet is fine */
}

/* Ctrl-C at the prompt: set while libedit reads a line. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* A line from libedit. Ctrl-C at the prompt drops what was typed and asks
 * again, as sqlite3, python3 and shells do, instead of ending the session
 * (and losing its snapshots and history); while a command runs it still
 * ends sandlet. libedit passes the signal on to this handler, and its read
 * then fails: readline() answers NULL, as at end of input. */
static char *edit_line(void)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    for (;;) {
        interrupted = 0;
        sigaction(SIGINT, &sa, &old);
        char *line = readline("> ");
        sigaction(SIGINT, &old, NULL);
        if (line || !interrupted)
            return line;
        out_printf(1, "\n");
    }
}

const char *lines_read(line_reader *r, size_t *len)
{
    if (r->edit) {
        free(r->line);
        r->line = edit_line();
        if (!r->line)
            return NULL;
        *len = strlen(r->line);
        /* Blank lines and repeats of the last entry are not worth recalling. */
        HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
        if (r->line[strspn(r->line, " \t")] && !(last && last->line && strcmp(last->line, r->line) == 0))
            add_history(r->line);
        return r->line;
    }
    if (r->prompt_fd >= 0)
        out_printf(r->prompt_fd, "> ");
    ssize_t n = getline(&r->line, &r->cap, stdin);
    if (n < 0)
        return NULL;
    *len = (size_t)n;
    return r->line;
}

void lines_close(line_reader *r, int eof)
{
    /* Ctrl-D leaves the cursor after the prompt: end that line. */
    if (eof && (r->edit || r->prompt_fd >= 0))
        out_printf(r->edit ? 1 : r->prompt_fd, "\n");
    if (r->edit && r->history) {
        /* Created private first: the history holds whatever was typed. */
        int fd = open(r->history, O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0600);
        if (fd >= 0)
            close(fd);
        int rc = fd < 0 ? errno : write_history(r->history);
        if (rc != 0)
            cli_err("cannot save the history in %s: %s (SANDLET_HISTORY= keeps none)", r->history, strerror(rc));
    }
    if (r->edit)
        clear_history();
    free(r->line);
    free(r->history);
    memset(r, 0, sizeof *r);
}
