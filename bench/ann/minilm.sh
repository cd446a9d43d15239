#!/bin/bash
# The ANN benchmark on real embeddings: all-MiniLM-L6-v2 vectors (384-d, unit length) of Wikipedia passages.
#   bench/ann/minilm.sh [--n 20000] [--nq 1000] [--words 100] [compare.py arguments, e.g. --quant none,sq8]
# Passages of ~100 words from ../shared/datasets/wikipedia (bench/rag/rag.py's chunker, a fixed article order);
# the first N are the base rows and the next NQ (other passages) the queries. Embedded once by the built-in model
# (quiver-embed-bench --out, the same code as quiverd's embedder) into build-bench/data/minilm-N-{base,query}.fvecs,
# then bench/ann/run.sh compares quiver-ann, hnswlib and faiss on them with the cosine metric (inner product on
# unit vectors for the peers). Embedding takes about 1 ms per word on 2 cores: ~30 min for 20k passages.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=20000 nq=1000 words=100 rest=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --n) n=$2; shift 2 ;;
    --nq) nq=$2; shift 2 ;;
    --words) words=$2; shift 2 ;;
    *) rest+=("$1"); shift ;;
  esac
done
tools/fetch_model.sh >/dev/null
cmake -S . -B build-bench/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench/release -j"${QV_JOBS:-2}" --target quiver-embed-bench quiver-ann >/dev/null
d=build-bench/data
mkdir -p "$d"
base=$d/minilm-$n-base.fvecs query=$d/minilm-$n-query.fvecs
if [[ ! -s $base || ! -s $query ]]; then
  /usr/bin/python3 bench/ann/minilm_texts.py --data-dir build-bench/wiki --n "$n" --nq "$nq" --words "$words" \
    --out "$d/minilm-texts.txt"
  head -n "$n" "$d/minilm-texts.txt" > "$d/minilm-base.txt"
  tail -n "$nq" "$d/minilm-texts.txt" > "$d/minilm-query.txt"
  build-bench/release/quiver-embed-bench --model build/model --texts "$d/minilm-query.txt" --out "$query.tmp"
  build-bench/release/quiver-embed-bench --model build/model --texts "$d/minilm-base.txt" --out "$base.tmp"
  mv "$query.tmp" "$query"
  mv "$base.tmp" "$base"
fi
exec bench/ann/run.sh --dataset "files:$base,$query" --metric cosine "${rest[@]}"
