#!/usr/bin/env bash
# Cluster benchmark: a standalone quiverd vs 3 shard quiverds + a coordinator on loopback (bench/cluster/cluster_bench.py;
# bench/README.md, "Cluster (standalone vs 3 shards + coordinator)").
#
#   bench/cluster/run.sh [--head] [--smoke] [cluster_bench.py options...]
#
#   --head    build quiverd from a clean `git archive` export of HEAD (in $SRC_DIR) instead of the work tree; the work
#             tree is the default and falls back to HEAD when it does not configure or build (someone's edits mid-way)
#   --smoke   small sizes (10,000 x 32, 200 queries, 1 round): checks that everything works; results go to
#             bench/cluster/results/smoke/
#   other arguments go to cluster_bench.py (--n, --dim, --queries, --threads, --rounds, --ingest-repeat, --out, ...)
#
# Environment: QUIVERD (use this binary, skip the build), BUILD_DIR (default /tmp/cbench-build), SRC_DIR (the HEAD
# export, default /tmp/cbench-src), JOBS (build parallelism, default 2). Needs Debian's /usr/bin/python3 with
# python3-grpcio, python3-protobuf, python3-numpy, and protoc + grpc_python_plugin (protobuf-compiler-grpc).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-/tmp/cbench-build}
SRC_DIR=${SRC_DIR:-/tmp/cbench-src}
PY=/usr/bin/python3
SRC=worktree
SMOKE=0
PASS=()
for a in "$@"; do
    case "$a" in
    --head) SRC=head ;;
    --smoke) SMOKE=1 ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) PASS+=("$a") ;;
    esac
done

HEAD_COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)

build_head() {
    echo "== quiverd (Release) from a clean export of HEAD $HEAD_COMMIT: $SRC_DIR -> $BUILD_DIR" >&2
    rm -rf "$SRC_DIR" "$BUILD_DIR"
    mkdir -p "$SRC_DIR"
    git -C "$REPO" archive --format=tar HEAD | tar -x -C "$SRC_DIR"
    cmake -S "$SRC_DIR" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DQV_TESTS=OFF -DQV_GPU=OFF >&2
    cmake --build "$BUILD_DIR" -j"${JOBS:-2}" --target quiverd >&2
    export QUIVERD="$BUILD_DIR/quiverd" QV_BENCH_SOURCE="HEAD $HEAD_COMMIT (clean export)"
    export QV_PROTO_DIR="$SRC_DIR/proto" # stubs from the proto the server was built from
}

if [ -n "${QUIVERD:-}" ]; then
    export QV_BENCH_SOURCE="${QV_BENCH_SOURCE:-QUIVERD=$QUIVERD (given)}"
elif [ "$SRC" = head ]; then
    build_head
else
    echo "== quiverd (Release) from the work tree: $REPO -> $BUILD_DIR" >&2
    DIRTY=$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | wc -l)
    if cmake -S "$REPO" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DQV_TESTS=OFF -DQV_GPU=OFF >&2 &&
        cmake --build "$BUILD_DIR" -j"${JOBS:-2}" --target quiverd >&2; then
        export QUIVERD="$BUILD_DIR/quiverd" QV_BENCH_SOURCE="work tree at $HEAD_COMMIT ($DIRTY modified tracked files)"
    else
        echo "WARNING: the work tree does not configure or build (uncommitted edits?); falling back to HEAD" >&2
        build_head
    fi
fi

echo "== nproc: $(nproc)   uptime: $(uptime)" >&2
if [ "$SMOKE" = 1 ]; then
    mkdir -p "$HERE/results/smoke"
    "$PY" "$HERE/cluster_bench.py" --n 10000 --dim 32 --queries 200 --rounds 1 --ingest-repeat 1 \
        --out "$HERE/results/smoke/cluster_bench.json" "${PASS[@]+"${PASS[@]}"}"
else
    "$PY" "$HERE/cluster_bench.py" "${PASS[@]+"${PASS[@]}"}"
fi
echo "== nproc: $(nproc)   uptime: $(uptime)" >&2
