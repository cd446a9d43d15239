/* RocksDB log reader; the format and the purpose are in rocks_log.h. */
#include "storage/rocks_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK 32768
#define HDR 7
#define HDR_RECYCLABLE 11
#define CRC_MASK_DELTA 0xa282ead8u

enum { T_ZERO = 0, T_FULL = 1, T_FIRST = 2, T_MIDDLE = 3, T_LAST = 4, T_RFULL = 5, T_RLAST = 8 };

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1; /* Castagnoli, reflected */
        crc_table[i] = c;
    }
}

static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static uint32_t unmask(uint32_t m)
{
    uint32_t rot = m - CRC_MASK_DELTA;
    return (rot >> 17) | (rot << 15);
}

static uint32_t le32(const uint8_t *p) { return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

/* One physical record at data[off]: returns its total size, or 0 if it is not intact. */
static size_t physical(const uint8_t *data, size_t len, size_t off, int *type, const uint8_t **payload, size_t *plen)
{
    size_t in_block = BLOCK - off % BLOCK;
    if (in_block < HDR || len - off < HDR)
        return 0;
    int t = data[off + 6];
    size_t h = t >= T_RFULL && t <= T_RLAST ? HDR_RECYCLABLE : HDR;
    size_t n = data[off + 4] | (size_t)data[off + 5] << 8;
    if (h > in_block || n > in_block - h || n > len - off - h)
        return 0;
    if (t == T_ZERO && n == 0)
        return 0;
    /* the checksum covers the type byte, the recyclable log number, and the payload */
    uint32_t crc = crc32c(0, data + off + 6, 1 + (h - HDR) + n);
    if (crc != unmask(le32(data + off)))
        return 0;
    *type = t >= T_RFULL && t <= T_RLAST ? t - 4 : t;
    *payload = data + off + h;
    *plen = n;
    return h + n;
}

/* Scans a whole file, resynchronising byte by byte after damage (a record is intact only if its checksum holds). Intact batches before the first damage
 * count as good (rep->batches, rep->last_good_seq) unless all_lost; those after it, or all when all_lost, count in
 * *lost_batches / *lost_ops. Returns the offset of the first damage, or len if none. */
static size_t scan(const uint8_t *data, size_t len, bool all_lost, qv_rocks_log_report_t *rep, uint64_t *lost_batches,
                   uint64_t *lost_ops)
{
    size_t off = 0;
    size_t damage = len;
    bool in_frag = false;
    uint8_t head[12];
    size_t head_n = 0;
    while (off < len) {
        size_t in_block = BLOCK - off % BLOCK;
        if (in_block < HDR) { /* trailer padding */
            off += in_block;
            continue;
        }
        int t;
        const uint8_t *p;
        size_t n;
        size_t sz = physical(data, len, off, &t, &p, &n);
        if (!sz) {
            bool zeros = true; /* preallocated or padded space: the rest of the block is zeros */
            for (size_t i = off; i < off + in_block && i < len && zeros; i++)
                zeros = data[i] == 0;
            if (zeros) {
                off += in_block < len - off ? in_block : len - off;
                continue;
            }
            if (damage == len)
                damage = off;
            in_frag = false;
            off++; /* resynchronise: the next offset whose header and checksum hold */
            continue;
        }
        off += sz;
        bool complete = false;
        if (t == T_FULL) {
            in_frag = false;
            head_n = 0;
            complete = true;
        } else if (t == T_FIRST) {
            in_frag = true;
            head_n = 0;
        } else if ((t == T_MIDDLE || t == T_LAST) && in_frag) {
            complete = t == T_LAST;
        } else {
            in_frag = false; /* an orphan fragment after a resync, or a record type this reader skips */
            continue;
        }
        for (size_t i = 0; i < n && head_n < sizeof head; i++)
            head[head_n++] = p[i];
        if (!complete)
            continue;
        in_frag = false;
        if (head_n < 12) {
            head_n = 0;
            continue;
        }
        if (damage == len && !all_lost) {
            rep->batches++;
            rep->last_good_seq = le64(head);
        } else {
            (*lost_batches)++;
            *lost_ops += le32(head + 8);
        }
        head_n = 0;
    }
    return damage;
}

static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

void qv_rocks_log_scan(const char *name, const uint8_t *data, size_t len, qv_rocks_log_report_t *rep)
{
    pthread_once(&crc_once, crc_init);
    uint64_t batches = 0, ops = 0;
    if (rep->file[0]) { /* damaged in an earlier log: every intact batch of this one is lost too */
        scan(data, len, true, rep, &batches, &ops);
        rep->batches_after += batches;
        rep->ops_after += ops;
        return;
    }
    size_t damage = scan(data, len, false, rep, &batches, &ops);
    if (damage < len) {
        snprintf(rep->file, sizeof rep->file, "%s", name);
        rep->offset = damage;
        rep->batches_after = batches;
        rep->ops_after = ops;
    }
}

static int by_number(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    size_t lx = strlen(x), ly = strlen(y); /* digits only: the shorter name is the smaller number */
    return lx != ly ? (lx > ly) - (lx < ly) : strcmp(x, y);
}

typedef int (*log_fn)(void *ctx, const char *name, const char *path, qv_err_t *err);

/* Calls fn on every NNNNNN.log file of dbdir in ascending number order, stopping at the first error. */
static int each_log(const char *dbdir, log_fn fn, void *ctx, qv_err_t *err)
{
    DIR *d = opendir(dbdir);
    if (!d)
        return qv_err_set(err, QV_EIO, "cannot read %s: %s", dbdir, strerror(errno));
    char **v = NULL;
    size_t n = 0;
    int rc = QV_OK;
    struct dirent *e;
    while (rc == QV_OK && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".log") != 0 || strspn(e->d_name, "0123456789") != l - 4)
            continue;
        char **nv = realloc(v, (n + 1) * sizeof *v);
        if (nv)
            v = nv;
        if (!nv || !(v[n] = strdup(e->d_name)))
            rc = qv_err_set(err, QV_ENOMEM, "out of memory");
        else
            n++;
    }
    closedir(d);
    if (n)
        qsort(v, n, sizeof *v, by_number);
    for (size_t i = 0; i < n && rc == QV_OK; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dbdir, v[i]);
        rc = fn(ctx, v[i], path, err);
    }
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
    return rc;
}

static int scan_one(void *ctx, const char *name, const char *path, qv_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    int rc = QV_OK;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        rc = qv_err_set(err, QV_EIO, "cannot read %s: %s", path, strerror(errno));
    } else if (sb.st_size > 0) {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            rc = qv_err_set(err, QV_EIO, "cannot map %s: %s", path, strerror(errno));
        } else {
            qv_rocks_log_scan(name, m, (size_t)sb.st_size, ctx);
            munmap(m, (size_t)sb.st_size);
        }
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

int qv_rocks_log_scan_dir(const char *dbdir, qv_rocks_log_report_t *rep, qv_err_t *err)
{
    memset(rep, 0, sizeof *rep);
    return each_log(dbdir, scan_one, rep, err);
}

static int copy_one(void *ctx, const char *name, const char *path, qv_err_t *err)
{
    char to[4096];
    snprintf(to, sizeof to, "%s/%s", (const char *)ctx, name);
    FILE *in = fopen(path, "rb"), *out = in ? fopen(to, "wb") : NULL;
    bool ok = in && out;
    char buf[65536];
    size_t k;
    while (ok && (k = fread(buf, 1, sizeof buf, in)) > 0)
        ok = fwrite(buf, 1, k, out) == k;
    ok = ok && !ferror(in) && fflush(out) == 0 && fsync(fileno(out)) == 0;
    int rc = ok ? QV_OK : qv_err_set(err, QV_EIO, "cannot copy %s to %s: %s", path, to, strerror(errno));
    if (in)
        fclose(in);
    if (out && fclose(out) != 0 && rc == QV_OK)
        rc = qv_err_set(err, QV_EIO, "cannot copy %s to %s: %s", path, to, strerror(errno));
    return rc;
}

int qv_rocks_log_keep(const char *dbdir, const char *dest, qv_err_t *err)
{
    if (mkdir(dest, 0755) != 0 && errno != EEXIST)
        return qv_err_set(err, QV_EIO, "cannot create %s: %s", dest, strerror(errno));
    return each_log(dbdir, copy_one, (void *)dest, err);
}
