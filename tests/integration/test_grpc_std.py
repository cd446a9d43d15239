"""The standard gRPC services every role serves beside quiver.v1 (server/grpc_health.h, server/reflection.h) and the
streaming calls they need (server/rpc.h):
- server reflection as grpcurl uses it: list the services, fetch the files declaring a service and its messages, build
  requests from those descriptors alone and call methods with them; errors inside the stream, idle streams, API keys;
- Health/Watch: SERVING at once, SERVICE_UNKNOWN without ending the call, changes sent as they happen (a coordinator
  whose shard stops and comes back), UNAVAILABLE when the server stops;
- the stream reserve: 32 streams open at once, the 33rd refused while unary calls go on, a cancelled watch's slot
  freed;
- the gRPC listener on a Unix domain socket (--listen unix:PATH).
grpcurl is not in Debian 12, so the reflection client is Python's grpcio with protoc-generated reflection messages and
protobuf's own descriptor pool."""
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import qvtest as t
import test_cluster as tc
from qvtest import SC, free_port, pb

refl = t.proto_module("grpc/reflection/v1alpha/reflection.proto", "qv_reflection_pb2")
health = t.proto_module("grpc/health/v1/health.proto", "qv_health_pb2")

REFLECT = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
WATCH = "/grpc.health.v1.Health/Watch"
SERVICES = {"quiver.v1.Quiver", "quiver.v1.Admin", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
KEYS = {"read": "r" * 24, "write": "w" * 24, "admin": "a" * 24}


def reflect(ch, requests, metadata=None, timeout=10):
    """Sends the requests on one reflection stream; returns the responses."""
    call = ch.stream_stream(REFLECT, request_serializer=refl.ServerReflectionRequest.SerializeToString,
                            response_deserializer=refl.ServerReflectionResponse.FromString)
    return list(call(iter(requests), metadata=metadata, timeout=timeout))


def watch(ch, service="", timeout=None):
    call = ch.unary_stream(WATCH, request_serializer=health.HealthCheckRequest.SerializeToString,
                           response_deserializer=health.HealthCheckResponse.FromString)
    return call(health.HealthCheckRequest(service=service), timeout=timeout)


def load_pool(ch, symbols, metadata=None):
    """A descriptor pool built, as grpcurl builds it, from what reflection answers for `symbols` only."""
    pool = descriptor_pool.DescriptorPool()
    files = {}
    for r in reflect(ch, [refl.ServerReflectionRequest(file_containing_symbol=s) for s in symbols], metadata):
        assert r.WhichOneof("message_response") == "file_descriptor_response", r
        for raw in r.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files.setdefault(fd.name, fd)
    added = set()

    def add(name):  # imports first
        if name in added:
            return
        for dep in files[name].dependency:
            add(dep)
        pool.Add(files[name])
        added.add(name)
    for name in files:
        add(name)
    return pool


def dyn_call(ch, pool, method_full, request_json, metadata=None):
    """Calls a unary method knowing only its name and the reflected descriptors (what `grpcurl -d JSON` does)."""
    from google.protobuf import json_format
    svc_name, meth = method_full.rsplit(".", 1)
    md = pool.FindServiceByName(svc_name).methods_by_name[meth]
    factory = message_factory.MessageFactory(pool)
    req_cls, resp_cls = factory.GetPrototype(md.input_type), factory.GetPrototype(md.output_type)
    req = json_format.Parse(json.dumps(request_json), req_cls())
    call = ch.unary_unary(f"/{svc_name}/{meth}", request_serializer=req_cls.SerializeToString,
                          response_deserializer=resp_cls.FromString)
    return json_format.MessageToDict(call(req, metadata=metadata, timeout=10))


@pytest.fixture
def ch(make_server):
    srv = make_server(extra=["--metrics-listen", "off"]).start()
    c = grpc.insecure_channel(srv.addr)
    yield c
    c.close()


def test_reflection_lists_describes_and_calls(ch):
    (r,) = reflect(ch, [refl.ServerReflectionRequest(host="h1", list_services="")])
    assert r.valid_host == "h1" and r.original_request.WhichOneof("message_request") == "list_services"
    assert {s.name for s in r.list_services_response.service} == SERVICES

    # every service's file, with its imports, loads into a fresh pool; methods and streaming flags as in the .proto
    pool = load_pool(ch, sorted(SERVICES))
    quiver = pool.FindServiceByName("quiver.v1.Quiver")
    assert {m.name for m in quiver.methods} == {m.name for m in pb.DESCRIPTOR.services_by_name["Quiver"].methods}
    w = pool.FindServiceByName("grpc.health.v1.Health").methods_by_name["Watch"]
    assert w.output_type.full_name == "grpc.health.v1.HealthCheckResponse"
    assert pool.FindMessageTypeByName("quiver.v1.SearchRequest").fields_by_name["k"].number == \
        pb.SearchRequest.DESCRIPTOR.fields_by_name["k"].number

    # methods called with requests built from the reflected descriptors only
    dyn_call(ch, pool, "quiver.v1.Quiver.CreateCollection", {"name": "r", "dim": 2, "metric": "METRIC_L2"})
    dyn_call(ch, pool, "quiver.v1.Quiver.Upsert",
             {"collection": "r", "points": [{"id": "a", "vector": [1, 0]}, {"id": "b", "vector": [0, 1]}]})
    got = dyn_call(ch, pool, "quiver.v1.Quiver.Search", {"collection": "r", "vector": [0.9, 0.1], "k": 1})
    assert [h["id"] for h in got["hits"]] == ["a"]
    assert dyn_call(ch, pool, "grpc.health.v1.Health.Check", {}) == {"status": "SERVING"}


def test_reflection_symbols_files_and_errors_in_one_stream(ch):
    R = refl.ServerReflectionRequest
    reqs = [R(file_containing_symbol="quiver.v1.Quiver.Search"),       # a method
            R(file_containing_symbol="quiver.v1.HealthResponse.Status"),  # an enum nested in a message
            R(file_containing_symbol="quiver.v1.NoSuchThing"),
            R(file_by_filename="quiver/v1/quiver.proto"),
            R(file_by_filename="nope.proto"),
            R(all_extension_numbers_of_type="quiver.v1.Point"),
            R(all_extension_numbers_of_type="quiver.v1.Nope"),
            R(file_containing_extension=refl.ExtensionRequest(containing_type="quiver.v1.Point", extension_number=9)),
            R(list_services="")]
    rs = reflect(ch, reqs)
    assert len(rs) == len(reqs)  # one answer each, in order; an error does not end the stream
    kinds = [r.WhichOneof("message_response") for r in rs]
    assert kinds == ["file_descriptor_response", "file_descriptor_response", "error_response",
                     "file_descriptor_response", "error_response", "all_extension_numbers_response",
                     "error_response", "error_response", "list_services_response"], kinds
    for r, q in zip(rs, reqs):
        assert r.original_request == q
    names = [descriptor_pb2.FileDescriptorProto.FromString(b).name for b in rs[0].file_descriptor_response.
             file_descriptor_proto]
    assert names == ["quiver/v1/quiver.proto"]
    assert rs[2].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "quiver.v1.NoSuchThing" in rs[2].error_response.error_message
    assert rs[3].file_descriptor_response == rs[0].file_descriptor_response
    assert rs[5].all_extension_numbers_response.base_type_name == "quiver.v1.Point"
    assert list(rs[5].all_extension_numbers_response.extension_number) == []


def test_reflection_bad_and_idle_streams(make_server):
    srv = make_server(extra=["--metrics-listen", "off", "--request-read-timeout-ms", "1000"]).start()
    ch = grpc.insecure_channel(srv.addr)
    try:
        # a malformed message ends the stream with INVALID_ARGUMENT, after the answers to the good ones before it
        raw = ch.stream_stream(REFLECT, request_serializer=lambda b: b,
                               response_deserializer=refl.ServerReflectionResponse.FromString)
        good = refl.ServerReflectionRequest(list_services="").SerializeToString()
        it = raw(iter([good, b"\x3a\xff\xff"]), timeout=10)
        assert next(it).WhichOneof("message_response") == "list_services_response"
        with pytest.raises(grpc.RpcError) as e:
            next(it)
        assert e.value.code() == SC.INVALID_ARGUMENT, e.value

        # a stream that goes quiet is ended once the read timeout passes
        gate = threading.Event()

        def slow():
            yield refl.ServerReflectionRequest(list_services="")
            gate.wait(10)
        call = ch.stream_stream(REFLECT, request_serializer=refl.ServerReflectionRequest.SerializeToString,
                                response_deserializer=refl.ServerReflectionResponse.FromString)
        t0 = time.monotonic()
        it = call(slow(), timeout=20)
        next(it)
        with pytest.raises(grpc.RpcError) as e:
            next(it)
        gate.set()
        assert e.value.code() == SC.DEADLINE_EXCEEDED and "stream's next message" in e.value.details()
        assert time.monotonic() - t0 < 8

        # an empty stream ends OK at once
        assert reflect(ch, []) == []
        assert t.Client(srv.addr).admin.Health(pb.HealthRequest()).status == pb.HealthResponse.STATUS_SERVING
    finally:
        ch.close()


def test_reflection_needs_a_key_when_keys_are_on(make_server, tmp_path):
    kf = tmp_path / "keys"
    kf.write_text("".join(f"{k} {role}\n" for role, k in KEYS.items()))
    srv = make_server(extra=["--metrics-listen", "off", "--api-keys", str(kf)]).start()
    ch = grpc.insecure_channel(srv.addr)
    try:
        with pytest.raises(grpc.RpcError) as e:
            reflect(ch, [refl.ServerReflectionRequest(list_services="")])
        assert e.value.code() == SC.UNAUTHENTICATED
        md = [("authorization", f"Bearer {KEYS['read']}")]
        (r,) = reflect(ch, [refl.ServerReflectionRequest(list_services="")], metadata=md)
        assert {s.name for s in r.list_services_response.service} == SERVICES
        # the health watch is public, like Check (probes carry no key)
        assert next(watch(ch, timeout=10)).status == health.HealthCheckResponse.SERVING
    finally:
        ch.close()


def test_reflection_and_watch_over_http(make_server):
    port = free_port()
    make_server(extra=["--http-listen", f"127.0.0.1:{port}"]).start()

    def post(path, body):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
    st, body = post("/v1/ServerReflection/ServerReflectionInfo", {"listServices": ""})
    assert st == 200 and {s["name"] for s in body["listServicesResponse"]["service"]} == SERVICES
    st, body = post("/v1/Health/Check", {})
    assert st == 200 and body == {"status": "SERVING"}
    st, body = post("/v1/Health/Watch", {})
    assert st == 501 and body["status"] == "UNIMPLEMENTED" and "stream" in body["message"]


def test_watch_answers_at_once_and_keeps_unknown_services_open(ch):
    it = watch(ch, timeout=30)
    assert next(it).status == health.HealthCheckResponse.SERVING
    it.cancel()
    unknown = watch(ch, "no.such.Service", timeout=2.5)
    assert next(unknown).status == health.HealthCheckResponse.SERVICE_UNKNOWN
    with pytest.raises(grpc.RpcError) as e:  # nothing changes: the call stays open until the client's deadline
        next(unknown)
    assert e.value.code() == SC.DEADLINE_EXCEEDED


def test_watch_follows_a_coordinators_shard(quiverd):
    """A coordinator is SERVING while it reaches a shard (as its calls find it: Health does not probe): with traffic
    going on, the watch sees NOT_SERVING once its only shard stops, and SERVING again once the shard is back, each
    within a few watch periods, on one call."""
    with tc.static_cluster(quiverd, n=1) as (coord, shards):
        ch = grpc.insecure_channel(coord.addr)
        stop = threading.Event()

        def traffic():
            c = t.Client(coord.addr)
            while not stop.is_set():
                try:
                    c.q.ListCollections(pb.ListCollectionsRequest(), timeout=2)
                except grpc.RpcError:
                    pass
                stop.wait(0.2)
        th = threading.Thread(target=traffic, daemon=True)
        th.start()
        try:
            it = watch(ch, timeout=120)
            seen = [next(it).status]
            assert seen == [health.HealthCheckResponse.SERVING]
            shards[0].stop()
            t0 = time.monotonic()
            seen.append(next(it).status)
            assert seen[-1] == health.HealthCheckResponse.NOT_SERVING and time.monotonic() - t0 < 15, seen
            shards[0].start()
            t0 = time.monotonic()
            seen.append(next(it).status)
            assert seen[-1] == health.HealthCheckResponse.SERVING and time.monotonic() - t0 < 30, seen
            it.cancel()
        finally:
            stop.set()
            th.join()
            ch.close()


def test_stream_reserve_and_shutdown(make_server):
    srv = make_server(extra=["--metrics-listen", "off"]).start()
    # three connections (channels share one unless each has its own subchannel pool): one connection's HTTP/2 stream
    # limit (--max-streams-per-connection, 32) would queue the 33rd call in the client instead
    chans = [grpc.insecure_channel(srv.addr, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(3)]
    c = t.Client(srv.addr)
    c.q.CreateCollection(pb.CreateCollectionRequest(name="s", dim=2, metric=pb.METRIC_L2))
    try:
        watches = [watch(chans[i % 2], timeout=60) for i in range(32)]
        for w in watches:
            assert next(w).status == health.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as e:
            next(watch(chans[2], timeout=10))
        assert e.value.code() == SC.RESOURCE_EXHAUSTED and "streams open" in e.value.details()
        # unary calls, Admin's too, are not held up by the open streams
        c.q.Upsert(pb.UpsertRequest(collection="s", points=[t.point("a", [1.0, 2.0])]))
        assert c.admin.Health(pb.HealthRequest()).status == pb.HealthResponse.STATUS_SERVING
        # a cancelled watch gives its slot back (within a watch period)
        watches.pop().cancel()

        def another():
            try:
                w = watch(chans[2], timeout=60)
                next(w)
                watches.append(w)
                return True
            except grpc.RpcError as err:
                assert err.code() == SC.RESOURCE_EXHAUSTED
                return False
        assert t.wait_for(another, timeout=10)
        # a stopping server ends every watch with UNAVAILABLE, and exits cleanly
        t0 = time.monotonic()
        stopper = threading.Thread(target=srv.stop)
        stopper.start()
        for w in watches:
            with pytest.raises(grpc.RpcError) as e:
                next(w)
            assert e.value.code() == SC.UNAVAILABLE, e.value
        stopper.join()
        assert time.monotonic() - t0 < 10
        assert srv.proc.returncode == 0, srv.log_tail()
    finally:
        for ch in chans:
            ch.close()


def test_unix_domain_socket(quiverd, tmp_path):
    """--listen unix:PATH: clients connect through the socket file; a second server on the same path is refused
    while the first lives; SIGTERM removes the file; after kill -9 the stale file is replaced at the next start."""
    sock = tmp_path / "qv.sock"

    def start(data):
        log = open(tmp_path / f"{data}.log", "ab")
        return subprocess.Popen([quiverd, "--listen", f"unix:{sock}", "--data", str(tmp_path / data),
                                 "--metrics-listen", "off"], stdout=log, stderr=log, start_new_session=True)

    def healthy():
        try:
            return t.Client(f"unix:{sock}").admin.Health(pb.HealthRequest(), timeout=2).status == \
                pb.HealthResponse.STATUS_SERVING
        except grpc.RpcError:
            return False
    p = start("a")
    try:
        assert t.wait_for(healthy, timeout=30), (tmp_path / "a.log").read_text()
        c = t.Client(f"unix:{sock}")
        c.q.CreateCollection(pb.CreateCollectionRequest(name="u", dim=2, metric=pb.METRIC_L2))
        c.q.Upsert(pb.UpsertRequest(collection="u", points=[t.point("a", [1.0, 0.0]), t.point("b", [0.0, 1.0])]))
        r = c.q.Search(pb.SearchRequest(collection="u", vector=[0.9, 0.1], k=1))
        assert [h.id for h in r.hits] == ["a"]
        other = start("b")  # the same path, another data directory: refused, and the first goes on serving
        assert other.wait(30) != 0
        assert "another server is listening there" in (tmp_path / "b.log").read_text()
        assert healthy()
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
        assert not sock.exists()
        p = start("a")
        assert t.wait_for(healthy, timeout=30)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        assert sock.exists()  # left behind by kill -9 ...
        p = start("a")        # ... and replaced: nothing listens there any more
        assert t.wait_for(healthy, timeout=30), (tmp_path / "a.log").read_text()
        assert t.Client(f"unix:{sock}").q.Count(pb.CountRequest(collection="u")).count == 2
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
