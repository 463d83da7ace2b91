/* cli.h - shared pieces of the blockcoord command-line program. */
#ifndef BC_CLI_H
#define BC_CLI_H

#include "blockcoord.h"

#include <stdint.h>

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} bc_cli_cmd_t;

/* Parse a non-negative integer option value in [min, max]. On error prints
 * "blockcoord <cmd>: --<opt> "<value>": expected <min>..<max>" and returns
 * -EINVAL. */
int bc_cli_parse_u64(const char *cmd, const char *opt, const char *val, uint64_t min, uint64_t max,
                     uint64_t *out);

/* Subcommands. Exit status: 0 success, 1 failure, 2 usage error. */
int bc_cli_demo(int argc, char **argv);

#endif
