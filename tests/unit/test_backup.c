/* Backups (storage/backup*.c) of real stores in directories under mkdtemp.
 *
 * - Round trip: a store with sealed segments, a growing one and deletes is backed up twice with writes between;
 *   each backup restores into a new data directory whose store holds exactly the state at its backup (every id's
 *   vector bytes, deleted ids absent, the live count). The second backup copies less than it references (SST files
 *   are shared). list gives both, oldest first, and verify passes both.
 * - Refusals change nothing: restore into a non-empty directory (QV_EEXIST, its file untouched), of an unknown id
 *   (QV_ENOTFOUND, the target not created), verify of an unknown id (QV_ENOTFOUND), list of a missing directory (none).
 * - A checkpoint (qv_store_checkpoint) taken between the writes opens as the store at that instant; a second one
 *   into the same directory is QV_EEXIST.
 * - Damage: one flipped byte in a backup's largest file makes verify fail with QV_ECORRUPT naming the file, and
 *   restore fail the same way leaving no target behind; the other backup still verifies and restores. */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "qvcase.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "index/distance.h"
#include "qvtest.h"
#include "qvtmp.h"
#include "storage/backup.h"
#include "storage/store.h"

#define DIM 4
#define N1 1200 /* seal_rows 500: two sealed segments and a growing one */
#define N2 300

static char *path2(const char *a, const char *b)
{
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/%s", a, b);
    return p;
}

static void vec_of(uint32_t i, uint32_t gen, float *v)
{
    for (int d = 0; d < DIM; d++)
        v[d] = (float)(i * 7 + d) + 0.25f * (float)gen;
}

static void upsert_range(qv_store_t *st, qv_coll_t *c, uint32_t from, uint32_t to, uint32_t gen)
{
    for (uint32_t i = from; i < to; i++) {
        char id[32];
        float v[DIM];
        int len = snprintf(id, sizeof id, "p%u", i);
        vec_of(i, gen, v);
        qv_point_t pt = {.id = {id, (uint32_t)len}, .vector = v, .nvector = DIM};
        uint64_t seq;
        qv_err_t err;
        assert_int_equal(qv_store_upsert(st, c, &pt, 1, &seq, &err), QV_OK);
    }
}

static void delete_ids(qv_store_t *st, qv_coll_t *c, uint32_t from, uint32_t to)
{
    for (uint32_t i = from; i < to; i++) {
        char id[32];
        int len = snprintf(id, sizeof id, "p%u", i);
        qv_str_t s = {id, (uint32_t)len};
        uint32_t deleted;
        qv_err_t err;
        assert_int_equal(qv_store_delete(st, c, &s, 1, &deleted, &err), QV_OK);
        assert_int_equal(deleted, 1);
    }
}

static qv_store_t *open_store(const char *data)
{
    qv_store_opts_t o = {.path = data, .seal_rows = 500, .index_threads = 1, .index_min_rows = 100000};
    qv_store_t *st;
    qv_err_t err;
    int rc = qv_store_open(&o, &st, &err);
    if (rc)
        fail_msg("open %s: %s", data, err.msg);
    return st;
}

/* The store at data holds ids [0, n) except [dfrom, dto) deleted, with generation 1's vectors below split and from
 * N1 on, generation 0's between. */
static void check_state(const char *data, uint32_t n, uint32_t split, uint32_t dfrom, uint32_t dto)
{
    qv_store_t *st = open_store(data);
    qv_coll_t *c;
    qv_err_t err;
    assert_int_equal(qv_store_get(st, "b", 1, &c, &err), QV_OK);
    qv_coll_rdlock(c);
    assert_int_equal(c->live, n - (dto - dfrom));
    for (uint32_t i = 0; i < n; i++) {
        char id[32];
        int len = snprintf(id, sizeof id, "p%u", i);
        qv_idslot_t *s = qv_idmap_get(&c->ids, (qv_str_t){id, (uint32_t)len});
        if (i >= dfrom && i < dto) {
            assert_null(s);
            continue;
        }
        assert_non_null(s);
        float v[DIM];
        vec_of(i, i < split || i >= N1 ? 1 : 0, v);
        assert_memory_equal(qv_seg_vector(s->seg, s->row), v, sizeof v);
    }
    qv_coll_unlock(c);
    qv_coll_release(c);
    qv_store_close(st);
}

/* The largest file of backup id's private directory (its log, which holds the latest writes). */
static char largest[4096];
static off_t largest_size;
static int largest_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag == FTW_F && sb->st_size > largest_size) {
        largest_size = sb->st_size;
        snprintf(largest, sizeof largest, "%s", path);
    }
    return 0;
}

static void flip_byte(const char *path)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    assert_true(n > 0);
    fseek(f, n / 2, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, n / 2, SEEK_SET);
    fputc(ch ^ 0xff, f);
    fclose(f);
}

static void test_round_trip_refusals_and_damage(void **state)
{
    (void)state;
    char *tmp = make_tmpdir("backup");
    char *data = path2(tmp, "data"), *bdir = path2(tmp, "backups");
    qv_err_t err;
    qv_store_t *st = open_store(data);
    qv_schema_t *s = test_schema_all("b", 0, DIM, QV_METRIC_L2);
    assert_int_equal(qv_store_create(st, s, &err), QV_OK);
    qv_coll_t *c;
    assert_int_equal(qv_store_get(st, "b", 1, &c, &err), QV_OK);
    upsert_range(st, c, 0, N1, 0);
    delete_ids(st, c, 100, 150);

    /* a checkpoint opens as the store at that instant */
    char *ckpt = path2(tmp, "ckpt");
    assert_int_equal(qv_store_checkpoint(st, ckpt, &err), QV_OK);
    assert_int_equal(qv_store_checkpoint(st, ckpt, &err), QV_EEXIST);

    qv_backup_info_t b1, b2;
    uint64_t copied1, copied2;
    assert_int_equal(qv_store_backup(st, bdir, &b1, &copied1, &err), QV_OK);
    assert_int_equal(b1.id, 1);
    assert_true(b1.files > 0 && b1.size_bytes > 0 && copied1 >= b1.size_bytes);

    upsert_range(st, c, 0, 200, 1); /* replaces: generation 1 for [0, 200), deleted ones come back */
    upsert_range(st, c, N1, N1 + N2, 1);
    uint32_t sealed;
    assert_int_equal(qv_store_flush(st, NULL, &sealed, &err), QV_OK);
    assert_int_equal(qv_store_backup(st, bdir, &b2, &copied2, &err), QV_OK);
    assert_int_equal(b2.id, 2);
    print_message("backup 1: %llu bytes copied of %llu; backup 2: %llu copied of %llu\n",
                  (unsigned long long)copied1, (unsigned long long)b1.size_bytes, (unsigned long long)copied2,
                  (unsigned long long)b2.size_bytes);
    assert_true(copied2 < b2.size_bytes); /* the first backup's SST files are shared, not copied again */
    qv_coll_release(c);
    qv_store_close(st);

    check_state(ckpt, N1, 0, 100, 150); /* taken before the second batch of writes */
    qv_backup_info_t *list;
    size_t n;
    assert_int_equal(qv_backup_list(bdir, &list, &n, &err), QV_OK);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].id, 1);
    assert_int_equal(list[1].id, 2);
    assert_int_equal(list[1].size_bytes, b2.size_bytes);
    free(list);
    uint64_t bytes;
    uint32_t files;
    assert_int_equal(qv_backup_verify(bdir, 1, &bytes, &files, &err), QV_OK);
    assert_int_equal(bytes, b1.size_bytes);
    assert_int_equal(files, b1.files);
    assert_int_equal(qv_backup_verify(bdir, 2, &bytes, &files, &err), QV_OK);

    /* each backup restores to the state at its backup */
    char *r1 = path2(tmp, "r1"), *r2 = path2(tmp, "r2");
    uint32_t got;
    assert_int_equal(qv_backup_restore(bdir, 1, r1, NULL, NULL, &got, &bytes, &err), QV_OK);
    assert_int_equal(got, 1);
    check_state(r1, N1, 0, 100, 150);
    assert_int_equal(qv_backup_restore(bdir, 0, r2, NULL, NULL, &got, &bytes, &err), QV_OK);
    assert_int_equal(got, 2);
    check_state(r2, N1 + N2, 200, 0, 0); /* the deleted ones came back with generation 1 */

    /* refusals change nothing */
    char *marker = path2(r1, "db/CURRENT");
    struct stat before, after;
    assert_int_equal(stat(marker, &before), 0);
    assert_int_equal(qv_backup_restore(bdir, 1, r1, NULL, NULL, NULL, NULL, &err), QV_EEXIST);
    assert_int_equal(stat(marker, &after), 0);
    assert_int_equal(before.st_mtime, after.st_mtime);
    char *r4 = path2(tmp, "r4");
    assert_int_equal(qv_backup_restore(bdir, 9, r4, NULL, NULL, NULL, NULL, &err), QV_ENOTFOUND);
    assert_int_not_equal(stat(r4, &after), 0);
    assert_int_equal(qv_backup_verify(bdir, 9, &bytes, &files, &err), QV_ENOTFOUND);
    char *none = path2(tmp, "none");
    assert_int_equal(qv_backup_list(none, &list, &n, &err), QV_OK);
    assert_int_equal(n, 0);
    free(list);

    /* one flipped byte in backup 2's largest own file */
    char *priv = path2(bdir, "private/2");
    largest_size = 0;
    nftw(priv, largest_cb, 16, FTW_PHYS);
    assert_true(largest_size > 0);
    flip_byte(largest);
    const char *base = strrchr(largest, '/') + 1;
    assert_int_equal(qv_backup_verify(bdir, 2, &bytes, &files, &err), QV_ECORRUPT);
    print_message("verify: %s\n", err.msg);
    assert_non_null(strstr(err.msg, base));
    char *r3 = path2(tmp, "r3");
    assert_int_equal(qv_backup_restore(bdir, 2, r3, NULL, NULL, NULL, NULL, &err), QV_ECORRUPT);
    print_message("restore: %s\n", err.msg);
    assert_non_null(strstr(err.msg, base));
    assert_int_not_equal(stat(r3, &after), 0); /* nothing left behind */
    /* backup 1 shares no damaged file */
    assert_int_equal(qv_backup_verify(bdir, 1, &bytes, &files, &err), QV_OK);
    assert_int_equal(qv_backup_restore(bdir, 1, r3, NULL, NULL, NULL, NULL, &err), QV_OK);
    check_state(r3, N1, 0, 100, 150);

    free(priv), free(none), free(r4), free(marker), free(r1), free(r2), free(r3), free(ckpt);
    free(data), free(bdir);
    remove_tmpdir(tmp);
}

int main(int argc, char **argv)
{
    qv_case_filter(argc, argv);
    qv_dist_init(QV_SIMD_AUTO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_refusals_and_damage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
