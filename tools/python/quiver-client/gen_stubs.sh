#!/usr/bin/env bash
# Regenerates the committed protobuf/gRPC stubs of quiver_client from proto/quiver/v1/quiver.proto.
#
#   tools/python/quiver-client/gen_stubs.sh            # uses `python3 -m grpc_tools.protoc`
#   PYTHON=/path/to/venv/bin/python gen_stubs.sh       # another interpreter with grpcio-tools installed
#
# Output: src/quiver_client/_proto/quiver/v1/quiver_pb2.py, quiver_pb2.pyi and quiver_pb2_grpc.py. The proto is
# compiled with -I<repo>/proto so that its descriptor keeps the name "quiver/v1/quiver.proto" (the same name raw
# stubs generated as in the top-level README register, so both can live in one process); the one absolute import
# the gRPC plugin writes (`from quiver.v1 import quiver_pb2`) is rewritten to a package-relative one.
#
# After regenerating, check the protobuf pin in pyproject.toml against the "Protobuf Python Version" line of
# quiver_pb2.py (tests/test_packaging.py fails when they disagree).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
proto_root="$(cd "$here/../../../proto" && pwd)"
out="${OUT:-$here/src/quiver_client/_proto}"  # OUT: somewhere else (tests compare)
py="${PYTHON:-python3}"

if ! "$py" -c 'import grpc_tools.protoc' 2>/dev/null; then
    echo "gen_stubs.sh: $py has no grpcio-tools; run: $py -m pip install grpcio-tools (or set PYTHON=...)" >&2
    exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$py" -m grpc_tools.protoc -I"$proto_root" --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" \
    quiver/v1/quiver.proto

tools_version="$("$py" -c 'import importlib.metadata as m; print(m.version("grpcio-tools"))')"
header="# Generated from proto/quiver/v1/quiver.proto with grpcio-tools $tools_version: do not edit.
# Regenerate with tools/python/quiver-client/gen_stubs.sh."

rm -rf "$out/quiver"
mkdir -p "$out/quiver/v1"
for f in quiver_pb2.py quiver_pb2.pyi quiver_pb2_grpc.py; do
    { printf '%s\n' "$header"; cat "$tmp/quiver/v1/$f"; } > "$out/quiver/v1/$f"
done
sed -i 's/^from quiver\.v1 import quiver_pb2 as /from . import quiver_pb2 as /' "$out/quiver/v1/quiver_pb2_grpc.py"
if grep -n '^from quiver\|^import quiver' "$out/quiver/v1/"*.py "$out/quiver/v1/"*.pyi; then
    echo "gen_stubs.sh: an absolute import of the quiver package is left (above); extend the rewrite" >&2
    exit 1
fi
for d in "$out" "$out/quiver" "$out/quiver/v1"; do
    printf '%s\n' "$header" > "$d/__init__.py"
done
gencode="$(grep -m1 'Protobuf Python Version' "$out/quiver/v1/quiver_pb2.py")"
echo "gen_stubs.sh: stubs written to ${out#"$here"/} (${gencode#\# }; pyproject.toml must require protobuf>= that)"
