/* Running one case of a unit-test binary: `test_store PATTERN` or `QV_TEST_FILTER=PATTERN test_store` runs only the
 * cases whose names match the glob PATTERN (cmocka's test filter; `*` and `?`). tools/test.sh uses the variable to run
 * only test_embed's concurrent callers under ThreadSanitizer (the instrumented golden passes take minutes there).
 * Header-only; include after cmocka.h and call qv_case_filter(argc, argv) first thing in main. */
#ifndef QV_CASE_H
#define QV_CASE_H

#include <stdlib.h>

static inline void qv_case_filter(int argc, char **argv)
{
    const char *p = argc > 1 ? argv[1] : getenv("QV_TEST_FILTER");
    if (p && *p)
        cmocka_set_test_filter(p);
}

#endif
