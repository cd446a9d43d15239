/* The web console's static files (server/console/: index.html, console.js, console.css), built into quiverd as byte
 * arrays by tools/embed_files.cmake, and served by the HTTP listener at GET / and GET /console/<file>: nothing is
 * fetched from anywhere else. The console is a single page over the HTTP/JSON API (server/http_api.h) and /metrics:
 * collections (schema, segments with index state and build progress, compaction jobs, WAL bytes), a search
 * playground (text or vector, a filter builder, k and ef, hits with attributes and text, latency), a point browser
 * (Scroll, Get), the cluster (Health: the shards a coordinator reaches) and live charts from the metrics. With API keys
 * on, the key typed into it is sent as `Authorization: Bearer`. */
#ifndef QV_CONSOLE_H
#define QV_CONSOLE_H

#include "server/asset.h"

extern const qv_asset_t qv_assets[];

#endif
