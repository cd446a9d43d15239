#!/usr/bin/python3
"""Online backup and offline restore against plain file copies, and what a running backup does to writers.

Starts its own quiverd (build/quiverd, or $QUIVERD) with --backup-dir on a free port in a temp dir, loads N x DIM
points (default 1,000,000 x 128, normal random, fixed seed) into an HNSW collection, seals the tail (Admin.Flush) and
waits until every sealed segment's index is built. Then, in the same run:
  (a) backup:   `cp -r` of the data directory against Admin.Backup into the empty --backup-dir (a full copy). Both
                start after a `sync` and include a final `sync` in their time (Backup returns when its copy is
                durable). MB/s = bytes copied / wall seconds (cp: every file of the data dir; Backup: copied_bytes).
  (b) restore:  `quiver restore` of that backup into a fresh directory against `cp -r` of the backup directory,
                both timed the same way (MB/s = restore's reported bytes, and every file of the backup directory for
                cp). The restored store is then opened by a second quiverd and its Count checked.
  (d) incremental: N/100 new points, then a second Backup in the same directory: copied_bytes / size_bytes.
  (c) writers:  a single client upserting batches of --write-batch points back to back; its latencies while no backup
                runs against those while a full backup runs. A full backup needs an empty backup directory, so each
                round restarts quiverd with a fresh --backup-dir, lets the writer run alone for a while (the
                baseline), then calls Backup with the writer still running; upserts that started while Backup ran
                are "during". Rounds repeat until --seconds of "during" time is gathered (or --p99-rounds).
Prints a table and the ratios: backup/cp MB/s (goal >= 0.8), restore/cp MB/s, write p99 during/idle (goal < 2), and
the incremental copied/size. The page cache is warm for every copy (the data was just written).

    /usr/bin/python3 bench/backup/backup_bench.py                    # 1M x 128 (long on a 2-core machine)
    /usr/bin/python3 bench/backup/backup_bench.py --n 100000         # quick run
Options: --dim, --seal-rows, --seconds, --write-batch, --p99-rounds, --out FILE (JSON). $QUIVER_CLI: the CLI
(default build/quiver).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "integration"))
from qvtest import Server, cli_path, pb, point  # noqa: E402

MB = 1e6


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def tree_bytes(path):
    n = 0
    for root, _dirs, names in os.walk(path):
        for f in names:
            try:
                n += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return n


def timed_copy(src, dst):
    """sync; then `cp -r src dst; sync` timed. Returns seconds."""
    os.sync()
    t0 = time.monotonic()
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
    os.sync()
    return time.monotonic() - t0


def quiver_cli():
    p = cli_path()
    if not p or not os.access(p, os.X_OK):
        raise SystemExit(f"no quiver CLI at {p or 'build/quiver'} (set QUIVER_CLI)")
    return p


def set_flag(srv, flag, value):
    if flag in srv.flags:
        srv.flags[srv.flags.index(flag) + 1] = value
    else:
        srv.flags += [flag, value]


def wait_indexed(c, coll, timeout):
    t0 = time.monotonic()
    last = 0
    while time.monotonic() - t0 < timeout:
        segs = c.describe(coll).segments
        sealed = [s for s in segs if s.state == pb.SEGMENT_STATE_SEALED]
        busy = [s for s in sealed if s.index_state in (pb.INDEX_STATE_PENDING, pb.INDEX_STATE_BUILDING)]
        bad = [s for s in sealed if s.index_state == pb.INDEX_STATE_FAILED]
        if bad:
            raise SystemExit(f"index build FAILED for segments {[s.id for s in bad]}")
        if not busy:
            return sealed
        if time.monotonic() - last > 30:
            done = sum(s.index_state == pb.INDEX_STATE_READY for s in sealed)
            print(f"  indexes: {done}/{len(sealed)} ready, building {[round(s.index_progress, 2) for s in busy]}",
                  flush=True)
            last = time.monotonic()
        time.sleep(1)
    raise SystemExit(f"indexes not built after {timeout} s")


def load(srv, coll, start, n, dim, seed, batch=2000):
    c = srv.client
    raw = c.channel.unary_unary("/quiver.v1.Quiver/Upsert", request_serializer=None,
                                response_deserializer=pb.UpsertResponse.FromString)
    rng = np.random.default_rng(seed)
    for s in range(start, start + n, batch):
        e = min(start + n, s + batch)
        v = rng.standard_normal((e - s, dim)).astype(np.float32)
        req = pb.UpsertRequest(collection=coll)
        for i, row in zip(range(s, e), v):
            p = req.points.add(id=f"p{i}")
            p.vector.extend(row.tolist())
        raw(req.SerializeToString(), timeout=300)


def backup(c, timeout=7200):
    return c.admin.Backup(pb.BackupRequest(), timeout=timeout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="points (default 1,000,000; --n 100000 for a quick run)")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--seal-rows", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=10, help="write-latency time wanted while a backup runs")
    ap.add_argument("--write-batch", type=int, default=10, help="points per upsert of the latency writer")
    ap.add_argument("--p99-rounds", type=int, default=5, help="most restarts with a fresh backup dir in (c)")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--backup-rate-mb", type=int, default=0, help="quiverd --backup-rate-mb (0: unlimited)")
    a = ap.parse_args()
    cli = quiver_cli()
    srv = Server(seal_rows=a.seal_rows,
                 extra=["--metrics-listen", "off"] + (["--backup-rate-mb", str(a.backup_rate_mb)] if a.backup_rate_mb
                                                      else []))
    work = srv.tmp
    bdir_root = os.path.join(work, "backups")
    set_flag(srv, "--backup-dir", bdir_root)
    res = {"n": a.n, "dim": a.dim, "seal_rows": a.seal_rows, "loadavg_start": os.getloadavg()}
    try:
        srv.start()
        c = srv.client
        coll = "bb"
        c.create(coll, a.dim, index=pb.IndexParams(kind=pb.INDEX_KIND_HNSW))
        t0 = time.monotonic()
        load(srv, coll, 0, a.n, a.dim, seed=1)
        c.flush(coll)
        load_s = time.monotonic() - t0
        print(f"loaded {a.n} x {a.dim} in {load_s:.1f} s; waiting for the indexes", flush=True)
        sealed = wait_indexed(c, coll, timeout=6 * 3600)
        index_s = time.monotonic() - t0 - load_s
        assert c.count(coll) == a.n
        data_bytes = tree_bytes(srv.data)
        print(f"{len(sealed)} sealed segments indexed after {index_s:.0f} s more; data dir {data_bytes / MB:.0f} MB",
              flush=True)
        res.update(load_s=round(load_s, 1), index_s=round(index_s, 1), segments=len(sealed), data_bytes=data_bytes)

        # (a) cp -r of the data dir vs a full Backup
        cp_dst = os.path.join(work, "cp-data")
        cp_s = timed_copy(srv.data, cp_dst)
        cp_bytes = tree_bytes(cp_dst)
        shutil.rmtree(cp_dst)
        os.sync()
        t0 = time.monotonic()
        r1 = backup(c)
        os.sync()
        bk_s = time.monotonic() - t0
        b1 = r1.backup
        bdir = b1.directory
        res["a"] = {"cp_bytes": cp_bytes, "cp_s": cp_s, "backup_bytes": b1.copied_bytes, "backup_size": b1.size_bytes,
                    "backup_files": b1.files, "backup_s": bk_s, "backup_took_ms": r1.took_ms}

        # (b) quiver restore vs cp -r of the backup dir
        cpb_dst = os.path.join(work, "cp-backup")
        cpb_s = timed_copy(bdir, cpb_dst)
        cpb_bytes = tree_bytes(cpb_dst)
        shutil.rmtree(cpb_dst)
        target = os.path.join(work, "restored")
        os.sync()
        t0 = time.monotonic()
        rr = subprocess.run([cli, "--json", "restore", "--from", bdir, "--backup", str(b1.id), "--data", target],
                            capture_output=True, text=True)
        os.sync()
        rs_s = time.monotonic() - t0
        if rr.returncode != 0:
            raise SystemExit(f"quiver restore failed ({rr.returncode}): {rr.stderr}")
        rj = json.loads(rr.stdout)
        chk = Server(seal_rows=a.seal_rows, extra=["--metrics-listen", "off"])
        chk.data = target
        try:
            t0 = time.monotonic()
            chk.start(timeout=600)
            open_s = time.monotonic() - t0
            restored_count = chk.client.count(coll)
        finally:
            chk.cleanup()
        shutil.rmtree(target, ignore_errors=True)
        res["b"] = {"cp_bytes": cpb_bytes, "cp_s": cpb_s, "restore_bytes": rj.get("bytes"), "restore_s": rs_s,
                    "restore_took_ms": rj.get("took_ms"), "restored_count": restored_count,
                    "restored_open_s": open_s}

        # (d) incremental: 1 % more points, a second backup in the same directory
        more = max(1, a.n // 100)
        load(srv, coll, a.n, more, a.dim, seed=2)
        r2 = backup(c)
        b2 = r2.backup
        res["d"] = {"new_points": more, "copied_bytes": b2.copied_bytes, "size_bytes": b2.size_bytes,
                    "took_ms": r2.took_ms}

        # (c) writer latency: idle vs while a full backup runs (fresh backup dir per round, via a restart)
        idle, during = [], []
        during_s = 0.0
        rounds = []
        vec_pool = np.random.default_rng(3).standard_normal((1000, a.dim)).astype(np.float32)
        last_bk = 1.0
        for rnd in range(a.p99_rounds):
            if during_s >= a.seconds:
                break
            srv.stop()
            set_flag(srv, "--backup-dir", os.path.join(work, f"backups-c{rnd}"))
            srv.start(timeout=600)
            samples = []  # (start, latency)
            stop = threading.Event()
            werr = []

            def writer():
                cl = srv.new_client()
                i = 0
                try:
                    while not stop.is_set():
                        pts = [point(f"u{rnd}-{i}-{j}", vec_pool[(i * a.write_batch + j) % len(vec_pool)])
                               for j in range(a.write_batch)]
                        s = time.monotonic()
                        cl.upsert(coll, pts)
                        samples.append((s, time.monotonic() - s))
                        i += 1
                except Exception as e:  # noqa: BLE001 (reported below)
                    werr.append(repr(e))
                finally:
                    cl.close()

            wt = threading.Thread(target=writer)
            wt.start()
            warm = time.monotonic()
            base_window = max(1.0, last_bk, a.seconds / a.p99_rounds)
            time.sleep(0.3 + base_window)
            tb0 = time.monotonic()
            rc = backup(srv.new_client(timeout=7200))
            tb1 = time.monotonic()
            stop.set()
            wt.join()
            if werr:
                raise SystemExit(f"writer failed: {werr[0]}")
            last_bk = tb1 - tb0
            during_s += last_bk
            i_ = [lat for s, lat in samples if warm + 0.3 <= s < tb0]
            d_ = [lat for s, lat in samples if tb0 <= s <= tb1]
            idle += i_
            during += d_
            rounds.append({"backup_s": round(last_bk, 3), "copied_bytes": rc.backup.copied_bytes,
                           "idle_writes": len(i_), "during_writes": len(d_)})
            print(f"  (c) round {rnd}: backup {last_bk:.2f} s ({rc.backup.copied_bytes / MB:.0f} MB), "
                  f"{len(i_)} writes idle, {len(d_)} during", flush=True)
            shutil.rmtree(os.path.join(work, f"backups-c{rnd}"), ignore_errors=True)
        res["c"] = {"rounds": rounds, "write_batch": a.write_batch, "idle_n": len(idle), "during_n": len(during),
                    "idle_p50_ms": pct(idle, 50) * 1000, "idle_p99_ms": pct(idle, 99) * 1000,
                    "during_p50_ms": pct(during, 50) * 1000, "during_p99_ms": pct(during, 99) * 1000}
        srv.stop()
    finally:
        srv.cleanup()

    A, B, C, D = res["a"], res["b"], res["c"], res["d"]
    cp_mbps = A["cp_bytes"] / MB / A["cp_s"]
    bk_mbps = A["backup_bytes"] / MB / A["backup_s"]
    cpb_mbps = B["cp_bytes"] / MB / B["cp_s"]
    rs_mbps = (B["restore_bytes"] or 0) / MB / B["restore_s"]
    ratios = {"backup_vs_cp": bk_mbps / cp_mbps, "restore_vs_cp": rs_mbps / cpb_mbps,
              "write_p99_during_vs_idle": C["during_p99_ms"] / C["idle_p99_ms"],
              "incremental_copied_vs_size": D["copied_bytes"] / D["size_bytes"]}
    res["ratios"] = ratios
    res["loadavg_end"] = os.getloadavg()
    print()
    la0, la1 = res["loadavg_start"], res["loadavg_end"]
    print(f"{a.n} x {a.dim}, HNSW, {res['segments']} sealed segments, data dir {res['data_bytes'] / MB:.0f} MB; "
          f"load average {la0[0]:.2f} at start, {la1[0]:.2f} at end ({os.cpu_count()} CPUs)")
    print("| step | MB | s (wall) | MB/s | took_ms reported |")
    print("|---|---:|---:|---:|---:|")
    print(f"| cp -r data dir + sync | {A['cp_bytes'] / MB:.0f} | {A['cp_s']:.2f} | {cp_mbps:.0f} | |")
    print(f"| Admin.Backup (full, {A['backup_files']} files) + sync | {A['backup_bytes'] / MB:.0f} | "
          f"{A['backup_s']:.2f} | {bk_mbps:.0f} | {A['backup_took_ms']} |")
    print(f"| cp -r backup dir + sync | {B['cp_bytes'] / MB:.0f} | {B['cp_s']:.2f} | {cpb_mbps:.0f} | |")
    print(f"| quiver restore + sync | {(B['restore_bytes'] or 0) / MB:.0f} | {B['restore_s']:.2f} | {rs_mbps:.0f} | "
          f"{B['restore_took_ms']} |")
    print(f"restored store: Count {B['restored_count']} (want {a.n}), opened in {B['restored_open_s']:.1f} s")
    print(f"writes (1 client, {C['write_batch']} points/upsert): idle p50 {C['idle_p50_ms']:.2f} ms "
          f"p99 {C['idle_p99_ms']:.2f} ms (n={C['idle_n']}); during backup p50 {C['during_p50_ms']:.2f} ms "
          f"p99 {C['during_p99_ms']:.2f} ms (n={C['during_n']}, {len(C['rounds'])} backups)")
    print(f"incremental: +{D['new_points']} points, backup #2 copied {D['copied_bytes'] / MB:.2f} MB of "
          f"{D['size_bytes'] / MB:.0f} MB")
    print(f"ratios: backup/cp {ratios['backup_vs_cp']:.2f} (goal >= 0.8); restore/cp {ratios['restore_vs_cp']:.2f}; "
          f"write p99 during/idle {ratios['write_p99_during_vs_idle']:.2f} (goal < 2); "
          f"incremental copied/size {ratios['incremental_copied_vs_size']:.4f}")
    if B["restored_count"] != a.n:
        print(f"ERROR: the restored store holds {B['restored_count']} points, want {a.n}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)
    return 0 if B["restored_count"] == a.n else 1


if __name__ == "__main__":
    sys.exit(main())
