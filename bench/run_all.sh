#!/usr/bin/env bash
# Builds what the benchmarks need and runs them: bench/ingest.py, then bench/exact_search.py.
# JSON results go to bench/results/ (bench/results/smoke/ with --smoke); Markdown tables go to stdout.
#
#   bench/run_all.sh            full run (200k x 128-d and 100k x 384-d ingest; 100k x 384 exact search)
#   bench/run_all.sh --smoke    small sizes, a minute or two: checks that everything works, numbers mean little
#   bench/run_all.sh --no-faiss skip the faiss peer (otherwise a venv in build-bench/venv gets `pip install faiss-cpu`)
#   bench/run_all.sh --head     benchmark the committed HEAD (a clean `git archive` export built in build-bench/),
#                               not the work tree; the work tree is the default and falls back to HEAD if it fails
#
# Environment: QUIVERD (use this binary instead of building build-release/quiverd), JOBS (build parallelism, 2).
# Needs Debian's python3-grpcio, python3-protobuf, python3-numpy, protobuf-compiler, protobuf-compiler-grpc (for
# grpc_python_plugin), gcc, cmake and the server's own build dependencies (tools/run.sh installs those).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$REPO/build-release"
BB="$REPO/build-bench"
PY=/usr/bin/python3
SMOKE=0
FAISS=1
SRC=worktree
for a in "$@"; do
    case "$a" in
    --smoke) SMOKE=1 ;;
    --no-faiss) FAISS=0 ;;
    --head) SRC=head ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "run_all.sh: unknown argument $a" >&2; exit 2 ;;
    esac
done

mkdir -p "$BB"
HEAD_COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)

build_head() { # the committed HEAD, exported into a clean dir: immune to uncommitted edits in the work tree
    echo "== building quiverd (Release) from a clean export of HEAD $HEAD_COMMIT in $BB/build-head" >&2
    rm -rf "$BB/src-head"
    mkdir -p "$BB/src-head"
    git -C "$REPO" archive --format=tar HEAD | tar -x -C "$BB/src-head"
    cmake -S "$BB/src-head" -B "$BB/build-head" -DCMAKE_BUILD_TYPE=Release -DQV_TESTS=OFF >&2
    cmake --build "$BB/build-head" -j"${JOBS:-2}" --target quiverd >&2
    export QUIVERD="$BB/build-head/quiverd" QV_BENCH_SOURCE="HEAD $HEAD_COMMIT (clean export)"
    export QV_PROTO_DIR="$BB/src-head/proto" # stubs from the same proto the server was built from
}

if [ -n "${QUIVERD:-}" ]; then
    export QV_BENCH_SOURCE="${QV_BENCH_SOURCE:-QUIVERD=$QUIVERD (given)}"
elif [ "$SRC" = head ]; then
    build_head
else
    echo "== building quiverd (Release) from the work tree in $BUILD" >&2
    DIRTY=$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | wc -l)
    if cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DQV_TESTS=OFF >&2 &&
        cmake --build "$BUILD" -j"${JOBS:-2}" --target quiverd >&2; then
        export QUIVERD="$BUILD/quiverd" QV_BENCH_SOURCE="work tree at $HEAD_COMMIT ($DIRTY modified tracked files)"
    else
        echo "WARNING: the work tree does not build (uncommitted edits?); falling back to HEAD" >&2
        build_head
    fi
fi

echo "== building bench/membw" >&2
gcc -O2 -march=native -pthread -Wall -Wextra -o "$BB/membw" "$REPO/bench/membw.c"

FAISS_PY=""
if [ "$FAISS" = 1 ]; then
    if [ ! -x "$BB/venv/bin/python" ]; then
        $PY -m venv --system-site-packages "$BB/venv" >&2 || true
    fi
    if [ -x "$BB/venv/bin/python" ] && ! "$BB/venv/bin/python" -c 'import faiss' 2>/dev/null; then
        echo "== pip install faiss-cpu into $BB/venv" >&2
        timeout 600 "$BB/venv/bin/pip" install --quiet faiss-cpu >&2 || echo "faiss-cpu did not install" >&2
    fi
    if [ -x "$BB/venv/bin/python" ] && "$BB/venv/bin/python" -c 'import faiss' 2>/dev/null; then
        FAISS_PY="$BB/venv/bin/python"
    else
        echo "faiss peer unavailable: the results will say it was skipped" >&2
    fi
fi

if [ "$SMOKE" = 1 ]; then
    OUT="$REPO/bench/results/smoke"
    INGEST_ARGS=(--points 5000 --fsync-seconds 0.5)
    EXACT_ARGS=(--rows 20000 --queries 30 --rounds 2 --membw-mib 256 --membw-passes 2)
else
    OUT="$REPO/bench/results"
    INGEST_ARGS=()
    EXACT_ARGS=()
fi
mkdir -p "$OUT"

{
    echo "# load right before the run"
    uptime
    top -bn2 -d 0.5 -w 160 | awk '/^top - /{n++} n==2 && c++ < 15' || true
} | tee "$OUT/load_before.txt" >&2

# what else runs during the benchmark: every ~10 s, the load average and the top 3 processes by CPU (ours included)
(
    while true; do
        echo "$(date +%T) $(cut -d' ' -f1-3 /proc/loadavg) | $(top -bn2 -d 1 -w 160 | awk '/^top - /{n++} n==2' |
            sed -n '8,10p' | awk '{printf "%s %s%%; ", $12, $9}')"
        sleep 9
    done
) >"$OUT/load_during.txt" 2>/dev/null &
SAMPLER=$!
trap 'kill "$SAMPLER" 2>/dev/null || true' EXIT

echo "== ingest" >&2
timeout 3600 "$PY" "$REPO/bench/ingest.py" "${INGEST_ARGS[@]}" --out "$OUT/ingest.json" >/dev/null
echo "== exact search" >&2
timeout 3600 "$PY" "$REPO/bench/exact_search.py" "${EXACT_ARGS[@]}" --faiss-python "$FAISS_PY" \
    --out "$OUT/exact_search.json" >/dev/null

"$PY" "$REPO/bench/report.py" "$OUT/ingest.json" "$OUT/exact_search.json" | tee "$OUT/results.md"
