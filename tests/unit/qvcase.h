/* Running one case of a unit-test binary: `test_store PATTERN` or `QV_TEST=PATTERN test_store` runs only the cases
 * whose names match the glob PATTERN (cmocka's test filter; `*` and `?`). Header-only; include after cmocka.h and call
 * qv_case_filter(argc, argv) first thing in main. */
#ifndef QV_CASE_H
#define QV_CASE_H

#include <stdlib.h>

static inline void qv_case_filter(int argc, char **argv)
{
    const char *p = argc > 1 ? argv[1] : getenv("QV_TEST");
    if (p && *p)
        cmocka_set_test_filter(p);
}

#endif
