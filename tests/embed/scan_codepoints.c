/* Helper of scan_codepoints.py: prints "HEX id id ..." for the text "a" + U+HEX + "b" of every code point in the
 * ranges the script scans (all of planes 0-2, 3 up to U+31FFF, and 14 up to U+E01FF; no surrogates). */
#include <stdio.h>
#include <utf8proc.h>

#include "query/embed/tokenizer.h"

int main(int argc, char **argv)
{
    qv_tokenizer_t *tok;
    qv_err_t err;
    if (argc != 2 || qv_tokenizer_load(argv[1], &tok, &err) != QV_OK) {
        fprintf(stderr, "usage: scan_codepoints VOCAB_TXT (%s)\n", argc == 2 ? err.msg : "");
        return 2;
    }
    for (int32_t c = 0; c < 0xE0200; c++) {
        if ((c >= 0xD800 && c < 0xE000) || (c >= 0x32000 && c < 0xE0000))
            continue;
        uint8_t text[8];
        size_t n = 0;
        text[n++] = 'a';
        n += (size_t)utf8proc_encode_char(c, text + n);
        text[n++] = 'b';
        int32_t ids[QV_TOK_MAX_LEN];
        size_t nids;
        if (qv_tokenizer_encode(tok, (const char *)text, n, QV_TOK_MAX_LEN, ids, &nids, &err) != QV_OK)
            return 1;
        printf("%x", (unsigned)c);
        for (size_t i = 0; i < nids; i++)
            printf(" %d", ids[i]);
        printf("\n");
    }
    qv_tokenizer_free(tok);
    return 0;
}
