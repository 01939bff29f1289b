/* yuv420p (BT.709, limited range) -> packed 32-bit RGB (full range): the
 * x11 presenter's conversion at equal size, written straight into the
 * MIT-SHM segment with its stride (swscale can only fill a frame of its own,
 * which then had to be copied: docs/BENCHMARKS.md, "Present").
 *
 * The integer formula (every path must produce these exact bytes)
 * -------------------------------------------------------------
 * With S = YUV2RGB_SHIFT = 13 fraction bits and the real BT.709 equations
 * (Kr 0.2126, Kb 0.0722, Kg = 1 - Kr - Kb), luma scaled by 255/219 and
 * chroma by 255/224 from limited to full range:
 *
 *   cy  = round(255/219 * 2^S)                       =  9539
 *   crv = round(2(1-Kr) * 255/224 * 2^S)             = 14686
 *   cbu = round(2(1-Kb) * 255/224 * 2^S)             = 17305
 *   cgu = round(-2Kb(1-Kb)/Kg * 255/224 * 2^S)       = -1747
 *   cgv = round(-2Kr(1-Kr)/Kg * 255/224 * 2^S)       = -4366
 *
 *   y' = Y - 16, u' = U - 128, v' = V - 128 (the chroma sample of the 2x2
 *   block the pixel lies in: nearest, as swscale's unscaled path does)
 *   L = cy*y' + 2^(S-1)
 *   R = clamp8((L + crv*v') >> S)
 *   G = clamp8((L + cgu*u' + cgv*v') >> S)
 *   B = clamp8((L + cbu*u') >> S)
 *
 * ">>" is an arithmetic shift (floor); every sum fits 32 bits by far.  The
 * SIMD paths form the same 32-bit sums with pmaddwd on (y', 1) and (u', v')
 * word pairs and clamp with packs + min/max, so they are bit-identical to the
 * scalar code.  The fourth byte of every pixel is 255.
 */
#ifndef ROOTSTREAM_YUV2RGB_H
#define ROOTSTREAM_YUV2RGB_H

#include <stddef.h>
#include <stdint.h>

#define YUV2RGB_SHIFT 13
#define YUV2RGB_CY 9539
#define YUV2RGB_CRV 14686
#define YUV2RGB_CBU 17305
#define YUV2RGB_CGU (-1747)
#define YUV2RGB_CGV (-4366)

/* One picture: planes in, pixels out.  r_at/b_at: byte position (0 or 2) of
 * red and blue inside a pixel (green is always 1, padding 3). */
typedef struct yuv2rgb_job {
    const uint8_t *y, *u, *v;
    size_t y_stride, u_stride, v_stride;
    uint8_t *dst;
    size_t dst_stride;
    int width, height;
    int r_at, b_at;
} yuv2rgb_job;

/* Converts one output row's columns [x_begin, width); x_begin even.  The SIMD
 * paths call it for the columns after their last full block. */
void yuv2rgb_row_scalar(const yuv2rgb_job *job, int row, int x_begin);

/* Converts rows [row_begin, row_end) of the job. */
typedef void (*yuv2rgb_rows_fn)(const yuv2rgb_job *job, int row_begin, int row_end);

void yuv2rgb_rows_scalar(const yuv2rgb_job *job, int row_begin, int row_end);

#if !defined(YUV2RGB_NO_SIMD) && (defined(__x86_64__) || (defined(__i386__) && defined(__SSE2__)))
#define YUV2RGB_HAVE_X86 1
void yuv2rgb_rows_sse2(const yuv2rgb_job *job, int row_begin, int row_end);
void yuv2rgb_rows_avx2(const yuv2rgb_job *job, int row_begin, int row_end);
int yuv2rgb_cpu_has_avx2(void);
#endif

#endif
