"""The Prometheus endpoint: parses as the text exposition format (and passes `promtool check metrics`), one family
per metric with HELP and TYPE, and counts what the server did."""
import shutil
import subprocess
import urllib.request

import grpc
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from qvtest import free_port, pb, point


def scrape_text(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def scrape(port):
    return {f.name: f for f in text_string_to_metric_families(scrape_text(port))}


def check_families(text):
    """Every sample belongs to the family whose HELP and TYPE precede it, and no family is split: the exposition
    format's rule that parsers (and promtool) rely on."""
    seen, current = set(), None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in seen, f"family {name} appears twice"
            seen.add(name)
            current = name
        elif line.startswith("# TYPE "):
            assert line.split()[2] == current, line
        elif line and not line.startswith("#"):
            sample = line.split("{")[0].split(" ")[0]
            base = current
            assert sample == base or sample.startswith(base + "_"), f"{sample} inside family {base}"


def value(fams, family, sample_name, **labels):
    for s in fams[family].samples:
        if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def test_metrics_endpoint(make_server):
    port = free_port()
    srv = make_server(seal_rows=200, extra=["--metrics-listen", f"127.0.0.1:{port}", "--index-min-rows", "50"]).start()
    c = srv.client
    c.create("m", 8, fields=[("n", pb.FIELD_TYPE_INT64)])
    vecs = np.random.default_rng(0).standard_normal((500, 8)).astype(np.float32)
    c.upsert_all("m", [point(f"p{i}", vecs[i], {"n": i}) for i in range(500)], batch=100)
    assert c.delete("m", ["p1", "p2", "nope"]) == 2
    for i in range(7):
        c.search("m", vecs[i], 5)
    with pytest.raises(grpc.RpcError):
        c.search("m", vecs[0][:3], 5)  # wrong dim
    text = scrape_text(port)
    check_families(text)
    if shutil.which("promtool"):  # Debian prometheus (tools/deps.sh --test)
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
    fams = scrape(port)
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds", "process_max_fds",
                 "process_start_time_seconds", "process_virtual_memory_bytes"):
        assert name in fams, name
    assert value(fams, "process_open_fds", "process_open_fds") > 3
    assert value(fams, "process_resident_memory_bytes", "process_resident_memory_bytes") > 1 << 20
    search = "Search"  # the short method name
    assert value(fams, "quiver_requests", "quiver_requests_total", method=search, code="OK") == 7
    assert value(fams, "quiver_requests", "quiver_requests_total", method=search, code="INVALID_ARGUMENT") == 1
    assert value(fams, "quiver_request_duration_seconds", "quiver_request_duration_seconds_count", method=search) == 8
    assert value(fams, "quiver_request_duration_seconds", "quiver_request_duration_seconds_bucket", method=search,
                 le="+Inf") == 8
    assert value(fams, "quiver_rows_ingested", "quiver_rows_ingested_total") == 500
    assert value(fams, "quiver_rows_deleted", "quiver_rows_deleted_total") == 2
    assert value(fams, "quiver_live_rows", "quiver_live_rows", collection="m") == 498
    assert value(fams, "quiver_segments", "quiver_segments", collection="m", state="sealed") >= 2
    assert value(fams, "quiver_resident_memory_bytes", "quiver_resident_memory_bytes") > 0
    for name in ("quiver_wal_bytes", "quiver_vector_bytes", "quiver_index_segments", "quiver_compactions",
                 "quiver_uptime_seconds"):
        assert name in fams, name
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
    assert e.value.code == 404


def test_metrics_port_taken(make_server):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    taken = s.getsockname()[1]
    srv = make_server(extra=["--metrics-listen", f"127.0.0.1:{taken}"])
    with pytest.raises(RuntimeError):
        srv.start(timeout=10)  # an explicitly requested metrics address that cannot be bound fails the start
    s.close()


def test_slow_clients_do_not_stop_scraping(make_server):
    """Slowloris: 1100 connections from one address (127.0.0.2) that send half a request and then a byte now and
    then, more than select() could watch. A scraper on another address (127.0.0.1) still gets every scrape, each
    within 2 s; the slow address holds at most a few connections, the rest are closed at once."""
    import resource
    import socket
    import time
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {want}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))  # the server inherits it
    port = free_port()
    make_server(extra=["--metrics-listen", f"127.0.0.1:{port}"]).start()
    slow = []
    try:
        for _ in range(1100):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.settimeout(2)
            try:
                s.connect(("127.0.0.1", port))
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            except OSError:
                s.close()
                continue
            slow.append(s)
        for round in range(5):
            t0 = time.monotonic()
            text = scrape_text(port)
            took = time.monotonic() - t0
            assert "quiver_uptime_seconds" in text or "process_start_time_seconds" in text
            assert took < 2.0, f"scrape {round} took {took:.2f} s beside {len(slow)} slow connections"
            for s in slow:  # keep the survivors trickling
                try:
                    s.send(b"X")
                except OSError:
                    pass
            time.sleep(0.2)
        alive = 0
        for s in slow:
            try:
                s.setblocking(False)
                alive += s.recv(1) != b""  # b"": the server closed it
            except BlockingIOError:
                alive += 1  # still open, nothing to read
            except OSError:
                pass
        assert alive <= 16, f"{alive} connections from one address still open"
    finally:
        for s in slow:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
