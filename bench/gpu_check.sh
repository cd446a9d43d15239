#!/bin/bash
# GPU plugin check: every GPU result against the CPU's (tolerances in bench/gpu_check.c's header), and speed ratios.
#   bench/gpu_check.sh                    100k x 128 synthetic rows for the graph build, 20k for the kernel checks
#   bench/gpu_check.sh --n 1000000        a bigger graph build
#   QV_MODEL_DIR=build/model bench/gpu_check.sh   also the embedding (GPU vs CPU vectors and throughput)
# Where there is no GPU (nvidia-smi fails, or the plugin does not load: no nvcc at build time, no driver, no device)
# it prints `no GPU: skipped` and exits 0. Exit 1 when a comparison fails.
# QV_GPU_CHECK_SELFTEST=1 runs every step with the CPU implementation of the plugin (kernels/cpu/) in place of the
# GPU, to check this script and quiver-gpu-check on a machine without one (its speed ratios mean nothing).
#
# Steps: Release build of libquiver_gpu.so, quiver-gpu-check and quiver-ann in build-gpu-check/; quiver-gpu-check
# compare (knn, k-means, SQ8, PQ, a 20k graph, embedding); then the graph build at --n rows: CPU HNSW by quiver-ann
# (all cores) against the GPU graph (quiver-gpu-check graph), both searched by quiver-ann at the same ef, so the
# recall and QPS come from the same CPU search code.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
n=100000
dim=128
while (($#)); do
  case $1 in
    --n) n=$2; shift 2 ;;
    --dim) dim=$2; shift 2 ;;
    *) echo "usage: bench/gpu_check.sh [--n ROWS] [--dim DIM]" >&2; exit 2 ;;
  esac
done

selftest=${QV_GPU_CHECK_SELFTEST:-0}
ref=()
if ((selftest)); then
  ref=(--cpu-reference)
  echo "SELF-TEST: the CPU implementation stands in for the GPU; speed ratios are meaningless"
elif ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "no GPU: skipped (nvidia-smi is missing or sees no device)"
  exit 0
fi

build=${QV_GPU_CHECK_BUILD:-$root/build-gpu-check}
jobs=${QV_JOBS:-$(nproc)}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DQV_TESTS=OFF >/dev/null
cmake --build "$build" -j"$jobs" --target quiver-gpu-check quiver-ann >/dev/null
if ((!selftest)); then
  if ! cmake --build "$build" -j"$jobs" --target quiver_gpu >/dev/null 2>&1 || [[ ! -f $build/libquiver_gpu.so ]]; then
    echo "no GPU: skipped (libquiver_gpu.so was not built: is nvcc installed?)"
    exit 0
  fi
  export QV_GPU_PLUGIN=$build/libquiver_gpu.so
fi
set +e
probe=$("$build/quiver-gpu-check" "${ref[@]}" probe 2>&1)
prc=$?
set -e
if ((prc == 3)); then
  echo "no GPU: skipped ($probe)"
  exit 0
elif ((prc != 0)); then
  echo "$probe"
  exit 1
fi
echo "$probe"
((selftest)) || nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
echo "load: $(uptime)"

status=0
model_args=()
if [[ -n ${QV_MODEL_DIR:-} ]]; then model_args=(--model "$QV_MODEL_DIR"); fi
"$build/quiver-gpu-check" "${ref[@]}" compare --n "${QV_GPU_CHECK_COMPARE_N:-20000}" --dim "$dim" \
  "${model_args[@]}" || status=1

# graph build at scale: CPU HNSW (quiver-ann, all cores) vs the GPU graph, searched by the same CPU code
data=$build/data
mkdir -p "$data"
base=$data/synth-$n-$dim-base.fvecs
query=$data/synth-$n-$dim-query.fvecs
if [[ ! -f $base ]]; then
  /usr/bin/python3 - "$n" "$dim" "$base" "$query" <<'PY'
import sys
import numpy as np
n, dim, bpath, qpath = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
rng = np.random.default_rng(1)
centres = rng.standard_normal((max(10, n // 1000), dim)).astype(np.float32)
def rows(m):
    return (centres[rng.integers(0, len(centres), m)] + 0.8 * rng.standard_normal((m, dim))).astype(np.float32)
for path, m in ((bpath, n), (qpath, 1000)):
    v = rows(m)
    out = np.empty((m, dim + 1), np.float32)
    out[:, 0] = np.array([dim], np.int32).view(np.float32)[0]
    out[:, 1:] = v
    out.tofile(path)
PY
fi
common=(--base "$base" --query "$query" --metric l2 --k 10 --M 16 --efc 200 --ef 32,64,128)
rm -f "$data/gpu.blob"
"$build/quiver-gpu-check" "${ref[@]}" graph --base "$base" --metric l2 --M 16 --efc 200 --out "$data/gpu.blob" |
  tee "$data/gpu.txt"
"$build/quiver-ann" "${common[@]}" --json "$data/cpu.json"
"$build/quiver-ann" "${common[@]}" --index-file "$data/gpu.blob" --json "$data/gpu.json"
/usr/bin/python3 - "$data/cpu.json" "$data/gpu.json" "$data/gpu.txt" <<'PY' || status=1
import json, re, sys
cpu, gpu = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
gpu_s = float(re.search(r"build_seconds=([0-9.]+)", open(sys.argv[3]).read()).group(1))
cpu_s = cpu["build_seconds"]
def by_ef(j):
    return {r["ef"]: r for r in j["results"] if r.get("selectivity", 1) in (1, 1.0)}
c, g = by_ef(cpu), by_ef(gpu)
print(f"graph build {cpu['n']} x {cpu['dim']}: gpu {gpu_s:.2f} s, cpu HNSW {cpu_s:.2f} s on {cpu['build_threads']} "
      f"threads: {cpu_s / gpu_s:.1f}x")
ok = True
for ef in sorted(c):
    rc, rg = c[ef]["recall"], g[ef]["recall"]
    good = rg >= rc - 0.02
    ok &= good
    print(f"  ef={ef:4d}: recall@10 gpu graph {rg:.4f}, cpu HNSW {rc:.4f} (tol -0.02) {'PASS' if good else 'FAIL'}; "
          f"qps {g[ef]['qps']:.0f} vs {c[ef]['qps']:.0f}")
sys.exit(0 if ok else 1)
PY
if ((status)); then echo "gpu_check: FAILED"; else echo "gpu_check: PASSED"; fi
exit $status
