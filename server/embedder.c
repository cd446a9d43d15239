/* Dynamic batching in front of the embedding model; see embedder.h. */
#include "server/embedder.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "query/embed/model.h"
#include "query/embed/tokenizer.h"
#include "quiver/v1/quiver.pb-c.h"
#include "server/log.h"
#include "server/metrics.h"

typedef struct request {
    pthread_cond_t cv;
    size_t remaining; /* sequences not yet embedded; guarded by the embedder's mu */
    int rc;
    qv_err_t err;
} request_t;

typedef struct {
    const int32_t *ids;
    uint32_t len;
    float *out;
    request_t *req;
} item_t;

struct qv_embedder {
    qv_embed_model_t *model;
    const qv_gpu_plugin_t *gpu; /* with gm: batches run on the plugin's model */
    qv_gpu_model_t *gm;
    bool gpu_broken;            /* the plugin answered QV_EUNAVAIL: batches run on the CPU */
    item_t *take;          /* the batcher's scratch: max_batch items, vectors and sequences */
    float *buf;
    qv_embed_seq_t *seqs;
    uint32_t dim, max_tokens;
    int max_batch;
    int64_t max_wait_ns;
    pthread_t thread;
    pthread_mutex_t mu; /* guards queue, n, cap, stopping, and every request's remaining/rc/err */
    pthread_cond_t cv;  /* CLOCK_MONOTONIC */
    item_t *queue;
    size_t n, cap;
    bool stopping;
};

static int by_len(const void *a, const void *b)
{
    const item_t *x = a, *y = b;
    return (x->len > y->len) - (x->len < y->len);
}

/* Runs one group of similar-length sequences and delivers the vectors. */
static void run_group(qv_embedder_t *e, item_t *items, size_t n, float *buf, qv_embed_seq_t *seqs)
{
    for (size_t i = 0; i < n; i++)
        seqs[i] = (qv_embed_seq_t){items[i].ids, items[i].len};
    qv_err_t err;
    qv_err_clear(&err);
    bool dev = e->gm && !e->gpu_broken;
    int rc = dev ? e->gpu->api->embed_seqs(e->gm, seqs, n, buf, &err) : qv_embed_seqs(e->model, seqs, n, buf, &err);
    if (rc != QV_OK && dev) {
        e->gpu_broken = rc == QV_EUNAVAIL; /* a sticky device error: the CPU from now on (batcher thread only) */
        qv_log(QV_LOG_WARN, "embed.gpu_failed", "texts=%zu code=%s msg=\"%s\" (this batch runs on the CPU%s)", n,
               qv_strerror(rc), err.msg, e->gpu_broken ? ", and every later one" : "");
        qv_err_clear(&err);
        rc = qv_embed_seqs(e->model, seqs, n, buf, &err);
    }
    qv_metrics_embed_batch(n);
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < n; i++) {
        request_t *r = items[i].req;
        if (rc == QV_OK)
            memcpy(items[i].out, buf + i * e->dim, e->dim * sizeof(float));
        else if (r->rc == QV_OK) {
            r->rc = rc;
            r->err = err;
        }
        if (--r->remaining == 0)
            pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&e->mu);
}

static void *batcher(void *arg)
{
    qv_embedder_t *e = arg;
    item_t *take = e->take;
    float *buf = e->buf;
    qv_embed_seq_t *seqs = e->seqs;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->stopping && e->n == 0)
            pthread_cond_wait(&e->cv, &e->mu);
        if (e->stopping)
            break;
        /* wait for a fuller batch, at most max_wait after the first sequence arrived */
        int64_t until = qv_mono_ns() + e->max_wait_ns;
        while (!e->stopping && e->n < (size_t)e->max_batch) {
            if (until - qv_mono_ns() <= 0)
                break;
            struct timespec ts = qv_mono_ts(until);
            if (pthread_cond_timedwait(&e->cv, &e->mu, &ts) != 0)
                break;
        }
        size_t n = e->n < (size_t)e->max_batch ? e->n : (size_t)e->max_batch;
        memcpy(take, e->queue, n * sizeof *take);
        memmove(e->queue, e->queue + n, (e->n - n) * sizeof *e->queue);
        e->n -= n;
        pthread_mutex_unlock(&e->mu);
        /* groups whose longest sequence is at most 1.5x (+8 tokens) the shortest: little padding */
        qsort(take, n, sizeof *take, by_len);
        for (size_t b = 0; b < n;) {
            size_t end = b + 1;
            while (end < n && take[end].len <= take[b].len + take[b].len / 2 + 8)
                end++;
            run_group(e, take + b, end - b, buf, seqs);
            b = end;
        }
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* Uploads the weights to the plugin per `device` (see embedder.h). */
static int attach_gpu(qv_embedder_t *e, const qv_gpu_plugin_t *gpu, qv_embed_device_t device, qv_err_t *err)
{
    if (device == QV_EMBED_DEV_CPU)
        return QV_OK;
    if (!gpu) {
        if (device == QV_EMBED_DEV_CUDA)
            return qv_err_set(err, QV_EUNAVAIL, "--embed-device cuda: no GPU plugin in use (see the gpu.* log line; "
                              "--gpu off disables it)");
        return QV_OK;
    }
    qv_err_t gerr;
    qv_err_clear(&gerr);
    int rc = gpu->api->embed_load(gpu->ctx, qv_embed_weights(e->model), &e->gm, &gerr);
    if (rc == QV_OK) {
        e->gpu = gpu;
        return QV_OK;
    }
    e->gm = NULL;
    if (device == QV_EMBED_DEV_CUDA)
        return qv_err_set(err, QV_EUNAVAIL, "--embed-device cuda: the GPU plugin cannot load the model: %.400s",
                          gerr.msg);
    qv_log(QV_LOG_WARN, "embed.gpu_unavailable", "code=%s msg=\"%s\" (the model runs on the CPU)", qv_strerror(rc),
           gerr.msg);
    return QV_OK;
}

int qv_embedder_start(const char *dir, int max_batch, int max_wait_us, int threads, const qv_gpu_plugin_t *gpu,
                      qv_embed_device_t device, qv_embedder_t **out, qv_err_t *err)
{
    *out = NULL;
    qv_embedder_t *e = calloc(1, sizeof *e);
    if (!e)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    qv_embed_opts_t o = {.threads = threads};
    int rc = qv_embed_model_load_opts(dir, &o, &e->model, err);
    if (rc == QV_OK && (rc = attach_gpu(e, gpu, device, err)) != QV_OK)
        qv_embed_model_free(e->model);
    if (rc) {
        free(e);
        return rc;
    }
    e->dim = qv_embed_dim(e->model);
    e->max_tokens = qv_embed_max_tokens(e->model);
    e->max_batch = max_batch > 0 ? max_batch : 64;
    e->max_wait_ns = (int64_t)(max_wait_us >= 0 ? max_wait_us : 2000) * 1000;
    e->take = malloc((size_t)e->max_batch * sizeof *e->take);
    e->buf = malloc((size_t)e->max_batch * e->dim * sizeof(float));
    e->seqs = malloc((size_t)e->max_batch * sizeof *e->seqs);
    pthread_mutex_init(&e->mu, NULL);
    qv_cond_init_mono(&e->cv); /* the batch window is timed on CLOCK_MONOTONIC */
    if (!e->take || !e->buf || !e->seqs || pthread_create(&e->thread, NULL, batcher, e) != 0) {
        if (e->gm)
            e->gpu->api->embed_free(e->gm);
        qv_embed_model_free(e->model);
        free(e->take);
        free(e->buf);
        free(e->seqs);
        free(e);
        return qv_err_set(err, QV_ENOMEM, "cannot start the embedding thread");
    }
    *out = e;
    return QV_OK;
}

void qv_embedder_stop(qv_embedder_t *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    if (e->gm)
        e->gpu->api->embed_free(e->gm);
    qv_embed_model_free(e->model);
    free(e->queue);
    free(e->take);
    free(e->buf);
    free(e->seqs);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}

uint32_t qv_embedder_dim(const qv_embedder_t *e) { return e->dim; }
const char *qv_embedder_device(const qv_embedder_t *e) { return e->gm ? "cuda" : "cpu"; }

int qv_embed_check_texts(const char *const *texts, const size_t *lens, size_t n, qv_err_t *err)
{
    if (n > QV_EMBED_TEXTS_MAX)
        return qv_err_set(err, QV_EINVAL, "%zu texts in one request exceeds the limit of %d", n, QV_EMBED_TEXTS_MAX);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] == 0)
            return qv_err_set(err, QV_EINVAL, "text %zu is empty", i);
        total += lens[i];
    }
    if (total > QV_EMBED_BYTES_MAX)
        return qv_err_set(err, QV_EINVAL, "%zu bytes of text in one request exceeds the limit of %u", total,
                          QV_EMBED_BYTES_MAX);
    for (size_t i = 0; i < n; i++) {
        size_t bad;
        if (!qv_tokenizer_utf8_valid(texts[i], lens[i], &bad))
            return qv_err_set(err, QV_EINVAL, "text %zu: text is not valid UTF-8 (byte %zu)", i, bad);
        if (qv_tokenizer_blank(texts[i], lens[i]))
            return qv_err_set(err, QV_EINVAL, "text %zu has no words (only white space or control characters)", i);
    }
    return QV_OK;
}

int qv_embed_text_points(qv_arena_t *ar, const qv_schema_t *s, const qv_point_t *pts, size_t npts,
                         const char ***texts, size_t **lens, size_t *n, qv_err_t *err)
{
    size_t want = 0;
    *n = 0;
    for (size_t i = 0; i < npts; i++) {
        if (pts[i].nvector)
            continue;
        if (!s->embed)
            return qv_err_set(err, QV_EINVAL, "point %zu (id '%.64s'): no vector, and collection '%s' has no "
                              "embedding model to make one from text", i, pts[i].id.p, s->name);
        if (pts[i].text.len == 0)
            return qv_err_set(err, QV_EINVAL, "point %zu (id '%.64s'): neither vector nor text", i, pts[i].id.p);
        want++;
    }
    if (!want)
        return QV_OK;
    *texts = qv_arena_array(ar, want, sizeof **texts);
    *lens = qv_arena_array(ar, want, sizeof **lens);
    if (!*texts || !*lens)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; i < npts; i++)
        if (!pts[i].nvector) {
            (*texts)[*n] = pts[i].text.p;
            (*lens)[(*n)++] = pts[i].text.len;
        }
    return qv_embed_check_texts(*texts, *lens, *n, err);
}

int qv_embedder_embed(qv_embedder_t *e, const char *const *texts, const size_t *lens, size_t n, float *out,
                      qv_err_t *err)
{
    if (n == 0)
        return QV_OK;
    int crc = qv_embed_check_texts(texts, lens, n, err);
    if (crc)
        return crc;
    int32_t *ids = malloc(n * e->max_tokens * sizeof *ids);
    item_t *items = malloc(n * sizeof *items);
    if (!ids || !items) {
        free(ids);
        free(items);
        return qv_err_set(err, QV_ENOMEM, "out of memory tokenizing %zu texts", n);
    }
    request_t req = {.remaining = n, .rc = QV_OK};
    int rc = QV_OK;
    uint64_t truncated = 0; /* texts longer than the model's window: their end is not in the vector */
    for (size_t i = 0; i < n && rc == QV_OK; i++) {
        uint32_t len = 0;
        bool cut = false;
        rc = qv_embed_tokenize(e->model, texts[i], lens[i], ids + i * e->max_tokens, &len, &cut, err);
        truncated += cut;
        if (rc) {
            char why[QV_ERR_MSG_MAX];
            memcpy(why, err->msg, sizeof why);
            qv_err_set(err, rc, "text %zu: %.200s", i, why);
        }
        items[i] = (item_t){ids + i * e->max_tokens, len, out + i * e->dim, &req};
    }
    if (rc == QV_OK && truncated)
        qv_metrics_embed_truncated(truncated);
    if (rc == QV_OK) {
        pthread_cond_init(&req.cv, NULL);
        pthread_mutex_lock(&e->mu);
        if (e->n + n > e->cap) {
            size_t cap = e->cap ? e->cap : 256;
            while (cap < e->n + n)
                cap *= 2;
            item_t *q = realloc(e->queue, cap * sizeof *q);
            if (!q)
                rc = qv_err_set(err, QV_ENOMEM, "out of memory queueing texts");
            else {
                e->queue = q;
                e->cap = cap;
            }
        }
        if (rc == QV_OK) {
            memcpy(e->queue + e->n, items, n * sizeof *items);
            e->n += n;
            pthread_cond_signal(&e->cv);
            while (req.remaining > 0)
                pthread_cond_wait(&req.cv, &e->mu);
            if (req.rc) {
                rc = req.rc;
                *err = req.err;
            }
        }
        pthread_mutex_unlock(&e->mu);
        pthread_cond_destroy(&req.cv);
    }
    free(ids);
    free(items);
    return rc;
}

/* ---- the API's text paths ---- */

int qv_embed_no_model(qv_err_t *err)
{
    return qv_err_set(err, QV_EPRECOND, "this server runs without an embedding model (start it with --model-dir; "
                                         "tools/fetch_model.sh installs one)");
}

int qv_embed_query(qv_embedder_t *e, qv_arena_t *ar, const qv_schema_t *s, const char *text, size_t nvector,
                   float **vec, qv_err_t *err)
{
    if (!s->embed)
        return qv_err_set(err, QV_EINVAL, "collection '%s' has no embedding model: search it with a vector", s->name);
    if (nvector)
        return qv_err_set(err, QV_EINVAL, "give either vector or text, not both");
    if (!e)
        return qv_embed_no_model(err);
    if (!(*vec = qv_arena_array(ar, s->dim, sizeof(float))))
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    size_t len = strlen(text);
    return qv_embedder_embed(e, &text, &len, 1, *vec, err);
}

int qv_embed_points(qv_embedder_t *e, qv_arena_t *ar, const qv_schema_t *s, qv_point_t *pts, size_t n,
                    qv_err_t *err)
{
    const char **texts;
    size_t *lens, want;
    int rc = qv_embed_text_points(ar, s, pts, n, &texts, &lens, &want, err);
    if (rc || !want)
        return rc;
    if (!e)
        return qv_embed_no_model(err);
    float *vecs = qv_arena_array(ar, want * s->dim, sizeof(float));
    if (!vecs)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    if ((rc = qv_embedder_embed(e, texts, lens, want, vecs, err)))
        return rc;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!pts[i].nvector) {
            pts[i].vector = vecs + k++ * s->dim;
            pts[i].nvector = s->dim;
        }
    return QV_OK;
}

int qv_embed_serve(qv_embedder_t *e, qv_arena_t *ar, const struct ProtobufCMessage *m, struct ProtobufCMessage **resp,
                   qv_err_t *err)
{
    const Quiver__V1__EmbedRequest *req = (const void *)m;
    if (!e)
        return qv_embed_no_model(err);
    if (req->n_texts == 0)
        return qv_err_set(err, QV_EINVAL, "no texts to embed");
    if (req->n_texts > QV_EMBED_TEXTS_MAX)
        return qv_err_set(err, QV_EINVAL, "%zu texts in one request exceeds the limit of %d", req->n_texts,
                          QV_EMBED_TEXTS_MAX);
    uint32_t dim = qv_embedder_dim(e);
    Quiver__V1__EmbedResponse *r = qv_arena_alloc(ar, sizeof *r);
    size_t *lens = qv_arena_array(ar, req->n_texts, sizeof *lens);
    float *vecs = qv_arena_array(ar, req->n_texts * dim, sizeof(float));
    Quiver__V1__Vector *v = qv_arena_array(ar, req->n_texts, sizeof *v);
    if (!r || !lens || !vecs || !v)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    quiver__v1__embed_response__init(r);
    if (!(r->vectors = qv_arena_array(ar, req->n_texts, sizeof *r->vectors)))
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    for (size_t i = 0; i < req->n_texts; i++)
        lens[i] = strlen(req->texts[i]);
    int rc = qv_embedder_embed(e, (const char *const *)req->texts, lens, req->n_texts, vecs, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < req->n_texts; i++) {
        quiver__v1__vector__init(&v[i]);
        v[i].values = vecs + i * dim;
        v[i].n_values = dim;
        r->vectors[i] = &v[i];
    }
    r->n_vectors = req->n_texts;
    r->dim = dim;
    r->model = QV_EMBED_MINILM_NAME;
    *resp = &r->base;
    return QV_OK;
}
