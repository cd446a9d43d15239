"""Quiver API integration tests against a real quiverd (issue 2: the core contract).

One server for most of the module (--seal-rows 500, so that data sits in sealed segments and the growing segment at
once); the restart tests start their own. Every expectation is computed here: exact top-k with NumPy in float64, filter
matches with a Python predicate built from the same expression as the protobuf filter (qvtest.Flt).
"""
import itertools
import math
import threading
import zlib

import numpy as np
import pytest

from qvtest import (BOOL, COSINE, DOUBLE, GROWING, INT64, IP, KEYWORD, KEYWORDS, L2, SC, SEALED, Server, all_,
                    any_, any_of, attrs_of, check_topk, eq, expect_error, negate, pb, point, point_ref, rng,
                    segment_summary, typed, unit, vec_of, wait_for)

SEAL_ROWS = 500
CATS = ["news", "wiki", "code", "mail", "chat"]
TAGS = ["a", "b", "c", "d", "e", "f"]
# distinctive field names, so that "the message names the field" means something
FIELDS = [("year", INT64), ("price", DOUBLE), ("category", KEYWORD), ("active", BOOL), ("tags", KEYWORDS)]
_names = itertools.count()


def uniq(prefix):
    return f"{prefix}_{next(_names)}"


def std_attrs(i):
    tags = [TAGS[i % 6]] if i % 4 == 0 else sorted([TAGS[i % 6], TAGS[(i + 3) % 6]])
    return {"year": i, "price": (i % 97) / 4.0, "category": CATS[i % 5], "active": i % 3 == 0, "tags": tags}


def replaced_attrs(i):
    return {"year": 100000 + i, "price": -1.5 - i, "category": "replaced", "active": i % 3 != 0, "tags": ["z"]}


def std_text(i):
    return f"chunk {i}: caf\u00e9 \u2713" if i % 2 == 0 else ""


@pytest.fixture(scope="module")
def server(quiverd):
    s = Server(binary=quiverd, seal_rows=SEAL_ROWS)
    try:
        s.start()
        yield s
    finally:
        s.cleanup()


def _drop_quietly(server, name):
    """Fixture teardown: a dead server must not hide the failure that killed it."""
    if server.running:
        try:
            server.client.q.DropCollection(pb.DropCollectionRequest(name=name))
        except Exception as e:  # noqa: BLE001
            print(f"teardown: DropCollection({name}) failed: {e}")


@pytest.fixture
def c(server):
    return server.client


# =====================================================================================================================
# health, stats, collections
# =====================================================================================================================
def test_health(c):
    h = c.admin.Health(pb.HealthRequest())
    assert h.status == pb.HealthResponse.STATUS_SERVING
    assert h.role == "standalone", f"role {h.role!r}"
    assert h.version, "Health.version is empty"


def test_collection_lifecycle(c):
    name = uniq("life")
    before = c.names()
    c.create(name, 24, COSINE, FIELDS)
    assert name in c.names()
    info = c.describe(name)
    assert info.name == name and info.dim == 24 and info.metric == COSINE
    assert [(f.name, f.type) for f in info.fields] == FIELDS, f"schema {info.fields}"
    assert info.shards in (0, 1), f"shards {info.shards} for a collection created with shards=0 (means 1)"
    assert info.live_rows == 0 and segment_summary(info)["rows"] == 0
    assert c.count(name) == 0

    # creating it again (even with another schema) fails and changes nothing
    expect_error(lambda: c.create(name, 8, L2), SC.ALREADY_EXISTS, what="create existing")
    info2 = c.describe(name)
    assert info2.dim == 24 and info2.metric == COSINE and [(f.name, f.type) for f in info2.fields] == FIELDS

    c.upsert(name, [point(f"x{i}", np.arange(1, 25) + i, std_attrs(i)) for i in range(5)])
    assert c.describe(name).live_rows == 5

    c.q.DropCollection(pb.DropCollectionRequest(name=name))
    assert c.names() == before
    expect_error(lambda: c.describe(name), SC.NOT_FOUND, what="describe dropped")
    expect_error(lambda: c.q.DropCollection(pb.DropCollectionRequest(name=name)), SC.NOT_FOUND, what="drop twice")
    expect_error(lambda: c.get(name, ["x1"]), SC.NOT_FOUND, what="get from dropped")

    # the name is free again, and nothing of the old collection comes back
    c.create(name, 8, L2, [("year", INT64)])
    info = c.describe(name)
    assert info.dim == 8 and info.metric == L2 and info.live_rows == 0
    assert c.count(name) == 0 and c.get(name, [f"x{i}" for i in range(5)]) == []
    assert len(c.search(name, np.ones(8), 10).hits) == 0
    c.q.DropCollection(pb.DropCollectionRequest(name=name))


def test_list_collections_shows_every_collection(c):
    made = [uniq("lst") for _ in range(3)]
    for i, n in enumerate(made):
        c.create(n, 4 + i, L2)
    listed = {ci.name: ci for ci in c.q.ListCollections(pb.ListCollectionsRequest()).collections}
    for i, n in enumerate(made):
        assert n in listed, f"{n} not listed"
        assert listed[n].dim == 4 + i and listed[n].metric == L2
    for n in made:
        c.q.DropCollection(pb.DropCollectionRequest(name=n))
    assert not set(made) & set(c.names())


@pytest.mark.parametrize("name", ["a", "Z", "A-z_09", "x" * 64, "-_-", "0123"])
def test_valid_collection_names(c, name):
    c.create(name, 4, L2)
    assert name in c.names()
    assert c.describe(name).name == name
    c.upsert(name, [point("p", [1, 2, 3, 4])])
    assert c.count(name) == 1
    c.q.DropCollection(pb.DropCollectionRequest(name=name))


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 65, "a.b", "caf\u00e9", "../up", "tab\t"],
                         ids=["empty", "space", "slash", "65chars", "dot", "non-ascii", "dotdot", "tab"])
def test_bad_collection_names(c, name):
    before = c.names()
    expect_error(lambda: c.create(name, 4, L2), SC.INVALID_ARGUMENT, what=f"create {name!r}")
    assert c.names() == before, "a rejected CreateCollection created something"


def test_dims(c):
    for dim in (0, 16385, 100000):
        before = c.names()
        name = uniq("dim")
        expect_error(lambda: c.create(name, dim, L2), SC.INVALID_ARGUMENT, what=f"dim {dim}")
        assert c.names() == before
    for dim in (1, 16384):
        name = uniq("dim")
        c.create(name, dim, L2)
        assert c.describe(name).dim == dim
        v = np.linspace(-1, 1, dim, dtype=np.float32)
        c.upsert(name, [point("only", v)])
        (g,) = c.get(name, ["only"])
        assert vec_of(g).tobytes() == v.tobytes()
        hits = c.search(name, v, 3).hits
        assert [h.id for h in hits] == ["only"] and abs(hits[0].score) < 1e-6
        c.q.DropCollection(pb.DropCollectionRequest(name=name))


def test_bad_schemas(c):
    cases = [
        ("metric unspecified", dict(metric=pb.METRIC_UNSPECIFIED), ()),
        ("metric out of range", dict(metric=77), ()),
        ("field type unspecified", dict(fields=[("year", INT64), ("untyped_fld", pb.FIELD_TYPE_UNSPECIFIED)]),
         ("untyped_fld",)),
        ("field type out of range", dict(fields=[("weird_fld", 42)]), ("weird_fld",)),
        ("duplicate field names", dict(fields=[("dup_fld", INT64), ("other", BOOL), ("dup_fld", KEYWORD)]),
         ("dup_fld",)),
    ]
    for what, kw, names in cases:
        before = c.names()
        name = uniq("schema")
        args = dict(metric=L2, fields=())
        args.update(kw)
        expect_error(lambda: c.create(name, 8, args["metric"], args["fields"]), SC.INVALID_ARGUMENT, names, what)
        assert c.names() == before, f"{what}: a collection was created"


def test_shards(c):
    """shards > 1 in standalone: N local shards behind one collection (skipped where not supported)."""
    name = uniq("sharded")
    try:
        c.create(name, 12, L2, FIELDS, shards=3)
    except Exception as e:  # grpc.RpcError
        code = e.code() if hasattr(e, "code") else None
        if code in (SC.INVALID_ARGUMENT, SC.UNIMPLEMENTED):
            pytest.skip(f"shards=3 refused: {code}")
        raise
    assert c.describe(name).shards == 3
    r = np.random.default_rng(11)
    base = r.standard_normal((600, 12)).astype(np.float32)
    ids = [f"s{i}" for i in range(600)]
    c.upsert_all(name, [point(ids[i], base[i], std_attrs(i)) for i in range(600)], batch=200)
    assert c.count(name) == 600 and c.describe(name).live_rows == 600
    assert c.delete(name, ids[:50]) == 50
    got = c.get_map(name, ids)
    assert set(got) == set(ids[50:])
    f = eq("category", "wiki")
    m = f.mask([std_attrs(i) for i in range(600)])
    m[:50] = False
    assert c.count(name, f) == m.sum()
    for _ in range(5):
        q = r.standard_normal(12).astype(np.float32)
        check_topk(c.search(name, q, 20).hits, ids[50:], base[50:], q, 20, L2, "sharded")
        sel = np.nonzero(m)[0]
        check_topk(c.search(name, q, 20, f).hits, [ids[i] for i in sel], base[sel], q, 20, L2, "sharded+filter")
    c.q.DropCollection(pb.DropCollectionRequest(name=name))


# =====================================================================================================================
# upsert / get / delete / count
# =====================================================================================================================
def test_upsert_get_round_trip(c):
    name = uniq("rt")
    c.create(name, 5, L2, FIELDS)
    r = np.random.default_rng(1)
    vecs = r.standard_normal((6, 5)).astype(np.float32)
    vecs[3] = [1e-30, -0.0, 3.4e38, -3.4e38, 1.17549435e-38]  # extreme but finite float32 values
    attrs = [
        {"year": 2**63 - 1, "price": 1e-300, "category": "news", "active": True, "tags": ["b", "a", "c"]},
        {"year": -(2**63), "price": -2.5e300, "category": "\u65e5\u672c\u8a9e", "active": False, "tags": ["x"]},
        {"year": 0, "price": 0.1, "category": "wiki", "active": False, "tags": ["only one"]},
        {"year": 7, "price": math.pi, "category": "with space", "active": True, "tags": ["q", "p"]},
        {"year": -1},  # attributes are optional: a subset of the schema
        {},
    ]
    texts = ["hello", "caf\u00e9 \u2713 \U0001F600", "", "x" * 5000, "line\nbreak", ""]
    ids = ["a", "B-2", "\u00e9t\u00e9", "with space/and:colon", "x" * 256, "1"]
    resp = c.upsert(name, [point(ids[i], vecs[i], attrs[i], texts[i]) for i in range(6)])
    assert resp.count == 6

    order = ["1", "missing-1", "a", "\u00e9t\u00e9", "nope", "x" * 256, "B-2", "with space/and:colon"]
    got = c.get(name, order, with_vectors=True)
    want_order = [i for i in order if i in ids]
    assert [p.id for p in got] == want_order, "Get: not in request order, or absent ids not omitted"
    for p in got:
        i = ids.index(p.id)
        assert vec_of(p).tobytes() == vecs[i].tobytes(), f"{p.id}: vector {list(p.vector)} != {vecs[i].tolist()}"
        assert typed(attrs_of(p)) == typed(attrs[i]), f"{p.id}: attributes {attrs_of(p)} != {attrs[i]}"
        assert p.text == texts[i], f"{p.id}: text {p.text[:40]!r} != {texts[i][:40]!r}"

    nov = c.get(name, ids, with_vectors=False)
    assert [p.id for p in nov] == ids
    for p in nov:
        i = ids.index(p.id)
        assert len(p.vector) == 0, "Get with_vectors=false returned a vector"
        assert typed(attrs_of(p)) == typed(attrs[i]) and p.text == texts[i]

    assert c.get(name, ["missing", "also-missing"]) == []
    assert c.count(name) == 6
    c.q.DropCollection(pb.DropCollectionRequest(name=name))


def test_cosine_stores_unit_vectors(c):
    name = uniq("cos")
    c.create(name, 16, COSINE)
    r = np.random.default_rng(2)
    vecs = (r.standard_normal((40, 16)) * r.uniform(0.01, 100, (40, 1))).astype(np.float32)
    c.upsert(name, [point(f"c{i}", vecs[i]) for i in range(40)])
    for p in c.get(name, [f"c{i}" for i in range(40)]):
        i = int(p.id[1:])
        assert np.allclose(vec_of(p), unit(vecs[i]), atol=2e-6), f"{p.id}: Get does not return the unit vector"
    hits = c.search(name, vecs[7] * 3, 3, with_vectors=True).hits
    assert hits[0].id == "c7" and abs(hits[0].score - 1.0) < 1e-5, f"top hit {hits[0]}"
    assert np.allclose(vec_of(hits[0]), unit(vecs[7]), atol=2e-6)
    c.q.DropCollection(pb.DropCollectionRequest(name=name))


@pytest.mark.parametrize("metric", [L2, IP], ids=["L2", "IP"])
def test_zero_vector_allowed_outside_cosine(c, metric):
    name = uniq("zero")
    c.create(name, 6, metric)
    assert c.upsert(name, [point("z", np.zeros(6)), point("o", np.ones(6))]).count == 2
    (g,) = c.get(name, ["z"])
    assert vec_of(g).tobytes() == np.zeros(6, np.float32).tobytes()
    q = np.array([1, 2, 3, 4, 5, 6], np.float32)
    hits = c.search(name, q, 2).hits
    check_topk(hits, ["z", "o"], np.stack([np.zeros(6), np.ones(6)]), q, 2, metric, "zero vector")
    c.q.DropCollection(pb.DropCollectionRequest(name=name))


def test_delete_counts_only_existing(c):
    name = uniq("del")
    c.create(name, 4, L2)
    c.upsert(name, [point(f"d{i}", [i, 1, 2, 3]) for i in range(10)])
    assert c.delete(name, ["d1", "ghost", "d5", "d9"]) == 3
    assert c.delete(name, ["d1", "ghost", "d5"]) == 0
    assert c.delete(name, ["never"]) == 0
    assert c.count(name) == 7
    assert [p.id for p in c.get(name, [f"d{i}" for i in range(10)])] == [f"d{i}" for i in (0, 2, 3, 4, 6, 7, 8)]
    # re-upsert of a deleted id brings it back with the new value
    c.upsert(name, [point("d5", [50, 0, 0, 0])])
    (g,) = c.get(name, ["d5"])
    assert list(g.vector) == [50, 0, 0, 0] and c.count(name) == 8
    hits = c.search(name, [50, 0, 0, 0], 1).hits
    assert hits[0].id == "d5" and hits[0].score == 0
    c.q.DropCollection(pb.DropCollectionRequest(name=name))


def test_large_message_under_limit_is_accepted(c):
    """A ~8 MiB Upsert (over gRPC's 4 MiB default) and its ~8 MiB Get answer go through."""
    name = uniq("bigmsg")
    c.create(name, 4096, L2)
    r = np.random.default_rng(3)
    vecs = r.standard_normal((520, 4096)).astype(np.float32)
    req = pb.UpsertRequest(collection=name, points=[point(f"b{i}", vecs[i]) for i in range(520)])
    assert req.ByteSize() > 8 << 20
    assert c.q.Upsert(req).count == 520
    got = c.get(name, [f"b{i}" for i in range(520)])
    assert len(got) == 520 and all(vec_of(p).tobytes() == vecs[int(p.id[1:])].tobytes() for p in got)
    c.q.DropCollection(pb.DropCollectionRequest(name=name))


# =====================================================================================================================
# search = brute force
# =====================================================================================================================
class Dataset:
    """A collection and its model: ids, vectors, attributes, texts, live flags (index = row number)."""

    def __init__(self, name, metric, base, attrs, texts):
        self.name, self.metric = name, metric
        self.ids = [f"p{i}" for i in range(len(base))]
        self.base, self.attrs, self.texts = base, attrs, texts
        self.live = np.ones(len(base), bool)

    def candidates(self, flt=None):
        m = self.live.copy()
        if flt is not None:
            m &= flt.mask(self.attrs)
        rows = np.nonzero(m)[0]
        return [self.ids[i] for i in rows], self.base[rows]


N_SEARCH = 2750  # 5 sealed segments of 500 + 250 growing rows, with --seal-rows 500 and batches of 250
DIMS = {L2: 32, IP: 17, COSINE: 48}


@pytest.fixture(scope="module", params=[L2, IP, COSINE], ids=["L2", "IP", "COSINE"])
def dataset(request, server):
    metric = request.param
    c = server.client
    dim = DIMS[metric]
    r = np.random.default_rng(100 + metric)
    base = r.standard_normal((N_SEARCH, dim)).astype(np.float32)
    if metric == IP:  # varied norms, so IP and COSINE rank differently
        base *= r.uniform(0.3, 3.0, (N_SEARCH, 1)).astype(np.float32)
    ds = Dataset(uniq(f"search_{pb.Metric.Name(metric).lower()}"), metric, base,
                 [std_attrs(i) for i in range(N_SEARCH)], [std_text(i) for i in range(N_SEARCH)])
    c.create(ds.name, dim, metric, FIELDS)
    for s in range(0, N_SEARCH, 250):
        n = c.upsert(ds.name, [point(ds.ids[i], base[i], ds.attrs[i], ds.texts[i])
                               for i in range(s, min(N_SEARCH, s + 250))]).count
        assert n == min(250, N_SEARCH - s)

    def spread():
        s = segment_summary(c.describe(ds.name))
        return s if s["sealed"] >= 1 and s["growing_rows"] >= 1 else None

    assert wait_for(spread), (f"with --seal-rows {SEAL_ROWS}, {N_SEARCH} rows should be spread over sealed segments "
                              f"and the growing segment: {segment_summary(c.describe(ds.name))}")
    # deletes in sealed and growing rows
    dead = [i for i in range(N_SEARCH) if i % 45 == 7]
    assert c.delete(ds.name, [ds.ids[i] for i in dead]) == len(dead)
    ds.live[dead] = False
    # replacements (new vector, attributes, text) of sealed and growing rows
    rep = [i for i in range(N_SEARCH) if i % 67 == 11 and ds.live[i]]
    newv = r.standard_normal((len(rep), dim)).astype(np.float32)
    c.upsert(ds.name, [point(ds.ids[i], newv[j], replaced_attrs(i), f"replaced {i}") for j, i in enumerate(rep)])
    for j, i in enumerate(rep):
        ds.base[i], ds.attrs[i], ds.texts[i] = newv[j], replaced_attrs(i), f"replaced {i}"
    # a few deleted ids come back
    back = dead[::12]
    backv = r.standard_normal((len(back), dim)).astype(np.float32)
    c.upsert(ds.name, [point(ds.ids[i], backv[j], std_attrs(i), "back") for j, i in enumerate(back)])
    for j, i in enumerate(back):
        ds.base[i], ds.texts[i], ds.live[i] = backv[j], "back", True
    info = c.describe(ds.name)
    assert info.live_rows == ds.live.sum(), f"live_rows {info.live_rows}, want {ds.live.sum()}"
    s = segment_summary(info)
    assert s["rows"] - s["deleted"] == info.live_rows, f"segments {s} do not add up to live_rows {info.live_rows}"
    assert s["sealed"] >= 1 and s["growing_rows"] >= 1, s
    yield ds
    _drop_quietly(server, ds.name)


FILTERS = [
    ("int eq", eq("year", 1234)),
    ("int eq absent value", eq("year", -5)),
    ("double eq", eq("price", 10.25)),
    ("keyword eq", eq("category", "wiki")),
    ("keyword eq replaced", eq("category", "replaced")),
    ("keyword eq nothing", eq("category", "no-such-category")),
    ("bool eq true", eq("active", True)),
    ("bool eq false", eq("active", False)),
    ("keywords eq", eq("tags", "b")),
    ("keywords eq z", eq("tags", "z")),
    ("int any_of", any_of("year", [3, 77, 500, 501, 1999, 2749, 99999])),
    ("double any_of", any_of("price", [0.0, 1.25, 20.0])),
    ("keyword any_of", any_of("category", ["news", "code"])),
    ("keywords any_of", any_of("tags", ["b", "e"])),
    ("bool any_of", any_of("active", [False])),
    ("int range gt lt", rng("year", gt=500, lt=900)),
    ("int range gte lte", rng("year", gte=500, lte=900)),
    ("int range gte", rng("year", gte=2600)),
    ("int range lt", rng("year", lt=120)),
    ("int range lte point", rng("year", gte=777, lte=777)),
    ("int range fractional bounds", rng("year", gt=99.5, lt=200.5)),
    ("double range gt", rng("price", gt=20.0)),
    ("double range lte", rng("price", lte=3.5)),
    ("double range gte lt", rng("price", gte=5.0, lt=6.0)),
    ("double range negative", rng("price", lt=0)),
    ("and/or/not", all_(any_(eq("category", "news"), eq("active", True)), negate(rng("price", gt=20.0)))),
    ("or of and", any_(all_(eq("category", "wiki"), rng("year", lt=1000)), negate(any_of("tags", ["a", "b", "c"])))),
    ("not not", negate(negate(eq("category", "code")))),
    ("not and", negate(all_(eq("active", True), eq("tags", "a")))),
    ("selective", all_(eq("category", "code"), eq("active", True), rng("year", lt=300))),
    ("single-child lists", all_(any_(eq("tags", "f")))),
    ("deep", all_(negate(any_(eq("category", "mail"), all_(eq("active", False), rng("price", lt=10)))),
                  any_(eq("tags", "c"), eq("tags", "d"), rng("year", gte=2500)))),
]


def test_search_no_filter_equals_bruteforce(server, dataset):
    c, ds = server.client, dataset
    r = np.random.default_rng(7)
    ids, base = ds.candidates()
    queries = list(r.standard_normal((6, ds.base.shape[1])).astype(np.float32)) + [ds.base[3], ds.base[2749]]
    for qi, q in enumerate(queries):
        for k in (1, 10, 100):
            check_topk(c.search(ds.name, q, k).hits, ids, base, q, k, ds.metric, f"q{qi}")
        check_topk(c.search(ds.name, q, 10, exact=True).hits, ids, base, q, 10, ds.metric, f"q{qi} exact")
    assert c.count(ds.name) == len(ids)


def test_search_k_larger_than_rows_returns_all(server, dataset):
    c, ds = server.client, dataset
    ids, base = ds.candidates()
    q = np.random.default_rng(8).standard_normal(ds.base.shape[1]).astype(np.float32)
    check_topk(c.search(ds.name, q, 10000).hits, ids, base, q, 10000, ds.metric, "k=10000")
    f = dict(FILTERS)["selective"]
    fids, fbase = ds.candidates(f)
    assert 0 < len(fids) < 50
    check_topk(c.search(ds.name, q, 50, f).hits, fids, fbase, q, 50, ds.metric, "k > matching rows")


@pytest.mark.parametrize("what,flt", FILTERS, ids=[f[0] for f in FILTERS])
def test_search_with_filter_equals_bruteforce(server, dataset, what, flt):
    c, ds = server.client, dataset
    ids, base = ds.candidates(flt)
    assert c.count(ds.name, flt) == len(ids), f"Count({flt!r})"
    r = np.random.default_rng(zlib.crc32(what.encode()))
    queries = list(r.standard_normal((2, ds.base.shape[1])).astype(np.float32))
    if ids:
        queries.append(base[len(ids) // 2])  # a matching row itself
    for qi, q in enumerate(queries):
        check_topk(c.search(ds.name, q, 10, flt).hits, ids, base, q, 10, ds.metric, f"{flt!r} q{qi}")
    check_topk(c.search(ds.name, queries[0], 10, flt, exact=True).hits, ids, base, queries[0], 10, ds.metric,
               f"{flt!r} exact")


def test_search_hit_payloads(server, dataset):
    c, ds = server.client, dataset
    for flt in (None, eq("category", "replaced")):  # replaced rows: their new attributes and text come back
        ids, base = ds.candidates(flt)
        q = base[len(ids) // 3]
        full = c.search(ds.name, q, 8, flt, with_attributes=True, with_vectors=True, with_text=True).hits
        check_topk(full, ids, base, q, 8, ds.metric, f"payload search {flt!r}")
        for h in full:
            i = ds.ids.index(h.id)
            assert typed(attrs_of(h)) == typed(ds.attrs[i]), f"{h.id}: hit attributes {attrs_of(h)} != {ds.attrs[i]}"
            assert h.text == ds.texts[i], f"{h.id}: hit text {h.text!r} != {ds.texts[i]!r}"
            if ds.metric == COSINE:
                assert np.allclose(vec_of(h), unit(ds.base[i]), atol=2e-6), f"{h.id}: hit vector"
            else:
                assert vec_of(h).tobytes() == ds.base[i].tobytes(), f"{h.id}: hit vector not bit-exact"
        bare = c.search(ds.name, q, 8, flt).hits
        assert [h.id for h in bare] == [h.id for h in full]
        for h in bare:
            assert len(h.attributes) == 0 and len(h.vector) == 0 and h.text == "", \
                f"{h.id}: payload returned although not asked for"
        only_text = c.search(ds.name, q, 8, flt, with_text=True).hits
        assert [h.text for h in only_text] == [h.text for h in full]
        assert all(len(h.vector) == 0 and len(h.attributes) == 0 for h in only_text)
        only_attrs = c.search(ds.name, q, 8, flt, with_attributes=True).hits
        assert [typed(attrs_of(h)) for h in only_attrs] == [typed(attrs_of(h)) for h in full]
        assert all(len(h.vector) == 0 and h.text == "" for h in only_attrs)


# =====================================================================================================================
# read-your-writes, replace, delete
# =====================================================================================================================
def test_read_your_writes(server):
    w, rd = server.new_client(), server.new_client()  # two connections: visibility is server-wide
    try:
        name = uniq("ryw")
        w.create(name, 16, L2, FIELDS)
        r = np.random.default_rng(5)
        n = 0
        known = {}
        for it in range(60):
            size = 97 if it % 10 == 9 else 1  # big batches push the growing segment over --seal-rows
            vecs = (r.standard_normal((size, 16)) * 10).astype(np.float32)
            pts = [point(f"w{n + j}", vecs[j], std_attrs(n + j)) for j in range(size)]
            assert w.upsert(name, pts).count == size
            for j in range(size):
                known[f"w{n + j}"] = vecs[j]
            n += size
            last = f"w{n - 1}"
            hits = rd.search(name, known[last], 1).hits
            assert hits and hits[0].id == last and hits[0].score == 0, f"it {it}: fresh {last} not found: {hits}"
            got = rd.get(name, [last])
            assert len(got) == 1 and vec_of(got[0]).tobytes() == known[last].tobytes()
            assert rd.count(name) == n
            assert rd.count(name, eq("year", n - 1)) == 1
        assert wait_for(lambda: segment_summary(rd.describe(name))["sealed"] >= 1), \
            f"no seal happened: the test did not cross segments ({segment_summary(rd.describe(name))})"
        # deletes are seen at once too, in sealed and growing rows
        for pid in ["w0", "w150", f"w{n - 1}", "w300", f"w{n - 2}"]:
            assert w.delete(name, [pid]) == 1
            n -= 1
            hits = rd.search(name, known[pid], 3).hits
            assert pid not in [h.id for h in hits], f"deleted {pid} still found"
            assert rd.get(name, [pid]) == [] and rd.count(name) == n
            assert rd.count(name, eq("year", int(pid[1:]))) == 0
    finally:
        w.close()
        rd.close()


@pytest.mark.parametrize("flush_first", [False, True], ids=["growing", "sealed"])
def test_upsert_replaces_everywhere(server, flush_first):
    c = server.client
    name = uniq("repl")
    c.create(name, 8, L2, FIELDS)
    r = np.random.default_rng(6)
    old = r.standard_normal((300, 8)).astype(np.float32)
    c.upsert(name, [point(f"r{i}", old[i], std_attrs(i), f"old {i}") for i in range(300)])
    if flush_first:
        assert c.flush(name) >= 1
        assert segment_summary(c.describe(name))["growing_rows"] == 0
    before = segment_summary(c.describe(name))
    targets = [5, 77, 150, 299]
    new = (r.standard_normal((len(targets), 8)) + 20).astype(np.float32)
    c.upsert(name, [point(f"r{i}", new[j], replaced_attrs(i), f"new {i}") for j, i in enumerate(targets)])
    assert c.count(name) == 300, "replacing upsert changed the count"
    info = c.describe(name)
    assert info.live_rows == 300
    after = segment_summary(info)
    assert after["deleted"] - before["deleted"] == len(targets), f"replaced rows not counted as deleted: {after}"
    for j, i in enumerate(targets):
        (g,) = c.get(name, [f"r{i}"])
        assert vec_of(g).tobytes() == new[j].tobytes(), f"r{i}: old vector still returned by Get"
        assert typed(attrs_of(g)) == typed(replaced_attrs(i)) and g.text == f"new {i}"
        hits = c.search(name, old[i], 300, with_vectors=True, with_attributes=True).hits
        mine = [h for h in hits if h.id == f"r{i}"]
        assert len(mine) == 1, f"r{i} appears {len(mine)} times in a full search"
        assert mine[0].score > 1.0 and vec_of(mine[0]).tobytes() == new[j].tobytes(), \
            f"r{i}: search still sees the old vector (score {mine[0].score})"
        assert typed(attrs_of(mine[0])) == typed(replaced_attrs(i))
        top = c.search(name, new[j], 1).hits
        assert top[0].id == f"r{i}" and top[0].score == 0
        assert c.count(name, eq("year", i)) == 0, f"r{i}: old attribute still matches"
        assert c.count(name, eq("year", 100000 + i)) == 1
        assert all(h.id != f"r{i}" for h in c.search(name, old[i], 10, eq("year", i)).hits)
    assert c.count(name, eq("category", "replaced")) == len(targets)
    all_ids = [f"r{i}" for i in range(300)]
    assert len(c.get(name, all_ids)) == 300
    # replacing again, with fewer attributes: the omitted ones are gone
    c.upsert(name, [point("r5", new[0] + 1, {"year": -7})])
    (g,) = c.get(name, ["r5"])
    assert attrs_of(g) == {"year": -7} and g.text == "", f"second replace kept old attributes/text: {g}"
    assert c.count(name, eq("category", "replaced")) == len(targets) - 1
    assert c.count(name) == 300
    c.q.DropCollection(pb.DropCollectionRequest(name=name))


def test_deleted_never_returned(server):
    c = server.client
    name = uniq("gone")
    c.create(name, 8, IP, FIELDS)
    r = np.random.default_rng(9)
    base = r.standard_normal((1300, 8)).astype(np.float32)
    ids = [f"g{i}" for i in range(1300)]
    for s in range(0, 1300, 100):
        c.upsert(name, [point(ids[i], base[i], std_attrs(i)) for i in range(s, s + 100)])
    dead = list(range(0, 1300, 7))
    assert c.delete(name, [ids[i] for i in dead]) == len(dead)
    live = np.ones(1300, bool)
    live[dead] = False
    lids = [ids[i] for i in np.nonzero(live)[0]]
    assert c.count(name) == live.sum()
    assert c.get(name, [ids[i] for i in dead]) == []
    for i in dead[:40]:
        hits = c.search(name, base[i], 50).hits
        assert not {h.id for h in hits} & {ids[d] for d in dead}, "a deleted id was returned"
        check_topk(hits, lids, base[live], base[i], 50, IP, "after deletes")
    f = eq("active", True)
    m = f.mask([std_attrs(i) for i in range(1300)]) & live
    assert c.count(name, f) == m.sum()
    c.q.DropCollection(pb.DropCollectionRequest(name=name))


# =====================================================================================================================
# Flush, Describe, Stats
# =====================================================================================================================
def test_flush_seals_and_describe_counts(server):
    c = server.client
    name = uniq("flush")
    c.create(name, 8, L2, FIELDS)
    r = np.random.default_rng(10)
    base = r.standard_normal((1200, 8)).astype(np.float32)
    for s in range(0, 1200, 100):
        c.upsert(name, [point(f"f{i}", base[i], std_attrs(i)) for i in range(s, s + 100)])
    assert wait_for(lambda: segment_summary(c.describe(name))["sealed"] >= 2), \
        f"1200 rows with --seal-rows {SEAL_ROWS}: {segment_summary(c.describe(name))}"
    info = c.describe(name)
    s = segment_summary(info)
    assert info.live_rows == 1200 and s["rows"] == 1200 and s["deleted"] == 0, s
    assert s["growing_rows"] > 0, f"expected unsealed rows before Flush: {s}"
    assert info.wal_bytes > 0, "rows in the growing segment but wal_bytes == 0"

    sealed = c.flush(name)
    assert sealed >= 1, f"Flush sealed {sealed} segments"
    info = c.describe(name)
    s = segment_summary(info)
    assert s["growing_rows"] == 0 and s["sealed"] >= 3, f"after Flush: {s}"
    assert all(x.state in (GROWING, SEALED) for x in info.segments)
    assert s["rows"] == 1200 and info.live_rows == 1200
    assert info.wal_bytes == 0, f"after Flush of an upsert-only collection wal_bytes = {info.wal_bytes}"
    assert c.flush(name) == 0, "a second Flush with nothing growing sealed something"

    # deletes in sealed segments are counted as deleted rows, replacements too
    assert c.delete(name, [f"f{i}" for i in list(range(5)) + list(range(1195, 1200))]) == 10
    s = segment_summary(c.describe(name))
    assert s["deleted"] == 10 and s["rows"] == 1200 and c.describe(name).live_rows == 1190, s
    c.upsert(name, [point(f"f{i}", base[i] + 1, std_attrs(i)) for i in range(100, 105)])
    info = c.describe(name)
    s = segment_summary(info)
    assert s["deleted"] == 15 and s["rows"] == 1205 and s["growing_rows"] == 5 and info.live_rows == 1190, s
    ids = [f"f{i}" for i in range(1200)]
    ok_ids = [i for i in ids if i not in {f"f{j}" for j in list(range(5)) + list(range(1195, 1200))}]
    assert list(c.get_map(name, ids, with_vectors=False)) == ok_ids

    expect_error(lambda: c.flush("no_such_collection_x"), SC.NOT_FOUND, what="Flush unknown collection")
    # search still exact over sealed-only data
    live = np.ones(1200, bool)
    live[list(range(5)) + list(range(1195, 1200))] = False
    model = base.copy()
    model[100:105] += 1
    q = r.standard_normal(8).astype(np.float32)
    check_topk(c.search(name, q, 25).hits, [ids[i] for i in np.nonzero(live)[0]], model[live], q, 25, L2, "flushed")
    c.q.DropCollection(pb.DropCollectionRequest(name=name))


def test_stats(server):
    c = server.client
    name = uniq("stats")
    c.create(name, 32, L2)
    c.upsert(name, [point(f"s{i}", np.full(32, i, np.float32)) for i in range(50)])
    st = c.stats()
    mine = [ci for ci in st.collections if ci.name == name]
    assert len(mine) == 1, "Stats does not list the collection"
    assert mine[0].live_rows == 50 and mine[0].dim == 32
    assert mine[0].wal_bytes > 0 and st.wal_bytes >= mine[0].wal_bytes
    assert st.resident_bytes > 1 << 20, f"resident_bytes {st.resident_bytes}"
    assert st.vector_bytes >= 50 * 32 * 4, f"vector_bytes {st.vector_bytes}"
    assert st.simd, "Stats.simd is empty"
    assert st.uptime_seconds < 24 * 3600
    names = {ci.name for ci in st.collections}
    assert names == set(c.names()), "Stats and ListCollections disagree"
    assert c.flush(name) >= 1
    mine = [ci for ci in c.stats().collections if ci.name == name][0]
    assert mine.wal_bytes == 0 and segment_summary(mine)["growing_rows"] == 0
    c.q.DropCollection(pb.DropCollectionRequest(name=name))
    assert name not in {ci.name for ci in c.stats().collections}


# =====================================================================================================================
# bad input: status, message, nothing changed
# =====================================================================================================================
DIM_BAD = 8


@pytest.fixture(scope="module")
def badcolls(server):
    c = server.client
    names = {L2: uniq("bad_l2"), COSINE: uniq("bad_cos")}
    r = np.random.default_rng(12)
    existing = {}
    for metric, name in names.items():
        c.create(name, DIM_BAD, metric, FIELDS)
        vecs = r.standard_normal((20, DIM_BAD)).astype(np.float32)
        c.upsert(name, [point(f"e{i}", vecs[i], std_attrs(i), f"text {i}") for i in range(20)])
        existing[metric] = vecs
    yield names, existing
    for name in names.values():
        _drop_quietly(server, name)


def _snapshot_existing(c, name):
    return {p.id: (vec_of(p).tobytes(), typed(attrs_of(p)), p.text) for p in c.get(name, [f"e{i}" for i in range(20)])}


def _ones(n):
    return np.ones(n, np.float32)


# (case id, metric of the collection, bad point (at index 2 of the request), what the message must name)
BAD_POINTS = [
    ("vector too short", L2, lambda: point("bad-short-pt", _ones(DIM_BAD - 1)), True),
    ("vector too long", L2, lambda: point("bad-long-pt", _ones(DIM_BAD + 1)), True),
    ("vector empty", L2, lambda: point("bad-empty-pt", []), True),
    ("NaN", L2, lambda: point("bad-nan-pt", [1, 2, float("nan"), 4, 5, 6, 7, 8]), True),
    ("+Inf", L2, lambda: point("bad-inf-pt", [1, 2, 3, float("inf"), 5, 6, 7, 8]), True),
    ("-Inf", L2, lambda: point("bad-ninf-pt", [float("-inf")] + [1] * 7), True),
    ("NaN cosine", COSINE, lambda: point("bad-nan-cos", [float("nan")] * 8), True),
    ("zero vector cosine", COSINE, lambda: point("bad-zero-cos", np.zeros(DIM_BAD)), True),
    ("empty id", L2, lambda: point("", _ones(DIM_BAD)), False),
    ("id of 257 bytes", L2, lambda: point("i" * 257, _ones(DIM_BAD)), False),
    ("id of 257 utf-8 bytes", L2, lambda: point("\u00e9" * 128 + "x", _ones(DIM_BAD)), False),
    ("unknown attribute", L2, lambda: point("bad-attr-pt", _ones(DIM_BAD), {"year": 1, "colour_xyz": "red"}),
     "colour_xyz"),
    ("int field given keyword", L2, lambda: point("bad-t1", _ones(DIM_BAD), {"year": "1999"}), "year"),
    ("double field given keyword", L2, lambda: point("bad-t2", _ones(DIM_BAD), {"price": "cheap"}), "price"),
    ("keyword field given int", L2, lambda: point("bad-t3", _ones(DIM_BAD), {"category": 3}), "category"),
    ("bool field given keyword", L2, lambda: point("bad-t4", _ones(DIM_BAD), {"active": "yes"}), "active"),
    ("keywords field given bool", L2, lambda: point("bad-t5", _ones(DIM_BAD), {"tags": True}), "tags"),
    ("keyword field given keywords", COSINE, lambda: point("bad-t6", _ones(DIM_BAD), {"category": ["a", "b"]}),
     "category"),
]


@pytest.mark.parametrize("what,metric,make_bad,names", BAD_POINTS, ids=[b[0] for b in BAD_POINTS])
def test_bad_upsert_changes_nothing(server, badcolls, what, metric, make_bad, names):
    c = server.client
    colls, existing = badcolls
    name = colls[metric]
    before_count = c.count(name)
    before = _snapshot_existing(c, name)
    tag = what.replace(" ", "_")
    bad = make_bad()
    pts = [point(f"good-{tag}-0", _ones(DIM_BAD) * 2, std_attrs(0)),
           point("e3", _ones(DIM_BAD) * 3, replaced_attrs(3), "changed"),  # an existing id, replaced in the request
           bad,
           point(f"good-{tag}-3", _ones(DIM_BAD) * 4)]
    if names is True:
        want = (point_ref(bad.id, 2),)
    elif names:
        want = (names,)
    else:
        want = ()
    expect_error(lambda: c.upsert(name, pts), SC.INVALID_ARGUMENT, want, what)
    assert c.count(name) == before_count, f"{what}: count changed"
    fresh = [f"good-{tag}-0", f"good-{tag}-3"]
    if 0 < len(bad.id.encode()) <= 256:  # a Get with an invalid id may itself be refused
        fresh.append(bad.id)
    assert c.get(name, fresh) == [], f"{what}: points of the failed request were written"
    assert _snapshot_existing(c, name) == before, f"{what}: an existing point was changed by the failed request"


def test_bad_upsert_duplicate_ids(server, badcolls):
    c = server.client
    name = badcolls[0][L2]
    before_count, before = c.count(name), _snapshot_existing(c, name)
    pts = [point("dup-fresh-1", _ones(8)), point("e4", _ones(8) * 9), point("dup-fresh-2", _ones(8)),
           point("dup-fresh-1", _ones(8) * 2)]
    expect_error(lambda: c.upsert(name, pts), SC.INVALID_ARGUMENT, ("dup-fresh-1",), "duplicate ids")
    pts = [point("e6", _ones(8) * 5), point("e6", _ones(8) * 6)]
    expect_error(lambda: c.upsert(name, pts), SC.INVALID_ARGUMENT, ("e6",), "duplicate existing id")
    assert c.count(name) == before_count and _snapshot_existing(c, name) == before
    assert c.get(name, ["dup-fresh-1", "dup-fresh-2"]) == []


def test_id_length_limits(server, badcolls):
    c = server.client
    name = badcolls[0][L2]
    ok = ["i" * 256, "\u00e9" * 128]  # 256 bytes each
    assert c.upsert(name, [point(pid, _ones(8) * 7) for pid in ok]).count == 2
    assert [p.id for p in c.get(name, ok)] == ok
    assert c.delete(name, ok) == 2


def test_too_many_points(server, badcolls):
    c = server.client
    name = badcolls[0][L2]
    before_count, before = c.count(name), _snapshot_existing(c, name)
    pts = [point(f"many-{i}", np.full(8, i % 100, np.float32)) for i in range(10001)]
    expect_error(lambda: c.upsert(name, pts), SC.INVALID_ARGUMENT, (), "10,001 points")
    assert c.count(name) == before_count and _snapshot_existing(c, name) == before
    assert c.get_map(name, [p.id for p in pts]) == {}, "points of a rejected 10,001-point request were written"
    # 10,000 is fine
    assert c.upsert(name, pts[:10000]).count == 10000
    assert c.count(name) == before_count + 10000
    assert c.delete(name, [p.id for p in pts[:10000]]) == 10000
    assert c.count(name) == before_count


def test_message_over_64mib(server, badcolls):
    c = server.client
    name = badcolls[0][L2]
    before_count, before = c.count(name), _snapshot_existing(c, name)
    req = pb.UpsertRequest(collection=name, points=[point("huge-1", _ones(8)), point("e7", _ones(8) * 8),
                                                    point("huge-2", _ones(8), text="x" * (65 << 20))])
    assert req.ByteSize() > 64 << 20
    expect_error(lambda: c.q.Upsert(req), SC.RESOURCE_EXHAUSTED, (), "message over 64 MiB")
    del req
    assert c.admin.Health(pb.HealthRequest()).status == pb.HealthResponse.STATUS_SERVING
    assert c.count(name) == before_count and _snapshot_existing(c, name) == before
    assert c.get(name, ["huge-1", "huge-2"]) == []


# Search/Count bad requests: (case id, request fields, message must name)
def _sreq(name, **kw):
    vec = kw.pop("vector", [0.5] * DIM_BAD)
    flt = kw.pop("filter", None)
    req = pb.SearchRequest(collection=name, k=kw.pop("k", 5), **kw)
    req.vector.extend(vec)
    if flt is not None:
        req.filter.CopyFrom(flt.pb)
    return req


BAD_SEARCHES = [
    ("k=0", dict(k=0), ()),
    ("k=10001", dict(k=10001), ()),
    ("k=2^32-1", dict(k=2**32 - 1), ()),
    ("query too short", dict(vector=[1.0] * (DIM_BAD - 1)), ()),
    ("query too long", dict(vector=[1.0] * (DIM_BAD + 1)), ()),
    ("query empty", dict(vector=[]), ()),
    ("query NaN", dict(vector=[float("nan")] + [1.0] * (DIM_BAD - 1)), ()),
    ("query Inf", dict(vector=[float("inf")] + [1.0] * (DIM_BAD - 1)), ()),
]
BAD_FILTERS = [
    ("unknown field", eq("no_such_field", 1), "no_such_field"),
    ("unknown field in any_of", any_of("no_such_field", ["a"]), "no_such_field"),
    ("unknown field in range", rng("no_such_field", gt=1), "no_such_field"),
    ("unknown field nested", all_(eq("category", "news"), negate(any_(eq("year", 1), eq("no_such_field", 2)))),
     "no_such_field"),
    ("keyword field eq int", eq("category", 5), "category"),
    ("int field eq keyword", eq("year", "1999"), "year"),
    ("double field eq keyword", eq("price", "cheap"), "price"),
    ("bool field eq keyword", eq("active", "yes"), "active"),
    ("keywords field eq bool", eq("tags", True), "tags"),
    ("any_of with one wrong value", any_of("category", ["news", 3]), "category"),
    ("range on keyword field", rng("category", gt=1), "category"),
    ("range on keywords field", rng("tags", lt=3), "tags"),
    ("empty all", all_(), ()),
    ("empty any", any_(), ()),
    ("nested empty any", all_(eq("active", True), any_()), ()),
    ("negated empty all", negate(all_()), ()),
]


@pytest.mark.parametrize("what,kw,names", BAD_SEARCHES, ids=[b[0] for b in BAD_SEARCHES])
def test_bad_search(server, badcolls, what, kw, names):
    c = server.client
    name = badcolls[0][L2]
    expect_error(lambda: c.q.Search(_sreq(name, **kw)), SC.INVALID_ARGUMENT, names, what)


@pytest.mark.parametrize("what,flt,names", BAD_FILTERS, ids=[b[0] for b in BAD_FILTERS])
def test_bad_filter(server, badcolls, what, flt, names):
    c = server.client
    name = badcolls[0][L2]
    want = (names,) if names else ()
    expect_error(lambda: c.q.Search(_sreq(name, filter=flt)), SC.INVALID_ARGUMENT, want, f"Search {what}")
    expect_error(lambda: c.count(name, flt), SC.INVALID_ARGUMENT, want, f"Count {what}")


def test_good_edges_accepted(server, badcolls):
    c = server.client
    name = badcolls[0][L2]
    n = c.count(name)
    assert len(c.q.Search(_sreq(name, k=10000)).hits) == n
    assert len(c.q.Search(_sreq(name, k=1)).hits) == 1


UNKNOWN = "no_such_collection_q"
UNKNOWN_CALLS = {
    "DescribeCollection": lambda c: c.q.DescribeCollection(pb.DescribeCollectionRequest(name=UNKNOWN)),
    "DropCollection": lambda c: c.q.DropCollection(pb.DropCollectionRequest(name=UNKNOWN)),
    "Upsert": lambda c: c.upsert(UNKNOWN, [point("u1", [1, 2, 3, 4])]),
    "Delete": lambda c: c.delete(UNKNOWN, ["u1"]),
    "Get": lambda c: c.get(UNKNOWN, ["u1"]),
    "Search": lambda c: c.search(UNKNOWN, [1, 2, 3, 4], 3),
    "Search with filter": lambda c: c.search(UNKNOWN, [1, 2, 3, 4], 3, eq("year", 1)),
    "Count": lambda c: c.count(UNKNOWN),
    "Admin.Flush": lambda c: c.flush(UNKNOWN),
}


@pytest.mark.parametrize("method", list(UNKNOWN_CALLS))
def test_unknown_collection(c, method):
    before = c.names()
    expect_error(lambda: UNKNOWN_CALLS[method](c), SC.NOT_FOUND, (), f"{method} on an unknown collection")
    assert c.names() == before, f"{method} on an unknown collection created something"


# =====================================================================================================================
# restart
# =====================================================================================================================
RS_FILTERS = [eq("category", "news"), any_of("tags", ["a", "d"]), rng("price", gte=3, lt=12.5),
              all_(eq("active", True), negate(rng("year", lt=300))), eq("category", "replaced")]


class Model:
    """Expected contents of one collection: id -> (float32 vector as given, attributes, text)."""

    def __init__(self, name, dim, metric, fields):
        self.name, self.dim, self.metric, self.fields = name, dim, metric, fields
        self.points = {}
        self.ever = set()  # every id ever written (deleted ones must stay absent)

    def upsert(self, c, items, batch=100):
        for s in range(0, len(items), batch):
            chunk = items[s:s + batch]
            assert c.upsert(self.name, [point(pid, v, a, t) for pid, v, a, t in chunk]).count == len(chunk)
            for pid, v, a, t in chunk:
                self.points[pid] = (np.asarray(v, np.float32), a, t)
                self.ever.add(pid)

    def delete(self, c, ids):
        want = sum(1 for i in ids if i in self.points)
        assert c.delete(self.name, ids) == want
        for i in ids:
            self.points.pop(i, None)

    def check(self, c, what):
        info = c.describe(self.name)
        assert (info.dim, info.metric, [(f.name, f.type) for f in info.fields]) == \
            (self.dim, self.metric, list(self.fields)), f"{what}: {self.name} schema changed"
        assert info.live_rows == len(self.points), f"{what}: {self.name} live_rows {info.live_rows}"
        s = segment_summary(info)
        assert s["rows"] - s["deleted"] == info.live_rows, f"{what}: {self.name} segments {s}"
        assert c.count(self.name) == len(self.points), f"{what}: {self.name} count"
        got = c.get_map(self.name, sorted(self.ever))
        assert set(got) == set(self.points), (f"{what}: {self.name} lost {sorted(set(self.points) - set(got))[:10]} "
                                              f"resurrected {sorted(set(got) - set(self.points))[:10]}")
        for pid, (v, a, t) in self.points.items():
            p = got[pid]
            if self.metric == COSINE:
                assert np.allclose(vec_of(p), unit(v), atol=2e-6), f"{what}: {self.name}/{pid} vector"
            else:
                assert vec_of(p).tobytes() == v.tobytes(), f"{what}: {self.name}/{pid} vector not bit-exact"
            assert typed(attrs_of(p)) == typed(a), f"{what}: {self.name}/{pid} attributes {attrs_of(p)} != {a}"
            assert p.text == t, f"{what}: {self.name}/{pid} text"
        ids = sorted(self.points)
        base = np.stack([self.points[i][0] for i in ids]) if ids else np.zeros((0, self.dim), np.float32)
        attrs = [self.points[i][1] for i in ids]
        r = np.random.default_rng(len(ids))
        for f in [None] + (RS_FILTERS if list(self.fields) == FIELDS else []):
            m = f.mask(attrs) if f is not None else np.ones(len(ids), bool)
            if f is not None:
                assert c.count(self.name, f) == m.sum(), f"{what}: {self.name} Count({f!r})"
            q = r.standard_normal(self.dim).astype(np.float32)
            sel = np.nonzero(m)[0]
            check_topk(c.search(self.name, q, 15, f).hits, [ids[i] for i in sel], base[sel], q, 15, self.metric,
                       f"{what}: {self.name} {f!r}")
        return {pid: (vec_of(p).tobytes(), typed(attrs_of(p)), p.text) for pid, p in got.items()}


def test_restart_preserves_everything(make_server):
    srv = make_server(seal_rows=300).start()
    c = srv.client
    r = np.random.default_rng(13)
    no_fields = ()
    models = [Model("rs_l2", 16, L2, FIELDS), Model("rs_cos", 12, COSINE, FIELDS), Model("rs_ip", 8, IP, no_fields)]
    for m in models:
        c.create(m.name, m.dim, m.metric, m.fields)
    l2, cos, ip = models

    def items(prefix, idx, dim, replaced=False, scale=1.0):
        return [(f"{prefix}{i}", (r.standard_normal(dim) * scale).astype(np.float32),
                 replaced_attrs(i) if replaced else std_attrs(i), std_text(i) if not replaced else f"re {i}")
                for i in idx]

    l2.upsert(c, items("l", range(1000), 16))                 # 3 sealed segments + growing rows
    cos.upsert(c, items("c", range(700), 12))
    ip.upsert(c, [(pid, v, {}, t) for pid, v, _, t in items("i", range(50), 8, scale=3)])
    l2.upsert(c, items("l", [3, 250, 600, 901, 990], 16, replaced=True))  # sealed and growing rows replaced
    l2.delete(c, [f"l{i}" for i in range(0, 1000, 25)] + ["l-never"])
    cos.delete(c, [f"c{i}" for i in range(650, 700)])
    # a dropped collection, and one dropped and created again with another schema
    c.create("rs_dropped", 4, L2)
    c.upsert("rs_dropped", [point(f"x{i}", [i, 0, 0, 1]) for i in range(50)])
    c.q.DropCollection(pb.DropCollectionRequest(name="rs_dropped"))
    c.create("rs_reborn", 4, L2)
    c.upsert("rs_reborn", [point(f"old{i}", [i, 0, 0, 1]) for i in range(10)])
    c.q.DropCollection(pb.DropCollectionRequest(name="rs_reborn"))
    reborn = Model("rs_reborn", 6, IP, [("year", INT64)])
    c.create(reborn.name, reborn.dim, reborn.metric, reborn.fields)
    reborn.upsert(c, [(f"new{i}", np.full(6, i + 1, np.float32), {"year": i}, "") for i in range(5)])
    models.append(reborn)
    names = sorted(m.name for m in models)
    assert c.names() == names
    assert segment_summary(c.describe("rs_l2"))["growing_rows"] > 0, "rs_l2 should have unsealed rows"

    def check_all(what, before=None):
        assert srv.client.names() == names, f"{what}: collections {srv.client.names()}"
        expect_error(lambda: srv.client.describe("rs_dropped"), SC.NOT_FOUND, what=f"{what}: dropped collection")
        now = {m.name: m.check(srv.client, what) for m in models}
        if before is not None:  # byte for byte what Get returned before (COSINE included)
            diff = [f"{coll}/{pid}" for coll in before for pid in set(before[coll]) | set(now[coll])
                    if before[coll].get(pid) != now[coll].get(pid)]
            assert not diff, f"{what}: {len(diff)} points differ from before the restart: {sorted(diff)[:10]}"
        return now

    state = check_all("before restart")
    # 1. clean restart with unsealed data
    srv.restart()
    check_all("after SIGTERM restart", state)
    # 2. Flush, restart: everything sealed
    c = srv.client
    assert c.flush() >= 1  # no name: every collection
    for ci in c.stats().collections:
        assert segment_summary(ci)["growing_rows"] == 0, f"{ci.name} still has growing rows after Flush('')"
    state = check_all("after Flush")
    srv.restart()
    check_all("after Flush + restart", state)
    for m in models:
        assert segment_summary(srv.client.describe(m.name))["growing_rows"] == 0, f"{m.name} grew rows on restart"
    # 3. writes after a restart (replacing sealed rows, deleting sealed rows, reviving deleted ids, new rows),
    #    then kill -9: acknowledged writes survive without a clean shutdown
    c = srv.client
    l2.upsert(c, items("l", [1, 2, 500, 777], 16, replaced=True))
    l2.delete(c, [f"l{i}" for i in range(5, 1000, 50)])
    l2.upsert(c, items("l", [0, 25, 50], 16))  # were deleted before the first restart
    l2.upsert(c, items("l", range(1000, 1150), 16))
    cos.delete(c, ["c1", "c2"])
    ip.upsert(c, [(pid, v, {}, t) for pid, v, _, t in items("i", range(40, 60), 8)])
    state = check_all("after more writes")
    srv.restart(kill=True)
    check_all("after kill -9 restart", state)
    # 4. restart once more without writes: replay is idempotent (no duplicated rows)
    srv.restart()
    check_all("after a second restart", state)
    # the dropped collection's name is free, and empty
    c = srv.client
    c.create("rs_dropped", 4, L2)
    assert c.count("rs_dropped") == 0 and c.get("rs_dropped", [f"x{i}" for i in range(50)]) == []


def test_sigterm_exit_code_zero_under_load(make_server):
    """SIGTERM while clients are writing: exit status 0; every acknowledged write is there after restart."""
    srv = make_server(seal_rows=200).start()
    srv.client.create("term", 8, L2)
    acked = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w):
        cl = srv.new_client(timeout=30)
        r = np.random.default_rng(w)
        j = 0
        try:
            while not stop.is_set():
                ids = [f"t{w}-{j}-{b}" for b in range(20)]
                vecs = r.standard_normal((20, 8)).astype(np.float32)
                try:
                    cl.upsert("term", [point(i, v) for i, v in zip(ids, vecs)])
                except Exception:
                    return
                with lock:
                    acked.update(zip(ids, vecs))
                j += 1
        finally:
            cl.close()

    ts = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in ts:
        t.start()
    wait_for(lambda: len(acked) >= 600, timeout=30)
    rc = srv.stop()
    stop.set()
    for t in ts:
        t.join()
    assert rc == 0, f"exit status {rc} on SIGTERM under load"
    assert len(acked) >= 600, f"only {len(acked)} points acknowledged before SIGTERM"
    srv.start()
    got = srv.client.get_map("term", list(acked))
    assert len(got) == len(acked), f"{len(acked) - len(got)} acknowledged points lost over a clean shutdown"
    assert all(vec_of(got[i]).tobytes() == v.tobytes() for i, v in acked.items())
