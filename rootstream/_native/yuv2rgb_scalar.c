/* The reference path: the integer formula of yuv2rgb.h written out plainly.
 * It also converts the columns the SIMD paths leave after their last block,
 * so the formula lives in exactly one place of C. */
#include "yuv2rgb.h"

static inline uint8_t clamp8(int32_t value)
{
    return value < 0 ? 0 : value > 255 ? 255 : (uint8_t)value;
}

void yuv2rgb_row_scalar(const yuv2rgb_job *job, int row, int x_begin)
{
    const uint8_t *ys = job->y + (size_t)row * job->y_stride;
    const uint8_t *us = job->u + (size_t)(row / 2) * job->u_stride;
    const uint8_t *vs = job->v + (size_t)(row / 2) * job->v_stride;
    uint8_t *out = job->dst + (size_t)row * job->dst_stride;

    for (int x = x_begin; x < job->width; x++) {
        int32_t luma = YUV2RGB_CY * (ys[x] - 16) + (1 << (YUV2RGB_SHIFT - 1));
        int32_t u = us[x / 2] - 128, v = vs[x / 2] - 128;
        uint8_t *p = out + (size_t)x * 4;

        p[job->r_at] = clamp8((luma + YUV2RGB_CRV * v) >> YUV2RGB_SHIFT);
        p[1] = clamp8((luma + YUV2RGB_CGU * u + YUV2RGB_CGV * v) >> YUV2RGB_SHIFT);
        p[job->b_at] = clamp8((luma + YUV2RGB_CBU * u) >> YUV2RGB_SHIFT);
        p[3] = 255;
    }
}

void yuv2rgb_rows_scalar(const yuv2rgb_job *job, int row_begin, int row_end)
{
    for (int row = row_begin; row < row_end; row++)
        yuv2rgb_row_scalar(job, row, 0);
}
