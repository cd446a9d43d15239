/* The embedding forward pass on the device: query/embed/model.c's BERT encoder with cuBLAS for the products and the
 * row kernels of kernels/cuda/embed.cuh for everything else.
 *
 *   x = LayerNorm(word[id] + pos[p] + type[0])                   embed_kernel (one warp per row)
 *   per layer:  qkv = x Wqkv^T + bqkv                            cublasSgemm + bias_kernel
 *               S[b,h] = Q K^T / sqrt d over the chunk's longest  cublasSgemmBatched over (sequence, head) pairs
 *                        length L, keys past the sequence masked   softmax_mask_kernel (one warp per score row)
 *               ctx_pad[b,h] = S V; ctx = the rows < len           cublasSgemmBatched + gather_kernel
 *               x = LayerNorm(x + ctx Wo^T + bo)                   cublasSgemm + add_ln_kernel
 *               x = LayerNorm(x + GELU(x Wi^T + bi) Wf^T + bf)     2 cublasSgemm, bias_gelu_kernel, add_ln_kernel
 *   embedding = L2-normalise(mean of the sequence's rows)          pool_kernel (one block per sequence)
 *
 * Sequences are packed for the projections (as on the CPU: no work on padding there) and padded only inside
 * attention, where a batched GEMM needs one shape; tests/unit/test_gpu_logic.c checks that the padded, masked
 * attention equals per-sequence attention. The K and V rows a short sequence reads past its end belong to the next
 * sequence or to L zeroed rows after the last one, and the mask gives them weight exactly 0. A chunk holds at most
 * QV_EMBED_CHUNK_ROWS packed rows and PAD_ROWS padded rows (sequences x L), which bounds the scratch (~70 MB for
 * all-MiniLM-L6-v2) whatever the mix of lengths; one long sequence among short ones starts a new chunk rather
 * than padding them all.
 *
 * Precision: fp32 throughout, cuBLAS in its default math mode (no TF32), the CPU's exp/erf approximations. */
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/embed.cuh"
#include "kernels/cuda/plugin.cuh"

#define FULL_MASK 0xFFFFFFFFu
#define ROW_WARPS 8          /* rows per block of the row kernels */
#define PAD_ROWS 4096        /* sequences x L per chunk */
#define POOL_THREADS 256
#define MAX_HIDDEN 4096

typedef struct {
    const float *wqkv, *bqkv, *wo, *bo, *ln1_g, *ln1_b, *wi, *bi, *wf, *bf, *ln2_g, *ln2_b;
} dlayer_t;

struct qv_gpu_model {
    qv_gpu_t *g;
    uint32_t vocab, hidden, heads, ffn, layers, max_pos, types, max_tokens;
    float eps;
    float *arena;  /* every weight, on the device (cudaMalloc) */
    const float *word, *pos, *type, *emb_g, *emb_b;
    dlayer_t *layer;  /* host array of device pointers */
};

/* ---- kernels ---- */

__device__ static float warp_sum(float v)
{
    for (int off = 16; off >= 1; off /= 2)
        v += __shfl_xor_sync(FULL_MASK, v, off);
    return v;
}

__device__ static float warp_max(float v)
{
    for (int off = 16; off >= 1; off /= 2)
        v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, off));
    return v;
}

/* LayerNorm of one row by one warp (the phases of qv_k_layernorm_row_sim, with shuffles for the butterflies). */
__device__ static void ln_row(float *v, const float *add, const float *bias, const float *g, const float *b,
                              uint32_t h, float eps, uint32_t lane)
{
    qv_k_ln_residual(v, add, bias, h, lane);
    const float mean = warp_sum(qv_k_lane_sum(v, h, lane)) / (float)h;
    const float var = warp_sum(qv_k_lane_sqdev(v, h, lane, mean)) / (float)h;
    const float inv = 1.0f / sqrtf(var + eps);
    qv_k_ln_apply(v, g, b, h, lane, mean, inv);
}

__global__ void embed_kernel(const int32_t *ids, const int32_t *pos_of_row, uint32_t rows, uint32_t h,
                             const float *word, const float *pos, const float *type, const float *g, const float *b,
                             float eps, float *x)
{
    const uint32_t r = blockIdx.x * ROW_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (r >= rows)
        return;  /* whole warps leave together: the row index is per warp */
    float *v = x + (size_t)r * h;
    const float *we = word + (size_t)ids[r] * h, *pe = pos + (size_t)pos_of_row[r] * h;
    for (uint32_t j = lane; j < h; j += 32)
        v[j] = we[j] + pe[j] + type[j];
    ln_row(v, NULL, NULL, g, b, h, eps, lane);
}

__global__ void add_ln_kernel(float *x, const float *add, const float *bias, const float *g, const float *b,
                              uint32_t rows, uint32_t h, float eps)
{
    const uint32_t r = blockIdx.x * ROW_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (r >= rows)
        return;
    ln_row(x + (size_t)r * h, add + (size_t)r * h, bias, g, b, h, eps, lane);
}

__global__ void bias_kernel(float *y, const float *bias, size_t count, uint32_t n)
{
    const size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e < count)
        y[e] += bias[e % n];
}

__global__ void bias_gelu_kernel(float *y, const float *bias, size_t count, uint32_t f)
{
    const size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e < count)
        y[e] = qv_k_gelu(y[e] + bias[e % f]);
}

/* one warp per score row: rows = sequences x heads x L, row (b, hd, i) masked to b's length */
__global__ void softmax_mask_kernel(float *s, uint32_t rows, uint32_t L, uint32_t heads, const int32_t *lens)
{
    const uint32_t r = blockIdx.x * ROW_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (r >= rows)
        return;
    const uint32_t len = (uint32_t)lens[r / L / heads];
    float *v = s + (size_t)r * L;
    const float mx = warp_max(qv_k_lane_max(v, len, lane));
    const float sum = warp_sum(qv_k_softmax_exp(v, len, lane, mx));
    qv_k_softmax_scale(v, len, L, lane, 1.0f / sum);
}

/* ctx[r] = ctx_pad[seq(r) * L + pos(r)], one thread per element */
__global__ void gather_kernel(const float *ctx_pad, float *ctx, uint32_t rows, uint32_t h, uint32_t L,
                              const int32_t *seq_of_row, const int32_t *pos_of_row)
{
    const size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)rows * h)
        return;
    const size_t r = e / h, j = e % h;
    ctx[e] = ctx_pad[((size_t)seq_of_row[r] * L + (size_t)pos_of_row[r]) * h + j];
}

/* one block per sequence: column means in double, their norm by a block reduction, normalised floats out */
__global__ void __launch_bounds__(POOL_THREADS)
pool_kernel(const float *x, uint32_t h, const int32_t *offs, const int32_t *lens, float *out)
{
    extern __shared__ double means[];  /* h, then POOL_THREADS partial norms */
    double *part = means + h;
    const uint32_t b = blockIdx.x, len = (uint32_t)lens[b];
    const float *xs = x + (size_t)offs[b] * h;
    double acc = 0.0;
    for (uint32_t j = threadIdx.x; j < h; j += blockDim.x) {
        means[j] = qv_k_pool_col(xs, h, len, j);
        acc += means[j] * means[j];
    }
    part[threadIdx.x] = acc;
    __syncthreads();
    for (uint32_t s = blockDim.x / 2; s > 0; s /= 2) {
        if (threadIdx.x < s)
            part[threadIdx.x] += part[threadIdx.x + s];
        __syncthreads();
    }
    const double inv = 1.0 / fmax(sqrt(part[0]), 1e-12);
    for (uint32_t j = threadIdx.x; j < h; j += blockDim.x)
        out[(size_t)b * h + j] = (float)(means[j] * inv);
}

/* ---- loading ---- */

/* Frees a model; the caller holds the context (cudaFree needs the device current). */
static void model_release(qv_gpu_model_t *m)
{
    if (m->arena)
        cudaFree(m->arena);
    free(m->layer);
    free(m);
}

int qv_g_embed_load(qv_gpu_t *g, const qv_embed_weights_t *w, qv_gpu_model_t **out, qv_err_t *err)
{
    if (!w || !out)
        return qv_err_set(err, QV_EINVAL, "gpu embed: NULL argument");
    *out = NULL;
    if (w->hidden == 0 || w->hidden > MAX_HIDDEN || w->heads == 0 || w->hidden % w->heads != 0 || w->ffn == 0 ||
        w->layers == 0 || w->vocab == 0 || w->max_pos == 0 || w->types == 0 || !w->layer)
        return qv_err_set(err, QV_EINVAL, "gpu embed: weights of an unsupported shape (hidden %u, heads %u)",
                          w->hidden, w->heads);
    const size_t h = w->hidden, f = w->ffn;
    const size_t per_layer = 3 * h * h + 3 * h + h * h + h + 2 * h + f * h + f + h * f + h + 2 * h;
    const size_t total = ((size_t)w->vocab + w->max_pos + w->types) * h + 2 * h + per_layer * w->layers;
    qv_gpu_model_t *m = (qv_gpu_model_t *)calloc(1, sizeof *m);
    dlayer_t *layers = (dlayer_t *)calloc(w->layers, sizeof(dlayer_t));
    if (!m || !layers) {
        free(m);
        free(layers);
        return qv_err_set(err, QV_ENOMEM, "gpu embed: out of memory");
    }
    m->g = g;
    m->layer = layers;
    cudaError_t e = cudaMalloc((void **)&m->arena, total * sizeof(float));
    if (e != cudaSuccess) {
        m->arena = NULL;
        model_release(m);
        return qv_g_cuda_fail(g, e, "cudaMalloc of the embedding weights", err);
    }
    float *next = m->arena;
    /* copies one host tensor into the arena; e keeps the first error */
    auto put = [&](const float *src, size_t count) -> const float * {
        float *dst = next;
        next += count;
        if (e == cudaSuccess)
            e = cudaMemcpyAsync(dst, src, count * sizeof(float), cudaMemcpyHostToDevice, g->stream);
        return dst;
    };
    m->word = put(w->word, (size_t)w->vocab * h);
    m->pos = put(w->pos, (size_t)w->max_pos * h);
    m->type = put(w->type, (size_t)w->types * h);
    m->emb_g = put(w->emb_ln_g, h);
    m->emb_b = put(w->emb_ln_b, h);
    for (uint32_t l = 0; l < w->layers; l++) {
        const qv_embed_layer_t *L = &w->layer[l];
        dlayer_t *D = &layers[l];
        D->wqkv = put(L->wqkv, 3 * h * h);
        D->bqkv = put(L->bqkv, 3 * h);
        D->wo = put(L->wo, h * h);
        D->bo = put(L->bo, h);
        D->ln1_g = put(L->ln1_g, h);
        D->ln1_b = put(L->ln1_b, h);
        D->wi = put(L->wi, f * h);
        D->bi = put(L->bi, f);
        D->wf = put(L->wf, h * f);
        D->bf = put(L->bf, h);
        D->ln2_g = put(L->ln2_g, h);
        D->ln2_b = put(L->ln2_b, h);
    }
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(g->stream);  /* the host tensors may go away after this call */
    if (e != cudaSuccess) {
        model_release(m);
        return qv_g_cuda_fail(g, e, "uploading the embedding weights", err);
    }
    m->vocab = w->vocab;
    m->hidden = w->hidden;
    m->heads = w->heads;
    m->ffn = w->ffn;
    m->layers = w->layers;
    m->max_pos = w->max_pos;
    m->types = w->types;
    m->eps = w->ln_eps;
    m->max_tokens = w->max_pos < QV_TOK_MAX_LEN ? w->max_pos : QV_TOK_MAX_LEN;
    *out = m;
    return QV_OK;
}

void qv_g_embed_free(qv_gpu_model_t *m)
{
    if (!m)
        return;
    qv_gpu_t *g = m->g;
    pthread_mutex_lock(&g->mu);  /* not qv_g_enter: a broken context still frees */
    cudaSetDevice(g->device);
    model_release(m);
    pthread_mutex_unlock(&g->mu);
}

/* ---- the forward pass ---- */

typedef struct {
    qv_dbuf<float> x, qkv, ctx, ctx_pad, tmp, ff, scores, out;
    qv_dbuf<int32_t> ids, pos, seq, offs, lens;
    qv_dbuf<const float *> pq, pk, pv, ps;
    qv_dbuf<float *> pscore, pctx;
} scratch_t;

/* row-major C[R][N] = A[R][K] W[N][K]^T (nn.Linear's layout) as column-major C^T = W A^T */
static int gemm_nt(qv_gpu_t *g, int R, int N, int K, const float *A, const float *W, float *C, qv_err_t *err)
{
    const float one = 1.0f, zero = 0.0f;
    QV_BLAS(g, cublasSgemm(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, R, K, &one, W, K, A, K, &zero, C, N), err);
    return QV_OK;
}

/* One chunk: seqs[0..n), rows packed rows, longest L. Writes n embeddings to host out. */
static int forward(qv_gpu_model_t *m, scratch_t *s, const qv_embed_seq_t *seqs, uint32_t n, uint32_t rows,
                   uint32_t L, int32_t *h_ids, int32_t *h_pos, int32_t *h_seq, int32_t *h_offs, int32_t *h_lens,
                   const float **h_ptr, float *out, qv_err_t *err)
{
    qv_gpu_t *g = m->g;
    const uint32_t h = m->hidden, f = m->ffn, nh = m->heads, d = h / nh, H3 = 3 * h;
    const uint32_t pairs = n * nh;
    /* host-side index arrays */
    uint32_t r = 0;
    for (uint32_t i = 0; i < n; i++) {
        h_offs[i] = (int32_t)r;
        h_lens[i] = (int32_t)seqs[i].len;
        for (uint32_t p = 0; p < seqs[i].len; p++, r++) {
            h_ids[r] = seqs[i].ids[p];
            h_pos[r] = (int32_t)p;
            h_seq[r] = (int32_t)i;
        }
    }
    /* pointer arrays of the batched products, pair (i, hd) at i * nh + hd */
    const float **pq = h_ptr, **pk = pq + pairs, **pv = pk + pairs, **ps = pv + pairs;
    float **pscore = (float **)(ps + pairs), **pctx = pscore + pairs;
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t hd = 0; hd < nh; hd++) {
            const uint32_t t = i * nh + hd;
            const float *row = s->qkv.p + (size_t)h_offs[i] * H3 + hd * d;
            pq[t] = row;
            pk[t] = row + h;
            pv[t] = row + 2 * h;
            pscore[t] = s->scores.p + (size_t)t * L * L;
            ps[t] = pscore[t];
            pctx[t] = s->ctx_pad.p + (size_t)i * L * h + hd * d;
        }
    cudaStream_t st = g->stream;
    QV_CU(g, cudaMemcpyAsync(s->ids.p, h_ids, rows * 4, cudaMemcpyHostToDevice, st), err);
    QV_CU(g, cudaMemcpyAsync(s->pos.p, h_pos, rows * 4, cudaMemcpyHostToDevice, st), err);
    QV_CU(g, cudaMemcpyAsync(s->seq.p, h_seq, rows * 4, cudaMemcpyHostToDevice, st), err);
    QV_CU(g, cudaMemcpyAsync(s->offs.p, h_offs, n * 4, cudaMemcpyHostToDevice, st), err);
    QV_CU(g, cudaMemcpyAsync(s->lens.p, h_lens, n * 4, cudaMemcpyHostToDevice, st), err);
    QV_CU(g, cudaMemcpyAsync(s->pq.p, pq, pairs * sizeof(void *), cudaMemcpyHostToDevice, st), err);
    QV_CU(g, cudaMemcpyAsync(s->pk.p, pk, pairs * sizeof(void *), cudaMemcpyHostToDevice, st), err);
    QV_CU(g, cudaMemcpyAsync(s->pv.p, pv, pairs * sizeof(void *), cudaMemcpyHostToDevice, st), err);
    QV_CU(g, cudaMemcpyAsync(s->ps.p, ps, pairs * sizeof(void *), cudaMemcpyHostToDevice, st), err);
    QV_CU(g, cudaMemcpyAsync(s->pscore.p, pscore, pairs * sizeof(void *), cudaMemcpyHostToDevice, st), err);
    QV_CU(g, cudaMemcpyAsync(s->pctx.p, pctx, pairs * sizeof(void *), cudaMemcpyHostToDevice, st), err);
    /* the L rows after the last sequence are read as keys and values by the shorter sequences: zeros */
    QV_CU(g, cudaMemsetAsync(s->qkv.p + (size_t)rows * H3, 0, (size_t)L * H3 * sizeof(float), st), err);

    const unsigned row_blocks = qv_g_blocks(rows, ROW_WARPS);
    embed_kernel<<<row_blocks, ROW_WARPS * 32, 0, st>>>(s->ids.p, s->pos.p, rows, h, m->word, m->pos, m->type,
                                                       m->emb_g, m->emb_b, m->eps, s->x.p);
    QV_LAUNCHED(g, "embed_kernel", err);
    const float scale = 1.0f / sqrtf((float)d), one = 1.0f, zero = 0.0f;
    int rc;
    for (uint32_t l = 0; l < m->layers; l++) {
        const dlayer_t *D = &m->layer[l];
        if ((rc = gemm_nt(g, (int)rows, (int)H3, (int)h, s->x.p, D->wqkv, s->qkv.p, err)))
            return rc;
        const size_t nqkv = (size_t)rows * H3;
        bias_kernel<<<qv_g_blocks(nqkv, 256), 256, 0, st>>>(s->qkv.p, D->bqkv, nqkv, H3);
        QV_LAUNCHED(g, "bias_kernel", err);
        /* S = scale * Q K^T for every (sequence, head): column-major L(keys) x L(queries) = K^T Q */
        QV_BLAS(g, cublasSgemmBatched(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)L, (int)L, (int)d, &scale, s->pk.p,
                                      (int)H3, s->pq.p, (int)H3, &zero, s->pscore.p, (int)L, (int)pairs), err);
        const uint32_t srows = pairs * L;
        softmax_mask_kernel<<<qv_g_blocks(srows, ROW_WARPS), ROW_WARPS * 32, 0, st>>>(s->scores.p, srows, L, nh,
                                                                                      s->lens.p);
        QV_LAUNCHED(g, "softmax_mask_kernel", err);
        /* ctx_pad = P V: column-major d x L(queries) = V(d x L keys) P(L keys x L queries) */
        QV_BLAS(g, cublasSgemmBatched(g->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)d, (int)L, (int)L, &one, s->pv.p,
                                      (int)H3, s->ps.p, (int)L, &zero, s->pctx.p, (int)h, (int)pairs), err);
        const size_t nctx = (size_t)rows * h;
        gather_kernel<<<qv_g_blocks(nctx, 256), 256, 0, st>>>(s->ctx_pad.p, s->ctx.p, rows, h, L, s->seq.p,
                                                              s->pos.p);
        QV_LAUNCHED(g, "gather_kernel", err);
        if ((rc = gemm_nt(g, (int)rows, (int)h, (int)h, s->ctx.p, D->wo, s->tmp.p, err)))
            return rc;
        add_ln_kernel<<<row_blocks, ROW_WARPS * 32, 0, st>>>(s->x.p, s->tmp.p, D->bo, D->ln1_g, D->ln1_b, rows, h,
                                                            m->eps);
        QV_LAUNCHED(g, "add_ln_kernel", err);
        if ((rc = gemm_nt(g, (int)rows, (int)f, (int)h, s->x.p, D->wi, s->ff.p, err)))
            return rc;
        const size_t nff = (size_t)rows * f;
        bias_gelu_kernel<<<qv_g_blocks(nff, 256), 256, 0, st>>>(s->ff.p, D->bi, nff, f);
        QV_LAUNCHED(g, "bias_gelu_kernel", err);
        if ((rc = gemm_nt(g, (int)rows, (int)h, (int)f, s->ff.p, D->wf, s->tmp.p, err)))
            return rc;
        add_ln_kernel<<<row_blocks, ROW_WARPS * 32, 0, st>>>(s->x.p, s->tmp.p, D->bf, D->ln2_g, D->ln2_b, rows, h,
                                                            m->eps);
        QV_LAUNCHED(g, "add_ln_kernel", err);
    }
    pool_kernel<<<n, POOL_THREADS, ((size_t)h + POOL_THREADS) * sizeof(double), st>>>(s->x.p, h, s->offs.p,
                                                                                      s->lens.p, s->out.p);
    QV_LAUNCHED(g, "pool_kernel", err);
    QV_CU(g, cudaMemcpyAsync(out, s->out.p, (size_t)n * h * sizeof(float), cudaMemcpyDeviceToHost, st), err);
    QV_CU(g, cudaStreamSynchronize(st), err);
    return QV_OK;
}

static int embed_locked(qv_gpu_model_t *m, const qv_embed_seq_t *seqs, size_t n, float *out, qv_err_t *err)
{
    qv_gpu_t *g = m->g;
    const uint32_t h = m->hidden, f = m->ffn, nh = m->heads, H3 = 3 * h;
    uint32_t max_len = 0;
    for (size_t i = 0; i < n; i++)
        max_len = seqs[i].len > max_len ? seqs[i].len : max_len;
    const uint32_t rcap = max_len > QV_EMBED_CHUNK_ROWS ? max_len : QV_EMBED_CHUNK_ROWS;
    const uint32_t pcap = PAD_ROWS > max_len ? PAD_ROWS : max_len;  /* sequences x L per chunk */
    const uint32_t ncap = pcap;                                    /* sequences per chunk (L >= 1) */
    scratch_t s;
    int rc;
    if ((rc = s.x.alloc(g, (size_t)rcap * h, "embed activations", err)) ||
        (rc = s.qkv.alloc(g, ((size_t)rcap + max_len) * H3, "embed qkv", err)) ||
        (rc = s.ctx.alloc(g, (size_t)rcap * h, "embed context", err)) ||
        (rc = s.ctx_pad.alloc(g, (size_t)pcap * h, "embed padded context", err)) ||
        (rc = s.tmp.alloc(g, (size_t)rcap * h, "embed scratch", err)) ||
        (rc = s.ff.alloc(g, (size_t)rcap * f, "embed ffn", err)) ||
        (rc = s.scores.alloc(g, (size_t)pcap * nh * max_len, "embed attention scores", err)) ||
        (rc = s.out.alloc(g, (size_t)ncap * h, "embed output", err)) ||
        (rc = s.ids.alloc(g, rcap, "embed ids", err)) || (rc = s.pos.alloc(g, rcap, "embed positions", err)) ||
        (rc = s.seq.alloc(g, rcap, "embed rows", err)) || (rc = s.offs.alloc(g, ncap, "embed offsets", err)) ||
        (rc = s.lens.alloc(g, ncap, "embed lengths", err)) ||
        (rc = s.pq.alloc(g, (size_t)ncap * nh, "embed pointers", err)) ||
        (rc = s.pk.alloc(g, (size_t)ncap * nh, "embed pointers", err)) ||
        (rc = s.pv.alloc(g, (size_t)ncap * nh, "embed pointers", err)) ||
        (rc = s.ps.alloc(g, (size_t)ncap * nh, "embed pointers", err)) ||
        (rc = s.pscore.alloc(g, (size_t)ncap * nh, "embed pointers", err)) ||
        (rc = s.pctx.alloc(g, (size_t)ncap * nh, "embed pointers", err)))
        return rc;
    int32_t *hi = (int32_t *)malloc(((size_t)rcap * 3 + (size_t)ncap * 2) * sizeof(int32_t));
    const float **hp = (const float **)malloc((size_t)ncap * nh * 6 * sizeof(void *));
    if (!hi || !hp) {
        free(hi);
        free(hp);
        return qv_err_set(err, QV_ENOMEM, "gpu embed: out of host memory");
    }
    int32_t *h_ids = hi, *h_pos = h_ids + rcap, *h_seq = h_pos + rcap, *h_offs = h_seq + rcap,
            *h_lens = h_offs + ncap;
    size_t first = 0;
    uint32_t rows = 0, L = 0;
    for (size_t i = 0; i <= n && rc == QV_OK; i++) {
        const uint32_t len = i < n ? seqs[i].len : 0;
        const uint32_t nl = len > L ? len : L;
        const bool flush = i == n || (i > first && (rows + len > rcap || (size_t)(i - first + 1) * nl > pcap));
        if (flush && i > first) {
            rc = forward(m, &s, seqs + first, (uint32_t)(i - first), rows, L, h_ids, h_pos, h_seq, h_offs, h_lens,
                         hp, out + first * h, err);
            first = i;
            rows = 0;
            L = 0;
        }
        rows += len;
        L = len > L ? len : L;
    }
    free(hi);
    free(hp);
    return rc;
}

int qv_g_embed_seqs(qv_gpu_model_t *m, const qv_embed_seq_t *seqs, size_t n, float *out, qv_err_t *err)
{
    if (!m || (n && (!seqs || !out)))
        return qv_err_set(err, QV_EINVAL, "gpu embed: NULL argument");
    if (n == 0)
        return QV_OK;
    for (size_t i = 0; i < n; i++) {  /* qv_embed_seqs's checks and messages */
        if (!seqs[i].ids || seqs[i].len < 1 || seqs[i].len > m->max_tokens)
            return qv_err_set(err, QV_EINVAL, "sequence %zu: %u tokens (want 1..%u)", i, seqs[i].len,
                              m->max_tokens);
        for (uint32_t p = 0; p < seqs[i].len; p++)
            if (seqs[i].ids[p] < 0 || (uint32_t)seqs[i].ids[p] >= m->vocab)
                return qv_err_set(err, QV_EINVAL, "sequence %zu: token %u has id %d, outside the vocabulary", i, p,
                                  seqs[i].ids[p]);
    }
    int rc = qv_g_enter(m->g, err);
    if (rc)
        return rc;
    rc = embed_locked(m, seqs, n, out, err);
    qv_g_leave(m->g);
    return rc;
}
