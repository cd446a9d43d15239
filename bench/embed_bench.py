#!/usr/bin/env python3
"""Embedding throughput: Quiver's C embedder (quiver-embed-bench) vs ONNX Runtime, same model, texts, batch sizes and
thread counts, in one run.

  bench/embed_bench.py [--batch 1,8,32] [--threads 1,2] [--seconds 2] [--rounds 3] [--workloads queries,passages]

Setup (done by the script when missing): a Release build of quiver-embed-bench in build-bench/release, the model
(tools/fetch_model.sh), and a venv build-embed/venv with onnx, onnxruntime, tokenizers and numpy.

The peer: no ONNX file ships with the model wheel and PyTorch is too heavy to install here, so this script writes the
BERT graph itself from model.safetensors with onnx.helper (opset 17: LayerNormalization, Erf-GELU, MatMul attention
with an additive mask, masked mean pooling, L2 normalisation) and lets ONNX Runtime optimise it (ORT_ENABLE_ALL, which
fuses LayerNorm/GELU/bias patterns). Its inputs are prepared the way sentence-transformers does it: texts sorted by
length, tokenized by Hugging Face `tokenizers` (Rust) with truncation to 256, each batch padded to its longest text.
The timed ORT path includes tokenization and padding, as the C path includes its own tokenization. Before timing, the
peer's embeddings are checked against tests/embed/golden_embed.f32 (the float64 reference) so both sides compute the
same function. Both sides get the texts in the same (length-sorted) order. Each (threads, batch) cell alternates the
two engines for --rounds rounds and keeps each one's best; each timing runs for --seconds and at least one whole
pass over the texts (they are sorted by length, so a shorter run would measure only the short ones). It also reports
texts per second of process CPU time (steadier than wall time when others share the machine; for 2 threads it counts
spinning worker threads too).

Workloads: "queries" are short sentences (~10-25 tokens; the single-query latency case), "passages" are Wikipedia
paragraphs of 40-400 words (the RAG ingest case; many hit the 256-token limit).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(ROOT, "build-embed", "venv")
BUILD = os.path.join(ROOT, "build-bench", "release")


def ensure_venv():
    py = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):  # (the venv's python is a link to the system's)
        return
    if not os.path.exists(py):
        subprocess.check_call(["/usr/bin/python3", "-m", "venv", VENV])
    if subprocess.call([py, "-c", "import onnx, onnxruntime, tokenizers, numpy"], stderr=subprocess.DEVNULL):
        subprocess.check_call([os.path.join(VENV, "bin", "pip"), "install", "-q", "onnx", "onnxruntime",
                               "tokenizers", "numpy"])
    os.execv(py, [py] + sys.argv)


ensure_venv()

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def load_safetensors(path):
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, t in header.items():
        if name != "__metadata__" and t["dtype"] == "F32":
            b, e = t["data_offsets"]
            out[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(t["shape"])
    return out


def build_onnx(model_dir):
    """The all-MiniLM-L6-v2 encoder + mean pooling + L2 normalisation as an ONNX graph."""
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    W = load_safetensors(os.path.join(model_dir, "model.safetensors"))
    H, nh, L, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"], cfg["layer_norm_eps"]
    d = H // nh
    inits, nodes = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(op, ins, out, **kw):
        nodes.append(helper.make_node(op, ins, [out], **kw))
        return out

    def linear(x, prefix, out):
        w = const(prefix + ".wT", W[prefix + ".weight"].T)
        b = const(prefix + ".b", W[prefix + ".bias"])
        return node("Add", [node("MatMul", [x, w], out + "_mm"), b], out)

    def layer_norm(x, prefix, out):
        return node("LayerNormalization", [x, const(prefix + ".g", W[prefix + ".weight"]),
                                           const(prefix + ".beta", W[prefix + ".bias"])], out, axis=-1, epsilon=eps)

    x = node("Gather", [const("word", W["embeddings.word_embeddings.weight"]), "input_ids"], "we")
    x = node("Add", [x, node("Gather", [const("pos", W["embeddings.position_embeddings.weight"]), "position_ids"],
                              "pe")], "wpe")
    x = node("Add", [x, const("type0", W["embeddings.token_type_embeddings.weight"][0])], "emb")
    x = layer_norm(x, "embeddings.LayerNorm", "x0")
    # additive mask [B, 1, 1, T]: 0 for tokens, -10000 for padding (as BERT does)
    m = node("Unsqueeze", ["attention_mask", const("axes12", np.array([1, 2], dtype=np.int64))], "mask4")
    neg = node("Mul", [node("Sub", [const("one", np.array(1, np.float32)), m], "inv_mask"),
                       const("big", np.array(-10000.0, np.float32))], "neg_mask")
    heads_shape = const("heads_shape", np.array([0, 0, nh, d], dtype=np.int64))
    merge_shape = const("merge_shape", np.array([0, 0, H], dtype=np.int64))
    scale = const("scale", np.array(1.0 / np.sqrt(d), np.float32))
    for l in range(L):
        p = "encoder.layer.%d." % l
        q = node("Transpose", [node("Reshape", [linear(x, p + "attention.self.query", "q%d" % l), heads_shape],
                                    "qr%d" % l)], "qt%d" % l, perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [linear(x, p + "attention.self.key", "k%d" % l), heads_shape],
                                    "kr%d" % l)], "kt%d" % l, perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [linear(x, p + "attention.self.value", "v%d" % l), heads_shape],
                                    "vr%d" % l)], "vt%d" % l, perm=[0, 2, 1, 3])
        s = node("Add", [node("Mul", [node("MatMul", [q, k], "qk%d" % l), scale], "qks%d" % l), neg], "sm%d" % l)
        a = node("Softmax", [s], "att%d" % l, axis=-1)
        c = node("Reshape", [node("Transpose", [node("MatMul", [a, v], "ctx%d" % l)], "ctxt%d" % l,
                                  perm=[0, 2, 1, 3]), merge_shape], "ctxm%d" % l)
        x = layer_norm(node("Add", [x, linear(c, p + "attention.output.dense", "ao%d" % l)], "r1_%d" % l),
                       p + "attention.output.LayerNorm", "x1_%d" % l)
        u = linear(x, p + "intermediate.dense", "ff%d" % l)
        g = node("Mul", [node("Mul", [u, node("Add", [node("Erf", [node("Div", [u, const(
            "sqrt2_%d" % l, np.array(np.sqrt(2.0), np.float32))], "ud%d" % l)], "erf%d" % l),
            const("one_%d" % l, np.array(1.0, np.float32))], "erf1%d" % l)], "ug%d" % l),
            const("half_%d" % l, np.array(0.5, np.float32))], "gelu%d" % l)
        x = layer_norm(node("Add", [x, linear(g, p + "output.dense", "fo%d" % l)], "r2_%d" % l),
                       p + "output.LayerNorm", "x2_%d" % l)
    m3 = node("Unsqueeze", ["attention_mask", const("axis2", np.array([2], dtype=np.int64))], "mask3")
    summed = node("ReduceSum", [node("Mul", [x, m3], "xm"), const("axis1", np.array([1], dtype=np.int64))], "xs",
                  keepdims=0)
    count = node("ReduceSum", [m3, const("axis1b", np.array([1], dtype=np.int64))], "cnt", keepdims=0)
    mean = node("Div", [summed, count], "mean")
    norm = node("ReduceL2", [mean], "norm", axes=[-1], keepdims=1)  # opset 17: axes is an attribute here
    node("Div", [mean, node("Max", [norm, const("eps12", np.array(1e-12, np.float32))], "normc")], "embedding")
    graph = helper.make_graph(
        nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["B", "T"]),
         helper.make_tensor_value_info("position_ids", TensorProto.INT64, [1, "T"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.FLOAT, ["B", "T"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["B", H])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


class OrtEmbedder:
    def __init__(self, model_bytes, tokenizer_path, threads):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
        self.tok = Tokenizer.from_file(tokenizer_path)
        self.tok.no_padding()
        self.tok.enable_truncation(max_length=256)

    def embed(self, texts):
        enc = self.tok.encode_batch(texts)
        T = max(len(e.ids) for e in enc)
        ids = np.zeros((len(enc), T), np.int64)
        mask = np.zeros((len(enc), T), np.float32)
        for i, e in enumerate(enc):
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = 1
        pos = np.arange(T, dtype=np.int64)[None, :]
        return self.sess.run(None, {"input_ids": ids, "position_ids": pos, "attention_mask": mask})[0]


def wikipedia_paragraphs(n, lo, hi):
    path = os.path.join(ROOT, "..", "shared", "datasets", "wikipedia", "enwiki-2015-AA.tar.xz")
    out = []
    with tarfile.open(path) as tar:
        for m in tar:
            if not m.isfile():
                continue
            for para in tar.extractfile(m).read().decode("utf-8").split("\n"):
                para = para.strip()
                if para.startswith("<") or not lo <= len(para.split()) <= hi:
                    continue
                out.append(para)
                if len(out) == n:
                    return out
    return out


def workload(name):
    if name == "passages":
        return wikipedia_paragraphs(512, 40, 400)
    # queries: first sentences of paragraphs, 6..20 words
    sents = []
    for para in wikipedia_paragraphs(4000, 10, 400):
        s = re.split(r"(?<=[.!?])\s", para)[0]
        if 6 <= len(s.split()) <= 20:
            sents.append(s)
        if len(sents) == 1024:
            break
    return sents


def time_ort(emb, texts, batch, seconds):
    emb.embed(texts[:batch])  # warm-up
    done, at, lat = 0, 0, []
    start = time.perf_counter()
    cpu0 = time.process_time()
    end = start
    while end - start < seconds or done + batch <= len(texts):  # one whole pass at least, as the C side
        if at + batch > len(texts):
            at = 0
        c0 = time.perf_counter()
        emb.embed(texts[at:at + batch])
        end = time.perf_counter()
        lat.append(end - c0)
        done += batch
        at += batch
    cpu = time.process_time() - cpu0
    lat.sort()
    return done / (end - start), done / cpu, lat[len(lat) // 2] * 1e3


def time_c(binary, model_dir, path, batch, threads, seconds):
    out = subprocess.run([binary, "--model", model_dir, "--texts", path, "--batch", str(batch),
                          "--threads", str(threads), "--seconds", str(seconds)], check=True, capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        kv = dict(f.split("=") for f in line.split())
        if "batch" in kv:
            return float(kv["texts_per_s"]), float(kv["texts_per_cpu_s"]), float(kv["p50_ms"])
    raise RuntimeError("no result from quiver-embed-bench: " + out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", default="1,8,32")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--seconds", type=float, default=2.0, help="per engine, batch size and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--binary", help="a quiver-embed-bench already built (default: build it in build-bench/release)")
    ap.add_argument("--workloads", default="queries,passages")
    ap.add_argument("--json", help="also write the results here (JSON)")
    ap.add_argument("--model-dir", default=os.environ.get("QV_MODEL_DIR", os.path.join(ROOT, "build", "model")))
    args = ap.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    threads = [int(t) for t in args.threads.split(",")]

    subprocess.check_call([os.path.join(ROOT, "tools", "fetch_model.sh")], stdout=subprocess.DEVNULL,
                          env=dict(os.environ, QV_MODEL_DIR=args.model_dir))
    binary = args.binary
    if not binary:
        subprocess.check_call(["cmake", "-S", ROOT, "-B", BUILD, "-DCMAKE_BUILD_TYPE=Release", "-DQV_TESTS=OFF"],
                              stdout=subprocess.DEVNULL)
        subprocess.check_call(["cmake", "--build", BUILD, "-j2", "--target", "quiver-embed-bench"],
                              stdout=subprocess.DEVNULL)
        binary = os.path.join(BUILD, "quiver-embed-bench")

    print("load: %s" % os.getloadavg().__repr__())
    print("onnxruntime %s, model all-MiniLM-L6-v2 (graph built from model.safetensors)" % ort.__version__)
    model_bytes = build_onnx(args.model_dir)
    tok_path = os.path.join(args.model_dir, "tokenizer.json")

    # the peer computes the same function: compare with the float64 golden embeddings
    golden = np.fromfile(os.path.join(ROOT, "tests", "embed", "golden_embed.f32"), dtype="<f4").reshape(-1, 384)
    gtexts = [json.loads(l)["text"] for l in open(os.path.join(ROOT, "tests", "embed", "golden_embed.jsonl"))]
    peer = OrtEmbedder(model_bytes, tok_path, max(threads))
    got = np.concatenate([peer.embed(gtexts[i:i + 16]) for i in range(0, len(gtexts), 16)])
    cos = (got * golden).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(golden, axis=1)
    print("onnxruntime vs float64 reference on %d golden texts: min cosine %.7f" % (len(gtexts), cos.min()))

    rows = []
    import tempfile
    for wl in args.workloads.split(","):
        texts = workload(wl)
        tok = Tokenizer.from_file(tok_path)
        tok.no_padding()  # tokenizer.json pads to 128 by default
        tok.enable_truncation(max_length=256)
        lens = [len(e.ids) for e in tok.encode_batch(texts)]
        order = sorted(range(len(texts)), key=lambda i: lens[i])  # sentence-transformers sorts by length
        texts = [texts[i].replace("\n", " ") for i in order]
        print("\nworkload %s: %d texts, mean %.1f tokens (max %d)" % (wl, len(texts), np.mean(lens), max(lens)))
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
            f.write("\n".join(texts) + "\n")
            path = f.name
        for th in threads:
            peer = OrtEmbedder(model_bytes, tok_path, th)
            for b in batches:
                # alternate the two engines for a few rounds and keep each one's best: other load on the machine
                # then hurts both alike instead of whichever happened to run during a burst
                c_best, o_best = (0, 0, 0), (0, 0, 0)
                for _ in range(args.rounds):
                    c = time_c(binary, args.model_dir, path, b, th, args.seconds)
                    o = time_ort(peer, texts, b, args.seconds)
                    c_best = max(c_best, c)
                    o_best = max(o_best, o)
                rows.append((wl, th, b) + c_best + o_best)
                print("  threads=%d batch=%-3d quiver %7.1f texts/s  onnxruntime %7.1f texts/s  ratio %.2fx | "
                      "per CPU-second %7.1f vs %7.1f  ratio %.2fx | p50 per call %6.1f ms vs %6.1f ms"
                      % (th, b, c_best[0], o_best[0], c_best[0] / o_best[0], c_best[1], o_best[1],
                         c_best[1] / o_best[1], c_best[2], o_best[2]), flush=True)
        os.unlink(path)
    print("\nload: %s" % os.getloadavg().__repr__())
    if args.json:
        keys = ("workload", "threads", "batch", "quiver_texts_per_s", "quiver_texts_per_cpu_s", "quiver_p50_ms",
                "ort_texts_per_s", "ort_texts_per_cpu_s", "ort_p50_ms")
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        with open(args.json, "w") as f:
            json.dump({"benchmark": "embed", "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpu": cpu,
                       "nproc": os.cpu_count(), "onnxruntime": ort.__version__, "git_head": git.stdout.strip(),
                       "binary": binary, "config": vars(args), "load_at_end": os.getloadavg(),
                       "rows": [dict(zip(keys, r)) for r in rows]}, f, indent=1)


if __name__ == "__main__":
    main()
