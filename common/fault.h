/* Fault points (libfiu): named places where a test can make an operation fail as if the layer below had, while the
 * server runs. Compiled in only with QV_FAULT_POINTS (CMake option, on in Debug builds; the CI's integration tests
 * run that build); elsewhere qv_fault() is the constant false and costs nothing.
 *
 * A server started with $QV_FAULT_FIFO=BASE opens libfiu's control fifos BASE-<pid>.in/.out, so that
 * `fiu-ctrl -f BASE -c "enable name=quiver/storage/seal_persist" PID` arms a point and `-c "disable name=..."` clears
 * it (tests/integration/test_hardening.py). Points (each fails one kind of synced RocksDB write, on the same path a
 * real write error takes: the store fails, the caller gets the error):
 *   quiver/storage/commit        the group commit of upserts, deletes and applied log entries
 *   quiver/storage/seal_blob     a sealed segment's blob, written off the commit leader
 *   quiver/storage/seal_persist  the manifest batch that makes a sealed segment durable and drops its WAL records
 *   quiver/storage/index         an index blob written by the background indexer
 *   quiver/storage/compact_blob  a compaction's merged blob, chunk by chunk
 *   quiver/storage/compact_swap  the manifest batch that swaps a compaction's inputs for its output
 *   quiver/storage/create, quiver/storage/drop, quiver/storage/recover: collection creation and drop, start-up repair */
#ifndef QV_FAULT_H
#define QV_FAULT_H

#include <stdbool.h>

#ifdef QV_FAULT_POINTS
#define FIU_ENABLE 1
#endif
#include <fiu-local.h>

/* True when the named point is armed (always false without QV_FAULT_POINTS). */
#define qv_fault(name) (fiu_fail(name) != 0)

/* Starts libfiu and its control fifos when $QV_FAULT_FIFO is set; returns false (with nothing started) when the
 * variable is set but the build has no fault points or the fifos cannot be made. True otherwise. */
bool qv_fault_start(void);

#endif
