"""Dynamic attributes (CreateCollectionRequest.dynamic_attributes): points carry attributes nobody declared, typed
by their values; they are stored, returned with their types, filterable (numbers with numbers, keywords with a
keyword or a list element, booleans with booleans), and survive seals, compaction, kill -9 and a cluster. Declared
fields keep their types; a collection without the option still refuses undeclared keys."""
import time

from qvtest import (L2, INT64, SC, all_, any_, any_of, attrs_of, eq, expect_error, negate, pb, point, rng, typed)

DIM = 4

# id -> attributes: declared "year" (INT64) and dynamic keys of every type, some keys of two types
POINTS = {
    "a": {"year": 2020, "source": "wiki", "page": 3, "score": 0.5, "draft": True, "tags": ["x", "y"]},
    "b": {"year": 2021, "source": "news", "page": 3.0, "draft": False, "tags": ["y"]},
    "c": {"source": "wiki", "page": 7, "score": 2.25},
    "d": {"year": 2019, "page": "7", "tags": []},  # page as a keyword here
    "e": {},
    "f": {"source": "blog", "score": -1.0, "draft": True, "lang": "en"},
}


def vec(i):
    return [float(i), 1.0, 0.0, 0.5]


def create(c, name="dyn", dynamic=True):
    c.q.CreateCollection(pb.CreateCollectionRequest(
        name=name, dim=DIM, metric=L2, dynamic_attributes=dynamic,
        fields=[pb.FieldSchema(name="year", type=INT64)], index=pb.IndexParams(kind=pb.INDEX_KIND_FLAT)))


def load(c, name="dyn"):
    c.upsert(name, [point(pid, vec(i), attrs) for i, (pid, attrs) in enumerate(POINTS.items())])


# filter -> the ids it must match (the semantics in the proto's comment)
CASES = [
    (eq("page", 3), {"a", "b"}),              # int matches int and double
    (eq("page", 3.0), {"a", "b"}),
    (eq("page", "7"), {"d"}),                 # a keyword matches only the keyword
    (eq("page", 7), {"c"}),
    (rng("page", gte=3, lt=7), {"a", "b"}),   # ranges compare numbers only
    (rng("score", gt=0), {"a", "c"}),
    (any_of("source", ["wiki", "blog"]), {"a", "c", "f"}),
    (eq("tags", "y"), {"a", "b"}),            # any element of a keyword list
    (eq("draft", True), {"a", "f"}),
    (eq("draft", False), {"b"}),
    (negate(eq("source", "wiki")), {"b", "d", "e", "f"}),  # points without the key pass the negation
    (all_(eq("source", "wiki"), rng("year", gte=2020)), {"a"}),  # declared and dynamic together
    (any_(eq("lang", "en"), eq("year", 2019)), {"d", "f"}),
    (eq("nobody", 1), set()),
]


def check_all(c, name="dyn"):
    got = {p.id: attrs_of(p) for p in c.get(name, list(POINTS), with_vectors=False)}
    assert {k: typed(v) for k, v in got.items()} == {k: typed(v) for k, v in POINTS.items()}
    for flt, want in CASES:
        r = c.search(name, vec(0), 10, flt=flt, with_attributes=True)
        assert {h.id for h in r.hits} == want, flt
        assert c.count(name, flt) == len(want), flt
        for h in r.hits:
            assert typed(attrs_of(h)) == typed(POINTS[h.id])


def test_dynamic_attributes_roundtrip_filters_and_restarts(make_server):
    srv = make_server(seal_rows=2, extra=["--metrics-listen", "off"]).start()  # seals every 2 rows
    c = srv.client
    create(c)
    assert c.describe("dyn").dynamic_attributes
    load(c)
    check_all(c)
    srv.kill9()
    srv.start()
    c = srv.client
    check_all(c)
    c.admin.Compact(pb.CompactRequest(collection="dyn", target_rows=100), timeout=60)
    for _ in range(100):  # compaction runs in the background
        if len(c.describe("dyn").segments) <= 2:
            break
        time.sleep(0.1)
    check_all(c)
    srv.stop()
    srv.start()
    check_all(srv.client)


def test_dynamic_attributes_errors(make_server):
    srv = make_server(extra=["--metrics-listen", "off"]).start()
    c = srv.client
    create(c)
    # a declared field keeps its type
    expect_error(lambda: c.upsert("dyn", [point("p", vec(0), {"year": "2020"})]), SC.INVALID_ARGUMENT, ["year"])
    expect_error(lambda: c.upsert("dyn", [point("p", vec(0), {"k" * 65: 1})]), SC.INVALID_ARGUMENT, ["name"])
    expect_error(lambda: c.upsert("dyn", [point("p", vec(0), {"x": float("nan")})]), SC.INVALID_ARGUMENT,
                 ["finite"])
    expect_error(lambda: c.search("dyn", vec(0), 3, flt=eq("x", ["a", "b"])), SC.INVALID_ARGUMENT, ["list"])
    assert c.count("dyn") == 0  # nothing of a refused upsert was written
    # without the option an undeclared key is refused, as before
    create(c, "fixed", dynamic=False)
    assert not c.describe("fixed").dynamic_attributes
    expect_error(lambda: c.upsert("fixed", [point("p", vec(0), {"source": "wiki"})]), SC.INVALID_ARGUMENT,
                 ["source", "schema"])
    expect_error(lambda: c.search("fixed", vec(0), 3, flt=eq("source", "wiki")), SC.INVALID_ARGUMENT,
                 ["unknown field"])
    # a re-upsert replaces the whole point, dynamic attributes included
    load(c)
    c.upsert("dyn", [point("a", vec(0), {"page": 9})])
    assert attrs_of(c.get("dyn", ["a"])[0]) == {"page": 9}


def test_dynamic_attributes_in_a_cluster(quiverd):
    from test_cluster import static_cluster
    with static_cluster(quiverd) as (coord, shards):
        c = coord.client
        create(c)
        assert c.describe("dyn").dynamic_attributes
        load(c)
        check_all(c)
        expect_error(lambda: c.upsert("dyn", [point("p", vec(0), {"year": "x"})]), SC.INVALID_ARGUMENT, ["year"])


def test_cli_creates_and_loads_dynamic_attributes(make_server, quiver_bin, tmp_path):
    import json
    import subprocess
    srv = make_server(extra=["--metrics-listen", "off"]).start()

    def cli(*args):
        r = subprocess.run([quiver_bin, "--addr", srv.addr, *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    cli("create", "docs", "--dim", "4", "--metric", "l2", "--field", "year:int64", "--dynamic-attributes")
    assert "dynamic" in cli("describe", "docs")
    rows = [{"id": "a", "vector": vec(0), "year": 2020, "source": "wiki", "page": 3, "ok": True, "tags": ["x"]},
            {"id": "b", "vector": vec(1), "score": 0.25, "nested": {"no": 1}, "none": None}]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = subprocess.run([quiver_bin, "--addr", srv.addr, "load", "--collection", "docs", "--input", str(path)],
                         capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "nested" in out.stderr  # the value of no attribute type is left out, with a note
    got = {p.id: attrs_of(p) for p in srv.client.get("docs", ["a", "b"], with_vectors=False)}
    assert typed(got["a"]) == typed({"year": 2020, "source": "wiki", "page": 3, "ok": True, "tags": ["x"]})
    assert typed(got["b"]) == typed({"score": 0.25})
