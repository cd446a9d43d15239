/* BERT WordPiece tokenizer, matching Hugging Face `tokenizers` (the reference sentence-transformers uses for
 * all-MiniLM-L6-v2) id for id.
 *
 * Pipeline, in the reference's order:
 *   1. Special tokens. The raw text is split on literal occurrences of [PAD] [UNK] [CLS] [SEP] [MASK] (the
 *      tokenizer.json "added_tokens", matched before any normalisation, anywhere, case-sensitively); each becomes its
 *      id. The pieces between them go through steps 2-5.
 *   2. clean_text: drop U+0000, U+FFFD and "control" characters (general categories Cc, Cf, Co, except TAB, LF, CR);
 *      map whitespace (TAB, LF, CR and categories Zs, Zl, Zp: the Unicode White_Space set once Cc is gone) to a space.
 *   3. handle_chinese_chars: put spaces around CJK ideographs. "CJK" is BERT's own list of code point ranges (below),
 *      not a Unicode property, so it is written here as the reference writes it, quirks included (the reference's
 *      Extension E range starts at U+2B920, not U+2B820).
 *   4. strip accents: NFD, then drop nonspacing marks (Mn); then lowercase each code point (simple mapping; the only
 *      full mapping that differs, U+0130, has already been decomposed by NFD).
 *   5. pre-tokenise: split on whitespace, and make every punctuation character (ASCII punctuation, which includes
 *      $+<=>^`|~, or a P* category) a word of its own.
 *   6. WordPiece per word: greedy longest match from the left, continuations looked up with a "##" prefix; a word
 *      with more than 100 code points, or with a piece no vocabulary entry matches, becomes one [UNK].
 *   7. [CLS] + pieces + [SEP], the pieces truncated so that the whole fits max_ids (the reference truncates the
 *      token list, so a word may be cut in the middle).
 * Unicode data (categories, NFD, case mapping) comes from utf8proc; nothing here is a hand-written Unicode table.
 * Known divergence: the reference classifies with the tables of an older Unicode version than utf8proc's, so a few
 * code points assigned or re-categorised since (e.g. format characters added in Unicode 9+) can tokenise
 * differently; text in living scripts, emoji and punctuation tokenise identically (tests/embed/golden_tokens.tsv).
 *
 * Steps 2-5 run on "runs": stretches of the text between whitespace, which is where NFD's canonical reordering can
 * never reach across, so each run is normalised on its own and scratch stays proportional to the longest run.
 * Work stops as soon as max_ids is reached, so a 1 MiB input costs one UTF-8 validation pass plus the first few
 * hundred words.
 *
 * The vocabulary is an open-addressing hash table (FNV-1a, linear probing, load <= 1/2) over one copy of the
 * vocab.txt bytes; continuation lookups hash "##" and the piece without building the string. */
#include "query/embed/tokenizer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

enum { SP_PAD, SP_UNK, SP_CLS, SP_SEP, SP_MASK, SP_COUNT };
static const char *const special_names[SP_COUNT] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

typedef struct {
    uint32_t off;  /* into blob */
    uint32_t len;
    int32_t id;    /* -1: empty slot */
} slot_t;

struct qv_tokenizer {
    char *blob;                /* the vocab.txt bytes */
    slot_t *slots;
    uint32_t mask;             /* slots - 1, a power of two minus one */
    uint32_t nvocab;
    uint32_t max_token_bytes;  /* longest entry: bounds the WordPiece search */
    int32_t special[SP_COUNT];
};

/* ---- vocabulary ---- */

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * FNV_PRIME;
    return h;
}

/* Looks up (cont ? "##" : "") + s[0..n). */
static int32_t vocab_find(const qv_tokenizer_t *tok, bool cont, const char *s, size_t n)
{
    size_t full = n + (cont ? 2 : 0);
    if (full > tok->max_token_bytes)
        return -1;
    uint64_t h = FNV_OFFSET;
    if (cont)
        h = fnv(h, "##", 2);
    h = fnv(h, s, n);
    for (uint32_t i = (uint32_t)h & tok->mask;; i = (i + 1) & tok->mask) {
        const slot_t *sl = &tok->slots[i];
        if (sl->id < 0)
            return -1;
        if (sl->len != full)
            continue;
        const char *k = tok->blob + sl->off;
        if (cont) {
            if (k[0] == '#' && k[1] == '#' && memcmp(k + 2, s, n) == 0)
                return sl->id;
        } else if (memcmp(k, s, n) == 0) {
            return sl->id;
        }
    }
}

int32_t qv_tokenizer_id(const qv_tokenizer_t *tok, const char *token, size_t len)
{
    return vocab_find(tok, false, token, len);
}

uint32_t qv_tokenizer_vocab_size(const qv_tokenizer_t *tok) { return tok->nvocab; }

void qv_tokenizer_free(qv_tokenizer_t *tok)
{
    if (!tok)
        return;
    free(tok->blob);
    free(tok->slots);
    free(tok);
}

bool qv_tokenizer_utf8_valid(const void *text, size_t len, size_t *bad_at)
{
    const uint8_t *s = text;
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0 || cp < 0) {
            *bad_at = i;
            return false;
        }
        i += (size_t)n;
    }
    return true;
}

int qv_tokenizer_from_buf(const char *data, size_t len, qv_tokenizer_t **out, qv_err_t *err)
{
    *out = NULL;
    if (len == 0 || len >= UINT32_MAX)
        return qv_err_set(err, QV_ECORRUPT, "vocab: %zu bytes (want 1..4G)", len);
    qv_tokenizer_t *tok = calloc(1, sizeof *tok);
    if (!tok)
        return qv_err_set(err, QV_ENOMEM, "vocab: out of memory");
    tok->blob = malloc(len);
    if (!tok->blob) {
        qv_tokenizer_free(tok);
        return qv_err_set(err, QV_ENOMEM, "vocab: out of memory");
    }
    memcpy(tok->blob, data, len);
    size_t bad;
    if (!qv_tokenizer_utf8_valid(tok->blob, len, &bad)) {
        qv_tokenizer_free(tok);
        return qv_err_set(err, QV_ECORRUPT, "vocab: invalid UTF-8 at byte %zu", bad);
    }
    /* Count lines: a final line end is optional. */
    size_t nlines = 0;
    for (size_t i = 0; i < len; i++)
        nlines += tok->blob[i] == '\n';
    if (len && tok->blob[len - 1] != '\n')
        nlines++;
    if (nlines == 0 || nlines > QV_TOK_VOCAB_MAX) {
        qv_tokenizer_free(tok);
        return qv_err_set(err, QV_ECORRUPT, "vocab: %zu entries (want 1..%u)", nlines, QV_TOK_VOCAB_MAX);
    }
    uint32_t cap = 1;
    while (cap < 2 * nlines)
        cap <<= 1;
    tok->slots = malloc((size_t)cap * sizeof *tok->slots);
    if (!tok->slots) {
        qv_tokenizer_free(tok);
        return qv_err_set(err, QV_ENOMEM, "vocab: out of memory");
    }
    for (uint32_t i = 0; i < cap; i++)
        tok->slots[i].id = -1;
    tok->mask = cap - 1;

    size_t pos = 0;
    for (uint32_t id = 0; id < nlines; id++) {
        const char *nl = memchr(tok->blob + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - tok->blob) : len;
        size_t tlen = end - pos;
        if (tlen && tok->blob[pos + tlen - 1] == '\r')
            tlen--;
        if (tlen == 0 || tlen > QV_TOK_TOKEN_MAX_BYTES) {
            qv_tokenizer_free(tok);
            return qv_err_set(err, QV_ECORRUPT, "vocab: line %u: token of %zu bytes (want 1..%u)", id + 1, tlen,
                              QV_TOK_TOKEN_MAX_BYTES);
        }
        uint64_t h = fnv(FNV_OFFSET, tok->blob + pos, tlen);
        uint32_t i = (uint32_t)h & tok->mask;
        for (; tok->slots[i].id >= 0; i = (i + 1) & tok->mask) {
            const slot_t *sl = &tok->slots[i];
            if (sl->len == tlen && memcmp(tok->blob + sl->off, tok->blob + pos, tlen) == 0) {
                int32_t first = sl->id;
                qv_tokenizer_free(tok);
                return qv_err_set(err, QV_ECORRUPT, "vocab: line %u: duplicate of line %d", id + 1, first + 1);
            }
        }
        tok->slots[i] = (slot_t){.off = (uint32_t)pos, .len = (uint32_t)tlen, .id = (int32_t)id};
        if (tlen > tok->max_token_bytes)
            tok->max_token_bytes = (uint32_t)tlen;
        pos = end + 1;
    }
    tok->nvocab = (uint32_t)nlines;
    for (int s = 0; s < SP_COUNT; s++) {
        tok->special[s] = vocab_find(tok, false, special_names[s], strlen(special_names[s]));
        if (tok->special[s] < 0) {
            qv_tokenizer_free(tok);
            return qv_err_set(err, QV_ECORRUPT, "vocab: no %s token", special_names[s]);
        }
    }
    *out = tok;
    return QV_OK;
}

int qv_tokenizer_load(const char *vocab_path, qv_tokenizer_t **out, qv_err_t *err)
{
    *out = NULL;
    FILE *f = fopen(vocab_path, "rb");
    if (!f)
        return qv_err_set(err, errno == ENOENT ? QV_ENOTFOUND : QV_EIO, "%s: %s", vocab_path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return qv_err_set(err, QV_EIO, "%s: not a regular file", vocab_path);
    }
    if ((uint64_t)st.st_size > 64u << 20) {
        fclose(f);
        return qv_err_set(err, QV_ECORRUPT, "%s: %lld bytes is too large for a vocabulary", vocab_path,
                          (long long)st.st_size);
    }
    size_t len = (size_t)st.st_size;
    char *data = malloc(len ? len : 1);
    if (!data) {
        fclose(f);
        return qv_err_set(err, QV_ENOMEM, "%s: out of memory", vocab_path);
    }
    size_t got = fread(data, 1, len, f);
    fclose(f);
    if (got != len) {
        free(data);
        return qv_err_set(err, QV_EIO, "%s: short read", vocab_path);
    }
    int rc = qv_tokenizer_from_buf(data, len, out, err);
    free(data);
    if (rc != QV_OK && err) {
        char msg[QV_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%.100s: %.150s", vocab_path, err->msg);
        memcpy(err->msg, msg, sizeof msg);
    }
    return rc;
}

/* ---- character classes (steps 2-5) ---- */

static bool is_control(utf8proc_int32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r')
        return false;
    utf8proc_category_t cat = utf8proc_category(c);
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CO;
}

static bool is_space(utf8proc_int32_t c)
{
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
        return true;
    if (c < 0x80)
        return false;
    utf8proc_category_t cat = utf8proc_category(c);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

bool qv_tokenizer_blank(const void *text, size_t len)
{
    const uint8_t *s = text;
    size_t i = 0;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0 || cp < 0)
            return false; /* not UTF-8: qv_tokenizer_utf8_valid says so */
        if (cp != 0 && !is_space(cp) && !is_control(cp))
            return false;
        i += (size_t)n;
    }
    return true;
}

/* BERT's "Chinese character" ranges (tokenizers' normalizers/bert.rs), exactly as the reference has them. */
static bool is_cjk(utf8proc_int32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static bool is_punct(utf8proc_int32_t c)
{
    if (c < 0x80)
        return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
               (c >= 0x7B && c <= 0x7E);
    utf8proc_category_t cat = utf8proc_category(c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

/* ---- encoding ---- */

typedef struct {
    const qv_tokenizer_t *tok;
    int32_t *ids;
    size_t n;                /* ids written so far, [CLS] included */
    size_t limit;            /* room for pieces: max_ids - 1 ([SEP] is reserved) */
    uint8_t *run;            /* the current run, cleaned, as UTF-8 */
    size_t run_len, run_cap;
    utf8proc_int32_t *cps;   /* the run after NFD */
    size_t cps_cap;
    uint8_t *word;           /* the current word, normalised, as UTF-8 */
    size_t word_len, word_cap, word_chars;
    bool oom;
} enc_t;

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap *= 2;
    void *np = realloc(*p, ncap * elem);
    if (!np)
        return false;
    *p = np;
    *cap = ncap;
    return true;
}

static inline bool full(const enc_t *e) { return e->n >= e->limit || e->oom; }

static void push(enc_t *e, int32_t id)
{
    if (e->n < e->limit)
        e->ids[e->n++] = id;
}

/* Step 6 on the current word. */
static void flush_word(enc_t *e)
{
    if (e->word_len == 0)
        return;
    const qv_tokenizer_t *tok = e->tok;
    const char *w = (const char *)e->word;
    size_t wlen = e->word_len, nchars = e->word_chars;
    e->word_len = e->word_chars = 0;
    if (nchars > QV_TOK_MAX_WORD_CHARS) {
        push(e, tok->special[SP_UNK]);
        return;
    }
    int32_t pieces[QV_TOK_MAX_WORD_CHARS];
    size_t npieces = 0, start = 0;
    while (start < wlen) {
        size_t end = wlen;
        size_t room = tok->max_token_bytes - (start ? 2 : 0);
        if (end - start > room) {
            end = start + room;
            while (end > start && (w[end] & 0xC0) == 0x80)
                end--;
        }
        int32_t id = -1;
        while (end > start) {
            id = vocab_find(tok, start > 0, w + start, end - start);
            if (id >= 0)
                break;
            do
                end--;
            while (end > start && (w[end] & 0xC0) == 0x80);
        }
        if (id < 0) {
            push(e, tok->special[SP_UNK]);
            return;
        }
        pieces[npieces++] = id;
        start = end;
    }
    for (size_t i = 0; i < npieces; i++)
        push(e, pieces[i]);
}

static void word_add(enc_t *e, utf8proc_int32_t c)
{
    if (!grow((void **)&e->word, &e->word_cap, e->word_len + 4, 1)) {
        e->oom = true;
        return;
    }
    e->word_len += (size_t)utf8proc_encode_char(c, e->word + e->word_len);
    e->word_chars++;
}

/* Steps 4-5 on the current run, then 6 on its words. */
static void flush_run(enc_t *e)
{
    if (e->run_len == 0 || full(e)) {
        e->run_len = 0;
        return;
    }
    utf8proc_ssize_t n = utf8proc_decompose(e->run, (utf8proc_ssize_t)e->run_len, e->cps,
                                            (utf8proc_ssize_t)e->cps_cap, UTF8PROC_DECOMPOSE);
    if (n > (utf8proc_ssize_t)e->cps_cap) {
        if (!grow((void **)&e->cps, &e->cps_cap, (size_t)n, sizeof *e->cps)) {
            e->oom = true;
            return;
        }
        n = utf8proc_decompose(e->run, (utf8proc_ssize_t)e->run_len, e->cps, (utf8proc_ssize_t)e->cps_cap,
                               UTF8PROC_DECOMPOSE);
    }
    e->run_len = 0;
    if (n < 0) { /* cannot happen: the text was validated */
        e->oom = true;
        return;
    }
    for (utf8proc_ssize_t i = 0; i < n && !full(e); i++) {
        utf8proc_int32_t c = e->cps[i];
        if (c >= 0x300 && utf8proc_category(c) == UTF8PROC_CATEGORY_MN)
            continue;
        c = utf8proc_tolower(c);
        if (is_space(c)) {
            flush_word(e);
        } else if (is_punct(c)) {
            flush_word(e);
            word_add(e, c);
            flush_word(e);
        } else {
            word_add(e, c);
        }
    }
    flush_word(e);
}

static void run_add(enc_t *e, utf8proc_int32_t c)
{
    if (!grow((void **)&e->run, &e->run_cap, e->run_len + 4, 1)) {
        e->oom = true;
        return;
    }
    e->run_len += (size_t)utf8proc_encode_char(c, e->run + e->run_len);
}

/* Steps 2-3 on a piece of text between special tokens. */
static void encode_piece(enc_t *e, const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len && !full(e)) {
        utf8proc_int32_t c = s[i];
        if (c < 0x80) {
            i++;
        } else {
            utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &c);
            i += (size_t)k; /* k > 0: validated */
        }
        if (c == 0 || c == 0xFFFD || is_control(c))
            continue;
        if (is_space(c)) {
            flush_run(e);
        } else if (is_cjk(c)) {
            flush_run(e);
            run_add(e, c);
            flush_run(e);
        } else {
            run_add(e, c);
        }
    }
    flush_run(e);
}

/* The next literal special token at or after s[from], as its index (or -1) and position. */
static int next_special(const uint8_t *s, size_t len, size_t from, size_t *at)
{
    while (from < len) {
        const uint8_t *p = memchr(s + from, '[', len - from);
        if (!p)
            return -1;
        size_t i = (size_t)(p - s);
        for (int sp = 0; sp < SP_COUNT; sp++) {
            size_t n = strlen(special_names[sp]);
            if (n <= len - i && memcmp(s + i, special_names[sp], n) == 0) {
                *at = i;
                return sp;
            }
        }
        from = i + 1;
    }
    return -1;
}

int qv_tokenizer_encode(const qv_tokenizer_t *tok, const char *text, size_t len, size_t max_ids, int32_t *ids,
                        size_t *nids, qv_err_t *err)
{
    *nids = 0;
    if (max_ids < 2)
        return qv_err_set(err, QV_EINVAL, "room for %zu ids: at least 2 are needed", max_ids);
    const uint8_t *s = (const uint8_t *)text;
    size_t bad;
    if (len && !qv_tokenizer_utf8_valid(s, len, &bad))
        return qv_err_set(err, QV_EINVAL, "text is not valid UTF-8 (byte %zu)", bad);
    enc_t e = {.tok = tok, .ids = ids, .limit = max_ids - 1};
    push(&e, tok->special[SP_CLS]);
    size_t pos = 0;
    while (pos < len && !full(&e)) {
        size_t at = len;
        int sp = next_special(s, len, pos, &at);
        encode_piece(&e, s + pos, at - pos);
        if (sp < 0)
            break;
        if (!full(&e))
            push(&e, tok->special[sp]);
        pos = at + strlen(special_names[sp]);
    }
    free(e.run);
    free(e.cps);
    free(e.word);
    if (e.oom)
        return qv_err_set(err, QV_ENOMEM, "tokenizer: out of memory");
    ids[e.n++] = tok->special[SP_SEP];
    *nids = e.n;
    return QV_OK;
}
