#!/usr/bin/env bash
# End-to-end benchmark (issue 6): Quiver vs milvus-lite vs chromadb, same data, one run, one Python client harness.
#
#   bench/e2e/run.sh                       200,000 x 128 (the default; see e2e.py --help for every option). About
#                                          40 minutes on 2 shared cores, most of it milvus-lite's searches (~8 QPS)
#   bench/e2e/run.sh --n 1000000           the issue's 1M x 128 fallback: hours here (milvus-lite's search cost and
#                                          chroma's inline HNSW build grow with n)
#   bench/e2e/run.sh --n 20000 --queries 200 --rounds 1 --min-seconds 1 --tag smoke    a quick check
#   bench/e2e/run.sh --systems quiver,milvus-lite   leave a peer out
#   bench/e2e/run.sh --head                quiverd from a clean export of the committed HEAD (not the work tree)
#
# Steps: builds a Release quiverd from the work tree in build-bench/e2e-build (QUIVERD=/path/to/quiverd skips it; if
# the work tree does not build, or with --head, a clean export of HEAD is built instead), creates the venv
# build-bench/e2e-venv with Debian's /usr/bin/python3 and pip-installs pymilvus + milvus-lite, chromadb, grpcio-tools,
# matplotlib and numpy into it (a peer whose package will not install is left out and said so), then runs
# bench/e2e/e2e.py with it.
# Results: bench/e2e/results/TAG.{md,json,png} (TAG = e2e unless --tag). JOBS sets the build parallelism (2).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BB="$REPO/build-bench"
VENV="$BB/e2e-venv"
SRC=worktree
args=()
for a in "$@"; do
    case "$a" in
    -h | --help) sed -n '2,15p' "$0"; echo; exec /usr/bin/python3 "$REPO/bench/e2e/e2e.py" --help ;;
    --head) SRC=head ;;
    *) args+=("$a") ;;
    esac
done

build_head() { # the committed HEAD, exported into a clean dir: immune to uncommitted edits in the work tree
    HEAD=$(git -C "$REPO" rev-parse --short HEAD)
    echo "== building quiverd (Release) from a clean export of HEAD $HEAD in $BB/e2e-build-head" >&2
    rm -rf "$BB/e2e-src-head"
    mkdir -p "$BB/e2e-src-head"
    git -C "$REPO" archive --format=tar HEAD | tar -x -C "$BB/e2e-src-head"
    cmake -S "$BB/e2e-src-head" -B "$BB/e2e-build-head" -DCMAKE_BUILD_TYPE=Release -DQV_TESTS=OFF >/dev/null
    cmake --build "$BB/e2e-build-head" -j"${JOBS:-2}" --target quiverd >/dev/null
    QUIVERD="$BB/e2e-build-head/quiverd"
    export QV_PROTO_DIR="$BB/e2e-src-head/proto" # client stubs from the proto the server was built from
}

echo "== load at start: $(uptime)   nproc: $(nproc)" >&2

if [ -n "${QUIVERD:-}" ]; then
    :
elif [ "$SRC" = head ]; then
    build_head
else
    echo "== building quiverd (Release) from the work tree in $BB/e2e-build" >&2
    if cmake -S "$REPO" -B "$BB/e2e-build" -DCMAKE_BUILD_TYPE=Release -DQV_TESTS=OFF >/dev/null &&
        cmake --build "$BB/e2e-build" -j"${JOBS:-2}" --target quiverd >/dev/null; then
        QUIVERD="$BB/e2e-build/quiverd"
    else
        echo "WARNING: the work tree does not build; falling back to HEAD" >&2
        build_head
    fi
fi
export QUIVERD
echo "== quiverd: $QUIVERD" >&2

if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV" >&2
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip >&2
fi
"$VENV/bin/pip" install -q numpy grpcio-tools matplotlib >&2
systems=quiver
if "$VENV/bin/python" -c 'import pymilvus, milvus_lite' 2>/dev/null || "$VENV/bin/pip" install -q pymilvus milvus-lite >&2; then
    systems="$systems,milvus-lite"
else
    echo "WARNING: pymilvus/milvus-lite could not be installed: milvus-lite is left out" >&2
fi
if "$VENV/bin/python" -c 'import chromadb' 2>/dev/null || "$VENV/bin/pip" install -q chromadb >&2; then
    systems="$systems,chroma"
else
    echo "WARNING: chromadb could not be installed: chroma is left out" >&2
fi
"$VENV/bin/pip" freeze 2>/dev/null | grep -iE '^(pymilvus|milvus-lite|chromadb|grpcio|grpcio-tools|protobuf|numpy|faiss-cpu|matplotlib)==' >&2 || true

has_systems=0
for a in "${args[@]}"; do [[ $a == --systems* ]] && has_systems=1; done
((has_systems)) || args+=(--systems "$systems")
"$VENV/bin/python" "$REPO/bench/e2e/e2e.py" --quiverd "$QUIVERD" "${args[@]}"
echo "== load at end: $(uptime)" >&2
