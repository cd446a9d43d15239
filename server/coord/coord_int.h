/* Coordinator internals shared by its files: membership, collection metadata, routes, and the rules that turn
 * the outcomes of a fan-out into one answer.
 *
 * Locking: `mu` guards the member list and the collection table; both are replaced wholesale (the etcd poller) or
 * entry by entry (the static cache), and readers take references (shards: qv_shard_t.refs, collections:
 * qv_cmeta_t.refs) under the lock and use them after releasing it, so no lock is held across a network call. */
#ifndef QV_COORD_INT_H
#define QV_COORD_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "common/clock.h"
#include "quiver/v1/quiver.pb-c.h"
#include "server/coord/client.h"
#include "server/coord/coord.h"
#include "server/coord/etcd.h"
#include "server/request.h"
#include "server/rpc.h"
#include "server/status.h"
#include "storage/schema.h"

#define QV_COORD_VERSION "0.1.0"
#define QV_STATIC_CACHE_NS (2 * 1000000000LL) /* static mode: a collection's Describe'd metadata is reused this long */
/* Names found to be no collection are answered NOT_FOUND from memory for this long, so that a client asking for
 * unknown collections in a loop costs no etcd read (or shard fan-out, static mode) per call; a create through this
 * coordinator clears the name at once, one through another coordinator is seen after at most this long (etcd mode:
 * the poller also finds it every --etcd-poll-ms). */
#define QV_NEGATIVE_CACHE_NS (1000000000LL)
#define QV_NEGATIVE_CACHE_SIZE 256

/* A collection as the coordinator knows it; immutable once published, reference counted. */
typedef struct {
    atomic_int refs;
    char *name;
    qv_schema_t *schema; /* validated; schema->shards = the logical shard count S */
    uint32_t nshards;    /* S */
    char **assign;       /* etcd: [S] name of the shard server that holds logical shard j; static: NULL (j mod N) */
    bool ready;          /* etcd: created on every shard (state "ready"); static: always */
    uint8_t *create_req; /* etcd: the packed CreateCollectionRequest (shards = S) it was created from */
    size_t create_len;
    int64_t fetched_ns;  /* static: when it was Describe'd */
} qv_cmeta_t;

typedef struct {
    char *name;
    qv_shard_t *shard;
    char *addr_tmp; /* the poller's scratch while it builds a new list */
} qv_member_t;

typedef struct {
    qv_client_t client;
    const qv_coord_cfg_t *cfg;
    int64_t started_ns;
    qv_etcd_t *etcd; /* etcd mode: the handlers' connection (create/drop, lookups that miss) */
    char *prefix;    /* etcd key prefix without a trailing slash */

    pthread_mutex_t mu;
    qv_member_t *members; /* guarded by mu. static: in --shards order (never changes); etcd: sorted by name */
    size_t nmembers;      /* guarded by mu */
    qv_cmeta_t **colls;   /* guarded by mu */
    size_t ncolls;        /* guarded by mu */
    bool loaded;          /* guarded by mu. etcd: the first poll succeeded */
    struct {
        uint64_t hash;    /* qv_hash of the name (a false hit only delays a lookup by QV_NEGATIVE_CACHE_NS) */
        int64_t until_ns; /* CLOCK_MONOTONIC */
    } absent[QV_NEGATIVE_CACHE_SIZE]; /* guarded by mu: a ring of recent NOT_FOUND names */
    size_t absent_next;               /* guarded by mu */

    pthread_t poller;
    pthread_mutex_t poll_mu; /* guards stop */
    pthread_cond_t poll_cv;  /* CLOCK_MONOTONIC */
    bool stop;
    bool etcd_down; /* poller thread only: for logging transitions */
} qv_coord_t;

/* The shard servers a request on one collection goes to. All arrays live in the call's arena. */
typedef struct {
    qv_cmeta_t *meta;     /* one reference */
    size_t nservers;      /* distinct servers holding the collection's logical shards */
    const char **names;   /* [nservers] */
    qv_shard_t **shards;  /* [nservers] one reference each; NULL where no server is registered under the name */
    uint32_t *server_of;  /* [S] logical shard -> index into names/shards */
} qv_route_t;

/* The members now (every shard server), referenced; release with qv_members_release. */
int qv_members_get(qv_coord_t *co, qv_call_ctx_t *ctx, const char ***names, qv_shard_t ***shards, size_t *n,
                   qv_err_t *err);
void qv_members_release(qv_shard_t **shards, size_t n);

/* Resolves a collection (NOT_FOUND / INVALID_ARGUMENT with the standalone server's messages) and its servers. */
int qv_route(qv_coord_t *co, qv_call_ctx_t *ctx, const char *name, qv_route_t *rt, qv_err_t *err);
/* The route of a collection already looked up; takes over the caller's reference to m (also on failure). */
int qv_route_of(qv_coord_t *co, qv_call_ctx_t *ctx, qv_cmeta_t *m, qv_route_t *rt, qv_err_t *err);
void qv_route_release(qv_route_t *rt);
/* etcd mode: puts a record fetched or written by a handler into the table (a new reference). */
void qv_meta_put(qv_coord_t *co, qv_cmeta_t *m);
void qv_meta_remove(qv_coord_t *co, const char *name);
/* A new metadata entry for schema (taken over; freed on failure). */
qv_cmeta_t *qv_cmeta_new(const char *name, qv_schema_t *schema);
/* Forgets a cached collection (static mode), after create/drop or a shard saying NOT_FOUND. */
void qv_meta_invalidate(qv_coord_t *co, const char *name);
void qv_cmeta_unref(qv_cmeta_t *m);
/* A schema from a CollectionInfo (malloc'd), or NULL. */
qv_schema_t *qv_schema_of_info(const Quiver__V1__CollectionInfo *ci);

/* Logical shard of a point id: XXH3-64 of the id bytes modulo the collection's shard count. */
uint32_t qv_shard_of(const char *id, uint32_t nshards);

/* etcd mode. */
int qv_meta_start(qv_coord_t *co, qv_err_t *err);
void qv_meta_stop(qv_coord_t *co);
/* Reads one collection's record straight from etcd (*out NULL when absent). */
int qv_meta_fetch(qv_coord_t *co, const char *name, qv_cmeta_t **out, qv_err_t *err);
/* The record's JSON (malloc'd). */
char *qv_meta_encode(const qv_cmeta_t *m, const char *state);
/* Key of a collection's record. */
void qv_meta_key(const qv_coord_t *co, const char *name, char *key, size_t size);
qv_cmeta_t *qv_meta_decode(const char *name, const char *json, size_t len);

/* ---- outcomes (outcome.c) ---- */

/* True when the shard itself failed (unreachable, late, busy, broken, refusing the coordinator's credentials) as
 * opposed to refusing the request (INVALID_ARGUMENT, NOT_FOUND, ...), which every shard would do alike. */
bool qv_sub_failed(const qv_sub_t *s);
/* One answer for a fan-out: QV_OK when every call succeeded, or when allow_partial and only shard failures
 * occurred (then *nmissing > 0 and missing[] holds their names, arena). Otherwise: CANCELLED if the client went
 * away; the first request error passed through unchanged; DEADLINE_EXCEEDED when a shard was late; else
 * UNAVAILABLE naming the failed shards. `what` begins the failure message ("search", "upsert of 12 points"). */
int qv_outcome(qv_call_ctx_t *ctx, const qv_sub_t *subs, size_t n, bool allow_partial, const char ***missing,
               size_t *nmissing, const char *what, qv_err_t *err);
/* ---- merges (merge.c) ---- */

/* The best k of per-shard hit lists, each best first (parts[i] NULL: a missing shard): by score, L2 ascending, IP and
 * COSINE descending; equal scores keep the lower part first. Each shard answers its own top k, so the merged first k
 * are the global top k. out->hits in ar, pointing at the parts' hits. QV_ENOMEM only. */
int qv_merge_hits(qv_arena_t *ar, Quiver__V1__SearchResponse *const *parts, size_t nparts, uint32_t k, bool ascending,
                  Quiver__V1__SearchResponse *out);
/* qv_merge_hits for a grouped search (SearchRequest.group_by): each shard answered its own first k groups of at most
 * `size` hits, each hit naming its group (Hit.group); all are merged by score, then query/group.h's rule keeps the first
 * k groups, at most `size` hits each. The groups are exact: a group among the global first k is among the first k of
 * the shard holding its best hit. With size > 1 a group's further hits on another shard come back only when the group
 * is among that shard's first k too, so h_read.c asks the shards a second time for the chosen groups only
 * (refine_groups). QV_ENOMEM only. */
int qv_merge_grouped(qv_arena_t *ar, Quiver__V1__SearchResponse *const *parts, size_t nparts, uint32_t k,
                     uint32_t size, bool ascending, Quiver__V1__SearchResponse *out);
/* One Scroll page from the shards' pages (each its `limit` smallest ids after the cursor, ascending): the `limit`
 * smallest of all; next_cursor is the last of them when anything remains (some shard said it had more, or more came
 * back than fit), else "". QV_ENOMEM only. */
int qv_merge_scroll(qv_arena_t *ar, Quiver__V1__ScrollResponse *const *parts, size_t nparts, uint32_t limit,
                    Quiver__V1__ScrollResponse *out);

/* Builds n subs calling `method` with the same request on every server of the route (arena). */
qv_sub_t *qv_subs_same(qv_call_ctx_t *ctx, const char **names, qv_shard_t **shards, size_t n, const char *method,
                       const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc);

/* Calls method with the same request on every member (every shard server) and waits for all. missing NULL: QV_OK
 * only when every call succeeded; otherwise as qv_outcome with allow_partial (the failed members' subs have no
 * resp). *out: the subs, in member order; *names (may be NULL): each member's name (arena, valid for the call). */
int qv_fan_members(qv_coord_t *co, qv_call_ctx_t *ctx, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *rd, qv_sub_t **out, const char ***names, size_t *n,
                   const char ***missing, size_t *nmissing, const char *what, qv_err_t *err);

/* Handler tables of h_write.c, h_read.c, h_admin.c and h_backup.c (each NULL-name-terminated). */
extern const qv_handler_t qv_coord_write_handlers[], qv_coord_read_handlers[], qv_coord_admin_handlers[],
    qv_coord_backup_handlers[];

/* Shared with h_read.c: grouping ids by server (srv[i]: the server of ids[i]; counts[s]: how many go to server s). */
int qv_coord_split_ids(qv_call_ctx_t *ctx, const qv_route_t *rt, char *const *ids, size_t n, uint32_t **srv,
                       size_t **counts, qv_err_t *err);

#endif
