"""The GPU plugin's loading contract (server/gpu.h), on machines without a GPU (and with one):

- --gpu auto with no plugin to be found (quiverd copied to a directory of its own, LD_LIBRARY_PATH pointing at an
  empty one): starts, logs ONE `gpu.unavailable missing=plugin` line, serves.
- --gpu require in that setting: start-up fails with a message naming what was missing.
- --gpu off: the plugin is never opened (the dynamic loader's own trace, LD_DEBUG=files, shows no libquiver_gpu),
  one `gpu.off` line.
- A plugin that cannot find its CUDA libraries (a copy of the real plugin whose libcublas dependency is renamed to a
  library that does not exist): auto falls back naming the plugin and the missing library, require fails.
- A library that is not a Quiver plugin of this ABI: refused with a message, fallback.
- The real plugin beside quiverd (when nvcc built it): auto either uses the GPU or names the driver or the device as
  missing -- on a machine without a GPU, the driver -- and serves either way.
"""
import glob
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from qvtest import L2, Server, point

PLUGIN = "libquiver_gpu.so"


@pytest.fixture
def isolated(quiverd, monkeypatch):
    """quiverd copied into an empty directory (no plugin beside it), a library path that finds nothing extra, no
    model (start-up stays fast), no plugin override. Yields the copy's path."""
    d = tempfile.mkdtemp(prefix="qvgpu-")
    exe = os.path.join(d, "quiverd")
    shutil.copy2(quiverd, exe)
    empty = os.path.join(d, "empty-libs")
    os.mkdir(empty)
    monkeypatch.setenv("LD_LIBRARY_PATH", empty)
    monkeypatch.delenv("QV_GPU_PLUGIN", raising=False)
    monkeypatch.delenv("QV_MODEL_DIR", raising=False)
    yield exe
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def servers():
    """Factory for servers of any binary (conftest's make_server always uses $QUIVERD): cleaned up afterwards."""
    made = []

    def make(binary, extra):
        srv = Server(binary=binary, extra=extra)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.cleanup()


def gpu_lines(server):
    return [l for l in server.log_tail(400).splitlines() if "event=gpu." in l]


def serves(server):
    """A collection, some points and an exact search: the CPU path answers."""
    c = server.client
    c.create("g", 8, L2)
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((50, 8)).astype(np.float32)
    c.upsert("g", [point(str(i), v.tolist()) for i, v in enumerate(vecs)])
    hits = c.search("g", vecs[7].tolist(), 3).hits
    assert hits[0].id == "7"


def start_once(exe, mode, tmp, extra=(), timeout=60):
    """Runs quiverd until it is healthy or exits; returns (returncode or None if it kept running, log text)."""
    srv = Server(binary=exe, extra=["--gpu", mode, "--metrics-listen", "off", *extra])
    try:
        srv.start(timeout=timeout)
        rc = None
    except RuntimeError:
        rc = srv.proc.returncode if srv.proc else -1
    text = srv.log_tail(400)
    if srv.running:
        srv.stop()
    srv.cleanup()
    return rc, text


def test_auto_without_plugin_falls_back_and_serves(servers, isolated):
    srv = servers(isolated, ["--gpu", "auto", "--metrics-listen", "off"]).start()
    lines = gpu_lines(srv)
    assert len(lines) == 1, lines
    assert "event=gpu.unavailable" in lines[0] and "missing=plugin" in lines[0], lines[0]
    assert PLUGIN in lines[0]
    serves(srv)
    assert srv.stop() == 0


def test_default_mode_is_auto(servers, isolated):
    srv = servers(isolated, ["--metrics-listen", "off"]).start()
    lines = gpu_lines(srv)
    assert len(lines) == 1 and "mode=auto" in lines[0] and "missing=plugin" in lines[0], lines


def test_require_without_plugin_fails_startup(isolated):
    d = tempfile.mkdtemp(prefix="qvgpu-req-")
    try:
        r = subprocess.run([isolated, "--gpu", "require", "--data", os.path.join(d, "data"), "--listen",
                            "127.0.0.1:0", "--metrics-listen", "off"], capture_output=True, text=True, timeout=60)
        assert r.returncode != 0
        assert "event=gpu.required" in r.stderr, r.stderr
        assert "--gpu require: no usable GPU (missing: plugin)" in r.stderr, r.stderr
        assert "server.start" not in r.stderr and "store.open" not in r.stderr, "the GPU is checked before the store"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_off_never_opens_the_plugin(make_server, quiverd, monkeypatch, tmp_path):
    monkeypatch.delenv("QV_MODEL_DIR", raising=False)
    monkeypatch.setenv("LD_DEBUG", "files")
    monkeypatch.setenv("LD_DEBUG_OUTPUT", str(tmp_path / "ld"))
    srv = make_server(extra=["--gpu", "off", "--metrics-listen", "off"]).start()
    lines = gpu_lines(srv)
    assert len(lines) == 1 and "event=gpu.off" in lines[0], lines
    serves(srv)
    assert srv.stop() == 0
    traces = "".join(open(f, errors="replace").read() for f in glob.glob(str(tmp_path / "ld.*")))
    assert traces, "LD_DEBUG produced no trace"
    assert PLUGIN not in traces
    # and with auto the same trace does show the loader looking for it (the check above can fail)
    for f in glob.glob(str(tmp_path / "ld.*")):
        os.unlink(f)
    srv2 = make_server(extra=["--gpu", "auto", "--metrics-listen", "off"]).start()
    srv2.stop()
    traces = "".join(open(f, errors="replace").read() for f in glob.glob(str(tmp_path / "ld.*")))
    assert PLUGIN in traces


def built_plugin(quiverd):
    p = os.path.join(os.path.dirname(os.path.abspath(quiverd)), PLUGIN)
    return p if os.path.exists(p) else None


def test_plugin_missing_cuda_libraries(quiverd, isolated, monkeypatch, tmp_path):
    real = built_plugin(quiverd)
    if not real:
        pytest.skip("libquiver_gpu.so was not built (no nvcc)")
    data = open(real, "rb").read()
    assert b"libcublas.so." in data
    broken = tmp_path / PLUGIN
    broken.write_bytes(data.replace(b"libcublas.so.", b"libcublaX.so."))  # same length: a missing dependency
    monkeypatch.setenv("QV_GPU_PLUGIN", str(broken))
    rc, text = start_once(isolated, "auto", tmp_path)
    assert rc is None, text
    lines = [l for l in text.splitlines() if "event=gpu." in l]
    assert len(lines) == 1 and "missing=plugin" in lines[0] and "libcublaX.so" in lines[0], lines
    rc, text = start_once(isolated, "require", tmp_path)
    assert rc not in (None, 0), text
    assert "--gpu require: no usable GPU (missing: plugin)" in text and "libcublaX.so" in text


def test_not_a_plugin_of_this_abi(isolated, monkeypatch, tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler to build a stand-in library")
    src = tmp_path / "fake.c"
    src.write_text("const void *qv_gpu_plugin_api(unsigned v) { (void)v; return 0; }\n")
    so = tmp_path / "fake.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    nosym = tmp_path / "nosym.so"
    (tmp_path / "nosym.c").write_text("int qv_something_else(void) { return 1; }\n")
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(nosym), str(tmp_path / "nosym.c")], check=True)
    for lib, why in ((so, "speaks another ABI"), (nosym, "not a Quiver GPU plugin")):
        monkeypatch.setenv("QV_GPU_PLUGIN", str(lib))
        rc, text = start_once(isolated, "auto", tmp_path)
        assert rc is None, text
        lines = [l for l in text.splitlines() if "event=gpu." in l]
        assert len(lines) == 1 and "missing=plugin" in lines[0] and why in lines[0], lines


def test_real_plugin_uses_gpu_or_names_what_is_missing(make_server, quiverd, monkeypatch):
    if not built_plugin(quiverd):
        pytest.skip("libquiver_gpu.so was not built (no nvcc)")
    monkeypatch.delenv("QV_GPU_PLUGIN", raising=False)
    monkeypatch.delenv("QV_MODEL_DIR", raising=False)
    srv = make_server(extra=["--gpu", "auto", "--metrics-listen", "off"]).start()
    lines = gpu_lines(srv)
    assert len(lines) == 1, lines
    line = lines[0]
    if "event=gpu.ready" in line:
        assert re.search(r"cc=\d+\.\d+", line) and "mem_total_mb=" in line
    else:
        assert "event=gpu.unavailable" in line
        m = re.search(r"missing=(\w+)", line)
        assert m and m.group(1) in ("driver", "device"), line
    serves(srv)
    assert srv.stop() == 0
