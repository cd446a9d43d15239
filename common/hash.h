/* The hash of in-memory tables whose keys clients choose (point ids, keyword values): the id map, the postings of
 * sealed segments, a request's duplicate-id check.
 *
 * XXH3 keyed with a 192-byte secret drawn from getrandom() once per process, so that a client cannot precompute ids
 * that collide (hash flooding: a batch of colliding ids would make every probe walk one long cluster). xxHash's own
 * documentation states the secret makes intentional collisions harder to prepare; it is not a cryptographic MAC
 * (SipHash would be one, at several times the cost per id), and a table's worst case stays bounded by its size.
 *
 * Never persisted and never used to place data: values differ between processes. Placement and checksums use
 * qv_checksum (common/buf.h), which is stable. */
#ifndef QV_HASH_H
#define QV_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t qv_hash(const void *data, size_t len);

#endif
