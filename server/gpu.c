/* The GPU plugin loader (server/gpu.h). dlopen, dlsym of one symbol, ABI check, device open; every failure is a
 * status naming the missing component, never a crash. */
#include "server/gpu.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int qv_gpu_parse_mode(const char *s, qv_gpu_mode_t *out)
{
    if (!s)
        return -1;
    if (strcmp(s, "auto") == 0)
        *out = QV_GPU_MODE_AUTO;
    else if (strcmp(s, "off") == 0)
        *out = QV_GPU_MODE_OFF;
    else if (strcmp(s, "require") == 0)
        *out = QV_GPU_MODE_REQUIRE;
    else
        return -1;
    return 0;
}

const char *qv_gpu_mode_name(qv_gpu_mode_t mode)
{
    return mode == QV_GPU_MODE_OFF ? "off" : mode == QV_GPU_MODE_REQUIRE ? "require" : "auto";
}

static void set_status(qv_gpu_status_t *st, const char *missing, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_status(qv_gpu_status_t *st, const char *missing, const char *fmt, ...)
{
    st->missing = missing;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->detail, sizeof st->detail, fmt, ap);
    va_end(ap);
}

/* dlopen of the plugin: $QV_GPU_PLUGIN, else <quiverd's directory>/libquiver_gpu.so when that file exists, else the
 * default search path. On failure st says why. */
static void *open_plugin(char *path, size_t cap, qv_gpu_status_t *st)
{
    const char *env = getenv("QV_GPU_PLUGIN");
    if (env && *env) {
        snprintf(path, cap, "%s", env);
    } else {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        path[0] = '\0';
        if (n > 0) {
            exe[n] = '\0';
            char *slash = strrchr(exe, '/');
            if (slash) {
                *slash = '\0';
                snprintf(path, cap, "%.900s/%s", exe, QV_GPU_PLUGIN_NAME);
            }
        }
        if (!path[0] || access(path, F_OK) != 0)
            snprintf(path, cap, "%s", QV_GPU_PLUGIN_NAME);  /* the default search path */
    }
    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *why = dlerror();
        if (!why)
            why = "dlopen failed";
        if (strncmp(why, path, strlen(path)) == 0)  /* the plugin itself was not found */
            set_status(st, "plugin", "%s", why);
        else                                         /* a library it needs was not: say whose */
            set_status(st, "plugin", "%s: %s", path, why);
    }
    return dl;
}

int qv_gpu_load(qv_gpu_mode_t mode, int device, qv_gpu_plugin_t **out, qv_gpu_status_t *status, qv_err_t *err)
{
    qv_gpu_status_t local;
    qv_gpu_status_t *st = status ? status : &local;
    memset(st, 0, sizeof *st);
    *out = NULL;
    if (mode == QV_GPU_MODE_OFF) {
        set_status(st, "off", "--gpu off: the plugin is not loaded");
        return QV_OK;
    }
    qv_gpu_plugin_t *p = calloc(1, sizeof *p);
    if (!p) {
        set_status(st, "plugin", "out of memory");
        goto unavailable;
    }
    p->dl = open_plugin(p->path, sizeof p->path, st);
    if (!p->dl)
        goto unavailable;
    dlerror();
    void *sym = dlsym(p->dl, QV_GPU_ENTRY_SYMBOL);
    if (!sym) {
        set_status(st, "plugin", "%s has no %s: not a Quiver GPU plugin", p->path, QV_GPU_ENTRY_SYMBOL);
        goto unavailable;
    }
    qv_gpu_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry);  /* object pointer to function pointer without a pedantic cast warning */
    p->api = entry(QV_GPU_ABI_VERSION);
    if (!p->api || p->api->abi_version != QV_GPU_ABI_VERSION || p->api->size < sizeof(qv_gpu_api_t)) {
        set_status(st, "plugin", "%s speaks another ABI (this quiverd wants version %u, %zu-byte table; got %u, %u)",
                   p->path, QV_GPU_ABI_VERSION, sizeof(qv_gpu_api_t), p->api ? p->api->abi_version : 0,
                   p->api ? p->api->size : 0);
        goto unavailable;
    }
    qv_err_t ierr;
    qv_err_clear(&ierr);
    int rc = p->api->init(device, &p->ctx, &ierr);
    if (rc != QV_OK) {
        set_status(st, rc == QV_ENOTFOUND ? "device" : rc == QV_EUNAVAIL ? "driver" : "device", "%s",
                   ierr.msg[0] ? ierr.msg : qv_strerror(rc));
        p->ctx = NULL;
        goto unavailable;
    }
    if (p->api->device_info(p->ctx, &p->info, &ierr) != QV_OK) {
        set_status(st, "device", "%s", ierr.msg);
        goto unavailable;
    }
    *out = p;
    return QV_OK;

unavailable:
    qv_gpu_unload(p);
    if (mode == QV_GPU_MODE_REQUIRE)
        return qv_err_set(err, QV_EUNAVAIL, "--gpu require: no usable GPU (missing: %s): %.400s", st->missing,
                          st->detail);
    return QV_OK;
}

void qv_gpu_unload(qv_gpu_plugin_t *p)
{
    if (!p)
        return;
    if (p->ctx && p->api)
        p->api->shutdown(p->ctx);
    if (p->dl)
        dlclose(p->dl);
    free(p);
}

int qv_gpu_graph_build(void *ctx, const qv_hnsw_params_t *p, const float *x, size_t n, uint32_t dim, qv_wbuf_t *blob,
                       qv_err_t *err)
{
    const qv_gpu_plugin_t *g = ctx;
    qv_gpu_graph_params_t gp = {.metric = p->metric == QV_HNSW_L2 ? QV_GPU_L2 : QV_GPU_IP,
                                .M = p->M,
                                .ef_construction = p->ef_construction,
                                .seed = p->seed,
                                .quant = (qv_gpu_quant_t)p->quant,
                                .pq_m = p->pq_m};
    uint8_t *b = NULL;
    size_t len = 0;
    int rc = g->api->graph_build(g->ctx, &gp, x, n, dim, &b, &len, NULL, err);
    if (rc != QV_OK)
        return rc;
    qv_wbuf_put(blob, b, len);
    g->api->free_blob(b);
    return blob->oom ? qv_err_set(err, QV_ENOMEM, "out of memory copying a %zu-byte graph blob", len) : QV_OK;
}
