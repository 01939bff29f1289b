/* The reference path: the integer formula of nv12.h written out plainly.
 * It also converts the columns the SIMD paths leave after their last block,
 * so the formula lives in exactly one place of C. */
#include "nv12.h"

static inline uint8_t clamp8(int32_t value)
{
    return value < 0 ? 0 : value > 255 ? 255 : (uint8_t)value;
}

static inline uint8_t luma(const nv12_coeffs *k, const uint8_t *p)
{
    return clamp8((k->y[0] * p[0] + k->y[1] * p[1] + k->y[2] * p[2] + k->y_bias) >> NV12_SHIFT);
}

static inline uint8_t chroma(const int32_t c[3], int32_t bias, const int32_t sum[3])
{
    return clamp8((c[0] * sum[0] + c[1] * sum[1] + c[2] * sum[2] + bias) >> (NV12_SHIFT + 2));
}

void nv12_pair_at(const nv12_job *job, int row, nv12_pair *pair)
{
    size_t top = (size_t)row * 2;
    int has_second = (int)top + 1 < job->height;

    pair->s0 = job->src + top * job->src_stride;
    pair->s1 = has_second ? pair->s0 + job->src_stride : pair->s0;
    pair->y0 = job->y + top * job->y_stride;
    pair->y1 = has_second ? pair->y0 + job->y_stride : pair->y0;
    pair->u = job->u + (size_t)row * job->u_stride;
    pair->v = job->v ? job->v + (size_t)row * job->v_stride : NULL;
}

void nv12_pair_scalar(const nv12_job *job, const nv12_pair *pair, int x_begin)
{
    const nv12_coeffs *k = &job->k;

    for (int x = x_begin; x < job->width; x += 2) {
        /* On an odd width the last block's right column repeats its left. */
        int step = x + 1 < job->width ? 4 : 0;
        const uint8_t *a = pair->s0 + (size_t)x * 4, *b = pair->s1 + (size_t)x * 4;
        int32_t sum[3];

        pair->y0[x] = luma(k, a);
        pair->y1[x] = luma(k, b);
        if (step) {
            pair->y0[x + 1] = luma(k, a + 4);
            pair->y1[x + 1] = luma(k, b + 4);
        }
        for (int c = 0; c < 3; c++)
            sum[c] = a[c] + a[c + step] + b[c] + b[c + step];
        if (pair->v) {
            pair->u[x / 2] = chroma(k->u, k->c_bias, sum);
            pair->v[x / 2] = chroma(k->v, k->c_bias, sum);
        } else {
            pair->u[x] = chroma(k->u, k->c_bias, sum);
            pair->u[x + 1] = chroma(k->v, k->c_bias, sum);
        }
    }
}

void nv12_rows_scalar(const nv12_job *job, int row_begin, int row_end)
{
    nv12_pair pair;

    for (int row = row_begin; row < row_end; row++) {
        nv12_pair_at(job, row, &pair);
        nv12_pair_scalar(job, &pair, 0);
    }
}
