"""The HTTP/JSON API (server/http_api.h) on the HTTP listener: every method against its gRPC twin on the same data
(identical answers, parsed with protobuf's own JSON mapping), the same API keys, limits and statuses, /healthz,
/readyz and /openapi.json, and a coordinator's."""
import json
import urllib.error
import urllib.request

import pytest
from google.protobuf import json_format

from qvtest import INT64, KEYWORD, L2, SC, eq, filter_pb, free_port, pb, point

KEYS = {"read": "r" * 24, "write": "w" * 24, "admin": "a" * 24}


def http(port, path, body=None, key=None, method=None, raw=None):
    """(HTTP status, parsed JSON body)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method or
                                 ("POST" if data is not None else "GET"))
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())


def call_both(c, port, service, method, req, key=None):
    """The same request over gRPC and HTTP: (grpc response or status, http status, http response message)."""
    stub = c.q if service == "Quiver" else c.admin
    try:
        g = getattr(stub, method)(req)
        gstatus = SC.OK
    except Exception as e:  # grpc.RpcError
        g, gstatus = None, e.code()
    st, body = http(port, f"/v1/{service}/{method}", json_format.MessageToDict(req), key=key)
    resp_type = type(g) if g is not None else None
    return g, gstatus, st, body, resp_type


@pytest.fixture
def served(make_server):
    port = free_port()
    srv = make_server(seal_rows=50, extra=["--http-listen", f"127.0.0.1:{port}"]).start()
    srv.http_port = port
    return srv


def load(c):
    c.q.CreateCollection(pb.CreateCollectionRequest(
        name="h", dim=4, metric=L2, dynamic_attributes=True,
        fields=[pb.FieldSchema(name="year", type=INT64), pb.FieldSchema(name="tag", type=KEYWORD)]))
    c.upsert_all("h", [point(f"p{i}", [float(i), 1.0, 0.5, -1.0], {"year": 2000 + i, "tag": "ab"[i % 2], "n": i},
                             text=f"t{i}") for i in range(120)], batch=60)


def test_every_method_matches_grpc(served):
    c, port = served.client, served.http_port
    load(c)
    flt = filter_pb(eq("tag", "a"))
    reads = [
        ("Quiver", "ListCollections", pb.ListCollectionsRequest()),
        ("Quiver", "DescribeCollection", pb.DescribeCollectionRequest(name="h")),
        ("Quiver", "Get", pb.GetRequest(collection="h", ids=["p1", "p7", "zz"], with_vectors=True)),
        ("Quiver", "Search", pb.SearchRequest(collection="h", vector=[3, 1, 0.5, -1], k=5, filter=flt,
                                              with_attributes=True, with_text=True, with_vectors=True)),
        ("Quiver", "SearchBatch", pb.SearchBatchRequest(
            collection="h", vectors=[pb.Vector(values=[1, 0, 0, 0]), pb.Vector(values=[9, 1, 1, 1])], k=3)),
        ("Quiver", "Count", pb.CountRequest(collection="h", filter=flt)),
        ("Quiver", "Scroll", pb.ScrollRequest(collection="h", limit=7, cursor="p3")),
        ("Quiver", "Embed", pb.EmbedRequest(texts=["hello world", "http and json"])),
        ("Admin", "Health", pb.HealthRequest()),
        # errors carry the same status
        ("Quiver", "Search", pb.SearchRequest(collection="h", vector=[1, 2], k=5)),
        ("Quiver", "Get", pb.GetRequest(collection="nope", ids=["a"])),
        ("Admin", "ListBackups", pb.ListBackupsRequest()),
    ]
    for service, method, req in reads:
        g, gstatus, st, body, resp_type = call_both(c, port, service, method, req)
        if gstatus == SC.OK:
            assert st == 200, (method, st, body)
            h = json_format.ParseDict(body, resp_type())
            for m in (g, h):  # segment figures move while the background indexer works: compare the rest
                infos = list(m.collections) if method == "ListCollections" else \
                    [m.collection] if method == "DescribeCollection" else []
                for ci in infos:
                    del ci.segments[:]
                    ci.wal_bytes = 0
            assert h == g, method  # identical answers
        else:
            assert body["status"] == gstatus.name and body["code"] == gstatus.value[0], (method, body, gstatus)
            assert body["message"] and st >= 400
    # writes: the HTTP one on a second collection, then the two compared
    for name in ("h2",):
        st, _ = http(port, "/v1/Quiver/CreateCollection", {"name": name, "dim": 4, "metric": "METRIC_L2",
                                                             "dynamicAttributes": True})
        assert st == 200
        pts = [json_format.MessageToDict(point(f"p{i}", [float(i), 1.0, 0.5, -1.0], {"n": i})) for i in range(10)]
        st, r = http(port, "/v1/Quiver/Upsert", {"collection": name, "points": pts})
        assert st == 200 and r["count"] == 10 and int(r["seq"]) > 0
        st, r = http(port, "/v1/Quiver/UpdateAttributes", {"collection": name, "ids": ["p1", "p2"],
                                                           "set": {"flag": {"boolValue": True}}})
        assert (st, r) == (200, {"updated": 2})
        st, r = http(port, "/v1/Quiver/Delete", {"collection": name, "filter": {"cond": {"field": "flag", "eq":
                                                                                         {"boolValue": True}}}})
        assert (st, r) == (200, {"deleted": 2})
        assert c.count(name) == 8
        st, r = http(port, "/v1/Admin/Flush", {"collection": name})
        assert st == 200
        st, r = http(port, "/v1/Quiver/DropCollection", {"name": name})
        assert st == 200 and name not in c.names()
    st, r = http(port, "/v1/Admin/Stats", {})
    assert st == 200 and "collections" in r


def test_statuses_limits_and_documents(make_server, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("".join(f"{v} {k}\n" for k, v in KEYS.items()))
    port = free_port()
    srv = make_server(extra=["--http-listen", f"127.0.0.1:{port}", "--api-keys", str(keys), "--max-message-mb", "1"])
    srv.start()
    body = {"name": "k", "dim": 2, "metric": "METRIC_L2"}
    st, r = http(port, "/v1/Quiver/CreateCollection", body)
    assert (st, r["status"]) == (401, "UNAUTHENTICATED")
    st, r = http(port, "/v1/Quiver/CreateCollection", body, key=KEYS["write"])
    assert (st, r["status"]) == (403, "PERMISSION_DENIED") and "admin" in r["message"]
    assert http(port, "/v1/Quiver/CreateCollection", body, key=KEYS["admin"])[0] == 200
    st, r = http(port, "/v1/Quiver/CreateCollection", body, key=KEYS["admin"])
    assert (st, r["status"]) == (409, "ALREADY_EXISTS")
    st, r = http(port, "/v1/Quiver/Count", {"collection": "k"}, key=KEYS["read"])
    assert st == 200
    st, r = http(port, "/v1/Quiver/Count", raw=b"{not json", key=KEYS["read"])
    assert (st, r["status"]) == (400, "INVALID_ARGUMENT") and "JSON" in r["message"]
    st, r = http(port, "/v1/Quiver/Count", {"collection": 5}, key=KEYS["read"])
    assert st == 400 and "collection" in r["message"]
    st, r = http(port, "/v1/Quiver/Upsert", raw=b'{"collection": "k", "points": [' + b"{}," * 600000 + b"{}]}",
                 key=KEYS["write"])
    assert (st, r["status"]) == (429, "RESOURCE_EXHAUSTED") and "max-message-mb" in r["message"]
    st, r = http(port, "/v1/Quiver/NoSuch", {}, key=KEYS["read"])
    assert (st, r["status"]) == (501, "UNIMPLEMENTED")
    st, _ = http(port, "/v1/Quiver/Count", key=KEYS["read"], method="GET")
    assert st == 405
    # probes and the document need no key
    assert http(port, "/healthz") == (200, {"status": "ok"})
    st, r = http(port, "/readyz")
    assert st == 200 and r["status"] == "STATUS_SERVING"
    st, doc = http(port, "/openapi.json")
    assert st == 200 and doc["openapi"].startswith("3.")
    served = {p for p in doc["paths"]}
    for m in ("Upsert", "Search", "SearchBatch", "Scroll", "UpdateAttributes", "Delete", "Embed"):
        assert f"/v1/Quiver/{m}" in served
    assert "/v1/Admin/Health" in served
    assert "quiver.v1.SearchRequest" in doc["components"]["schemas"]
    # /metrics still there, and counts the HTTP calls like gRPC ones
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert 'method="Count"' in r.read().decode()


def test_coordinator_serves_http(quiverd):
    from test_cluster import Node, start_shards
    shards = start_shards(quiverd, n=2)
    nodes = list(shards)
    try:
        coord = Node("coordinator", ["--shards", ",".join(s.addr for s in shards)], binary=quiverd, metrics=True)
        nodes.append(coord.start())
        c = coord.client
        load(c)
        req = pb.SearchRequest(collection="h", vector=[3, 1, 0.5, -1], k=5, with_attributes=True)
        g = c.q.Search(req)
        st, body = http(coord.metrics_port, "/v1/Quiver/Search", json_format.MessageToDict(req))
        assert st == 200 and json_format.ParseDict(body, pb.SearchResponse()) == g
        st, r = http(coord.metrics_port, "/readyz")
        assert st == 200 and len(r["shards"]) == 2
    finally:
        for n in nodes:
            n.cleanup()
