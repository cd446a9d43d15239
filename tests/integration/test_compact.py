"""Online compaction through the public API: results unchanged for unchanged points while reads and writes go
on, and a kill -9 at any moment leaves either the old segments or the merged one (never both, never neither),
with nothing acknowledged lost."""
import random
import re
import threading
import time

import numpy as np

from qvtest import pb, point

DIM = 16


def wait_jobs(c, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        jobs = c.stats().compactions
        if all(j.state >= pb.CompactionJob.STATE_DONE for j in jobs):
            return jobs
        time.sleep(0.1)
    raise AssertionError(f"compaction did not finish: {c.stats().compactions}")


def all_hits(c, name, n):
    """Every live point once, via an exact search with k = n; duplicates would mean a row served twice."""
    r = c.q.Search(pb.SearchRequest(collection=name, vector=[0.0] * DIM, k=n, params=pb.SearchParams(exact=True)))
    ids = [h.id for h in r.hits]
    assert len(ids) == len(set(ids)), "a point was returned twice"
    return set(ids)


def test_compaction_keeps_results_under_reads_and_writes(make_server):
    srv = make_server(seal_rows=400, extra=["--index-min-rows", "100", "--compact-deleted-ratio", "0",
                                            "--compact-small-segments", "0"]).start()
    c = srv.client
    r = np.random.default_rng(3)
    fixed = r.standard_normal((2000, DIM)).astype(np.float32)
    c.create("cp", DIM, fields=[("fixed", pb.FIELD_TYPE_BOOL)])
    c.upsert_all("cp", [point(f"f{i}", fixed[i], {"fixed": True}) for i in range(2000)], batch=400)
    churn = r.standard_normal((2000, DIM)).astype(np.float32)
    c.upsert_all("cp", [point(f"c{i}", churn[i], {"fixed": False}) for i in range(2000)], batch=400)
    c.delete("cp", [f"c{i}" for i in range(0, 2000, 2)])
    c.flush("cp")
    before = {s.id: s for s in c.describe("cp").segments}
    queries = r.standard_normal((8, DIM)).astype(np.float32)
    flt = pb.Filter(cond=pb.Condition(field="fixed", eq=pb.Value(bool_value=True)))

    def expected(q):
        d = ((fixed - q) ** 2).sum(1)
        return [f"f{i}" for i in np.argsort(d, kind="stable")[:10]]

    want = [expected(q) for q in queries]
    stop = threading.Event()
    errors = []

    def reader():
        cl = srv.new_client()
        while not stop.is_set():
            for q, w in zip(queries, want):
                req = pb.SearchRequest(collection="cp", vector=q.tolist(), k=10, filter=flt)
                got = [h.id for h in cl.q.Search(req).hits]
                if set(got) != set(w):
                    errors.append(("search", got, w))
            g = cl.get_map("cp", [f"f{i}" for i in range(0, 2000, 37)])
            if len(g) != len(range(0, 2000, 37)):
                errors.append(("get", len(g)))

    def writer():
        cl = srv.new_client()
        j = 0
        while not stop.is_set():
            cl.upsert("cp", [point(f"w{j}-{b}", churn[(j * 7 + b) % 2000], {"fixed": False}) for b in range(20)])
            cl.delete("cp", [f"w{j}-{b}" for b in range(0, 20, 3)])
            j += 1

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    [t.start() for t in threads]
    job = c.admin.Compact(pb.CompactRequest(collection="cp", target_rows=10000))
    assert job.job_id > 0 and job.input_segments >= 2
    jobs = wait_jobs(c)
    time.sleep(0.5)
    stop.set()
    [t.join() for t in threads]
    assert not errors, errors[:3]
    done = [j for j in jobs if j.id == job.job_id][0]
    assert done.state == pb.CompactionJob.STATE_DONE and done.output_segment > 0 and not done.automatic
    assert done.rows_out < done.rows_in
    after = {s.id for s in c.describe("cp").segments}
    assert not set(done.input_segments) & after and done.output_segment in after, (done, after)
    # the output's BYTES is what it holds, no more per row than its inputs held: the doubling capacity it grew to
    # (up to 2x its rows) would not fit under this
    out_bytes = [s.bytes for s in c.describe("cp").segments if s.id == done.output_segment][0]
    known = [before[i] for i in done.input_segments if i in before]
    per_row_in = sum(s.bytes for s in known) / sum(s.rows for s in known)
    assert out_bytes <= per_row_in * done.rows_out + 4096, (out_bytes, per_row_in, done)
    # nothing changed for the fixed points, churn deletes stay deleted
    for q, w in zip(queries, want):
        assert [h.id for h in c.search("cp", q, 10, flt=None, exact=True).hits]  # still searchable
        req = pb.SearchRequest(collection="cp", vector=q.tolist(), k=10, filter=flt)
        assert set(h.id for h in c.q.Search(req).hits) == set(w)
    assert not c.get_map("cp", [f"c{i}" for i in range(0, 2000, 2)])
    srv.restart()
    c = srv.client
    for q, w in zip(queries, want):
        req = pb.SearchRequest(collection="cp", vector=q.tolist(), k=10, filter=flt)
        assert set(h.id for h in c.q.Search(req).hits) == set(w)


def test_compaction_kill9_rounds(make_server):
    srv = make_server(seal_rows=150, extra=["--index-min-rows", "50", "--compact-deleted-ratio", "0.2",
                                            "--compact-small-segments", "3"]).start()
    c = srv.client
    c.create("k9", DIM)
    r = np.random.default_rng(11)
    live = {}
    n = 0
    rounds = 15
    for rnd in range(rounds):
        c = srv.client
        vecs = r.standard_normal((300, DIM)).astype(np.float32)
        ids = [f"r{rnd}-{i}" for i in range(300)]
        for s in range(0, 300, 100):
            c.upsert("k9", [point(ids[i], vecs[i]) for i in range(s, s + 100)])
            live.update({ids[i]: vecs[i] for i in range(s, s + 100)})
        victims = random.Random(rnd).sample(sorted(live), min(len(live), 120))
        c.delete("k9", victims)
        for v in victims:
            live.pop(v)
        try:
            c.admin.Compact(pb.CompactRequest(collection="k9"))
        except Exception:
            pass  # a job may already be running (automatic policy): FAILED_PRECONDITION
        c.flush("k9")
        time.sleep(random.Random(100 + rnd).uniform(0.0, 0.4))
        srv.kill9()
        srv.start()
        c = srv.client
        got = all_hits(c, "k9", 10000)
        assert got == set(live), f"round {rnd}: {len(got - set(live))} extra, {len(set(live) - got)} missing"
        n += 1
    sample = sorted(live)[::7]
    g = c.get_map("k9", sample)
    for pid in sample:
        assert np.array_equal(np.array(g[pid].vector, np.float32), live[pid]), pid
    jobs = c.stats().compactions
    print(f"{n} kill -9 rounds, {len(live)} live points checked; jobs since last start: {len(jobs)}")


def test_compaction_goes_ahead_of_index_builds_of_its_inputs(make_server):
    """The worker's build lane (storage/worker.h): a compaction queued while its inputs wait for (or are in) a slow
    graph build runs first; the build of an input that is running is cancelled and the queued ones are skipped, since
    their graphs would be thrown away with the segments; the output segment is indexed instead."""
    srv = make_server(seal_rows=4000, extra=["--metrics-listen", "off", "--index-min-rows", "100",
                                             "--index-threads", "1"]).start()
    c = srv.client
    rng = np.random.default_rng(3)
    c.create("slow", 64, index=pb.IndexParams(kind=pb.INDEX_KIND_HNSW, m=48, ef_construction=800))
    vecs = rng.standard_normal((12000, 64)).astype(np.float32)
    c.upsert_all("slow", [point(f"p{i}", vecs[i]) for i in range(12000)], batch=2000)
    c.flush("slow")
    inputs = [s.id for s in c.describe("slow").segments if s.state == pb.SEGMENT_STATE_SEALED]
    assert len(inputs) == 3, inputs
    # a compaction of another collection waits behind the build that runs now, and Stats says so
    c.create("other", 4)
    c.upsert_all("other", [point(f"o{i}", [float(i), 0, 0, 1]) for i in range(8000)], batch=4000)
    c.flush("other")
    other = c.admin.Compact(pb.CompactRequest(collection="other", target_rows=100000))
    queued = [j for j in c.stats().compactions if j.id == other.job_id][0]
    if queued.state == pb.CompactionJob.STATE_QUEUED:  # (it may already run when the build lane was idle)
        assert queued.waiting_for.startswith(("the index build of segment", "the compaction of", "nothing")), queued
    wait_jobs(c, timeout=120)
    job = c.admin.Compact(pb.CompactRequest(collection="slow", target_rows=100000))
    assert job.input_segments == 3
    done = [j for j in wait_jobs(c, timeout=120) if j.id == job.job_id][0]
    assert done.state == pb.CompactionJob.STATE_DONE, done
    log = srv.log_tail(2000)
    ready = {int(m) for m in re.findall(r"event=index\.ready collection=slow segment=(\d+)", log)}
    skipped = {int(m) for m in re.findall(r"event=index\.(?:skipped|cancelled) collection=slow segment=(\d+)", log)}
    # no input got a graph that was then thrown away (at most the first build may have finished before the Compact
    # call arrived); the others were cancelled or skipped
    assert len(ready & set(inputs)) <= 1, (ready, inputs)
    assert set(inputs) - ready <= skipped, (skipped, ready, inputs)
    assert c.count("slow") == 12000
    seg = [s for s in c.describe("slow").segments if s.id == done.output_segment][0]
    assert seg.index_state in (pb.INDEX_STATE_PENDING, pb.INDEX_STATE_BUILDING, pb.INDEX_STATE_READY), seg
