"""Online backup and offline restore (Admin.Backup / ListBackups / VerifyBackup, `quiver backup ...`,
`quiver restore ...`) against real quiverd processes.

What is checked, always by reading the restored store back through a second quiverd:
- a backup taken under a 4-writer load is prefix-consistent with the acknowledgement order: every write acknowledged
  before Backup was called is in it, each writer's points in it are exactly a prefix of what that writer sent (no
  gaps), nothing sent after Backup returned is in it, and the restored server's Count agrees with what it holds;
- kill -9 of the server in the middle of a Backup, 10 rounds: after each restart ListBackups lists only complete
  backups (each verifies; the list never shrinks and grows by at most one per round), the live data is intact, and
  the latest listed backup restores to the count it was taken at;
- one flipped byte in a backup file: VerifyBackup says DATA_LOSS naming the file, `quiver backup verify` and
  `quiver restore` fail naming it and leave no store behind; another, intact backup still verifies and restores;
- incremental backups: after 1 % more writes a second backup copies a small fraction of its size;
- errors: no --backup-dir (FAILED_PRECONDITION naming the flag), an unknown id (NOT_FOUND), two concurrent Backups
  (the second FAILED_PRECONDITION), restore into a non-empty directory or of a missing backup; the backup directory
  names (standalone, --shard-name, the advertised address); the admin role when API keys are on.

Environment: QUIVERD and QUIVER_CLI (ctest sets both; defaults build/quiverd and build/quiver).
"""
import json
import os
import random
import subprocess
import threading
import time

import grpc
import numpy as np

from qvtest import SC, Server, expect_error, pb, point, vec_of

BASE_FLAGS = ["--metrics-listen", "off", "--gpu", "off"]


# ---------------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------------
def cli(quiver_bin, *args, addr=None, json_out=False, timeout=300):
    """`quiver [--addr ADDR] [--json] args...` -> CompletedProcess (text; never raises on the exit status)."""
    cmd = [quiver_bin] + (["--addr", addr] if addr else []) + (["--json"] if json_out else []) + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def ok(r):
    assert r.returncode == 0, f"{r.args}: exit {r.returncode}\nstdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-3000:]}"
    return r


def failed(r, what):
    assert r.returncode != 0, f"{what}: {r.args} succeeded, want a failure\nstdout: {r.stdout[-2000:]}"
    assert r.stderr.strip(), f"{what}: exit {r.returncode} with nothing on stderr"
    return r


def backup_server(make_server, bdir, seal_rows=None, extra=()):
    flags = list(BASE_FLAGS) + (["--backup-dir", str(bdir)] if bdir is not None else []) + list(extra)
    return make_server(seal_rows=seal_rows, extra=flags)


def server_on(make_server, data, seal_rows=None):
    """A quiverd (no --backup-dir) on an existing data directory, e.g. a restored one."""
    s = make_server(seal_rows=seal_rows, extra=list(BASE_FLAGS))
    s.data = str(data)
    return s.start()


def backup(client, timeout=300):
    return client.admin.Backup(pb.BackupRequest(), timeout=timeout)


def list_backups(client):
    return list(client.admin.ListBackups(pb.ListBackupsRequest(), timeout=60).backups)


def verify(client, bid, timeout=300):
    return client.admin.VerifyBackup(pb.VerifyBackupRequest(id=bid), timeout=timeout)


def restore(quiver_bin, src, bid, data):
    return cli(quiver_bin, "restore", "--from", src, "--backup", bid, "--data", data, json_out=True)


def scroll_all(client, coll, with_vectors=True):
    out, cursor = {}, ""
    while True:
        r = client.q.Scroll(pb.ScrollRequest(collection=coll, limit=1000, cursor=cursor, with_vectors=with_vectors))
        for p in r.points:
            assert p.id not in out, f"Scroll returned {p.id} twice"
            out[p.id] = p
        cursor = r.next_cursor
        if not cursor:
            return out


def load(client, coll, ids, vecs, batch=1000):
    for s in range(0, len(ids), batch):
        client.upsert(coll, [point(i, v) for i, v in zip(ids[s:s + batch], vecs[s:s + batch])])


def backup_files(bdir, bid):
    """Paths (relative to the backup directory) of the files a backup references, from its meta/<id> file; the
    files of private/<id>/ if the meta file cannot be read that way."""
    files = set()
    with open(os.path.join(bdir, "meta", str(bid)), "r", errors="replace") as f:
        for line in f:
            tok = line.split()
            if tok and tok[0].startswith(("shared_checksum/", "shared/", "private/")):
                files.add(tok[0])
    if not files:
        pdir = os.path.join(bdir, "private", str(bid))
        for root, _dirs, names in os.walk(pdir):
            files.update(os.path.relpath(os.path.join(root, n), bdir) for n in names)
    return files


def flip_middle_byte(path):
    size = os.path.getsize(path)
    assert size > 0, path
    with open(path, "r+b") as f:
        f.seek(size // 2)
        b = f.read(1)
        f.seek(size // 2)
        f.write(bytes([b[0] ^ 0xFF]))
        f.flush()
        os.fsync(f.fileno())
    assert os.path.getsize(path) == size


def tree(path):
    """{relative path: bytes} of every file under path (to show a directory was left alone)."""
    out = {}
    for root, _dirs, names in os.walk(path):
        for n in names:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, path)] = f.read()
    return out


META_SLACK = 64 << 10  # copied_bytes counts every byte a backup added to the directory, its meta/<id> file too


def check_info(b, bdir):
    assert b.id > 0 and b.files > 0 and b.size_bytes > 0, b
    assert b.directory == str(bdir), (b.directory, str(bdir))
    assert abs(b.created_unix - time.time()) < 3600, b.created_unix


# ---------------------------------------------------------------------------------------------------------------------
# 1. a backup under a 4-writer load is prefix-consistent with the acknowledgement order
# ---------------------------------------------------------------------------------------------------------------------
def test_backup_under_load_restores_a_prefix_consistent_store(make_server, quiver_bin, tmp_path, capsys):
    broot = tmp_path / "backups"
    srv = backup_server(make_server, broot, seal_rows=300, extra=["--index-min-rows", "100"]).start()
    c = srv.client
    dim = 8
    c.create("bk", dim, index=pb.IndexParams(kind=pb.INDEX_KIND_HNSW))

    def vec(k, i):
        return [float(k), float(i), float(i % 7), 1.0, float(i // 3), 0.5, float(k * 1000 + i), -1.0]

    nw = 4
    acked = [[] for _ in range(nw)]   # per writer, indexes in acknowledgement order
    sent = [0] * nw                   # per writer, upserts started
    errors = []
    stop = threading.Event()

    def writer(k):
        cl = srv.new_client()
        i = 0
        try:
            while not stop.is_set():
                sent[k] = i + 1
                try:
                    cl.upsert("bk", [point(f"w{k}-{i}", vec(k, i))])
                except grpc.RpcError as e:
                    errors.append((k, i, e.code(), e.details()))
                    return
                acked[k].append(i)
                i += 1
        finally:
            cl.close()

    ts = [threading.Thread(target=writer, args=(k,)) for k in range(nw)]
    for t in ts:
        t.start()
    time.sleep(1.5)
    before = [len(a) for a in acked]          # acknowledged before Backup was called
    t0 = time.monotonic()
    r = backup(srv.new_client())
    took = time.monotonic() - t0
    started_by_end = list(sent)               # upserts with an index >= this were sent after Backup returned
    time.sleep(1.0)
    stop.set()
    for t in ts:
        t.join()
    assert not errors, f"writers failed: {errors[:5]}"
    assert all(b > 20 for b in before), f"too little load before the backup: {before}"
    b = r.backup
    bdir = broot / "standalone"
    check_info(b, bdir)
    assert 0 < b.copied_bytes <= b.size_bytes + META_SLACK, b
    assert os.path.isdir(bdir / "meta"), os.listdir(broot)
    # the source still holds every acknowledged write (the backup took nothing away)
    assert c.count("bk") == sum(len(a) for a in acked)

    listed = list_backups(c)
    assert [x.id for x in listed] == [b.id], listed
    assert (listed[0].size_bytes, listed[0].files, listed[0].directory) == (b.size_bytes, b.files, b.directory)
    v = verify(c, b.id)
    assert v.files == b.files and v.bytes_checked == b.size_bytes, (v, b)

    # restore it offline with the CLI and open it with a second server
    target = tmp_path / "restored"
    out = json.loads(ok(restore(quiver_bin, bdir, b.id, target)).stdout)
    assert out["backup"] == b.id and os.path.abspath(out["data"]) == str(target) and out["bytes"] > 0, out
    assert os.path.isdir(target / "db"), os.listdir(target)
    srv2 = server_on(make_server, target, seal_rows=300)
    c2 = srv2.client
    assert c2.names() == ["bk"]
    info = c2.describe("bk")
    assert info.dim == dim and info.index.kind == pb.INDEX_KIND_HNSW, info
    got = scroll_all(c2, "bk")
    per = [[] for _ in range(nw)]
    for pid, p in got.items():
        assert pid.startswith("w") and "-" in pid, f"unexpected point {pid}"
        k, i = (int(x) for x in pid[1:].split("-"))
        assert 0 <= k < nw and i < sent[k], f"{pid} was never sent"
        assert np.array_equal(vec_of(p), np.asarray(vec(k, i), np.float32)), f"{pid}: vector {list(p.vector)}"
        per[k].append(i)
    summary = []
    for k in range(nw):
        idx = sorted(per[k])
        n = len(idx)
        gaps = sorted(set(range(n)) - set(idx))
        assert idx == list(range(n)), (f"writer {k}: restored points are not a prefix of its acknowledgement order "
                                       f"({n} points, highest {idx[-1] if idx else None}, first gaps {gaps[:10]})")
        assert n >= before[k], f"writer {k}: {before[k]} acknowledged before Backup was called, only {n} restored"
        assert n <= started_by_end[k], (f"writer {k}: {n} restored, but only {started_by_end[k]} were sent before "
                                        f"Backup returned")
        summary.append(f"w{k}: acked-before {before[k]} restored {n} sent-by-end {started_by_end[k]} "
                       f"total {len(acked[k])}")
    assert c2.count("bk") == len(got), (c2.count("bk"), len(got))
    hit = c2.search("bk", vec(0, 1), 1)
    assert hit.hits and hit.hits[0].id == "w0-1", hit
    with capsys.disabled():
        print(f"\n[backup under load] took {took * 1000:.0f} ms (server {r.took_ms} ms), {b.files} files, "
              f"{b.size_bytes} bytes; " + "; ".join(summary))


# ---------------------------------------------------------------------------------------------------------------------
# 2. kill -9 during Backup
# ---------------------------------------------------------------------------------------------------------------------
def test_kill9_during_backup_never_lists_a_partial_backup(make_server, quiver_bin, tmp_path, capsys):
    broot = tmp_path / "backups"
    bdir = broot / "standalone"
    srv = backup_server(make_server, broot, seal_rows=10000).start()
    c = srv.client
    dim, n0, per_round = 64, 80000, 10000
    c.create("k", dim)
    rng = np.random.default_rng(7)
    ids = [f"p{i}" for i in range(n0)]
    vecs = rng.standard_normal((n0, dim)).astype(np.float32)
    load(c, "k", ids, vecs)
    assert c.count("k") == n0
    count_at = {}        # backup id -> the collection's count when that backup was taken
    listed_ids = []
    expected = n0
    last_wall = None
    rnd = random.Random(11)
    outcomes = []
    mid_copy = 0
    for rnd_i in range(10):
        # new data every round, so that every backup has something of its own to copy
        new_ids = [f"r{rnd_i}-{j}" for j in range(per_round)]
        new_vecs = rng.standard_normal((per_round, dim)).astype(np.float32)
        load(srv.client, "k", new_ids, new_vecs)
        ids += new_ids
        vecs = np.concatenate([vecs, new_vecs])
        expected += per_round
        # half the rounds anywhere in 0-300 ms, half within the last backup's wall time as the client saw it (more
        # kills in the middle of the copy)
        hi = 0.3 if (rnd_i % 2 == 0 or last_wall is None) else min(0.3, max(0.005, 1.2 * last_wall))
        delay = rnd.uniform(0, hi)
        res = {}
        bc = srv.new_client(timeout=120)

        def run_backup():
            try:
                res["r"] = backup(bc, timeout=120)
                res["wall"] = time.monotonic() - t0
            except grpc.RpcError as e:
                res["err"] = (e.code(), e.details())

        t = threading.Thread(target=run_backup)
        t0 = time.monotonic()
        t.start()
        time.sleep(delay)
        srv.kill9()
        # what the killed backup left half-written (RocksDB writes to *.tmp names and renames when complete)
        partial = [os.path.relpath(os.path.join(r, n), bdir) for r, ds, fs in os.walk(bdir) for n in ds + fs
                   if ".tmp" in n]
        t.join(timeout=130)
        bc.close()
        assert not t.is_alive()
        if "r" in res:
            last_wall = res["wall"]
            outcomes.append(f"{delay * 1000:.0f}ms:done#{res['r'].backup.id}")
        else:
            outcomes.append(f"{delay * 1000:.0f}ms:killed({res['err'][0].name}" +
                            (f",{len(partial)} partial)" if partial else ")"))
        mid_copy += bool(partial)
        srv.start()
        c = srv.client
        listed = list_backups(c)
        now = [b.id for b in listed]
        assert now == sorted(now) and len(set(now)) == len(now), f"round {rnd_i}: not oldest first: {now}"
        assert set(listed_ids) <= set(now), f"round {rnd_i}: backups disappeared: had {listed_ids}, now {now}"
        new = [x for x in now if x not in listed_ids]
        assert len(new) <= 1, f"round {rnd_i}: more than one new backup listed: {new}"
        if "r" in res:
            assert res["r"].backup.id in now, f"round {rnd_i}: acknowledged backup {res['r'].backup.id} not listed"
        for x in new:
            count_at[x] = expected
        for b in listed:
            check_info(b, bdir)
            v = verify(c, b.id)
            assert v.files == b.files and v.bytes_checked == b.size_bytes, (rnd_i, b, v)
        listed_ids = now
        assert c.count("k") == expected, f"round {rnd_i}: count {c.count('k')}, want {expected}"
    # the store's points after all the kills, spot-checked
    sample = rnd.sample(range(len(ids)), 300)
    got = c.get_map("k", [ids[i] for i in sample])
    for i in sample:
        assert np.array_equal(vec_of(got[ids[i]]), vecs[i]), ids[i]
    restored_latest = None
    if listed_ids:
        target = tmp_path / "restored"
        out = json.loads(ok(restore(quiver_bin, bdir, "latest", target)).stdout)
        assert out["backup"] == listed_ids[-1], (out, listed_ids)
        restored_latest = listed_ids[-1]
        srv2 = server_on(make_server, target, seal_rows=10000)
        assert srv2.client.count("k") == count_at[listed_ids[-1]]
        got2 = srv2.client.get_map("k", [ids[i] for i in sample if i < count_at[listed_ids[-1]]])
        for i in sample:
            if i < count_at[listed_ids[-1]]:
                assert np.array_equal(vec_of(got2[ids[i]]), vecs[i]), ids[i]
        srv2.cleanup()
    # the engine still works after the interruptions
    r = backup(c)
    assert r.backup.id > max(listed_ids, default=0), (r.backup.id, listed_ids)
    assert [b.id for b in list_backups(c)] == listed_ids + [r.backup.id]
    v = verify(c, r.backup.id)
    assert v.bytes_checked == r.backup.size_bytes
    # the interrupted backups' partial files are gone once the directory has been opened for a backup again
    left = [os.path.relpath(os.path.join(r_, n), bdir) for r_, ds, fs in os.walk(bdir) for n in ds + fs
            if ".tmp" in n]
    assert not left, f"partial files of interrupted backups left behind: {left[:10]}"
    with capsys.disabled():
        print(f"\n[kill -9 during backup] rounds: {' '.join(outcomes)}; {mid_copy} kills left partial files; "
              f"listed {listed_ids}; restored latest #{restored_latest}; final backup #{r.backup.id} in "
              f"{r.took_ms} ms")


# ---------------------------------------------------------------------------------------------------------------------
# 3. a flipped byte
# ---------------------------------------------------------------------------------------------------------------------
def test_flipped_byte_is_found_by_verify_and_restore(make_server, quiver_bin, tmp_path, capsys):
    broot = tmp_path / "backups"
    bdir = broot / "standalone"
    srv = backup_server(make_server, broot, seal_rows=2000).start()
    c = srv.client
    dim = 32
    c.create("f", dim)
    rng = np.random.default_rng(3)
    ids1 = [f"a{i}" for i in range(6000)]
    v1 = rng.standard_normal((6000, dim)).astype(np.float32)
    load(c, "f", ids1, v1)
    c.flush("f")
    b1 = backup(c).backup
    ids2 = [f"b{i}" for i in range(3000)]
    v2 = rng.standard_normal((3000, dim)).astype(np.float32)
    load(c, "f", ids2, v2)
    c.flush("f")
    b2 = backup(c).backup
    assert b2.id > b1.id
    verify(c, b1.id)
    verify(c, b2.id)
    f1, f2 = backup_files(bdir, b1.id), backup_files(bdir, b2.id)
    own = [f for f in f2 - f1 if os.path.getsize(bdir / f) > 0]
    assert own, f"backup {b2.id} has no file of its own: {sorted(f2)}"
    victim = max(own, key=lambda f: os.path.getsize(bdir / f))
    base = os.path.basename(victim)
    flip_middle_byte(bdir / victim)

    expect_error(lambda: verify(c, b2.id), SC.DATA_LOSS, names=[base], what=f"VerifyBackup({b2.id}) after damage")
    r = failed(cli(quiver_bin, "backup", "verify", b2.id, addr=srv.addr), "backup verify of the damaged backup")
    assert base in r.stderr, r.stderr
    target = tmp_path / "bad-restore"
    r = failed(restore(quiver_bin, bdir, b2.id, target), "restore of the damaged backup")
    assert base in r.stderr, r.stderr
    assert not os.path.exists(target / "db"), os.listdir(target)

    # the other backup shares nothing damaged: it verifies and restores
    v = verify(c, b1.id)
    assert v.files == b1.files and v.bytes_checked == b1.size_bytes
    out = json.loads(ok(cli(quiver_bin, "backup", "verify", b1.id, addr=srv.addr, json_out=True)).stdout)
    assert out["id"] == b1.id and out["bytes_checked"] == b1.size_bytes and out["files"] == b1.files, out
    good = tmp_path / "good-restore"
    ok(restore(quiver_bin, bdir, b1.id, good))
    srv2 = server_on(make_server, good, seal_rows=2000)
    c2 = srv2.client
    assert c2.count("f") == 6000
    got = c2.get_map("f", ids1[::7] + ids2[:5])
    assert not any(i in got for i in ids2[:5])
    for i in range(0, 6000, 7):
        assert np.array_equal(vec_of(got[ids1[i]]), v1[i]), ids1[i]
    with capsys.disabled():
        print(f"\n[flipped byte] damaged {victim} ({os.path.getsize(bdir / victim)} bytes) of backup {b2.id}")


# ---------------------------------------------------------------------------------------------------------------------
# 4. incremental
# ---------------------------------------------------------------------------------------------------------------------
def test_incremental_backup_copies_little(make_server, quiver_bin, tmp_path, capsys):
    broot = tmp_path / "backups"
    srv = backup_server(make_server, broot).start()
    c = srv.client
    n, dim = 50000, 32
    c.create("inc", dim)
    rng = np.random.default_rng(5)
    ids = [f"p{i}" for i in range(n)]
    load(c, "inc", ids, rng.standard_normal((n, dim)).astype(np.float32), batch=2000)
    c.flush("inc")
    r1 = backup(c)
    more = n // 100
    load(c, "inc", [f"q{i}" for i in range(more)], rng.standard_normal((more, dim)).astype(np.float32))
    r2 = backup(c)
    b1, b2 = r1.backup, r2.backup
    assert b2.id > b1.id
    assert 0 < b1.copied_bytes <= b1.size_bytes + META_SLACK, b1
    ratio = b2.copied_bytes / b2.size_bytes
    with capsys.disabled():
        print(f"\n[incremental] #1: size {b1.size_bytes} copied {b1.copied_bytes} ({r1.took_ms} ms); "
              f"#2 after +1%: size {b2.size_bytes} copied {b2.copied_bytes} ({r2.took_ms} ms) "
              f"-> copied/size {ratio:.4f}")
    assert ratio < 0.2, f"backup #2 copied {b2.copied_bytes} of {b2.size_bytes} bytes ({ratio:.3f})"
    # both restore to what they hold
    t2 = tmp_path / "r2"
    ok(restore(quiver_bin, broot / "standalone", b2.id, t2))
    srv2 = server_on(make_server, t2)
    assert srv2.client.count("inc") == n + more


# ---------------------------------------------------------------------------------------------------------------------
# 5. errors
# ---------------------------------------------------------------------------------------------------------------------
def test_without_backup_dir_is_failed_precondition(make_server, quiver_bin):
    srv = backup_server(make_server, None).start()
    c = srv.client
    for name, fn in (("Backup", lambda: backup(c)), ("ListBackups", lambda: list_backups(c)),
                     ("VerifyBackup", lambda: verify(c, 1))):
        expect_error(fn, SC.FAILED_PRECONDITION, names=["--backup-dir"], what=name)
    r = failed(cli(quiver_bin, "backup", "create", addr=srv.addr), "backup create without --backup-dir")
    assert "--backup-dir" in r.stderr, r.stderr


def test_unknown_id_and_restore_errors(make_server, quiver_bin, tmp_path):
    broot = tmp_path / "backups"
    bdir = broot / "standalone"
    srv = backup_server(make_server, broot).start()
    c = srv.client
    c.create("e", 4)
    c.upsert("e", [point(f"p{i}", [float(i), 1.0, 2.0, 3.0]) for i in range(100)])
    out = json.loads(ok(cli(quiver_bin, "backup", "create", addr=srv.addr, json_out=True)).stdout)
    for k in ("id", "created_unix", "size_bytes", "files", "copied_bytes", "directory", "took_ms"):
        assert k in out, (k, out)
    assert out["directory"] == str(bdir) and out["id"] >= 1, out
    lst = json.loads(ok(cli(quiver_bin, "backup", "list", addr=srv.addr, json_out=True)).stdout)
    assert [b["id"] for b in lst["backups"]] == [out["id"]], lst
    assert lst["backups"][0]["size_bytes"] == out["size_bytes"] and lst["backups"][0]["files"] == out["files"]
    assert lst["backups"][0]["directory"] == str(bdir)
    expect_error(lambda: verify(c, 999), SC.NOT_FOUND, names=["999"], what="VerifyBackup(999)")
    r = failed(cli(quiver_bin, "backup", "verify", 999, addr=srv.addr), "backup verify 999")
    assert "999" in r.stderr or "NOT_FOUND" in r.stderr, r.stderr

    # a non-empty target is refused and left as it was
    busy = tmp_path / "busy"
    (busy / "sub").mkdir(parents=True)
    (busy / "keep.txt").write_text("precious\n")
    (busy / "sub" / "x.bin").write_bytes(b"\x00\x01\x02")
    before = tree(busy)
    failed(restore(quiver_bin, bdir, out["id"], busy), "restore into a non-empty directory")
    assert tree(busy) == before, sorted(tree(busy))
    # a missing backup id
    fresh = tmp_path / "fresh"
    r = failed(restore(quiver_bin, bdir, 999, fresh), "restore of backup 999")
    assert "999" in r.stderr, r.stderr
    assert not os.path.exists(fresh / "db")
    # a directory that holds no backups
    empty_src = tmp_path / "nothing-here"
    empty_src.mkdir()
    failed(restore(quiver_bin, empty_src, "latest", tmp_path / "fresh2"), "restore from a directory with no backups")
    assert not os.path.exists(tmp_path / "fresh2" / "db")
    # an empty existing target is fine
    empty = tmp_path / "empty"
    empty.mkdir()
    ok(restore(quiver_bin, bdir, "latest", empty))
    srv2 = server_on(make_server, empty)
    assert srv2.client.count("e") == 100
    # before any backup was taken (the server's backup directory does not exist yet)
    srv3 = backup_server(make_server, tmp_path / "backups3").start()
    assert list_backups(srv3.client) == []
    expect_error(lambda: verify(srv3.client, 999), SC.NOT_FOUND, names=["999"],
                 what="VerifyBackup(999) before any backup")


def test_concurrent_backups_second_is_failed_precondition(make_server, capsys, tmp_path):
    broot = tmp_path / "backups"
    srv = backup_server(make_server, broot, seal_rows=5000).start()
    c = srv.client
    dim, n = 64, 20000
    c.create("cc", dim)
    load(c, "cc", [f"p{i}" for i in range(n)], np.random.default_rng(1).standard_normal((n, dim)).astype(np.float32))
    barrier = threading.Barrier(3)
    res = [None] * 3

    def go(i):
        cl = srv.new_client()
        barrier.wait()
        try:
            res[i] = ("OK", backup(cl).backup.id)
        except grpc.RpcError as e:
            res[i] = (e.code().name, e.details())
        finally:
            cl.close()

    ts = [threading.Thread(target=go, args=(i,)) for i in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    oks = [r[1] for r in res if r[0] == "OK"]
    refused = [r for r in res if r[0] != "OK"]
    assert oks, res
    for code, msg in refused:
        assert code == "FAILED_PRECONDITION" and msg, res
    assert sorted(b.id for b in list_backups(c)) == sorted(oks)
    with capsys.disabled():
        print(f"\n[concurrent backups] {len(oks)} done, {len(refused)} refused: {res}")


def test_backup_directory_names(quiverd, tmp_path):
    class Shard(Server):
        def cmdline(self):
            cmd = super().cmdline()
            cmd[cmd.index("standalone")] = "shard"
            return cmd

    broot = tmp_path / "backups"
    named = Shard(binary=quiverd, extra=list(BASE_FLAGS) + ["--backup-dir", str(broot), "--shard-name", "s-one.A_1"])
    anon = Shard(binary=quiverd, extra=list(BASE_FLAGS) + ["--backup-dir", str(broot)])
    try:
        for s in (named, anon):
            s.start()
            s.client.create("n", 2)
            s.client.upsert("n", [point("a", [1.0, 2.0])])
        b = backup(named.client).backup
        assert b.directory == str(broot / "s-one.A_1"), b.directory
        b = backup(anon.client).backup
        assert b.directory == str(broot / f"127.0.0.1_{anon.port}"), b.directory
        assert list_backups(named.client)[0].directory == str(broot / "s-one.A_1")
    finally:
        named.cleanup()
        anon.cleanup()


def test_backup_needs_the_admin_role(make_server, tmp_path):
    keys = {"read": "r" * 24, "write": "w" * 24, "admin": "a" * 24}
    kf = tmp_path / "keys"
    kf.write_text("".join(f"{k} {role}\n" for role, k in keys.items()))
    srv = backup_server(make_server, tmp_path / "backups", extra=["--api-keys", str(kf)]).start()
    c = srv.client

    def md(role):
        return [("authorization", f"Bearer {keys[role]}")]

    c.q.CreateCollection(pb.CreateCollectionRequest(name="a", dim=2, metric=pb.METRIC_L2), metadata=md("admin"))
    expect_error(lambda: c.admin.Backup(pb.BackupRequest(), metadata=md("write")), SC.PERMISSION_DENIED,
                 what="Backup with a write key")
    expect_error(lambda: c.admin.Backup(pb.BackupRequest()), SC.UNAUTHENTICATED, what="Backup without a key")
    b = c.admin.Backup(pb.BackupRequest(), metadata=md("admin")).backup
    expect_error(lambda: c.admin.VerifyBackup(pb.VerifyBackupRequest(id=b.id), metadata=md("read")),
                 SC.PERMISSION_DENIED, what="VerifyBackup with a read key")
    c.admin.VerifyBackup(pb.VerifyBackupRequest(id=b.id), metadata=md("admin"))
