/* blockcoord.c - the `blockcoord` command-line program: one binary, many
 * subcommands, each with --help. A table maps names to handlers so that
 * later subcommands (host, signal, status, reap, verify-setup, chaos) slot in
 * without touching the dispatcher.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const bc_cli_cmd_t commands[] = {
    {"demo", "the CFN Loop at scale: product owners and validators coordinating via Redis",
     bc_cli_demo},
    {"ring", "runtime demo without Redis: many actors passing tokens in a ring", bc_cli_ring},
    {"signal", "send one signed signal to a coordinator, optionally wait for its ACK",
     bc_cli_signal},
    {"host", "host N coordinators in this process until SIGINT/SIGTERM", bc_cli_host},
    {"verify-setup", "check Redis, the shared secret, notifications and the clock",
     bc_cli_verify_setup},
    {"status", "list coordinators: heartbeat age, status, state, iteration, host", bc_cli_status},
    {"reap", "run the reaper alone: detect dead coordinators, replace them, move their work",
     bc_cli_reap},
    {"chaos", "chaos tests: kill host processes or restart Redis, measure recovery", bc_cli_chaos},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: blockcoord <command> [options]\n"
               "       blockcoord <command> --help\n"
               "       blockcoord --version\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nenvironment: BC_WORKERS (worker threads), BC_WARM_US (CPU warmers; 0 = off),\n"
               "BC_LOG_LEVEL, BC_LOG_FORMAT; README.md lists the rest\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("blockcoord %s\n", BC_VERSION_STRING);
        return 0;
    }
    if (bc_log_init_from_env() != 0)
        return 2;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "blockcoord: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
