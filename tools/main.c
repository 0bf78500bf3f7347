/* sandlet: run guest programs in KVM micro-VMs from the command line.
 * See docs/cli.md. */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "cli.h"

int cli_argc;
char **cli_argv;

const char EXIT_HELP[] =
    "Exit status: 0 success; 1 the call or a shell command failed (guest fault, abort,\n"
    "timeout, unknown function...), or snapshot diff found differences; 2 usage error;\n"
    "3 cannot create the sandbox or read/write a file; 4 snapshot verify found damage;\n"
    "125 the KVM lab failed.\n";

static void main_usage(int fd)
{
    out_printf(fd,
               "usage: sandlet COMMAND [OPTIONS] ...\n"
               "Runs guest programs in KVM micro-VMs.\n"
               "Commands:\n"
               "  run PROGRAM [ARGS...]          run a program (main()) with our stdin, stdout, stderr\n"
               "  call GUEST NAME [ARGS...]      call one guest function and print its result\n"
               "  shell GUEST                    read commands (call, snapshot, restore, ...) from stdin\n"
               "  snapshot save [--parent P|--full] GUEST FILE [--call NAME ARGS...]...\n"
               "                                 initialise, run the calls, save a snapshot file (a\n"
               "                                 child of P, or of GUEST when that is a snapshot file)\n"
               "  snapshot inspect FILE          show a snapshot file's header and memory map\n"
               "  snapshot verify FILE           recompute a snapshot file's identity (and its chain's)\n"
               "  snapshot flatten CHILD OUT     write a child file with its chain as one full file\n"
               "  snapshot diff A B              pages added, removed or changed from snapshot A to B\n"
               "  backend [amd64|i686|FILE]      where such guests run here: kvm, pvm or lab\n"
               "  help [COMMAND]                 help for a command (also: COMMAND --help)\n"
               "  --version                      print the version\n"
               "call, shell, snapshot inspect, verify and diff, backend and --version take --json:\n"
               "JSON on stdout (docs/cli.md, \"JSON output\").\n"
               "GUEST is a guest ELF (a static x86-64 or i686 program) or a snapshot file.\n"
               "Guests run on hardware KVM, x86-64 guests also on PVM (kvm_pvm). Where neither can\n"
               "run a guest (no /dev/kvm; i686 on PVM), run, call, shell and snapshot save re-run\n"
               "themselves inside the KVM lab (scripts/kvm-lab, QEMU): about 4 s per command.\n"
               "SANDLET_NO_LAB=1 forbids that, SANDLET_FORCE_LAB=1 forces it.\n");
    out_printf(fd, "%s", EXIT_HELP);
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        main_usage(2);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        int json = 0, bad = 0;
        for (int i = 2; i < argc; i++)
            if (strcmp(argv[i], "--json") == 0)
                json = 1;
            else
                bad = 1;
        if (bad) {
            cli_err("%s takes no argument but --json", cmd);
            if (json) {
                int code;
                json_error(NULL, NULL, cli_last_err(&code), 0, EXIT_USAGE);
            }
            return EXIT_USAGE;
        }
        if (json) {
            jw w = {0};
            jw_open(&w, NULL, '{');
            jw_bool(&w, "ok", 1);
            jw_str(&w, "version", sl_version());
            jw_u64(&w, "version_number", sl_version_number());
            jw_close(&w, '}');
            jw_emit(&w, 1);
            return EXIT_OK;
        }
        out_printf(1, "sandlet %s\n", sl_version());
        return EXIT_OK;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        main_usage(1);
        return EXIT_OK;
    }
    if (strcmp(cmd, "help") == 0) {
        if (argc < 3) {
            main_usage(1);
            return EXIT_OK;
        }
        /* `help X` is `X --help`. */
        static char *hargv[4];
        hargv[0] = argv[2];
        hargv[1] = "--help";
        if (strcmp(argv[2], "snapshot") == 0 && argc > 3) {
            hargv[1] = argv[3];
            hargv[2] = "--help";
            return cmd_snapshot(3, hargv);
        }
        argv = hargv;
        argc = 2;
        cmd = argv[0];
    } else {
        argv++;
        argc--;
    }
    if (strcmp(cmd, "call") == 0)
        return cmd_call(argc, argv);
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc, argv);
    if (strcmp(cmd, "shell") == 0)
        return cmd_shell(argc, argv);
    if (strcmp(cmd, "snapshot") == 0)
        return cmd_snapshot(argc, argv);
    if (strcmp(cmd, "backend") == 0)
        return cmd_backend(argc, argv);
    cli_err("unknown command '%s'%s", cmd,
            strcmp(cmd, "--json") == 0 ? " (--json goes after the command: sandlet call --json ...)" : "");
    main_usage(2);
    if (json_wanted(cli_argc - 1, cli_argv + 1)) {
        int code;
        json_error(NULL, NULL, cli_last_err(&code), 0, EXIT_USAGE);
    }
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    cli_argc = argc;
    cli_argv = argv;
    out_init();
    /* A reader that goes away (`sandlet shell g | head -1`) ends us quietly. */
    signal(SIGPIPE, SIG_DFL);
    int rc = dispatch(argc, argv);
    /* Results that never reached stdout (a full disk, a closed descriptor)
     * are no success: scripts would read a truncated or empty answer. `run`
     * keeps the program's own status, as documented. */
    int e = out_stdout_error();
    if (e && !(argc > 1 && strcmp(argv[1], "run") == 0)) {
        cli_err("cannot write standard output: %s", strerror(e));
        if (rc == EXIT_OK)
            rc = EXIT_SETUP;
    }
    return rc;
}
