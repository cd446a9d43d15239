"""The package itself: committed stubs in step with the proto and with the protobuf pin, py.typed, no import of the
generated *_grpc module (so any grpcio >= 1.60 works), and lines of at most 120 columns."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

import quiver_client
from quiver_client._proto.quiver.v1 import quiver_pb2 as pb

PKG = Path(__file__).resolve().parents[1]
REPO = PKG.parents[2]
PROTO_OUT = PKG / "src" / "quiver_client" / "_proto"
GENERATED = [PROTO_OUT / "quiver" / "v1" / f for f in ("quiver_pb2.py", "quiver_pb2.pyi", "quiver_pb2_grpc.py")]


def gencode_version() -> str:
    m = re.search(r"^# Protobuf Python Version: (\S+)$", GENERATED[0].read_text(), re.M)
    assert m, "quiver_pb2.py has no 'Protobuf Python Version' line"
    return m.group(1)


def test_protobuf_pin_matches_the_generated_code() -> None:
    text = (PKG / "pyproject.toml").read_text()
    m = re.search(r'"protobuf>=([0-9.]+),<([0-9]+)"', text)
    assert m, "pyproject.toml: no protobuf>=X,<Y requirement"
    v = gencode_version()
    assert m.group(1) == v, f"pyproject pins protobuf>={m.group(1)}, the stubs were generated for {v}"
    assert int(m.group(2)) == int(v.split(".")[0]) + 1


def test_generated_files_carry_the_header() -> None:
    for f in GENERATED + [PROTO_OUT / "__init__.py"]:
        head = f.read_text().splitlines()[:2]
        assert "do not edit" in head[0] + head[1] and "gen_stubs.sh" in head[1], f


def test_stubs_match_the_proto(tmp_path: Path) -> None:
    """The committed descriptor is the one protoc makes from proto/quiver/v1/quiver.proto now (else: run
    gen_stubs.sh). With the grpcio-tools the stubs were made with, regenerating changes no byte."""
    if importlib.util.find_spec("grpc_tools") is None:
        pytest.skip("grpcio-tools is not installed")
    proto = REPO / "proto"
    out = tmp_path / "set.pb"
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{proto}", f"--descriptor_set_out={out}",
                    "quiver/v1/quiver.proto"], check=True)
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    todo = list(fresh.message_type)  # the Python gencode leaves json_name out
    while todo:
        m = todo.pop()
        todo += m.nested_type
        for f in m.field:
            f.ClearField("json_name")
    committed = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    assert fresh == committed, "the committed stubs are stale: run tools/python/quiver-client/gen_stubs.sh"
    from importlib.metadata import version
    m = re.search(r"with grpcio-tools (\S+): do not edit", GENERATED[0].read_text())
    if not m or m.group(1) != version("grpcio-tools"):
        return  # another generator writes other bytes for the same descriptor
    gen = tmp_path / "gen"
    subprocess.run(["bash", str(PKG / "gen_stubs.sh")], check=True, capture_output=True,
                   env={**os.environ, "PYTHON": sys.executable, "OUT": str(gen)})
    for f in GENERATED:
        assert (gen / f.relative_to(PROTO_OUT)).read_bytes() == f.read_bytes(), f


def test_installed_package_is_typed() -> None:
    root = Path(quiver_client.__file__).parent
    assert (root / "py.typed").is_file()
    assert (root / "_proto" / "quiver" / "v1" / "quiver_pb2.pyi").is_file()


def test_client_does_not_import_the_grpc_stub_module() -> None:
    code = "import sys, quiver_client; print(any(m.endswith('quiver_pb2_grpc') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_line_length() -> None:
    files = [p for p in PKG.rglob("*") if p.suffix in (".py", ".sh", ".md", ".toml", ".cfg")
             and "_proto" not in p.parts and "build" not in p.relative_to(PKG).parts and ".egg-info" not in str(p)]
    files.append(PKG / "gen_stubs.sh")
    long = [f"{p.relative_to(PKG)}:{i}" for p in files for i, line in enumerate(p.read_text().splitlines(), 1)
            if len(line) > 120]
    assert not long, f"lines over 120 columns: {long}"
