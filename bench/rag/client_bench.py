#!/usr/bin/env python3
"""The Python client's cost (issue 15, "Benchmark"): quiver_client against the raw gRPC stubs, and a LangChain ingest
of Wikipedia passages with server-side against client-side embedding. One quiverd, started by this script.

  bench/rag/client_bench.py [--passages 2000] [--ingest-rounds 2] [--rounds 30] [--vector-block 100]
                            [--text-rounds 30] [--text-block 30] [--concurrency 8] [--quiverd PATH]
                            [--model-dir DIR] [--phases ingest,search] [--tag NAME]

Run it with the Python of a venv holding quiver-client, langchain-quiver (both from tools/python, not editable) and
sentence-transformers (see bench/rag/client_bench.md for the exact set-up). quiverd: --quiverd, else $QUIVERD; its
model: the quiverd's own (model/ beside the binary, --model-dir is passed to it only when given). The
sentence-transformers peer loads the same model directory (all-MiniLM-L6-v2: model.safetensors, tokenizer, pooling),
so both peers compute the same embeddings; nothing is downloaded.

1. Corpus: bench/rag/rag.py's own code (imported): ../shared/datasets/wikipedia/enwiki-2015-AA.tar.xz unpacked into
   --data-dir, cut into passages of about 200 words, articles shuffled with --seed and taken whole until --passages.
   Queries: rag.py's make_queries (sentence queries: the first sentence of a loaded passage; title questions).
2. Ingest (LangChain): langchain_quiver.QuiverVectorStore.add_texts(texts, metadatas, ids=ids) with its default
   batch_size (1000 texts per round), into two collections the store creates itself:
   (a) "server": embedding=None, the server embeds (collection with embedding_model all-MiniLM-L6-v2);
   (b) "client": a LangChain Embeddings around sentence_transformers.SentenceTransformer (encode with batch_size
       --st-batch, 32 as HuggingFaceEmbeddings), vectors computed in this process and sent with the text.
   The passages are cut into --ingest-rounds equal parts; part i goes to both peers, in the order a,b for even i and
   b,a for odd i, so that drift in the machine's load hits both alike. Reported: passages/s of each peer (its
   passages over the wall time of its add_texts calls), the ratio, this process's CPU and quiverd's CPU per passage.
   Sanity: both collections are searched (exact) with the same sentence and title queries through the stores'
   similarity_search_with_score(k=1): the top-1 ids should agree; and the cosine between the stored vectors of the
   same passages in (a) and (b) is reported.
3. Search overhead, on collection (a) after Admin.Flush and its HNSW index is READY: the same k=10 searches through
   raw:        grpc.insecure_channel + channel.unary_unary("/quiver.v1.Quiver/Search") with quiver_client's generated
               quiver_pb2 classes (request built from the Python list, response deserialized, nothing converted);
   sync:       QuiverClient.search (the request through its op generator, the answer converted to Hit objects with
               attribute dicts and text);
   sync_np:    the same with the query as a float32 numpy array (vector queries only);
   aio_raw:    grpc.aio channel + unary_unary, sequential awaits (the thinnest asyncio path);
   async:      AsyncQuiverClient.search, sequential awaits;
   aio_raw_cN / async_cN: --concurrency coroutines sharing one channel, each awaiting its next query.
   Every call asks for what a RAG caller wants back: k=10 with attributes and text (with_attributes=True,
   with_text=True, the client's defaults), no vectors. Vector queries: the query texts embedded once by the server
   before the clock starts (real vectors); text queries: the server embeds each. Peers run in rounds; in each round
   every peer runs one block (--vector-block / --text-block calls) over the same queries, the order rotated each
   round and reversed every other round; gc.collect() before every block, outside the clock. Per call: wall-clock
   latency (time.perf_counter around the call). Per block: this process's CPU time (time.process_time: Python and
   gRPC's threads). Reported per peer: p50 / p99 / mean latency, client CPU per call, calls/s; overhead = p50 of the
   peer / p50 of raw - 1 (also the median over rounds of each round's ratio of medians, which drift cannot bias).
   Also, offline (no network): the time to build a SearchRequest and to turn a SearchResponse into Hits.

Results: bench/rag/results/TAG.json and TAG.md (TAG = client-N unless --tag), the tables also on stdout.
Attribution: the passages are Wikipedia text (CC BY-SA 3.0 / GFDL, Wikipedia contributors, 2015 dump).
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SEARCH_PATH = "/quiver.v1.Quiver/Search"
MODEL = "all-MiniLM-L6-v2"


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------------
# imports: quiver_client (installed), and rag.py's corpus code
# ---------------------------------------------------------------------------------------------------------------------
import grpc  # noqa: E402
import grpc.aio  # noqa: E402
import quiver_client  # noqa: E402
from quiver_client import AsyncQuiverClient, QuiverClient  # noqa: E402
from quiver_client import _convert as qc_convert  # noqa: E402
from quiver_client import _core as qc_core  # noqa: E402
from quiver_client._proto.quiver.v1 import quiver_pb2 as pb  # noqa: E402


def import_rag():
    """bench/rag/rag.py, for its corpus and query code. rag.py imports bench/qvbench.py, which generates stubs of
    quiver.proto with Debian's protoc at import; those would register quiver/v1/quiver.proto in protobuf's default
    pool a second time next to quiver_client's. So a stand-in `qvbench` with what rag.py's corpus functions use
    (log, pb) is put in sys.modules first; the server parts of rag.py are not used."""
    if "qvbench" not in sys.modules:
        stub = types.ModuleType("qvbench")
        stub.pb = pb
        stub.log = log
        sys.modules["qvbench"] = stub
    sys.path.insert(0, str(HERE))
    import rag  # noqa: E402
    return rag


rag = import_rag()


# ---------------------------------------------------------------------------------------------------------------------
# machine and load notes
# ---------------------------------------------------------------------------------------------------------------------
def loadavg():
    try:
        return open("/proc/loadavg").read().split()[:3]
    except OSError:
        return []


def top_procs(n=6):
    try:
        out = subprocess.run(["ps", "-eo", "pcpu,pid,comm", "--sort=-pcpu"], capture_output=True, text=True,
                             timeout=10).stdout.splitlines()
        return [" ".join(x.split()) for x in out[1:n + 1]]
    except (OSError, subprocess.TimeoutExpired):
        return []


def snapshot(what):
    return {"what": what, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg": loadavg(),
            "ci_done_exists": os.path.exists("/tmp/ci-done"), "top": top_procs()}


def machine_info():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_bytes": mem, "python": platform.python_version(),
            "platform": platform.platform()}


def versions():
    import importlib.metadata as md
    out = {}
    for p in ("quiver-client", "langchain-quiver", "langchain-core", "grpcio", "protobuf", "numpy", "torch",
              "sentence-transformers", "transformers"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out


def proc_cpu_s(pid):
    """utime + stime of a process (all its threads), in seconds."""
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class LoadSampler:
    """Every `period` seconds, the CPU that everything else on the machine used, in cores: the busy jiffies of
    /proc/stat minus this process's and quiverd's (so that the results say how quiet the machine was during each
    phase, which the load average, a 1-minute mean that counts this benchmark's own threads, cannot)."""

    def __init__(self, period=2.0):
        import threading
        self.period = period
        self.server_pid = None
        self.samples = []  # (t, foreign cores, own cores, server cores)
        self.marks = []  # (name, index of the first sample)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _busy():
        f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return (f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] if len(f) > 7 else 0)) / os.sysconf("SC_CLK_TCK")

    def _read(self):
        srv = proc_cpu_s(self.server_pid) if self.server_pid else 0.0  # NaN once the server has exited
        return time.monotonic(), self._busy(), proc_cpu_s("self"), srv

    def _run(self):
        prev = self._read()
        while not self._stop.wait(self.period):
            cur = self._read()
            if cur[3] != cur[3]:  # the server has exited: this interval cannot be split, and the run is over
                break
            dt = cur[0] - prev[0]
            busy, own, srv = cur[1] - prev[1], cur[2] - prev[2], cur[3] - prev[3]
            self.samples.append((cur[0], max(0.0, busy - own - srv) / dt, own / dt, srv / dt))
            prev = cur

    def start(self):
        self._t.start()
        return self

    def mark(self, name):
        self.marks.append((name, len(self.samples)))

    def stop(self):
        self._stop.set()
        self._t.join()

    def summary(self):
        out = []
        for i, (name, first) in enumerate(self.marks):
            last = self.marks[i + 1][1] if i + 1 < len(self.marks) else len(self.samples)
            xs = [x[1] for x in self.samples[first:last]]
            if xs:
                out.append({"phase": name, "samples": len(xs), "other_cores_mean": float(np.mean(xs)),
                            "other_cores_max": float(np.max(xs)),
                            "own_cores_mean": float(np.mean([x[2] for x in self.samples[first:last]])),
                            "server_cores_mean": float(np.mean([x[3] for x in self.samples[first:last]]))})
        return out


def stats_ms(xs):
    a = np.asarray(xs, dtype=np.float64) * 1e3
    if not len(a):
        return {"n": 0}
    return {"n": int(len(a)), "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean()), "min": float(a.min())}


# ---------------------------------------------------------------------------------------------------------------------
# ingest
# ---------------------------------------------------------------------------------------------------------------------
def make_st_embeddings(model_dir, batch, device="cpu"):
    """A LangChain Embeddings around sentence_transformers.SentenceTransformer (what HuggingFaceEmbeddings does with
    its defaults: encode(texts, batch_size=32), the model's own Normalize module; no extra dependency). Times its
    own calls."""
    from langchain_core.embeddings import Embeddings
    from sentence_transformers import SentenceTransformer

    class STEmbeddings(Embeddings):
        def __init__(self):
            self.model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
            self.seconds = 0.0
            self.cpu = 0.0
            self.texts = 0

        def _enc(self, texts):
            t, c = time.perf_counter(), time.process_time()
            v = self.model.encode(list(texts), batch_size=batch, show_progress_bar=False, convert_to_numpy=True)
            self.seconds += time.perf_counter() - t
            self.cpu += time.process_time() - c
            self.texts += len(texts)
            return v.tolist()

        def embed_documents(self, texts):
            return self._enc(texts)

        def embed_query(self, text):
            return self._enc([text])[0]

    return STEmbeddings()


def ingest(client, server_pid, passages, rounds, st, coll_server, coll_client):
    from langchain_quiver import QuiverVectorStore

    stores = {"server": QuiverVectorStore(client, coll_server),
              "client": QuiverVectorStore(client, coll_client, st)}
    texts = [p[5] for p in passages]
    metas = [{"title": p[4], "url": p[3], "doc_id": p[1], "chunk": p[2]} for p in passages]
    ids = [p[0] for p in passages]
    per = {k: {"passages": 0, "seconds": 0.0, "client_cpu_s": 0.0, "server_cpu_s": 0.0, "calls": []} for k in stores}
    n = len(texts)
    bounds = [round(i * n / rounds) for i in range(rounds + 1)]
    for r in range(rounds):
        s, e = bounds[r], bounds[r + 1]
        order = ["server", "client"] if r % 2 == 0 else ["client", "server"]
        for peer in order:
            gc.collect()
            st_s0 = st.seconds
            c0, s0 = time.process_time(), proc_cpu_s(server_pid)
            t0 = time.perf_counter()
            stores[peer].add_texts(texts[s:e], metas[s:e], ids=ids[s:e])
            dt = time.perf_counter() - t0
            dc, ds = time.process_time() - c0, proc_cpu_s(server_pid) - s0
            x = per[peer]
            x["passages"] += e - s
            x["seconds"] += dt
            x["client_cpu_s"] += dc
            x["server_cpu_s"] += ds
            call = {"round": r, "passages": e - s, "seconds": dt, "passages_per_s": (e - s) / dt,
                    "client_cpu_s": dc, "server_cpu_s": ds, "loadavg": loadavg()}
            if peer == "client":
                call["st_encode_s"] = st.seconds - st_s0
            x["calls"].append(call)
            log(f"ingest round {r} {peer}: {e - s} passages in {dt:.1f} s = {(e - s) / dt:.1f}/s "
                f"(client CPU {dc:.1f} s, server CPU {ds:.1f} s)")
    for k, x in per.items():
        x["passages_per_s"] = x["passages"] / x["seconds"]
        x["client_cpu_ms_per_passage"] = x["client_cpu_s"] / x["passages"] * 1e3
        x["server_cpu_ms_per_passage"] = x["server_cpu_s"] / x["passages"] * 1e3
    per["client"]["st_encode_s"] = st.seconds
    per["client"]["st_encode_cpu_s"] = st.cpu
    res = {"peers": per, "rounds": rounds, "passages": n,
           "ratio_server_over_client": per["server"]["passages_per_s"] / per["client"]["passages_per_s"],
           "round_ratios": [a["passages_per_s"] / b["passages_per_s"]
                            for a, b in zip(per["server"]["calls"], per["client"]["calls"])]}
    return stores, res


def sanity(client, stores, qs, passages, coll_server, coll_client, n_vec=50):
    """Top-1 of both collections for the same queries (exact search), and the cosine of the stored vectors."""
    rows = []
    for q in qs:
        tops = {}
        for k, s in stores.items():
            hits = s.similarity_search_with_score(q["text"], k=1, exact=True)
            tops[k] = (hits[0][0].id, float(hits[0][1])) if hits else (None, None)
        rows.append({"kind": q["kind"], "text": q["text"], "server_top1": tops["server"][0],
                     "client_top1": tops["client"][0], "server_score": tops["server"][1],
                     "client_score": tops["client"][1], "same": tops["server"][0] == tops["client"][0]})
    ids = [p[0] for p in passages[:: max(1, len(passages) // n_vec)]][:n_vec]
    a = {p.id: p.vector for p in client.get(coll_server, ids, with_vectors=True)}
    b = {p.id: p.vector for p in client.get(coll_client, ids, with_vectors=True)}
    cos = [float(np.dot(a[i], b[i]) / (np.linalg.norm(a[i]) * np.linalg.norm(b[i]))) for i in ids if i in a and i in b]
    return {"queries": len(rows), "same_top1": sum(r["same"] for r in rows), "detail": rows,
            "vector_cosine": {"n": len(cos), "min": min(cos) if cos else None,
                              "mean": float(np.mean(cos)) if cos else None}}


def wait_indexed(client, coll, timeout=1800):
    t0 = time.monotonic()
    sealed = client.flush(coll)
    while True:
        info = client.describe_collection(coll)
        segs = info.raw.segments
        ready = all((s.state != pb.SEGMENT_STATE_GROWING or s.rows <= s.deleted_rows)
                    and (s.state != pb.SEGMENT_STATE_SEALED
                         or s.index_state in (pb.INDEX_STATE_READY, pb.INDEX_STATE_NONE)) for s in segs)
        if any(s.index_state == pb.INDEX_STATE_FAILED for s in segs):
            raise SystemExit(f"{coll}: index build FAILED")
        if ready:
            return {"sealed": sealed, "seconds": time.monotonic() - t0,
                    "segments": [{"rows": s.rows, "state": pb.SegmentState.Name(s.state),
                                  "index_state": pb.IndexState.Name(s.index_state)} for s in segs]}
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"{coll}: index not READY after {timeout} s")
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------------------------------------
# search overhead
# ---------------------------------------------------------------------------------------------------------------------
class SearchBench:
    """The peers of the search comparison, all on one server, one collection, the same request fields."""

    def __init__(self, address, coll, k, concurrency):
        self.coll, self.k, self.conc = coll, k, concurrency
        self.raw_ch = grpc.insecure_channel(address)
        self.raw = self.raw_ch.unary_unary(SEARCH_PATH, request_serializer=pb.SearchRequest.SerializeToString,
                                           response_deserializer=pb.SearchResponse.FromString)
        self.client = QuiverClient(address)
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.address = address
        self.loop.run_until_complete(self._aio_init())

    async def _aio_init(self):
        self.aio_ch = grpc.aio.insecure_channel(self.address)
        self.aio_raw = self.aio_ch.unary_unary(SEARCH_PATH, request_serializer=pb.SearchRequest.SerializeToString,
                                               response_deserializer=pb.SearchResponse.FromString)
        self.aclient = AsyncQuiverClient(self.address)
        await self.aclient.health()  # opens its channel in this loop

    def close(self):
        self.loop.run_until_complete(self.aclient.close())
        self.loop.run_until_complete(self.aio_ch.close())
        self.loop.close()
        self.client.close()
        self.raw_ch.close()

    # -- one call of each kind; q is {"vector": list, "np": ndarray} or {"text": str} --
    def _req(self, q):
        if "text" in q:
            return pb.SearchRequest(collection=self.coll, text=q["text"], k=self.k, with_attributes=True,
                                    with_text=True)
        return pb.SearchRequest(collection=self.coll, vector=q["vector"], k=self.k, with_attributes=True,
                                with_text=True)

    def _kw(self, q, np_input=False):
        if "text" in q:
            return {"text": q["text"]}
        return {"vector": q["np"] if np_input else q["vector"]}

    def peers(self, kind):
        ps = ["raw", "sync"] + (["sync_np"] if kind == "vector" else []) + ["aio_raw", "async"]
        if self.conc > 1:
            ps += [f"aio_raw_c{self.conc}", f"async_c{self.conc}"]
        return ps

    def run_block(self, peer, queries):
        """Runs the queries through one peer; returns (latencies in s, wall s, process CPU s, hits seen)."""
        gc.collect()
        lat = []
        hits = 0
        c0 = time.process_time()
        t0 = time.perf_counter()
        if peer == "raw":
            call = self.raw
            for q in queries:
                t = time.perf_counter()
                r = call(self._req(q))
                lat.append(time.perf_counter() - t)
                hits += len(r.hits)
        elif peer in ("sync", "sync_np"):
            cl, npi = self.client, peer == "sync_np"
            for q in queries:
                t = time.perf_counter()
                r = cl.search(self.coll, k=self.k, **self._kw(q, npi))
                lat.append(time.perf_counter() - t)
                hits += len(r)
        else:
            lat, hits = self.loop.run_until_complete(self._arun(peer, queries))
        wall = time.perf_counter() - t0
        return lat, wall, time.process_time() - c0, hits

    async def _arun(self, peer, queries):
        lat = []
        hits = [0]
        raw = peer.startswith("aio_raw")
        if raw:
            async def one(q):
                t = time.perf_counter()
                r = await self.aio_raw(self._req(q))
                lat.append(time.perf_counter() - t)
                hits[0] += len(r.hits)
        else:
            async def one(q):
                t = time.perf_counter()
                r = await self.aclient.search(self.coll, k=self.k, **self._kw(q))
                lat.append(time.perf_counter() - t)
                hits[0] += len(r)
        if "_c" not in peer:
            for q in queries:
                await one(q)
            return lat, hits[0]
        it = iter(queries)

        async def worker():
            for q in it:
                await one(q)
        await asyncio.gather(*(worker() for _ in range(self.conc)))
        return lat, hits[0]

    def compare(self, kind, queries, rounds, block, warmup_block):
        peers = self.peers(kind)
        for p in peers:  # warm-up: channels, connections, caches; not recorded
            self.run_block(p, queries[:warmup_block])
        res = {p: {"lat": [], "wall": 0.0, "cpu": 0.0, "calls": 0, "hits": 0, "round_p50": []} for p in peers}
        order_log = []
        for r in range(rounds):
            rot = r % len(peers)
            order = peers[rot:] + peers[:rot]
            if r % 2:
                order = order[::-1]
            order_log.append(order)
            qs = [queries[(r * block + i) % len(queries)] for i in range(block)]
            for p in order:
                lat, wall, cpu, hits = self.run_block(p, qs)
                x = res[p]
                x["lat"] += lat
                x["wall"] += wall
                x["cpu"] += cpu
                x["calls"] += len(lat)
                x["hits"] += hits
                x["round_p50"].append(float(np.median(lat)))
            if r % 5 == 4 or r == rounds - 1:
                log(f"search {kind}: round {r + 1}/{rounds}: " +
                    ", ".join(f"{p} {np.median(res[p]['lat']) * 1e3:.3f}" for p in peers) + " ms (p50 so far)")
        out = {}
        base = res["raw"]
        for p, x in res.items():
            s = stats_ms(x["lat"])
            o = {"latency_ms": s, "calls": x["calls"], "hits_per_call": x["hits"] / max(1, x["calls"]),
                 "calls_per_s": x["calls"] / x["wall"], "client_cpu_us_per_call": x["cpu"] / x["calls"] * 1e6,
                 "round_p50_ms": [v * 1e3 for v in x["round_p50"]]}
            if p != "raw":
                b = stats_ms(base["lat"])
                o["overhead_p50_pct"] = (s["p50"] / b["p50"] - 1) * 100
                o["overhead_mean_pct"] = (s["mean"] / b["mean"] - 1) * 100
                ratios = [a / c for a, c in zip(x["round_p50"], base["round_p50"])]
                o["overhead_round_median_pct"] = (float(np.median(ratios)) - 1) * 100
                o["overhead_rounds_range_pct"] = [(min(ratios) - 1) * 100, (max(ratios) - 1) * 100]
                o["extra_ms_p50"] = s["p50"] - b["p50"]
                o["extra_client_cpu_us_per_call"] = o["client_cpu_us_per_call"] - (base["cpu"] / base["calls"] * 1e6)
            out[p] = o
        # the asyncio peers against the thinnest asyncio path too
        for p in out:
            ref = "aio_raw" if p == "async" else (f"aio_raw_c{self.conc}" if p == f"async_c{self.conc}" else None)
            if ref:
                out[p]["overhead_vs_aio_raw_p50_pct"] = (out[p]["latency_ms"]["p50"] /
                                                         out[ref]["latency_ms"]["p50"] - 1) * 100
                out[p]["throughput_vs_aio_raw"] = out[p]["calls_per_s"] / out[ref]["calls_per_s"]
        return {"peers": out, "rounds": rounds, "block": block, "distinct_queries": len(queries),
                "orders": order_log[:4]}

    def same_results(self, queries):
        """The raw stubs and QuiverClient give the same ids and scores for the same vector queries."""
        same = 0
        for q in queries:
            r = self.raw(self._req(q))
            h = self.client.search(self.coll, vector=q["vector"], k=self.k)
            same += [(x.id, x.score) for x in r.hits] == [(x.id, x.score) for x in h]
        return {"queries": len(queries), "same": same}

    def offline(self, q, n=2000):
        """Request building and answer conversion alone, without the network (per call, in microseconds)."""
        resp = self.raw(self._req(q))
        t = time.perf_counter()
        for _ in range(n):
            self._req(q)
        raw_req = (time.perf_counter() - t) / n * 1e6
        t = time.perf_counter()
        for _ in range(n):
            op = qc_core.op_search(self.coll, q["vector"], None, self.k, None, None, True, True, False, False, None,
                                   False)
            next(op)
        client_req = (time.perf_counter() - t) / n * 1e6
        t = time.perf_counter()
        for _ in range(n):
            op = qc_core.op_search(self.coll, q["np"], None, self.k, None, None, True, True, False, False, None,
                                   False)
            next(op)
        client_req_np = (time.perf_counter() - t) / n * 1e6
        t = time.perf_counter()
        for _ in range(n):
            qc_convert.hits_py(resp, False)
        conv = (time.perf_counter() - t) / n * 1e6
        t = time.perf_counter()
        for _ in range(n):
            pb.SearchResponse.FromString(resp.SerializeToString())
        parse = (time.perf_counter() - t) / n * 1e6
        return {"raw_build_request_us": raw_req, "client_build_request_list_us": client_req,
                "client_build_request_ndarray_us": client_req_np, "client_hits_conversion_us": conv,
                "serialize_and_parse_response_us": parse, "response_bytes": resp.ByteSize(),
                "hits": len(resp.hits)}


# ---------------------------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------------------------
def search_table(kind, sr, conc):
    pk = sr["peers"]
    names = {"raw": "(a) raw stubs: channel.unary_unary", "sync": "(b) QuiverClient.search",
             "sync_np": "(b) QuiverClient.search, vector as ndarray", "aio_raw": "grpc.aio raw stubs, sequential",
             "async": "(c) AsyncQuiverClient.search, sequential",
             f"aio_raw_c{conc}": f"grpc.aio raw stubs, {conc} concurrent",
             f"async_c{conc}": f"(c) AsyncQuiverClient.search, {conc} concurrent"}
    lines = ["| peer | p50 ms | p99 ms | mean ms | calls/s | client CPU µs/call | overhead vs (a), p50 "
             "(median of rounds) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for p, o in pk.items():
        s = o["latency_ms"]
        if p == "raw":
            ov = "—"
        elif "_c" in p:
            ov = (f"n/a (concurrent); vs grpc.aio raw {conc} concurrent: p50 "
                  f"{o['overhead_vs_aio_raw_p50_pct']:+.1f}%, throughput x{o['throughput_vs_aio_raw']:.2f}"
                  if p.startswith("async") else "n/a (concurrent)")
        else:
            ov = f"{o['overhead_p50_pct']:+.1f}% ({o['overhead_round_median_pct']:+.1f}%)"
            if p == "async":
                ov += f"; vs grpc.aio raw: {o['overhead_vs_aio_raw_p50_pct']:+.1f}%"
        lines.append(f"| {names.get(p, p)} | {s['p50']:.3f} | {s['p99']:.3f} | {s['mean']:.3f} | "
                     f"{o['calls_per_s']:.0f} | {o['client_cpu_us_per_call']:.0f} | {ov} |")
    return f"**{kind} queries** ({pk['raw']['calls']:,} calls per peer in {sr['rounds']} rounds of {sr['block']}, " \
           f"{sr['distinct_queries']} distinct queries, k=10, attributes + text returned):\n\n" + "\n".join(lines)


def report(res):
    out = []
    cfg = res["config"]
    if "ingest" in res:
        ig = res["ingest"]
        a, b = ig["peers"]["server"], ig["peers"]["client"]
        san = res["sanity"]
        out.append(f"**Ingest through LangChain `QuiverVectorStore.add_texts`** ({ig['passages']:,} Wikipedia "
                   f"passages, mean {res['corpus']['words_per_passage']['mean']:.0f} words; {ig['rounds']} rounds of "
                   f"{ig['passages'] // ig['rounds']:,}, order a,b then b,a; add_texts' default batch_size 1000):\n")
        out.append("| peer | passages/s | wall s | client CPU ms/passage | server CPU ms/passage |")
        out.append("|---|---:|---:|---:|---:|")
        out.append(f"| (a) server-side embedding (embedding=None) | **{a['passages_per_s']:.1f}** | "
                   f"{a['seconds']:.1f} | {a['client_cpu_ms_per_passage']:.2f} | "
                   f"{a['server_cpu_ms_per_passage']:.1f} |")
        out.append(f"| (b) client-side sentence-transformers ({cfg['st_desc']}) | **{b['passages_per_s']:.1f}** | "
                   f"{b['seconds']:.1f} | {b['client_cpu_ms_per_passage']:.1f} | "
                   f"{b['server_cpu_ms_per_passage']:.2f} |")
        out.append("")
        out.append(f"Ratio (a)/(b): **x{ig['ratio_server_over_client']:.2f}** (per round: "
                   + ", ".join(f"x{r:.2f}" for r in ig["round_ratios"]) + "). "
                   f"Of (b)'s {b['seconds']:.1f} s, {b['st_encode_s']:.1f} s were SentenceTransformer.encode. "
                   f"Sanity: same top-1 for {san['same_top1']}/{san['queries']} queries (exact search in both "
                   f"collections); stored vectors of the same {san['vector_cosine']['n']} passages, (a) vs (b): cosine "
                   f"min {san['vector_cosine']['min']:.6f}, mean {san['vector_cosine']['mean']:.6f}.")
        out.append("")
    if "search" in res:
        sr = res["search"]
        segs = ", ".join(f"{x['rows']:,} rows {x['index_state'][12:]}" for x in sr["index"]["segments"])
        out.append(f"**Search overhead**, collection (a): {sr['collection_rows']:,} passages (segments: {segs}), one "
                   f"quiverd; overhead = p50 of the peer / p50 of (a) - 1; in brackets the median over rounds of the "
                   f"per-round ratio of medians. Same ids from (a) and (b) for {sr['same_results']['same']}/"
                   f"{sr['same_results']['queries']} vector queries checked.\n")
        for kind in ("vector", "text"):
            if kind in sr:
                out.append(search_table(kind, sr[kind], cfg["concurrency"]))
                out.append("")
        off = sr.get("offline")
        if off:
            out.append(f"Offline, per call, no network: SearchRequest built by hand "
                       f"{off['raw_build_request_us']:.1f} µs; by QuiverClient's op_search from a list "
                       f"{off['client_build_request_list_us']:.1f} µs, from an ndarray "
                       f"{off['client_build_request_ndarray_us']:.1f} µs; SearchResponse ({off['hits']} hits, "
                       f"{off['response_bytes']:,} bytes) -> Hits {off['client_hits_conversion_us']:.1f} µs; "
                       f"serialize + parse the response {off['serialize_and_parse_response_us']:.1f} µs.")
            out.append("")
    m = res["machine"]
    out.append(f"Machine: nproc {m['nproc']}, {m['cpu']}; quiverd {res['quiverd']['version']} "
               f"({res['quiverd']['binary']}), repo HEAD {res['git']['head']} ({res['git']['dirty_files']} files "
               f"changed in the work tree). Load average: " +
               "; ".join(f"{s['what']} {' '.join(s['loadavg'])}" for s in res["load"]) +
               f". /tmp/ci-done at start / end: {res['load'][0]['ci_done_exists']} / "
               f"{res['load'][-1]['ci_done_exists']}.")
    out.append("CPU used by other processes (cores, mean / max of 2-s samples; /proc/stat minus this process and "
               "quiverd): " + "; ".join(f"{x['phase']} {x['other_cores_mean']:.2f} / {x['other_cores_max']:.2f}"
                                        for x in res.get("other_load", [])) +
               (" — a quiet machine." if res.get("quiet") else " — NOT quiet (mean over 0.1 core in a measured "
                                                               "phase)."))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", type=int, default=2000)
    ap.add_argument("--ingest-rounds", type=int, default=2)
    ap.add_argument("--sanity-queries", type=int, default=20, help="of which a quarter are title questions")
    ap.add_argument("--queries", type=int, default=200, help="distinct search queries (a quarter title questions)")
    ap.add_argument("--rounds", type=int, default=30, help="rounds of vector searches")
    ap.add_argument("--vector-block", type=int, default=100, help="vector searches per peer per round")
    ap.add_argument("--text-rounds", type=int, default=30)
    ap.add_argument("--text-block", type=int, default=30)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--st-batch", type=int, default=32, help="SentenceTransformer.encode batch_size")
    ap.add_argument("--phases", default="ingest,search")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--words", type=int, default=200)
    ap.add_argument("--quiverd", default=os.environ.get("QUIVERD"))
    ap.add_argument("--model-dir", default=None, help="passed to quiverd (default: its own model/ dir) and loaded "
                                                      "by sentence-transformers")
    ap.add_argument("--tarball", default=str(rag.DEFAULT_TARBALL))
    ap.add_argument("--data-dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "quiver-rag-wikipedia"))
    ap.add_argument("--tag", default=None)
    ap.add_argument("--out-dir", default=str(HERE / "results"))
    a = ap.parse_args()
    if not a.quiverd:
        raise SystemExit("give --quiverd or set QUIVERD")
    phases = set(a.phases.split(","))
    tag = a.tag or f"client-{a.passages}"
    model_dir = Path(a.model_dir) if a.model_dir else Path(a.quiverd).parent / "model"  # where quiverd looks first
    load = [snapshot("start")]
    sampler = LoadSampler().start()
    sampler.mark("corpus")
    git = rag.git_state()
    log(f"client_bench: {machine_info()['nproc']} cores, load {' '.join(load[0]['loadavg'])}, "
        f"/tmp/ci-done {'exists' if load[0]['ci_done_exists'] else 'absent'}")

    files, _ = rag.unpack(a.tarball, a.data_dir)
    t0 = time.monotonic()
    passages, cstats = rag.build_corpus(files, a.words, a.passages, a.seed)
    cstats["parse_chunk_s"] = time.monotonic() - t0
    qs = rag.make_queries(passages, a.queries, a.queries // 4, a.seed)
    sq = rag.make_queries(passages, a.sanity_queries, a.sanity_queries // 4, a.seed + 100)
    log(f"corpus: {len(passages)} passages, {len(qs)} queries")

    st = None
    st_desc = ""
    if "ingest" in phases:
        import torch
        st = make_st_embeddings(model_dir, a.st_batch)
        st.embed_documents([p[5] for p in passages[:8]])  # warm-up, not timed
        st.seconds = st.cpu = 0.0
        st.texts = 0
        st_desc = (f"SentenceTransformer({model_dir.name}/ = {MODEL}) on CPU, torch {torch.__version__} "
                   f"{torch.get_num_threads()} threads, encode batch_size {a.st_batch}")

    tmp = tempfile.mkdtemp(prefix="qv-client-bench-")
    args = ["--model-dir", str(a.model_dir)] if a.model_dir else []
    client = quiver_client.local(tmp, quiverd=a.quiverd, args=args)
    res = {"benchmark": "client", "tag": tag, "time": load[0]["time"], "attribution": rag.ATTRIBUTION,
           "config": {k.replace("-", "_"): v for k, v in vars(a).items()}, "machine": machine_info(),
           "versions": versions(), "git": git, "corpus": cstats, "load": load}
    res["config"]["st_desc"] = st_desc
    res["config"]["command"] = " ".join([sys.executable, sys.argv[0]] + sys.argv[1:])
    try:
        h = client.health()
        res["quiverd"] = {"binary": a.quiverd, "version": h.version,
                          "binary_mtime": time.strftime("%Y-%m-%dT%H:%M:%S%z",
                                                        time.localtime(os.path.getmtime(a.quiverd)))}
        pid = client.server.pid
        sampler.server_pid = pid
        client.embed(["warm-up"] * 4)
        coll = "wiki_server"
        if "ingest" in phases:
            sampler.mark("ingest")
            stores, ig = ingest(client, pid, passages, a.ingest_rounds, st, coll, "wiki_client")
            sampler.mark("sanity")
            res["ingest"] = ig
            load.append(snapshot("after ingest"))
            res["sanity"] = sanity(client, stores, sq, passages, coll, "wiki_client")
            log(f"sanity: same top-1 {res['sanity']['same_top1']}/{res['sanity']['queries']}, vector cosine min "
                f"{res['sanity']['vector_cosine']['min']}")
            client.drop_collection("wiki_client")
        else:
            from langchain_quiver import QuiverVectorStore
            t = time.perf_counter()
            QuiverVectorStore(client, coll).add_texts([p[5] for p in passages], [
                {"title": p[4], "url": p[3], "doc_id": p[1], "chunk": p[2]} for p in passages],
                ids=[p[0] for p in passages])
            log(f"loaded {len(passages)} passages (server-side embedding) in {time.perf_counter() - t:.1f} s")
        if "search" in phases:
            ix = wait_indexed(client, coll)
            log(f"flush + index: {ix}")
            texts = [q["text"] for q in qs]
            vecs = client.embed(texts)
            vq = [{"vector": v.tolist(), "np": v.copy()} for v in vecs]
            tq = [{"text": t} for t in texts]
            sb = SearchBench(client.server.address, coll, a.k, a.concurrency)
            try:
                sr = {"collection_rows": client.count(coll), "index": ix, "k": a.k}
                sr["offline"] = sb.offline(vq[0])
                sr["same_results"] = sb.same_results(vq[:20])
                load.append(snapshot("before vector searches"))
                sampler.mark("vector searches")
                sr["vector"] = sb.compare("vector", vq, a.rounds, a.vector_block, min(50, a.vector_block))
                load.append(snapshot("before text searches"))
                sampler.mark("text searches")
                sr["text"] = sb.compare("text", tq, a.text_rounds, a.text_block, min(10, a.text_block))
            finally:
                sb.close()
            res["search"] = sr
        res["server_cpu_s_total"] = proc_cpu_s(pid)
    finally:
        client.close()
    load.append(snapshot("end"))
    sampler.mark("end")
    sampler.stop()
    res["other_load"] = sampler.summary()
    res["cpu_samples"] = {"columns": ["t_s", "other_cores", "own_cores", "server_cores"],
                          "rows": [[round(x[0] - sampler.samples[0][0], 1)] + [round(v, 2) for v in x[1:]]
                                   for x in sampler.samples]} if sampler.samples else None
    res["quiet"] = all(x["other_cores_mean"] < 0.1 for x in res["other_load"]
                       if x["phase"] in ("ingest", "vector searches", "text searches"))
    md = report(res)
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{tag}.json", "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    (out / f"{tag}.md").write_text(f"{md}\n\nReproduce: `{res['config']['command']}`\n\n{rag.ATTRIBUTION}\n")
    print(f"\n{md}\n\nresults: {out / (tag + '.json')}")


if __name__ == "__main__":
    main()
