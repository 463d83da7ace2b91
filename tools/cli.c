/* cli.c - pieces shared by the blockcoord subcommands: option parsing and starting a runtime
 * with a hub, so every command reports the same errors the same way.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int bc_cli_parse_u64(const char *cmd, const char *opt, const char *val, uint64_t min, uint64_t max,
                     uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(val, &end, 10);
    if (errno || end == val || *end || val[0] == '-' || v < min || v > max) {
        fprintf(stderr, "blockcoord %s: --%s \"%s\": expected an integer in %llu..%llu\n", cmd, opt,
                val, (unsigned long long)min, (unsigned long long)max);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

int bc_cli_start_hub(const char *prefix, const bc_runtime_opts_t *ro, const bc_hub_opts_t *ho,
                     bc_runtime_t **rt, bc_hub_t **hub)
{
    int rc = bc_runtime_create(ro, rt);
    if (rc != 0) {
        fprintf(stderr, "%scannot start the runtime: %s\n", prefix, bc_strerror(rc));
        return 1;
    }
    char err[512];
    rc = bc_hub_create(*rt, ho, hub, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "%s%s\n", prefix, err);
        bc_runtime_destroy(*rt);
        *rt = NULL;
        return 2;
    }
    return 0;
}
