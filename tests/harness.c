/* harness.c - helpers shared by the cmocka tests. */
#include "harness.h"

#include "blockcoord.h"

#include <stdlib.h>
#include <time.h>

int bc_test_tsan(void)
{
#if defined(BC_TSAN)
    return 1;
#else
    return 0;
#endif
}

double bc_test_scale(void)
{
    const char *s = getenv("BC_TEST_SCALE");
    if (s && *s) {
        double v = strtod(s, NULL);
        if (v > 0)
            return v;
    }
#if defined(BC_TSAN)
    return 0.1;
#elif defined(__SANITIZE_ADDRESS__)
    return 0.25;
#else
    return 1.0;
#endif
}

uint64_t bc_test_scaled(uint64_t n, uint64_t min)
{
    uint64_t v = (uint64_t)((double)n * bc_test_scale());
    return v < min ? min : v;
}

void bc_test_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

bc_runtime_t *bc_test_runtime(unsigned workers)
{
    bc_runtime_t *rt = NULL;
    bc_runtime_opts_t o;
    bc_runtime_opts_init(&o);
    o.workers = workers;
    assert_int_equal(bc_runtime_create(&o, &rt), 0);
    return rt;
}
