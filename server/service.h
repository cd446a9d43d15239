/* The quiver.v1 Quiver and Admin services of a standalone server: request validation and conversion, calls into
 * storage/ and query/, response building. */
#ifndef QV_SERVICE_H
#define QV_SERVICE_H

#include "index/pool.h"
#include "server/embedder.h"
#include "server/rpc.h"
#include "storage/store.h"

typedef struct {
    qv_store_t *store;
    qv_pool_t *pool;
    int64_t started_ns;
    const char *role;
    int max_message_bytes;
    qv_embedder_t *embedder; /* NULL when the server runs without a model */
    const char *backup_dir;  /* this server's backup directory (--backup-dir/<name>); NULL: backups are off */
} qv_app_t;

extern const qv_handler_t qv_handlers[];
extern const ProtobufCServiceDescriptor *const qv_services[];

#endif
