/* common/hash.h */
#include "common/hash.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/random.h>
#include <xxhash.h>

static unsigned char secret[192]; /* >= XXH3_SECRET_SIZE_MIN */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_secret(void)
{
    size_t got = 0;
    while (got < sizeof secret) {
        ssize_t n = getrandom(secret + got, sizeof secret - got, 0);
        if (n <= 0)
            abort(); /* getrandom blocks until the pool is ready and never fails for 192 bytes on Linux >= 3.17 */
        got += (size_t)n;
    }
}

uint64_t qv_hash(const void *data, size_t len)
{
    pthread_once(&once, init_secret);
    return XXH3_64bits_withSecret(data, len, secret, sizeof secret);
}
