/* server/grpc_health.h */
#include "server/grpc_health.h"

#include <stdbool.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "quiver/v1/quiver.pb-c.h"

typedef Grpc__Health__V1__HealthCheckResponse__ServingStatus serving_t;

static bool served(const char *service)
{
    static const char *const names[] = {"",
                                        "quiver.v1.Quiver",
                                        "quiver.v1.Admin",
                                        "grpc.health.v1.Health",
                                        "grpc.reflection.v1alpha.ServerReflection"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(service, names[i]) == 0)
            return true;
    return false;
}

/* The serving status from Admin.Health; its error code when it fails. */
static int status_of(qv_handler_fn admin_health, void *app, qv_call_ctx_t *ctx, serving_t *st, qv_err_t *err)
{
    Quiver__V1__HealthRequest q = QUIVER__V1__HEALTH_REQUEST__INIT;
    ProtobufCMessage *h = NULL;
    int rc = admin_health(app, ctx, &q.base, &h, err);
    if (rc)
        return rc;
    *st = ((const Quiver__V1__HealthResponse *)h)->status == QUIVER__V1__HEALTH_RESPONSE__STATUS__STATUS_SERVING
              ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
              : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    return QV_OK;
}

static int answer(qv_call_ctx_t *ctx, serving_t st, ProtobufCMessage **resp, qv_err_t *err)
{
    Grpc__Health__V1__HealthCheckResponse *r = qv_arena_alloc(&ctx->arena, sizeof *r);
    if (!r)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    grpc__health__v1__health_check_response__init(r);
    r->status = st;
    *resp = &r->base;
    return QV_OK;
}

int qv_grpc_health_check(qv_handler_fn admin_health, void *app, qv_call_ctx_t *ctx, const ProtobufCMessage *req,
                         ProtobufCMessage **resp, qv_err_t *err)
{
    const Grpc__Health__V1__HealthCheckRequest *hr = (const void *)req;
    if (!served(hr->service))
        return qv_err_set(err, QV_ENOTFOUND, "unknown service '%.200s'", hr->service);
    serving_t st;
    int rc = status_of(admin_health, app, ctx, &st, err);
    return rc ? rc : answer(ctx, st, resp, err);
}

int qv_grpc_health_watch(qv_handler_fn admin_health, void *app, qv_call_ctx_t *ctx, const ProtobufCMessage *req,
                         ProtobufCMessage **resp, qv_err_t *err)
{
    const Grpc__Health__V1__HealthCheckRequest *hr = (const void *)req;
    if (!served(hr->service))
        return answer(ctx, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN, resp, err);
    serving_t st;
    if (status_of(admin_health, app, ctx, &st, err) != QV_OK) {
        qv_err_clear(err);
        st = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    }
    return answer(ctx, st, resp, err);
}
