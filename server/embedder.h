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

#include "common/err.h"

#define QV_EMBED_TEXTS_MAX 1000
#define QV_EMBED_BYTES_MAX (1u << 20)

typedef struct qv_embedder qv_embedder_t;

/* Loads the model from dir and starts the batcher. QV_ENOTFOUND / QV_ECORRUPT with a message when the model is
 * missing or bad. */
int qv_embedder_start(const char *dir, int max_batch, int max_wait_us, int threads, qv_embedder_t **out,
                      qv_err_t *err);
void qv_embedder_stop(qv_embedder_t *e);
uint32_t qv_embedder_dim(const qv_embedder_t *e);

/* Embeds n texts into out (n x dim). Rejects (QV_EINVAL, naming the text) empty texts, more than
 * QV_EMBED_TEXTS_MAX texts or more than QV_EMBED_BYTES_MAX bytes in all, and invalid UTF-8. */
int qv_embedder_embed(qv_embedder_t *e, const char *const *texts, const size_t *lens, size_t n, float *out,
                      qv_err_t *err);

#endif
