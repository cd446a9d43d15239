"""API keys with roles, and TLS (server-only and mutual) with certificates made here by openssl."""
import os
import subprocess
import time

import grpc
import pytest

from qvtest import pb, pbg, free_port, point

KEYS = {"read": "r" * 24, "write": "w" * 24, "admin": "a" * 24}


def call(stub_fn, req, key=None):
    md = [("authorization", f"Bearer {key}")] if key else None
    try:
        stub_fn(req, metadata=md, timeout=10)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


def test_api_key_roles(make_server, tmp_path):
    kf = tmp_path / "keys"
    kf.write_text("# test keys\n" + "".join(f"{k} {role}\n" for role, k in KEYS.items()))
    srv = make_server(extra=["--api-keys", str(kf)]).start()  # Health is public, so the start check passes
    ch = grpc.insecure_channel(srv.addr)
    q = pbg.QuiverStub(ch)
    create = pb.CreateCollectionRequest(name="s", dim=2, metric=pb.METRIC_L2)
    up = pb.UpsertRequest(collection="s", points=[point("a", [1.0, 2.0])])
    search = pb.SearchRequest(collection="s", vector=[1.0, 2.0], k=1)
    assert call(q.CreateCollection, create)[0] == grpc.StatusCode.UNAUTHENTICATED
    code, msg = call(q.CreateCollection, create, "x" * 24)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "unknown" in msg
    code, msg = call(q.CreateCollection, create, KEYS["write"])
    assert code == grpc.StatusCode.PERMISSION_DENIED and "admin" in msg
    assert call(q.CreateCollection, create, KEYS["admin"])[0] == grpc.StatusCode.OK
    code, msg = call(q.Upsert, up, KEYS["read"])
    assert code == grpc.StatusCode.PERMISSION_DENIED and "write" in msg
    assert call(q.Upsert, up, KEYS["write"])[0] == grpc.StatusCode.OK
    assert call(q.Search, search)[0] == grpc.StatusCode.UNAUTHENTICATED
    assert call(q.Search, search, KEYS["read"])[0] == grpc.StatusCode.OK
    r = q.Count(pb.CountRequest(collection="s"), metadata=[("authorization", f"Bearer {KEYS['read']}")])
    assert r.count == 1  # the refused calls changed nothing
    assert pbg.AdminStub(ch).Health(pb.HealthRequest(), timeout=5).status == pb.HealthResponse.STATUS_SERVING


def test_bad_key_file_refuses_to_start(make_server, tmp_path):
    kf = tmp_path / "keys"
    kf.write_text("short read\n")
    srv = make_server(extra=["--api-keys", str(kf)])
    with pytest.raises(RuntimeError):
        srv.start(timeout=10)


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(d):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=quiver-test-ca", cwd=d)
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", "/CN=localhost", cwd=d)
        (d / f"{name}.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


def start_tls(quiverd, d, extra):
    port = free_port()
    proc = subprocess.Popen([quiverd, "--listen", f"127.0.0.1:{port}", "--data", str(d / "data"),
                             "--metrics-listen", "off", "--tls-cert", str(d / "server.pem"),
                             "--tls-key", str(d / "server.key")] + extra,
                            stdout=open(d / "log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    return proc, port


def secure_stub(port, d, client_cert=False):
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.pem").read_bytes(),
        private_key=(d / "client.key").read_bytes() if client_cert else None,
        certificate_chain=(d / "client.pem").read_bytes() if client_cert else None)
    ch = grpc.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", "localhost")])
    return ch


def wait_health(ch, timeout=30):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            return pbg.AdminStub(ch).Health(pb.HealthRequest(), timeout=2)
        except grpc.RpcError:
            time.sleep(0.2)
    raise AssertionError("no TLS health answer")


@pytest.mark.parametrize("mutual", [False, True])
def test_tls_round_trip(quiverd, tmp_path, mutual):
    make_certs(tmp_path)
    proc, port = start_tls(quiverd, tmp_path, ["--tls-client-ca", str(tmp_path / "ca.pem")] if mutual else [])
    try:
        ch = secure_stub(port, tmp_path, client_cert=mutual)
        assert wait_health(ch).status == pb.HealthResponse.STATUS_SERVING
        q = pbg.QuiverStub(ch)
        q.CreateCollection(pb.CreateCollectionRequest(name="t", dim=2, metric=pb.METRIC_L2), timeout=10)
        q.Upsert(pb.UpsertRequest(collection="t", points=[point("a", [1.0, 2.0])]), timeout=10)
        assert q.Search(pb.SearchRequest(collection="t", vector=[1.0, 2.0], k=1), timeout=10).hits[0].id == "a"
        # plaintext to a TLS port fails
        plain = grpc.insecure_channel(f"127.0.0.1:{port}")
        with pytest.raises(grpc.RpcError):
            pbg.AdminStub(plain).Health(pb.HealthRequest(), timeout=3)
        if mutual:  # without a client certificate the handshake is refused
            with pytest.raises(grpc.RpcError):
                pbg.AdminStub(secure_stub(port, tmp_path)).Health(pb.HealthRequest(), timeout=3)
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
