/* Shared by every kernels/cuda/<kernel>.cuh header: the macro that makes a function callable from both sides, and
 * tiny helpers.
 *
 * These headers are written in the common subset of C17 and CUDA C++ (no restrict, no designated initialisers, no
 * implicit void* conversions, no C++-only syntax), so that tests/unit/test_gpu_logic.c compiles them as plain C and
 * runs each kernel's per-thread or per-row logic against Quiver's CPU references, and kernels/cpu/ builds the CPU
 * implementations of the same steps from them. Under nvcc QV_HD is __host__ __device__; elsewhere it is empty.
 *
 * Arithmetic note: nvcc contracts a * b + c into one fused multiply-add by default and gcc (without -mfma) does
 * not, so the device's results differ from the host's in the last bits. Code that must agree exactly (the SQ8 code
 * of a value, the choice among tied candidates) is written so that it does not depend on that: ties are decided on
 * (distance, id) pairs, never on the order threads run in. */
#ifndef QV_K_COMMON_CUH
#define QV_K_COMMON_CUH

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define QV_HD __host__ __device__
#else
#define QV_HD
#endif

#define QV_K_FN static inline QV_HD
#define QV_K_HOST static inline  /* host-side steps of a device algorithm (seeding, finalising) */

#define QV_K_NONE 0xFFFFFFFFu  /* "no row" in a device list */
#define QV_K_L2 0
#define QV_K_IP 1

/* Candidate order everywhere (index/topk.h's rule): smaller distance first, then smaller id. */
QV_K_FN int qv_k_before(float da, uint32_t ia, float db, uint32_t ib)
{
    return da < db || (da == db && ia < ib);
}

/* splitmix64 step (the generator index/quant uses for its seeds) */
QV_K_FN uint64_t qv_k_splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

QV_K_FN size_t qv_k_min_sz(size_t a, size_t b) { return a < b ? a : b; }
QV_K_FN size_t qv_k_max_sz(size_t a, size_t b) { return a > b ? a : b; }

#endif
