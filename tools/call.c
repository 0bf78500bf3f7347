/* `sandlet call GUEST NAME [ARGS...]` */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

extern const char EXIT_HELP[];

static void call_usage(int fd)
{
    out_printf(fd,
               "usage: sandlet call [OPTIONS] GUEST NAME [ARGS...]\n"
               "Creates a sandbox from GUEST (a guest ELF or a snapshot file), runs its init,\n"
               "calls guest function NAME once and prints the return value on stdout: strings\n"
               "as they are, bytes as hex, bool as true/false, floats with %%g, nothing for void.\n"
               "Each ARG is read as the type of that parameter in the guest's signature:\n"
               "integers in decimal or 0x hex, floats, true/false/1/0, strings as given, bytes\n"
               "as hex. The host function HostUpper(string) -> string is built in.\n"
               "With --init-data the guest gets FILE's bytes (for build/guests/sqlite: the\n"
               "database it opens).\n"
               "With --json, stdout gets one JSON object instead: {\"ok\":true,\"function\":..,\n"
               "\"type\":..,\"value\":..}, or on failure {\"ok\":false,\"error\":..,\"code\":..,\"exit\":..}\n"
               "(same exit status); what the guest writes to its stdout goes to stderr then.\n"
               "Options may appear anywhere; put -- before arguments that start with --.\n");
    out_printf(fd, "%s%s", OPT_HELP, EXIT_HELP);
}

int cmd_call(int argc, char **argv)
{
    cli_opts o;
    memset(&o, 0, sizeof o);
    /* Positional arguments; argv itself stays intact for a lab re-execution. */
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0, opts_done = 0, rc;
    if (!pos) {
        cli_err("out of memory");
        return EXIT_SETUP;
    }
    /* --json first, so that even a usage error is answered in JSON. */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--json") == 0)
            o.json = 1;
    for (int i = 1; i < argc; i++) {
        if (!opts_done && strcmp(argv[i], "--") == 0) {
            opts_done = 1;
            continue;
        }
        if (!opts_done && strcmp(argv[i], "--json") == 0)
            continue;
        if (!opts_done) {
            int r = opt_take(&o, argc, argv, &i);
            if (r == EXIT_USAGE) {
                call_usage(2);
                rc = EXIT_USAGE;
                goto out;
            }
            if (r == 1)
                continue;
        }
        pos[npos++] = argv[i];
    }
    if (o.help) {
        call_usage(1);
        rc = EXIT_OK;
        goto out;
    }
    if ((rc = opt_finish(&o)) != 0) {
        call_usage(2);
        goto out;
    }
    if (npos < 2) {
        cli_err("call: GUEST and NAME are required");
        call_usage(2);
        rc = EXIT_USAGE;
        goto out;
    }
    lab_req req;
    memset(&req, 0, sizeof req);
    req.adds[req.nadds++] = pos[0];
    if (o.init_data_path)
        req.adds[req.nadds++] = o.init_data_path;
    rc = lab_maybe_reexec(&req);
    if (rc >= 0)
        goto out;

    cli_guest g;
    rc = guest_open(&g, pos[0], &o);
    if (rc == 0) {
        if (o.json) {
            call_result r;
            guest_call(&g, pos[1], npos - 2, pos + 2, &r);
            if (r.exit != EXIT_OK)
                cli_errc(r.code, "%s", r.msg);
            json_call_result(&r, NULL, 1);
            guest_close(&g);
            free(pos);
            return r.exit; /* answered: no second object below */
        }
        rc = guest_call_text(&g, pos[1], npos - 2, pos + 2, 2, "sandlet: ", 0);
        guest_close(&g);
    }
out:
    /* Every other failure (usage, setup, the lab) answers in JSON too, unless
     * the lab ran us and our inner self answered. */
    if (o.json && rc != EXIT_OK && !o.help && !lab_inner_ran) {
        int code;
        const char *msg = cli_last_err(&code);
        json_error(NULL, npos >= 2 ? pos[1] : NULL, msg, code, rc);
    }
    free(pos);
    return rc;
}
