#!/usr/bin/env bash
# RAG demo (issue 5): Wikipedia passages loaded through gRPC as text-only points (Quiver embeds them with its built-in
# all-MiniLM-L6-v2), then text queries answered through the HNSW index and by exact search. See bench/rag/rag.py.
#
#   bench/rag/run.sh                          10,000 passages (the default: the CPU embedder is slow on 2 cores)
#   bench/rag/run.sh --passages 0             the whole corpus (~84k passages)
#   bench/rag/run.sh --passages 500 --queries 50 --title-queries 10 --tag smoke     a quick check
#   bench/rag/run.sh --head ...               quiverd from a clean export of the committed HEAD
#
# Steps: builds a Release quiverd (-DQV_GPU=OFF) from the work tree in $QV_RAG_BUILD (default build-bench/rag; a
# clean `git archive` export of HEAD is built instead with --head or when the work tree does not build), fetches the
# model into $QV_RAG_BUILD/model (tools/fetch_model.sh), unpacks ../shared/datasets/wikipedia/enwiki-2015-AA.tar.xz
# into $QV_RAG_BUILD/wikipedia (once), then runs rag.py with Debian's /usr/bin/python3 (python3-grpcio,
# python3-protobuf, python3-numpy, protobuf-compiler, protobuf-compiler-grpc). QUIVERD=/path/to/quiverd skips the
# build; JOBS sets the build parallelism (2). Results: bench/rag/results/TAG.{json,md}.
#
# The passages are Wikipedia text: CC BY-SA 3.0 / GFDL, Wikipedia contributors (2015 dump).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
B=${QV_RAG_BUILD:-$REPO/build-bench/rag}
JOBS=${JOBS:-2}
SRC=worktree
args=()
for a in "$@"; do
    case "$a" in
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    --head) SRC=head ;;
    *) args+=("$a") ;;
    esac
done
mkdir -p "$B"

build() { # $1 source dir, $2 build dir
    cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release -DQV_TESTS=OFF -DQV_GPU=OFF >"$2.log" 2>&1 &&
        cmake --build "$2" -j"$JOBS" --target quiverd >>"$2.log" 2>&1
}
build_head() {
    echo "== building quiverd (Release) from a clean export of HEAD $(git -C "$REPO" rev-parse --short HEAD) in $B/head" >&2
    rm -rf "$B/src-head" && mkdir -p "$B/src-head" "$B/head"
    git -C "$REPO" archive --format=tar HEAD | tar -x -C "$B/src-head"
    build "$B/src-head" "$B/head" || { echo "build of HEAD failed: see $B/head.log" >&2; exit 1; }
    QUIVERD="$B/head/quiverd"
}

if [[ -z ${QUIVERD:-} ]]; then
    if [[ $SRC == head ]]; then
        build_head
    else
        echo "== building quiverd (Release) from the work tree in $B/worktree" >&2
        mkdir -p "$B/worktree"
        if build "$REPO" "$B/worktree"; then
            QUIVERD="$B/worktree/quiverd"
        else
            echo "the work tree does not build (see $B/worktree.log); using HEAD" >&2
            build_head
        fi
    fi
fi
export QUIVERD

MODEL=${QV_MODEL_DIR:-$B/model}
QV_MODEL_DIR="$MODEL" "$REPO/tools/fetch_model.sh" >/dev/null

exec /usr/bin/python3 "$REPO/bench/rag/rag.py" --model-dir "$MODEL" --data-dir "$B/wikipedia" "${args[@]}"
