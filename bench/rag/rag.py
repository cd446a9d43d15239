#!/usr/bin/python3
"""RAG demo: Wikipedia passages loaded as text-only points, answered with text queries.

  bench/rag/rag.py --model-dir DIR [--passages 10000] [--queries 200] [--title-queries 50] [--threads 2]
                   [--batch 64] [--words 200] [--data-dir DIR] [--tag NAME]

(bench/rag/run.sh builds quiverd and fetches the model first, then runs this with the right paths.)

Steps, all through gRPC against one quiverd (started by bench/qvbench.py on a free port, in a temp dir):
1. Corpus: ../shared/datasets/wikipedia/enwiki-2015-AA.tar.xz is unpacked into --data-dir (outside the repository;
   skipped when already there). Every `<doc id url title>` block becomes an article; its body (the first line, the
   title, dropped) is cut into passages of about --words words: paragraphs are packed whole while the passage stays
   under 1.25 x --words, a paragraph longer than 1.5 x --words is split at sentence ends, and a last piece under a
   quarter of --words is merged into the passage before it. Short heading lines go with the paragraph after them.
2. Subset: the articles are shuffled with --seed and taken whole until --passages passages (the last article is cut
   short); --passages 0 takes the whole corpus (83,782 passages). Most passages fill the model's 256-token window,
   and on 2 shared cores the CPU embedder manages only some passages per second, so the default is 10,000 passages;
   the output says so and estimates how long the whole corpus would take at the rate observed.
3. Collection: METRIC_COSINE, embedding_model "all-MiniLM-L6-v2" (dim 384), default index (HNSW, m 16,
   ef_construction 200), fields title (KEYWORD), url (KEYWORD), doc_id (INT64), chunk (INT64).
4. Load: Upsert of text-only points (text + attributes, no vector), --batch points per request, --threads client
   threads (each with its own channel) pulling the next batch from a shared counter. Requests are serialized before
   the clock starts. Reported: wall time and passages/s, per-request latency, server CPU, and the embedder's own
   throughput from quiverd's Prometheus counters (quiver_embed_texts_total / _batches_total, sampled every 5 s).
   Count must equal --passages afterwards.
5. Index: Admin.Flush, then DescribeCollection polled every 0.2 s until every sealed segment's index_state is READY
   (or NONE for a segment under --index-min-rows) and no growing segment holds rows; both times are reported.
6. Queries (seeded): --queries minus --title-queries are the first sentence of a random loaded passage (the first
   one of 8 words or more, cut to 40 words; the passage is the query's "source"); --title-queries are
   "What is TITLE?" for random loaded articles. Each query is sent as SearchRequest.text with k=10, once through
   the index (params.ef default, or --ef) and once with params.exact=true, interleaved (the order alternates by
   query), plus an Embed of the same text alone, so the embedding's share of the latency can be seen. Reported:
   recall@10 of indexed vs exact, the fraction of sentence queries whose source passage comes first (and is in the
   top 10), the fraction of title queries whose first hit is a passage of that article, and p50/p99 latency of each
   call.

Results: bench/rag/results/TAG.json and TAG.md (TAG = rag-N unless --tag), the table also on stdout.
Attribution: the passages are Wikipedia text (CC BY-SA 3.0 / GFDL, Wikipedia contributors, 2015 dump).
"""
import argparse
import html
import os
import random
import re
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import qvbench as qb  # noqa: E402
from qvbench import pb  # noqa: E402

REPO = HERE.parents[1]
DEFAULT_TARBALL = REPO.parent / "shared" / "datasets" / "wikipedia" / "enwiki-2015-AA.tar.xz"
ATTRIBUTION = ("Passages: English Wikipedia text (2015 dump, ../shared/datasets/wikipedia/enwiki-2015-AA.tar.xz), "
               "by Wikipedia contributors, CC BY-SA 3.0 / GFDL.")
MODEL = "all-MiniLM-L6-v2"
COLL = "wiki"
DOC_RE = re.compile(r'^<doc id="(\d+)" url="([^"]*)" title="([^"]*)">\s*$')
TAG_RE = re.compile(r"<[^<>]{0,2000}>")
SENT_RE = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9\"'(\[])")


# ---------------------------------------------------------------------------------------------------------------------
# corpus
# ---------------------------------------------------------------------------------------------------------------------
def unpack(tarball, data_dir):
    """Unpacks the tarball into data_dir once (a stamp file records which tarball); returns (dir of wiki_*, seconds)."""
    data_dir = Path(data_dir)
    stamp = data_dir / ".unpacked"
    key = f"{tarball} {os.path.getsize(tarball)} {int(os.path.getmtime(tarball))}\n"
    t0 = time.monotonic()
    if not (stamp.exists() and stamp.read_text() == key):
        real = data_dir.resolve()
        if (real == REPO or REPO in real.parents) and not real.relative_to(REPO).parts[0].startswith("build"):
            raise SystemExit(f"--data-dir {data_dir} is inside the repository: use a temp or build dir")
        data_dir.mkdir(parents=True, exist_ok=True)
        qb.log(f"rag: unpacking {tarball} into {data_dir}")
        with tarfile.open(tarball, "r:xz") as tf:
            tf.extractall(data_dir)
        stamp.write_text(key)
    files = sorted(data_dir.glob("**/wiki_[0-9][0-9]"))
    if not files:
        raise SystemExit(f"no wiki_NN files under {data_dir}")
    return files, time.monotonic() - t0


def parse(files):
    """Yields (doc_id, url, title, [body lines]) for every <doc> block."""
    for path in files:
        cur = None
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                if cur is None:
                    m = DOC_RE.match(line)
                    if m:
                        cur = (int(m.group(1)), html.unescape(m.group(2)), html.unescape(m.group(3)), [])
                    continue
                if line.strip() == "</doc>":
                    yield cur
                    cur = None
                else:
                    cur[3].append(line)


def clean(line):
    return " ".join(TAG_RE.sub(" ", line).split())


def split_long(words_para, target):
    """A paragraph over 1.5 x target words, cut at sentence ends into pieces of about target words."""
    sents = SENT_RE.split(words_para)
    out, cur, n = [], [], 0
    for s in sents:
        w = len(s.split())
        if cur and n + w > target:
            out.append(" ".join(cur))
            cur, n = [], 0
        if w > 2 * target:  # one enormous "sentence" (a list, a table dump): cut by words
            ws = s.split()
            for i in range(0, len(ws), target):
                out.append(" ".join(ws[i:i + target]))
            continue
        cur.append(s)
        n += w
    if cur:
        out.append(" ".join(cur))
    return out


def chunk(body, title, target):
    """Paragraph-aware passages of about `target` words from an article body (its first line is the title)."""
    lines = [clean(x) for x in body]
    lines = [x for x in lines if x]
    if lines and lines[0] == title:
        lines = lines[1:]
    paras, pending = [], []
    for x in lines:
        nw = len(x.split())
        if nw <= 8 and not x.endswith((":",)) and len(lines) > 1:  # a heading line: goes with the next paragraph
            pending.append(x)
            continue
        text = " ".join(pending + [x])
        pending = []
        if len(text.split()) > 1.5 * target:
            paras.extend(split_long(text, target))
        else:
            paras.append(text)
    if pending and paras:
        paras[-1] += " " + " ".join(pending)
    out, cur, n = [], [], 0
    for p in paras:
        w = len(p.split())
        if cur and n + w > 1.25 * target:
            out.append(" ".join(cur))
            cur, n = [], 0
        cur.append(p)
        n += w
        if n >= target:
            out.append(" ".join(cur))
            cur, n = [], 0
    if cur:
        tail = " ".join(cur)
        if out and n < target / 4:
            out[-1] += " " + tail
        else:
            out.append(tail)
    return [p for p in out if len(p.split()) >= 20]


def build_corpus(files, target, n_want, seed):
    """All articles' passages, then the subset: articles shuffled with `seed`, taken whole until n_want passages."""
    arts = []
    for doc_id, url, title, body in parse(files):
        ps = chunk(body, title, target)
        if ps:
            arts.append((doc_id, url, title, ps))
    total_passages = sum(len(a[3]) for a in arts)
    total_words = sum(len(p.split()) for a in arts for p in a[3])
    order = list(range(len(arts)))
    random.Random(seed).shuffle(order)
    passages = []  # (id, doc_id, chunk, url, title, text)
    for ai in order:
        doc_id, url, title, ps = arts[ai]
        for ci, text in enumerate(ps):
            if n_want and len(passages) >= n_want:
                break
            passages.append((f"{doc_id}-{ci}", doc_id, ci, url, title, text))
        if n_want and len(passages) >= n_want:
            break
    wc = np.array([len(p[5].split()) for p in passages])
    stats = {"articles_in_corpus": len(arts), "passages_in_corpus": total_passages, "words_in_corpus": total_words,
             "articles_loaded": len({p[1] for p in passages}), "passages_loaded": len(passages),
             "words_per_passage": {"mean": float(wc.mean()), "p50": float(np.median(wc)), "min": int(wc.min()),
                                   "max": int(wc.max())},
             "text_bytes_loaded": sum(len(p[5].encode()) for p in passages)}
    return passages, stats


# ---------------------------------------------------------------------------------------------------------------------
# queries
# ---------------------------------------------------------------------------------------------------------------------
def first_sentence(text):
    """The passage's first sentence of at least 8 words (section headings, glued on by the chunker, are shorter),
    cut to 40 words; the first 25 words when there is none."""
    for s in SENT_RE.split(text):
        ws = s.split()
        if len(ws) >= 8:
            return " ".join(ws[:40])
    return " ".join(text.split()[:25])


def make_queries(passages, n_total, n_title, seed):
    rng = random.Random(seed + 1)
    n_sent = n_total - n_title
    qs = []
    for i in rng.sample(range(len(passages)), min(n_sent, len(passages))):
        pid, _d, _c, _u, title, text = passages[i]
        qs.append({"kind": "sentence", "text": first_sentence(text), "source": pid, "title": title})
    titles = sorted({p[4] for p in passages})
    for t in rng.sample(titles, min(n_title, len(titles))):
        qs.append({"kind": "title", "text": f"What is {t}?", "source": None, "title": t})
    return qs


# ---------------------------------------------------------------------------------------------------------------------
# server helpers
# ---------------------------------------------------------------------------------------------------------------------
def scrape(metrics_addr):
    """quiverd's Prometheus counters as {name: value} (plain names only)."""
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=10) as r:
            body = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in body.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out


def describe(conn):
    return conn.q.DescribeCollection(pb.DescribeCollectionRequest(name=COLL), timeout=60).collection


def segments(info):
    return [{"id": s.id, "state": pb.SegmentState.Name(s.state), "rows": s.rows, "deleted_rows": s.deleted_rows,
             "index_state": pb.IndexState.Name(s.index_state), "index_progress": s.index_progress,
             "index_bytes": s.index_bytes} for s in info.segments]


def all_ready(info):
    for s in info.segments:
        if s.state == pb.SEGMENT_STATE_GROWING and s.rows > s.deleted_rows:
            return False
        if s.state == pb.SEGMENT_STATE_SEALED and s.index_state not in (pb.INDEX_STATE_READY, pb.INDEX_STATE_NONE):
            if s.index_state == pb.INDEX_STATE_FAILED:
                raise SystemExit(f"segment {s.id}: index build FAILED (see the server log)")
            return False
    return True


def git_state():
    def run(*a):
        try:
            return subprocess.run(["git", "-C", str(REPO)] + list(a), capture_output=True, text=True,
                                  timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    return {"head": run("rev-parse", "--short", "HEAD"), "dirty_files": len(run("status", "--porcelain").splitlines())}


# ---------------------------------------------------------------------------------------------------------------------
# phases
# ---------------------------------------------------------------------------------------------------------------------
def build_requests(passages, batch):
    reqs = []
    for s in range(0, len(passages), batch):
        req = pb.UpsertRequest(collection=COLL)
        for pid, doc_id, ci, url, title, text in passages[s:s + batch]:
            p = req.points.add(id=pid, text=text)
            p.attributes["title"].keyword_value = title
            p.attributes["url"].keyword_value = url
            p.attributes["doc_id"].int_value = doc_id
            p.attributes["chunk"].int_value = ci
        reqs.append((len(req.points), req.SerializeToString()))
    return reqs


def load(srv, metrics_addr, reqs, n_threads):
    conns = [qb.Conn(srv.addr, timeout=600).ready() for _ in range(n_threads)]
    lock = threading.Lock()
    nxt = [0]
    lat, errors = [], []
    done_pts = [0]
    stop = threading.Event()
    timeline = []

    def sampler(t0):
        while not stop.wait(5.0):
            m = scrape(metrics_addr)
            timeline.append({"t": round(time.monotonic() - t0, 2), "acked": done_pts[0],
                             "embedded": m.get("quiver_embed_texts_total"),
                             "batches": m.get("quiver_embed_batches_total"), "server_cpu_s": srv.cpu_seconds()})

    def worker(c):
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(reqs) or errors:
                return
            n, body = reqs[i]
            t = time.perf_counter()
            try:
                r = c.raw_upsert(body, timeout=600)
            except Exception as e:  # noqa: BLE001  (reported, stops the load)
                errors.append(repr(e))
                return
            lat.append(time.perf_counter() - t)
            if r.count != n:
                errors.append(f"upsert acknowledged {r.count} of {n}")
            with lock:
                done_pts[0] += n

    m0 = scrape(metrics_addr)
    cpu0 = srv.cpu_seconds()
    c_cpu0 = time.process_time()
    t0 = time.monotonic()
    smp = threading.Thread(target=sampler, args=(t0,), daemon=True)
    smp.start()
    ts = [threading.Thread(target=worker, args=(c,)) for c in conns]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.monotonic() - t0
    stop.set()
    smp.join()
    cpu1 = srv.cpu_seconds()
    c_cpu1 = time.process_time()
    m1 = scrape(metrics_addr)
    for c in conns:
        c.close()
    if errors:
        raise SystemExit(f"load failed: {errors[:3]}")
    texts = m1.get("quiver_embed_texts_total", 0) - m0.get("quiver_embed_texts_total", 0)
    batches = m1.get("quiver_embed_batches_total", 0) - m0.get("quiver_embed_batches_total", 0)
    rates = []  # embedder texts/s over ~30-s windows (a forward pass of 64 long texts can take longer than 5 s)
    pts = [{"t": 0.0, "embedded": m0.get("quiver_embed_texts_total")}] + \
        [x for x in timeline if x.get("embedded") is not None]
    a0 = pts[0]
    for b in pts[1:]:
        if a0.get("embedded") is not None and b["t"] - a0["t"] >= 30:
            rates.append((b["embedded"] - a0["embedded"]) / (b["t"] - a0["t"]))
            a0 = b
    scpu = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None
    return {"seconds": wall, "passages": done_pts[0], "passages_per_s": done_pts[0] / wall,
            "requests": len(reqs), "threads": n_threads,
            "upsert_ms": {"p50": qb.percentile(lat, 50) * 1e3, "p99": qb.percentile(lat, 99) * 1e3},
            "server_cpu_s": scpu, "server_cpu_per_wall": scpu / wall if scpu is not None else None,
            "client_cpu_per_wall": (c_cpu1 - c_cpu0) / wall,
            "embed": {"texts": texts, "forward_passes": batches,
                      "texts_per_pass": texts / batches if batches else None,
                      "texts_per_s": texts / wall,
                      "texts_per_server_cpu_s": texts / scpu if scpu else None,
                      "texts_per_s_30s_windows": {"min": min(rates), "p50": float(np.median(rates)),
                                                  "max": max(rates)} if rates else None},
            "timeline": timeline}


def index(conn, timeout):
    t0 = time.monotonic()
    r = conn.admin.Flush(pb.FlushRequest(collection=COLL), timeout=600)
    t_flush = time.monotonic() - t0
    while True:
        info = describe(conn)
        if all_ready(info):
            break
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"index not ready after {timeout} s: {segments(info)}")
        time.sleep(0.2)
    total = time.monotonic() - t0
    return {"flush_s": t_flush, "sealed_by_flush": r.sealed_segments, "flush_to_ready_s": total,
            "segments": segments(info), "live_rows": info.live_rows}


def queries(srv, qs, k, ef, warmup):
    c = qb.Conn(srv.addr, timeout=120).ready()
    raw_embed = c.channel.unary_unary("/quiver.v1.Quiver/Embed", request_serializer=None,
                                      response_deserializer=pb.EmbedResponse.FromString)

    def sreq(text, exact):
        return pb.SearchRequest(collection=COLL, text=text, k=k,
                                params=pb.SearchParams(ef=ef, exact=exact)).SerializeToString()

    for q in qs[:warmup]:  # warm-up: connection, caches, the batcher thread
        c.raw_search(sreq(q["text"], False))
        c.raw_search(sreq(q["text"], True))
    lat = {"indexed": [], "exact": [], "embed": []}
    for i, q in enumerate(qs):
        calls = [("indexed", c.raw_search, sreq(q["text"], False)), ("exact", c.raw_search, sreq(q["text"], True)),
                 ("embed", raw_embed, pb.EmbedRequest(texts=[q["text"]]).SerializeToString())]
        if i % 2:
            calls = [calls[1], calls[0], calls[2]]
        for name, fn, body in calls:
            t = time.perf_counter()
            r = fn(body, timeout=120)
            lat[name].append(time.perf_counter() - t)
            if name != "embed":
                q[name] = [(h.id, h.score) for h in r.hits]
    c.close()
    return lat


def score(qs, passages, k):
    title_of = {p[0]: p[4] for p in passages}
    rec = []
    out = {}
    for q in qs:
        ex = {h for h, _ in q["exact"][:k]}
        ix = {h for h, _ in q["indexed"][:k]}
        q["recall"] = len(ex & ix) / len(ex) if ex else 1.0
        rec.append(q["recall"])
    out["recall_at_k"] = float(np.mean(rec))
    out["recall_min"] = float(np.min(rec))
    out["queries_recall_1"] = sum(r == 1.0 for r in rec) / len(rec)
    for kind in ("sentence", "title"):
        sub = [q for q in qs if q["kind"] == kind]
        if not sub:
            continue
        d = {"queries": len(sub), "recall_at_k": float(np.mean([q["recall"] for q in sub]))}
        for mode in ("indexed", "exact"):
            if kind == "sentence":
                d[f"source_first_{mode}"] = sum(bool(q[mode]) and q[mode][0][0] == q["source"] for q in sub) / len(sub)
                d[f"source_in_top{k}_{mode}"] = sum(q["source"] in {h for h, _ in q[mode]} for q in sub) / len(sub)
            else:
                d[f"title_first_{mode}"] = sum(bool(q[mode]) and title_of.get(q[mode][0][0]) == q["title"]
                                               for q in sub) / len(sub)
                d[f"title_in_top{k}_{mode}"] = sum(any(title_of.get(h) == q["title"] for h, _ in q[mode])
                                                   for q in sub) / len(sub)
        out[kind] = d
    return out


# ---------------------------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------------------------
def table(res):
    c, ld, ix, q, lat = res["corpus"], res["load"], res["index"], res["quality"], res["latency_ms"]
    k = res["config"]["k"]
    s, t = q.get("sentence", {}), q.get("title", {})
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    rows = [
        ("passages loaded", f"{c['passages_loaded']:,} of {c['passages_in_corpus']:,} in the corpus "
                            f"({c['articles_loaded']:,} articles; {c['words_per_passage']['mean']:.0f} words/passage)"),
        ("load: wall time", f"{ld['seconds']:.1f} s ({ld['threads']} client threads, {res['config']['batch']} "
                            f"texts/Upsert)"),
        ("load: passages/s (acknowledged)", f"{ld['passages_per_s']:.1f}"),
        ("embedder: texts/s during load", f"{ld['embed']['texts_per_s']:.1f} per wall second, "
                                          f"{ld['embed']['texts_per_server_cpu_s']:.1f} per server CPU-second "
                                          f"({ld['embed']['texts_per_pass']:.1f} texts/forward pass)"),
        ("Upsert latency p50 / p99", f"{ld['upsert_ms']['p50']:.0f} / {ld['upsert_ms']['p99']:.0f} ms"),
        ("server CPU during load", f"{ld['server_cpu_per_wall']:.2f} cores"),
        ("Flush + index build until READY", f"{ix['flush_to_ready_s']:.1f} s (Flush call {ix['flush_s']:.2f} s; "
                                            f"{len(ix['segments'])} segment(s): "
                                            + ", ".join(f"{x['rows']:,} rows {x['index_state'][12:]}"
                                                        for x in ix['segments']) + ")"),
        (f"recall@{k}, indexed vs exact (all {res['config']['queries']} queries)",
         f"{q['recall_at_k']:.4f} (min {q['recall_min']:.2f}; {pct(q['queries_recall_1'])} of queries exactly equal)"),
    ]
    if s:
        rows += [(f"sentence queries ({s['queries']}): source passage first, indexed / exact",
                  f"{pct(s['source_first_indexed'])} / {pct(s['source_first_exact'])}"),
                 (f"sentence queries: source passage in top {k}, indexed / exact",
                  f"{pct(s[f'source_in_top{k}_indexed'])} / {pct(s[f'source_in_top{k}_exact'])}")]
    if t:
        rows += [(f"title questions ({t['queries']}): first hit from that article, indexed / exact",
                  f"{pct(t['title_first_indexed'])} / {pct(t['title_first_exact'])}")]
    rows += [
        (f"Search(text, k={k}) indexed: p50 / p99", f"{lat['indexed']['p50']:.1f} / {lat['indexed']['p99']:.1f} ms"),
        (f"Search(text, k={k}) exact: p50 / p99", f"{lat['exact']['p50']:.1f} / {lat['exact']['p99']:.1f} ms"),
        ("Embed(1 query text) alone: p50 / p99", f"{lat['embed']['p50']:.1f} / {lat['embed']['p99']:.1f} ms"),
        ("machine", f"nproc {res['machine']['nproc']}; load average (1/5/15 min) before "
                    f"{' '.join(res['uptime_before']['loadavg'])}, after the load "
                    f"{' '.join(res['uptime_after_load']['loadavg'])}, at the end "
                    f"{' '.join(res['uptime_after']['loadavg'])}"),
    ]
    lines = ["| measure | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", type=int, default=10000, help="passages to load (0: the whole corpus, ~80k)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--title-queries", type=int, default=50, help="how many of --queries are title questions")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ef", type=int, default=0, help="SearchParams.ef for indexed search (0: the server's 64)")
    ap.add_argument("--batch", type=int, default=64, help="texts per Upsert")
    ap.add_argument("--threads", type=int, default=2, help="client threads during the load")
    ap.add_argument("--words", type=int, default=200, help="target passage length in words")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tarball", default=str(DEFAULT_TARBALL))
    ap.add_argument("--data-dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "quiver-rag-wikipedia"),
                    help="where the tarball is unpacked (never inside the repository)")
    ap.add_argument("--model-dir", required=True, help="the embedding model (tools/fetch_model.sh)")
    ap.add_argument("--server-flag", action="append", default=[], help="extra quiverd flag (repeatable)")
    ap.add_argument("--index-timeout", type=float, default=3600)
    ap.add_argument("--tag", default=None)
    ap.add_argument("--out-dir", default=str(HERE / "results"))
    a = ap.parse_args()
    tag = a.tag or f"rag-{a.passages or 'all'}"

    before = qb.load_snapshot()
    machine = qb.machine_info()
    git = git_state()  # at the start: other sessions may commit while this runs
    qb.log(f"rag: nproc {machine['nproc']}, {before['uptime']}")

    files, t_unpack = unpack(a.tarball, a.data_dir)
    t0 = time.monotonic()
    passages, cstats = build_corpus(files, a.words, a.passages, a.seed)
    cstats["unpack_s"], cstats["parse_chunk_s"] = t_unpack, time.monotonic() - t0
    note = f"loaded {len(passages):,} of the corpus's {cstats['passages_in_corpus']:,} passages"
    if a.passages and a.passages < cstats["passages_in_corpus"]:
        note += (f" (--passages {a.passages}; the default is 10000 because the server embeds every passage on the "
                 "CPU, which is slow on 2 shared cores; --passages 0 loads the whole corpus)")
    qb.log(f"rag: {note.replace('loaded', 'loading', 1)}")
    qs = make_queries(passages, a.queries, min(a.title_queries, a.queries), a.seed)
    reqs = build_requests(passages, a.batch)

    mport = qb.free_port()
    srv = qb.Server(["--model-dir", a.model_dir, "--metrics-listen", f"127.0.0.1:{mport}"] + a.server_flag).start()
    maddr = f"127.0.0.1:{mport}"
    qb.log(f"rag: quiverd {srv.binary} on {srv.addr}: {srv.start_line}")
    conn = qb.Conn(srv.addr).ready()
    conn.q.CreateCollection(pb.CreateCollectionRequest(
        name=COLL, metric=pb.METRIC_COSINE, embedding_model=MODEL,
        fields=[pb.FieldSchema(name="title", type=pb.FIELD_TYPE_KEYWORD),
                pb.FieldSchema(name="url", type=pb.FIELD_TYPE_KEYWORD),
                pb.FieldSchema(name="doc_id", type=pb.FIELD_TYPE_INT64),
                pb.FieldSchema(name="chunk", type=pb.FIELD_TYPE_INT64)]), timeout=60)

    qb.log(f"rag: loading {len(passages):,} passages in {len(reqs)} Upserts of <= {a.batch}, {a.threads} threads")
    ld = load(srv, maddr, reqs, a.threads)
    qb.log(f"rag: loaded in {ld['seconds']:.1f} s = {ld['passages_per_s']:.1f} passages/s "
           f"(embedder {ld['embed']['texts_per_s']:.1f} texts/s)")
    ld["whole_corpus_estimate_min"] = cstats["passages_in_corpus"] / ld["passages_per_s"] / 60
    if len(passages) < cstats["passages_in_corpus"]:
        note += (f"; at the {ld['passages_per_s']:.1f} passages/s observed here the whole corpus would take about "
                 f"{ld['whole_corpus_estimate_min']:.0f} min to load")
    count = conn.q.Count(pb.CountRequest(collection=COLL), timeout=60).count
    if count != len(passages):
        raise SystemExit(f"Count {count} != {len(passages)} passages loaded")
    during = qb.load_snapshot()

    ix = index(conn, a.index_timeout)
    qb.log(f"rag: flush + index ready in {ix['flush_to_ready_s']:.1f} s: {ix['segments']}")
    idle = srv.wait_idle(timeout=120)

    lat = queries(srv, qs, a.k, a.ef, warmup=min(10, len(qs)))
    quality = score(qs, passages, a.k)
    m = scrape(maddr)
    conn.close()
    after = qb.load_snapshot()
    srv.stop()

    res = {"benchmark": "rag", "tag": tag, "time": before["time"], "note": note, "attribution": ATTRIBUTION,
           "config": {"passages": a.passages, "queries": len(qs),
                      "title_queries": sum(q["kind"] == "title" for q in qs),
                      "k": a.k, "ef": a.ef or 64, "batch": a.batch, "threads": a.threads, "words": a.words,
                      "seed": a.seed, "model": MODEL, "metric": "COSINE", "index": "HNSW (server defaults)",
                      "server_flags": a.server_flag, "command": " ".join([sys.argv[0]] + sys.argv[1:])},
           "quiverd": {"binary": srv.binary, "start_line": srv.start_line, "simd": srv.simd,
                       "binary_mtime": time.strftime("%Y-%m-%dT%H:%M:%S%z",
                                                     time.localtime(os.path.getmtime(srv.binary))),
                       "repo_git_at_start": git},
           "machine": machine, "uptime_before": before, "uptime_after_load": during, "uptime_after": after,
           "corpus": cstats, "load": ld, "index": ix, "idle_wait_s": idle, "quality": quality,
           "latency_ms": {n: {"p50": qb.percentile(v, 50) * 1e3, "p99": qb.percentile(v, 99) * 1e3,
                              "mean": float(np.mean(v)) * 1e3, "n": len(v)} for n, v in lat.items()},
           "embed_totals_end": {k2: m.get(k2) for k2 in ("quiver_embed_texts_total", "quiver_embed_batches_total")},
           "queries_detail": [{"kind": q["kind"], "text": q["text"], "source": q["source"], "title": q["title"],
                               "recall": q["recall"], "indexed_top": [h for h, _ in q["indexed"][:3]],
                               "exact_top": [h for h, _ in q["exact"][:3]]} for q in qs]}
    md = table(res)
    out = Path(a.out_dir)
    qb.write_json(out / f"{tag}.json", res)
    (out / f"{tag}.md").write_text(f"{note}\n\n{md}\n\n{ATTRIBUTION}\n")
    print(f"\n{note}\n\n{md}\n\n{ATTRIBUTION}\nresults: {out / (tag + '.json')}")


if __name__ == "__main__":
    main()
