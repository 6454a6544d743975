/* The matmul oracle: dequantize each weight row with the type's reference to_f32 and accumulate
 * in double. Slow on purpose: obviously right. */
#include "cpu/cpu_kernels.h"

#include <stdlib.h>

void vkl_matmul_ref(vkl_type wtype, const void *W, size_t w_row_stride, int64_t M, int64_t K,
                    const float *x, int64_t N, float *y) {
    const vkl_type_traits *tt = vkl_type_get(wtype);
    if (tt && K % tt->block_size != 0) tt = NULL; /* not a whole number of blocks */
    float *row = (tt && K > 0) ? malloc((size_t)K * sizeof(float)) : NULL;
    for (int64_t r = 0; r < M; r++) {
        if (row) tt->to_f32((const uint8_t *)W + (size_t)r * w_row_stride, row, K);
        for (int64_t t = 0; t < N; t++) {
            double acc = 0.0;
            if (row)
                for (int64_t k = 0; k < K; k++) acc += (double)row[k] * (double)x[t * K + k];
            /* An unknown type, a partial block or a failed allocation yields NaN: loudly wrong,
             * never a crash. */
            y[t * M + r] = row ? (float)acc : (K > 0 ? __builtin_nanf("") : 0.0f);
        }
    }
    free(row);
}
