"""Filters: the builder and the dict form against real data (the matches must be exactly the expected ids), the
protobuf they build, and every malformed filter refused client-side with ValueError."""
from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import pytest
from helpers import FIELDS, make_points

import quiver_client as qc
from quiver_client import F, QuiverClient
from quiver_client._proto.quiver.v1 import quiver_pb2 as pb
from quiver_client.filters import from_dict, to_proto

N = 600


def has(a: dict[str, Any], k: str) -> bool:
    return k in a


def num(a: dict[str, Any], k: str) -> float:
    return a[k] if k in a else float("nan")


# (builder, dict form, predicate over a point's attributes): a point lacking a field fails every condition on it
CASES: list[tuple[str, Any, Any, Callable[[dict[str, Any]], bool]]] = [
    ("eq keyword", F.eq("lang", "en"), {"lang": "en"}, lambda a: a["lang"] == "en"),
    ("eq int", F.eq("year", 2010), {"year": {"$eq": 2010}}, lambda a: a.get("year") == 2010),
    ("eq bool", F.eq("draft", True), {"draft": True}, lambda a: a["draft"] is True),
    ("ne", F.ne("lang", "en"), {"lang": {"ne": "en"}}, lambda a: a["lang"] != "en"),
    ("range gte", F.range("year", gte=2020), {"year": {"gte": 2020}}, lambda a: num(a, "year") >= 2020),
    ("range open", F.range("year", gt=2010, lt=2015), {"year": {"$gt": 2010, "$lt": 2015}},
     lambda a: 2010 < num(a, "year") < 2015),
    ("range float bound on int", F.lte("year", 2004.5), {"year": {"lte": 2004.5}}, lambda a: num(a, "year") <= 2004.5),
    ("between double", F.between("score", 0.25, 0.5), {"score": {"gte": 0.25, "lte": 0.5}},
     lambda a: 0.25 <= a["score"] <= 0.5),
    ("between dict", F.between("year", 2005, 2012), {"year": {"$between": [2005, 2012]}},
     lambda a: 2005 <= num(a, "year") <= 2012),
    ("gt double", F.gt("score", 0.9), {"score": {"gt": 0.9}}, lambda a: a["score"] > 0.9),
    ("int on double field", F.range("score", lt=1), {"score": {"lt": 1}}, lambda a: a["score"] < 1),
    ("any_of keyword", F.any_of("lang", ["de", "fr"]), {"lang": {"in": ["de", "fr"]}},
     lambda a: a["lang"] in ("de", "fr")),
    ("any_of int", F.any_of("year", [2001, 2003, 2024]), {"year": {"$in": [2001, 2003, 2024]}},
     lambda a: a.get("year") in (2001, 2003, 2024)),
    ("eq on keywords: any element", F.eq("tags", "a"), {"tags": "a"}, lambda a: "a" in a.get("tags", [])),
    ("any_of on keywords", F.any_of("tags", ["a", "b"]), {"tags": {"in": ["a", "b"]}},
     lambda a: bool({"a", "b"} & set(a.get("tags", [])))),
    ("none_of (missing passes)", F.none_of("tags", ["a", "b"]), {"tags": {"nin": ["a", "b"]}},
     lambda a: not ({"a", "b"} & set(a.get("tags", [])))),
    ("not range", ~F.range("year", gte=2015), {"year": {"not": {"gte": 2015}}}, lambda a: not num(a, "year") >= 2015),
    ("and", F.eq("lang", "en") & F.range("year", gte=2020), {"lang": "en", "year": {"gte": 2020}},
     lambda a: a["lang"] == "en" and num(a, "year") >= 2020),
    ("or", F.eq("lang", "en") | F.eq("draft", True), {"$or": [{"lang": "en"}, {"draft": True}]},
     lambda a: a["lang"] == "en" or a["draft"]),
    ("the issue's example", F.eq("lang", "en") & F.range("year", gte=2020) | ~F.any_of("tags", ["a", "b"]),
     {"$or": [{"lang": "en", "year": {"gte": 2020}}, {"$not": {"tags": {"in": ["a", "b"]}}}]},
     lambda a: (a["lang"] == "en" and num(a, "year") >= 2020) or not ({"a", "b"} & set(a.get("tags", [])))),
    ("nested all/any/not", F.all(F.any(F.eq("lang", "de"), F.eq("lang", "es")), F.not_(F.eq("draft", True)),
                                 F.range("score", lt=0.5)),
     {"$and": [{"$or": [{"lang": "de"}, {"lang": "es"}]}, {"$not": {"draft": True}}, {"score": {"lt": 0.5}}]},
     lambda a: a["lang"] in ("de", "es") and not a["draft"] and a["score"] < 0.5),
    ("double negation", ~~F.eq("lang", "fr"), {"$not": {"$not": {"lang": "fr"}}}, lambda a: a["lang"] == "fr"),
    ("several ops on a field", F.range("year", gte=2005) & F.ne("year", 2010),
     {"year": {"gte": 2005, "ne": 2010}}, lambda a: has(a, "year") and a["year"] >= 2005 and a["year"] != 2010),
]


@pytest.fixture(scope="module")
def data(server: qc.LocalServer) -> Iterator[tuple[QuiverClient, str, list[dict[str, Any]]]]:
    name = "filters_data"
    with QuiverClient(server.address, timeout=60) as c:
        c.create_collection(name, dim=8, metric="l2", fields=FIELDS, index="flat")
        pts, _ = make_points(N, 8, seed=11)
        c.upsert(name, pts)
        yield c, name, pts
        c.drop_collection(name)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_filter_matches_exactly(data: Any, case: Any) -> None:
    c, name, pts = data
    _, built, as_dict, pred = case
    want = sorted(p["id"] for p in pts if pred(p["attributes"]))
    assert 0 < len(want) < N, "a case that matches nothing or everything proves little"
    assert to_proto(built) == to_proto(as_dict)  # both forms build the same message
    for f in (built, as_dict):
        assert c.count(name, filter=f) == len(want)
        assert [p.id for p in c.scroll(name, filter=f, page_size=128)] == want
        hits = c.search(name, np.zeros(8, np.float32), k=N, filter=f, exact=True, with_attributes=False)
        assert sorted(h.id for h in hits) == want


def test_proto_message_passes_through(data: Any) -> None:
    c, name, pts = data
    msg = pb.Filter(cond=pb.Condition(field="lang", eq=pb.Value(keyword_value="es")))
    assert c.count(name, filter=msg) == sum(p["attributes"]["lang"] == "es" for p in pts)
    assert c.count(name, filter={}) == N  # {}: no filter
    assert c.count(name, filter=None) == N


def test_server_checks_against_schema(data: Any) -> None:
    c, name, _ = data
    with pytest.raises(qc.QuiverInvalidArgument, match="unknown field 'nope'"):
        c.count(name, filter=F.eq("nope", 1))
    with pytest.raises(qc.QuiverInvalidArgument, match="range on field 'lang'"):
        c.count(name, filter=F.gte("lang", 1))
    with pytest.raises(qc.QuiverInvalidArgument, match="'year'.*value of type"):
        c.count(name, filter=F.eq("year", "2020"))


def test_builder_proto_shape() -> None:
    f = F.eq("lang", "en") & F.range("year", gte=2020) | ~F.any_of("tag", ["a", "b"])
    m = f.to_proto()
    assert m.WhichOneof("kind") == "any" and len(m.any.filters) == 2
    left, right = m.any.filters
    assert [x.cond.field for x in left.all.filters] == ["lang", "year"]
    assert left.all.filters[1].cond.range.WhichOneof("lower") == "gte"
    assert left.all.filters[1].cond.range.WhichOneof("upper") is None
    assert [v.keyword_value for v in right.negate.cond.any_of.values] == ["a", "b"]
    # & and | flatten; values keep their types
    g = F.eq("a", 1) & F.eq("b", 2.5) & F.eq("c", True) & F.eq("d", "x")
    kinds = [x.cond.eq.WhichOneof("kind") for x in g.to_proto().all.filters]
    assert kinds == ["int_value", "double_value", "bool_value", "keyword_value"]
    assert F.eq("n", np.int64(3)).to_proto().cond.eq.int_value == 3
    assert F.eq("a", 1) == from_dict({"a": 1})
    assert repr(F.eq("a", 1) & ~F.gt("b", 2)) == "(F.eq('a', 1) & ~F.range('b', gt=2.0))"


@pytest.mark.parametrize("make,msg", [
    (lambda: F.eq("x", [1, 2]), "a list is not a value"),
    (lambda: F.eq("x", None), "not a filter value"),
    (lambda: F.eq("x", {"a": 1}), "not a filter value"),
    (lambda: F.eq("", 1), "field name"),
    (lambda: F.eq(3, 1), "field name"),  # type: ignore[arg-type]
    (lambda: F.eq("x", float("nan")), "NaN"),
    (lambda: F.eq("x", 2 ** 63), "int64"),
    (lambda: F.any_of("x", []), "no values"),
    (lambda: F.any_of("x", "abc"), "needs a list"),
    (lambda: F.range("x"), "no bound"),
    (lambda: F.range("x", gt=1, gte=2), "both gt and gte"),
    (lambda: F.range("x", lt=1, lte=2), "both lt and lte"),
    (lambda: F.range("x", gt="1"), "not a number"),  # type: ignore[arg-type]
    (lambda: F.range("x", gt=True), "not a number"),
    (lambda: F.range("x", lt=float("nan")), "NaN"),
    (lambda: F.all(), "at least one"),
    (lambda: F.any(F.eq("a", 1), "b"), "takes Filters"),  # type: ignore[arg-type]
    (lambda: F.not_({"a": 1}), "takes a Filter"),  # type: ignore[arg-type]
    (lambda: from_dict({"$and": []}), "empty list"),
    (lambda: from_dict({"$or": {"a": 1}}), "list of filters"),
    (lambda: from_dict({"$and": [{}]}), "empty filter"),
    (lambda: from_dict({"$not": {}}), "empty filter"),
    (lambda: from_dict({"$not": [{"a": 1}]}), "expected a dict"),
    (lambda: from_dict({"$nor": []}), "unknown operator '\\$nor'"),
    (lambda: from_dict({"a": None}), "compared with None"),
    (lambda: from_dict({"a": [1, 2]}), "a list is not a value"),
    (lambda: from_dict({"a": {}}), "empty operator dict"),
    (lambda: from_dict({"a": {"like": "x%"}}), "unknown operator 'like'"),
    (lambda: from_dict({"a": {"in": "xyz"}}), "takes a list"),
    (lambda: from_dict({"a": {"in": []}}), "no values"),
    (lambda: from_dict({"a": {"gt": 1, "$gt": 2}}), "given twice"),
    (lambda: from_dict({"a": {"gt": 1, "gte": 2}}), "both gt and gte"),
    (lambda: from_dict({"a": {"not": 3}}), "operator dict"),
    (lambda: from_dict({"a": {"between": [1]}}), "takes \\[low, high\\]"),
    (lambda: from_dict({"a": {"$between": 1}}), "takes \\[low, high\\]"),
    (lambda: from_dict({1: 2}), "keys are field names"),  # type: ignore[dict-item]
    (lambda: from_dict([("a", 1)]), "expected a dict"),  # type: ignore[arg-type]
    (lambda: to_proto("lang == 'en'"), "expected a Filter"),
])
def test_bad_filters_raise_value_error(make: Any, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        make()


def test_bad_filter_raises_before_any_call(data: Any) -> None:
    c, name, _ = data
    with pytest.raises(ValueError):
        c.search(name, np.zeros(8), filter={"lang": {"like": "e%"}})
    with pytest.raises(ValueError):
        c.scroll(name, filter={"lang": {"like": "e%"}})  # raised by the call, before the first page


def test_filters_refuse_truthiness() -> None:
    with pytest.raises(TypeError, match="combine filters with &"):
        F.eq("a", 1) and F.eq("b", 2)  # noqa: B015
    with pytest.raises(TypeError):
        F.eq("a", 1) & {"b": 2}  # type: ignore[operator]
