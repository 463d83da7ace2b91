/* harness.h - helpers shared by the cmocka tests (tests/harness.c). */
#ifndef BC_TEST_HARNESS_H
#define BC_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Scale factor for heavy tests: 1 normally; smaller under sanitizers
 * (BC_TEST_SCALE overrides, e.g. BC_TEST_SCALE=0.1). */
double bc_test_scale(void);
/* n scaled by bc_test_scale(), at least `min`. */
uint64_t bc_test_scaled(uint64_t n, uint64_t min);
/* Sleep for ms milliseconds. */
void bc_test_sleep_ms(unsigned ms);
/* A runtime with `workers` worker threads (0: one per CPU); fails the test
 * if it cannot be created. Declared with an opaque type so that tests that
 * do not use the runtime need not include blockcoord.h. */
struct bc_runtime_s *bc_test_runtime(unsigned workers);
/* 1 when built with ThreadSanitizer. */
int bc_test_tsan(void);

#endif
