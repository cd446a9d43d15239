/* all-MiniLM-L6-v2 on the CPU: loading (config.json, vocab.txt, model.safetensors) and the batched forward pass.
 *
 * Forward pass (BERT encoder, post-LayerNorm; H = 384 hidden, 12 heads of d = 32, F = 1536, 6 layers):
 *   x = LayerNorm(word[id] + pos[p] + type[0])
 *   per layer:  qkv = x Wqkv^T + bqkv                      one sgemm for Q, K and V (stacked at load)
 *               per sequence and head: S = Q K^T / sqrt d   sgemm, then softmax over the sequence's keys
 *                                      ctx = S V            sgemm, written straight into its head's columns
 *               x = LayerNorm(x + ctx Wo^T + bo)            sgemm + fused add/bias/LayerNorm kernel
 *               x = LayerNorm(x + GELU(x Wi^T + bi) Wf^T + bf)   2 sgemms + fused bias/GELU, add/bias/LayerNorm
 *   embedding = L2-normalise(mean of the sequence's rows of x)
 *
 * Batching: the sequences of a call are packed back to back (row r of x is one token of one sequence), not padded to
 * the longest. This computes exactly what the padded form with an attention mask computes -- a padded key gets weight
 * exp(-inf) = 0 and padded rows are left out of the mean -- but spends no work on padding: the projections (90% of
 * the FLOPs) run on sum(len) rows instead of n * max(len), and attention runs per sequence on its own length. Long
 * calls are cut into chunks of at most QV_EMBED_CHUNK_ROWS rows, which bounds the scratch (15 KB per row) while keeping
 * every sgemm large enough to run at full speed (1024 rows: a layer's activations stay in the last-level cache; at
 * 4096 rows OpenBLAS measured slower per FLOP here). Each call allocates its own scratch, so calls are independent.
 *
 * Threads: the model runs every step of a pass on its own threads (pool.c): opts.threads (default: the online CPUs)
 * = the caller + helpers. Each projection is split by output features (each thread reads only its rows of W),
 * attention by (sequence, head), LayerNorm and GELU by rows (from 64 rows up). OpenBLAS is set to one thread at load
 * (a process-wide setting, so models are loaded at start-up, before other threads are inside OpenBLAS; Quiver has no
 * other OpenBLAS user) and is called from the tasks.
 *
 * Projections: sgemm repacks all of W on every call (44% of a 22-token pass, 22% of a 137-token one). So on CPUs with
 * AVX-512 the weights are packed once at load (+42 MB) and every projection runs on k->gemm_packed; elsewhere passes
 * of at most k->small_rows rows run on k->gemm_nt, which reads W in place, and larger ones on sgemm. Concurrent callers
 * are correct and independent: one at a time gets the helpers, the others run on their own thread. The intended
 * shape is the server's dynamic batcher: one thread running one qv_embed_seqs at a time over coalesced requests.
 * With the CUDA plugin, the same batcher feeds the GPU instead and this path is idle.
 *
 * Load-time checks: the config must describe what this code implements (model_type bert, hidden_act gelu, absolute
 * positions) within sane limits; every tensor must exist with exactly the shape the config implies; the vocabulary
 * size must match the embedding matrix. Weights are copied into one 64-byte aligned arena (F16/BF16 widened), so the
 * safetensors mapping is released before the load returns. */
#include "query/embed/model.h"

#include <cblas.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "query/embed/embed_int.h"
#include "query/embed/safetensors.h"

/* In OpenBLAS's cblas.h, but not in every BLAS's. */
void openblas_set_num_threads(int num_threads);

#define QV_EMBED_TEXT_GROUP 256  /* texts tokenized at once by qv_embed_texts: bounds its id buffer */
#define QV_EMBED_MAX_HIDDEN 4096 /* largest hidden_size accepted from a config (pooling keeps a row on the stack) */

typedef struct {
    const float *qkv, *o, *i, *f;
} packed_layer_t;

struct qv_embed_model {
    qv_embed_weights_t w;
    qv_embed_layer_t *layers;
    float *arena;               /* every weight */
    qv_tokenizer_t *tok;
    uint32_t max_tokens;
    const qv_embed_kernels_t *k;
    size_t small_rows;          /* without packed weights, passes of at most this many rows use k->gemm_nt */
    qv_embed_pool_t *pool;      /* helpers that run each step of a pass with the caller (NULL: one thread); pool.c */
    float *packed;              /* the projections' weights packed for k->gemm_packed (NULL: the tier has none) */
    packed_layer_t *pl;         /* per layer, where each projection's packed weights start */
};

/* Up to k->small_rows rows (tokens in one pass) the projections run on k->gemm_nt, which reads the weights in place,
 * instead of sgemm, which repacks all of them first: at 22 rows the repacking was 44% of the pass. Above it sgemm's
 * blocking wins. $QV_EMBED_SMALL_ROWS overrides it (0: always sgemm), for measuring the two against each other. */
static size_t small_rows_setting(const qv_embed_kernels_t *k)
{
    const char *e = getenv("QV_EMBED_SMALL_ROWS");
    if (e && *e) {
        char *end;
        unsigned long v = strtoul(e, &end, 10);
        if (*end == '\0' && v <= 4096)
            return v;
    }
    return k->small_rows;
}

/* The projections: how each is computed (see "Projections" above) and the unit its output features are split at
 * between threads. The kernels' units are whole panels or 4-output blocks, so they compute every output exactly as
 * without the split; sgemm may pick another kernel for a slice than for the whole, so it may differ in rounding. */
typedef enum { PROJ_PACKED, PROJ_NT, PROJ_SGEMM } proj_kind_t;

typedef struct {
    proj_kind_t kind;
    const qv_embed_kernels_t *k;
    size_t rows, out, in, ldc, unit, parts;
    const float *x, *w;  /* w: packed for PROJ_PACKED, else [out][in] */
    float *c;
    bool accumulate;
} proj_job_t;

static void proj_task(void *arg, int task, int worker)
{
    (void)worker;
    const proj_job_t *j = arg;
    size_t o0, o1;
    qv__embed_task_range(j->out, j->unit, task, j->parts, &o0, &o1);
    if (o1 <= o0)
        return;
    const float *w = j->w + o0 * j->in; /* a packed panel starts at the same offset as its first row of W */
    switch (j->kind) {
    case PROJ_PACKED:
        j->k->gemm_packed(j->rows, o1 - o0, j->in, j->x, j->in, w, j->c + o0, j->ldc, j->accumulate);
        break;
    case PROJ_NT:
        j->k->gemm_nt(j->rows, o1 - o0, j->in, j->x, j->in, w, j->c + o0, j->ldc, j->accumulate);
        break;
    case PROJ_SGEMM:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->rows, (int)(o1 - o0), (int)j->in, 1.0f, j->x,
                    (int)j->in, w, (int)j->in, j->accumulate ? 1.0f : 0.0f, j->c + o0, (int)j->ldc);
        break;
    }
}

/* x [rows][in] times W^T ([out][in], as stored; wp: packed for k->gemm_packed, or NULL) into c (ldc floats per row),
 * added to c when accumulate. Split by output features across the model's threads, so each thread reads only its
 * own part of W: two parts per thread for the kernels (a slow thread then takes fewer), one for sgemm (each call
 * packs its own copy of x). */
static void project(const qv_embed_model_t *m, size_t rows, size_t out, size_t in, const float *x, const float *w,
                    const float *wp, float *c, size_t ldc, bool accumulate)
{
    const size_t threads = (size_t)qv__embed_pool_threads(m->pool);
    proj_job_t j = {.k = m->k, .rows = rows, .out = out, .in = in, .ldc = ldc, .x = x, .w = w, .c = c,
                    .accumulate = accumulate};
    if (wp)
        j.kind = PROJ_PACKED, j.w = wp, j.unit = QV_PACK_NR, j.parts = 2 * threads;
    else if (rows <= m->small_rows && in % 8 == 0)
        j.kind = PROJ_NT, j.unit = 4, j.parts = 2 * threads;
    else
        j.kind = PROJ_SGEMM, j.unit = 16, j.parts = threads;
    size_t units = (out + j.unit - 1) / j.unit;
    if (j.parts > units)
        j.parts = units;
    qv__embed_pool_for(m->pool, (int)j.parts, proj_task, &j);
}

/* LayerNorm (x = LayerNorm(x + add + bias) * g + b; add NULL: of x alone) or, with gelu, y = GELU(y + bias), over
 * rows of h floats, split by rows from 64 rows up (below, a hand-off costs more than the work). */
typedef struct {
    const qv_embed_kernels_t *k;
    bool gelu;
    float *x, *add;
    const float *bias, *g, *b;
    size_t rows, h, parts;
    float eps;
} rows_job_t;

static void rows_task(void *arg, int task, int worker)
{
    (void)worker;
    const rows_job_t *j = arg;
    size_t r0, r1;
    qv__embed_task_range(j->rows, 1, task, j->parts, &r0, &r1);
    if (r1 <= r0)
        return;
    if (j->gelu)
        j->k->bias_gelu(j->x + r0 * j->h, j->bias, r1 - r0, j->h);
    else
        j->k->add_layernorm(j->x + r0 * j->h, j->add ? j->add + r0 * j->h : NULL, j->bias, j->g, j->b, r1 - r0, j->h,
                            j->eps);
}

static void run_rows(const qv_embed_model_t *m, rows_job_t *j)
{
    j->k = m->k;
    j->parts = j->rows >= 64 ? (size_t)qv__embed_pool_threads(m->pool) : 1;
    qv__embed_pool_for(m->pool, (int)j->parts, rows_task, j);
}

/* ---- loading ---- */

/* Packs W ([out][in]) at *next and advances it; returns where it went. */
static const float *pack_one(float **next, const float *w, size_t out, size_t in)
{
    float *dst = *next;
    qv__embed_pack_w(w, out, in, dst);
    *next += qv__embed_packed_floats(out, in);
    return dst;
}

/* Packs every projection's weights for k->gemm_packed, when the tier has it: QV_OK or QV_ENOMEM. */
static int pack_weights(qv_embed_model_t *m, qv_err_t *err)
{
    if (!m->k->gemm_packed)
        return QV_OK;
    const qv_embed_weights_t *w = &m->w;
    const size_t h = w->hidden, f = w->ffn;
    size_t floats = w->layers * (qv__embed_packed_floats(3 * h, h) + qv__embed_packed_floats(h, h) +
                                 qv__embed_packed_floats(f, h) + qv__embed_packed_floats(h, f));
    m->packed = aligned_alloc(64, (floats * sizeof(float) + 63) & ~(size_t)63);
    m->pl = calloc(w->layers, sizeof *m->pl);
    if (!m->packed || !m->pl)
        return qv_err_set(err, QV_ENOMEM, "out of memory for %zu MB of packed weights", (floats * 4) >> 20);
    float *next = m->packed;
    for (uint32_t l = 0; l < w->layers; l++) {
        const qv_embed_layer_t *L = &w->layer[l];
        m->pl[l] = (packed_layer_t){.qkv = pack_one(&next, L->wqkv, 3 * h, h), .o = pack_one(&next, L->wo, h, h),
                                    .i = pack_one(&next, L->wi, f, h), .f = pack_one(&next, L->wf, h, f)};
    }
    return QV_OK;
}

typedef struct {
    const char *dir;
    const qv_st_t *st;
    const char *prefix;  /* "" or "bert." */
    float *next;         /* arena cursor */
    qv_err_t *err;
} loader_t;

static int load_tensor(loader_t *ld, const float **dst, const char *name, uint32_t ndim, uint64_t d0, uint64_t d1)
{
    char full[128];
    snprintf(full, sizeof full, "%s%s", ld->prefix, name);
    uint64_t shape[2] = {d0, d1};
    int rc = qv_st_read_f32(ld->st, full, ndim, shape, ld->next, ld->err);
    if (rc != QV_OK) {
        if (ld->err) {
            char msg[QV_ERR_MSG_MAX];
            snprintf(msg, sizeof msg, "%.80s/model.safetensors: %.150s", ld->dir, ld->err->msg);
            memcpy(ld->err->msg, msg, sizeof msg);
        }
        return rc;
    }
    *dst = ld->next;
    ld->next += d0 * (ndim == 2 ? d1 : 1);
    return QV_OK;
}

/* Q, K and V are three tensors in the file and one stacked matrix here. */
static int load_qkv(loader_t *ld, qv_embed_layer_t *L, int l, uint32_t h)
{
    static const char *const parts[3] = {"query", "key", "value"};
    float *w = ld->next, *b = w + (size_t)3 * h * h;
    const float *ignored;
    char name[96];
    for (int p = 0; p < 3; p++) {
        ld->next = w + (size_t)p * h * h;
        snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.weight", l, parts[p]);
        int rc = load_tensor(ld, &ignored, name, 2, h, h);
        if (rc != QV_OK)
            return rc;
        ld->next = b + (size_t)p * h;
        snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.bias", l, parts[p]);
        if ((rc = load_tensor(ld, &ignored, name, 1, h, 0)) != QV_OK)
            return rc;
    }
    L->wqkv = w;
    L->bqkv = b;
    ld->next = b + 3 * h;
    return QV_OK;
}

static int load_layer(loader_t *ld, qv_embed_layer_t *L, int l, uint32_t h, uint32_t f)
{
    char name[96];
    int rc;
#define T(dst, suffix, ndim, d0, d1)                                                       \
    do {                                                                                   \
        snprintf(name, sizeof name, "encoder.layer.%d.%s", l, suffix);                     \
        if ((rc = load_tensor(ld, &L->dst, name, ndim, d0, d1)) != QV_OK)                  \
            return rc;                                                                     \
    } while (0)
    if ((rc = load_qkv(ld, L, l, h)) != QV_OK)
        return rc;
    T(wo, "attention.output.dense.weight", 2, h, h);
    T(bo, "attention.output.dense.bias", 1, h, 0);
    T(ln1_g, "attention.output.LayerNorm.weight", 1, h, 0);
    T(ln1_b, "attention.output.LayerNorm.bias", 1, h, 0);
    T(wi, "intermediate.dense.weight", 2, f, h);
    T(bi, "intermediate.dense.bias", 1, f, 0);
    T(wf, "output.dense.weight", 2, h, f);
    T(bf, "output.dense.bias", 1, h, 0);
    T(ln2_g, "output.LayerNorm.weight", 1, h, 0);
    T(ln2_b, "output.LayerNorm.bias", 1, h, 0);
#undef T
    return QV_OK;
}

static int cfg_uint(const json_t *cfg, const char *key, uint32_t lo, uint32_t hi, uint32_t *out, const char *path,
                    qv_err_t *err)
{
    const json_t *v = json_object_get(cfg, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return qv_err_set(err, QV_ECORRUPT, "%.150s: \"%s\" is not an integer in %u..%u", path, key, lo, hi);
    *out = (uint32_t)json_integer_value(v);
    return QV_OK;
}

static int cfg_str(const json_t *cfg, const char *key, const char *want, bool required, const char *path,
                   qv_err_t *err)
{
    const json_t *v = json_object_get(cfg, key);
    if (!v && !required)
        return QV_OK;
    if (!json_is_string(v) || strcmp(json_string_value(v), want) != 0)
        return qv_err_set(err, QV_ECORRUPT, "%.150s: \"%s\" is not \"%s\" (the only kind this build implements)",
                          path, key, want);
    return QV_OK;
}

static int load_config(const char *dir, qv_embed_weights_t *w, qv_err_t *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t jerr;
    json_t *cfg = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!cfg) {
        if (access(path, F_OK) != 0)
            return qv_err_set(err, QV_ENOTFOUND, "%.150s: missing (run tools/fetch_model.sh)", path);
        return qv_err_set(err, QV_ECORRUPT, "%.150s: %.80s (line %d)", path, jerr.text, jerr.line);
    }
    int rc = QV_OK;
    uint32_t eps_ok = 0;
    if (!json_is_object(cfg)) {
        rc = qv_err_set(err, QV_ECORRUPT, "%.150s: not a JSON object", path);
        goto out;
    }
    if ((rc = cfg_str(cfg, "model_type", "bert", false, path, err)) ||
        (rc = cfg_str(cfg, "hidden_act", "gelu", true, path, err)) ||
        (rc = cfg_str(cfg, "position_embedding_type", "absolute", false, path, err)) ||
        (rc = cfg_uint(cfg, "hidden_size", 8, QV_EMBED_MAX_HIDDEN, &w->hidden, path, err)) ||
        (rc = cfg_uint(cfg, "num_attention_heads", 1, 128, &w->heads, path, err)) ||
        (rc = cfg_uint(cfg, "num_hidden_layers", 1, 64, &w->layers, path, err)) ||
        (rc = cfg_uint(cfg, "intermediate_size", 1, 65536, &w->ffn, path, err)) ||
        (rc = cfg_uint(cfg, "vocab_size", 5, QV_TOK_VOCAB_MAX, &w->vocab, path, err)) ||
        (rc = cfg_uint(cfg, "max_position_embeddings", 2, 1u << 16, &w->max_pos, path, err)) ||
        (rc = cfg_uint(cfg, "type_vocab_size", 1, 1024, &w->types, path, err)))
        goto out;
    if (w->hidden % w->heads != 0) {
        rc = qv_err_set(err, QV_ECORRUPT, "%.150s: hidden_size %u is not a multiple of num_attention_heads %u", path,
                        w->hidden, w->heads);
        goto out;
    }
    const json_t *eps = json_object_get(cfg, "layer_norm_eps");
    w->ln_eps = 1e-12f;
    if (eps) {
        double e = json_number_value(eps);
        eps_ok = json_is_number(eps) && e > 0 && e < 1;
        if (!eps_ok) {
            rc = qv_err_set(err, QV_ECORRUPT, "%.150s: \"layer_norm_eps\" is not a number in (0, 1)", path);
            goto out;
        }
        w->ln_eps = (float)e;
    }
out:
    json_decref(cfg);
    return rc;
}

int qv_embed_model_load_opts(const char *dir, const qv_embed_opts_t *opts, qv_embed_model_t **out, qv_err_t *err)
{
    *out = NULL;
    if (!dir || !*dir)
        return qv_err_set(err, QV_EINVAL, "no model directory given");
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return qv_err_set(err, QV_ENOTFOUND, "model directory %.150s: %s (run tools/fetch_model.sh)", dir,
                          stat(dir, &sb) != 0 ? strerror(errno) : "not a directory");
    qv_embed_model_t *m = calloc(1, sizeof *m);
    if (!m)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    qv_embed_weights_t *w = &m->w;
    qv_st_t *st = NULL;
    char path[PATH_MAX];
    int rc = load_config(dir, w, err);
    if (rc != QV_OK)
        goto fail;
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    if ((rc = qv_tokenizer_load(path, &m->tok, err)) != QV_OK) {
        if (rc == QV_ENOTFOUND && err)
            strncat(err->msg, " (run tools/fetch_model.sh)", sizeof err->msg - strlen(err->msg) - 1);
        goto fail;
    }
    if (qv_tokenizer_vocab_size(m->tok) != w->vocab) {
        rc = qv_err_set(err, QV_ECORRUPT, "%.150s: %u tokens, but config.json says vocab_size %u", path,
                        qv_tokenizer_vocab_size(m->tok), w->vocab);
        goto fail;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if ((rc = qv_st_open(path, &st, err)) != QV_OK) {
        if (rc == QV_ENOTFOUND && err)
            strncat(err->msg, " (run tools/fetch_model.sh)", sizeof err->msg - strlen(err->msg) - 1);
        goto fail;
    }

    uint64_t h = w->hidden, f = w->ffn;
    uint64_t per_layer = 3 * h * h + 3 * h + h * h + h + 2 * h + f * h + f + h * f + h + 2 * h;
    uint64_t total = ((uint64_t)w->vocab + w->max_pos + w->types) * h + 2 * h + per_layer * w->layers;
    if (total > (SIZE_MAX / 4) - 16) {
        rc = qv_err_set(err, QV_ECORRUPT, "%.150s/config.json: model of %llu weights is too large", dir,
                        (unsigned long long)total);
        goto fail;
    }
    size_t bytes = ((size_t)total * 4 + 63) & ~(size_t)63;
    m->arena = aligned_alloc(64, bytes);
    m->layers = calloc(w->layers, sizeof *m->layers);
    if (!m->arena || !m->layers) {
        rc = qv_err_set(err, QV_ENOMEM, "out of memory for %zu MB of weights", bytes >> 20);
        goto fail;
    }
    loader_t ld = {.dir = dir, .st = st, .prefix = "", .next = m->arena, .err = err};
    if (!qv_st_find(st, "embeddings.word_embeddings.weight") && qv_st_find(st, "bert.embeddings.word_embeddings.weight"))
        ld.prefix = "bert.";
    if ((rc = load_tensor(&ld, &w->word, "embeddings.word_embeddings.weight", 2, w->vocab, h)) ||
        (rc = load_tensor(&ld, &w->pos, "embeddings.position_embeddings.weight", 2, w->max_pos, h)) ||
        (rc = load_tensor(&ld, &w->type, "embeddings.token_type_embeddings.weight", 2, w->types, h)) ||
        (rc = load_tensor(&ld, &w->emb_ln_g, "embeddings.LayerNorm.weight", 1, h, 0)) ||
        (rc = load_tensor(&ld, &w->emb_ln_b, "embeddings.LayerNorm.bias", 1, h, 0)))
        goto fail;
    for (uint32_t l = 0; l < w->layers; l++)
        if ((rc = load_layer(&ld, &m->layers[l], (int)l, (uint32_t)h, (uint32_t)f)) != QV_OK)
            goto fail;
    w->layer = m->layers;
    qv_st_free(st);
    m->max_tokens = w->max_pos < QV_TOK_MAX_LEN ? w->max_pos : QV_TOK_MAX_LEN;
    m->k = qv__embed_kernels();
    m->small_rows = small_rows_setting(m->k);
    if ((rc = pack_weights(m, err)) != QV_OK) {
        qv_embed_model_free(m);
        return rc;
    }

    int threads = opts && opts->threads > 0 ? opts->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1)
        threads = 1;
    openblas_set_num_threads(1); /* the model's own threads split each step (pool.c) */
    if (threads > 1 && qv__embed_pool_start(threads - 1, &m->pool) != 0) {
        qv_embed_model_free(m);
        return qv_err_set(err, QV_ENOMEM, "cannot start %d embedding helper threads", threads - 1);
    }
    *out = m;
    return QV_OK;
fail:
    qv_st_free(st);
    qv_embed_model_free(m);
    return rc;
}

/* copies count floats from src to the arena cursor and returns where they went */
static const float *copy_tensor(float **next, const float *src, size_t count)
{
    float *dst = *next;
    memcpy(dst, src, count * sizeof(float));
    *next += count;
    return dst;
}

int qv_embed_model_from_weights(const qv_embed_weights_t *src, qv_embed_model_t **out, qv_err_t *err)
{
    *out = NULL;
    if (!src || !src->layer || !src->word || !src->pos || !src->type || !src->emb_ln_g || !src->emb_ln_b)
        return qv_err_set(err, QV_EINVAL, "embedding weights: NULL tensor");
    if (src->hidden == 0 || src->hidden > QV_EMBED_MAX_HIDDEN || src->heads == 0 || src->hidden % src->heads != 0 ||
        src->ffn == 0 || src->ffn > 16 * QV_EMBED_MAX_HIDDEN || src->layers == 0 || src->layers > 64 ||
        src->vocab == 0 || src->vocab > (1u << 22) || src->max_pos == 0 || src->max_pos > 65536 || src->types == 0 ||
        src->types > 1024)
        return qv_err_set(err, QV_EINVAL, "embedding weights of an unsupported shape (hidden %u, heads %u, layers %u)",
                          src->hidden, src->heads, src->layers);
    for (uint32_t l = 0; l < src->layers; l++) {
        const qv_embed_layer_t *S = &src->layer[l];
        if (!S->wqkv || !S->bqkv || !S->wo || !S->bo || !S->ln1_g || !S->ln1_b || !S->wi || !S->bi || !S->wf ||
            !S->bf || !S->ln2_g || !S->ln2_b)
            return qv_err_set(err, QV_EINVAL, "embedding weights: NULL tensor in layer %u", l);
    }
    const size_t h = src->hidden, f = src->ffn;
    const size_t per_layer = 3 * h * h + 3 * h + h * h + h + 2 * h + f * h + f + h * f + h + 2 * h;
    const size_t total = ((size_t)src->vocab + src->max_pos + src->types) * h + 2 * h + per_layer * src->layers;
    qv_embed_model_t *m = calloc(1, sizeof *m);
    if (!m)
        return qv_err_set(err, QV_ENOMEM, "out of memory");
    m->arena = aligned_alloc(64, (total * 4 + 63) & ~(size_t)63);
    m->layers = calloc(src->layers, sizeof *m->layers);
    if (!m->arena || !m->layers) {
        qv_embed_model_free(m);
        return qv_err_set(err, QV_ENOMEM, "out of memory for %zu MB of weights", (total * 4) >> 20);
    }
    qv_embed_weights_t *w = &m->w;
    *w = *src;
    float *next = m->arena;
    w->word = copy_tensor(&next, src->word, (size_t)src->vocab * h);
    w->pos = copy_tensor(&next, src->pos, (size_t)src->max_pos * h);
    w->type = copy_tensor(&next, src->type, (size_t)src->types * h);
    w->emb_ln_g = copy_tensor(&next, src->emb_ln_g, h);
    w->emb_ln_b = copy_tensor(&next, src->emb_ln_b, h);
    for (uint32_t l = 0; l < src->layers; l++) {
        const qv_embed_layer_t *S = &src->layer[l];
        qv_embed_layer_t *L = &m->layers[l];
        L->wqkv = copy_tensor(&next, S->wqkv, 3 * h * h);
        L->bqkv = copy_tensor(&next, S->bqkv, 3 * h);
        L->wo = copy_tensor(&next, S->wo, h * h);
        L->bo = copy_tensor(&next, S->bo, h);
        L->ln1_g = copy_tensor(&next, S->ln1_g, h);
        L->ln1_b = copy_tensor(&next, S->ln1_b, h);
        L->wi = copy_tensor(&next, S->wi, f * h);
        L->bi = copy_tensor(&next, S->bi, f);
        L->wf = copy_tensor(&next, S->wf, h * f);
        L->bf = copy_tensor(&next, S->bf, h);
        L->ln2_g = copy_tensor(&next, S->ln2_g, h);
        L->ln2_b = copy_tensor(&next, S->ln2_b, h);
    }
    w->layer = m->layers;
    m->max_tokens = w->max_pos < QV_TOK_MAX_LEN ? w->max_pos : QV_TOK_MAX_LEN;
    m->k = qv__embed_kernels();
    m->small_rows = small_rows_setting(m->k);
    int rc = pack_weights(m, err);
    if (rc != QV_OK) {
        qv_embed_model_free(m);
        return rc;
    }
    *out = m;
    return QV_OK;
}

int qv_embed_model_load(const char *dir, qv_embed_model_t **out, qv_err_t *err)
{
    return qv_embed_model_load_opts(dir, NULL, out, err);
}

void qv_embed_model_free(qv_embed_model_t *m)
{
    if (!m)
        return;
    qv__embed_pool_stop(m->pool);
    free(m->packed);
    free(m->pl);
    qv_tokenizer_free(m->tok);
    free(m->arena);
    free(m->layers);
    free(m);
}

uint32_t qv_embed_dim(const qv_embed_model_t *m) { return m->w.hidden; }
uint32_t qv_embed_max_tokens(const qv_embed_model_t *m) { return m->max_tokens; }
const qv_tokenizer_t *qv_embed_tokenizer(const qv_embed_model_t *m) { return m->tok; }
const qv_embed_weights_t *qv_embed_weights(const qv_embed_model_t *m) { return &m->w; }

/* ---- forward pass ---- */

typedef struct {
    float *x, *qkv, *ctx, *tmp, *ff;
    float *scores;        /* one max_len x max_len block per thread */
    size_t score_stride;  /* floats between two threads' blocks */
    size_t *off;          /* first row of each sequence of a chunk */
} scratch_t;

/* Attention of one (sequence, head) pair: task = sequence * heads + head. */
typedef struct {
    const qv_embed_kernels_t *k;
    const qv_embed_seq_t *seqs;
    const size_t *off;
    size_t heads, h, d;
    float scale;
    const float *qkv;
    float *ctx, *scores;
    size_t score_stride;
} attn_job_t;

static void attn_task(void *arg, int task, int worker)
{
    const attn_job_t *j = arg;
    const size_t i = (size_t)task / j->heads, hd = (size_t)task % j->heads;
    const int len = (int)j->seqs[i].len, H = (int)j->h, D = (int)j->d;
    float *sc = j->scores + (size_t)worker * j->score_stride;
    const float *q = j->qkv + j->off[i] * 3 * j->h + hd * j->d, *kk = q + j->h, *v = q + 2 * j->h;
    /* S = Q K^T / sqrt d, softmax over the sequence's keys, ctx = S V into this head's columns */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, len, len, D, j->scale, q, 3 * H, kk, 3 * H, 0.0f, sc, len);
    j->k->softmax(sc, (size_t)len, (size_t)len, (size_t)len);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, len, D, len, 1.0f, sc, len, v, 3 * H, 0.0f,
                j->ctx + j->off[i] * j->h + hd * j->d, H);
}

/* Runs seqs[0..n) (rows tokens in all, at most QV_EMBED_CHUNK_ROWS unless n == 1) and writes n embeddings. */
static void forward(const qv_embed_model_t *m, const qv_embed_seq_t *seqs, size_t n, size_t rows,
                    const scratch_t *s, float *out)
{
    const qv_embed_weights_t *w = &m->w;
    const qv_embed_kernels_t *k = m->k;
    const size_t h = w->hidden, f = w->ffn, nh = w->heads, d = h / nh;

    /* embeddings */
    float *x = s->x;
    for (size_t i = 0; i < n; i++) {
        for (uint32_t p = 0; p < seqs[i].len; p++, x += h) {
            const float *we = w->word + (size_t)seqs[i].ids[p] * h, *pe = w->pos + (size_t)p * h;
            for (size_t j = 0; j < h; j++)
                x[j] = we[j] + pe[j] + w->type[j];
        }
    }
    run_rows(m, &(rows_job_t){.x = s->x, .g = w->emb_ln_g, .b = w->emb_ln_b, .rows = rows, .h = h, .eps = w->ln_eps});
    for (size_t i = 0, off = 0; i < n; off += seqs[i].len, i++)
        s->off[i] = off;
    attn_job_t attn = {k, seqs, s->off, nh, h, d, 1.0f / sqrtf((float)d), s->qkv, s->ctx, s->scores, s->score_stride};

    for (uint32_t l = 0; l < w->layers; l++) {
        const qv_embed_layer_t *L = &w->layer[l];
        /* the bias is copied in first and the product added to it (beta = 1): one pass fewer than zero + add */
        for (size_t r = 0; r < rows; r++)
            memcpy(s->qkv + r * 3 * h, L->bqkv, 3 * h * sizeof(float));
        const packed_layer_t *P = m->pl ? &m->pl[l] : &(packed_layer_t){0};
        project(m, rows, 3 * h, h, s->x, L->wqkv, P->qkv, s->qkv, 3 * h, true);
        qv__embed_pool_for(m->pool, (int)(n * nh), attn_task, &attn);
        project(m, rows, h, h, s->ctx, L->wo, P->o, s->tmp, h, false);
        run_rows(m, &(rows_job_t){.x = s->x, .add = s->tmp, .bias = L->bo, .g = L->ln1_g, .b = L->ln1_b, .rows = rows,
                                  .h = h, .eps = w->ln_eps});
        project(m, rows, f, h, s->x, L->wi, P->i, s->ff, f, false);
        run_rows(m, &(rows_job_t){.gelu = true, .x = s->ff, .bias = L->bi, .rows = rows, .h = f});
        project(m, rows, h, f, s->ff, L->wf, P->f, s->tmp, h, false);
        run_rows(m, &(rows_job_t){.x = s->x, .add = s->tmp, .bias = L->bf, .g = L->ln2_g, .b = L->ln2_b, .rows = rows,
                                  .h = h, .eps = w->ln_eps});
    }

    /* mean pooling (every row of a packed sequence is a real token) and L2 normalisation, in double */
    x = s->x;
    for (size_t i = 0; i < n; i++) {
        float *o = out + i * h;
        double acc[QV_EMBED_MAX_HIDDEN];
        for (size_t j = 0; j < h; j++)
            acc[j] = 0;
        for (uint32_t p = 0; p < seqs[i].len; p++, x += h)
            for (size_t j = 0; j < h; j++)
                acc[j] += x[j];
        double norm = 0;
        for (size_t j = 0; j < h; j++) {
            acc[j] /= seqs[i].len;
            norm += acc[j] * acc[j];
        }
        double inv = 1.0 / fmax(sqrt(norm), 1e-12); /* sentence-transformers' Normalize: x / max(|x|, 1e-12) */
        for (size_t j = 0; j < h; j++)
            o[j] = (float)(acc[j] * inv);
    }
}

int qv_embed_seqs(const qv_embed_model_t *m, const qv_embed_seq_t *seqs, size_t n, float *out, qv_err_t *err)
{
    if (n == 0)
        return QV_OK;
    size_t total = 0, max_len = 0;
    for (size_t i = 0; i < n; i++) {
        if (!seqs[i].ids || seqs[i].len < 1 || seqs[i].len > m->max_tokens)
            return qv_err_set(err, QV_EINVAL, "sequence %zu: %u tokens (want 1..%u)", i, seqs[i].len,
                              m->max_tokens);
        for (uint32_t p = 0; p < seqs[i].len; p++)
            if (seqs[i].ids[p] < 0 || (uint32_t)seqs[i].ids[p] >= m->w.vocab)
                return qv_err_set(err, QV_EINVAL, "sequence %zu: token %u has id %d, outside the vocabulary", i, p,
                                  seqs[i].ids[p]);
        total += seqs[i].len;
        if (seqs[i].len > max_len)
            max_len = seqs[i].len;
    }
    const size_t h = m->w.hidden, f = m->w.ffn;
    size_t cap = total < QV_EMBED_CHUNK_ROWS ? total : QV_EMBED_CHUNK_ROWS;
    if (cap < max_len)
        cap = max_len;
    const size_t threads = (size_t)qv__embed_pool_threads(m->pool);
    size_t floats = cap * (6 * h + f) + threads * max_len * max_len;
    float *buf = malloc(floats * sizeof(float));
    size_t *off = malloc(n * sizeof *off);
    if (!buf || !off) {
        free(buf);
        free(off);
        return qv_err_set(err, QV_ENOMEM, "out of memory for %zu MB of scratch", (floats * 4) >> 20);
    }
    scratch_t s = {.x = buf, .off = off, .score_stride = max_len * max_len};
    s.qkv = s.x + cap * h;
    s.ctx = s.qkv + cap * 3 * h;
    s.tmp = s.ctx + cap * h;
    s.ff = s.tmp + cap * h;
    s.scores = s.ff + cap * f;

    size_t first = 0, rows = 0;
    for (size_t i = 0; i < n; i++) {
        if (rows + seqs[i].len > cap) {
            forward(m, seqs + first, i - first, rows, &s, out + first * h);
            first = i;
            rows = 0;
        }
        rows += seqs[i].len;
    }
    forward(m, seqs + first, n - first, rows, &s, out + first * h);
    free(buf);
    free(off);
    return QV_OK;
}

int qv_embed_tokenize(const qv_embed_model_t *m, const char *text, size_t len, int32_t *ids, uint32_t *nids,
                      bool *truncated, qv_err_t *err)
{
    /* one id more than fits: a text that fills it was cut. Dropping the last wordpiece before [SEP] then gives
     * exactly the encoding at max_tokens ([CLS], the first max_tokens - 2 wordpieces, [SEP]). */
    int32_t one_more[QV_TOK_MAX_LEN + 1];
    size_t got = 0, max = m->max_tokens;
    bool spill = max <= QV_TOK_MAX_LEN;
    int rc = qv_tokenizer_encode(m->tok, text, len, spill ? max + 1 : max, spill ? one_more : ids, &got, err);
    bool cut = spill && rc == QV_OK && got > max;
    if (spill && rc == QV_OK) {
        if (cut) {
            one_more[max - 1] = one_more[max]; /* [SEP] */
            got = max;
        }
        memcpy(ids, one_more, got * sizeof *ids);
    }
    *nids = (uint32_t)got;
    if (truncated)
        *truncated = cut;
    return rc;
}

int qv_embed_texts(const qv_embed_model_t *m, const char *const *texts, const size_t *lens, size_t n, float *out,
                   qv_err_t *err)
{
    if (n == 0)
        return QV_OK;
    if (!texts)
        return qv_err_set(err, QV_EINVAL, "no texts");
    size_t group = n < QV_EMBED_TEXT_GROUP ? n : QV_EMBED_TEXT_GROUP;
    int32_t *ids = malloc(group * m->max_tokens * sizeof *ids);
    qv_embed_seq_t *seqs = malloc(group * sizeof *seqs);
    int rc = QV_OK;
    if (!ids || !seqs) {
        rc = qv_err_set(err, QV_ENOMEM, "out of memory for %zu texts", group);
        goto out;
    }
    for (size_t base = 0; base < n; base += group) {
        size_t cnt = n - base < group ? n - base : group;
        for (size_t i = 0; i < cnt; i++) {
            const char *t = texts[base + i];
            if (!t) {
                rc = qv_err_set(err, QV_EINVAL, "text %zu is NULL", base + i);
                goto out;
            }
            int32_t *slot = ids + i * m->max_tokens;
            rc = qv_embed_tokenize(m, t, lens ? lens[base + i] : strlen(t), slot, &seqs[i].len, NULL, err);
            if (rc != QV_OK) {
                if (err) {
                    char msg[QV_ERR_MSG_MAX];
                    snprintf(msg, sizeof msg, "text %zu: %.200s", base + i, err->msg);
                    memcpy(err->msg, msg, sizeof msg);
                }
                goto out;
            }
            seqs[i].ids = slot;
        }
        if ((rc = qv_embed_seqs(m, seqs, cnt, out + base * m->w.hidden, err)) != QV_OK)
            goto out;
    }
out:
    free(ids);
    free(seqs);
    return rc;
}
