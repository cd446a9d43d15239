"""Grouped search (SearchRequest.group_by / group_size, query/group.h): the hits of the k best groups, at most
group_size per group, best first, checked against a reference computed here from exact scores; through the indexes;
SearchBatch; bad requests; and a coordinator over 2 shards against a standalone server with the same points."""
import json
import subprocess

import numpy as np
import pytest

import qvtest as t
import test_cluster as tc
from qvtest import SC, pb, point, eq, expect_error

DIM = 8
DOCS = 40


def points(n=1500, seed=9):
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
    docs = rng.integers(0, DOCS, n)
    pts = []
    for i in range(n):
        attrs = {"n": int(i)}
        if i % 13:  # every 13th point has no doc: left out of grouped answers
            attrs["doc"] = f"d{docs[i]:02d}"
        pts.append(point(f"p{i:05d}", vecs[i], attrs))
    return vecs, pts


def create(c, name="g"):
    c.q.CreateCollection(pb.CreateCollectionRequest(
        name=name, dim=DIM, metric=pb.METRIC_L2, fields=[pb.FieldSchema(name="doc", type=pb.FIELD_TYPE_KEYWORD),
                                                         pb.FieldSchema(name="n", type=pb.FIELD_TYPE_INT64)]))


def reference(vecs, pts, q, k, size, keep=lambda i: True):
    """ids of the expected answer: by exact L2 (ties by id), the first k groups' hits, at most size each."""
    d = ((vecs - q) ** 2).sum(axis=1)
    order = sorted(range(len(pts)), key=lambda i: (d[i], pts[i].id))
    groups, out = {}, []
    for i in order:
        g = pts[i].attributes["doc"].keyword_value if "doc" in pts[i].attributes else None
        if g is None or not keep(i):
            continue
        if g not in groups:
            if len(groups) == k:
                continue
            groups[g] = 0
        if groups[g] < size:
            groups[g] += 1
            out.append((pts[i].id, g))
    return out


def search(c, q, k, size, name="g", exact=True, flt=None, **kw):
    req = pb.SearchRequest(collection=name, vector=q.tolist(), k=k, group_by="doc", group_size=size, **kw)
    req.params.exact = exact
    if flt is not None:
        req.filter.CopyFrom(flt.pb)
    return c.q.Search(req)


@pytest.fixture
def loaded(make_server):
    srv = make_server(seal_rows=400, extra=["--index-min-rows", "100"]).start()  # sealed segments get a graph
    c = srv.client
    create(c)
    vecs, pts = points()
    c.upsert_all("g", pts, batch=500)
    return srv, c, vecs, pts


def test_grouped_exact_matches_the_reference(loaded):
    _srv, c, vecs, pts = loaded
    qs = np.random.default_rng(3).standard_normal((20, DIM)).astype(np.float32)
    for q in qs:
        for k, size in ((5, 1), (5, 3), (1, 4), (30, 2), (DOCS + 10, 1)):  # more groups than exist: all of them
            r = search(c, q, k, size)
            got = [(h.id, h.group) for h in r.hits]
            assert got == reference(vecs, pts, q, k, size), (k, size)
            assert all(a.score <= b.score for a, b in zip(r.hits, r.hits[1:]))
        # a filter applies before grouping
        r = search(c, q, 4, 2, flt=eq("doc", "d07"))
        assert [(h.id, h.group) for h in r.hits] == reference(
            vecs, pts, q, 4, 2, keep=lambda i: pts[i].attributes.get("doc") is not None and
            pts[i].attributes["doc"].keyword_value == "d07")
    # group_size 0 is 1; with_attributes shows the same value as Hit.group
    r = search(c, qs[0], 6, 0, with_attributes=True)
    assert len({h.group for h in r.hits}) == len(r.hits) == 6
    assert all(h.attributes["doc"].keyword_value == h.group for h in r.hits)


def test_grouped_through_indexes_and_batch(loaded):
    srv, c, vecs, pts = loaded
    c.admin.Flush(pb.FlushRequest(collection="g"))
    def segments():
        return c.q.DescribeCollection(pb.DescribeCollectionRequest(name="g")).collection.segments
    assert t.wait_for(lambda: all(s.index_state == pb.INDEX_STATE_READY for s in segments()
                                  if s.state == pb.SEGMENT_STATE_SEALED), timeout=60)
    assert sum(s.index_state == pb.INDEX_STATE_READY for s in segments()) >= 3
    qs = np.random.default_rng(4).standard_normal((15, DIM)).astype(np.float32)
    found = want = 0
    for q in qs:
        r = search(c, q, 5, 3, exact=False)
        groups = [h.group for h in r.hits]
        assert len(set(groups)) <= 5 and all(groups.count(g) <= 3 for g in groups)
        ref = reference(vecs, pts, q, 5, 3)
        found += len({h.id for h in r.hits} & {i for i, _ in ref})
        want += len(ref)
    assert found >= 0.9 * want, (found, want)
    # SearchBatch groups each query as Search does
    req = pb.SearchBatchRequest(collection="g", k=4, group_by="doc", group_size=2,
                                vectors=[pb.Vector(values=q.tolist()) for q in qs])
    req.params.exact = True
    for q, res in zip(qs, c.q.SearchBatch(req).results):
        assert [(h.id, h.group) for h in res.hits] == reference(vecs, pts, q, 4, 2)


def test_grouped_bad_requests(loaded):
    _srv, c, _vecs, _pts = loaded
    q = [0.0] * DIM
    for req, words in [
        (pb.SearchRequest(collection="g", vector=q, k=5, group_by="n"), ["'n'", "KEYWORD"]),
        (pb.SearchRequest(collection="g", vector=q, k=5, group_by="nope"), ["'nope'"]),
        (pb.SearchRequest(collection="g", vector=q, k=5, group_size=2), ["group_size", "group_by"]),
        (pb.SearchRequest(collection="g", vector=q, k=5000, group_by="doc", group_size=3), ["15000", "10000"]),
    ]:
        expect_error(lambda: c.q.Search(req), SC.INVALID_ARGUMENT, words)


def group_order(hits):
    """The groups of a grouped answer, in the order they first appear."""
    return list(dict.fromkeys(h.group for h in hits))


def test_grouped_through_a_coordinator(quiverd, make_server):
    """A coordinator over 2 shards answers grouped searches exactly as a standalone server with the same points,
    larger groups included (a second round asks the shards for the chosen groups' hits), in Search and SearchBatch."""
    vecs, pts = points(1200, seed=11)
    alone = make_server().start().client
    create(alone)
    alone.upsert_all("g", pts, batch=400)
    with tc.static_cluster(quiverd, n=2) as (coord, _shards):
        cc = t.Client(coord.addr)
        create(cc)
        cc.upsert_all("g", pts, batch=400)
        for q in np.random.default_rng(6).standard_normal((12, DIM)).astype(np.float32):
            for k, size in ((5, 1), (8, 3), (3, 6)):
                a, b = search(alone, q, k, size), search(cc, q, k, size)
                assert [(h.id, h.group) for h in b.hits] == [(h.id, h.group) for h in a.hits], (k, size)
                assert group_order(b.hits) == group_order(a.hits)
        qs = np.random.default_rng(7).standard_normal((5, DIM)).astype(np.float32)
        req = pb.SearchBatchRequest(collection="g", k=4, group_by="doc", group_size=3, with_attributes=True,
                                    vectors=[pb.Vector(values=q.tolist()) for q in qs])
        req.params.exact = True
        for q, res in zip(qs, cc.q.SearchBatch(req).results):
            want = search(alone, q, 4, 3, with_attributes=True)
            assert [(h.id, h.group) for h in res.hits] == [(h.id, h.group) for h in want.hits]
            assert all(h.attributes["doc"].keyword_value == h.group for h in res.hits)
        # a filter message with nothing set is no filter, in the second round too
        q = np.zeros(DIM, np.float32)
        empty = pb.SearchRequest(collection="g", vector=q.tolist(), k=4, group_by="doc", group_size=2,
                                 filter=pb.Filter())
        empty.params.exact = True
        assert empty.HasField("filter")
        want = search(alone, q, 4, 2).hits
        assert [(h.id, h.group) for h in cc.q.Search(empty).hits] == [(h.id, h.group) for h in want]
        expect_error(lambda: cc.q.Search(pb.SearchRequest(collection="g", vector=[0.0] * DIM, k=3, group_by="n")),
                     SC.INVALID_ARGUMENT, ["KEYWORD"])


def test_grouped_from_the_cli(loaded, quiver_bin):
    """quiver search --group-by / --group-size: the same hits and groups as gRPC, in --json and in the table."""
    srv, c, _vecs, _pts = loaded
    q = [0.1 * i for i in range(DIM)]
    want = search(c, np.array(q, np.float32), 4, 2)
    base = [quiver_bin, "--addr", srv.addr]
    args = ["search", "g", "--vector", ",".join(map(str, q)), "--k", "4", "--exact", "--group-by", "doc",
            "--group-size", "2"]
    r = subprocess.run(base + ["--json"] + args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)["hits"]
    assert [(h["id"], h["group"]) for h in got] == [(h.id, h.group) for h in want.hits]
    r = subprocess.run(base + args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.count("group ") == len(want.hits), r.stdout
    r = subprocess.run(base + ["search", "g", "--vector", ",".join(map(str, q)), "--group-by", "n"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "KEYWORD" in r.stderr, (r.returncode, r.stderr)


def test_grouped_by_a_dynamic_attribute(make_server):
    """In a collection with dynamic attributes, group_by may name an undeclared key: points whose value there is a
    keyword are grouped by it; others (a number, no value) are left out."""
    c = make_server().start().client
    c.q.CreateCollection(pb.CreateCollectionRequest(name="d", dim=DIM, metric=pb.METRIC_L2, dynamic_attributes=True))
    rng = np.random.default_rng(21)
    vecs = rng.standard_normal((600, DIM)).astype(np.float32)
    pts = []
    for i in range(600):
        attrs = {"doc": f"d{i % 25:02d}"} if i % 5 else ({"doc": i} if i % 10 else {})
        pts.append(point(f"p{i:05d}", vecs[i], attrs))
    c.upsert_all("d", pts, batch=300)
    for q in rng.standard_normal((8, DIM)).astype(np.float32):
        r = c.q.Search(pb.SearchRequest(collection="d", vector=q.tolist(), k=6, group_by="doc", group_size=2))
        assert [(h.id, h.group) for h in r.hits] == reference(
            vecs, pts, q, 6, 2, keep=lambda i: pts[i].attributes["doc"].WhichOneof("kind") == "keyword_value")
    expect_error(lambda: c.q.Search(pb.SearchRequest(collection="d", vector=[0.0] * DIM, k=3, group_by="bad key")),
                 SC.INVALID_ARGUMENT, ["'bad key'"])
