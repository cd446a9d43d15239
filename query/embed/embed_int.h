/* Internal to query/embed: the fused element-wise kernels of the forward pass (kernels.c, kernels_avx2.c).
 *
 * Every kernel works on rows of a row-major matrix and writes in place. The plain C versions in kernels.c are the
 * reference and the fallback; kernels_avx2.c has AVX2+FMA versions of the same arithmetic (same polynomials, so the two
 * agree to a few ulps), and an AVX-512 projection over weights packed at load. qv__embed_kernels() picks one set
 * once, on the first call, from the CPU's features ($QV_EMBED_KERNELS=generic|avx2|avx512 caps the choice, for
 * comparing them). */
#ifndef QV_EMBED_INT_H
#define QV_EMBED_INT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    /* x[r] = LayerNorm(x[r] + add[r] + bias) * g + b for rows of h floats (add may be NULL, then bias is ignored). */
    void (*add_layernorm)(float *x, const float *add, const float *bias, const float *g, const float *b, size_t rows,
                          size_t h, float eps);
    /* y[r] = GELU(y[r] + bias), GELU(v) = v/2 * (1 + erf(v / sqrt 2)), for rows of f floats. */
    void (*bias_gelu)(float *y, const float *bias, size_t rows, size_t f);
    /* Softmax of each of `rows` rows of n floats, ld floats apart. */
    void (*softmax)(float *s, size_t rows, size_t n, size_t ld);
    /* C[r][o] (+)= sum_k X[r][k] * W[o][k] for r < rows, o < n (W is [n][k], as nn.Linear stores it; C has ldc
     * floats per row; accumulate: add to C, else overwrite). The projections of a forward pass over few rows: it
     * reads W once, straight from where the model keeps it, where sgemm would first repack all of W (the repacking
     * was 44% of a 22-token forward pass). k must be a multiple of 8. */
    void (*gemm_nt)(size_t rows, size_t n, size_t k, const float *x, size_t ldx, const float *w, float *c, size_t ldc,
                    int accumulate);
    /* The same product with W packed once at load by qv__embed_pack_w (NULL where the tier has none): wp points at
     * the panel of W's first output feature, which must be a multiple of QV_PACK_NR. Reads W contiguously and never
     * repacks it. Any k. Where a tier has it, every projection of the forward pass uses it. */
    void (*gemm_packed)(size_t rows, size_t n, size_t k, const float *x, size_t ldx, const float *wp, float *c,
                        size_t ldc, int accumulate);
    /* The largest pass (rows) for which gemm_nt beat sgemm when measured on this tier (bench/embed_bench.py,
     * $QV_EMBED_SMALL_ROWS); 0: always sgemm. */
    size_t small_rows;
    const char *name;  /* "avx512", "avx2" or "generic" */
} qv_embed_kernels_t;

const qv_embed_kernels_t *qv__embed_kernels(void);

extern const qv_embed_kernels_t qv__embed_kernels_generic;
#if defined(__x86_64__)
extern const qv_embed_kernels_t qv__embed_kernels_avx2;
extern const qv_embed_kernels_t qv__embed_kernels_avx512; /* needs avx512f and avx512dq besides avx2 and fma */
#endif

/* W ([out][in]) packed for gemm_packed: panels of QV_PACK_NR output features; panel p holds, for input i = 0..in-1,
 * W[p * NR + 0 .. p * NR + NR - 1][i] contiguously, zero past `out`. qv__embed_packed_floats is its size. */
#define QV_PACK_NR 32
size_t qv__embed_packed_floats(size_t out, size_t in);
void qv__embed_pack_w(const float *w, size_t out, size_t in, float *packed);

/* The forward pass's threads (pool.c): the caller plus `helpers` threads run the tasks of one job at a time.
 * Start returns 0 or an errno; helpers < 1 gives *out == NULL, a valid "no pool" on which everything runs on the
 * caller. qv__embed_pool_for runs fn(arg, task, worker) for task in [0, ntasks), worker being the index (0 = the
 * caller .. threads - 1) of the thread running it, and returns when all are done; a caller that finds the pool busy
 * with another caller runs them all itself as worker 0. */
typedef struct qv_embed_pool qv_embed_pool_t;
typedef void (*qv_embed_task_fn)(void *arg, int task, int worker);
int qv__embed_pool_start(int helpers, qv_embed_pool_t **out);
void qv__embed_pool_stop(qv_embed_pool_t *p);
int qv__embed_pool_threads(const qv_embed_pool_t *p);
void qv__embed_pool_for(qv_embed_pool_t *p, int ntasks, qv_embed_task_fn fn, void *arg);
/* Task `task` of `parts` covers items [*a, *b) of n, cut at multiples of unit (the last part takes the remainder). */
void qv__embed_task_range(size_t n, size_t unit, int task, size_t parts, size_t *a, size_t *b);

/* Constants shared by both kernel sets. expf: Cephes' polynomial after a Cody-Waite reduction by ln 2 (relative
 * error < 2e-7 on [-87, 88]); erf: Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7), which needs only that exp. */
#define QV_EXP_LO (-87.0f)
#define QV_EXP_HI 88.0f
#define QV_LOG2E 1.44269504088896341f
#define QV_LN2_HI 0.693359375f
#define QV_LN2_LO (-2.12194440e-4f)
#define QV_EXP_P0 1.9875691500e-4f
#define QV_EXP_P1 1.3981999507e-3f
#define QV_EXP_P2 8.3334519073e-3f
#define QV_EXP_P3 4.1665795894e-2f
#define QV_EXP_P4 1.6666665459e-1f
#define QV_EXP_P5 5.0000001201e-1f
#define QV_ERF_P 0.3275911f
#define QV_ERF_A1 0.254829592f
#define QV_ERF_A2 (-0.284496736f)
#define QV_ERF_A3 1.421413741f
#define QV_ERF_A4 (-1.453152027f)
#define QV_ERF_A5 1.061405429f
#define QV_SQRT1_2 0.70710678118654752f

#endif
