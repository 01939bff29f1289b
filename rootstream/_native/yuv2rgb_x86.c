/* x86 paths of yuv2rgb.h: SSE2 (the x86-64 baseline) and AVX2 (chosen at
 * run time), 8 and 16 pixels of one row per step.
 *
 * Luma is widened to words and interleaved with 1s, chroma to (u', v') word
 * pairs, each pair repeated for the two pixels that share it; pmaddwd with
 * (cy, 2^(S-1)) and with the channel's (u, v) coefficients then gives the
 * scalar formula's 32-bit sums.  packs_epi32 + packus_epi16 clamp exactly
 * as clamp8() does, and two rounds of unpacking interleave the channels
 * into pixels.  In AVX2 the unpacks work inside each 128-bit lane; the lanes
 * hold pixels 0-3/8-11 and 4-7/12-15 until one permute puts them in order
 * at the store.
 *
 * The AVX2 function carries __attribute__((target("avx2"))) so the extension
 * builds with the default flags and runs on any x86-64;
 * yuv2rgb_cpu_has_avx2() decides at run time whether it may be called.
 */
#include "yuv2rgb.h"

#ifdef YUV2RGB_HAVE_X86

#include <immintrin.h>
#include <string.h>

int yuv2rgb_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

static inline int32_t word_pair(int32_t low, int32_t high)
{
    return (int32_t)((uint32_t)(uint16_t)low | (uint32_t)(uint16_t)high << 16);
}

static inline int32_t load32(const uint8_t *p)
{
    int32_t value;
    memcpy(&value, p, sizeof value);
    return value;
}

/* Row pointers of one output row. */
typedef struct row_ptrs {
    const uint8_t *y, *u, *v;
    uint8_t *out;
} row_ptrs;

static inline void row_at(const yuv2rgb_job *job, int row, row_ptrs *r)
{
    r->y = job->y + (size_t)row * job->y_stride;
    r->u = job->u + (size_t)(row / 2) * job->u_stride;
    r->v = job->v + (size_t)(row / 2) * job->v_stride;
    r->out = job->dst + (size_t)row * job->dst_stride;
}

/* ---------------------------------------------------------------- SSE2 */

typedef struct sse2_consts {
    __m128i sixteen, c128, one, luma, first, green, second, opaque;
} sse2_consts;

static void sse2_setup(const yuv2rgb_job *job, sse2_consts *c)
{
    int32_t red = word_pair(0, YUV2RGB_CRV), blue = word_pair(YUV2RGB_CBU, 0);

    c->sixteen = _mm_set1_epi16(16);
    c->c128 = _mm_set1_epi16(128);
    c->one = _mm_set1_epi16(1);
    c->luma = _mm_set1_epi32(word_pair(YUV2RGB_CY, 1 << (YUV2RGB_SHIFT - 1)));
    c->green = _mm_set1_epi32(word_pair(YUV2RGB_CGU, YUV2RGB_CGV));
    /* Byte 0 of a pixel is blue for BGRX, red for RGBX; byte 2 the other. */
    c->first = _mm_set1_epi32(job->b_at == 0 ? blue : red);
    c->second = _mm_set1_epi32(job->b_at == 0 ? red : blue);
    c->opaque = _mm_set1_epi16(255);
}

/* One channel of 8 pixels as words (not yet clamped above 255). */
static inline __m128i sse2_channel(__m128i l_lo, __m128i l_hi, __m128i uv_lo, __m128i uv_hi,
                                   __m128i k)
{
    __m128i lo = _mm_srai_epi32(_mm_add_epi32(l_lo, _mm_madd_epi16(uv_lo, k)), YUV2RGB_SHIFT);
    __m128i hi = _mm_srai_epi32(_mm_add_epi32(l_hi, _mm_madd_epi16(uv_hi, k)), YUV2RGB_SHIFT);
    return _mm_packs_epi32(lo, hi);
}

static inline void sse2_block(const row_ptrs *r, int x, const sse2_consts *c)
{
    __m128i zero = _mm_setzero_si128();
    __m128i y = _mm_loadl_epi64((const __m128i *)(r->y + x));
    __m128i u = _mm_cvtsi32_si128(load32(r->u + x / 2));
    __m128i v = _mm_cvtsi32_si128(load32(r->v + x / 2));
    __m128i uv = _mm_sub_epi16(_mm_unpacklo_epi8(_mm_unpacklo_epi8(u, v), zero), c->c128);
    __m128i uv_lo = _mm_unpacklo_epi32(uv, uv), uv_hi = _mm_unpackhi_epi32(uv, uv);

    y = _mm_sub_epi16(_mm_unpacklo_epi8(y, zero), c->sixteen);
    __m128i l_lo = _mm_madd_epi16(_mm_unpacklo_epi16(y, c->one), c->luma);
    __m128i l_hi = _mm_madd_epi16(_mm_unpackhi_epi16(y, c->one), c->luma);
    __m128i first = sse2_channel(l_lo, l_hi, uv_lo, uv_hi, c->first);
    __m128i green = sse2_channel(l_lo, l_hi, uv_lo, uv_hi, c->green);
    __m128i second = sse2_channel(l_lo, l_hi, uv_lo, uv_hi, c->second);
    __m128i a = _mm_packus_epi16(first, second); /* f0..f7 s0..s7 */
    __m128i b = _mm_packus_epi16(green, c->opaque); /* g0..g7 255.. */
    __m128i fg = _mm_unpacklo_epi8(a, b), s255 = _mm_unpackhi_epi8(a, b);

    _mm_storeu_si128((__m128i *)(r->out + (size_t)x * 4), _mm_unpacklo_epi16(fg, s255));
    _mm_storeu_si128((__m128i *)(r->out + (size_t)x * 4 + 16), _mm_unpackhi_epi16(fg, s255));
}

void yuv2rgb_rows_sse2(const yuv2rgb_job *job, int row_begin, int row_end)
{
    sse2_consts c;
    row_ptrs r;

    sse2_setup(job, &c);
    for (int row = row_begin; row < row_end; row++) {
        int x = 0;

        row_at(job, row, &r);
        for (; x + 8 <= job->width; x += 8)
            sse2_block(&r, x, &c);
        yuv2rgb_row_scalar(job, row, x);
    }
}

/* ---------------------------------------------------------------- AVX2 */

typedef struct avx2_consts {
    __m256i sixteen, c128, one, luma, first, green, second, opaque;
} avx2_consts;

__attribute__((target("avx2"))) static void avx2_setup(const sse2_consts *s, avx2_consts *c)
{
    c->sixteen = _mm256_broadcastsi128_si256(s->sixteen);
    c->c128 = _mm256_broadcastsi128_si256(s->c128);
    c->one = _mm256_broadcastsi128_si256(s->one);
    c->luma = _mm256_broadcastsi128_si256(s->luma);
    c->first = _mm256_broadcastsi128_si256(s->first);
    c->green = _mm256_broadcastsi128_si256(s->green);
    c->second = _mm256_broadcastsi128_si256(s->second);
    c->opaque = _mm256_broadcastsi128_si256(s->opaque);
}

__attribute__((target("avx2"))) static inline __m256i
avx2_channel(__m256i l_lo, __m256i l_hi, __m256i uv_lo, __m256i uv_hi, __m256i k)
{
    __m256i lo = _mm256_srai_epi32(_mm256_add_epi32(l_lo, _mm256_madd_epi16(uv_lo, k)),
                                   YUV2RGB_SHIFT);
    __m256i hi = _mm256_srai_epi32(_mm256_add_epi32(l_hi, _mm256_madd_epi16(uv_hi, k)),
                                   YUV2RGB_SHIFT);
    return _mm256_packs_epi32(lo, hi);
}

__attribute__((target("avx2"))) static inline void avx2_block(const row_ptrs *r, int x,
                                                              const avx2_consts *c)
{
    __m256i y = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(r->y + x)));
    __m128i u = _mm_loadl_epi64((const __m128i *)(r->u + x / 2));
    __m128i v = _mm_loadl_epi64((const __m128i *)(r->v + x / 2));
    /* lane 0: pairs 0-3, lane 1: pairs 4-7 */
    __m256i uv = _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_unpacklo_epi8(u, v)), c->c128);
    __m256i uv_lo = _mm256_unpacklo_epi32(uv, uv); /* pixels 0-3 | 8-11 */
    __m256i uv_hi = _mm256_unpackhi_epi32(uv, uv); /* pixels 4-7 | 12-15 */

    y = _mm256_sub_epi16(y, c->sixteen);
    __m256i l_lo = _mm256_madd_epi16(_mm256_unpacklo_epi16(y, c->one), c->luma);
    __m256i l_hi = _mm256_madd_epi16(_mm256_unpackhi_epi16(y, c->one), c->luma);
    __m256i first = avx2_channel(l_lo, l_hi, uv_lo, uv_hi, c->first);
    __m256i green = avx2_channel(l_lo, l_hi, uv_lo, uv_hi, c->green);
    __m256i second = avx2_channel(l_lo, l_hi, uv_lo, uv_hi, c->second);
    __m256i a = _mm256_packus_epi16(first, second);
    __m256i b = _mm256_packus_epi16(green, c->opaque);
    __m256i fg = _mm256_unpacklo_epi8(a, b), s255 = _mm256_unpackhi_epi8(a, b);
    __m256i lo = _mm256_unpacklo_epi16(fg, s255); /* pixels 0-3 | 8-11 */
    __m256i hi = _mm256_unpackhi_epi16(fg, s255); /* pixels 4-7 | 12-15 */
    uint8_t *out = r->out + (size_t)x * 4;

    _mm256_storeu_si256((__m256i *)out, _mm256_permute2x128_si256(lo, hi, 0x20));
    _mm256_storeu_si256((__m256i *)(out + 32), _mm256_permute2x128_si256(lo, hi, 0x31));
}

__attribute__((target("avx2"))) void yuv2rgb_rows_avx2(const yuv2rgb_job *job, int row_begin,
                                                       int row_end)
{
    sse2_consts s;
    avx2_consts c;
    row_ptrs r;

    sse2_setup(job, &s);
    avx2_setup(&s, &c);
    for (int row = row_begin; row < row_end; row++) {
        int x = 0;

        row_at(job, row, &r);
        for (; x + 16 <= job->width; x += 16)
            avx2_block(&r, x, &c);
        yuv2rgb_row_scalar(job, row, x);
    }
}

#endif
