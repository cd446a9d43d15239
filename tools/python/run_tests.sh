#!/usr/bin/env bash
# Usage: QUIVERD=/path/to/quiverd tools/python/run_tests.sh VENV_DIR
#
# Installs the three Python packages of this checkout (quiver-client, langchain-quiver,
# llama-index-vector-stores-quiver) NOT editable into VENV_DIR (created with /usr/bin/python3 -m venv when missing),
# so that the run proves `pip install` works, with the test dependencies from PyPI; then runs the three test suites
# one after another against the quiverd named by $QUIVERD (each suite starts its own private server). Exits non-zero
# when the environment is incomplete, an install fails or any suite fails. The LangChain and LlamaIndex suites run
# with pytest-socket (a langchain-tests dependency) refusing connections anywhere but 127.0.0.1, which proves them
# offline apart from the local quiverd (gRPC's own sockets are not Python's and are not affected).
#
# Versions last tested (Python 3.11.2): langchain-core 1.8.3, langchain-tests 1.1.9, llama-index-core 0.14.25,
# pytest 9.2.0, pytest-asyncio 1.5.0, pytest-socket 0.8.1, grpcio 1.85.4, grpcio-tools 1.85.4, protobuf 7.36.2,
# numpy 2.4.6, pydantic 2.14.4.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${1:?usage: QUIVERD=/path/to/quiverd $0 VENV_DIR}
if [ -z "${QUIVERD:-}" ]; then
    echo "run_tests.sh: set QUIVERD to the quiverd binary" >&2
    exit 2
fi
if [ ! -x "$QUIVERD" ]; then
    echo "run_tests.sh: QUIVERD=$QUIVERD is not an executable file" >&2
    exit 2
fi
QUIVERD=$(cd "$(dirname "$QUIVERD")" && pwd)/$(basename "$QUIVERD")
export QUIVERD

if [ ! -x "$venv/bin/python" ]; then
    /usr/bin/python3 -m venv "$venv"
fi
py=$venv/bin/python

# Build from copies: nothing (build/, *.egg-info) is written into the checkout, and no stale build/ left there by an
# earlier in-tree build ends up in a wheel.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
packages=(quiver-client langchain-quiver llama-index-vector-stores-quiver)
for p in "${packages[@]}"; do
    mkdir "$tmp/$p"
    (cd "$here/$p" && tar --exclude=./build --exclude='*.egg-info' --exclude=__pycache__ --exclude=.pytest_cache \
        -cf - .) | tar -xf - -C "$tmp/$p"
done

t0=$SECONDS
"$py" -m pip install --quiet --disable-pip-version-check \
    "$tmp/quiver-client[test,stubs]" "$tmp/langchain-quiver" "$tmp/llama-index-vector-stores-quiver" \
    "langchain-core>=0.3,<2" "langchain-tests>=0.3" "llama-index-core>=0.12,<0.15" \
    "pytest>=7" "pytest-asyncio>=0.23" "pytest-socket>=0.7"
echo "run_tests.sh: installed in $((SECONDS - t0)) s into $venv"

export PYTHONDONTWRITEBYTECODE=1
offline=(--disable-socket --allow-unix-socket --allow-hosts=127.0.0.1)
failed=()
for p in "${packages[@]}"; do
    args=(-q -rs -p no:cacheprovider)
    if [ "$p" != quiver-client ]; then
        args+=("${offline[@]}")
    fi
    echo "=== $p: pytest ${args[*]} tests"
    t=$SECONDS
    if (cd "$here/$p" && "$py" -m pytest "${args[@]}" tests); then
        echo "=== $p: passed in $((SECONDS - t)) s"
    else
        echo "=== $p: FAILED after $((SECONDS - t)) s"
        failed+=("$p")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "run_tests.sh: failed: ${failed[*]}" >&2
    exit 1
fi
echo "run_tests.sh: all ${#packages[@]} suites passed ($((SECONDS - t0)) s)"
