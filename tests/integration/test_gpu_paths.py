"""quiverd's GPU code paths, driven through the CPU stand-in of the plugin (tests/gpu_emu/plugin_emu.c), since no
machine that runs these tests has a GPU:

- index builds go to the plugin's graph_build (log `index.ready ... builder=gpu`), the blob is loaded as untrusted
  input, persisted, and served by the CPU search code: recall matches a CPU-built HNSW graph at equal ef, for L2, IP
  and cosine and with SQ8; a restart serves the stored graphs without a rebuild;
- a failing graph_build is one `index.builder_failed` line per segment and a CPU build (`builder=cpu`); a lost
  device (QV_EUNAVAIL) is tried once, then every later segment builds on the CPU;
- --embed-device cuda puts the model on the plugin (`embed.ready ... device=cuda`): the same vectors as the CPU path;
  a failing batch is re-run on the CPU (`embed.gpu_failed`; after a lost device every later batch runs there), a
  failing upload is a start-up error with cuda and a
  warning plus the CPU with auto; cuda with --gpu off fails start-up.
"""
import os
import time

import numpy as np
import pytest

from qvtest import Server, pb, point

DIM = 32
N = 6000


def emu_plugin(quiverd):
    p = os.path.join(os.path.dirname(os.path.abspath(quiverd)), "tests", "gpu_emu", "libquiver_gpu_emu.so")
    if not os.path.exists(p):
        pytest.fail(f"{p} was not built")
    return p


@pytest.fixture
def emu(quiverd, monkeypatch):
    monkeypatch.setenv("QV_GPU_PLUGIN", emu_plugin(quiverd))
    monkeypatch.delenv("QV_GPU_EMU_FAIL", raising=False)
    return monkeypatch


def clustered(seed, n, dim=DIM):
    r = np.random.default_rng(seed)
    centers = r.standard_normal((30, dim)) * 3
    return (centers[r.integers(0, 30, n)] + r.standard_normal((n, dim))).astype(np.float32)


def events(srv, name):
    return [l for l in srv.log_tail(2000).splitlines() if f"event={name} " in l or l.endswith(f"event={name}")]


def wait_ready(c, name, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        sealed = [s for s in c.describe(name).segments if s.state == pb.SEGMENT_STATE_SEALED]
        if sealed and all(s.index_state == pb.INDEX_STATE_READY for s in sealed):
            return sealed
        time.sleep(0.2)
    raise AssertionError(f"indexes not ready after {timeout}s")


def load(c, name, base, metric, quant=pb.QUANTIZATION_NONE):
    c.q.CreateCollection(pb.CreateCollectionRequest(name=name, dim=DIM, metric=metric,
                                                    index=pb.IndexParams(quantization=quant)))
    c.upsert_all(name, [point(f"p{i}", v) for i, v in enumerate(base)], batch=1000)
    c.flush(name)
    return wait_ready(c, name)


def recall(c, name, queries, ef):
    hits = total = 0
    for q in queries:
        got = [h.id for h in c.q.Search(pb.SearchRequest(collection=name, vector=q.tolist(), k=10,
                                                         params=pb.SearchParams(ef=ef))).hits]
        want = [h.id for h in c.search(name, q, 10, exact=True).hits]
        hits += len(set(got) & set(want))
        total += len(want)
    return hits / total


@pytest.mark.parametrize("metric,quant", [(pb.METRIC_L2, pb.QUANTIZATION_NONE), (pb.METRIC_IP, pb.QUANTIZATION_NONE),
                                          (pb.METRIC_COSINE, pb.QUANTIZATION_SQ8)])
def test_graphs_built_by_the_plugin_match_cpu_graphs(make_server, emu, metric, quant):
    base = clustered(1, N)
    if metric == pb.METRIC_IP:  # embeddings of similar norm (see test_index.py)
        base /= np.linalg.norm(base, axis=1, keepdims=True)
    qs = clustered(2, 60)
    common = ["--seal-rows", "2000", "--index-min-rows", "500", "--metrics-listen", "off"]
    gpu = make_server(extra=["--gpu", "require", *common]).start()
    assert "CPU emulation" in events(gpu, "gpu.ready")[0]
    sealed = load(gpu.client, "g", base, metric, quant)
    ready = events(gpu, "index.ready")
    assert len(ready) == len(sealed) and all("builder=gpu" in l for l in ready), ready
    assert not events(gpu, "index.builder_failed")
    emu.delenv("QV_GPU_PLUGIN")
    cpu = make_server(extra=["--gpu", "off", *common]).start()
    load(cpu.client, "g", base, metric, quant)
    assert all("builder=cpu" in l for l in events(cpu, "index.ready"))
    for ef in (16, 64):
        r_gpu, r_cpu = recall(gpu.client, "g", qs, ef), recall(cpu.client, "g", qs, ef)
        assert r_gpu >= r_cpu - 0.02, (ef, r_gpu, r_cpu)
    assert recall(gpu.client, "g", qs, 64) >= 0.95

    # the stored graphs come back after a restart (no rebuild, same answers)
    before = [[h.id for h in gpu.client.search("g", q, 10).hits] for q in qs[:15]]
    n_ready = len(events(gpu, "index.ready"))
    emu.setenv("QV_GPU_PLUGIN", emu_plugin(gpu.binary))
    gpu.restart()
    c = gpu.client
    assert all(s.index_state == pb.INDEX_STATE_READY for s in c.describe("g").segments
               if s.state == pb.SEGMENT_STATE_SEALED)
    assert [[h.id for h in c.search("g", q, 10).hits] for q in qs[:15]] == before
    assert len(events(gpu, "index.ready")) == n_ready, "a stored graph was rebuilt"


def test_failing_graph_build_falls_back_to_cpu(make_server, emu):
    emu.setenv("QV_GPU_EMU_FAIL", "graph")
    srv = make_server(extra=["--gpu", "require", "--seal-rows", "2000", "--index-min-rows", "500",
                             "--metrics-listen", "off"]).start()
    base = clustered(3, 4000)
    sealed = load(srv.client, "g", base, pb.METRIC_L2)
    failed = events(srv, "index.builder_failed")
    assert len(failed) == len(sealed) and all("emulated device failure" in l for l in failed), failed
    ready = events(srv, "index.ready")
    assert len(ready) == len(sealed) and all("builder=cpu" in l for l in ready), ready
    assert recall(srv.client, "g", clustered(4, 30), 64) >= 0.95


def test_lost_device_stops_gpu_builds(make_server, emu):
    emu.setenv("QV_GPU_EMU_FAIL", "lost")
    srv = make_server(extra=["--gpu", "require", "--seal-rows", "1000", "--index-min-rows", "500",
                             "--metrics-listen", "off"]).start()
    sealed = load(srv.client, "g", clustered(5, 4000), pb.METRIC_L2)
    failed = events(srv, "index.builder_failed")
    assert len(failed) == 1 and "every later segment" in failed[0], failed  # tried once, then the CPU only
    assert len(sealed) == 4 and all("builder=cpu" in l for l in events(srv, "index.ready"))


def model_available():
    return bool(os.environ.get("QV_MODEL_DIR")) or os.path.exists(
        os.path.join(os.path.dirname(os.path.abspath(os.environ.get("QUIVERD", "x"))), "model"))


TEXTS = ["The quick brown fox jumps over the lazy dog.", "Vector databases answer nearest-neighbour queries.",
         "Zürich liegt am Zürichsee.", "東京は日本の首都です。", "short", "a " * 300]


def embed(c, texts):
    return np.array([v.values for v in c.q.Embed(pb.EmbedRequest(texts=texts)).vectors], np.float64)


def test_embedding_on_the_plugin(make_server, emu):
    if not model_available():
        pytest.skip("no model (tools/fetch_model.sh)")
    cpu = make_server(extra=["--gpu", "off", "--embed-device", "cpu", "--metrics-listen", "off"]).start()
    want = embed(cpu.client, TEXTS)
    dev = make_server(extra=["--gpu", "require", "--embed-device", "cuda", "--metrics-listen", "off"]).start()
    assert "device=cuda" in events(dev, "embed.ready")[0]
    got = embed(dev.client, TEXTS)
    assert ((got * want).sum(1)).min() >= 0.9999
    # a text collection works end to end on the device path
    c = dev.client
    c.q.CreateCollection(pb.CreateCollectionRequest(name="t", embedding_model="all-MiniLM-L6-v2",
                                                    metric=pb.METRIC_COSINE))
    c.upsert("t", [pb.Point(id=str(i), text=t) for i, t in enumerate(TEXTS)])
    hits = c.q.Search(pb.SearchRequest(collection="t", text=TEXTS[1], k=1)).hits
    assert hits[0].id == "1"


def test_embedding_device_failures(make_server, emu, quiverd, tmp_path):
    if not model_available():
        pytest.skip("no model (tools/fetch_model.sh)")
    want = None
    # every batch fails on the device: each is re-run on the CPU, requests succeed
    emu.setenv("QV_GPU_EMU_FAIL", "embed")
    srv = make_server(extra=["--gpu", "require", "--embed-device", "cuda", "--metrics-listen", "off"]).start()
    got = embed(srv.client, TEXTS[:3])
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert events(srv, "embed.gpu_failed")
    want = got
    # a lost device: one warning, then every batch on the CPU without trying the device again
    emu.setenv("QV_GPU_EMU_FAIL", "lost")
    lost = make_server(extra=["--gpu", "require", "--embed-device", "cuda", "--metrics-listen", "off"]).start()
    for _ in range(3):
        assert ((embed(lost.client, TEXTS[:3]) * want).sum(1)).min() >= 0.9999
    warned = events(lost, "embed.gpu_failed")
    assert len(warned) == 1 and "every later one" in warned[0], warned
    # the upload fails: auto runs on the CPU with a warning, cuda refuses to start
    emu.setenv("QV_GPU_EMU_FAIL", "embed_load")
    auto = make_server(extra=["--gpu", "require", "--embed-device", "auto", "--metrics-listen", "off"]).start()
    assert events(auto, "embed.gpu_unavailable") and "device=cpu" in events(auto, "embed.ready")[0]
    assert ((embed(auto.client, TEXTS[:3]) * want).sum(1)).min() >= 0.9999
    for flags, why in ((["--gpu", "require"], "the GPU plugin cannot load the model"),
                       (["--gpu", "off"], "no GPU plugin in use")):
        bad = Server(binary=quiverd, extra=[*flags, "--embed-device", "cuda", "--metrics-listen", "off"])
        try:
            with pytest.raises(RuntimeError):
                bad.start(timeout=30)
            assert why in bad.log_tail(50), bad.log_tail(50)
        finally:
            bad.cleanup()
