/* Packed 32-bit RGB -> NV12 / I420: shared definitions of the conversion core.
 *
 * The integer formula (every path must produce these exact bytes)
 * -------------------------------------------------------------
 * A pixel is four bytes p[0..3]; p[3] (alpha or padding) is ignored.  For
 * BGRX/BGRA p[0]=B, p[1]=G, p[2]=R; for RGBX/RGBA p[0]=R, p[2]=B.  The
 * coefficient tables below are stored per *byte position*, so one kernel
 * serves both byte orders.
 *
 * Coefficients are fixed point with S = NV12_SHIFT = 15 fraction bits, derived
 * from the real ITU-T H.273 equations with Kr, Kb of the matrix (BT.601:
 * 0.299/0.114, BT.709: 0.2126/0.0722), scale sy = 219/255 (limited) or 1
 * (full) for luma, sc = 224/255 (limited) or 1 (full) for chroma:
 *
 *   yR = round(Kr*sy*2^S)  yB = round(Kb*sy*2^S)   yG = round(sy*2^S) - yR - yB
 *   uB = round(sc/2*2^S)   uR = round(-Kr/(2(1-Kb))*sc*2^S)   uG = -uB - uR
 *   vR = round(sc/2*2^S)   vB = round(-Kb/(2(1-Kr))*sc*2^S)   vG = -vR - vB
 *
 * (round() is to nearest; no coefficient is near a tie).  Deriving the green
 * term from the others makes every row sum exact: white is exactly 235 (or
 * 255) and every grey has chroma exactly 128.
 *
 *   Y = clamp8((yR*R + yG*G + yB*B + Yoff + 2^(S-1)) >> S)
 *       Yoff = 16 << S (limited) or 0 (full)
 *
 * Chroma comes from the sum of the 2x2 block, rounded once (not from a
 * rounded average):
 *
 *   U = clamp8((uR*Rs + uG*Gs + uB*Bs + (128 << (S+2)) + 2^(S+1)) >> (S+2))
 *   V likewise with vR, vG, vB
 *
 * where Rs, Gs, Bs are the sums of the four pixels of the block.  When the
 * width or height is odd the last block is incomplete; the missing column
 * (row) repeats the last one, so the sums are exactly 4x the mean of the
 * pixels that exist (2 of them at an edge, 1 in the odd corner).
 *
 * Every value before the shift is non-negative and fits 32 bits (largest
 * |coefficient| < 2^15, block sums <= 1020), ">>" is therefore a plain
 * floor division, and clamp8() only ever clips the full-range chroma
 * extreme 255.5 -> 255.  The SIMD paths compute the same 32-bit sums with
 * pmaddwd and clamp with the saturating packs, which is why they are
 * bit-identical to the scalar code.
 *
 * Why not 16-bit arithmetic, as libyuv's 7-bit pmaddubsw coefficients are:
 * over all 2^24 colours, some luma sums before the shift are exact multiples
 * of 2^15 and others lie one or two below the next (every matrix and range),
 * so any coarser arithmetic changes some bytes (tests/test_convert.py checks
 * every colour on every path).  The price is about 1.5 vector operations per
 * pixel in the AVX2 loop, against about 0.8 for libyuv's coarser arithmetic;
 * the loop wins the difference back in how it schedules them (nv12_x86.c), so
 * on a Zen 3 core one thread still takes less time than libyuv's
 * ARGBToNV12 (docs/BENCHMARKS.md).
 */
#ifndef ROOTSTREAM_NV12_H
#define ROOTSTREAM_NV12_H

#include <stddef.h>
#include <stdint.h>

#define NV12_SHIFT 15
#define NV12_MAX_THREADS 64

typedef struct nv12_coeffs {
    int32_t y[3]; /* per byte position 0, 1, 2 of a pixel */
    int32_t u[3];
    int32_t v[3];
    int32_t y_bias; /* Yoff + rounding half, added before >> S */
    int32_t c_bias; /* (128 << (S+2)) + rounding half, before >> (S+2) */
} nv12_coeffs;

/* One conversion: where to read, where to write.  v == NULL means NV12
 * (u is then the interleaved UV plane); otherwise I420 with separate planes. */
typedef struct nv12_job {
    const uint8_t *src;
    size_t src_stride;
    uint8_t *y;
    size_t y_stride;
    uint8_t *u;
    size_t u_stride;
    uint8_t *v;
    size_t v_stride;
    int width;
    int height;
    nv12_coeffs k;
} nv12_job;

/* Converts chroma rows [row_begin, row_end), i.e. luma rows
 * 2*row_begin .. min(2*row_end, height) - 1.  Disjoint ranges write disjoint
 * bytes, which is what lets threads split a frame without locking. */
typedef void (*nv12_rows_fn)(const nv12_job *job, int row_begin, int row_end);

/* The two source rows, destination rows of one chroma row, with the odd-height
 * repeat already applied (s1 == s0 and y1 == y0 on the last odd row). */
typedef struct nv12_pair {
    const uint8_t *s0, *s1;
    uint8_t *y0, *y1;
    uint8_t *u, *v;
} nv12_pair;

void nv12_pair_at(const nv12_job *job, int row, nv12_pair *pair);

/* Scalar conversion of columns [x_begin, width) of one pair; x_begin even.
 * The SIMD paths use it for the columns left after their last full block. */
void nv12_pair_scalar(const nv12_job *job, const nv12_pair *pair, int x_begin);

void nv12_rows_scalar(const nv12_job *job, int row_begin, int row_end);

/* Converts the whole job with `threads` threads (the caller's included),
 * splitting its rows; 1 runs everything on the caller.  nv12_pool.c. */
void nv12_run(const nv12_job *job, nv12_rows_fn rows, int threads);

/* NV12_NO_SIMD builds the portable configuration on x86 too (tests do). */
#if !defined(NV12_NO_SIMD) && (defined(__x86_64__) || (defined(__i386__) && defined(__SSE2__)))
#define NV12_HAVE_X86 1
void nv12_rows_sse2(const nv12_job *job, int row_begin, int row_end);
void nv12_rows_avx2(const nv12_job *job, int row_begin, int row_end);
int nv12_cpu_has_avx2(void);
#endif

#endif
