/* cmd_chaos.c - `blockcoord chaos <test>`: chaos tests of a whole deployment, run from the
 * outside. Each test starts what it breaks (host processes, a Redis server), breaks it on a
 * schedule, measures from Redis what a user would see, and writes DIR/results.json and
 * DIR/timeline.html. Exit status 0 when every target held, 1 when one did not, 2 on bad usage.
 *
 * The tests themselves are in chaos_kill.c (process-kill) and chaos_restart.c (redis-restart).
 */
#include "chaos.h"

#include <stdlib.h>
#include <string.h>

static void chaos_usage(FILE *f)
{
    fputs("usage: blockcoord chaos <test> [options]   (blockcoord chaos <test> --help)\n"
          "tests:\n"
          "  process-kill   SIGKILL random host processes while their coordinators work items;\n"
          "                 measures uptime, recovery time, lost and duplicated work\n"
          "  redis-restart  SIGKILL and restart a Redis server of its own while coordinators\n"
          "                 signal each other in a ring; checks no signal is lost or doubled\n"
          "                 and heartbeats resume\n"
          "Both write DIR/results.json, DIR/timeline.html and DIR/events.log (--out DIR).\n"
          "exit status: 0 passed, 1 failed, 2 usage error\n",
          f);
}

int bc_cli_chaos(int argc, char **argv)
{
    if (argc < 2) {
        chaos_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        chaos_usage(stdout);
        return 0;
    }
    /* The hub's connection chatter would drown the progress lines; BC_LOG_LEVEL still wins. */
    if (getenv("BC_LOG_LEVEL") == NULL || *getenv("BC_LOG_LEVEL") == '\0')
        bc_log_set_level(BC_LOG_WARN);
    if (strcmp(argv[1], "process-kill") == 0)
        return bc_chaos_process_kill(argc - 1, argv + 1);
    if (strcmp(argv[1], "redis-restart") == 0)
        return bc_chaos_redis_restart(argc - 1, argv + 1);
    fprintf(stderr, "blockcoord chaos: unknown test \"%s\"\n\n", argv[1]);
    chaos_usage(stderr);
    return 2;
}
