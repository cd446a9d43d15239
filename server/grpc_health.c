/* server/grpc_health.h */
#include "server/grpc_health.h"

#include <stdbool.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "quiver/v1/quiver.pb-c.h"

int qv_grpc_health_check(qv_handler_fn admin_health, void *app, qv_call_ctx_t *ctx, const ProtobufCMessage *req,
                         ProtobufCMessage **resp, qv_err_t *err)
{
    const Grpc__Health__V1__HealthCheckRequest *hr = (const void *)req;
    static const char *const served[] = {"", "quiver.v1.Quiver", "quiver.v1.Admin", "grpc.health.v1.Health"};
    bool known = false;
    for (size_t i = 0; i < sizeof served / sizeof *served; i++)
        known = known || strcmp(hr->service, served[i]) == 0;
    if (!known)
        return qv_err_set(err, QV_ENOTFOUND, "unknown service '%.200s'", hr->service);
    Quiver__V1__HealthRequest q = QUIVER__V1__HEALTH_REQUEST__INIT;
    ProtobufCMessage *h = NULL;
    int rc = admin_health(app, ctx, &q.base, &h, err);
    if (rc)
        return rc;
    Grpc__Health__V1__HealthCheckResponse *r = qv_arena_alloc(&ctx->arena, sizeof *r);
    if (!r)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    grpc__health__v1__health_check_response__init(r);
    r->status = ((const Quiver__V1__HealthResponse *)h)->status == QUIVER__V1__HEALTH_RESPONSE__STATUS__STATUS_SERVING
                    ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                    : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    *resp = &r->base;
    return QV_OK;
}
