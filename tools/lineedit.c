/* The shell's input lines. On a terminal the user gets line editing and a
 * history through libedit (Debian's libedit, its readline interface); a
 * script or a pipe gets plain reads, so the lines and the output stay exactly
 * what they were. History lives in memory and, like other interactive tools
 * (sqlite3, python), in a file in the home directory. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <editline/readline.h>

#include "cli.h"

#define HISTORY_MAX 1000

/* $SANDLET_HISTORY (empty: no file), else ~/.sandlet_history; malloc'd or NULL. */
static char *history_path(void)
{
    const char *e = getenv("SANDLET_HISTORY");
    if (e)
        return *e ? strdup(e) : NULL;
    const char *home = getenv("HOME");
    if (!home || !*home)
        return NULL;
    char *p;
    return asprintf(&p, "%s/.sandlet_history", home) < 0 ? NULL : p;
}

void lines_open(line_reader *r)
{
    memset(r, 0, sizeof *r);
    int in_tty = isatty(0);
    /* Editing echoes on stdout: only when the user sees it there too. */
    if (!in_tty || !isatty(1) || getenv("SANDLET_IN_LAB")) {
        r->prompt = in_tty;
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

const char *lines_read(line_reader *r, size_t *len)
{
    if (r->edit) {
        free(r->line);
        r->line = readline("> ");
        if (!r->line)
            return NULL;
        *len = strlen(r->line);
        /* Blank lines and repeats of the last entry are not worth recalling. */
        HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
        if (r->line[strspn(r->line, " \t")] && !(last && last->line && strcmp(last->line, r->line) == 0))
            add_history(r->line);
        return r->line;
    }
    if (r->prompt)
        out_printf(1, "> ");
    ssize_t n = getline(&r->line, &r->cap, stdin);
    if (n < 0)
        return NULL;
    *len = (size_t)n;
    return r->line;
}

void lines_close(line_reader *r, int eof)
{
    /* Ctrl-D leaves the cursor after the prompt: end that line. */
    if (eof && (r->edit || r->prompt))
        out_printf(1, "\n");
    if (r->edit && r->history) {
        /* Created private first: the history holds whatever was typed. */
        int fd = open(r->history, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
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
