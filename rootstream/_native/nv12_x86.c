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
 * saturating packs perform clamp8().  (AVX2 reads the words another way,
 * with offsets that carry the rounding biases; see avx2_consts.)
 *
 * The AVX2 functions carry __attribute__((target("avx2"))) so the extension
 * builds with the default flags and runs on any x86-64; nv12_cpu_has_avx2()
 * decides at run time whether they may be called.
 */
#include "nv12.h"

#ifdef NV12_HAVE_X86

#include <immintrin.h>

static inline uint32_t word_pair(int32_t low, int32_t high)
{
    return (uint32_t)(uint16_t)low | (uint32_t)(uint16_t)high << 16;
}

int nv12_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

/* The source rows this many pairs ahead are prefetched while a pair is
 * converted.  The hardware prefetchers stop at 4 KiB page ends, and a 1080p
 * row is two pages.  Measured on Zen 3 (2-vCPU VM), AVX2: 3840x2160 15%
 * faster, 1920x1080 at 60 fps (cold caches) 10%, back to back (warm) 2%. */
#define PREFETCH_PAIRS 4

/* How far ahead of each source row of `pair` (row `row`) the prefetches go.
 * Near the end the last pair is "ahead": every address stays in the source. */
static inline void prefetch_offsets(const nv12_job *job, int row, const nv12_pair *pair,
                                    ptrdiff_t ahead[2])
{
    int pairs = (job->height + 1) / 2;
    nv12_pair later;

    nv12_pair_at(job, row + PREFETCH_PAIRS < pairs ? row + PREFETCH_PAIRS : pairs - 1, &later);
    ahead[0] = later.s0 - pair->s0;
    ahead[1] = later.s1 - pair->s1;
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

/* Four pixels of two rows: luma of each row (4 x int32) and the chroma of
 * the two blocks (U, V, U, V as int32).  Row words are folded into block sums
 * as soon as their luma is done, which keeps few registers live. */
static inline void sse2_four(const sse2_consts *c, const uint8_t *s0, const uint8_t *s1,
                             __m128i *y0, __m128i *y1, __m128i *uv)
{
    __m128i p0 = _mm_loadu_si128((const __m128i *)s0);
    __m128i p1 = _mm_loadu_si128((const __m128i *)s1);
    __m128i p0_02 = _mm_and_si128(p0, c->mask), p0_13 = _mm_srli_epi16(p0, 8);
    __m128i p1_02 = _mm_and_si128(p1, c->mask), p1_13 = _mm_srli_epi16(p1, 8);

    *y0 = sse2_luma(c, p0_02, p0_13);
    *y1 = sse2_luma(c, p1_02, p1_13);
    *uv = sse2_chroma(c, sse2_block_sum(p0_02, p1_02), sse2_block_sum(p0_13, p1_13));
}

static inline __m128i sse2_pack(__m128i a, __m128i b, __m128i cc, __m128i d)
{
    return _mm_packus_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(cc, d));
}

/* Sixteen pixels of two rows: 16+16 luma bytes and 8 chroma blocks. */
static inline void sse2_block16(const sse2_consts *c, const uint8_t *s0, const uint8_t *s1,
                                uint8_t *y0, uint8_t *y1, uint8_t *u, uint8_t *v, int i420)
{
    __m128i y0a, y1a, uva, y0b, y1b, uvb, y0c, y1c, uvc, y0d, y1d, uvd;
    sse2_four(c, s0, s1, &y0a, &y1a, &uva);
    sse2_four(c, s0 + 16, s1 + 16, &y0b, &y1b, &uvb);
    sse2_four(c, s0 + 32, s1 + 32, &y0c, &y1c, &uvc);
    sse2_four(c, s0 + 48, s1 + 48, &y0d, &y1d, &uvd);
    _mm_storeu_si128((__m128i *)y0, sse2_pack(y0a, y0b, y0c, y0d));
    _mm_storeu_si128((__m128i *)y1, sse2_pack(y1a, y1b, y1c, y1d));
    __m128i uv = sse2_pack(uva, uvb, uvc, uvd);
    if (i420) {
        /* bytes U0 V0 .. U7 V7 -> U0..U7 in bytes 0-7, V0..V7 in 8-15 */
        __m128i split = _mm_packus_epi16(_mm_and_si128(uv, c->low_byte), _mm_srli_epi16(uv, 8));
        _mm_storel_epi64((__m128i *)u, split);
        _mm_storel_epi64((__m128i *)v, _mm_srli_si128(split, 8));
    } else {
        _mm_storeu_si128((__m128i *)u, uv);
    }
}

/* Columns [x_begin, width) of one pair: SSE2 blocks of 16, then scalar. */
static inline void sse2_pair(const sse2_consts *c, const nv12_job *job, const nv12_pair *pair,
                             const ptrdiff_t ahead[2], int x_begin, int i420)
{
    int blocks_end = x_begin + ((job->width - x_begin) & ~15);

    for (int x = x_begin; x < blocks_end; x += 16) {
        /* a block reads one 64-byte line of each row */
        _mm_prefetch((const char *)(pair->s0 + (size_t)x * 4 + ahead[0]), _MM_HINT_T0);
        _mm_prefetch((const char *)(pair->s1 + (size_t)x * 4 + ahead[1]), _MM_HINT_T0);
        sse2_block16(c, pair->s0 + (size_t)x * 4, pair->s1 + (size_t)x * 4, pair->y0 + x,
                     pair->y1 + x, pair->u + (i420 ? x / 2 : x), i420 ? pair->v + x / 2 : NULL,
                     i420);
    }
    nv12_pair_scalar(job, pair, blocks_end);
}

static void sse2_rows(const nv12_job *job, int row_begin, int row_end, int i420)
{
    sse2_consts c;
    nv12_pair pair;
    ptrdiff_t ahead[2];

    sse2_setup(&job->k, &c);
    for (int row = row_begin; row < row_end; row++) {
        nv12_pair_at(job, row, &pair);
        prefetch_offsets(job, row, &pair, ahead);
        sse2_pair(&c, job, &pair, ahead, 0, i420);
    }
}

void nv12_rows_sse2(const nv12_job *job, int row_begin, int row_end)
{
    if (job->v)
        sse2_rows(job, row_begin, row_end, 1);
    else
        sse2_rows(job, row_begin, row_end, 0);
}

/* ---------------------------------------------------------------- AVX2 */

#define AVX2 __attribute__((target("avx2")))

/* The AVX2 path reads the words with two operations per vector of pixels
 * instead of three, and folds the rounding biases into pmaddwd:
 * - OR with 0xFF00FF00 fills the odd bytes, so the words are (p0 - 256,
 *   p2 - 256) when read as signed: p0 and p2 with an exact offset of -256;
 * - pshufb picks (p1, p2).
 * p2 is in both words, and its coefficient is split between them so that the
 * offsets add up to the bias:
 *   luma   (y0, a) . (p0 - 256, p2 - 256) + (y1, y2 - a) . (p1, p2)
 *            = y0 p0 + y1 p1 + y2 p2 - 256 (y0 + a),      a = -y_bias / 256 - y0
 *   chroma, from block sums S0..S2 (four pixels each, so the offset is -1024)
 *          (u0, b) . (S0 - 1024, S2 - 1024) + (u1, u2 - b) . (S1, S2)
 *            = u0 S0 + u1 S1 + u2 S2 - 1024 (u0 + b),     b = -c_bias / 1024 - u0
 * (and likewise for V).  Every dword is then the scalar formula's sum exactly.
 * For BT.601 and BT.709 all these coefficients fit int16 except b in full
 * range, where u0 (or v0) is 16384 and b would be -32832.  There the chroma
 * sums leave out the rounding half 2^(S+1), are shifted one bit less, and
 * pavgw's (x + 1) >> 1 rounds once they are packed to words:
 * floor((floor(T / 2^(S+1)) + 1) / 2) = floor((T + 2^(S+1)) / 2^(S+2)).
 * Block sums of the offset words lie in [-1024, -4], far inside int16.
 * Compared with masking, shifting and blending in a constant word (the
 * previous way here), this is 8 fewer operations per 64 pixels, 7-8 % of the
 * loop's time at 1080p on Zen 3. */
typedef struct avx2_consts {
    __m256i odd_bytes, pick_12, y_02, y_12, c_02, c_12, order;
    int late_round; /* chroma rounded after packing (full range) */
} avx2_consts;

static int fits_int16(int32_t value)
{
    return value >= -32768 && value <= 32767;
}

/* Fills `c` for the coefficients `k`; 0 when some derived coefficient does
 * not fit int16 (no BT.601 or BT.709 table does that), so the caller takes
 * the SSE2 path instead. */
AVX2 static int avx2_setup(const nv12_coeffs *k, avx2_consts *c)
{
    int32_t a = -(k->y_bias / 256) - k->y[0];
    c->late_round = 0;
    int32_t c_offset = k->c_bias / 1024; /* the bias, per unit of the -1024 offset */
    if (!fits_int16(-c_offset - k->u[0]) || !fits_int16(-c_offset - k->v[0])) {
        c->late_round = 1;
        c_offset = (k->c_bias - (1 << (NV12_SHIFT + 1))) / 1024;
    }
    int32_t bu = -c_offset - k->u[0], bv = -c_offset - k->v[0];
    int32_t c_folded = k->c_bias - (c->late_round ? 1 << (NV12_SHIFT + 1) : 0);
    if (k->y_bias % 256 != 0 || c_folded % 1024 != 0 || !fits_int16(a)
        || !fits_int16(k->y[2] - a) || !fits_int16(bu) || !fits_int16(bv)
        || !fits_int16(k->u[2] - bu) || !fits_int16(k->v[2] - bv))
        return 0;

    c->odd_bytes = _mm256_set1_epi32((int)0xFF00FF00);
    /* per 128-bit lane, for each pixel: byte 1, zero, byte 2, zero */
    c->pick_12 = _mm256_setr_epi8(1, -1, 2, -1, 5, -1, 6, -1, 9, -1, 10, -1, 13, -1, 14, -1,
                                  1, -1, 2, -1, 5, -1, 6, -1, 9, -1, 10, -1, 13, -1, 14, -1);
    c->y_02 = _mm256_set1_epi32((int)word_pair(k->y[0], a));
    c->y_12 = _mm256_set1_epi32((int)word_pair(k->y[1], k->y[2] - a));
    c->c_02 = _mm256_set1_epi64x((int64_t)((uint64_t)word_pair(k->v[0], bv) << 32
                                           | word_pair(k->u[0], bu)));
    c->c_12 = _mm256_set1_epi64x((int64_t)((uint64_t)word_pair(k->v[1], k->v[2] - bv) << 32
                                           | word_pair(k->u[1], k->u[2] - bu)));
    /* The in-lane packs leave 4-byte groups in the order 0,2,4,6 | 1,3,5,7
     * of the wanted sequence (see avx2_packed); this gathers them back. */
    c->order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    return 1;
}

AVX2 static inline __m256i avx2_luma(const avx2_consts *c, __m256i w02, __m256i w12)
{
    __m256i sum = _mm256_add_epi32(_mm256_madd_epi16(w02, c->y_02), _mm256_madd_epi16(w12, c->y_12));
    return _mm256_srai_epi32(sum, NV12_SHIFT);
}

AVX2 static inline __m256i avx2_block_sum(__m256i top, __m256i bottom)
{
    __m256i v = _mm256_add_epi16(top, bottom);
    return _mm256_add_epi16(v, _mm256_shuffle_epi32(v, _MM_SHUFFLE(2, 3, 0, 1)));
}

AVX2 static inline __m256i avx2_chroma(const avx2_consts *c, __m256i s02, __m256i s12,
                                       int late_round)
{
    __m256i sum = _mm256_add_epi32(_mm256_madd_epi16(s02, c->c_02), _mm256_madd_epi16(s12, c->c_12));
    return _mm256_srai_epi32(sum, late_round ? NV12_SHIFT + 1 : NV12_SHIFT + 2);
}

/* Eight pixels of two rows, p0 above p1: luma of each row (8 x int32) and the
 * chroma of the four blocks (U, V alternating, 8 x int32; twice their value,
 * less the rounding, when late_round).  Row words are folded into block sums
 * as soon as their luma is done, which keeps few registers live. */
AVX2 static inline void avx2_eight(const avx2_consts *c, __m256i p0, __m256i p1, __m256i *y0,
                                   __m256i *y1, __m256i *uv, int late_round)
{
    __m256i p0_02 = _mm256_or_si256(p0, c->odd_bytes);
    __m256i p1_02 = _mm256_or_si256(p1, c->odd_bytes);
    __m256i p0_12 = _mm256_shuffle_epi8(p0, c->pick_12);
    __m256i p1_12 = _mm256_shuffle_epi8(p1, c->pick_12);

    *y0 = avx2_luma(c, p0_02, p0_12);
    *y1 = avx2_luma(c, p1_02, p1_12);
    *uv = avx2_chroma(c, avx2_block_sum(p0_02, p1_02), avx2_block_sum(p0_12, p1_12), late_round);
}

/* Chroma of two eights packed to words, rounded now if it was left for later. */
AVX2 static inline __m256i avx2_pack_chroma(__m256i a, __m256i b, int late_round)
{
    __m256i words = _mm256_packs_epi32(a, b);
    return late_round ? _mm256_avg_epu16(words, _mm256_setzero_si256()) : words;
}

/* The results of 32 pixels of two rows, packed to bytes but not yet in order:
 * packs_epi32 + packus_epi16 work within 128-bit lanes, so packing the results
 * of avx2_eight() for pixels 0-7 (a), 8-15 (b), 16-23 (c), 24-31 (d) leaves
 * the 4-byte groups as [a0-3, b0-3, c0-3, d0-3 | a4-7, b4-7, c4-7, d4-7] for
 * luma (four pixels each) and for UV (two blocks each).  One permute by
 * c->order puts each in sequence as it is stored. */
typedef struct avx2_packed {
    __m256i y0, y1, uv;
} avx2_packed;

#define AVX2_LOAD(p) _mm256_loadu_si256((const __m256i *)(p))

AVX2 static inline void avx2_store_luma(const avx2_consts *c, __m256i packed, uint8_t *y)
{
    _mm256_storeu_si256((__m256i *)y, _mm256_permutevar8x32_epi32(packed, c->order));
}

/* 16 chroma blocks: interleaved to NV12's plane (v == NULL), or split. */
AVX2 static inline void avx2_store_chroma(const avx2_consts *c, __m256i packed, uint8_t *u,
                                          uint8_t *v)
{
    __m256i uv = _mm256_permutevar8x32_epi32(packed, c->order);
    if (v) {
        const __m256i low_byte = _mm256_set1_epi16(0x00FF);
        /* per lane: U of its 8 blocks, then V; 64-bit permute gathers U, V */
        __m256i split = _mm256_packus_epi16(_mm256_and_si256(uv, low_byte), _mm256_srli_epi16(uv, 8));
        split = _mm256_permute4x64_epi64(split, _MM_SHUFFLE(3, 1, 2, 0));
        _mm_storeu_si128((__m128i *)u, _mm256_castsi256_si128(split));
        _mm_storeu_si128((__m128i *)v, _mm256_extracti128_si256(split, 1));
    } else {
        _mm256_storeu_si256((__m256i *)u, uv);
    }
}

/* One pair of rows in blocks of 32 pixels, software-pipelined in two ways
 * that the out-of-order core does not manage by itself (Zen 3, 1080p back to
 * back, together about 7 % faster):
 * - each eight's pixels are loaded while the previous eight is converted, so
 *   the loads' latency is off the arithmetic's path;
 * - a block's three permutes and stores are issued during the next block, one
 *   after each of its first three eights.  The cross-lane permute takes about a
 *   cycle of all four vector pipes on Zen 3 and ends a long chain: at the end
 *   of its own block it held up retirement, and three in a row stalled issue.
 * The pointers are copied to locals: the stores could otherwise alias *pair,
 * and the compiler would reload every pointer per block. */
AVX2 static inline __attribute__((always_inline)) void
avx2_pair_blocks(const avx2_consts *c, const nv12_pair *pair, const ptrdiff_t ahead[2],
                 int blocks_end, int i420, int late_round)
{
    const uint8_t *s0 = pair->s0, *s1 = pair->s1;
    const ptrdiff_t ahead0 = ahead[0], ahead1 = ahead[1];
    uint8_t *y0 = pair->y0, *y1 = pair->y1, *u = pair->u, *v = i420 ? pair->v : NULL;
    const int uv_step = i420 ? 16 : 32; /* bytes of u (and of v) per block */
    avx2_packed done = {0};             /* the previous block, still to be stored */

    if (blocks_end == 0)
        return; /* a row under 32 pixels: not even the first load is in bounds */
    __m256i a0 = AVX2_LOAD(s0), a1 = AVX2_LOAD(s1);

    for (int x = 0; x < blocks_end; x += 32) {
        __m256i y0a, y1a, uva, y0b, y1b, uvb;
        /* the first eight of the next block, or this one again on the last */
        ptrdiff_t next = x + 32 < blocks_end ? 128 : 0;

        /* a block reads two 64-byte lines of each row */
        _mm_prefetch((const char *)(s0 + ahead0), _MM_HINT_T0);
        _mm_prefetch((const char *)(s0 + ahead0 + 64), _MM_HINT_T0);
        _mm_prefetch((const char *)(s1 + ahead1), _MM_HINT_T0);
        _mm_prefetch((const char *)(s1 + ahead1 + 64), _MM_HINT_T0);

        __m256i b0 = AVX2_LOAD(s0 + 32), b1 = AVX2_LOAD(s1 + 32);
        avx2_eight(c, a0, a1, &y0a, &y1a, &uva, late_round);
        a0 = AVX2_LOAD(s0 + 64);
        a1 = AVX2_LOAD(s1 + 64);
        if (x != 0)
            avx2_store_luma(c, done.y0, y0 - 32);
        avx2_eight(c, b0, b1, &y0b, &y1b, &uvb, late_round);
        __m256i y0ab = _mm256_packs_epi32(y0a, y0b), y1ab = _mm256_packs_epi32(y1a, y1b);
        __m256i uvab = avx2_pack_chroma(uva, uvb, late_round);
        if (x != 0)
            avx2_store_luma(c, done.y1, y1 - 32);
        b0 = AVX2_LOAD(s0 + 96);
        b1 = AVX2_LOAD(s1 + 96);
        avx2_eight(c, a0, a1, &y0a, &y1a, &uva, late_round);
        if (x != 0)
            avx2_store_chroma(c, done.uv, u - uv_step, i420 ? v - uv_step : NULL);
        a0 = AVX2_LOAD(s0 + next);
        a1 = AVX2_LOAD(s1 + next);
        avx2_eight(c, b0, b1, &y0b, &y1b, &uvb, late_round);
        done.y0 = _mm256_packus_epi16(y0ab, _mm256_packs_epi32(y0a, y0b));
        done.y1 = _mm256_packus_epi16(y1ab, _mm256_packs_epi32(y1a, y1b));
        done.uv = _mm256_packus_epi16(uvab, avx2_pack_chroma(uva, uvb, late_round));
        s0 += 128;
        s1 += 128;
        y0 += 32;
        y1 += 32;
        u += uv_step;
        if (i420)
            v += uv_step;
    }
    avx2_store_luma(c, done.y0, y0 - 32);
    avx2_store_luma(c, done.y1, y1 - 32);
    avx2_store_chroma(c, done.uv, u - uv_step, i420 ? v - uv_step : NULL);
}

/* A last run of fewer than 32 pixels is left to the SSE2 code (blocks of 8)
 * and then the scalar code.  `i420` and `late_round` are constants at each
 * call site below, so the compiler emits four loops without a per-block
 * branch on either. */
AVX2 static inline void avx2_rows(const nv12_job *job, const avx2_consts *c, int row_begin,
                                  int row_end, int i420, int late_round)
{
    sse2_consts tail;
    nv12_pair pair;
    ptrdiff_t ahead[2];
    int blocks_end = job->width & ~31;

    sse2_setup(&job->k, &tail);
    for (int row = row_begin; row < row_end; row++) {
        nv12_pair_at(job, row, &pair);
        prefetch_offsets(job, row, &pair, ahead);
        avx2_pair_blocks(c, &pair, ahead, blocks_end, i420, late_round);
        sse2_pair(&tail, job, &pair, ahead, blocks_end, i420);
    }
}

AVX2 void nv12_rows_avx2(const nv12_job *job, int row_begin, int row_end)
{
    avx2_consts c;

    if (!avx2_setup(&job->k, &c))
        nv12_rows_sse2(job, row_begin, row_end);
    else if (job->v && c.late_round)
        avx2_rows(job, &c, row_begin, row_end, 1, 1);
    else if (job->v)
        avx2_rows(job, &c, row_begin, row_end, 1, 0);
    else if (c.late_round)
        avx2_rows(job, &c, row_begin, row_end, 0, 1);
    else
        avx2_rows(job, &c, row_begin, row_end, 0, 0);
}

#endif /* NV12_HAVE_X86 */
