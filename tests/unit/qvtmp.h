/* Temporary directories for the unit tests that open real stores (header-only; include it after cmocka.h, in a file
 * that defines _GNU_SOURCE before its first include, for mkdtemp and nftw). */
#ifndef QV_TMP_H
#define QV_TMP_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

static int qvtmp_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* A new directory $TMPDIR/qv-<what>-XXXXXX (default /tmp); free with remove_tmpdir. */
static inline char *make_tmpdir(const char *what)
{
    const char *base = getenv("TMPDIR");
    char *t = malloc(4096);
    if (!t)
        abort(); /* fail_msg is not known to the compiler not to return */
    snprintf(t, 4096, "%s/qv-%s-XXXXXX", base && *base ? base : "/tmp", what);
    if (!mkdtemp(t))
        fail_msg("mkdtemp %s failed", t);
    return t;
}

/* Removes dir and everything under it, and frees the string. */
static inline void remove_tmpdir(char *dir)
{
    nftw(dir, qvtmp_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

#endif
