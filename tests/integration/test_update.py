"""Writes by filter and attribute updates: Delete with a filter and UpdateAttributes (by ids or filter; set and unset,
vectors and text kept), their bad-input contract and limits, atomicity per shard through kill -9 rounds, and the
same through a coordinator."""
import random
import threading
import time


from qvtest import (INT64, KEYWORD, L2, SC, attrs_of, eq, expect_error, filter_pb, pb, point, rng, typed)

DIM = 4


def create(c, name="u", dynamic=True):
    c.q.CreateCollection(pb.CreateCollectionRequest(
        name=name, dim=DIM, metric=L2, dynamic_attributes=dynamic,
        fields=[pb.FieldSchema(name="year", type=INT64), pb.FieldSchema(name="tag", type=KEYWORD)],
        index=pb.IndexParams(kind=pb.INDEX_KIND_FLAT)))


def vec(i):
    return [float(i), 1.0, -0.5, 0.25]


def load(c, n=300, name="u", dynamic=True):
    pts = [point(f"p{i}", vec(i), dict({"year": 2000 + i % 30, "tag": "abc"[i % 3]}, **({"grp": i % 10} if dynamic
                                                                                      else {})), text=f"t{i}")
           for i in range(n)]
    c.upsert_all(name, pts, batch=100)


def update(c, name="u", ids=None, flt=None, set_=None, unset=(), timeout=None):
    req = pb.UpdateAttributesRequest(collection=name, ids=list(ids or []), unset=list(unset))
    if flt is not None:
        req.filter.CopyFrom(filter_pb(flt))
    for k, v in (set_ or {}).items():
        req.set[k].CopyFrom(point("x", [0.0], {k: v}).attributes[k])
    return c.q.UpdateAttributes(req, timeout=timeout).updated


def delete_where(c, flt, name="u"):
    req = pb.DeleteRequest(collection=name)
    req.filter.CopyFrom(filter_pb(flt))
    return c.q.Delete(req).deleted


def check_updates(c, name="u"):
    assert delete_where(c, eq("tag", "a"), name) == 100
    assert delete_where(c, eq("tag", "a"), name) == 0
    assert c.count(name) == 200 and c.get(name, ["p0", "p3"]) == []
    # by ids: set a declared field, unset another, add a dynamic key; vector and text stay
    before = {p.id: p for p in c.get(name, ["p1", "p2", "nope"])}
    assert update(c, name, ids=["p1", "p2", "nope", "p0"], set_={"year": 1999, "note": "x"}, unset=["tag"]) == 2
    after = {p.id: p for p in c.get(name, ["p1", "p2"])}
    for pid in ("p1", "p2"):
        assert list(after[pid].vector) == list(before[pid].vector) and after[pid].text == before[pid].text
        want = dict(attrs_of(before[pid]), year=1999, note="x")
        del want["tag"]
        assert typed(attrs_of(after[pid])) == typed(want)
    # by filter, on a dynamic key, then filters see the new values
    assert update(c, name, flt=rng("year", gte=2025), set_={"recent": True, "grp": "late"}) == \
        c.count(name, rng("year", gte=2025))
    assert c.count(name, eq("recent", True)) == c.count(name, rng("year", gte=2025))
    assert c.count(name, eq("grp", "late")) == c.count(name, rng("year", gte=2025))
    # unsetting what is absent changes nothing but still rewrites the matched points
    assert update(c, name, ids=["p1"], unset=["never"]) == 1
    assert typed(attrs_of(c.get(name, ["p1"])[0]))["year"] == ("int", 1999)


def test_update_and_delete_by_filter(make_server):
    srv = make_server(seal_rows=64, extra=["--metrics-listen", "off"]).start()
    c = srv.client
    create(c)
    load(c)
    check_updates(c)
    srv.kill9()
    srv.start()
    c = srv.client
    assert c.count("u") == 200 and typed(attrs_of(c.get("u", ["p1"])[0]))["year"] == ("int", 1999)
    assert c.count("u", eq("recent", True)) == c.count("u", rng("year", gte=2025))


def test_update_errors(make_server):
    srv = make_server(extra=["--metrics-listen", "off"]).start()
    c = srv.client
    create(c)
    create(c, "fixed", dynamic=False)
    load(c)
    load(c, name="fixed", dynamic=False)
    inv = SC.INVALID_ARGUMENT
    expect_error(lambda: update(c, ids=["p1"], set_={"year": "x"}), inv, ["year"])
    expect_error(lambda: update(c, ids=["p1"]), inv, ["nothing"])
    expect_error(lambda: update(c, ids=["p1"], set_={"year": 1}, unset=["year"]), inv, ["both"])
    expect_error(lambda: update(c, "fixed", ids=["p1"], set_={"note": "x"}), inv, ["note", "dynamic"])
    expect_error(lambda: update(c, ids=["p1"], flt=eq("tag", "a"), set_={"year": 1}), inv, ["ids or a filter"])
    expect_error(lambda: delete_where(c, eq("nope", 1), "fixed"), inv, ["unknown field"])
    req = pb.DeleteRequest(collection="u", ids=["p1"])
    req.filter.CopyFrom(filter_pb(eq("tag", "a")))
    expect_error(lambda: c.q.Delete(req), inv, ["ids or a filter"])
    expect_error(lambda: update(c, "ghost", ids=["p1"], set_={"year": 1}), SC.NOT_FOUND, ["ghost"])
    # an empty filter matches every point, as for Count (it once crashed a Delete: a NULL filter re-checked)
    req = pb.DeleteRequest(collection="fixed")
    req.filter.SetInParent()
    assert c.q.Delete(req).deleted == 300 and c.count("fixed") == 0
    assert c.count("u") == 300 and typed(attrs_of(c.get("u", ["p1"])[0]))["year"] == ("int", 2001)  # untouched
    # more matches than one request may change: refused whole
    c.upsert_all("u", [point(f"m{i}", vec(i), {"tag": "many"}) for i in range(10001)], batch=5000)
    expect_error(lambda: update(c, flt=eq("tag", "many"), set_={"year": 1}), SC.RESOURCE_EXHAUSTED, ["10000"])
    assert c.count("u", rng("year", lte=1)) == 0


def test_updates_are_atomic_through_kill9(make_server):
    """Each UpdateAttributes by filter sets v = i on every point of one group (one WAL record); kill -9 mid-stream,
    5 rounds: afterwards every group's points share one v, at least the last acknowledged for that group."""
    srv = make_server(seal_rows=500, extra=["--metrics-listen", "off"]).start()
    c = srv.client
    create(c)
    c.upsert_all("u", [point(f"p{i}", vec(i), {"grp": i % 10, "v": -1}) for i in range(2000)], batch=1000)
    acked = {g: -1 for g in range(10)}
    seq = 0
    for rnd in range(5):
        stop = threading.Event()

        def writer():
            nonlocal seq
            cl = srv.new_client()
            while not stop.is_set():
                seq += 1
                i, g = seq, seq % 10
                try:
                    update(cl, flt=eq("grp", g), set_={"v": i}, timeout=10)
                    acked[g] = max(acked[g], i)
                except Exception:
                    return
        t = threading.Thread(target=writer)
        t.start()
        time.sleep(random.uniform(0.3, 1.0))
        srv.kill9()
        stop.set()
        t.join()
        srv.start()
        c = srv.client
        pts = c.get_map("u", [f"p{i}" for i in range(2000)], with_vectors=False)
        assert len(pts) == 2000
        for g in range(10):
            vs = {attrs_of(p)["v"] for pid, p in pts.items() if int(pid[1:]) % 10 == g}
            assert len(vs) == 1, (rnd, g, sorted(vs)[:5])
            assert vs.pop() >= acked[g], (rnd, g, acked[g])


def test_update_and_delete_through_a_coordinator(quiverd):
    from test_cluster import static_cluster
    with static_cluster(quiverd) as (coord, shards):
        c = coord.client
        create(c)
        load(c)
        assert all(s.client.count("u") > 0 for s in shards)
        check_updates(c)


def test_cli_update_and_delete_by_filter(make_server, quiver_bin):
    import json
    import subprocess
    srv = make_server(extra=["--metrics-listen", "off"]).start()
    c = srv.client
    create(c)
    load(c)

    def cli(*args):
        r = subprocess.run([quiver_bin, "--addr", srv.addr, "--json", *args], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    assert cli("update", "u", "p1", "p2", "--set", '{"year": 1990, "tags": ["x", "y"]}', "--unset", "tag") == \
        {"collection": "u", "updated": 2}
    assert typed(attrs_of(c.get("u", ["p1"])[0])) == typed({"year": 1990, "tags": ["x", "y"], "grp": 1})
    assert cli("update", "u", "--filter", '{"field": "tag", "eq": "b"}', "--set", '{"flag": true}')["updated"] == 99
    assert c.count("u", eq("flag", True)) == 99
    assert cli("delete", "u", "--filter", '{"field": "flag", "eq": true}') == {"collection": "u", "deleted": 99}
    assert c.count("u") == 201
    r = subprocess.run([quiver_bin, "--addr", srv.addr, "update", "u", "p3"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0 and "nothing to change" in r.stderr
