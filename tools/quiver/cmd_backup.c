/* quiver backup create|list|verify (Admin.Backup, ListBackups, VerifyBackup) and quiver restore (offline, on
 * storage/backup.h: it reads a server's backup directory and writes a data directory; no server is involved). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "storage/backup.h"
#include "tools/quiver/cli.h"

/* Long calls: Backup and VerifyBackup copy or read the whole store. Unless --timeout says otherwise they may take
 * an hour. */
#define LONG_CALL_TIMEOUT 3600.0

static json_t *info_json(const Quiver__V1__BackupInfo *b)
{
    json_t *j = json_object();
    json_object_set_new(j, "id", json_integer(b->id));
    json_object_set_new(j, "created_unix", json_integer(b->created_unix));
    json_object_set_new(j, "size_bytes", json_integer((json_int_t)b->size_bytes));
    json_object_set_new(j, "files", json_integer(b->files));
    json_object_set_new(j, "directory", json_string(b->directory));
    if (b->server && *b->server)
        json_object_set_new(j, "server", json_string(b->server));
    return j;
}

static void when(int64_t unix_s, char out[32])
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- an elapsed-time line on a terminal while a long call runs ---- */
typedef struct {
    const char *what;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    pthread_t th;
    bool on;
} ticker_t;

static void *ticker_main(void *arg)
{
    ticker_t *t = arg;
    int64_t t0 = qv_mono_ns();
    pthread_mutex_lock(&t->mu);
    while (!t->done) {
        struct timespec ts = qv_mono_ts(qv_mono_ns() + 250 * 1000000LL);
        pthread_cond_timedwait(&t->cv, &t->mu, &ts);
        if (!t->done)
            fprintf(stderr, "\r%s ... %.1f s\033[K", t->what, (double)(qv_mono_ns() - t0) / 1e9);
    }
    fputs("\r\033[K", stderr);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static void ticker_start(ticker_t *t, const qv_cli_t *cli, const char *what)
{
    memset(t, 0, sizeof *t);
    t->what = what;
    if (cli->json || !isatty(STDERR_FILENO))
        return;
    pthread_mutex_init(&t->mu, NULL);
    qv_cond_init_mono(&t->cv);
    t->on = pthread_create(&t->th, NULL, ticker_main, t) == 0;
}

static void ticker_stop(ticker_t *t)
{
    if (!t->on)
        return;
    pthread_mutex_lock(&t->mu);
    t->done = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->th, NULL);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
}

/* ---- backup ---- */
static const char backup_help[] =
    "usage: quiver backup create | list | verify ID [--server NAME]\n"
    "Backups of the server's whole store (every collection, its segments and indexes) in the directory its\n"
    "--backup-dir gives it. A backup is a point-in-time copy taken while writes go on: every write acknowledged\n"
    "before `create` began is in it, and later ones only as a prefix of their acknowledgement order. Backups share\n"
    "unchanged files, so each copies only what is new. `quiver restore` turns one into a data directory.\n"
    "  create      take a backup now (Admin.Backup); waits until it is complete and durable\n"
    "  list        the complete backups, oldest first (one interrupted by a crash is never listed)\n"
    "  verify ID   read every byte of backup ID against the checksums recorded when it was taken; exit status 1\n"
    "              and the damaged file named when one does not match\n"
    "Through a coordinator: create takes a backup on every shard server at once under one cluster backup id\n"
    "(recorded in etcd with the collection metadata in etcd mode); list shows each shard server's backups (SERVER)\n"
    "and the cluster backups; verify needs --server NAME, the shard server whose backup ID is.\n"
    "create and verify wait up to an hour unless --timeout says otherwise.\n"
    "--json: create {\"id\", \"created_unix\", \"size_bytes\", \"files\", \"copied_bytes\", \"directory\", \"took_ms\"};\n"
    "        list {\"backups\": [{\"id\", \"created_unix\", \"size_bytes\", \"files\", \"directory\"}]};\n"
    "        through a coordinator: create {\"cluster_backup_id\", \"shards\": [{..., \"server\"}], \"took_ms\"}, list\n"
    "        adds \"server\" to each backup and \"cluster_backups\": [{\"id\", \"created_unix\", \"shards\",\n"
    "        \"collections\"}];\n"
    "        verify {\"id\", \"bytes_checked\", \"files\"}\n\n";

static int backup_create(qv_cli_t *cli)
{
    Quiver__V1__BackupRequest req = QUIVER__V1__BACKUP_REQUEST__INIT;
    Quiver__V1__BackupResponse *r;
    ticker_t t;
    ticker_start(&t, cli, "backing up");
    int rc = qv_cli_call(cli, QV_M_ADMIN("Backup"), &req, &quiver__v1__backup_response__descriptor, &r);
    ticker_stop(&t);
    if (rc)
        return QV_EXIT_FAIL;
    const Quiver__V1__BackupInfo *b = r->backup;
    if (!b && r->n_shards) { /* a coordinator: one backup per shard server */
        if (cli->json) {
            json_t *j = json_object(), *a = json_array();
            json_object_set_new(j, "cluster_backup_id", json_string(r->cluster_backup_id));
            for (size_t i = 0; i < r->n_shards; i++) {
                json_t *o = info_json(r->shards[i]);
                json_object_set_new(o, "copied_bytes", json_integer((json_int_t)r->shards[i]->copied_bytes));
                json_array_append_new(a, o);
            }
            json_object_set_new(j, "shards", a);
            json_object_set_new(j, "took_ms", json_integer((json_int_t)r->took_ms));
            qv_json_print(j);
        } else {
            printf("cluster backup %s of %zu shard servers in %.1f s:\n", r->cluster_backup_id, r->n_shards,
                   (double)r->took_ms / 1000.0);
            for (size_t i = 0; i < r->n_shards; i++) {
                char sz[32], cp[32];
                const Quiver__V1__BackupInfo *s = r->shards[i];
                printf("  %s: backup %u in %s, %u files, %s (%s copied)\n", s->server, s->id, s->directory, s->files,
                       qv_human_bytes(s->size_bytes, sz), qv_human_bytes(s->copied_bytes, cp));
            }
        }
        protobuf_c_message_free_unpacked(&r->base, NULL);
        return QV_EXIT_OK;
    }
    if (!b) {
        fprintf(stderr, "quiver backup: the server's answer has no backup\n");
        protobuf_c_message_free_unpacked(&r->base, NULL);
        return QV_EXIT_FAIL;
    }
    if (cli->json) {
        json_t *j = info_json(b);
        json_object_set_new(j, "copied_bytes", json_integer((json_int_t)b->copied_bytes));
        json_object_set_new(j, "took_ms", json_integer((json_int_t)r->took_ms));
        qv_json_print(j);
    } else {
        char sz[32], cp[32];
        printf("backup %u in %s: %u files, %s (%s copied, the rest shared with earlier backups) in %.1f s\n", b->id,
               b->directory, b->files, qv_human_bytes(b->size_bytes, sz), qv_human_bytes(b->copied_bytes, cp),
               (double)r->took_ms / 1000.0);
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return QV_EXIT_OK;
}

static int backup_list(qv_cli_t *cli)
{
    Quiver__V1__ListBackupsRequest req = QUIVER__V1__LIST_BACKUPS_REQUEST__INIT;
    Quiver__V1__ListBackupsResponse *r;
    if (qv_cli_call(cli, QV_M_ADMIN("ListBackups"), &req, &quiver__v1__list_backups_response__descriptor, &r))
        return QV_EXIT_FAIL;
    if (cli->json) {
        json_t *j = json_object(), *a = json_array();
        for (size_t i = 0; i < r->n_backups; i++)
            json_array_append_new(a, info_json(r->backups[i]));
        json_object_set_new(j, "backups", a);
        if (r->n_cluster_backups) {
            json_t *c = json_array();
            for (size_t i = 0; i < r->n_cluster_backups; i++) {
                const Quiver__V1__ClusterBackup *cb = r->cluster_backups[i];
                json_t *o = json_object(), *sh = json_array(), *co = json_array();
                json_object_set_new(o, "id", json_string(cb->id));
                json_object_set_new(o, "created_unix", json_integer(cb->created_unix));
                for (size_t k = 0; k < cb->n_shards; k++)
                    json_array_append_new(sh, json_pack("{s:s, s:i, s:s}", "server", cb->shards[k]->server, "id",
                                                        (json_int_t)cb->shards[k]->id, "directory",
                                                        cb->shards[k]->directory));
                for (size_t k = 0; k < cb->n_collections; k++)
                    json_array_append_new(co, json_string(cb->collections[k]));
                json_object_set_new(o, "shards", sh);
                json_object_set_new(o, "collections", co);
                json_array_append_new(c, o);
            }
            json_object_set_new(j, "cluster_backups", c);
        }
        qv_json_print(j);
    } else if (r->n_backups == 0) {
        printf("no backups\n");
    } else {
        bool servers = r->backups[0]->server && *r->backups[0]->server;
        printf("%s%-6s %-20s %8s %12s  %s\n", servers ? "SERVER                 " : "", "ID", "CREATED (UTC)", "FILES",
               "SIZE", "DIRECTORY");
        for (size_t i = 0; i < r->n_backups; i++) {
            const Quiver__V1__BackupInfo *b = r->backups[i];
            char at[32], sz[32];
            when(b->created_unix, at);
            if (servers)
                printf("%-22s ", b->server);
            printf("%-6u %-20s %8u %12s  %s\n", b->id, at, b->files, qv_human_bytes(b->size_bytes, sz), b->directory);
        }
        for (size_t i = 0; i < r->n_cluster_backups; i++) {
            const Quiver__V1__ClusterBackup *cb = r->cluster_backups[i];
            char at[32];
            when(cb->created_unix, at);
            printf("cluster backup %s at %s:", cb->id, at);
            for (size_t k = 0; k < cb->n_shards; k++)
                printf(" %s#%u", cb->shards[k]->server, cb->shards[k]->id);
            printf(" (%zu collections)\n", cb->n_collections);
        }
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return QV_EXIT_OK;
}

static int backup_verify(qv_cli_t *cli, uint32_t id, const char *server)
{
    Quiver__V1__VerifyBackupRequest req = QUIVER__V1__VERIFY_BACKUP_REQUEST__INIT;
    req.id = id;
    if (server)
        req.server = (char *)server;
    Quiver__V1__VerifyBackupResponse *r;
    ticker_t t;
    ticker_start(&t, cli, "verifying");
    int rc = qv_cli_call(cli, QV_M_ADMIN("VerifyBackup"), &req, &quiver__v1__verify_backup_response__descriptor, &r);
    ticker_stop(&t);
    if (rc)
        return QV_EXIT_FAIL;
    if (cli->json) {
        json_t *j = json_object();
        json_object_set_new(j, "id", json_integer(id));
        json_object_set_new(j, "bytes_checked", json_integer((json_int_t)r->bytes_checked));
        json_object_set_new(j, "files", json_integer(r->files));
        qv_json_print(j);
    } else {
        char sz[32];
        printf("backup %u is intact: %u files, %s checked against their checksums\n", id, r->files,
               qv_human_bytes(r->bytes_checked, sz));
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return QV_EXIT_OK;
}

int qv_cmd_backup(qv_cli_t *cli, int argc, char **argv)
{
    enum { O_SERVER = QV_OPT_FIRST_COMMAND };
    static const struct option opts[] = {QV_CLI_COMMON_OPTIONS, {"server", required_argument, NULL, O_SERVER},
                                         {NULL, 0, NULL, 0}};
    const char *server = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == O_SERVER)
            server = optarg;
        else
            qv_cli_common(cli, "backup", backup_help, o);
    }
    qv_cli_positional("backup", argc, argv, 1, 2);
    if (cli->timeout == QV_CLI_DEFAULT_TIMEOUT) /* no --timeout, before or after the command name */
        cli->timeout = LONG_CALL_TIMEOUT;
    const char *sub = argv[optind];
    int rest = argc - optind - 1;
    if (strcmp(sub, "create") == 0 && rest == 0)
        return backup_create(cli);
    if (strcmp(sub, "list") == 0 && rest == 0)
        return backup_list(cli);
    if (strcmp(sub, "verify") == 0 && rest == 1)
        return backup_verify(cli, (uint32_t)qv_cli_int("backup", "ID", argv[optind + 1], 1, UINT32_MAX), server);
    qv_cli_usage("backup", "expected `create`, `list` or `verify ID`");
}

/* ---- restore ---- */
static const char restore_help[] =
    "usage: quiver restore --from DIR --backup ID|latest --data NEWDIR\n"
    "Writes backup ID of the backup directory DIR (a server's, as `backup list` shows it) as a new data directory\n"
    "that `quiverd --data NEWDIR` opens. Offline: it needs no server, and a server may go on taking backups into DIR\n"
    "meanwhile. Every file is checked against its checksum while it is copied into NEWDIR/.restore-<pid>/, which\n"
    "becomes NEWDIR/db only when all matched: on a damaged backup nothing is left in NEWDIR and the damaged file is\n"
    "named. NEWDIR must not exist or be empty.\n"
    "  --from DIR        the backup directory\n"
    "  --backup ID       the backup's id, or `latest`\n"
    "  --data NEWDIR     the data directory to write\n"
    "--json: {\"backup\": ID, \"data\": NEWDIR, \"bytes\": N, \"took_ms\": N}\n\n";

static void restore_progress(void *ctx, uint64_t done, uint64_t total)
{
    (void)ctx;
    char d[32], t[32];
    double frac = total ? (double)done / (double)total : 0.0;
    if (frac > 1.0)
        frac = 1.0;
    char bar[31];
    int fill = (int)(frac * 30.0);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\r[%s] %5.1f%%  %s of %s\033[K", bar, frac * 100.0, qv_human_bytes(done, d),
            qv_human_bytes(total, t));
}

int qv_cmd_restore(qv_cli_t *cli, int argc, char **argv)
{
    enum { O_FROM = QV_OPT_FIRST_COMMAND, O_BACKUP, O_DATA };
    static const struct option opts[] = {QV_CLI_COMMON_OPTIONS,
                                         {"from", required_argument, NULL, O_FROM},
                                         {"backup", required_argument, NULL, O_BACKUP},
                                         {"data", required_argument, NULL, O_DATA},
                                         {NULL, 0, NULL, 0}};
    const char *from = NULL, *which = NULL, *data = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == O_FROM)
            from = optarg;
        else if (o == O_BACKUP)
            which = optarg;
        else if (o == O_DATA)
            data = optarg;
        else
            qv_cli_common(cli, "restore", restore_help, o);
    }
    qv_cli_positional("restore", argc, argv, 0, 0);
    if (!from || !which || !data)
        qv_cli_usage("restore", "--from, --backup and --data are required");
    uint32_t id = strcmp(which, "latest") == 0 ? 0
                                               : (uint32_t)qv_cli_int("restore", "--backup", which, 1, UINT32_MAX);
    bool tty = !cli->json && isatty(STDERR_FILENO);
    int64_t t0 = qv_mono_ns();
    uint32_t got = 0;
    uint64_t bytes = 0;
    qv_err_t err;
    int rc = qv_backup_restore(from, id, data, tty ? restore_progress : NULL, NULL, &got, &bytes, &err);
    if (tty)
        fputs("\r\033[K", stderr);
    if (rc) {
        fprintf(stderr, "quiver restore: %s\n", err.msg);
        return QV_EXIT_FAIL;
    }
    int64_t ms = (qv_mono_ns() - t0) / 1000000;
    if (cli->json) {
        json_t *j = json_object();
        json_object_set_new(j, "backup", json_integer(got));
        json_object_set_new(j, "data", json_string(data));
        json_object_set_new(j, "bytes", json_integer((json_int_t)bytes));
        json_object_set_new(j, "took_ms", json_integer(ms));
        qv_json_print(j);
    } else {
        char sz[32];
        printf("restored backup %u (%s) into %s/db in %.1f s: start it with quiverd --data %s\n", got,
               qv_human_bytes(bytes, sz), data, (double)ms / 1000.0, data);
    }
    return QV_EXIT_OK;
}
