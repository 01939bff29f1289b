/* x86 paths: SSE2 (the x86-64 baseline) and AVX2 (chosen at run time).
 *
 * Both read a pixel's four bytes as two 16-bit words twice over: masking with
 * 0x00FF00FF leaves (p0, p2), a 16-bit shift leaves (p1, p3).  pmaddwd then
 * yields k0*p0 + k2*p2 and k1*p1 (+ 0*p3) per pixel in 32 bits, exactly the
 * sums of the scalar formula, without any per-pixel shuffle.  For chroma the
 * word pairs of two rows are added (vertical), then each 32-bit pixel slot is
 * added to its neighbour's (pshufd swap), so both slots of a 64-bit lane hold
 * the block sum; multiplying by (u0, u2, v0, v2) puts U in the even slot and V
 * in the odd one, which is already NV12's byte order once packed.  The
 * saturating packs perform clamp8().
 *
 * The AVX2 functions carry __attribute__((target("avx2"))) so the extension
 * builds with the default flags and runs on any x86-64; nv12_cpu_has_avx2()
 * decides at run time whether they may be called.
 */
#include "nv12.h"

#ifdef NV12_HAVE_X86

#include <immintrin.h>
#include <string.h>

static inline uint32_t word_pair(int32_t low, int32_t high)
{
    return (uint32_t)(uint16_t)low | (uint32_t)(uint16_t)high << 16;
}

int nv12_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

/* ---------------------------------------------------------------- SSE2 */

typedef struct sse2_consts {
    __m128i mask, y_02, y_1, y_bias, c_02, c_1, c_bias, low_byte;
} sse2_consts;

static void sse2_setup(const nv12_coeffs *k, sse2_consts *c)
{
    c->mask = _mm_set1_epi32(0x00FF00FF);
    c->y_02 = _mm_set1_epi32((int)word_pair(k->y[0], k->y[2]));
    c->y_1 = _mm_set1_epi32((int)word_pair(k->y[1], 0));
    c->y_bias = _mm_set1_epi32(k->y_bias);
    c->c_02 = _mm_set1_epi64x((int64_t)((uint64_t)word_pair(k->v[0], k->v[2]) << 32
                                        | word_pair(k->u[0], k->u[2])));
    c->c_1 = _mm_set1_epi64x((int64_t)((uint64_t)word_pair(k->v[1], 0) << 32
                                       | word_pair(k->u[1], 0)));
    c->c_bias = _mm_set1_epi32(k->c_bias);
    c->low_byte = _mm_set1_epi16(0x00FF);
}

static inline __m128i sse2_luma(const sse2_consts *c, __m128i w02, __m128i w13)
{
    __m128i sum = _mm_add_epi32(_mm_madd_epi16(w02, c->y_02), _mm_madd_epi16(w13, c->y_1));
    return _mm_srai_epi32(_mm_add_epi32(sum, c->y_bias), NV12_SHIFT);
}

/* Block sums of words from two rows, duplicated into both slots of a lane. */
static inline __m128i sse2_block_sum(__m128i top, __m128i bottom)
{
    __m128i v = _mm_add_epi16(top, bottom);
    return _mm_add_epi16(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 3, 0, 1)));
}

static inline __m128i sse2_chroma(const sse2_consts *c, __m128i s02, __m128i s13)
{
    __m128i sum = _mm_add_epi32(_mm_madd_epi16(s02, c->c_02), _mm_madd_epi16(s13, c->c_1));
    return _mm_srai_epi32(_mm_add_epi32(sum, c->c_bias), NV12_SHIFT + 2);
}

static inline void store4(uint8_t *dst, __m128i v)
{
    uint32_t word = (uint32_t)_mm_cvtsi128_si32(v);
    memcpy(dst, &word, 4);
}

/* Eight pixels of two rows per iteration: 8+8 luma bytes, 8 UV bytes. */
void nv12_rows_sse2(const nv12_job *job, int row_begin, int row_end)
{
    sse2_consts c;
    nv12_pair pair;
    int blocks_end = job->width & ~7;

    sse2_setup(&job->k, &c);
    for (int row = row_begin; row < row_end; row++) {
        nv12_pair_at(job, row, &pair);
        for (int x = 0; x < blocks_end; x += 8) {
            const uint8_t *s0 = pair.s0 + (size_t)x * 4, *s1 = pair.s1 + (size_t)x * 4;
            __m128i a0 = _mm_loadu_si128((const __m128i *)s0);
            __m128i b0 = _mm_loadu_si128((const __m128i *)(s0 + 16));
            __m128i a1 = _mm_loadu_si128((const __m128i *)s1);
            __m128i b1 = _mm_loadu_si128((const __m128i *)(s1 + 16));
            __m128i a0_02 = _mm_and_si128(a0, c.mask), a0_13 = _mm_srli_epi16(a0, 8);
            __m128i b0_02 = _mm_and_si128(b0, c.mask), b0_13 = _mm_srli_epi16(b0, 8);
            __m128i a1_02 = _mm_and_si128(a1, c.mask), a1_13 = _mm_srli_epi16(a1, 8);
            __m128i b1_02 = _mm_and_si128(b1, c.mask), b1_13 = _mm_srli_epi16(b1, 8);

            __m128i row0 = _mm_packs_epi32(sse2_luma(&c, a0_02, a0_13), sse2_luma(&c, b0_02, b0_13));
            __m128i row1 = _mm_packs_epi32(sse2_luma(&c, a1_02, a1_13), sse2_luma(&c, b1_02, b1_13));
            __m128i luma = _mm_packus_epi16(row0, row1);
            _mm_storel_epi64((__m128i *)(pair.y0 + x), luma);
            _mm_storel_epi64((__m128i *)(pair.y1 + x), _mm_srli_si128(luma, 8));

            __m128i uv_a = sse2_chroma(&c, sse2_block_sum(a0_02, a1_02), sse2_block_sum(a0_13, a1_13));
            __m128i uv_b = sse2_chroma(&c, sse2_block_sum(b0_02, b1_02), sse2_block_sum(b0_13, b1_13));
            __m128i uv = _mm_packus_epi16(_mm_packs_epi32(uv_a, uv_b), _mm_setzero_si128());
            if (pair.v) {
                /* bytes U0 V0 .. U3 V3 -> U0..U3 in bytes 0-3, V0..V3 in 8-11 */
                __m128i split = _mm_packus_epi16(_mm_and_si128(uv, c.low_byte), _mm_srli_epi16(uv, 8));
                store4(pair.u + x / 2, split);
                store4(pair.v + x / 2, _mm_srli_si128(split, 8));
            } else {
                _mm_storel_epi64((__m128i *)(pair.u + x), uv);
            }
        }
        nv12_pair_scalar(job, &pair, blocks_end);
    }
}

/* ---------------------------------------------------------------- AVX2 */

#define AVX2 __attribute__((target("avx2")))

typedef struct avx2_consts {
    __m256i mask, y_02, y_1, y_bias, c_02, c_1, c_bias, order;
} avx2_consts;

AVX2 static void avx2_setup(const nv12_coeffs *k, avx2_consts *c)
{
    c->mask = _mm256_set1_epi32(0x00FF00FF);
    c->y_02 = _mm256_set1_epi32((int)word_pair(k->y[0], k->y[2]));
    c->y_1 = _mm256_set1_epi32((int)word_pair(k->y[1], 0));
    c->y_bias = _mm256_set1_epi32(k->y_bias);
    c->c_02 = _mm256_set1_epi64x((int64_t)((uint64_t)word_pair(k->v[0], k->v[2]) << 32
                                           | word_pair(k->u[0], k->u[2])));
    c->c_1 = _mm256_set1_epi64x((int64_t)((uint64_t)word_pair(k->v[1], 0) << 32
                                          | word_pair(k->u[1], 0)));
    c->c_bias = _mm256_set1_epi32(k->c_bias);
    /* The in-lane packs leave 4-byte groups in the order 0,2,4,6 | 1,3,5,7
     * of the wanted sequence (see nv12_rows_avx2); this gathers them back. */
    c->order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
}

AVX2 static inline __m256i avx2_luma(const avx2_consts *c, __m256i w02, __m256i w13)
{
    __m256i sum = _mm256_add_epi32(_mm256_madd_epi16(w02, c->y_02), _mm256_madd_epi16(w13, c->y_1));
    return _mm256_srai_epi32(_mm256_add_epi32(sum, c->y_bias), NV12_SHIFT);
}

AVX2 static inline __m256i avx2_block_sum(__m256i top, __m256i bottom)
{
    __m256i v = _mm256_add_epi16(top, bottom);
    return _mm256_add_epi16(v, _mm256_shuffle_epi32(v, _MM_SHUFFLE(2, 3, 0, 1)));
}

AVX2 static inline __m256i avx2_chroma(const avx2_consts *c, __m256i s02, __m256i s13)
{
    __m256i sum = _mm256_add_epi32(_mm256_madd_epi16(s02, c->c_02), _mm256_madd_epi16(s13, c->c_1));
    return _mm256_srai_epi32(_mm256_add_epi32(sum, c->c_bias), NV12_SHIFT + 2);
}

/* Eight pixels of two rows: luma of each row (8 x int32) and the chroma of
 * the four blocks (U, V alternating, 8 x int32).  Row words are folded into
 * block sums as soon as their luma is done, which keeps few registers live. */
AVX2 static inline void avx2_eight(const avx2_consts *c, const uint8_t *s0, const uint8_t *s1,
                                   __m256i *y0, __m256i *y1, __m256i *uv)
{
    __m256i p0 = _mm256_loadu_si256((const __m256i *)s0);
    __m256i p1 = _mm256_loadu_si256((const __m256i *)s1);
    __m256i p0_02 = _mm256_and_si256(p0, c->mask), p0_13 = _mm256_srli_epi16(p0, 8);
    __m256i p1_02 = _mm256_and_si256(p1, c->mask), p1_13 = _mm256_srli_epi16(p1, 8);

    *y0 = avx2_luma(c, p0_02, p0_13);
    *y1 = avx2_luma(c, p1_02, p1_13);
    *uv = avx2_chroma(c, avx2_block_sum(p0_02, p1_02), avx2_block_sum(p0_13, p1_13));
}

/* Sixteen pixels of two rows per iteration: 16+16 luma bytes, 16 UV bytes.
 * The first avx2_eight() covers pixels 0-7 (lane 0: 0-3, lane 1: 4-7), the
 * second 8-15.  packs_epi32 + packus_epi16 work within 128-bit lanes, so the
 * 4-byte groups of luma end up as [r0 0-3, r0 8-11, r1 0-3, r1 8-11 | r0 4-7,
 * r0 12-15, r1 4-7, r1 12-15] and those of chroma as [s0-1, s4-5 | s2-3,
 * s6-7]; one permute (c->order) restores both.  `i420` is a constant at each
 * call site, so the compiler emits two loops without a per-block branch. */
AVX2 static inline void avx2_rows(const nv12_job *job, int row_begin, int row_end, int i420)
{
    avx2_consts c;
    nv12_pair pair;
    int blocks_end = job->width & ~15;
    const __m128i low_byte = _mm_set1_epi16(0x00FF);

    avx2_setup(&job->k, &c);
    for (int row = row_begin; row < row_end; row++) {
        nv12_pair_at(job, row, &pair);
        const uint8_t *s0 = pair.s0, *s1 = pair.s1;
        uint8_t *y0 = pair.y0, *y1 = pair.y1, *u = pair.u, *v = pair.v;

        for (int x = 0; x < blocks_end; x += 16) {
            __m256i ya0, ya1, uva, yb0, yb1, uvb;
            avx2_eight(&c, s0 + (size_t)x * 4, s1 + (size_t)x * 4, &ya0, &ya1, &uva);
            avx2_eight(&c, s0 + (size_t)x * 4 + 32, s1 + (size_t)x * 4 + 32, &yb0, &yb1, &uvb);

            __m256i luma = _mm256_packus_epi16(_mm256_packs_epi32(ya0, yb0),
                                               _mm256_packs_epi32(ya1, yb1));
            luma = _mm256_permutevar8x32_epi32(luma, c.order);
            _mm_storeu_si128((__m128i *)(y0 + x), _mm256_castsi256_si128(luma));
            _mm_storeu_si128((__m128i *)(y1 + x), _mm256_extracti128_si256(luma, 1));

            __m256i packed = _mm256_packus_epi16(_mm256_packs_epi32(uva, uvb), _mm256_setzero_si256());
            __m128i uv = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(packed, c.order));
            if (i420) {
                __m128i split = _mm_packus_epi16(_mm_and_si128(uv, low_byte), _mm_srli_epi16(uv, 8));
                _mm_storel_epi64((__m128i *)(u + x / 2), split);
                _mm_storel_epi64((__m128i *)(v + x / 2), _mm_srli_si128(split, 8));
            } else {
                _mm_storeu_si128((__m128i *)(u + x), uv);
            }
        }
        nv12_pair_scalar(job, &pair, blocks_end);
    }
}

AVX2 void nv12_rows_avx2(const nv12_job *job, int row_begin, int row_end)
{
    if (job->v)
        avx2_rows(job, row_begin, row_end, 1);
    else
        avx2_rows(job, row_begin, row_end, 0);
}

#endif /* NV12_HAVE_X86 */
