"""API keys (quiverd --api-keys: `authorization: Bearer KEY`, roles read < write < admin) and TLS."""
from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from conftest import start_server

import quiver_client as qc
from quiver_client import AsyncQuiverClient, QuiverClient, RetryPolicy, TLSConfig

READ, WRITE, ADMIN = "read-key-0123456789", "write-key-0123456789", "admin-key-0123456789"


@pytest.fixture(scope="module")
def auth_server(quiverd: str, workdir: Path) -> Iterator[qc.LocalServer]:
    keys = workdir / "keys.txt"
    keys.write_text(f"# test keys\n{READ} read\n{WRITE} write\n{ADMIN} admin\n")
    s = start_server(quiverd, workdir, ["--api-keys", str(keys)])
    yield s
    s.stop()


def test_api_keys_and_roles(auth_server: qc.LocalServer) -> None:
    addr = auth_server.address
    with QuiverClient(addr, api_key=ADMIN) as admin, QuiverClient(addr, api_key=WRITE) as writer, \
            QuiverClient(addr, api_key=READ) as reader, QuiverClient(addr) as anonymous, \
            QuiverClient(addr, api_key="not-a-key-0123456789") as stranger:
        admin.create_collection("authz", dim=2, metric="l2")
        assert writer.upsert("authz", [{"id": "a", "vector": [1.0, 0.0]}]).count == 1
        assert [h.id for h in reader.search("authz", [1.0, 0.0], k=1)] == ["a"]
        assert reader.count("authz") == 1
        with pytest.raises(qc.QuiverPermissionDenied, match="read role.*Upsert needs write") as ei:
            reader.upsert("authz", [{"id": "b", "vector": [0.0, 1.0]}])
        assert ei.value.method == "Quiver/Upsert"
        with pytest.raises(qc.QuiverPermissionDenied, match="needs admin"):
            writer.create_collection("authz2", dim=2)
        with pytest.raises(qc.QuiverUnauthenticated, match="missing 'authorization: Bearer"):
            anonymous.count("authz")
        with pytest.raises(qc.QuiverUnauthenticated, match="unknown API key"):
            stranger.count("authz")
        assert anonymous.health().serving  # Health needs no key
        admin.drop_collection("authz")

    async def main() -> None:
        async with AsyncQuiverClient(addr, api_key=READ) as ac:
            assert isinstance(await ac.list_collections(), list)
        async with AsyncQuiverClient(addr) as ac:
            with pytest.raises(qc.QuiverUnauthenticated):
                await ac.list_collections()

    asyncio.run(main())


@pytest.fixture(scope="module")
def certs(workdir: Path) -> Path:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    d = workdir / "certs"
    d.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem")], check=True, capture_output=True)
    return d


def test_tls(quiverd: str, workdir: Path, certs: Path) -> None:
    cert = certs / "cert.pem"
    srv = qc.LocalServer(workdir / "tls-server", quiverd, tls={"root_certificates": str(cert)},
                         args=["--tls-cert", str(cert), "--tls-key", str(certs / "key.pem")]).start()
    try:
        with QuiverClient(srv.address, tls={"root_certificates": cert}) as c:  # a Path
            assert c.health().serving
            c.create_collection("tls", dim=2)
        cfg = TLSConfig(root_certificates=cert.read_bytes(), server_name="localhost")  # PEM bytes, a name
        with QuiverClient(srv.address, tls=cfg) as c:
            assert [x.name for x in c.list_collections()] == ["tls"]

        async def main() -> None:
            async with AsyncQuiverClient(srv.address, tls=cfg) as ac:
                assert (await ac.describe_collection("tls")).dim == 2

        asyncio.run(main())
        no_retry = RetryPolicy(max_attempts=1)
        with QuiverClient(srv.address, retry=no_retry, timeout=5) as plain:  # plain text to a TLS server
            with pytest.raises(qc.QuiverUnavailable):
                plain.health()
        with QuiverClient(srv.address, tls=True, retry=no_retry, timeout=5) as untrusted:  # not in the system roots
            with pytest.raises(qc.QuiverUnavailable):
                untrusted.health()
    finally:
        assert srv.stop() == 0


def test_local_with_tls(quiverd: str, workdir: Path, certs: Path) -> None:
    cert = certs / "cert.pem"
    with qc.local(workdir / "tls-local", quiverd, tls={"root_certificates": str(cert)},
                  args=["--tls-cert", str(cert), "--tls-key", str(certs / "key.pem")]) as c:
        assert c.health().serving
