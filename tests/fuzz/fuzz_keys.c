/* Fuzz target: the API-key file parser (qv_keys_parse, server/auth.c).
 *
 * Input: the text of a key file. A file that parses must hold no NUL byte, and every line that is neither blank nor a
 * comment must be `KEY ROLE` whose key now has that role (qv_keys_role); a file that does not parse must fail with
 * QV_EINVAL (or QV_ENOMEM) and a message. The input is passed at its exact length, not NUL-terminated, so a read past
 * the end is caught by ASan. */
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "server/auth.h"

static bool blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/* The next run of non-blank bytes in line[*at..len): its start and length (0 at the end). */
static size_t token(const char *line, size_t len, size_t *at, const char **tok)
{
    while (*at < len && blank(line[*at]))
        (*at)++;
    *tok = line + *at;
    size_t start = *at;
    while (*at < len && !blank(line[*at]))
        (*at)++;
    return *at - start;
}

static void check_keys(const qv_keys_t *k, const char *text, size_t len)
{
    FUZZ_CHECK(!memchr(text, '\0', len));
    size_t nkeys = 0;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t ll = nl ? (size_t)(nl - (text + at)) : len - at, pos = 0;
        const char *line = text + at, *key, *role, *extra;
        at += ll + 1;
        size_t kl = token(line, ll, &pos, &key);
        if (kl == 0 || key[0] == '#')
            continue;
        size_t rl = token(line, ll, &pos, &role);
        FUZZ_CHECK(rl > 0 && token(line, ll, &pos, &extra) == 0 && kl >= 16 && kl <= 256);
        for (size_t b = 0; b < kl; b++)
            FUZZ_CHECK(key[b] > ' ' && key[b] < 0x7f);
        int want = rl == 4 && !memcmp(role, "read", 4)    ? QV_ROLE_READ
                   : rl == 5 && !memcmp(role, "write", 5) ? QV_ROLE_WRITE
                                                          : QV_ROLE_ADMIN;
        FUZZ_CHECK(want != QV_ROLE_ADMIN || (rl == 5 && !memcmp(role, "admin", 5)));
        FUZZ_CHECK(qv_keys_role(k, key, kl) == want);
        nkeys++;
    }
    FUZZ_CHECK(nkeys > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    const char *text = (const char *)data;
    qv_keys_t *k;
    qv_err_t err = {0};
    int rc = qv_keys_parse(text, size, "keys", &k, &err);
    if (rc == QV_OK) {
        check_keys(k, text, size);
        FUZZ_CHECK(qv_keys_role(k, "", 0) == -1);
        qv_keys_free(k);
    } else {
        FUZZ_CHECK((rc == QV_EINVAL || rc == QV_ENOMEM) && k == NULL && err.code == rc && err.msg[0]);
    }
    return 0;
}

void qv_fuzz_seeds(qv_fuzz_add_fn add, void *ctx)
{
    static const char *const seeds[] = {
        "# keys\nreader-key-0123456789 read\nwriter-key-0123456789 write\nadmin-key-01234567890 admin\n",
        ("\r\n\tkey-with-crlf-0123456 read\r\n\v\n\f\n \v\f\t\r\n# comment\n  #indented comment\n"
         "key-separated-by-vt-01\vadmin"),
        "short read\n",
        "abcdefghijklmnopqrstuvwxyz0123456789 read\nabcdefghijklmnopqrstuvwxyz0123456789 write\n",
        "abcdefghijklmnopqrstuvwxyz0123456789 owner\n",
        "abcdefghijklmnopqrstuvwxyz0123456789\n",
        "abcdefghijklmnopqrstuvwxyz0123456789 read extra\n",
        "\v\n",
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
        add(ctx, (const uint8_t *)seeds[i], strlen(seeds[i]));
}
