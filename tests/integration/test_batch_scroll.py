"""SearchBatch, Scroll and backpressure (--max-inflight)."""
import threading

import grpc
import numpy as np
import pytest

from qvtest import pb, point, eq

DIM = 12


@pytest.fixture
def loaded(make_server):
    srv = make_server(seal_rows=700).start()
    c = srv.client
    c.create("b", DIM, metric=pb.METRIC_COSINE, fields=[("g", pb.FIELD_TYPE_INT64)])
    vecs = np.random.default_rng(4).standard_normal((2500, DIM)).astype(np.float32)
    c.upsert_all("b", [point(f"id{i:05d}", vecs[i], {"g": i % 7}) for i in range(2500)], batch=500)
    c.delete("b", [f"id{i:05d}" for i in range(0, 2500, 10)])
    return srv, c, vecs


def test_search_batch_equals_single_searches(loaded):
    srv, c, vecs = loaded
    qs = np.random.default_rng(5).standard_normal((25, DIM)).astype(np.float32)
    f = eq("g", 3)
    req = pb.SearchBatchRequest(collection="b", k=7, vectors=[pb.Vector(values=q.tolist()) for q in qs],
                                with_attributes=True)
    req.filter.CopyFrom(f.pb)
    out = c.q.SearchBatch(req)
    assert len(out.results) == len(qs)
    for q, res in zip(qs, out.results):
        single = c.search("b", q, 7, flt=f, with_attributes=True)
        assert [h.id for h in res.hits] == [h.id for h in single.hits]
        assert all(h.attributes["g"].int_value == 3 for h in res.hits)
    bad = [pb.SearchBatchRequest(collection="b", k=3),
           pb.SearchBatchRequest(collection="b", k=3, vectors=[pb.Vector(values=[1.0] * DIM)] * 1001),
           pb.SearchBatchRequest(collection="b", k=0, vectors=[pb.Vector(values=[1.0] * DIM)])]
    for r in bad:
        with pytest.raises(grpc.RpcError) as e:
            c.q.SearchBatch(r)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    r = pb.SearchBatchRequest(collection="b", k=3, vectors=[pb.Vector(values=[1.0] * DIM)] * 3 +
                              [pb.Vector(values=[1.0] * (DIM - 1))])
    with pytest.raises(grpc.RpcError) as e:
        c.q.SearchBatch(r)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "query 3" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        c.q.SearchBatch(pb.SearchBatchRequest(collection="nope", k=3, vectors=[pb.Vector(values=[1.0] * DIM)]))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_scroll_pages_every_match_once_in_id_order(loaded):
    srv, c, vecs = loaded
    want = sorted(f"id{i:05d}" for i in range(2500) if i % 10 and i % 7 == 2)
    got, cursor, pages = [], "", 0
    while True:
        req = pb.ScrollRequest(collection="b", limit=37, cursor=cursor, with_vectors=(pages == 0))
        req.filter.CopyFrom(eq("g", 2).pb)
        r = c.q.Scroll(req)
        got += [p.id for p in r.points]
        if pages == 0:
            assert all(len(p.vector) == DIM for p in r.points)
        pages += 1
        if not r.next_cursor:
            break
        assert r.next_cursor == r.points[-1].id
        cursor = r.next_cursor
    assert got == want and pages == -(-len(want) // 37)
    everything = []
    cursor = ""
    while True:
        r = c.q.Scroll(pb.ScrollRequest(collection="b", limit=1000, cursor=cursor))
        everything += [p.id for p in r.points]
        cursor = r.next_cursor
        if not cursor:
            break
    assert everything == sorted(f"id{i:05d}" for i in range(2500) if i % 10)
    for bad in (pb.ScrollRequest(collection="b", limit=10001), pb.ScrollRequest(collection="b", cursor="x" * 300)):
        with pytest.raises(grpc.RpcError) as e:
            c.q.Scroll(bad)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_backpressure_refuses_beyond_max_inflight(make_server):
    srv = make_server(extra=["--max-inflight", "2", "--threads", "4"]).start()
    c = srv.client
    c.create("bp", 256)
    vecs = np.random.default_rng(6).standard_normal((40000, 256)).astype(np.float32)
    c.upsert_all("bp", [point(str(i), vecs[i]) for i in range(40000)], batch=2000)
    codes = []
    lock = threading.Lock()

    def hammer():
        cl = srv.new_client()
        for _ in range(6):
            try:
                cl.search("bp", vecs[0], 10, exact=True)
                code = grpc.StatusCode.OK
            except grpc.RpcError as e:
                code = e.code()
                if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    assert "max-inflight" in e.details()
            with lock:
                codes.append(code)

    ts = [threading.Thread(target=hammer) for _ in range(24)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, set(codes)
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) > 0 and codes.count(grpc.StatusCode.OK) > 0
    assert c.count("bp") == 40000  # still serving afterwards
