/* error.c - error texts and clocks: the small shared helpers of the runtime.
 * Errors are negative errno values everywhere; bc_strerror names them in a
 * thread-safe way (strerrordesc_np returns static strings).
 */
#include "blockcoord.h"

#include <errno.h>
#include <string.h>
#include <time.h>

const char *bc_strerror(int err)
{
    if (err == 0)
        return "success";
    if (err < 0)
        err = -err;
    const char *s = strerrordesc_np(err);
    return s ? s : "unknown error";
}

uint64_t bc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t bc_now_ms(void)
{
    return bc_now_ns() / 1000000ull;
}
