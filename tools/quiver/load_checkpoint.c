/* Checkpoints of `quiver load`.
 *
 * Format: a text file, one "key value" per line, '\n'-terminated, keys in this order:
 *     quiver-checkpoint 1          magic and format version
 *     collection NAME
 *     format fvecs|bvecs|npy|jsonl|csv|tsv
 *     input_size BYTES             size and mtime of the input when the load started: a changed input is refused
 *     input_mtime_ns NS
 *     offset BYTES                 where the first record not yet acknowledged starts
 *     row N                        its record number (the default id of that record)
 *     line N                       lines before it (text formats; 0 for binary ones)
 *     loaded N                     rows acknowledged over all runs (informational)
 *     skipped N                    bad records skipped over all runs (informational)
 *     input PATH                   the rest of the line; informational (last, so that a path may hold spaces)
 *     end                          written last: a file without it is incomplete and refused
 *
 * Writes are atomic: the text goes to PATH.tmp, which is fsynced and renamed over PATH, and the directory is fsynced so
 * the rename itself survives a power loss. A reader therefore sees either the previous checkpoint or the new one. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/quiver/load.h"

#define CKPT_MAGIC "quiver-checkpoint 1"

int qv_ckpt_write(const char *path, const qv_ckpt_t *c, char *msg, size_t msglen)
{
    char text[8192];
    int n = snprintf(text, sizeof text,
                     CKPT_MAGIC "\ncollection %s\nformat %s\ninput_size %" PRIu64 "\ninput_mtime_ns %" PRId64
                                "\noffset %" PRIu64 "\nrow %" PRIu64 "\nline %" PRIu64 "\nloaded %" PRIu64
                                "\nskipped %" PRIu64 "\ninput %s\nend\n",
                     c->collection, c->format, c->input_size, c->input_mtime_ns, c->pos.offset, c->pos.row,
                     c->pos.line, c->loaded, c->skipped, c->input);
    if (n < 0 || (size_t)n >= sizeof text) {
        snprintf(msg, msglen, "checkpoint text too long");
        return -ENAMETOOLONG;
    }
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        snprintf(msg, msglen, "checkpoint path too long");
        return -ENAMETOOLONG;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        goto fail;
    size_t done = 0;
    while (done < (size_t)n) {
        ssize_t w = write(fd, text + done, (size_t)n - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            errno = e;
            goto fail;
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        goto fail;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0)
        goto fail;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); /* best effort: some file systems refuse fsync on directories */
        close(dfd);
    }
    return 0;
fail:;
    int e = errno;
    snprintf(msg, msglen, "cannot write checkpoint %s: %s", path, strerror(e));
    unlink(tmp);
    return -e;
}

static int get_u64(const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || *v == '-')
        return -1;
    *out = x;
    return 0;
}

int qv_ckpt_read(const char *path, qv_ckpt_t *c, char *msg, size_t msglen)
{
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        if (e != ENOENT)
            snprintf(msg, msglen, "cannot read checkpoint %s: %s", path, strerror(e));
        return -e;
    }
    char line[4400];
    int seen = 0, lineno = 0;
    bool ended = false, bad = false;
    enum { K_COLL = 1, K_FMT = 2, K_SIZE = 4, K_MTIME = 8, K_OFF = 16, K_ROW = 32, K_LINE = 64, K_ALL = 127 };
    while (!bad && fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strlen(line);
        if (n == 0 || line[n - 1] != '\n') {
            bad = true;
            break;
        }
        line[--n] = '\0';
        if (lineno == 1) {
            bad = strcmp(line, CKPT_MAGIC) != 0;
            continue;
        }
        if (strcmp(line, "end") == 0) {
            ended = true;
            break;
        }
        char *sp = strchr(line, ' ');
        if (!sp) {
            bad = true;
            break;
        }
        *sp = '\0';
        const char *k = line, *v = sp + 1;
        uint64_t u = 0;
        if (strcmp(k, "collection") == 0) {
            snprintf(c->collection, sizeof c->collection, "%s", v);
            seen |= K_COLL;
        } else if (strcmp(k, "format") == 0) {
            snprintf(c->format, sizeof c->format, "%s", v);
            seen |= K_FMT;
        } else if (strcmp(k, "input") == 0) {
            snprintf(c->input, sizeof c->input, "%s", v);
        } else if (strcmp(k, "input_mtime_ns") == 0) {
            char *end;
            errno = 0;
            c->input_mtime_ns = strtoll(v, &end, 10);
            bad = errno || *end || end == v;
            seen |= K_MTIME;
        } else {
            if (get_u64(v, &u) != 0) {
                bad = true;
                break;
            }
            if (strcmp(k, "input_size") == 0)
                c->input_size = u, seen |= K_SIZE;
            else if (strcmp(k, "offset") == 0)
                c->pos.offset = u, seen |= K_OFF;
            else if (strcmp(k, "row") == 0)
                c->pos.row = u, seen |= K_ROW;
            else if (strcmp(k, "line") == 0)
                c->pos.line = u, seen |= K_LINE;
            else if (strcmp(k, "loaded") == 0)
                c->loaded = u;
            else if (strcmp(k, "skipped") == 0)
                c->skipped = u;
            /* unknown keys: a later minor version may add some; ignore */
        }
    }
    fclose(f);
    if (bad || !ended || seen != K_ALL) {
        snprintf(msg, msglen, "checkpoint %s is incomplete or corrupt (line %d); delete it to start over", path,
                 lineno);
        return -EINVAL;
    }
    return 0;
}
