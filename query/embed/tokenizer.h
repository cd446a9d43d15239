/* BERT WordPiece tokenizer (uncased), bit-for-bit the one the Hugging Face `tokenizers` library builds from the
 * model's tokenizer.json (BertNormalizer + BertPreTokenizer + WordPiece + [CLS]/[SEP] template). See tokenizer.c for
 * the pipeline and the Unicode rules.
 *
 * A loaded tokenizer is immutable: any number of threads may encode with it at once. Encoding allocates its scratch
 * per call. */
#ifndef QV_EMBED_TOKENIZER_H
#define QV_EMBED_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Longest sequence the model accepts, [CLS] and [SEP] included (sentence-transformers' max_seq_length). */
#define QV_TOK_MAX_LEN 256
/* WordPiece gives up on longer words (in code points) and emits [UNK]. */
#define QV_TOK_MAX_WORD_CHARS 100
/* Limits on vocab.txt, so that a hostile file cannot make us allocate without bound. */
#define QV_TOK_VOCAB_MAX (1u << 20)
#define QV_TOK_TOKEN_MAX_BYTES 256

typedef struct qv_tokenizer qv_tokenizer_t;

/* Loads a vocab.txt (one token per line, the line number is the id; "\n" or "\r\n" line ends). The file must be valid
 * UTF-8, hold no empty or duplicate tokens, and contain [PAD], [UNK], [CLS], [SEP] and [MASK]. Errors: QV_ENOTFOUND
 * (no such file), QV_EIO, QV_ECORRUPT (the message names the line), QV_ENOMEM. On success *out is owned by the
 * caller: qv_tokenizer_free(). */
int qv_tokenizer_load(const char *vocab_path, qv_tokenizer_t **out, qv_err_t *err);

/* The same, from vocab.txt bytes in memory (copied; the caller keeps `data`). */
int qv_tokenizer_from_buf(const char *data, size_t len, qv_tokenizer_t **out, qv_err_t *err);

void qv_tokenizer_free(qv_tokenizer_t *tok);

/* Number of tokens in the vocabulary (ids are 0 .. size-1). */
uint32_t qv_tokenizer_vocab_size(const qv_tokenizer_t *tok);

/* The id of an exact vocabulary entry (e.g. "##ing", "[CLS]"), or -1. */
int32_t qv_tokenizer_id(const qv_tokenizer_t *tok, const char *token, size_t len);

/* True when len bytes are valid UTF-8 (utf8proc's decoder); otherwise *bad_at gets the offset of the first bad byte.
 * The check qv_tokenizer_encode makes, for callers that must refuse a text before any model sees it. */
bool qv_tokenizer_utf8_valid(const void *text, size_t len, size_t *bad_at);

/* True when the text holds nothing but white space and control characters (NUL included), which the tokenizer
 * drops: it would encode to [CLS] [SEP] alone, whose embedding says nothing about the text. */
bool qv_tokenizer_blank(const void *text, size_t len);

/* Encodes len bytes of UTF-8 text as [CLS] wordpieces... [SEP], truncated to max_ids ids in all (2 <= max_ids; the
 * model uses QV_TOK_MAX_LEN): ids gets up to max_ids entries and *nids their number. The text need not be
 * NUL-terminated and may contain NULs (they are dropped, as control characters are). Literal special tokens in the
 * text ("[SEP]", "[MASK]", ...) become their ids, as in the reference tokenizer. Errors: QV_EINVAL (text is not valid
 * UTF-8: the message gives the byte offset; max_ids < 2), QV_ENOMEM. */
int qv_tokenizer_encode(const qv_tokenizer_t *tok, const char *text, size_t len, size_t max_ids, int32_t *ids,
                        size_t *nids, qv_err_t *err);

#endif
