"""Integration tests of the `quiver` command-line tool (tools/quiver) against a real quiverd.

Environment: QUIVER_CLI (the binary; default <repo>/build/quiver), QUIVERD (see qvtest.py); ctest sets both.

What is checked, always against the server through the Python client (qvtest.Client), never against the CLI's own
output alone:
- every load format (fvecs, bvecs, npy, jsonl, csv with a vector cell, csv with v0..vN columns, tsv) gives exactly the
  input: the count, and every vector bit for bit, plus ids, text and typed attributes for the text formats; the pread
  fallback reads the same;
- malformed inputs (a truncated final fvecs record, a wrong dimension, bad JSON lines, a csv cell that is not a float,
  an npy of the wrong width) stop the load with exit status 1 and a message naming the line or byte offset, after
  loading exactly the records before the bad one; with --skip-bad the load completes and counts what it skipped;
- kill -9 (and SIGINT) of the CLI mid-load, then --resume: the collection holds exactly the input;
- admin and point commands with --json parse and agree with the server; errors give 1 with the gRPC status name;
  usage errors give 2; --help works on every command;
- compact --wait on a collection with many deleted rows: the job is DONE with the right rows in/out, counts and
  exact search results are unchanged, and stats shows the job (human and --json, agreeing with Admin.Stats);
- API keys (server with --api-keys): no key or an unknown key gives UNAUTHENTICATED, a read key upserting or a write
  key compacting gives PERMISSION_DENIED, the right key (--api-key or $QUIVER_API_KEY) works;
- TLS (certificates made here by openssl): --tls-ca with --tls-server-name works, plaintext, a foreign CA or a wrong
  server name fail; mutual TLS works with --tls-cert/--tls-key and fails without.
"""
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import zlib

import numpy as np
import pytest

from qvtest import (BOOL, DOUBLE, INT64, KEYWORD, KEYWORDS, L2, Server, all_, any_of, attrs_of, eq,
                    free_port, pb, point, rng, vec_of)
from test_security import make_certs, start_tls

COMMANDS = ["collections", "describe", "create", "drop", "count", "get", "delete", "search", "load", "stats", "flush",
            "compact", "health", "backup", "restore", "embed"]


@pytest.fixture(scope="module")
def server(quiverd):
    s = Server(binary=quiverd)
    try:
        s.start()
        yield s
    finally:
        s.cleanup()


@pytest.fixture(scope="module")
def run(quiver_bin, server):
    """run(*args, env=None, addr=True) -> CompletedProcess (text) of `quiver --addr ADDR args...`."""

    def _run(*args, env=None, addr=True, timeout=120):
        cmd = [quiver_bin] + (["--addr", server.addr] if addr else []) + [str(a) for a in args]
        e = dict(os.environ)
        e.update(env or {})
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e,
                              stdin=subprocess.DEVNULL)

    return _run


@pytest.fixture
def c(server):
    return server.client


_n = iter(range(10**6))


def uniq(prefix):
    return f"{prefix}_{next(_n)}"


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-3000:]}"
    return r


def load_json(run, *args, **kw):
    r = ok(run("--json", "load", *args, "--quiet", **kw))
    return json.loads(r.stdout)


def f32(a):
    return np.asarray(a, dtype=np.float32)


def fmt(x):
    """float32 -> shortest text that reads back as the same float32."""
    return np.format_float_positional(np.float32(x), unique=True, trim="-")


def write_vecs(path, rows, kind="f", dims=None):
    """fvecs (kind f, float32) or bvecs (kind b, uint8); dims overrides the dimension header per record."""
    with open(path, "wb") as f:
        for i, r in enumerate(rows):
            d = dims[i] if dims is not None else len(r)
            np.int32(d).tofile(f)
            (f32(r) if kind == "f" else np.asarray(r, np.uint8)).tofile(f)


def fetch(c, coll, ids):
    m = c.get_map(coll, ids, with_vectors=True)
    return m


def assert_vectors(c, coll, ids, expect):
    """Every id present with exactly the expected float32 vector."""
    got = fetch(c, coll, ids)
    missing = [i for i in ids if i not in got]
    assert not missing, f"{coll}: {len(missing)} ids missing, e.g. {missing[:5]}"
    for i, e in zip(ids, expect):
        v = vec_of(got[i])
        assert np.array_equal(v, f32(e)), f"{coll}: id {i}: vector {v[:6]}... != {f32(e)[:6]}..."


# =====================================================================================================================
# usage
# =====================================================================================================================
def test_help_everywhere(run):
    r = ok(run("--help", addr=False))
    for cmd in COMMANDS:
        assert cmd in r.stdout
    assert "FILTER" in r.stdout and "TLS" in r.stdout
    for cmd in COMMANDS:
        r = ok(run(cmd, "--help", addr=False))
        assert r.stdout.startswith(f"usage: quiver {cmd}"), f"{cmd} --help: {r.stdout[:200]!r}"
        assert "--addr" in r.stdout and "--json" in r.stdout, f"{cmd} --help lacks the common options"
    assert "range" in ok(run("search", "--help", addr=False)).stdout  # the filter grammar


@pytest.mark.parametrize("args", [
    [],
    ["bogus"],
    ["--nope", "collections"],
    ["collections", "extra"],
    ["describe"],
    ["create", "x", "--metric", "l2"],
    ["create", "x", "--dim", "0", "--metric", "l2"],
    ["create", "x", "--dim", "4", "--metric", "manhattan"],
    ["create", "x", "--dim", "4", "--metric", "l2", "--field", "nocolon"],
    ["create", "x", "--dim", "4", "--metric", "l2", "--field", "a:float128"],
    ["count", "x", "--filter", "{bad json"],
    ["count", "x", "--filter", '{"field":"a","eq":1,"range":{"gt":1}}'],
    ["count", "x", "--filter", '{"all":[]}'],
    ["get", "x"],
    ["delete", "x"],
    ["search", "x"],
    ["search", "x", "--vector", "1,2", "--k", "0"],
    ["search", "x", "--vector", "1,abc"],
    ["search", "x", "--vector", "1", "--vector-file", "/dev/null"],
    ["load", "--input", "x.fvecs"],
    ["load", "--collection", "x"],
    ["load", "--collection", "x", "--input", "/nonexistent.fvecs"],
    ["load", "--collection", "x", "--input", "/etc/hostname"],
    ["load", "--collection", "x", "--input", "/etc/hostname", "--format", "parquet"],
    ["load", "--collection", "x", "--input", "/etc/hostname", "--format", "csv", "--batch", "0"],
    ["--timeout", "-1", "health"],
    ["compact"],
    ["compact", "x", "y"],
    ["compact", "x", "--target-rows", "-5"],
    ["--api-key", "", "health"],
    ["--api-key", "has space", "health"],
    ["--tls-cert", "/etc/hostname", "health"],
    ["--tls-server-name", "localhost", "health"],
    ["--tls-ca", "/nonexistent/ca.pem", "health"],
    ["--tls-ca", "/etc/hostname", "health"],
])
def test_usage_errors_exit_2(run, args):
    r = run(*args)
    assert r.returncode == 2, f"{args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert r.stderr.strip(), f"{args}: no message"


# =====================================================================================================================
# admin and point commands
# =====================================================================================================================
def test_admin_commands_json_agree_with_server(run, c, tmp_path):
    name = uniq("adm")
    r = ok(run("--json", "create", name, "--dim", "4", "--metric", "l2", "--field", "cat:keyword", "--field",
               "n:int64", "--field", "price:double", "--field", "tags:keywords", "--field", "hot:bool", "--index",
               "flat"))
    assert json.loads(r.stdout) == {"name": name, "created": True}
    d = c.describe(name)
    assert d.dim == 4 and d.metric == L2
    assert [(f.name, f.type) for f in d.fields] == [("cat", KEYWORD), ("n", INT64), ("price", DOUBLE),
                                                    ("tags", KEYWORDS), ("hot", BOOL)]
    assert d.index.kind == pb.INDEX_KIND_FLAT

    r = run("create", name, "--dim", "4", "--metric", "l2")
    assert r.returncode == 1 and "ALREADY_EXISTS" in r.stderr, r.stderr

    cats = ["news", "wiki", "code"]
    pts = [point(f"p{i}", [i, i % 3, -i, 0.5], {"cat": cats[i % 3], "n": i, "price": i / 4, "tags": ["a", f"t{i % 2}"],
                                                "hot": i % 2 == 0}, text=f"text {i}") for i in range(30)]
    c.upsert(name, pts)

    cols = json.loads(ok(run("--json", "collections")).stdout)["collections"]
    assert sorted(x["name"] for x in cols) == c.names()
    mine = [x for x in cols if x["name"] == name][0]
    assert mine["dim"] == 4 and mine["metric"] == "L2" and mine["live_rows"] == 30
    assert mine["index"]["kind"] == "FLAT"

    dj = json.loads(ok(run("--json", "describe", name)).stdout)
    d = c.describe(name)
    assert dj["live_rows"] == d.live_rows == 30
    assert [(f["name"], f["type"]) for f in dj["fields"]] == [("cat", "KEYWORD"), ("n", "INT64"), ("price", "DOUBLE"),
                                                              ("tags", "KEYWORDS"), ("hot", "BOOL")]
    assert len(dj["segments"]) == len(d.segments)
    assert sum(s["rows"] for s in dj["segments"]) == sum(s.rows for s in d.segments)
    human = ok(run("describe", name)).stdout
    assert name in human and "live rows   30" in human

    h = json.loads(ok(run("--json", "health")).stdout)
    hs = c.admin.Health(pb.HealthRequest())
    assert h == {"status": "SERVING", "version": hs.version, "role": hs.role}

    flt = '{"all":[{"field":"cat","any_of":["news","code"]},{"field":"n","range":{"gte":5,"lt":25}}]}'
    want = c.count(name, all_(any_of("cat", ["news", "code"]), rng("n", gte=5, lt=25)))
    assert json.loads(ok(run("--json", "count", name, "--filter", flt)).stdout) == {"collection": name, "count": want}
    assert ok(run("count", name)).stdout.strip() == "30"
    not_hot = json.loads(ok(run("--json", "count", name, "--filter",
                                '{"not":{"field":"hot","eq":true}}')).stdout)["count"]
    assert not_hot == 15
    assert json.loads(ok(run("--json", "count", name, "--filter",
                             '{"field":"tags","eq":"t1"}')).stdout)["count"] == 15
    assert json.loads(ok(run("--json", "count", name, "--filter",
                             '{"field":"price","range":{"gt":2}}')).stdout)["count"] == 30 - 9

    g = json.loads(ok(run("--json", "get", name, "p3", "nope", "p7", "--vectors")).stdout)
    assert g["missing"] == ["nope"]
    assert [p["id"] for p in g["points"]] == ["p3", "p7"]
    sp = c.get_map(name, ["p3", "p7"])
    for p in g["points"]:
        assert np.array_equal(f32(p["vector"]), vec_of(sp[p["id"]]))
        assert p["attributes"] == attrs_of(sp[p["id"]])
        assert p["text"] == sp[p["id"]].text

    q = [3.2, 1, -3, 0.5]
    s = json.loads(ok(run("--json", "search", name, "--vector", ",".join(map(str, q)), "--k", "5", "--filter",
                          '{"field":"cat","eq":"wiki"}', "--with-attributes", "--with-text", "--exact")).stdout)
    want = c.search(name, q, 5, flt=eq("cat", "wiki"), exact=True, with_attributes=True, with_text=True)
    assert [h["id"] for h in s["hits"]] == [h.id for h in want.hits]
    assert [np.float32(h["score"]) for h in s["hits"]] == [np.float32(h.score) for h in want.hits]
    assert all(h["attributes"]["cat"] == "wiki" for h in s["hits"]) and s["partial"] is False
    assert all(h["text"].startswith("text ") for h in s["hits"])
    vf = tmp_path / "query.txt"
    vf.write_text("3.2 1\n-3 0.5\n")
    s2 = json.loads(ok(run("--json", "search", name, "--vector-file", vf, "--k", "5", "--filter",
                           '{"field":"cat","eq":"wiki"}')).stdout)
    assert [h["id"] for h in s2["hits"]] == [h["id"] for h in s["hits"]]
    assert "RANK" in ok(run("search", name, "--vector", "[1 2 3 4]")).stdout

    r = run("search", name, "--vector", "1,2,3")
    assert r.returncode == 1 and "INVALID_ARGUMENT" in r.stderr, r.stderr
    r = run("count", name, "--filter", '{"field":"nope","eq":1}')
    assert r.returncode == 1 and "INVALID_ARGUMENT" in r.stderr and "nope" in r.stderr, r.stderr

    st = json.loads(ok(run("--json", "stats")).stdout)
    ss = c.stats()
    assert sorted(x["name"] for x in st["collections"]) == sorted(x.name for x in ss.collections)
    assert st["simd"] == ss.simd and st["resident_bytes"] > 0
    assert "collections" in ok(run("stats")).stdout

    fl = json.loads(ok(run("--json", "flush", name)).stdout)
    assert fl["collection"] == name and fl["sealed_segments"] >= 0
    assert all(s.state == pb.SEGMENT_STATE_SEALED for s in c.describe(name).segments)

    dl = json.loads(ok(run("--json", "delete", name, "p1", "p2", "zz")).stdout)
    assert dl == {"collection": name, "requested": 3, "deleted": 2}
    assert c.count(name) == 28

    assert json.loads(ok(run("--json", "drop", name)).stdout) == {"name": name, "dropped": True}
    assert name not in c.names()
    r = run("describe", name)
    assert r.returncode == 1 and "NOT_FOUND" in r.stderr, r.stderr


def test_unreachable_server_exit_1(quiver_bin):
    r = subprocess.run([quiver_bin, "--addr", f"127.0.0.1:{free_port()}", "--timeout", "5", "health"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "UNAVAILABLE" in r.stderr, r.stderr


def test_load_unknown_collection_exit_1(run, tmp_path):
    p = tmp_path / "x.fvecs"
    write_vecs(p, [[1, 2]])
    r = run("load", "--collection", "no_such_coll", "--input", p)
    assert r.returncode == 1 and "NOT_FOUND" in r.stderr, r.stderr


# =====================================================================================================================
# load: every format, exact
# =====================================================================================================================
N, DIM = 2500, 8


def make_rows(seed, n=N, dim=DIM):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def make_collection(c, prefix, dim=DIM, fields=()):
    name = uniq(prefix)
    c.create(name, dim, L2, fields=fields)
    return name


@pytest.mark.parametrize("kind", ["fvecs", "bvecs", "npy", "npy-f8", "npy-u1"])
@pytest.mark.parametrize("engine", ["io_uring", "pread"])
def test_load_vector_files_exact(run, c, tmp_path, kind, engine):
    if engine == "pread" and kind not in ("fvecs", "npy"):
        pytest.skip("the pread path is format-independent: two formats cover it")
    x = make_rows(zlib.crc32(kind.encode()) % 1000)
    if kind == "bvecs" or kind == "npy-u1":
        x = np.random.default_rng(5).integers(0, 256, (N, DIM)).astype(np.uint8)
    ext = kind.split("-")[0]
    p = tmp_path / f"data.{ext}"
    if kind in ("fvecs", "bvecs"):
        write_vecs(p, x, "f" if kind == "fvecs" else "b")
    elif kind == "npy":
        np.save(p, x)
    elif kind == "npy-f8":
        x = x.astype(np.float64) * 1.000000001
        np.save(p, x)
    else:
        np.save(p, x)
    name = make_collection(c, "vf")
    env = {"QUIVER_NO_IO_URING": "1"} if engine == "pread" else {}
    r = ok(run("--json", "load", "--collection", name, "--input", p, "--batch", "300", "--parallel", "3", "--quiet",
               env=env))
    out = json.loads(r.stdout)
    assert out["rows_loaded"] == N and out["rows_skipped"] == 0 and out["complete"] is True
    assert out["format"] == ext
    if engine == "pread":
        assert out["engine"] == "pread" and "reading with pread" in r.stderr
    assert c.count(name) == N
    ids = [str(i) for i in range(N)]
    assert_vectors(c, name, ids, np.asarray(x, np.float64).astype(np.float32))
    assert not Path(str(p) + ".quiver-checkpoint").exists(), "a completed load leaves no checkpoint"


FIELDS = [("cat", KEYWORD), ("n", INT64), ("price", DOUBLE), ("hot", BOOL), ("tags", KEYWORDS)]


def text_records(n=N, seed=3):
    x = make_rows(seed, n)
    recs = []
    for i in range(n):
        a = {"cat": ["news", "wiki", "code"][i % 3], "n": i * 7 - 100, "price": i / 8, "hot": i % 2 == 0,
             "tags": ["a", f"t{i % 4}"]}
        if i % 5 == 0:
            del a["price"]  # an absent attribute
        recs.append((f"doc-{i}", x[i], f"passage {i}, \"quoted\"" if i % 3 else "", a))
    return recs


def check_text_load(c, name, recs):
    assert c.count(name) == len(recs)
    got = c.get_map(name, [r[0] for r in recs])
    for rid, vec, text, attrs in recs:
        p = got.get(rid)
        assert p is not None, f"{rid} missing"
        assert np.array_equal(vec_of(p), vec), f"{rid}: vector differs"
        assert p.text == text, f"{rid}: text {p.text!r} != {text!r}"
        assert attrs_of(p) == attrs, f"{rid}: attributes {attrs_of(p)} != {attrs}"


def test_load_jsonl_exact(run, c, tmp_path):
    recs = text_records()
    p = tmp_path / "data.jsonl"
    with open(p, "w") as f:
        for i, (rid, vec, text, attrs) in enumerate(recs):
            o = {"id": rid, "vector": [float(fmt(v)) for v in vec]}
            if text:
                o["text"] = text
            o.update(attrs)
            if i == 10:
                o["unknown_key"] = 1  # not in the schema: ignored with a note
            f.write(json.dumps(o) + "\n")
            if i == 20:
                f.write("\n")  # blank lines are not records
    name = make_collection(c, "jl", fields=FIELDS)
    r = ok(run("--json", "load", "--collection", name, "--input", p, "--batch", "200", "--quiet"))
    assert json.loads(r.stdout)["rows_loaded"] == N
    assert "unknown_key" in r.stderr
    check_text_load(c, name, recs)


def test_load_jsonl_integer_ids_and_default_ids(run, c, tmp_path):
    p = tmp_path / "ids.jsonl"
    p.write_text('{"id": 42, "vector": [1, 2]}\n{"vector": [3, 4]}\n{"id": "x", "vector": [5, 6]}\n')
    name = make_collection(c, "jid", dim=2)
    ok(run("load", "--collection", name, "--input", p, "--quiet"))
    got = c.get_map(name, ["42", "1", "x"])
    assert set(got) == {"42", "1", "x"}, "integer ids are decimal strings, a missing id is the record number"
    assert np.array_equal(vec_of(got["1"]), f32([3, 4]))


@pytest.mark.parametrize("layout", ["csv-cell", "csv-columns", "tsv"])
def test_load_csv_tsv_exact(run, c, tmp_path, layout):
    recs = text_records(seed=4)
    sep = "\t" if layout == "tsv" else ","
    p = tmp_path / ("data.tsv" if layout == "tsv" else "data.csv")

    def cell(s):
        if layout == "tsv":
            return s
        return '"' + s.replace('"', '""') + '"' if any(ch in s for ch in ',"') else s

    with open(p, "w") as f:
        vcols = [f"v{d}" for d in range(DIM)] if layout == "csv-columns" else ["embedding"]
        f.write(sep.join(["key", "text", "cat", "n", "price", "hot", "tags", "extra"] + vcols) + "\n")
        for rid, vec, text, a in recs:
            vals = [rid, text, a["cat"], str(a["n"]), repr(a["price"]) if "price" in a else "",
                    "true" if a["hot"] else "false", "|".join(a["tags"]), "ignored"]
            if layout == "csv-columns":
                vals += [fmt(v) for v in vec]
            else:
                vals += [" ".join(fmt(v) for v in vec) if layout == "tsv" else ",".join(fmt(v) for v in vec)]
            f.write(sep.join(cell(v) for v in vals) + "\n")
    name = make_collection(c, "csv", fields=FIELDS)
    args = ["--collection", name, "--input", p, "--id-field", "key", "--batch", "400", "--parallel", "2"]
    if layout != "csv-columns":
        args += ["--vector-field", "embedding"]
    r = ok(run("--json", "load", *args, "--quiet"))
    assert json.loads(r.stdout)["rows_loaded"] == N
    assert "'extra'" in r.stderr  # not a field: ignored with a note
    check_text_load(c, name, recs)


# =====================================================================================================================
# load: malformed input
# =====================================================================================================================
REC = 4 + 4 * DIM  # bytes of one fvecs record


def test_truncated_fvecs(run, c, tmp_path):
    x = make_rows(7, 10)
    p = tmp_path / "trunc.fvecs"
    write_vecs(p, x)
    with open(p, "ab") as f:
        np.int32(DIM).tofile(f)
        x[0, :3].tofile(f)  # 12 of 32 payload bytes
    name = make_collection(c, "tr")
    r = run("load", "--collection", name, "--input", p, "--batch", "4", "--quiet")
    assert r.returncode == 1, r.stderr
    assert "truncated" in r.stderr and f"byte offset {10 * REC}" in r.stderr, r.stderr
    assert c.count(name) == 10, "every complete record before the truncated one is loaded"
    out = load_json(run, "--collection", name, "--input", p, "--skip-bad")
    assert out["rows_skipped"] == 1 and out["rows_loaded"] == 10 and out["complete"]
    assert_vectors(c, name, [str(i) for i in range(10)], x)


def test_wrong_dimension_fvecs(run, c, tmp_path):
    x = make_rows(8, 10)
    rows = [r if i != 3 else r[:7] for i, r in enumerate(x)]
    dims = [DIM if i != 3 else 7 for i in range(10)]
    p = tmp_path / "dims.fvecs"
    write_vecs(p, rows, dims=dims)
    name = make_collection(c, "wd")
    r = run("load", "--collection", name, "--input", p, "--batch", "2", "--quiet")
    assert r.returncode == 1
    assert f"byte offset {3 * REC}" in r.stderr and "dimension 7" in r.stderr, r.stderr
    assert c.count(name) == 3, "the records before the bad one are loaded, none after"
    assert Path(str(p) + ".quiver-checkpoint").exists()
    # resume continues at the bad record; with --skip-bad it is skipped and the rest loads
    out = load_json(run, "--collection", name, "--input", p, "--resume", "--skip-bad")
    assert out["rows_skipped"] == 1 and out["rows_loaded"] == 6 and out["resumed_from_row"] == 3
    assert c.count(name) == 9
    ids = [str(i) for i in range(10) if i != 3]
    assert_vectors(c, name, ids, [x[i] for i in range(10) if i != 3])
    assert c.get(name, ["3"]) == [], "the bad record's id stays unused: ids are record numbers"


def test_bad_json_lines(run, c, tmp_path):
    x = make_rows(9, 8)
    lines = [json.dumps({"id": f"r{i}", "vector": [float(v) for v in x[i]]}) for i in range(8)]
    lines[2] = '{"id": "r2", "vector": [1, 2,'                          # line 3: bad JSON
    lines[4] = json.dumps({"id": "r4", "vector": [1.0] * (DIM + 1)})    # line 5: wrong dimension
    lines[6] = json.dumps({"id": "r6", "vector": [1.0] * (DIM - 1) + ["x"]})  # line 7: not a number
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(lines) + "\n")
    name = make_collection(c, "bj")
    r = run("load", "--collection", name, "--input", p, "--quiet")
    assert r.returncode == 1 and "line 3" in r.stderr and "JSON" in r.stderr, r.stderr
    assert c.count(name) == 2
    r = ok(run("--json", "load", "--collection", name, "--input", p, "--skip-bad", "--quiet"))
    assert json.loads(r.stdout)["rows_skipped"] == 3
    for ln in ("line 3", "line 5", "line 7"):
        assert ln in r.stderr, r.stderr
    assert c.count(name) == 5
    good = [i for i in range(8) if i not in (2, 4, 6)]
    assert_vectors(c, name, [f"r{i}" for i in good], [x[i] for i in good])


def test_csv_bad_float(run, c, tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("id,vector\na,1 2\nb,3 4\nc,5 abc\nd,7 8\ne,1e999 1\n")
    name = make_collection(c, "bc", dim=2)
    r = run("load", "--collection", name, "--input", p, "--quiet")
    assert r.returncode == 1 and "line 4" in r.stderr and "abc" in r.stderr, r.stderr
    assert c.count(name) == 2
    out = load_json(run, "--collection", name, "--input", p, "--skip-bad")
    assert out["rows_skipped"] == 2 and out["rows_loaded"] == 3, out
    assert sorted(c.get_map(name, list("abcde"))) == ["a", "b", "d"]


def test_npy_wrong_width(run, c, tmp_path):
    p = tmp_path / "w.npy"
    np.save(p, make_rows(1, 5, DIM + 1))
    name = make_collection(c, "nw")
    r = run("load", "--collection", name, "--input", p, "--quiet")
    assert r.returncode == 1 and "columns" in r.stderr, r.stderr
    assert c.count(name) == 0


def test_resume_refuses_changed_input(run, c, tmp_path):
    p = tmp_path / "ch.fvecs"
    rows = [r if i != 2 else r[:3] for i, r in enumerate(make_rows(2, 6, DIM))]
    write_vecs(p, rows)
    name = make_collection(c, "ch")
    assert run("load", "--collection", name, "--input", p, "--quiet").returncode == 1
    os.utime(p, (time.time() + 5, time.time() + 5))
    r = run("load", "--collection", name, "--input", p, "--resume", "--quiet")
    assert r.returncode == 2 and "changed" in r.stderr, r.stderr


# =====================================================================================================================
# load: resume after kill -9 and after SIGINT
# =====================================================================================================================
def big_fvecs(path, n, dim, seed):
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    a = np.empty((n, dim + 1), dtype=np.float32)
    a.view(np.int32)[:, 0] = dim
    a[:, 1:] = x
    a.tofile(path)
    return x


def start_load(quiver_bin, server, path, name, *extra):
    cmd = [quiver_bin, "--addr", server.addr, "load", "--collection", name, "--input", str(path), "--batch", "100",
           "--parallel", "4", "--quiet", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def wait_checkpoint(proc, ck, timeout=60):
    t0 = time.monotonic()
    while not ck.exists():
        assert proc.poll() is None, f"the load ended (exit {proc.returncode}) before writing a checkpoint"
        assert time.monotonic() - t0 < timeout, "no checkpoint within a minute"
        time.sleep(0.005)
    time.sleep(0.15)  # a few more batches acknowledged beyond the checkpoint: they will be re-sent


def read_ckpt(ck):
    return dict(line.split(" ", 1) for line in ck.read_text().splitlines() if " " in line)


@pytest.mark.parametrize("how", ["kill9", "sigint"])
def test_resume_after_interruption_gives_exactly_the_input(run, c, server, quiver_bin, tmp_path, how):
    n = 300_000 if how == "kill9" else 120_000
    dim = 4
    p = tmp_path / "big.fvecs"
    x = big_fvecs(p, n, dim, seed=11 if how == "kill9" else 12)
    ck = Path(str(p) + ".quiver-checkpoint")
    name = make_collection(c, "rs", dim=dim)
    proc = start_load(quiver_bin, server, p, name)
    try:
        wait_checkpoint(proc, ck)
        if how == "kill9":
            proc.kill()
            assert proc.wait(30) == -signal.SIGKILL
        else:
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(60)
            assert rc == 130, f"SIGINT: exit {rc}, want 130\n{proc.stderr.read().decode()[-2000:]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    state = read_ckpt(ck)
    row = int(state["row"])
    assert int(state["offset"]) == row * (4 + 4 * dim)
    before = c.count(name)
    assert 0 < row <= before < n, f"interrupted mid-load: checkpoint row {row}, {before} rows in, {n} in the file"

    out = load_json(run, "--collection", name, "--input", p, "--batch", "100", "--parallel", "4", "--resume")
    assert out["complete"] and out["resumed_from_row"] == row
    assert out["rows_loaded"] == n - row and out["rows_skipped"] == 0
    assert c.count(name) == n, "count after resume != rows in the input (ids are keys: no duplicates possible)"
    assert not ck.exists()
    rnd = random.Random(5)
    spot = sorted(set(rnd.randrange(n) for _ in range(300)) | {0, row - 1, row, row + 1, n - 1})
    assert_vectors(c, name, [str(i) for i in spot], x[spot])


# =====================================================================================================================
# compact
# =====================================================================================================================
def cli_at(quiver_bin, addr, *args, env=None, timeout=120):
    """`quiver --addr ADDR args...` against a server other than the module's (text, never raises on exit status)."""
    e = {k: v for k, v in os.environ.items() if k != "QUIVER_API_KEY"}
    e.update(env or {})
    return subprocess.run([quiver_bin, "--addr", addr] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=e, stdin=subprocess.DEVNULL)


def test_compact_wait_purges_deleted_rows(make_server, quiver_bin):
    # small segments, no automatic policy: the only compaction is the one the CLI asks for
    srv = make_server(seal_rows=500, extra=["--compact-deleted-ratio", "0", "--compact-small-segments", "0",
                                            "--index-min-rows", "100"]).start()
    c = srv.client
    n, dim = 3000, 8
    x = make_rows(77, n, dim)
    ok(cli_at(quiver_bin, srv.addr, "create", "cmp", "--dim", dim, "--metric", "l2"))
    c.upsert_all("cmp", [point(str(i), x[i]) for i in range(n)], batch=500)
    gone = [str(i) for i in range(n) if i % 3 != 0]  # two thirds deleted
    assert c.delete("cmp", gone) == len(gone)
    c.flush("cmp")
    segs = c.describe("cmp").segments
    assert len(segs) >= 6 and sum(s.deleted_rows for s in segs) == len(gone)
    live = n - len(gone)
    assert c.count("cmp") == live
    queries = make_rows(78, 5, dim)
    before = [[(h.id, h.score) for h in c.search("cmp", q, 10, exact=True).hits] for q in queries]

    out = json.loads(ok(cli_at(quiver_bin, srv.addr, "--json", "compact", "cmp", "--target-rows", 100000,
                               "--wait")).stdout)
    assert out["collection"] == "cmp" and out["job_id"] > 0 and out["input_segments"] >= 2
    job = out["job"]
    assert job["id"] == out["job_id"] and job["state"] == "DONE" and job["collection"] == "cmp"
    assert job["rows_in"] == sum(s.rows for s in segs if s.id in job["input_segments"])
    assert job["rows_out"] == job["rows_in"] - sum(s.deleted_rows for s in segs if s.id in job["input_segments"])
    assert job["automatic"] is False and job["progress"] == pytest.approx(1.0)
    assert job["finished_unix_ms"] >= job["started_unix_ms"] > 0

    # counts and results unchanged, the deleted rows gone from the segments
    assert c.count("cmp") == live
    assert json.loads(ok(cli_at(quiver_bin, srv.addr, "--json", "count", "cmp")).stdout)["count"] == live
    after = [[(h.id, h.score) for h in c.search("cmp", q, 10, exact=True).hits] for q in queries]
    assert after == before
    segs2 = c.describe("cmp").segments
    assert sum(s.rows - s.deleted_rows for s in segs2) == live
    assert sum(s.deleted_rows for s in segs2) < len(gone)
    assert all(s.id not in job["input_segments"] for s in segs2)

    # stats shows the job, agreeing with Admin.Stats
    st = json.loads(ok(cli_at(quiver_bin, srv.addr, "--json", "stats")).stdout)
    want = {j.id: j for j in c.stats().compactions}
    mine = [j for j in st["compactions"] if j["id"] == job["id"]]
    assert len(mine) == 1 and mine[0]["state"] == "DONE"
    w = want[job["id"]]
    assert (mine[0]["rows_in"], mine[0]["rows_out"], mine[0]["input_segments"], mine[0]["output_segment"]) == \
        (w.rows_in, w.rows_out, list(w.input_segments), w.output_segment)
    human = ok(cli_at(quiver_bin, srv.addr, "stats")).stdout
    assert "compactions" in human and "DONE" in human and str(job["rows_out"]) in human, human

    # the human form of --wait prints the rows in and out; an unknown collection is NOT_FOUND
    c.delete("cmp", [str(i) for i in range(0, 300, 3)])
    c.flush("cmp")
    r = ok(cli_at(quiver_bin, srv.addr, "compact", "cmp", "--wait"))
    assert ("rows in" in r.stdout and "DONE" in r.stdout) or "nothing to compact" in r.stdout, r.stdout
    assert c.count("cmp") == live - 100
    r = cli_at(quiver_bin, srv.addr, "compact", "no_such")
    assert r.returncode == 1 and "NOT_FOUND" in r.stderr, r.stderr


# =====================================================================================================================
# API keys
# =====================================================================================================================
KEYS = {"read": "r" * 24, "write": "w" * 24, "admin": "a" * 24}


def test_api_keys(make_server, quiver_bin, tmp_path):
    kf = tmp_path / "keys"
    kf.write_text("".join(f"{k} {role}\n" for role, k in KEYS.items()))
    srv = make_server(extra=["--api-keys", str(kf)]).start()
    a = srv.addr

    r = cli_at(quiver_bin, a, "collections")
    assert r.returncode == 1 and "UNAUTHENTICATED" in r.stderr and "--api-key" in r.stderr, r.stderr
    r = cli_at(quiver_bin, a, "--api-key", "x" * 24, "collections")
    assert r.returncode == 1 and "UNAUTHENTICATED" in r.stderr, r.stderr
    ok(cli_at(quiver_bin, a, "health"))  # public
    r = cli_at(quiver_bin, a, "--api-key", KEYS["write"], "create", "k", "--dim", "4", "--metric", "l2")
    assert r.returncode == 1 and "PERMISSION_DENIED" in r.stderr, r.stderr
    ok(cli_at(quiver_bin, a, "create", "k", "--dim", "4", "--metric", "l2", "--api-key", KEYS["admin"]))

    x = make_rows(9, 500, 4)
    p = tmp_path / "k.npy"
    np.save(p, x)
    r = cli_at(quiver_bin, a, "--api-key", KEYS["read"], "load", "--collection", "k", "--input", p, "--quiet")
    assert r.returncode == 1 and "PERMISSION_DENIED" in r.stderr, r.stderr
    r = cli_at(quiver_bin, a, "delete", "k", "0", env={"QUIVER_API_KEY": KEYS["read"]})
    assert r.returncode == 1 and "PERMISSION_DENIED" in r.stderr, r.stderr
    # the key from the environment
    out = json.loads(ok(cli_at(quiver_bin, a, "--json", "load", "--collection", "k", "--input", p, "--quiet",
                               env={"QUIVER_API_KEY": KEYS["write"]})).stdout)
    assert out["complete"] and out["rows_loaded"] == 500
    # --api-key overrides the environment
    r = cli_at(quiver_bin, a, "--api-key", "x" * 24, "count", "k", env={"QUIVER_API_KEY": KEYS["read"]})
    assert r.returncode == 1 and "UNAUTHENTICATED" in r.stderr, r.stderr
    cnt = json.loads(ok(cli_at(quiver_bin, a, "--json", "count", "k", "--api-key", KEYS["read"])).stdout)["count"]
    assert cnt == 500
    s = json.loads(ok(cli_at(quiver_bin, a, "--json", "search", "k", "--vector", ",".join(map(str, x[7])), "--k", "1",
                             "--exact", env={"QUIVER_API_KEY": KEYS["read"]})).stdout)
    assert s["hits"][0]["id"] == "7"
    r = cli_at(quiver_bin, a, "--api-key", KEYS["write"], "compact", "k")
    assert r.returncode == 1 and "PERMISSION_DENIED" in r.stderr, r.stderr
    ok(cli_at(quiver_bin, a, "--api-key", KEYS["admin"], "flush", "k"))
    ok(cli_at(quiver_bin, a, "--api-key", KEYS["admin"], "compact", "k"))
    ok(cli_at(quiver_bin, a, "--api-key", KEYS["read"], "stats"))


# =====================================================================================================================
# TLS
# =====================================================================================================================
def wait_cli_health(quiver_bin, addr, *tls, timeout=30):
    t0 = time.monotonic()
    while True:
        r = cli_at(quiver_bin, addr, "--timeout", "3", *tls, "--json", "health")
        if r.returncode == 0:
            return json.loads(r.stdout)
        assert time.monotonic() - t0 < timeout, f"no TLS health answer: {r.stderr}"
        time.sleep(0.3)


@pytest.mark.parametrize("mutual", [False, True])
def test_tls(quiverd, quiver_bin, tmp_path, mutual):
    make_certs(tmp_path)
    proc, port = start_tls(quiverd, tmp_path, ["--tls-client-ca", str(tmp_path / "ca.pem")] if mutual else [])
    a = f"127.0.0.1:{port}"
    ca = ["--tls-ca", tmp_path / "ca.pem", "--tls-server-name", "localhost"]
    if mutual:
        ca += ["--tls-cert", tmp_path / "client.pem", "--tls-key", tmp_path / "client.key"]
    try:
        assert wait_cli_health(quiver_bin, a, *ca)["status"] == "SERVING"
        ok(cli_at(quiver_bin, a, *ca, "create", "t", "--dim", "2", "--metric", "l2"))
        assert json.loads(ok(cli_at(quiver_bin, a, *ca, "--json", "collections")).stdout)["collections"][0]["name"] \
            == "t"
        # the same options after the command name
        ok(cli_at(quiver_bin, a, "describe", "t", *ca))

        # plaintext to a TLS port fails
        r = cli_at(quiver_bin, a, "--timeout", "5", "health")
        assert r.returncode == 1 and "UNAVAILABLE" in r.stderr, r.stderr
        # a certificate from another CA is refused
        other = tmp_path / "other"
        other.mkdir()
        make_certs(other)
        bad = ["--tls-ca", other / "ca.pem", "--tls-server-name", "localhost"] + ca[4:]
        r = cli_at(quiver_bin, a, "--timeout", "5", *bad, "health")
        assert r.returncode == 1 and "UNAVAILABLE" in r.stderr, r.stderr
        # the certificate names localhost and 127.0.0.1, not this
        r = cli_at(quiver_bin, a, "--timeout", "5", *ca[:2], "--tls-server-name", "wrong.example", *ca[4:], "health")
        assert r.returncode == 1 and "UNAVAILABLE" in r.stderr, r.stderr
        if mutual:  # no client certificate: the handshake is refused
            r = cli_at(quiver_bin, a, "--timeout", "5", *ca[:4], "health")
            assert r.returncode == 1, r.stderr
        else:  # a TLS client against a plaintext server fails too
            plain = Server(binary=quiverd)
            try:
                plain.start()
                r = cli_at(quiver_bin, plain.addr, "--timeout", "5", *ca, "health")
                assert r.returncode == 1 and "UNAVAILABLE" in r.stderr, r.stderr
                ok(cli_at(quiver_bin, plain.addr, "health"))
            finally:
                plain.cleanup()
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def test_text_path(run, c, tmp_path):
    """The CLI's text path on a collection with the server's model: create --embedding-model, describe shows it,
    text-only jsonl and csv loads (batches cut by the server's 1 MiB / 1000-text limits: 300 passages of ~4 KiB are
    1.2 MiB), search --text, embed, and --id-prefix/--id-offset for record-number ids."""
    name = uniq("txt")
    r = ok(run("--json", "create", name, "--embedding-model", "all-MiniLM-L6-v2", "--field", "src:keyword"))
    d = json.loads(ok(run("--json", "describe", name)).stdout)
    assert d["embedding_model"] == "all-MiniLM-L6-v2" and d["dim"] == 384 and d["metric"] == "COSINE", d
    assert "all-MiniLM-L6-v2" in ok(run("describe", name)).stdout
    words = ["river", "mountain", "violin", "satellite", "bakery", "glacier", "orchid", "compiler"]
    p = tmp_path / "passages.jsonl"
    with open(p, "w") as f:
        for i in range(300):
            w = words[i % len(words)]
            f.write(json.dumps({"id": f"p{i}", "text": f"a passage about the {w} " + "filler words " * 320,
                                "src": w}) + "\n")
    r = ok(run("--json", "load", "--collection", name, "--input", p, "--batch", "1000", "--quiet"))
    assert json.loads(r.stdout)["rows_loaded"] == 300
    assert c.count(name) == 300
    hits = json.loads(ok(run("--json", "search", name, "--text", "violin", "--k", "3", "--with-attributes")).stdout)
    assert [h["attributes"]["src"] for h in hits["hits"]][0] == "violin", hits
    # csv: no vector columns, a text column
    q = tmp_path / "more.csv"
    q.write_text("id,text,src\nc1,the history of the bakery,bakery\nc2,a glacier in the mountains,glacier\n")
    ok(run("load", "--collection", name, "--input", q, "--quiet"))
    assert c.count(name) == 302
    e = json.loads(ok(run("--json", "embed", "hello world", "violin")).stdout)
    assert e["dim"] == 384 and len(e["vectors"]) == 2 and len(e["vectors"][0]) == 384
    # a whitespace-only text is a bad record, refused by the server
    b = tmp_path / "blank.jsonl"
    b.write_text(json.dumps({"id": "blank", "text": "   "}) + "\n")
    r = run("load", "--collection", name, "--input", b, "--quiet")
    assert r.returncode == 1 and "no words" in r.stderr, r.stderr
    # record-number ids with a prefix and an offset: a second file does not replace the first
    vname = make_collection(c, "ids", dim=2)
    f1, f2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    f1.write_text('{"vector": [1, 2]}\n{"vector": [3, 4]}\n')
    f2.write_text('{"vector": [5, 6]}\n{"vector": [7, 8]}\n')
    ok(run("load", "--collection", vname, "--input", f1, "--quiet"))
    ok(run("load", "--collection", vname, "--input", f2, "--id-prefix", "b-", "--id-offset", "10", "--quiet"))
    assert sorted(c.get_map(vname, ["0", "1", "b-10", "b-11"])) == ["0", "1", "b-10", "b-11"]
    assert c.count(vname) == 4
