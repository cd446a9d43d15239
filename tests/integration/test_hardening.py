"""Abuse and storage faults against a real quiverd (issue 12): admission before the body is read, the decode and
response budgets, storage faults injected with libfiu, and damage in the middle of RocksDB's log.

RSS figures are read from /proc/PID/status (VmHWM, the peak resident size), so a test sees the worst moment of a
request, not what is left after it."""
import glob
import os
import shutil
import subprocess
import threading
import time

import grpc
import pytest

from qvtest import SC, Server, any_of, expect_error, filter_pb, pb, pbg, point, wait_for

KEYS = {"read": "r" * 24, "write": "w" * 24, "admin": "a" * 24}
MiB = 1 << 20


def vm_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def own_channel(addr):
    """A channel on a connection of its own (gRPC Python shares subchannels between channels by default)."""
    return grpc.insecure_channel(addr, options=[("grpc.use_local_subchannel_pool", 1),
                                                ("grpc.max_send_message_length", 64 * MiB),
                                                ("grpc.max_receive_message_length", 64 * MiB)])


def raw_unary(ch, path):
    return ch.unary_unary(path, request_serializer=None, response_deserializer=None)


class BodylessCalls:
    """n calls that send their headers and then nothing: a request iterator that blocks until release()."""

    def __init__(self, addrs, path, n, key=None):
        self.gate = threading.Event()
        self.chans = [own_channel(a) for a in addrs]
        md = [("authorization", f"Bearer {key}")] if key else None
        self.futures = []
        for i in range(n):
            mc = self.chans[i % len(self.chans)].stream_unary(path, request_serializer=None,
                                                              response_deserializer=None)
            self.futures.append(mc.future(self._never(), metadata=md))

    def _never(self):
        self.gate.wait()
        return
        yield  # noqa: unreachable: makes this a generator that yields nothing

    def outcomes(self, timeout):
        out = []
        for f in self.futures:
            try:
                f.result(timeout=timeout)
                out.append(SC.OK)
            except grpc.FutureTimeoutError:
                out.append(None)
            except grpc.RpcError as e:
                out.append(e.code())
        return out

    def release(self):
        self.gate.set()
        for f in self.futures:
            f.cancel()
        for c in self.chans:
            c.close()


def health_ms(addr):
    ch = own_channel(addr)
    try:
        t0 = time.monotonic()
        h = pbg.AdminStub(ch).Health(pb.HealthRequest(), timeout=5)
        return (time.monotonic() - t0) * 1000, h
    finally:
        ch.close()


def grpc_health(addr, service=""):
    """grpc.health.v1.Health/Check by hand (no stubs needed): the status enum of the answer (1 SERVING, 2
    NOT_SERVING). The request is field 1 (string); the answer field 1 (varint)."""
    ch = own_channel(addr)
    try:
        body = service.encode()
        req = (b"\x0a" + bytes([len(body)]) + body) if body else b""
        check = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda x: x,
                               response_deserializer=lambda b: b)
        answer = check(req, timeout=5)
        return answer[1] if answer[:1] == b"\x08" else 0  # proto3 leaves out 0 (UNKNOWN)
    finally:
        ch.close()


def test_grpc_health_protocol(make_server):
    """The standard health service for Kubernetes probes: Check SERVING for the server and its services, NOT_FOUND for
    another service name, no API key needed (Watch: test_grpc_std.py)."""
    srv = make_server(extra=["--metrics-listen", "off"]).start()
    assert grpc_health(srv.addr) == 1
    assert grpc_health(srv.addr, "quiver.v1.Quiver") == 1
    with pytest.raises(grpc.RpcError) as e:
        grpc_health(srv.addr, "no.such.Service")
    assert e.value.code() == SC.NOT_FOUND


# ---------------------------------------------------------------------------------------------------------------------
# admission before reading
# ---------------------------------------------------------------------------------------------------------------------
def test_unauthenticated_bodyless_calls_hold_nothing(make_server, tmp_path):
    kf = tmp_path / "keys"
    kf.write_text("".join(f"{k} {role}\n" for role, k in KEYS.items()))
    srv = make_server(extra=["--api-keys", str(kf), "--max-inflight", "16"]).start()
    ch = own_channel(srv.addr)
    md = [("authorization", f"Bearer {KEYS['admin']}")]
    q = pbg.QuiverStub(ch)
    q.CreateCollection(pb.CreateCollectionRequest(name="h", dim=2, metric=pb.METRIC_L2), metadata=md, timeout=10)
    q.Upsert(pb.UpsertRequest(collection="h", points=[point("a", [1.0, 2.0])]), metadata=md, timeout=10)
    calls = BodylessCalls([srv.addr] * 4, "/quiver.v1.Quiver/Search", 80)
    try:
        # every one is refused on its headers, without the server waiting for a body
        codes = calls.outcomes(timeout=5)
        assert codes == [SC.UNAUTHENTICATED] * 80, codes
        ms, h = health_ms(srv.addr)
        assert h.status == pb.HealthResponse.STATUS_SERVING and ms < 1000, ms
        r = q.Search(pb.SearchRequest(collection="h", vector=[1.0, 2.0], k=1), metadata=md, timeout=5)
        assert [x.id for x in r.hits] == ["a"]
    finally:
        calls.release()
        ch.close()


def test_authenticated_bodyless_calls_time_out_and_health_keeps_a_slot(make_server):
    srv = make_server(extra=["--max-inflight", "16", "--request-read-timeout-ms", "1500"]).start()
    c = srv.client
    c.create("h", 2)
    c.upsert("h", [point("a", [1.0, 2.0])])
    calls = BodylessCalls([srv.addr] * 4, "/quiver.v1.Quiver/Search", 80)
    try:
        time.sleep(0.3)
        # the Quiver slots are full of calls waiting for bodies; Admin calls have their own
        ms, h = health_ms(srv.addr)
        assert h.status == pb.HealthResponse.STATUS_SERVING and ms < 1000, ms
        t0 = time.monotonic()
        codes = calls.outcomes(timeout=10)
        waited = time.monotonic() - t0
        # 16 admitted and timed out; the rest refused at once on their headers (or admitted later, as slots free)
        assert set(codes) <= {SC.DEADLINE_EXCEEDED, SC.RESOURCE_EXHAUSTED}, codes
        assert codes.count(SC.DEADLINE_EXCEEDED) >= 16, codes
        assert waited < 8, waited
        r = c.search("h", [1.0, 2.0], 1)
        assert [x.id for x in r.hits] == ["a"]
    finally:
        calls.release()


def test_over_limit_calls_are_refused_without_reading_the_body(make_server):
    srv = make_server(extra=["--max-inflight", "4", "--request-read-timeout-ms", "5000"]).start()
    c = srv.client
    c.create("h", 2)
    calls = BodylessCalls([srv.addr] * 2, "/quiver.v1.Quiver/Search", 4)
    try:
        time.sleep(0.3)
        ch = own_channel(srv.addr)
        big = pb.UpsertRequest(collection="h", points=[point(f"p{i}", [1.0, 2.0], text="x" * 4096)
                                                       for i in range(4000)])
        rss0 = vm_kib(srv.proc.pid, "VmHWM")
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as ei:
            pbg.QuiverStub(ch).Upsert(big, timeout=10)
        assert ei.value.code() == SC.RESOURCE_EXHAUSTED and "--max-inflight" in ei.value.details()
        assert time.monotonic() - t0 < 2
        # the 16 MiB body was never taken in
        assert vm_kib(srv.proc.pid, "VmHWM") - rss0 < 12 * 1024
        ch.close()
    finally:
        calls.release()


# ---------------------------------------------------------------------------------------------------------------------
# decode and response budgets
# ---------------------------------------------------------------------------------------------------------------------
def test_unknown_field_flood_is_refused_before_decoding(make_server):
    srv = make_server().start()
    body = b"\x78\x00" * (4 * MiB)  # 8 MiB of unknown field 15 = 0
    pid = srv.proc.pid
    rss0 = vm_kib(pid, "VmHWM")
    results = [None] * 4

    def send(i):
        ch = own_channel(srv.addr)
        try:
            raw_unary(ch, "/quiver.v1.Admin/Health")(body, timeout=30)
            results[i] = (SC.OK, "")
        except grpc.RpcError as e:
            results[i] = (e.code(), e.details())
        finally:
            ch.close()

    ts = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    grown = (vm_kib(pid, "VmHWM") - rss0) / 1024
    assert all(code == SC.INVALID_ARGUMENT and "unknown fields" in msg for code, msg in results), results
    assert grown < 64, f"peak RSS grew {grown:.0f} MiB for 4 x 8 MiB bodies"
    # a few unknown fields (a newer client's) are fine
    ch = own_channel(srv.addr)
    h = pb.HealthResponse.FromString(raw_unary(ch, "/quiver.v1.Admin/Health")(b"\x78\x01" * 8, timeout=5))
    assert h.status == pb.HealthResponse.STATUS_SERVING
    ch.close()


def test_get_deduplicates_ids_and_responses_stop_at_the_budget(make_server):
    srv = make_server(extra=["--max-message-mb", "4"]).start()
    c = srv.client
    c.create("t", 2)
    big = "y" * (256 * 1024)
    c.upsert("t", [point(f"p{i}", [float(i), 1.0], text=big) for i in range(10)])
    c.upsert("t", [point(f"q{i}", [float(i), 2.0], text=big) for i in range(10)])
    pid = srv.proc.pid
    rss0 = vm_kib(pid, "VmHWM")
    t0 = time.monotonic()
    r = c.q.Get(pb.GetRequest(collection="t", ids=["p1"] * 10000), timeout=10)
    assert [p.id for p in r.points] == ["p1"] and len(r.points[0].text) == len(big)
    # 20 points x 256 KiB = 5 MiB > 4 MiB: refused as it is built, naming the limit and what to do
    ids = [f"p{i}" for i in range(10)] + [f"q{i}" for i in range(10)]
    expect_error(lambda: c.q.Get(pb.GetRequest(collection="t", ids=ids), timeout=10), SC.RESOURCE_EXHAUSTED,
                 names=["--max-message-mb", "fewer ids"])
    expect_error(lambda: c.q.Search(pb.SearchRequest(collection="t", vector=[0.0, 0.0], k=20, with_text=True),
                                       timeout=10), SC.RESOURCE_EXHAUSTED, names=["lower k"])
    expect_error(lambda: c.q.Scroll(pb.ScrollRequest(collection="t", limit=20), timeout=10),
                 SC.RESOURCE_EXHAUSTED, names=["next_cursor"])
    assert time.monotonic() - t0 < 3
    assert (vm_kib(pid, "VmHWM") - rss0) / 1024 < 64
    # what fits is still served
    r = c.q.Search(pb.SearchRequest(collection="t", vector=[0.0, 0.0], k=10, with_text=True), timeout=10)
    assert len(r.hits) == 10


def test_long_count_keeps_its_deadline_and_writers_move(make_server):
    """Count with a 10,000-value any_of over 1M rows: with a 1 s deadline it answers (the exact count) or gives up
    with DEADLINE_EXCEEDED within 1.5 s; with a deadline too short for the scan it gives up; an upsert sent while it
    runs completes within 1 s."""
    import numpy as np
    srv = make_server(seal_rows=250000, extra=["--metrics-listen", "off"]).start()
    c = srv.client
    c.create("big", 2, fields=[("tag", pb.FIELD_TYPE_KEYWORD)])
    n, batch = 1_000_000, 10000
    vec = np.zeros((batch, 2), np.float32)
    for s in range(0, n, batch):  # tags t0..t99999: each value is 10 points
        pts = [pb.Point(id=f"p{i}", vector=vec[j], attributes={"tag": pb.Value(keyword_value=f"t{i % 100000}")})
               for j, i in enumerate(range(s, s + batch))]
        c.q.Upsert(pb.UpsertRequest(collection="big", points=pts), timeout=120)
    values = [f"t{v}" for v in range(0, 200000, 20)]  # 10,000 values, half of them present
    req = pb.CountRequest(collection="big", filter=filter_pb(any_of("tag", values)))
    done = {}

    def long_count():
        t0 = time.monotonic()
        try:
            done["n"] = c.q.Count(req, timeout=1.0).count
        except grpc.RpcError as e:
            done["code"] = e.code()
        done["s"] = time.monotonic() - t0

    th = threading.Thread(target=long_count)
    th.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    srv.new_client().upsert("big", [point("during", [1.0, 1.0])])
    upsert_s = time.monotonic() - t0
    th.join()
    assert done["s"] < 1.5, done
    assert done.get("n") == 5000 * 10 or done.get("code") == SC.DEADLINE_EXCEEDED, done
    assert upsert_s < 1.0, upsert_s
    t0 = time.monotonic()
    expect_error(lambda: c.q.Count(req, timeout=0.002), SC.DEADLINE_EXCEEDED, [], "a deadline shorter than the scan")
    assert time.monotonic() - t0 < 0.5


# ---------------------------------------------------------------------------------------------------------------------
# storage faults (libfiu) and log damage
# ---------------------------------------------------------------------------------------------------------------------
class FiuServer(Server):
    """quiverd under fiu-run: POSIX calls fail on demand (fiu-ctrl)."""

    use_fiu = True

    def cmdline(self):
        return (["fiu-run", "-x"] if self.use_fiu else []) + super().cmdline()

    def fiu(self, *args):
        subprocess.run(["fiu-ctrl"] + list(args) + [str(self.proc.pid)], check=True, timeout=10)


class Writers:
    """4 threads upserting one point per call into coll until stop(); `acked` maps every acknowledged id to its
    vector, `errors` collects the status codes of refused writes."""

    def __init__(self, srv, coll):
        self.acked, self.errors = {}, []
        self._stop = threading.Event()
        self._ts = [threading.Thread(target=self._run, args=(srv, coll, w)) for w in range(4)]
        for t in self._ts:
            t.start()

    def _run(self, srv, coll, w):
        cl = srv.new_client()
        i = 0
        while not self._stop.is_set():
            pid = f"w{w}-{i}"
            vec = [float(w), float(i), 1.0, 0.5]
            try:
                cl.upsert(coll, [point(pid, vec)])
                self.acked[pid] = vec
            except grpc.RpcError as e:
                self.errors.append(e.code())
                if e.code() == SC.UNAVAILABLE:
                    time.sleep(0.05)
            i += 1
        cl.close()

    def stop(self):
        self._stop.set()
        for t in self._ts:
            t.join()


def _failed_health(srv):
    """Health once NOT_SERVING (within 30 s), else None."""
    got = []

    def failed():
        _, h = health_ms(srv.addr)
        got[:] = [h]
        return h.status == pb.HealthResponse.STATUS_NOT_SERVING

    return got[0] if wait_for(failed, timeout=30) else None


def _all_acked_served(srv, coll, acked):
    got = srv.client.get_map(coll, list(acked), with_vectors=True)
    missing = [p for p in acked if p not in got]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged points lost, e.g. {missing[:5]}"
    for p, vec in acked.items():
        assert list(got[p].vector) == pytest.approx(vec)


@pytest.mark.skipif(not shutil.which("fiu-run"), reason="fiu-utils not installed (tools/deps.sh --test)")
# The fault is a failed fdatasync (RocksDB's sync of its log on every acknowledged write). Failing write() itself
# cannot be confined to files with fiu's POSIX preloader (gRPC's sockets and wake-up fds fail with it); the
# disk-full test below covers failed writes for real, and the fault points below each kind of write.
@pytest.mark.parametrize("fault", ["posix/io/sync/fdatasync"])
def test_storage_fault_fails_the_store_visibly_and_loses_nothing(quiverd, fault):
    # --gpu off: the CUDA runtime's start-up is not what is tested here, and it must not run under fiu's POSIX
    # preloader (a start under fiu-run once hung before its first log line in CI, i.e. in the plugin's load)
    srv = FiuServer(binary=quiverd, seal_rows=200, extra=["--metrics-listen", "off", "--gpu", "off"])
    try:
        srv.start()
        c = srv.client
        c.create("f", 4)
        wr = Writers(srv, "f")
        assert wait_for(lambda: len(wr.acked) >= 500, timeout=60)  # past two seals: blobs and manifests written too
        srv.fiu("-c", f"enable name={fault},failinfo=5")  # EIO
        h = _failed_health(srv)
        assert h is not None, "Health still SERVING after the fault"
        assert "storage write failed" in h.reason, h.reason
        assert grpc_health(srv.addr) == 2  # the standard health check says NOT_SERVING too
        time.sleep(0.3)
        wr.stop()
        assert SC.UNAVAILABLE in wr.errors or SC.INTERNAL in wr.errors, wr.errors
        # every later write is refused with a status that says why
        expect_error(lambda: c.upsert("f", [point("late", [0.0, 0.0, 0.0, 0.0])]), SC.UNAVAILABLE,
                     names=["restart"])
        srv.fiu("-c", f"disable name={fault}")
        srv.kill9()
        srv.use_fiu = False  # the fault has cleared: restart as a plain process
        srv.start()
        _all_acked_served(srv, "f", wr.acked)
    finally:
        srv.cleanup()


def _has_fault_points(binary):
    env = dict(os.environ, QV_FAULT_FIFO="/nonexistent-dir/fiu")  # a build without points refuses the variable
    r = subprocess.run([binary, "--help"], env=env, capture_output=True, text=True, timeout=30)
    return "no fault points" not in r.stderr


# Each synced write of the store fails at its own fault point (common/fault.h) while 4 writers run: the store fails
# visibly (Health NOT_SERVING naming the write, later writes UNAVAILABLE), and after the fault clears a restart
# serves every acknowledged point. A seal's blob is the exception by design: the commit leader writes it instead, and
# nothing fails.
@pytest.mark.parametrize("what", ["commit", "seal_persist", "seal_blob", "index", "compact_blob", "compact_swap"])
def test_each_kind_of_storage_write_fails_safely(quiverd, tmp_path, what):
    if not shutil.which("fiu-ctrl"):
        pytest.skip("fiu-utils not installed (tools/deps.sh --test)")
    if not _has_fault_points(quiverd):
        pytest.skip("this quiverd has no fault points (a build with -DQV_FAULT_POINTS=ON: the Debug build)")
    fifo = str(tmp_path / "fiu")
    srv = Server(binary=quiverd, seal_rows=200,
                 extra=["--metrics-listen", "off", "--gpu", "off", "--index-min-rows", "100"])
    srv.env = dict(os.environ, QV_FAULT_FIFO=fifo)
    try:
        srv.start()
        c = srv.client
        index = pb.IndexParams(kind=pb.INDEX_KIND_HNSW) if what == "index" else None
        c.create("f", 4, index=index)
        wr = Writers(srv, "f")
        assert wait_for(lambda: len(wr.acked) >= 700, timeout=60)  # a few seals (and index builds) done
        subprocess.run(["fiu-ctrl", "-f", fifo, "-c", f"enable name=quiver/storage/{what}", str(srv.proc.pid)],
                       check=True, timeout=10)
        if what.startswith("compact"):
            c.admin.Compact(pb.CompactRequest(collection="f", target_rows=10000))  # merges the 200-row segments
        if what == "seal_blob":
            n = len(wr.acked)
            assert wait_for(lambda: len(wr.acked) >= n + 600, timeout=60)  # three more seals, all by the leader
            assert "seal.blob_write_failed" in srv.log_tail(20000)
            _, h = health_ms(srv.addr)
            assert h.status == pb.HealthResponse.STATUS_SERVING, h.reason
            assert not wr.errors, wr.errors[:5]
        else:
            h = _failed_health(srv)
            assert h is not None, f"Health still SERVING after the {what} fault"
            assert f"storage write failed ({what})" in h.reason, h.reason
            expect_error(lambda: c.upsert("f", [point("late", [0.0, 0.0, 0.0, 0.0])]), SC.UNAVAILABLE,
                         names=["restart"])
        wr.stop()
        subprocess.run(["fiu-ctrl", "-f", fifo, "-c", f"disable name=quiver/storage/{what}", str(srv.proc.pid)],
                       check=True, timeout=10)
        srv.kill9()
        srv.env = None
        srv.start()
        _all_acked_served(srv, "f", wr.acked)
        assert srv.client.count("f") == len(wr.acked)
    finally:
        srv.cleanup()


def _log_files(data):
    return sorted(glob.glob(os.path.join(data, "db", "*.log")), key=os.path.getsize)


def test_damage_in_the_middle_of_the_log_refuses_start_then_salvage_reports(make_server):
    srv = make_server(extra=["--metrics-listen", "off"]).start()
    c = srv.client
    c.create("d", 4)
    for i in range(300):  # one synced write batch each
        c.upsert("d", [point(f"p{i}", [float(i), 0.0, 1.0, 2.0])])
    srv.kill9()
    log = _log_files(srv.data)[-1]
    size = os.path.getsize(log)
    assert size > 15000, size
    with open(log, "r+b") as f:  # damage one record about a third of the way in
        f.seek(size // 3)
        b = f.read(16)
        f.seek(size // 3)
        f.write(bytes(x ^ 0x5A for x in b))
    with pytest.raises(RuntimeError):
        srv.start(timeout=30)
    text = srv._this_start_log()
    assert "DATA_LOSS" in text and os.path.basename(log) in text and "--salvage" in text, text[-2000:]
    srv.flags.append("--salvage")
    srv.start()
    text = srv._this_start_log()
    assert "store.salvaged" in text and "batches_lost=" in text, text[-2000:]
    lost = int(text.split("batches_lost=")[1].split()[0])
    assert lost > 50, text[-2000:]
    n = srv.client.count("d")
    assert 0 < n < 300 and n + lost >= 295, (n, lost)
    assert glob.glob(os.path.join(srv.data, "salvage-*", os.path.basename(log)))


def test_torn_tail_is_not_damage(make_server):
    srv = make_server(extra=["--metrics-listen", "off"]).start()
    c = srv.client
    c.create("d", 4)
    for i in range(50):
        c.upsert("d", [point(f"p{i}", [float(i), 0.0, 1.0, 2.0])])
    srv.kill9()
    log = _log_files(srv.data)[-1]
    size = os.path.getsize(log)
    with open(log, "r+b") as f:  # the last write half on disk: a crash in the middle of it (never acknowledged)
        f.truncate(size - 20)
    srv.start()
    assert srv.client.count("d") == 49


def test_disk_full_is_a_clear_error_and_corrupts_nothing(make_server, tmp_path):
    """A 24 MiB file system fills up under upserts: with an 8 MiB reserve (--min-free-mb) the server refuses further
    upserts with RESOURCE_EXHAUSTED naming the free space, writes nothing of them, stays up and serving reads, and
    every acknowledged point is there on a disk with room."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        srv = make_server(extra=["--metrics-listen", "off", "--min-free-mb", "8"])
        srv.data = str(mnt / "data")
        srv.start()
        c = srv.client
        c.create("full", 64)
        acked = {}
        code = None
        for i in range(100000):
            pts = [point(f"p{i}-{j}", [float(i), float(j)] + [0.25] * 62, text="z" * 2000) for j in range(50)]
            try:
                c.upsert("full", pts)
                acked.update((p.id, p.vector[0]) for p in pts)
            except grpc.RpcError as e:
                code, msg = e.code(), e.details()
                break
        assert code == SC.RESOURCE_EXHAUSTED and "disk space" in msg and "--min-free-mb" in msg, (code, msg)
        assert len(acked) > 1000
        time.sleep(0.3)
        assert srv.running
        _, h = health_ms(srv.addr)
        assert h.status == pb.HealthResponse.STATUS_SERVING, h.reason  # reads are served; the store did not fail
        assert c.count("full") == len(acked)
        expect_error(lambda: c.upsert("full", [point("one-more", [0.0] * 64)]), SC.RESOURCE_EXHAUSTED,
                     ["disk space"])
        assert c.get("full", ["one-more"]) == []  # nothing of a refused upsert was written
        srv.kill9()
        # the fault clears: the same files on a disk with room
        roomy = tmp_path / "roomy"
        shutil.copytree(mnt / "data", roomy)
        srv.data = str(roomy)
        srv.start()
        got = srv.client.get_map("full", list(acked), with_vectors=True)
        missing = [p for p in acked if p not in got]
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged points lost, e.g. {missing[:5]}"
    finally:
        srv.kill9()
        subprocess.run(["umount", "-l", str(mnt)])
