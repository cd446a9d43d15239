#!/bin/bash
# Installs what is missing, builds Release, and starts a standalone quiverd on 127.0.0.1:7700 with its data in
# ./quiver-data (relative to where you run it). Extra arguments are passed to quiverd.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/tools/deps.sh"
cmake -S "$here" -B "$here/build-release" -DCMAKE_BUILD_TYPE=Release -DQV_TESTS=OFF >/dev/null   # no cmocka needed
cmake --build "$here/build-release" -j"$(nproc)" --target quiverd quiver
QV_MODEL_DIR="$here/build-release/model" "$here/tools/fetch_model.sh" >/dev/null   # quiverd finds it next to itself
exec "$here/build-release/quiverd" --role standalone --listen 127.0.0.1:7700 --data ./quiver-data "$@"
