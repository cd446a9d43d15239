/* Argument checks of the k-NN shared by the CPU implementation (knn.c) and the plugin (plugin.cu), so both refuse
 * the same inputs with the same messages. */
#include "kernels/cpu/kcpu.h"

int qv_kcheck_knn(const qv_gpu_knn_params_t *p, const float *queries, size_t nq, const float *base, size_t nb,
                  uint32_t dim, const qv_cand_t *out, qv_err_t *err)
{
    if (!p || (nq && (!queries || !out)) || (nb && !base))
        return qv_err_set(err, QV_EINVAL, "knn: NULL argument");
    if (p->metric != QV_GPU_L2 && p->metric != QV_GPU_IP)
        return qv_err_set(err, QV_EINVAL, "knn: unknown metric %d", (int)p->metric);
    if (p->k == 0 || p->k > QV_GPU_MAX_K)
        return qv_err_set(err, QV_EINVAL, "knn: k=%u outside [1, %u]", p->k, QV_GPU_MAX_K);
    if (dim == 0 || dim > 65536)
        return qv_err_set(err, QV_EINVAL, "knn: dim=%u outside [1, 65536]", dim);
    if (nb > QV_GPU_MAX_ROWS)
        return qv_err_set(err, QV_EINVAL, "knn: %zu base rows exceed %u", nb, QV_GPU_MAX_ROWS);
    if (p->exclude_self && (p->self_row0 > nb || nq > nb - p->self_row0))
        return qv_err_set(err, QV_EINVAL, "knn: queries %zu..%zu are not base rows (nb=%zu)", p->self_row0,
                          p->self_row0 + nq, nb);
    return QV_OK;
}
