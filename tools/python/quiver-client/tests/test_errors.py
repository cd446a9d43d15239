"""Errors: server statuses become QuiverError subclasses with the server's message; bad input is refused
client-side with ValueError / TypeError before anything is sent."""
from __future__ import annotations

import pickle
from typing import Any

import grpc
import numpy as np
import pytest

import quiver_client as qc
from quiver_client import Point, QuiverClient
from quiver_client.errors import error_class, from_rpc_error


def test_unknown_collection_is_not_found(client: QuiverClient) -> None:
    for call, method in [
        (lambda: client.describe_collection("no_such"), "Quiver/DescribeCollection"),
        (lambda: client.search("no_such", [1.0, 2.0]), "Quiver/Search"),
        (lambda: client.upsert("no_such", [{"id": "a", "vector": [1.0]}]), "Quiver/Upsert"),
        (lambda: client.get("no_such", ["a"]), "Quiver/Get"),
        (lambda: client.count("no_such"), "Quiver/Count"),
        (lambda: list(client.scroll("no_such")), "Quiver/Scroll"),
        (lambda: client.delete("no_such", ["a"]), "Quiver/Delete"),
        (lambda: client.drop_collection("no_such"), "Quiver/DropCollection"),
    ]:
        with pytest.raises(qc.QuiverNotFound) as ei:
            call()
        e = ei.value
        assert e.code == grpc.StatusCode.NOT_FOUND and e.method == method
        assert e.message == "collection 'no_such' not found"
        assert str(e) == f"NOT_FOUND ({method}): collection 'no_such' not found"
        assert isinstance(e, qc.QuiverError) and isinstance(e, LookupError)
        assert isinstance(e.__cause__, grpc.RpcError)


def test_server_invalid_argument(client: QuiverClient, name: str) -> None:
    client.create_collection(name, dim=3, metric="l2", fields={"year": "int"})
    with pytest.raises(qc.QuiverInvalidArgument, match="dim") as ei:
        client.upsert(name, [{"id": "a", "vector": [1.0, 2.0]}])
    assert isinstance(ei.value, ValueError)
    with pytest.raises(qc.QuiverInvalidArgument, match="'lang' is not in the schema"):
        client.upsert(name, [{"id": "a", "vector": [1.0, 2.0, 3.0], "attributes": {"lang": "en"}}])
    with pytest.raises(qc.QuiverInvalidArgument, match="k = 0 out of range"):
        client.search(name, [1.0, 2.0, 3.0], k=0)
    with pytest.raises(qc.QuiverInvalidArgument, match="name"):
        client.create_collection("bad name!", dim=3)
    # text on a collection without a model
    with pytest.raises(qc.QuiverError) as ei2:
        client.search(name, text="hello")
    assert ei2.value.code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
    assert ei2.value.message
    with pytest.raises(qc.QuiverInvalidArgument, match="no embedding model"):
        client.upsert(name, [{"id": "t", "text": "no vector"}])
    with pytest.raises(qc.QuiverInvalidArgument):
        client.embed([""])
    client.drop_collection(name)


def test_already_exists(client: QuiverClient, name: str) -> None:
    client.create_collection(name, dim=2)
    with pytest.raises(qc.QuiverAlreadyExists) as ei:
        client.create_collection(name, dim=2)
    assert ei.value.code == grpc.StatusCode.ALREADY_EXISTS and name in ei.value.message
    client.drop_collection(name)


@pytest.mark.parametrize("points,exc,msg", [
    ([{"vector": [1.0]}], ValueError, "id must be a non-empty str"),
    ([{"id": 7, "vector": [1.0]}], ValueError, "id must be a non-empty str"),
    ([{"id": "a", "vector": [1.0], "metadata": {}}], ValueError, "unknown key"),
    ([{"id": "a", "vector": np.zeros((2, 2))}], ValueError, "must be 1-D"),
    ([{"id": "a", "vector": "abc"}], TypeError, "sequence of numbers"),
    ([{"id": "a", "vector": [1.0, "x"]}], TypeError, "not a number"),
    ([{"id": "a", "vector": [1.0], "attributes": {"x": None}}], TypeError, "is None"),
    ([{"id": "a", "vector": [1.0], "attributes": {"x": {"nested": 1}}}], TypeError, "not an attribute type"),
    ([{"id": "a", "vector": [1.0], "attributes": {"x": [1, 2]}}], TypeError, "only str"),
    ([{"id": "a", "vector": [1.0], "attributes": {"x": 2 ** 64}}], ValueError, "int64"),
    ([{"id": "a", "vector": [1.0], "text": b"bytes"}], TypeError, "text must be a str"),
    ([("a", [1.0])], TypeError, "expected a Point or a dict"),
    ([Point(id="", vector=[1.0])], ValueError, "id must be"),
])
def test_bad_points_refused_client_side(client: QuiverClient, points: Any, exc: type, msg: str) -> None:
    with pytest.raises(exc, match=msg):
        client.upsert("never_sent", points)  # a server call would have said NOT_FOUND


def test_bad_arguments_client_side(client: QuiverClient) -> None:
    with pytest.raises(TypeError, match="ids"):
        client.get("never_sent", [1, 2])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        client.delete("never_sent", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="texts"):
        client.embed([b"x"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="api_key"):
        QuiverClient("127.0.0.1:1", api_key="has space")
    with pytest.raises(ValueError, match="address"):
        QuiverClient("")
    with pytest.raises(TypeError, match="tls"):
        QuiverClient("127.0.0.1:1", tls=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown key"):
        QuiverClient("127.0.0.1:1", tls={"ca": b""})


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize("code,cls", [
    (grpc.StatusCode.NOT_FOUND, qc.QuiverNotFound),
    (grpc.StatusCode.INVALID_ARGUMENT, qc.QuiverInvalidArgument),
    (grpc.StatusCode.ALREADY_EXISTS, qc.QuiverAlreadyExists),
    (grpc.StatusCode.UNAVAILABLE, qc.QuiverUnavailable),
    (grpc.StatusCode.DEADLINE_EXCEEDED, qc.QuiverDeadlineExceeded),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, qc.QuiverResourceExhausted),
    (grpc.StatusCode.PERMISSION_DENIED, qc.QuiverPermissionDenied),
    (grpc.StatusCode.UNAUTHENTICATED, qc.QuiverUnauthenticated),
    (grpc.StatusCode.FAILED_PRECONDITION, qc.QuiverFailedPrecondition),
    (grpc.StatusCode.DATA_LOSS, qc.QuiverDataLoss),
    (grpc.StatusCode.INTERNAL, qc.QuiverInternal),
    (grpc.StatusCode.CANCELLED, qc.QuiverCancelled),
    (grpc.StatusCode.UNIMPLEMENTED, qc.QuiverUnimplemented),
    (grpc.StatusCode.ABORTED, qc.QuiverAborted),
    (grpc.StatusCode.OUT_OF_RANGE, qc.QuiverOutOfRange),
    (grpc.StatusCode.UNKNOWN, qc.QuiverUnknown),
])
def test_status_mapping(code: grpc.StatusCode, cls: type) -> None:
    e = from_rpc_error(FakeRpcError(code, "the server's words"), "Quiver/Get")
    assert type(e) is cls and error_class(code) is cls
    assert e.code == code and e.message == "the server's words" and e.method == "Quiver/Get"
    assert str(e) == f"{code.name} (Quiver/Get): the server's words"
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is cls and back.code == code and back.message == e.message and back.method == e.method


def test_builtin_bases() -> None:
    assert issubclass(qc.QuiverDeadlineExceeded, TimeoutError)
    assert issubclass(qc.QuiverUnavailable, ConnectionError)
    assert issubclass(qc.QuiverInvalidArgument, ValueError)
    assert issubclass(qc.QuiverNotFound, LookupError)
    assert error_class(grpc.StatusCode.OK) is qc.QuiverError


def test_deadline_exceeded(server: qc.LocalServer, name: str) -> None:
    with QuiverClient(server.address) as c:
        c.create_collection(name, embedding_model="all-MiniLM-L6-v2")
    with QuiverClient(server.address, timeout=0.001) as c:
        with pytest.raises(qc.QuiverDeadlineExceeded):
            c.embed(["some text to embed, which takes longer than a millisecond"] * 64)
    with QuiverClient(server.address) as c:
        c.drop_collection(name)
