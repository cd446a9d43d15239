/* Built-in text embedding (query/embed).
 *
 * Against the real model (tools/fetch_model.sh; $QV_MODEL_DIR, else build/model; a missing model FAILS these tests,
 * it does not skip them) and the golden files of tests/embed (make_golden.py):
 *   - tokenizer parity: ids identical to Hugging Face `tokenizers` for every string of golden_tokens.jsonl (548:
 *     English, accents, CJK, emoji, punctuation runs, control characters, special tokens, long and empty-ish input,
 *     vocabulary words glued at random, random strings over many scripts);
 *   - embedding parity: cosine >= 0.9999 with a float64 NumPy forward pass for each text of golden_embed.jsonl (50
 *     hand-picked strings and 200 Wikipedia passages, 10 of them truncated at 256 tokens), embedded as one batch;
 *   - batching: one call over texts of mixed lengths (also past the chunk size, so the forward pass is cut into
 *     chunks) equals embedding each text alone; four threads embedding at once equal the single-threaded result;
 *     a model on 3 threads gives the embeddings of one on 1 thread (bit-identical with packed weights), batched and one
 *     text at a time.
 * Without the real model:
 *   - a synthetic 2-layer model written here in F32, F16 and BF16 loads and embeds (unit norm, truncation at its own
 *     max_position_embeddings); the F16/BF16 files, holding the same exactly-representable values, give bit-identical
 *     embeddings;
 *   - safetensors decoding rejects, with QV_ECORRUPT, truncation at every length, bad header JSON, header length past
 *     the end, offsets out of range, overlaps, holes, trailing bytes, shape/offset disagreement, unknown dtypes,
 *     negative, fractional or too many dims, duplicate keys; and 20000 random mutations of a valid file decode to
 *     QV_OK or QV_ECORRUPT only, with every tensor inside the buffer;
 *   - model directories: missing (QV_ENOTFOUND, pointing at fetch_model.sh), missing files, a truncated or
 *     wrong-shaped or tensor-less safetensors, a config this code does not implement, a vocabulary of the wrong size;
 *   - tokenizer: invalid UTF-8 (QV_EINVAL), truncation to any max_ids, malformed vocabularies;
 *   - kernels: the AVX2 and generic element-wise kernels agree with each other and with libm's erf/exp;
 *     qv_f16_to_f32 is exact for all 65536 halves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "qvcase.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "query/embed/embed_int.h"
#include "query/embed/model.h"
#include "query/embed/safetensors.h"
#include "query/embed/tokenizer.h"

/* ---- helpers ---- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint32_t rng_below(uint64_t *s, uint32_t n) { return (uint32_t)(rng_next(s) % n); }

static char model_dir[1024];
static char golden_dir[1024];
static qv_embed_model_t *model;

static bool is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static void find_paths(void)
{
    const char *src = getenv("QV_SOURCE_DIR");
    const char *env = getenv("QV_MODEL_DIR");
    if (env && *env)
        snprintf(model_dir, sizeof model_dir, "%s", env);
    else if (src)
        snprintf(model_dir, sizeof model_dir, "%s/build/model", src);
    else
        snprintf(model_dir, sizeof model_dir, "build/model");
    const char *g = getenv("QV_EMBED_GOLDEN");
    if (g && *g)
        snprintf(golden_dir, sizeof golden_dir, "%s", g);
    else if (src)
        snprintf(golden_dir, sizeof golden_dir, "%s/tests/embed", src);
    else
        snprintf(golden_dir, sizeof golden_dir, is_dir("tests/embed") ? "tests/embed" : "../tests/embed");
}

/* The real model, loaded once; a test that needs it fails when it is missing. */
static qv_embed_model_t *need_model(void)
{
    if (model)
        return model;
    qv_err_t err;
    int rc = qv_embed_model_load(model_dir, &model, &err);
    if (rc != QV_OK)
        fail_msg("the model is required (tools/fetch_model.sh, or set QV_MODEL_DIR): %s", err.msg);
    return model;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        *len = (size_t)n;
    }
    return buf;
}

static void spit(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* One golden line: the text (may contain NULs) and the rest of the object. */
typedef struct {
    char *text;
    size_t len;
    json_t *obj;
} gline_t;

static gline_t *read_jsonl(const char *name, size_t *n)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", golden_dir, name);
    size_t len;
    char *data = slurp(path, &len);
    if (!data)
        fail_msg("golden file %s is missing (tests/embed/make_golden.py)", path);
    size_t cap = 0, cnt = 0;
    gline_t *lines = NULL;
    for (char *p = data, *nl; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        assert_non_null(nl);
        json_error_t jerr;
        json_t *obj = json_loadb(p, (size_t)(nl - p), JSON_ALLOW_NUL, &jerr);
        if (!obj)
            fail_msg("%s line %zu: %s", path, cnt + 1, jerr.text);
        if (cnt == cap) {
            cap = cap ? 2 * cap : 256;
            lines = realloc(lines, cap * sizeof *lines);
        }
        json_t *t = json_object_get(obj, "text");
        lines[cnt].text = (char *)json_string_value(t);
        lines[cnt].len = json_string_length(t);
        lines[cnt].obj = obj;
        cnt++;
    }
    free(data);
    *n = cnt;
    return lines;
}

static void free_jsonl(gline_t *lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(lines[i].obj);
    free(lines);
}

static double cosine(const float *a, const float *b, size_t d)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < d; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

/* ---- real model: parity with the golden files ---- */

static void test_tokenizer_golden(void **state)
{
    (void)state;
    char path[1200];
    snprintf(path, sizeof path, "%s/vocab.txt", model_dir);
    qv_tokenizer_t *tok;
    qv_err_t err;
    if (qv_tokenizer_load(path, &tok, &err) != QV_OK)
        fail_msg("the model is required (tools/fetch_model.sh, or set QV_MODEL_DIR): %s", err.msg);
    size_t n;
    gline_t *lines = read_jsonl("golden_tokens.jsonl", &n);
    assert_true(n >= 500);
    size_t bad = 0, total = 0;
    int32_t ids[QV_TOK_MAX_LEN];
    for (size_t i = 0; i < n; i++) {
        size_t nids;
        assert_int_equal(qv_tokenizer_encode(tok, lines[i].text, lines[i].len, QV_TOK_MAX_LEN, ids, &nids, &err),
                         QV_OK);
        json_t *want = json_object_get(lines[i].obj, "ids");
        bool same = nids == json_array_size(want);
        for (size_t k = 0; same && k < nids; k++)
            same = ids[k] == json_integer_value(json_array_get(want, k));
        total += nids;
        if (!same && bad++ < 10) {
            print_message("mismatch on golden line %zu (%zu ids, want %zu):", i + 1, nids, json_array_size(want));
            for (size_t k = 0; k < nids && k < 24; k++)
                print_message(" %d", ids[k]);
            print_message("\n");
        }
    }
    print_message("tokenizer: %zu strings, %zu ids, %zu mismatches\n", n, total, bad);
    assert_int_equal(bad, 0);
    free_jsonl(lines, n);
    qv_tokenizer_free(tok);
}

static float *golden_vectors(size_t n, size_t dim)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/golden_embed.f32", golden_dir);
    size_t len;
    float *v = (float *)slurp(path, &len);
    if (!v)
        fail_msg("golden file %s is missing", path);
    assert_int_equal(len, n * dim * sizeof(float));
    return v;
}

static void test_embed_golden(void **state)
{
    (void)state;
    qv_embed_model_t *m = need_model();
    size_t n;
    gline_t *lines = read_jsonl("golden_embed.jsonl", &n);
    assert_true(n >= 250);
    const size_t dim = qv_embed_dim(m);
    assert_int_equal(dim, QV_EMBED_DIM);
    float *want = golden_vectors(n, dim);
    const char **texts = malloc(n * sizeof *texts);
    size_t *lens = malloc(n * sizeof *lens);
    for (size_t i = 0; i < n; i++) {
        texts[i] = lines[i].text;
        lens[i] = lines[i].len;
        int32_t ids[QV_TOK_MAX_LEN];
        uint32_t nids;
        qv_err_t err;
        assert_int_equal(qv_embed_tokenize(m, texts[i], lens[i], ids, &nids, NULL, &err), QV_OK);
        assert_int_equal(nids, json_integer_value(json_object_get(lines[i].obj, "ntokens")));
    }
    float *got = malloc(n * dim * sizeof *got);
    qv_err_t err;
    assert_int_equal(qv_embed_texts(m, texts, lens, n, got, &err), QV_OK);
    double worst = 1, max_abs = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        double c = cosine(got + i * dim, want + i * dim, dim);
        if (c < worst) {
            worst = c;
            worst_i = i;
        }
        double norm = 0;
        for (size_t j = 0; j < dim; j++) {
            norm += (double)got[i * dim + j] * got[i * dim + j];
            double d = fabs((double)got[i * dim + j] - want[i * dim + j]);
            max_abs = d > max_abs ? d : max_abs;
        }
        assert_true(fabs(norm - 1) < 1e-5);
    }
    print_message("embeddings: %zu texts, min cosine %.9f (text %zu), max 1-cos %.3g, max |diff| %.3g\n", n, worst,
                  worst_i, 1 - worst, max_abs);
    assert_true(worst >= 0.9999);
    free(got);
    free(texts);
    free(lens);
    free(want);
    free_jsonl(lines, n);
}

/* Texts of many lengths, some past the truncation limit. */
static char **mixed_texts(size_t n, uint64_t seed)
{
    static const char *const words[] = {"vector", "database", "the", "embedding", "of", "text", "search", "quiver",
                                        "中", "🙂", "naïve", "!", "model", "graph", "2024", "neighbour"};
    char **t = malloc(n * sizeof *t);
    for (size_t i = 0; i < n; i++) {
        size_t nw = 1 + rng_below(&seed, i % 5 == 0 ? 400 : 40);
        t[i] = malloc(nw * 16 + 1);
        t[i][0] = 0;
        for (size_t w = 0; w < nw; w++) {
            strcat(t[i], words[rng_below(&seed, 16)]);
            strcat(t[i], " ");
        }
    }
    return t;
}

/* A pass split across the model's threads: one batch (a pass over 64+ rows, so the rows are split too) and each text
 * alone (small passes). Where every projection runs on the model's own kernels (the packed tier), each output is
 * computed exactly as on one thread (projections are split at whole panels, attention by (sequence, head), LayerNorm
 * and GELU by rows), so the embeddings must be bit-identical. Where projections go to sgemm, OpenBLAS may pick
 * another kernel for a slice of the output features than for all of them (its small-matrix path), so only float
 * rounding may differ. */
static void expect_same(const float *a, const float *b, size_t floats, bool exact)
{
    if (exact) {
        assert_memory_equal(a, b, floats * sizeof(float));
        return;
    }
    for (size_t i = 0; i < floats; i++)
        assert_true(fabs((double)a[i] - b[i]) < 2e-5);
}

static void test_threads_bit_identical(void **state)
{
    (void)state;
    qv_embed_model_t *one = NULL, *three = NULL;
    qv_err_t err;
    assert_int_equal(qv_embed_model_load_opts(model_dir, &(qv_embed_opts_t){.threads = 1}, &one, &err), QV_OK);
    assert_int_equal(qv_embed_model_load_opts(model_dir, &(qv_embed_opts_t){.threads = 3}, &three, &err), QV_OK);
    const size_t n = 24, dim = qv_embed_dim(one);
    const bool exact = qv__embed_kernels()->gemm_packed != NULL;
    print_message("kernels %s: %s\n", qv__embed_kernels()->name, exact ? "bit-identical" : "within float rounding");
    char **texts = mixed_texts(n, 11);
    float *a = malloc(n * dim * sizeof(float)), *b = malloc(n * dim * sizeof(float));
    assert_int_equal(qv_embed_texts(one, (const char *const *)texts, NULL, n, a, &err), QV_OK);
    assert_int_equal(qv_embed_texts(three, (const char *const *)texts, NULL, n, b, &err), QV_OK);
    expect_same(a, b, n * dim, exact);
    for (size_t i = 0; i < n; i++) {
        const char *t = texts[i];
        assert_int_equal(qv_embed_texts(one, &t, NULL, 1, a, &err), QV_OK);
        assert_int_equal(qv_embed_texts(three, &t, NULL, 1, b, &err), QV_OK);
        expect_same(a, b, dim, exact);
        free(texts[i]);
    }
    free(texts);
    free(a);
    free(b);
    qv_embed_model_free(one);
    qv_embed_model_free(three);
}

static void test_batch_vs_single(void **state)
{
    (void)state;
    qv_embed_model_t *m = need_model();
    const size_t n = 24, dim = qv_embed_dim(m);
    char **texts = mixed_texts(n, 7);
    float *batch = malloc(n * dim * sizeof(float)), *one = malloc(dim * sizeof(float));
    qv_err_t err;
    assert_int_equal(qv_embed_texts(m, (const char *const *)texts, NULL, n, batch, &err), QV_OK);
    double worst = 1, max_abs = 0;
    for (size_t i = 0; i < n; i++) {
        const char *t = texts[i];
        assert_int_equal(qv_embed_texts(m, &t, NULL, 1, one, &err), QV_OK);
        double c = cosine(one, batch + i * dim, dim);
        worst = c < worst ? c : worst;
        for (size_t j = 0; j < dim; j++) {
            double d = fabs((double)one[j] - batch[i * dim + j]);
            max_abs = d > max_abs ? d : max_abs;
        }
    }
    print_message("batch of %zu vs one at a time: min cosine %.9f, max |diff| %.3g\n", n, worst, max_abs);
    assert_true(worst >= 0.999999);
    assert_true(max_abs < 2e-5);

    /* Past QV_EMBED_CHUNK_ROWS tokens: 12 texts of 256 tokens and short ones between them. */
    const size_t nb = 20;
    char **big = malloc(nb * sizeof *big);
    for (size_t i = 0; i < nb; i++) {
        big[i] = malloc(4000);
        big[i][0] = 0;
        size_t words = i % 5 < 3 ? 300 : 3 + i;
        for (size_t w = 0; w < words; w++)
            strcat(big[i], w % 3 ? "graph " : "index ");
        snprintf(big[i] + strlen(big[i]), 32, "%zu", i);
    }
    float *bb = malloc(nb * dim * sizeof(float));
    assert_int_equal(qv_embed_texts(m, (const char *const *)big, NULL, nb, bb, &err), QV_OK);
    worst = 1;
    for (size_t i = 0; i < nb; i++) {
        const char *t = big[i];
        assert_int_equal(qv_embed_texts(m, &t, NULL, 1, one, &err), QV_OK);
        double c = cosine(one, bb + i * dim, dim);
        worst = c < worst ? c : worst;
    }
    print_message("batch past the chunk size (%d rows): min cosine %.9f\n", QV_EMBED_CHUNK_ROWS, worst);
    assert_true(worst >= 0.999999);
    for (size_t i = 0; i < nb; i++)
        free(big[i]);
    free(big);
    free(bb);
    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    free(batch);
    free(one);
}

typedef struct {
    char **texts;
    size_t n;
    float *out;
    int rc;
} conc_t;

static void *conc_main(void *arg)
{
    conc_t *c = arg;
    qv_err_t err;
    for (int rep = 0; rep < 2 && c->rc == QV_OK; rep++)
        c->rc = qv_embed_texts(model, (const char *const *)c->texts, NULL, c->n, c->out, &err);
    return NULL;
}

static void test_concurrent_callers(void **state)
{
    (void)state;
    qv_embed_model_t *m = need_model();
    const size_t n = 8, dim = qv_embed_dim(m);
    char **texts = mixed_texts(n, 99);
    float *ref = malloc(n * dim * sizeof(float));
    qv_err_t err;
    assert_int_equal(qv_embed_texts(m, (const char *const *)texts, NULL, n, ref, &err), QV_OK);
    pthread_t th[4];
    conc_t c[4];
    for (int t = 0; t < 4; t++) {
        c[t] = (conc_t){.texts = texts, .n = n, .out = malloc(n * dim * sizeof(float)), .rc = QV_OK};
        assert_int_equal(pthread_create(&th[t], NULL, conc_main, &c[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(c[t].rc, QV_OK);
        for (size_t i = 0; i < n; i++)
            assert_true(cosine(ref + i * dim, c[t].out + i * dim, dim) >= 0.999999);
        free(c[t].out);
    }
    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    free(ref);
}

static void test_api_errors(void **state)
{
    (void)state;
    qv_embed_model_t *m = need_model();
    float out[2 * QV_EMBED_DIM];
    qv_err_t err;
    const char *bad[2] = {"fine", "bad \xff utf8"};
    assert_int_equal(qv_embed_texts(m, bad, NULL, 2, out, &err), QV_EINVAL);
    assert_non_null(strstr(err.msg, "text 1"));
    const char *null_text[1] = {NULL};
    assert_int_equal(qv_embed_texts(m, null_text, NULL, 1, out, &err), QV_EINVAL);
    assert_int_equal(qv_embed_texts(m, NULL, NULL, 0, out, &err), QV_OK);
    int32_t ids[3] = {101, 30522, 102};
    qv_embed_seq_t s = {.ids = ids, .len = 3};
    assert_int_equal(qv_embed_seqs(m, &s, 1, out, &err), QV_EINVAL);
    ids[1] = -1;
    assert_int_equal(qv_embed_seqs(m, &s, 1, out, &err), QV_EINVAL);
    s.len = 0;
    assert_int_equal(qv_embed_seqs(m, &s, 1, out, &err), QV_EINVAL);
    int32_t many[QV_TOK_MAX_LEN + 1] = {0};
    s = (qv_embed_seq_t){.ids = many, .len = QV_TOK_MAX_LEN + 1};
    assert_int_equal(qv_embed_seqs(m, &s, 1, out, &err), QV_EINVAL);
    /* qv_embed_seqs on tokenized text equals qv_embed_texts */
    int32_t tids[QV_TOK_MAX_LEN];
    uint32_t nt;
    const char *t = "Quiver embeds text in process.";
    assert_int_equal(qv_embed_tokenize(m, t, strlen(t), tids, &nt, NULL, &err), QV_OK);
    s = (qv_embed_seq_t){.ids = tids, .len = nt};
    assert_int_equal(qv_embed_seqs(m, &s, 1, out, &err), QV_OK);
    assert_int_equal(qv_embed_texts(m, &t, NULL, 1, out + QV_EMBED_DIM, &err), QV_OK);
    assert_memory_equal(out, out + QV_EMBED_DIM, QV_EMBED_DIM * sizeof(float));
    bool cut = true;
    assert_int_equal(qv_embed_tokenize(m, t, strlen(t), tids, &nt, &cut, &err), QV_OK);
    assert_false(cut);
    /* a text over the window: reported cut, and encoded exactly as the tokenizer truncates it; one that fills the
     * window exactly ([CLS] + 254 words + [SEP]) is not cut */
    static const int nwords[] = {253, 254, 255, 400};
    for (size_t wi = 0; wi < sizeof nwords / sizeof nwords[0]; wi++) {
        int words = nwords[wi];
        char *longt = malloc((size_t)words * 6 + 1);
        size_t off = 0;
        for (int k = 0; k < words; k++)
            off += (size_t)sprintf(longt + off, "%s", k ? " word" : "word");
        int32_t ref[QV_TOK_MAX_LEN];
        size_t nref = 0;
        assert_int_equal(qv_tokenizer_encode(qv_embed_tokenizer(m), longt, off, qv_embed_max_tokens(m), ref, &nref,
                                             &err), QV_OK);
        assert_int_equal(qv_embed_tokenize(m, longt, off, tids, &nt, &cut, &err), QV_OK);
        assert_int_equal(nt, nref);
        assert_memory_equal(tids, ref, nt * sizeof *ref);
        assert_int_equal(cut, words + 2 > (int)qv_embed_max_tokens(m));
        free(longt);
    }
    const qv_embed_weights_t *w = qv_embed_weights(m);
    assert_int_equal(w->layers, 6);
    assert_int_equal(w->heads, 12);
    assert_int_equal(w->ffn, 1536);
    assert_int_equal(qv_embed_max_tokens(m), 256);
}

/* ---- a synthetic model written here ---- */

typedef struct {
    char name[96];
    uint32_t ndim;
    uint64_t shape[2];
    float *v;
} stensor_t;

typedef struct {
    stensor_t t[64];
    size_t n;
} smodel_t;

static void add_tensor(smodel_t *sm, uint64_t *seed, const char *name, uint64_t d0, uint64_t d1, float base)
{
    stensor_t *t = &sm->t[sm->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    size_t cnt = d0 * (d1 ? d1 : 1);
    t->v = malloc(cnt * sizeof(float));
    /* base + multiples of 1/128 in [-0.5, 0.5]: at most 8 significant bits, exact in F16 and BF16 alike */
    for (size_t i = 0; i < cnt; i++)
        t->v[i] = base + (float)((int)rng_below(seed, 129) - 64) / 128.0f;
}

#define SV 10 /* vocabulary */
#define SH 8  /* hidden */
#define SF 16 /* ffn */
#define SP 12 /* positions */
#define SL 2  /* layers */
static const char synth_vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n##s\na\n.\n";
static const char synth_config[] = "{\"model_type\": \"bert\", \"hidden_act\": \"gelu\", \"hidden_size\": 8, "
                                   "\"num_attention_heads\": 2, \"num_hidden_layers\": 2, \"intermediate_size\": 16, "
                                   "\"vocab_size\": 10, \"max_position_embeddings\": 12, \"type_vocab_size\": 2, "
                                   "\"layer_norm_eps\": 1e-12}";

static void synth_build(smodel_t *sm)
{
    uint64_t seed = 42;
    memset(sm, 0, sizeof *sm);
    add_tensor(sm, &seed, "embeddings.word_embeddings.weight", SV, SH, 0);
    add_tensor(sm, &seed, "embeddings.position_embeddings.weight", SP, SH, 0);
    add_tensor(sm, &seed, "embeddings.token_type_embeddings.weight", 2, SH, 0);
    add_tensor(sm, &seed, "embeddings.LayerNorm.weight", SH, 0, 1);
    add_tensor(sm, &seed, "embeddings.LayerNorm.bias", SH, 0, 0);
    char name[96];
    for (int l = 0; l < SL; l++) {
        static const char *const qkv[3] = {"query", "key", "value"};
        for (int p = 0; p < 3; p++) {
            snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.weight", l, qkv[p]);
            add_tensor(sm, &seed, name, SH, SH, 0);
            snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.bias", l, qkv[p]);
            add_tensor(sm, &seed, name, SH, 0, 0);
        }
#define ADD(suffix, d0, d1, base)                                              \
        snprintf(name, sizeof name, "encoder.layer.%d.%s", l, suffix);        \
        add_tensor(sm, &seed, name, d0, d1, base)
        ADD("attention.output.dense.weight", SH, SH, 0);
        ADD("attention.output.dense.bias", SH, 0, 0);
        ADD("attention.output.LayerNorm.weight", SH, 0, 1);
        ADD("attention.output.LayerNorm.bias", SH, 0, 0);
        ADD("intermediate.dense.weight", SF, SH, 0);
        ADD("intermediate.dense.bias", SF, 0, 0);
        ADD("output.dense.weight", SH, SF, 0);
        ADD("output.dense.bias", SH, 0, 0);
        ADD("output.LayerNorm.weight", SH, 0, 1);
        ADD("output.LayerNorm.bias", SH, 0, 0);
#undef ADD
    }
}

static void synth_free(smodel_t *sm)
{
    for (size_t i = 0; i < sm->n; i++)
        free(sm->t[i].v);
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return (uint16_t)(b >> 16); /* exact for our values */
}

static uint16_t f32_to_f16(float f)
{
    _Float16 h = (_Float16)f;
    uint16_t b;
    memcpy(&b, &h, 2);
    return b;
}

/* Serialises sm as safetensors with every tensor in `dtype` ("F32", "F16", "BF16"); *len gets the size. */
static uint8_t *synth_serialise(const smodel_t *sm, const char *dtype, size_t *len)
{
    size_t es = strcmp(dtype, "F32") == 0 ? 4 : 2;
    json_t *hdr = json_object();
    json_object_set_new(hdr, "__metadata__", json_pack("{s:s}", "format", "pt"));
    size_t off = 0;
    for (size_t i = 0; i < sm->n; i++) {
        const stensor_t *t = &sm->t[i];
        size_t cnt = t->shape[0] * (t->ndim == 2 ? t->shape[1] : 1);
        json_t *shape = t->ndim == 2 ? json_pack("[I,I]", (json_int_t)t->shape[0], (json_int_t)t->shape[1])
                                     : json_pack("[I]", (json_int_t)t->shape[0]);
        json_object_set_new(hdr, t->name,
                            json_pack("{s:s,s:o,s:[I,I]}", "dtype", dtype, "shape", shape, "data_offsets",
                                      (json_int_t)off, (json_int_t)(off + cnt * es)));
        off += cnt * es;
    }
    char *h = json_dumps(hdr, JSON_COMPACT);
    json_decref(hdr);
    size_t hlen = strlen(h), padded = (hlen + 7) & ~(size_t)7;
    *len = 8 + padded + off;
    uint8_t *buf = malloc(*len);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, h, hlen);
    memset(buf + 8 + hlen, ' ', padded - hlen);
    free(h);
    uint8_t *p = buf + 8 + padded;
    for (size_t i = 0; i < sm->n; i++) {
        const stensor_t *t = &sm->t[i];
        size_t cnt = t->shape[0] * (t->ndim == 2 ? t->shape[1] : 1);
        for (size_t k = 0; k < cnt; k++, p += es) {
            if (es == 4) {
                memcpy(p, &t->v[k], 4);
            } else {
                uint16_t b = strcmp(dtype, "F16") == 0 ? f32_to_f16(t->v[k]) : f32_to_bf16(t->v[k]);
                memcpy(p, &b, 2);
            }
        }
    }
    return buf;
}

/* A fresh directory with config.json, vocab.txt and (if st) model.safetensors. */
static void synth_dir(char *dir, size_t cap, const char *config, const char *vocab, const uint8_t *st, size_t st_len)
{
    snprintf(dir, cap, "/tmp/qv_embed_test.XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[512];
    if (config) {
        snprintf(path, sizeof path, "%s/config.json", dir);
        spit(path, config, strlen(config));
    }
    if (vocab) {
        snprintf(path, sizeof path, "%s/vocab.txt", dir);
        spit(path, vocab, strlen(vocab));
    }
    if (st) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        spit(path, st, st_len);
    }
}

static void rm_dir(const char *dir)
{
    char path[512];
    static const char *const files[] = {"config.json", "vocab.txt", "model.safetensors"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* Loads dir and returns the code; on success embeds texts into out (3 x SH). */
static int synth_load_embed(const char *dir, float *out, qv_err_t *err)
{
    qv_embed_model_t *m;
    int rc = qv_embed_model_load(dir, &m, err);
    if (rc != QV_OK)
        return rc;
    const char *texts[3] = {"hello worlds.", "a", "hello hello hello hello hello hello hello hello hello hello hello"};
    rc = qv_embed_texts(m, texts, NULL, 3, out, err);
    assert_int_equal(qv_embed_dim(m), SH);
    assert_int_equal(qv_embed_max_tokens(m), SP);
    int32_t ids[SP];
    uint32_t n;
    assert_int_equal(qv_embed_tokenize(m, texts[2], strlen(texts[2]), ids, &n, NULL, err), QV_OK);
    assert_int_equal(n, SP); /* truncated to max_position_embeddings */
    qv_embed_model_free(m);
    return rc;
}

static void test_synthetic_model(void **state)
{
    (void)state;
    smodel_t sm;
    synth_build(&sm);
    float out[3][3 * SH];
    const char *dtypes[3] = {"F32", "F16", "BF16"};
    for (int d = 0; d < 3; d++) {
        size_t len;
        uint8_t *st = synth_serialise(&sm, dtypes[d], &len);
        char dir[64];
        synth_dir(dir, sizeof dir, synth_config, synth_vocab, st, len);
        qv_err_t err;
        int rc = synth_load_embed(dir, out[d], &err);
        if (rc != QV_OK)
            fail_msg("%s: %s", dtypes[d], err.msg);
        for (int i = 0; i < 3; i++) {
            double norm = 0;
            for (int j = 0; j < SH; j++)
                norm += (double)out[d][i * SH + j] * out[d][i * SH + j];
            assert_true(fabs(norm - 1) < 1e-5);
        }
        rm_dir(dir);
        free(st);
    }
    assert_memory_equal(out[0], out[1], sizeof out[0]);
    assert_memory_equal(out[0], out[2], sizeof out[0]);
    synth_free(&sm);
}

static void expect_load_error(const char *config, const char *vocab, const uint8_t *st, size_t st_len, int code,
                              const char *needle)
{
    char dir[64];
    synth_dir(dir, sizeof dir, config, vocab, st, st_len);
    qv_embed_model_t *m = (qv_embed_model_t *)1;
    qv_err_t err;
    int rc = qv_embed_model_load(dir, &m, &err);
    if (rc != code || (needle && !strstr(err.msg, needle)))
        fail_msg("want %d '%s', got %d '%s'", code, needle ? needle : "", rc, err.msg);
    assert_null(m);
    rm_dir(dir);
}

static void test_model_dir_errors(void **state)
{
    (void)state;
    qv_embed_model_t *m;
    qv_err_t err;
    assert_int_equal(qv_embed_model_load("/nonexistent/quiver/model", &m, &err), QV_ENOTFOUND);
    assert_non_null(strstr(err.msg, "fetch_model.sh"));
    assert_null(m);
    assert_int_equal(qv_embed_model_load("", &m, &err), QV_EINVAL);

    smodel_t sm;
    synth_build(&sm);
    size_t len;
    uint8_t *st = synth_serialise(&sm, "F32", &len);
    expect_load_error(NULL, synth_vocab, st, len, QV_ENOTFOUND, "config.json");
    expect_load_error(synth_config, NULL, st, len, QV_ENOTFOUND, "vocab.txt");
    expect_load_error(synth_config, synth_vocab, NULL, 0, QV_ENOTFOUND, "model.safetensors");
    expect_load_error("{not json", synth_vocab, st, len, QV_ECORRUPT, "config.json");
    expect_load_error("[]", synth_vocab, st, len, QV_ECORRUPT, "config.json");
    /* a vocabulary one token short of vocab_size */
    expect_load_error(synth_config, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n##s\na\n", st, len,
                      QV_ECORRUPT, "vocab_size");
    /* configs this code does not implement */
    char cfg[1024];
    const char *const swaps[][2] = {{"\"gelu\"", "\"relu\""},
                                    {"\"num_attention_heads\": 2", "\"num_attention_heads\": 3"},
                                    {"\"hidden_size\": 8", "\"hidden_size\": -8"},
                                    {"\"num_hidden_layers\": 2", "\"num_hidden_layers\": 2.5"},
                                    {"\"model_type\": \"bert\"", "\"model_type\": \"gpt2\""},
                                    {"\"layer_norm_eps\": 1e-12", "\"layer_norm_eps\": -1"}};
    for (size_t i = 0; i < sizeof swaps / sizeof swaps[0]; i++) {
        const char *at = strstr(synth_config, swaps[i][0]);
        assert_non_null(at);
        snprintf(cfg, sizeof cfg, "%.*s%s%s", (int)(at - synth_config), synth_config, swaps[i][1],
                 at + strlen(swaps[i][0]));
        expect_load_error(cfg, synth_vocab, st, len, QV_ECORRUPT, "config.json");
    }
    /* the config claims more layers than the file has */
    const char *at = strstr(synth_config, "\"num_hidden_layers\": 2");
    snprintf(cfg, sizeof cfg, "%.*s\"num_hidden_layers\": 3%s", (int)(at - synth_config), synth_config,
             at + strlen("\"num_hidden_layers\": 2"));
    expect_load_error(cfg, synth_vocab, st, len, QV_ECORRUPT, "encoder.layer.2");
    /* truncated files: every length is rejected, not only a few */
    for (size_t cut = 0; cut < len; cut += cut < 64 ? 1 : 97)
        expect_load_error(synth_config, synth_vocab, st, cut, QV_ECORRUPT, "model.safetensors");
    /* a tensor of the wrong shape: the file itself is consistent */
    sm.t[0].shape[0] = SV - 1;
    uint8_t *bad = synth_serialise(&sm, "F32", &len);
    expect_load_error(synth_config, synth_vocab, bad, len, QV_ECORRUPT, "embeddings.word_embeddings.weight");
    free(bad);
    sm.t[0].shape[0] = SV;
    /* a missing tensor */
    stensor_t last = sm.t[--sm.n];
    bad = synth_serialise(&sm, "F32", &len);
    expect_load_error(synth_config, synth_vocab, bad, len, QV_ECORRUPT, "no tensor");
    free(bad);
    sm.t[sm.n++] = last;
    /* a NaN weight */
    sm.t[5].v[3] = NAN;
    bad = synth_serialise(&sm, "F32", &len);
    expect_load_error(synth_config, synth_vocab, bad, len, QV_ECORRUPT, "not finite");
    free(bad);
    free(st);
    synth_free(&sm);

    /* the real model's directory with a truncated safetensors */
    char real[1200], dir[64];
    snprintf(real, sizeof real, "%s/model.safetensors", model_dir);
    FILE *f = fopen(real, "rb");
    if (!f)
        fail_msg("the model is required (tools/fetch_model.sh, or set QV_MODEL_DIR): %s missing", real);
    uint8_t *head = malloc(1 << 20);
    assert_int_equal(fread(head, 1, 1 << 20, f), 1 << 20);
    fclose(f);
    size_t cl, vl;
    snprintf(real, sizeof real, "%s/config.json", model_dir);
    char *config = slurp(real, &cl);
    snprintf(real, sizeof real, "%s/vocab.txt", model_dir);
    char *vocab = slurp(real, &vl);
    assert_non_null(config);
    assert_non_null(vocab);
    synth_dir(dir, sizeof dir, config, vocab, head, 1 << 20);
    assert_int_equal(qv_embed_model_load(dir, &m, &err), QV_ECORRUPT);
    print_message("truncated real model: %s\n", err.msg);
    rm_dir(dir);
    free(head);
    free(config);
    free(vocab);
}

/* ---- safetensors decoding ---- */

static int parse_rc(const char *header, size_t data_len)
{
    size_t hl = strlen(header), len = 8 + hl + data_len;
    uint8_t *buf = calloc(1, len);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    qv_st_t *st;
    qv_err_t err;
    int rc = qv_st_parse(buf, len, &st, &err);
    if (rc == QV_OK)
        qv_st_free(st);
    else
        assert_null(st);
    free(buf);
    return rc;
}

static void test_safetensors_corrupt(void **state)
{
    (void)state;
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                     "\"b\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[16,24]}}";
    assert_int_equal(parse_rc(ok, 24), QV_OK);
    assert_int_equal(parse_rc(ok, 23), QV_ECORRUPT);  /* data shorter than the offsets */
    assert_int_equal(parse_rc(ok, 25), QV_ECORRUPT);  /* trailing bytes */
    const char *bad[] = {
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]",                   /* bad JSON */
        "[1,2,3]",                                                                            /* not an object */
        "{\"a\":{\"dtype\":\"F33\",\"shape\":[4],\"data_offsets\":[0,16]}}",                  /* unknown dtype */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[0,16]}}",                  /* shape vs offsets */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}",                 /* negative dim */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4.0],\"data_offsets\":[0,16]}}",                /* fractional dim */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,4],\"data_offsets\":[0,16]}}",  /* too many dims */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}",                  /* end < begin */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16,0]}}",                /* 3 offsets */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[100,116]}}",               /* out of range */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[18446744073709551600,16]}}", /* huge */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,16]}}", /* overflow */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",                   /* overlap */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}",                  /* hole */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}",                  /* duplicate key */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4]}}",                                          /* no offsets */
        "{\"a\":{\"shape\":[4],\"data_offsets\":[0,16]}}",                                    /* no dtype */
        "{\"a\":7}",                                                                          /* not an entry */
        "{\"__metadata__\":{\"k\":1}}",                                                       /* metadata value */
        "{\"__metadata__\":[]}",
        "",
        "{}x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse_rc(bad[i], 24);
        if (rc != QV_ECORRUPT)
            fail_msg("header %zu (%s): rc %d", i, bad[i], rc);
    }
    /* header length field past the end, and a file too short for it */
    uint8_t tiny[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    qv_st_t *st;
    qv_err_t err;
    assert_int_equal(qv_st_parse(tiny, sizeof tiny, &st, &err), QV_ECORRUPT);
    assert_int_equal(qv_st_parse(tiny, 7, &st, &err), QV_ECORRUPT);
    tiny[0] = 8;
    memset(tiny + 1, 0, 7);
    assert_int_equal(qv_st_parse(tiny, 16, &st, &err), QV_ECORRUPT); /* "{}" + 6 NULs is not JSON */

    /* read_f32 checks */
    smodel_t sm;
    synth_build(&sm);
    size_t len;
    uint8_t *buf = synth_serialise(&sm, "F16", &len);
    assert_int_equal(qv_st_parse(buf, len, &st, &err), QV_OK);
    assert_int_equal(qv_st_count(st), sm.n);
    float dst[SV * SH];
    uint64_t shape[2] = {SV, SH}, wrong[2] = {SH, SV};
    assert_int_equal(qv_st_read_f32(st, "embeddings.word_embeddings.weight", 2, shape, dst, &err), QV_OK);
    assert_memory_equal(dst, sm.t[0].v, sizeof dst);
    assert_int_equal(qv_st_read_f32(st, "embeddings.word_embeddings.weight", 2, wrong, dst, &err), QV_ECORRUPT);
    assert_non_null(strstr(err.msg, "shape"));
    assert_int_equal(qv_st_read_f32(st, "nope", 2, shape, dst, &err), QV_ECORRUPT);
    qv_st_free(st);

    /* random mutations: only OK or CORRUPT, and tensors always inside the buffer */
    uint64_t seed = 1234;
    uint8_t *mut = malloc(len);
    size_t accepted = 0;
    for (int it = 0; it < 20000; it++) {
        memcpy(mut, buf, len);
        size_t mlen = len;
        int nmut = 1 + (int)rng_below(&seed, 4);
        for (int k = 0; k < nmut; k++) {
            /* mostly the header, where the structure is */
            size_t pos = rng_below(&seed, 10) < 8 ? rng_below(&seed, 600) % mlen : rng_below(&seed, (uint32_t)mlen);
            switch (rng_below(&seed, 4)) {
            case 0: mut[pos] = (uint8_t)rng_next(&seed); break;
            case 1: mut[pos] ^= (uint8_t)(1u << rng_below(&seed, 8)); break;
            case 2: mut[pos] = "0123456789[]{},:\"-."[rng_below(&seed, 19)]; break;
            default: mlen = pos ? pos : 1; break;
            }
        }
        int rc = qv_st_parse(mut, mlen, &st, &err);
        assert_true(rc == QV_OK || rc == QV_ECORRUPT);
        if (rc == QV_OK) {
            accepted++;
            for (size_t i = 0; i < qv_st_count(st); i++) {
                const qv_st_tensor_t *t = qv_st_at(st, i);
                assert_true(t->data >= mut && t->data + t->nbytes <= mut + mlen);
                assert_int_equal(t->nbytes, t->nelems * qv_st_dtype_size(t->dtype));
            }
            qv_st_free(st);
        }
    }
    print_message("safetensors: 20000 mutations, %zu still valid files\n", accepted);
    free(mut);
    free(buf);
    synth_free(&sm);
}

/* ---- tokenizer without the model ---- */

static void test_tokenizer_edges(void **state)
{
    (void)state;
    qv_tokenizer_t *tok;
    qv_err_t err;
    const char *vocab = "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n[MASK]\r\nun\r\n##aff\r\n##able\r\naff\r\n!\r\nà\r\n";
    assert_int_equal(qv_tokenizer_from_buf(vocab, strlen(vocab), &tok, &err), QV_OK);
    assert_int_equal(qv_tokenizer_vocab_size(tok), 11);
    assert_int_equal(qv_tokenizer_id(tok, "##aff", 5), 6);
    assert_int_equal(qv_tokenizer_id(tok, "zzz", 3), -1);
    int32_t ids[16];
    size_t n;
    assert_int_equal(qv_tokenizer_encode(tok, "UnAffable!! xyz", 15, 16, ids, &n, &err), QV_OK);
    int32_t want[] = {2, 5, 6, 7, 9, 9, 1, 3};
    assert_int_equal(n, 8);
    assert_memory_equal(ids, want, sizeof want);
    for (size_t max = 2; max <= 8; max++) { /* truncation keeps [CLS] ... [SEP] */
        assert_int_equal(qv_tokenizer_encode(tok, "UnAffable!! xyz", 15, max, ids, &n, &err), QV_OK);
        assert_int_equal(n, max);
        assert_int_equal(ids[0], 2);
        assert_int_equal(ids[n - 1], 3);
        assert_memory_equal(ids + 1, want + 1, (max - 2) * sizeof(int32_t));
    }
    assert_int_equal(qv_tokenizer_encode(tok, "x", 1, 1, ids, &n, &err), QV_EINVAL);
    /* invalid UTF-8: lone continuation, truncated sequence, overlong, surrogate, past U+10FFFF */
    const char *invalid[] = {"a\x80", "\xe4\xb8", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(qv_tokenizer_encode(tok, invalid[i], strlen(invalid[i]), 16, ids, &n, &err), QV_EINVAL);
        assert_non_null(strstr(err.msg, "UTF-8"));
    }
    /* accents are stripped before lookup: "à" in the vocabulary is never produced, "a" + U+0300 -> "a" */
    assert_int_equal(qv_tokenizer_encode(tok, "\xc3\xa0", 2, 16, ids, &n, &err), QV_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], 1);
    qv_tokenizer_free(tok);

    const char *bad_vocabs[] = {"",
                                "[PAD]\n[UNK]\n[CLS]\n[SEP]\n",              /* no [MASK] */
                                "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n\nx\n", /* empty line */
                                "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nx\nx\n", /* duplicate */
                                "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n\xff\n"}; /* not UTF-8 */
    for (size_t i = 0; i < 5; i++) {
        tok = (qv_tokenizer_t *)1;
        assert_int_equal(qv_tokenizer_from_buf(bad_vocabs[i], strlen(bad_vocabs[i]), &tok, &err), QV_ECORRUPT);
        assert_null(tok);
    }
    assert_int_equal(qv_tokenizer_load("/nonexistent/vocab.txt", &tok, &err), QV_ENOTFOUND);
}

/* ---- kernels ---- */

/* (the projection, gemm_nt, is tested in every tier by test_embed_split.c) */
static void test_kernels(void **state)
{
    (void)state;
    const qv_embed_kernels_t *sets[2] = {&qv__embed_kernels_generic, qv__embed_kernels()};
    print_message("kernels in use: %s\n", sets[1]->name);
    uint64_t seed = 5;
    enum { ROWS = 5, F = 67, H = 37 };
    float in[ROWS * F], bias[F], g[H], b[H], add[ROWS * H];
    for (int i = 0; i < ROWS * F; i++)
        in[i] = (float)(rng_below(&seed, 20001) - 10000) / 1000.0f; /* -10 .. 10 */
    for (int i = 0; i < F; i++)
        bias[i] = (float)(rng_below(&seed, 201) - 100) / 100.0f;
    for (int i = 0; i < H; i++) {
        g[i] = (float)rng_below(&seed, 200) / 100.0f;
        b[i] = (float)(rng_below(&seed, 201) - 100) / 100.0f;
    }
    for (int i = 0; i < ROWS * H; i++)
        add[i] = (float)(rng_below(&seed, 201) - 100) / 10.0f;
    for (int s = 0; s < 2; s++) {
        /* GELU against libm's erf in double */
        float y[ROWS * F];
        memcpy(y, in, sizeof y);
        sets[s]->bias_gelu(y, bias, ROWS, F);
        for (int i = 0; i < ROWS * F; i++) {
            double u = (double)in[i] + bias[i % F];
            double ref = 0.5 * u * (1 + erf(u / sqrt(2.0)));
            assert_true(fabs(y[i] - ref) <= 2e-6 * (1 + fabs(ref)));
        }
        /* softmax against exp in double; rows of odd length and a stride */
        float sm[ROWS * F];
        memcpy(sm, in, sizeof sm);
        sets[s]->softmax(sm, ROWS, F - 3, F);
        for (int r = 0; r < ROWS; r++) {
            double mx = -INFINITY, sum = 0;
            for (int i = 0; i < F - 3; i++)
                mx = fmax(mx, in[r * F + i]);
            for (int i = 0; i < F - 3; i++)
                sum += exp(in[r * F + i] - mx);
            for (int i = 0; i < F - 3; i++)
                assert_true(fabs(sm[r * F + i] - exp(in[r * F + i] - mx) / sum) <= 1e-6);
            for (int i = F - 3; i < F; i++)
                assert_true(sm[r * F + i] == in[r * F + i]); /* past n: untouched */
        }
        /* add + bias + LayerNorm against double */
        float x[ROWS * H];
        memcpy(x, in, sizeof x);
        sets[s]->add_layernorm(x, add, bias, g, b, ROWS, H, 1e-12f);
        for (int r = 0; r < ROWS; r++) {
            double v[H], mean = 0, var = 0;
            for (int i = 0; i < H; i++) {
                v[i] = (double)in[r * H + i] + add[r * H + i] + bias[i];
                mean += v[i] / H;
            }
            for (int i = 0; i < H; i++)
                var += (v[i] - mean) * (v[i] - mean) / H;
            for (int i = 0; i < H; i++) {
                double ref = (v[i] - mean) / sqrt(var + 1e-12) * g[i] + b[i];
                assert_true(fabs(x[r * H + i] - ref) <= 1e-5 * (1 + fabs(ref)));
            }
        }
    }
}

static void test_f16(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        _Float16 ref;
        uint16_t bits = (uint16_t)h;
        memcpy(&ref, &bits, 2);
        float got = qv_f16_to_f32(bits), want = (float)ref;
        if (isnan(want))
            assert_true(isnan(got));
        else
            assert_memory_equal(&got, &want, 4);
    }
}

int main(int argc, char **argv)
{
    qv_case_filter(argc, argv);
    find_paths();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16),
        cmocka_unit_test(test_kernels),
        cmocka_unit_test(test_tokenizer_edges),
        cmocka_unit_test(test_safetensors_corrupt),
        cmocka_unit_test(test_synthetic_model),
        cmocka_unit_test(test_model_dir_errors),
        cmocka_unit_test(test_tokenizer_golden),
        cmocka_unit_test(test_embed_golden),
        cmocka_unit_test(test_batch_vs_single),
        cmocka_unit_test(test_threads_bit_identical),
        cmocka_unit_test(test_concurrent_callers),
        cmocka_unit_test(test_api_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    qv_embed_model_free(model);
    return rc;
}
