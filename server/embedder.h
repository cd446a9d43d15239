/* The server's text embedder: the built-in model (query/embed/model.h) behind a dynamic batcher.
 *
 * Request threads tokenize their texts themselves and queue the token sequences; one batcher thread waits until a
 * batch is full (--embed-batch texts) or the oldest sequence has waited --embed-wait-us, sorts what it took by length
 * and runs the forward pass over groups of similar length (so padding stays small), then hands each request its
 * vectors. Concurrent requests therefore share forward passes instead of competing for the cores. */
#ifndef QV_EMBEDDER_H
#define QV_EMBEDDER_H

#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/err.h"
#include "server/gpu.h"
#include "storage/schema.h"

#define QV_EMBED_TEXTS_MAX 1000
#define QV_EMBED_BYTES_MAX (1u << 20)

typedef struct qv_embedder qv_embedder_t;

typedef enum {
    QV_EMBED_DEV_AUTO = 0,  /* the GPU plugin's model when a plugin is loaded and takes the weights, else the CPU */
    QV_EMBED_DEV_CPU = 1,
    QV_EMBED_DEV_CUDA = 2,  /* the GPU or a start-up error */
} qv_embed_device_t;

/* Loads the model from dir and starts the batcher. QV_ENOTFOUND / QV_ECORRUPT with a message when the model is
 * missing or bad. gpu (may be NULL) is the loaded plugin (server/gpu.h): per `device`, the weights are uploaded to it
 * and batches run there. With AUTO a failed upload is one warning and the CPU; with CUDA it is QV_EUNAVAIL, as is
 * CUDA without a plugin. The tokenizer and a CPU copy of the model stay either way: a batch that fails on the GPU is
 * run again on the CPU (one warning per failure), so a device error never fails a request. The plugin must outlive
 * the embedder. */
int qv_embedder_start(const char *dir, int max_batch, int max_wait_us, int threads, const qv_gpu_plugin_t *gpu,
                      qv_embed_device_t device, qv_embedder_t **out, qv_err_t *err);
void qv_embedder_stop(qv_embedder_t *e);
uint32_t qv_embedder_dim(const qv_embedder_t *e);
/* "cuda" or "cpu": where batches run. */
const char *qv_embedder_device(const qv_embedder_t *e);

/* The checks qv_embedder_embed makes before it tokenizes, needing no model: at most QV_EMBED_TEXTS_MAX texts, none
 * empty or blank (white space and control characters only), at most QV_EMBED_BYTES_MAX bytes in all, each valid
 * UTF-8 (QV_EINVAL naming the text by its index). A
 * coordinator runs them over a whole text upsert before splitting it, so the request is refused whole rather than
 * refused by one shard for its share while the others write theirs. */
int qv_embed_check_texts(const char *const *texts, const size_t *lens, size_t n, qv_err_t *err);

/* The points of an upsert that carry text instead of a vector, in order, as the list a server embeds: QV_EINVAL (the
 * standalone server's messages, naming the point) for a point with neither, or without a vector in a collection that
 * has no model; then qv_embed_check_texts over the list. *texts, *lens: arena arrays of *n entries (0: nothing to
 * embed). */
int qv_embed_text_points(qv_arena_t *ar, const qv_schema_t *s, const qv_point_t *pts, size_t npts,
                         const char ***texts, size_t **lens, size_t *n, qv_err_t *err);

/* Embeds n texts into out (n x dim). Rejects (QV_EINVAL, naming the text) empty texts, more than
 * QV_EMBED_TEXTS_MAX texts or more than QV_EMBED_BYTES_MAX bytes in all, and invalid UTF-8. */
int qv_embedder_embed(qv_embedder_t *e, const char *const *texts, const size_t *lens, size_t n, float *out,
                      qv_err_t *err);

/* ---- the API's text paths, the same for every role that has a model (service.c; coord/ when it was started with
 * one, so that shards need none) ---- */

/* FAILED_PRECONDITION: this server has no model. */
int qv_embed_no_model(qv_err_t *err);

/* The query vector of a SearchRequest carrying `text` for collection s: QV_EINVAL when s has no model or the request
 * has a vector too; no_model when e is NULL; else the text embedded into *vec (s->dim floats in ar). */
int qv_embed_query(qv_embedder_t *e, qv_arena_t *ar, const qv_schema_t *s, const char *text, size_t nvector,
                   float **vec, qv_err_t *err);

/* Points of an upsert that carry text instead of a vector get their vector from the model, all in one call; without
 * a model (e NULL) such points are refused. The other rules are qv_embed_text_points'. */
int qv_embed_points(qv_embedder_t *e, qv_arena_t *ar, const qv_schema_t *s, qv_point_t *pts, size_t n,
                    qv_err_t *err);

/* Serves Quiver.Embed (an EmbedRequest; *resp an EmbedResponse in ar). */
struct ProtobufCMessage;
int qv_embed_serve(qv_embedder_t *e, qv_arena_t *ar, const struct ProtobufCMessage *req,
                   struct ProtobufCMessage **resp, qv_err_t *err);

#endif
