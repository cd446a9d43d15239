#!/bin/bash
# ANN benchmark: quiver-ann vs hnswlib (and faiss HNSW, HNSW-SQ8 and IVF-PQ when pip can install faiss) on the same
# files, in one run.
#   bench/ann/run.sh                      synthetic 100k x 128 (L2) + the SIFT-5k sample
#   bench/ann/run.sh --n 1000000          more rows (the issue's 1M x 128; slow on a 2-core machine)
#   bench/ann/run.sh --dim 384 --n 200000 the issue's 200k x 384
#   bench/ann/run.sh --filter-selectivity 0.001,0.01,0.1,0.5 ...
#   bench/ann/run.sh --dataset synth --quant none,sq8,pq:32@50 --no-4k
#                                         quiver without quantisation, with SQ8 and with PQ m=32 (re-rank factor 50)
#                                         against hnswlib, faiss HNSW, faiss HNSW-SQ8 and faiss IVF-PQ (bench/README.md)
# Any arguments go to compare.py (see compare.py --help); without --dataset it runs synth and sift5k.
# Output: a table on stdout; build-bench/results/{NAME.txt,NAME.png,NAME-quiver.json,summary.json}.
# Needs: cmake + the project's build deps (tools/deps.sh), python3-venv; installs hnswlib, faiss-cpu and matplotlib
# into build-bench/venv (with the system site packages, for numpy).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
jobs=${QV_JOBS:-2}

echo "load at start: $(uptime)"
cmake -S . -B build-bench/release -DCMAKE_BUILD_TYPE=Release -DQV_TESTS=OFF >/dev/null
cmake --build build-bench/release -j"$jobs" --target quiver-ann >/dev/null

venv=build-bench/venv
if [[ ! -x $venv/bin/python ]]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
if ! "$venv/bin/python" -c 'import hnswlib, matplotlib' 2>/dev/null; then
  "$venv/bin/pip" install -q hnswlib matplotlib
fi
if ! "$venv/bin/python" -c 'import faiss' 2>/dev/null; then
  "$venv/bin/pip" install -q faiss-cpu || echo "faiss-cpu could not be installed: faiss is skipped"
fi

args=("$@")
has_dataset=0
for a in "${args[@]}"; do [[ $a == --dataset* ]] && has_dataset=1; done
if ((!has_dataset)); then
  args+=(--dataset synth --dataset sift5k)
fi
# hnswlib and faiss allocate with malloc: let glibc advise huge pages for them as quiver-ann does for itself.
export GLIBC_TUNABLES=glibc.malloc.hugetlb=1
"$venv/bin/python" bench/ann/compare.py --exe "$root/build-bench/release/quiver-ann" "${args[@]}"
echo "load at end: $(uptime)"
