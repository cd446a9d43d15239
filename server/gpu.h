/* The GPU plugin loader: finds libquiver_gpu.so, checks its ABI, opens a device, and says in one line why not.
 *
 * quiverd never links CUDA. At start-up (--gpu auto, the default) it dlopens the plugin from its own directory (then
 * from the default search path: LD_LIBRARY_PATH, the ld.so cache), looks up the one entry point
 * (QV_GPU_ENTRY_SYMBOL in kernels/gpu.h), checks the table's ABI version and size, and opens device 0. Any of these
 * failing is the normal CPU fallback, reported as the component that was missing:
 *   plugin   libquiver_gpu.so not found, not loadable (e.g. libcublas.so.13 missing), or of another ABI
 *   driver   the NVIDIA driver (libcuda.so.1) is absent or older than the plugin's CUDA runtime
 *   device   the driver works but there is no (usable) CUDA device
 * --gpu off does not look for the plugin at all; --gpu require turns any of the above into a start-up error.
 *
 * $QV_GPU_PLUGIN, when set, names the plugin file to load instead of searching (tests use it to load a plugin
 * whose CUDA libraries cannot be found). */
#ifndef QV_SERVER_GPU_H
#define QV_SERVER_GPU_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "index/hnsw.h"
#include "kernels/gpu.h"

typedef enum {
    QV_GPU_MODE_AUTO = 0,     /* use the GPU when the plugin, the driver and a device are present */
    QV_GPU_MODE_OFF = 1,      /* never load the plugin */
    QV_GPU_MODE_REQUIRE = 2,  /* fail start-up unless the GPU is usable */
} qv_gpu_mode_t;

/* "auto" | "off" | "require"; returns -1 for anything else. */
int qv_gpu_parse_mode(const char *s, qv_gpu_mode_t *out);
const char *qv_gpu_mode_name(qv_gpu_mode_t mode);

/* A loaded plugin with an open device. The table and context are valid until qv_gpu_unload. */
typedef struct {
    void *dl;
    const qv_gpu_api_t *api;
    qv_gpu_t *ctx;
    qv_gpu_info_t info;
    char path[1024];  /* the file dlopen loaded */
} qv_gpu_plugin_t;

/* What qv_gpu_load found. */
typedef struct {
    const char *missing;  /* NULL when the GPU is in use; else "plugin", "driver", "device" or "off" */
    char detail[512];     /* why, in words (dlerror, the plugin's message, ...) */
} qv_gpu_status_t;

/* Loads per mode (device index `device`). Returns QV_OK with *out set when the GPU is usable; QV_OK with *out NULL
 * and status->missing set when it is not and mode is auto or off; QV_EUNAVAIL (message in err, naming what was
 * missing) when it is not and mode is require. Never aborts, whatever the plugin file holds. */
int qv_gpu_load(qv_gpu_mode_t mode, int device, qv_gpu_plugin_t **out, qv_gpu_status_t *status, qv_err_t *err);

/* The plugin's graph build behind the store's qv_store_graph_fn (storage/store.h): ctx is the qv_gpu_plugin_t.
 * Converts the collection's index parameters, runs graph_build, and appends the blob it returned to *blob. */
int qv_gpu_graph_build(void *ctx, const qv_hnsw_params_t *p, const float *x, size_t n, uint32_t dim, qv_wbuf_t *blob,
                       qv_err_t *err);

/* Shuts the device context down and unloads the plugin. NULL is a no-op. */
void qv_gpu_unload(qv_gpu_plugin_t *p);

#endif
