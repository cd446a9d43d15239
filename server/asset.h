/* A file built into quiverd as a byte array by tools/embed_files.cmake: the web console's static files
 * (server/console.h) and the descriptor set that reflection serves (server/reflection.h). */
#ifndef QV_ASSET_H
#define QV_ASSET_H

#include <stddef.h>

typedef struct {
    const char *path;          /* "/console/console.js"; NULL ends the table */
    const char *content_type;
    const unsigned char *data;
    size_t len;
} qv_asset_t;

#endif
