/* psum_kernels.c -- bit-exact sequential MAC accumulation over a GEMM, CPU fast path.
 *
 * out[m, n] holds the accumulator (initialised by the caller with the loaded bias); for k in
 * [0, K) in order: out[m, n] := mac(out[m, n], A[m, k], B[k, n]).  Values, not codes: every
 * operand, product and accumulator value is carried as a float/double that equals the format
 * value exactly (the caller checks the ranges and precisions that make this true).
 *
 * Float accumulator, one step (the proof of exactness):
 *   1. p = a*b is exact in the working type T (caller: p_a + p_b <= precision(T), product range
 *      inside T's normal range).  Unfused: p is rounded once into the product format (a single
 *      rounding of an exact value, so exact semantics).
 *   2. s = fl_T(acc + p) and err = TwoSum error: acc + p = s + err exactly (Knuth).
 *   3. Round-to-odd at T's precision w: if err != 0 and s has an even last bit, step s one ulp
 *      toward err.  Then rounding RO_w(x) to p_acc bits with any mode equals rounding x directly
 *      when w >= p_acc + 2 (Boldo & Melquiond 2008); for SR the top sr_bits residual bits and the
 *      sticky information survive when w >= p_acc + sr_bits + 2 (caller checks).
 *   4. The rounding itself is integer arithmetic on T's bit pattern.
 * The rules are not written here: the rounding increment, the exact-zero sign and the overflow and
 * infinity results come from psum.golden.rounding / FloatFormat.overflow_codes as truth tables and
 * values in fmt_t (computed in Python per spec), and this file only looks them up.
 * Vector fast path: results in the accumulator's normal range (fixed rounding position D = w-1-M).
 * Anything else (subnormal or zero-crossing with rdn, overflow, inf/NaN, SR) is flagged and
 * recomputed for that lane by the scalar routine slow_step() in double, which implements every
 * rule of psum.golden.mac (same TwoSum + round-to-odd argument in binary64).
 */
#include <stdint.h>
#include <string.h>
#include <math.h>

enum { SR = 6 };  /* RISC-V frm codes; stochastic rounding needs its own carry input and loop */
enum { SP_IEEE = 0, SP_FN = 1, SP_FNUZ = 2, SP_FIN = 3 };

typedef struct {
    int32_t man_bits, emin, subnormals, specials;   /* float format */
    double max_value;
    int32_t int_bits, is_signed, is_int, present;   /* integer format (prod of an int MAC) */
    /* the rule book for this (format, rounding, saturation), from psum.golden.rounding:
       round_tbl bit i = round_up at i = guard | lsb<<1 | sticky<<2 | sign<<3 | sr_carry<<4;
       zero_tbl bit i = sign of an exact zero sum at i = both_zero | sp<<1 | sc<<2 */
    uint32_t round_tbl, zero_tbl;
    /* the same round_up as a rounding bias per (lsb, sign) for the vector path: 2 bits per
       j = lsb | sign<<1, class 0..3 = round up never / above half / from half / when inexact */
    uint32_t bias_cls;
    double ovf_pos, ovf_neg;    /* results of a positive / negative overflow (overflow_codes) */
    double inf_pos, inf_neg;    /* results of an infinite operand (golden.mac.infinity_codes) */
} fmt_t;

typedef struct {
    int64_t M, N, K;          /* A: M x K (row stride lda), B: K x N (row stride ldb), out: M x N (ldo) */
    int64_t lda, ldb, ldo;
    int32_t mode, saturate, sr_bits, int_acc;
    uint32_t seed;
    int64_t col_stride, k_offset;  /* SR: element index = row_base[m] + n*col_stride, step = k_offset+k */
    const int64_t *row_base;
    fmt_t acc, prod;          /* prod.present == 0: fused (exact product) */
    int32_t nthreads;
    int32_t zero_slow;        /* the host's round-to-nearest zero sign is not the rule: slow path */
    int32_t bias_dep;         /* what the rounding bias depends on: bit 0 lsb, bit 1 sign, bit 2 both */
    int32_t isa;              /* float path instruction set cap (psum_isa); -1: the best there is */
    int32_t rne_path;         /* 0: TwoSum blocks; 1 / 2: round-to-nearest-even blocks with a plain /
                                 round-to-odd host sum (the caller proves which; see tile_rne) */
    int32_t fp16_native;      /* 1 / 2: the spec is the host's IEEE binary16 fused / unfused MAC; 3:
                                 fused into e5m<M>, M < 10 (see run_h32): 0 elsewhere */
} params_t;

/* ------------------------------------------------------------------------------------------ */
/* Counter-based random bits for stochastic rounding: reproducible, independent of tiling.    */
/* ------------------------------------------------------------------------------------------ */
static inline uint32_t fmix32(uint32_t h) {
    h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; h ^= h >> 16; return h;
}
static inline uint32_t sr_rand(uint32_t seed, int64_t idx, int64_t step, int bits) {
    uint32_t h1 = fmix32(seed ^ (uint32_t)idx);
    uint32_t h2 = fmix32(h1 ^ (uint32_t)((uint64_t)step * 0x9E3779B1u) ^ (uint32_t)((uint64_t)idx >> 32));
    return h2 >> (32 - bits);
}

/* ------------------------------------------------------------------------------------------ */
/* Scalar exact rounding of a non-zero finite double x into a float format (golden round_float) */
/* ------------------------------------------------------------------------------------------ */
static double round_fmt(const fmt_t *f, double x, uint32_t rnd, int k) {
    uint64_t bits; memcpy(&bits, &x, 8);
    int sign = (int)(bits >> 63);
    int E = (int)((bits >> 52) & 0x7ff) - 1023;         /* x is a normal double (caller) */
    uint64_t m = (bits & ((1ull << 52) - 1)) | (1ull << 52);
    int M = f->man_bits;
    int e_eff = (f->subnormals && E < f->emin) ? f->emin : E;
    int64_t drop = 52 - M + (e_eff - E);                /* >= 2: w >= p + 2 */
    int64_t dc = drop > 54 ? 54 : drop;                 /* beyond: q = 0, guard 0, sticky 1 */
    uint64_t q = m >> dc, rem = m & ((1ull << dc) - 1), half = 1ull << (dc - 1);
    int guard = rem >= half, sticky = (rem & (half - 1)) != 0, carry = 0;
    if (k) {  /* stochastic rounding: the carry of the top k residual bits plus k random bits */
        uint64_t top;
        if (drop >= k) { int64_t sh = drop - k; top = sh >= 64 ? 0 : rem >> sh; }
        else top = rem << (k - drop);
        carry = (top + rnd) >= (1ull << k);
    }
    int idx = guard | (int)(q & 1) << 1 | sticky << 2 | sign << 3 | carry << 4;
    q += (f->round_tbl >> idx) & 1;                     /* the rule book's decision */
    double v = ldexp((double)q, e_eff - M);
    int zero_neg = sign && f->specials != SP_FNUZ;
    if (v == 0.0) return zero_neg ? -0.0 : 0.0;
    if (!f->subnormals && v < ldexp(1.0, f->emin)) return zero_neg ? -0.0 : 0.0;
    if (v > f->max_value) return sign ? f->ovf_neg : f->ovf_pos;
    return sign ? -v : v;
}

/* One MAC step for one element, every rule of psum.golden.mac, in binary64. */
static double slow_step(const params_t *P, double acc, double a, double b, uint32_t rnd) {
    const fmt_t *F = &P->acc;
    double p = a * b;                                    /* exact (caller's range check) */
    if (P->prod.present && isfinite(p)) {               /* prod's table: rne under sr */
        if (p == 0.0) { if (P->prod.specials == SP_FNUZ) p = 0.0; }
        else p = round_fmt(&P->prod, p, 0, 0);
    }
    if (isnan(p) || isnan(acc)) return NAN;
    if (isinf(p) || isinf(acc)) {
        if (isinf(p) && isinf(acc) && (signbit(p) != signbit(acc))) return NAN;
        int s = isinf(p) ? signbit(p) != 0 : signbit(acc) != 0;
        return s ? F->inf_neg : F->inf_pos;
    }
    /* -- exact sum as s + err (TwoSum) ------------------------------------------------------ */
    double s = acc + p, z = s - acc, err = (acc - (s - z)) + (p - z);
    if (s == 0.0 && err == 0.0) {                        /* exact zero: the rule book's sign */
        int idx = (acc == 0.0 && p == 0.0) | (signbit(p) != 0) << 1 | (signbit(acc) != 0) << 2;
        return (F->zero_tbl >> idx) & 1 ? -0.0 : 0.0;
    }
    /* -- round to odd at 53 bits, then the one real rounding ------------------------------- */
    if (err != 0.0) {
        uint64_t sb, eb; memcpy(&sb, &s, 8); memcpy(&eb, &err, 8);
        if (!(sb & 1)) sb += ((sb ^ eb) >> 63) ? (uint64_t)-1 : 1;
        memcpy(&s, &sb, 8);
    }
    return round_fmt(F, s, rnd, P->mode == SR ? P->sr_bits : 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Vector fast path, one instantiation per (element type, ISA): float (w = 24) and double      */
/* (w = 53) lanes, each for AVX-512 (64-byte vectors), AVX2 (32-byte) and generic code, chosen */
/* at run time (psum_isa) so that one cached library runs on any x86-64 host.                  */
/* ------------------------------------------------------------------------------------------ */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PSUM_X86 1
#define TGT_512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define TGT_256 __attribute__((target("avx2")))
#else
#define PSUM_X86 0
#define TGT_512
#define TGT_256
#endif
#define TGT_GEN

typedef float vf16 __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));
typedef uint32_t vu16 __attribute__((vector_size(64)));
typedef double vd8 __attribute__((vector_size(64)));
typedef int64_t vl8 __attribute__((vector_size(64)));
typedef uint64_t vq8 __attribute__((vector_size(64)));
typedef float vf8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));
typedef uint32_t vu8 __attribute__((vector_size(32)));
typedef double vd4 __attribute__((vector_size(32)));
typedef int64_t vl4 __attribute__((vector_size(32)));
typedef uint64_t vq4 __attribute__((vector_size(32)));

/* lane-wise max (signed) and min (unsigned) of bit patterns: the block range check.  Generic
   form by masks; AVX-512 / AVX2 have single instructions for them. */
#define GENERIC_MINMAX(SUF, VI, VU, TGT)                                                         \
static inline __attribute__((always_inline)) TGT VI vmax_##SUF(VI x, VI y) {                    \
    VI m = x > y; return (x & m) | (y & ~m); }                                                 \
static inline __attribute__((always_inline)) TGT VI vminu_##SUF(VI x, VI y) {                   \
    VI m = (VI)((VU)x < (VU)y); return (x & m) | (y & ~m); }
#if PSUM_X86
static inline __attribute__((always_inline)) TGT_512 vi16 vmax_f16(vi16 x, vi16 y) {
    return (vi16)_mm512_max_epi32((__m512i)x, (__m512i)y); }
static inline __attribute__((always_inline)) TGT_512 vi16 vminu_f16(vi16 x, vi16 y) {
    return (vi16)_mm512_min_epu32((__m512i)x, (__m512i)y); }
static inline __attribute__((always_inline)) TGT_512 vl8 vmax_d8(vl8 x, vl8 y) {
    return (vl8)_mm512_max_epi64((__m512i)x, (__m512i)y); }
static inline __attribute__((always_inline)) TGT_512 vl8 vminu_d8(vl8 x, vl8 y) {
    return (vl8)_mm512_min_epu64((__m512i)x, (__m512i)y); }
static inline __attribute__((always_inline)) TGT_256 vi8 vmax_f8a(vi8 x, vi8 y) {
    return (vi8)_mm256_max_epi32((__m256i)x, (__m256i)y); }
static inline __attribute__((always_inline)) TGT_256 vi8 vminu_f8a(vi8 x, vi8 y) {
    return (vi8)_mm256_min_epu32((__m256i)x, (__m256i)y); }
#else
GENERIC_MINMAX(f16, vi16, vu16, TGT_512)
GENERIC_MINMAX(d8, vl8, vq8, TGT_512)
GENERIC_MINMAX(f8a, vi8, vu8, TGT_256)
#endif
GENERIC_MINMAX(d4a, vl4, vq4, TGT_256)

/* any lane of a comparison mask set: one test instruction on AVX-512 / AVX2 (the careful
   path asks this every step), an OR over lanes in generic code */
#define GENERIC_ANY(SUF, VI, IT, LANES, TGT)                                                     \
static inline __attribute__((always_inline)) TGT int any_##SUF(VI m) {                          \
    IT a = 0; for (int l = 0; l < LANES; l++) a |= m[l]; return a != 0; }
#if PSUM_X86
static inline __attribute__((always_inline)) TGT_512 int any_f16(vi16 m) {
    return _mm512_test_epi32_mask((__m512i)m, (__m512i)m) != 0; }
static inline __attribute__((always_inline)) TGT_512 int any_d8(vl8 m) {
    return _mm512_test_epi64_mask((__m512i)m, (__m512i)m) != 0; }
static inline __attribute__((always_inline)) TGT_256 int any_f8a(vi8 m) {
    return !_mm256_testz_si256((__m256i)m, (__m256i)m); }
static inline __attribute__((always_inline)) TGT_256 int any_d4a(vl4 m) {
    return !_mm256_testz_si256((__m256i)m, (__m256i)m); }
#else
GENERIC_ANY(f16, vi16, int32_t, 16, TGT_512)
GENERIC_ANY(d8, vl8, int64_t, 8, TGT_512)
GENERIC_ANY(f8a, vi8, int32_t, 8, TGT_256)
GENERIC_ANY(d4a, vl4, int64_t, 4, TGT_256)
#endif
GENERIC_ANY(f8g, vi8, int32_t, 8, TGT_GEN)
GENERIC_ANY(d4g, vl4, int64_t, 4, TGT_GEN)

/* The exact sum acc + p = s + err.  TwoSum (Knuth, TAOCP vol. 2, 4.2.2) in 6 flops for any
   operands; with AVX-512DQ's VRANGE ordering the pair by magnitude (imm 7: larger |x|, 6: smaller
   |x|, each with its own sign) Fast2Sum (Dekker 1971: exact when exponent(big) >= exponent(small))
   needs 2 flops after s, so 4 instructions instead of 5. */
#define GENERIC_TWOSUM(SUF, VT, TGT)                                                             \
static inline __attribute__((always_inline)) TGT VT twosum_##SUF(VT acc, VT p, VT *s) {          \
    VT t = acc + p, z = t - acc; *s = t; return (acc - (t - z)) + (p - z); }
#if PSUM_X86
static inline __attribute__((always_inline)) TGT_512 vf16 twosum_f16(vf16 acc, vf16 p, vf16 *s) {
    vf16 t = acc + p, big = (vf16)_mm512_range_ps((__m512)acc, (__m512)p, 7);
    vf16 small = (vf16)_mm512_range_ps((__m512)acc, (__m512)p, 6);
    *s = t; return small - (t - big); }
static inline __attribute__((always_inline)) TGT_512 vd8 twosum_d8(vd8 acc, vd8 p, vd8 *s) {
    vd8 t = acc + p, big = (vd8)_mm512_range_pd((__m512d)acc, (__m512d)p, 7);
    vd8 small = (vd8)_mm512_range_pd((__m512d)acc, (__m512d)p, 6);
    *s = t; return small - (t - big); }
#else
GENERIC_TWOSUM(f16, vf16, TGT_512)
GENERIC_TWOSUM(d8, vd8, TGT_512)
#endif
GENERIC_TWOSUM(f8a, vf8, TGT_256)
GENERIC_TWOSUM(d4a, vd4, TGT_256)
GENERIC_TWOSUM(f8g, vf8, TGT_GEN)
GENERIC_TWOSUM(d4g, vd4, TGT_GEN)
GENERIC_MINMAX(f8g, vi8, vu8, TGT_GEN)
GENERIC_MINMAX(d4g, vl4, vq4, TGT_GEN)

/* The sum acc + p rounded to odd at the host precision w, RO_w(acc + p): the one of the two
   neighbours RD_w / RU_w whose last significand bit is odd (both equal when the sum is exact).
   AVX-512 computes both directed sums with embedded rounding (EVEX {rd-sae} / {ru-sae}, no MXCSR
   change) and blends on the lsb of RD: 4 instructions.  Elsewhere: TwoSum, then "step s one
   ulp toward err when inexact and even" branch-free as in ro_##SUF below.  Zeros: an exact
   cancellation gives RD = -0 (lsb 0), so RU's +0 is taken, IEEE round-to-nearest's sign;
   -0 + -0 is -0 in both. */
#define GENERIC_ROADD(SUF, VT, VI, SIGNSHIFT, TGT)                                              \
static inline __attribute__((always_inline)) TGT VT roadd_##SUF(VT acc, VT p) {                 \
    VT s, err = twosum_##SUF(acc, p, &s);                                                      \
    VI s0 = (VI)s, dn = (s0 ^ (VI)err) >> SIGNSHIFT, inex = err != 0;                          \
    return (VT)((((s0 + dn) | 1) & inex) | (s0 & ~inex)); }
#if PSUM_X86
static inline __attribute__((always_inline)) TGT_512 vf16 roadd_f16(vf16 acc, vf16 p) {
    __m512 d = _mm512_add_round_ps((__m512)acc, (__m512)p, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 u = _mm512_add_round_ps((__m512)acc, (__m512)p, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
    __mmask16 odd = _mm512_test_epi32_mask(_mm512_castps_si512(d), _mm512_set1_epi32(1));
    return (vf16)_mm512_mask_blend_ps(odd, u, d); }
static inline __attribute__((always_inline)) TGT_512 vd8 roadd_d8(vd8 acc, vd8 p) {
    __m512d d = _mm512_add_round_pd((__m512d)acc, (__m512d)p, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512d u = _mm512_add_round_pd((__m512d)acc, (__m512d)p, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
    __mmask8 odd = _mm512_test_epi64_mask(_mm512_castpd_si512(d), _mm512_set1_epi64(1));
    return (vd8)_mm512_mask_blend_pd(odd, u, d); }
#else
GENERIC_ROADD(f16, vf16, vi16, 31, TGT_512)
GENERIC_ROADD(d8, vd8, vl8, 63, TGT_512)
#endif
GENERIC_ROADD(f8a, vf8, vi8, 31, TGT_256)
GENERIC_ROADD(d4a, vd4, vl4, 63, TGT_256)
GENERIC_ROADD(f8g, vf8, vi8, 31, TGT_GEN)
GENERIC_ROADD(d4g, vd4, vl4, 63, TGT_GEN)
/* The fused step's sum acc + a*b (a*b exact: float_path_ok): one FMA on AVX-512 (it rounds the
   exact a*b + acc once, the same value as the product then the sum), a product and a sum
   elsewhere (AVX2 dispatch does not check the FMA flag); fmaro_* the same rounded to odd. */
#define GENERIC_FMA(SUF, VT, TGT)                                                               \
static inline __attribute__((always_inline)) TGT VT fmadd_##SUF(VT a, VT b, VT acc) {           \
    return acc + a * b; }                                                                      \
static inline __attribute__((always_inline)) TGT VT fmaro_##SUF(VT a, VT b, VT acc) {           \
    return roadd_##SUF(acc, a * b); }
#if PSUM_X86
static inline __attribute__((always_inline)) TGT_512 vf16 fmadd_f16(vf16 a, vf16 b, vf16 acc) {
    return (vf16)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)acc); }
static inline __attribute__((always_inline)) TGT_512 vd8 fmadd_d8(vd8 a, vd8 b, vd8 acc) {
    return (vd8)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)acc); }
static inline __attribute__((always_inline)) TGT_512 vf16 fmaro_f16(vf16 a, vf16 b, vf16 acc) {
    __m512 d = _mm512_fmadd_round_ps((__m512)a, (__m512)b, (__m512)acc, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 u = _mm512_fmadd_round_ps((__m512)a, (__m512)b, (__m512)acc, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
    __mmask16 odd = _mm512_test_epi32_mask(_mm512_castps_si512(d), _mm512_set1_epi32(1));
    return (vf16)_mm512_mask_blend_ps(odd, u, d); }
static inline __attribute__((always_inline)) TGT_512 vd8 fmaro_d8(vd8 a, vd8 b, vd8 acc) {
    __m512d d = _mm512_fmadd_round_pd((__m512d)a, (__m512d)b, (__m512d)acc, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512d u = _mm512_fmadd_round_pd((__m512d)a, (__m512d)b, (__m512d)acc, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
    __mmask8 odd = _mm512_test_epi64_mask(_mm512_castpd_si512(d), _mm512_set1_epi64(1));
    return (vd8)_mm512_mask_blend_pd(odd, u, d); }
#else
GENERIC_FMA(f16, vf16, TGT_512)
GENERIC_FMA(d8, vd8, TGT_512)
#endif
GENERIC_FMA(f8a, vf8, TGT_256)
GENERIC_FMA(d4a, vd4, TGT_256)
GENERIC_FMA(f8g, vf8, TGT_GEN)
GENERIC_FMA(d4g, vd4, TGT_GEN)

/* Steps per speculative block: long enough to amortise the block's check and the saved state,
   short enough that a block with a special lane costs little to redo on the careful path. */
#define KB 32

/* Two tile paths share the exact arithmetic above (TwoSum + round to odd + fixed-position
   rounding with the rule book's bias):
   - careful (tile_careful): every step checks its lanes and recomputes a lane that left the
     accumulator's normal range with slow_step right away (one branch per step);
   - fast (tile_fast): KB steps with no branch at all; each step only folds its range evidence
     into two registers, hi = max |pattern| of the unrounded sum s and of the result r, and
     lo = min over steps of |s| - zoff (unsigned; zoff = 1 lets an exact zero pass, 0 sends it
     to the careful path when the host's zero sign is not the rule).  The block's results are
     kept only if hi <= max finite and lo >= min normal + 1 - zoff.  That implies the careful
     path's per-step condition at every step of every lane ("a0 > maxb | ar > maxb |
     0 < ab < minn" false, ab = |RO(s)|): the first two are hi's; and since round to odd moves
     the pattern by at most one step, |s| >= minn + 1 gives ab >= minn, while |s| == 0 means
     TwoSum's s is exact, so ab == 0 (the check is stricter by the one pattern |s| == minn: a
     needless redo, never a wrong result).  So every kept step was a normal-range step computed
     by the same fixed-position rounding as the careful path: bit-identical.  Otherwise the
     tile's accumulators are left as they were at the block start and the block is recomputed on
     the careful path.
     A lane that went wrong inside the block (NaN, overflow) only pollutes that block's discarded
     results: IEEE arithmetic does not trap. */
/* Round-to-nearest-even blocks (tile_rne; rne_path 1 or 2): ~10 vector instructions per step
   instead of ~25, for specs whose rule book rounds like the host's RNE (the caller checks the
   rounding table, that the host's exact-zero sign is the rule's, and that acc and prod have
   subnormals and a negative zero).  One step, per lane, acc and p values of their formats:
     s = acc + p in the host type T (w bits)               rne_path 1: plain RN_w sum
     s = RO_w(acc + p)                                      rne_path 2: round to odd (roadd_*)
     e = max(exponent(s), emin_acc); C = 1.5 * 2^(e + w - p_acc)
     r = (s + C) - C, with the sign bit of s ORed in.
   (a) The magic constant.  C is a multiple of u = 2^(e + 1 - p_acc), the acc grid spacing at s
       (in the subnormal range e = emin: the subnormal quantum, the same u).  |s| < 2^(e+1), so
       s + C stays in C's binade [2^(e+w-p_acc), 2^(e+w-p_acc+1)) when p_acc <= w - 2, where T's
       spacing is u: the host's RNE gives C + RNE_u(s), and since C/u = 1.5 * 2^(w-1) is even the
       parity of the tie-break is that of RNE_u(s).  Subtracting C is exact (Sterbenz).  So
       r = RN_acc(s), the accumulator rounding of s with ties to even, subnormals included.  The
       sign OR: a non-zero s that rounds to zero keeps its sign (round_fmt's zero_neg), and a
       zero s keeps the host's sign, which is the rule's (caller).
   (b) rne_path 2: RN_acc(RO_w(x)) = RN_acc(x) when w >= p_acc + 2 (Boldo & Melquiond 2008; in
       the subnormal range the grid is coarser still).
   (c) rne_path 1 (a plain sum s = RN_w(S), S = acc + p exact): RN_acc(s) = RN_acc(S) unless s is
       a midpoint of the acc grid and S is not (RN_w is monotone and every acc midpoint is a
       w-bit number, so s and S lie between the same two midpoints otherwise).  Let L be the
       operand of larger magnitude, T the other, with precisions pL, pT, and S inexact in w bits.
       Then e(S) >= e(L) - 1 (a cancellation |S| < |L|/2 is exact for w > max(pL, pT)), L lies
       on the w-bit grid of S's binade (pL <= w - 1), so T does not and |T| < 2^(e(S)-w+pT).
       If pL <= p_acc, L is a multiple of 2^(e(S)-p_acc) and no acc midpoint M of S's binade
       (L in a lower binade is smaller than any such M), so |S - M| >= 2^(e(S)-p_acc) - |T| >
       2^(e(S)-w) = half an ulp_w when w >= p_acc + pT + 1: RN_w(S) is no midpoint.  Hence the
       caller's conditions, with pp the product's precision (exact product: p_a + p_b; unfused:
       p_prod): w >= p_acc + pp + 1 (L = acc), and for L = product either pp <= p_acc and
       w >= 2 p_acc + 1, or acc on the w-bit grid of every binade the block allows
       (w >= emax_acc - emin_acc + m_acc + 1, so S is exact).  In the acc's subnormal range
       (quantum q) the midpoints are odd multiples of q/2: L = acc is a grid point, at least q/2
       from any, and the same bound holds; L = product could be one, but then RN_w(S) = M needs
       0 < |acc| <= 2^(e(S)-w) < q, and a non-zero acc is at least q.  Example of the failure
       this excludes (fp16 fused, w = 24): 1024 + 1.03125 * 0.48486328125 = 1024 + (0.5 +
       2^-16) is 1024.5 in binary32, a tie that RNE takes down to 1024 where the exact sum rounds
       to 1025 (tests/test_kernels_rne.py); such specs take rne_path 2.
   (d) Unfused: the exact product is rounded into prod by the same (a), one rounding of an exact
       value.
   Range evidence, folded branch-free as in tile_fast: the max over the block of exponent(s)
   (and of the products, unfused).  The block is kept when every s lay below 2^emax of its
   format (then r <= 2^emax <= max finite: no overflow, and S < 2^emax too, RN being monotone)
   and below the limit that keeps s + C finite in T; an inf or NaN anywhere has the all-ones
   exponent and fails it.  Subnormal and zero sums need no evidence: (a) rounds them. */
#define DEFINE_KERNEL(SUF, T, VT, VI, VU, IT, LANES, W, SIGNSHIFT, TGT, ROWS, COLS)                \
typedef struct { IT D, half, mask, maxb, minn; IT sign, b00, dl, ds, dx; } consts_##SUF;       \
static inline TGT consts_##SUF mkconsts_##SUF(const fmt_t *f) {                                \
    consts_##SUF c; T mx = (T)f->max_value, mn = (T)ldexp(1.0, f->emin); IT b[4];              \
    c.D = (W - 1) - f->man_bits; c.half = (IT)1 << (c.D - 1); c.mask = ((IT)1 << c.D) - 1;     \
    memcpy(&c.maxb, &mx, sizeof(T)); memcpy(&c.minn, &mn, sizeof(T));                          \
    c.sign = (IT)1 << SIGNSHIFT;                                                               \
    /* class -> bias: adding it carries into the kept bits exactly when the class says so */   \
    for (int j = 0; j < 4; j++) { int cls = (f->bias_cls >> (2 * j)) & 3;                     \
        b[j] = cls == 0 ? 0 : cls == 1 ? c.half - 1 : cls == 2 ? c.half : c.mask; }            \
    c.b00 = b[0]; c.dl = b[1] - b[0]; c.ds = b[2] - b[0]; c.dx = b[3] - b[2] - b[1] + b[0];    \
    return c; }                                                                                \
/* fixed-position rounding of RO'd bit patterns (magnitude arithmetic on the pattern): add the \
   rule book's bias for this lane's (lsb, sign), then truncate; DEP (a constant) drops the     \
   terms the table does not depend on */                                                      \
static inline __attribute__((always_inline)) TGT VI rnd_##SUF(VI sb, const consts_##SUF *c, int dep) { \
    VI bias = sb - sb + c->b00;                                                                \
    /* lane masks: the lsb moved to the sign position and spread by an arithmetic shift */     \
    VI lsbm = (sb << (SIGNSHIFT - c->D)) >> SIGNSHIFT, sgnm = sb >> SIGNSHIFT;                 \
    if (dep & 1) bias += lsbm & c->dl;                                                         \
    if (dep & 2) bias += sgnm & c->ds;                                                         \
    if (dep & 4) bias += lsbm & sgnm & c->dx;                                                  \
    return (sb + bias) & ~c->mask; }                                                           \
/* round to odd at w bits of s + err (TwoSum's exact split), branch-free: when inexact,         \
   truncate toward zero (one pattern step down when err points toward zero) and set the lsb;   \
   this is "step s one ulp toward err if s is even" (4 cases: s odd/even x err with/against s) */ \
static inline __attribute__((always_inline)) TGT VI ro_##SUF(VT s, VT err) {                    \
    VI s0 = (VI)s, dn = (s0 ^ (VI)err) >> SIGNSHIFT, inex = err != 0;                          \
    return (((s0 + dn) | 1) & inex) | (s0 & ~inex); }                                           \
static inline __attribute__((always_inline)) TGT VI range_bad_##SUF(VI s0, VI sb, VI r,         \
        const consts_##SUF *c) {                                                               \
    VI ab = sb & ~c->sign, a0 = s0 & ~c->sign, ar = r & ~c->sign;                              \
    return (a0 > c->maxb) | (ar > c->maxb) | ((ab < c->minn) & (ab != 0));                    \
}                                                                                              \
static inline __attribute__((always_inline)) TGT VT careful_step_##SUF(VT acc, VT p,             \
        const consts_##SUF *c, int zero_slow, int dep, VI *bad) {                              \
    VT s = acc + p, z = s - acc, err = (acc - (s - z)) + (p - z);                              \
    VI s0 = (VI)s, sb = ro_##SUF(s, err);                                                      \
    VI r = rnd_##SUF(sb, c, dep);                                                              \
    VI b = range_bad_##SUF(s0, sb, r, c);                                                      \
    if (zero_slow) b |= (r & ~c->sign) == 0;   /* zero sign not the host's: slow path */      \
    *bad |= b; return (VT)r; }                                                                 \
static inline __attribute__((always_inline)) TGT VT careful_prod_##SUF(VT p, const consts_##SUF *c, \
        int fnuz, int dep, VI *bad) {                                                          \
    VI pb = (VI)p; VI r = rnd_##SUF(pb, c, dep);                                               \
    *bad |= range_bad_##SUF(pb, pb, r, c);                                                     \
    VT out = (VT)r; if (fnuz) out = out + (T)0; return out; }                                  \
/* the same step, evidence folded into hi / lo instead of a per-step mask and branch */         \
static inline __attribute__((always_inline)) TGT VT fast_step_##SUF(VT acc, VT p,                \
        const consts_##SUF *c, VI zoff, int dep, VI *hi, VI *lo) {                             \
    VT s, err = twosum_##SUF(acc, p, &s);                                                      \
    VI s0 = (VI)s, sb = ro_##SUF(s, err), a0 = s0 & ~c->sign;                                  \
    VI r = rnd_##SUF(sb, c, dep);                                                              \
    *hi = vmax_##SUF(*hi, vmax_##SUF(a0, r & ~c->sign));                                       \
    *lo = vminu_##SUF(*lo, a0 - zoff);                                                         \
    return (VT)r; }                                                                            \
static inline __attribute__((always_inline)) TGT VT fast_prod_##SUF(VT p, const consts_##SUF *c,  \
        int fnuz, int dep, VI *hi, VI *lo) {                                                   \
    VI pb = (VI)p, r = rnd_##SUF(pb, c, dep), one = pb - pb + 1;                               \
    *hi = vmax_##SUF(*hi, vmax_##SUF(pb & ~c->sign, r & ~c->sign));                            \
    *lo = vminu_##SUF(*lo, (pb & ~c->sign) - one);                                             \
    VT out = (VT)r; if (fnuz) out = out + (T)0; return out; }                                  \
static inline __attribute__((always_inline)) TGT void tile_careful_##SUF(const params_t *P,       \
        VT acc[ROWS][COLS], const T *A, const T *B, int64_t m0, int64_t nr, int64_t n0,        \
        int64_t nc, int64_t k0, int64_t k1, int zero_slow, int dep) {                          \
    consts_##SUF ca = mkconsts_##SUF(&P->acc), cp = mkconsts_##SUF(&P->prod);                 \
    int unfused = P->prod.present, fnuz = P->prod.specials == SP_FNUZ;                        \
    for (int64_t k = k0; k < k1; k++) {                                                        \
        VT bv[COLS];                                                                           \
        for (int j = 0; j < COLS; j++) {                                                       \
            if (j < nc) memcpy(&bv[j], B + k * P->ldb + n0 + j * LANES, sizeof(VT));           \
            else bv[j] = (VT){0}; }                                                            \
        for (int i = 0; i < ROWS; i++) {                                                       \
            T a = i < nr ? A[(m0 + i) * P->lda + k] : (T)0;                                    \
            for (int j = 0; j < COLS; j++) {                                                   \
                VI bad = (VI){0};                                                              \
                VT p = a * bv[j];                                                              \
                if (unfused) p = careful_prod_##SUF(p, &cp, fnuz, dep, &bad);                 \
                VT nv = careful_step_##SUF(acc[i][j], p, &ca, zero_slow, dep, &bad);           \
                if (__builtin_expect(any_##SUF(bad), 0)) {                                     \
                    for (int l = 0; l < LANES; l++) if (bad[l])                                \
                        nv[l] = (T)slow_step(P, (double)acc[i][j][l], (double)a, (double)bv[j][l], 0); \
                }                                                                              \
                acc[i][j] = nv; } } } }                                                        \
/* KB (or fewer) steps without a branch on a full tile; the results replace acc only when the   \
   block's range check passes (returns 0), else acc is left as it was (returns 1).  The        \
   accumulators live in a local array that nothing takes the address of, so they stay in     \
   registers. */                                                                               \
static inline __attribute__((always_inline)) TGT int tile_fast_##SUF(const params_t *P,          \
        VT acc[ROWS][COLS], const T *A, const T *B, int64_t m0, int64_t n0,                    \
        int64_t k0, int64_t k1, int zero_slow, int dep, int unfused) {                         \
    consts_##SUF ca = mkconsts_##SUF(&P->acc), cp = mkconsts_##SUF(&P->prod);                 \
    int fnuz = P->prod.specials == SP_FNUZ;                                                    \
    VI zero = (VI){0}, hi = zero, lo = zero - 1, hp = zero, lp = zero - 1;                     \
    VI zoff = zero + (zero_slow ? 0 : 1);                                                      \
    VT r[ROWS][COLS];                                                                          \
    for (int i = 0; i < ROWS; i++) for (int j = 0; j < COLS; j++) r[i][j] = acc[i][j];         \
    const T *Ak = A + m0 * P->lda, *Bk = B + n0;                                               \
    for (int64_t k = k0; k < k1; k++) {                                                        \
        VT bv[COLS];                                                                           \
        for (int j = 0; j < COLS; j++) memcpy(&bv[j], Bk + k * P->ldb + j * LANES, sizeof(VT)); \
        for (int i = 0; i < ROWS; i++) {                                                       \
            T a = Ak[i * P->lda + k];                                                          \
            for (int j = 0; j < COLS; j++) {                                                   \
                VT p = a * bv[j];                                                              \
                if (unfused) p = fast_prod_##SUF(p, &cp, fnuz, dep, &hp, &lp);                \
                r[i][j] = fast_step_##SUF(r[i][j], p, &ca, zoff, dep, &hi, &lo); } } }         \
    /* lo holds |s| - zoff, and |RO(s)| >= |s| - 1 (one pattern step at most), so |s| >= minn + 1 \
       implies |RO(s)| >= minn; |s| == 0 implies RO(s) == 0 (TwoSum: s == 0 only when exact) */  \
    VI bad = (hi > ca.maxb) | (VI)((VU)lo < (VU)(zero + ca.minn + 1 - zoff));                  \
    if (unfused) bad |= (hp > cp.maxb) | (VI)((VU)lp < (VU)(zero + cp.minn - 1));              \
    if (any_##SUF(bad)) return 1;                                                              \
    for (int i = 0; i < ROWS; i++) for (int j = 0; j < COLS; j++) acc[i][j] = r[i][j];         \
    return 0; }                                                                                \
/* tile_rne's constants per format: exponent field and sign masks, 2^emin, the pattern offset  \
   that turns 2^e into C = 1.5 * 2^(e + W - p), and top: the exponent bound (2^emax of the     \
   format, lowered where s + C would leave T's range) */                                      \
typedef struct { IT exp, sign, minn, koff, top; } rnec_##SUF;                                  \
static inline TGT rnec_##SUF mkrnec_##SUF(const fmt_t *f) {                                    \
    rnec_##SUF c; int p = f->man_bits + 1;                                                     \
    int ef = ilogb(f->max_value), et = (W == 24 ? 127 : 1023) - (W - p) - 2;                   \
    T mn = (T)ldexp(1.0, f->emin), tp = (T)ldexp(1.0, ef < et ? ef : et);                      \
    memcpy(&c.minn, &mn, sizeof(T)); memcpy(&c.top, &tp, sizeof(T));                           \
    c.sign = (IT)1 << SIGNSHIFT;                                                               \
    c.exp = (c.sign - 1) & ~(((IT)1 << (W - 1)) - 1);                                          \
    c.koff = ((IT)(W - p) << (W - 1)) | ((IT)1 << (W - 2));                                    \
    return c; }                                                                                \
/* RN of s into the format (proof (a) above), exponent evidence into hi */                      \
static inline __attribute__((always_inline)) TGT VT rne_round_##SUF(VT s, const rnec_##SUF *c,   \
        VI *hi) {                                                                              \
    VI sb = (VI)s, t = sb & c->exp, z = (VI){0};                                               \
    *hi = vmax_##SUF(*hi, t);                                                                  \
    VT C = (VT)(vmax_##SUF(t, z + c->minn) + c->koff);                                         \
    VT r = (s + C) - C;                                                                        \
    return (VT)((VI)r | (sb & c->sign)); }                                                     \
/* KB (or fewer) round-to-nearest-even steps on a full tile, no branch; like tile_fast, the    \
   results replace acc only when the block's evidence passes (returns 0), else 1 */           \
static inline __attribute__((always_inline)) TGT int tile_rne_##SUF(const params_t *P,           \
        VT acc[ROWS][COLS], const T *A, const T *B, int64_t m0, int64_t n0,                    \
        int64_t k0, int64_t k1, int unfused, int ro) {                                         \
    rnec_##SUF ca = mkrnec_##SUF(&P->acc), cp = mkrnec_##SUF(&P->prod);                       \
    VI zero = (VI){0}, hi = zero, hp = zero;                                                   \
    VT r[ROWS][COLS];                                                                          \
    for (int i = 0; i < ROWS; i++) for (int j = 0; j < COLS; j++) r[i][j] = acc[i][j];         \
    const T *Ak = A + m0 * P->lda, *Bk = B + n0;                                               \
    for (int64_t k = k0; k < k1; k++) {                                                        \
        VT bv[COLS];                                                                           \
        for (int j = 0; j < COLS; j++) memcpy(&bv[j], Bk + k * P->ldb + j * LANES, sizeof(VT)); \
        for (int i = 0; i < ROWS; i++) {                                                       \
            T a = Ak[i * P->lda + k];                                                          \
            VT av = (VT){0} + a;                                                               \
            for (int j = 0; j < COLS; j++) {                                                   \
                VT s;                                                                          \
                if (unfused) {                                                                 \
                    VT p = rne_round_##SUF(av * bv[j], &cp, &hp);                              \
                    s = ro ? roadd_##SUF(r[i][j], p) : r[i][j] + p;                             \
                } else s = ro ? fmaro_##SUF(av, bv[j], r[i][j]) : fmadd_##SUF(av, bv[j], r[i][j]); \
                r[i][j] = rne_round_##SUF(s, &ca, &hi); } } }                                  \
    VI bad = hi >= ca.top;                                                                     \
    if (unfused) bad |= hp >= cp.top;                                                          \
    if (any_##SUF(bad)) return 1;                                                              \
    for (int i = 0; i < ROWS; i++) for (int j = 0; j < COLS; j++) acc[i][j] = r[i][j];         \
    return 0; }                                                                                \
static inline __attribute__((always_inline)) TGT void tile_##SUF(const params_t *P, T *base_out, \
        const T *A, const T *B, int64_t m0, int64_t nr, int64_t n0, int64_t nc, int zero_slow,   \
        int dep, int rne) {                                                                    \
    VT acc[ROWS][COLS];                                                                        \
    int full = nr == ROWS && nc == COLS, unfused = P->prod.present;                            \
    for (int i = 0; i < ROWS; i++) for (int j = 0; j < COLS; j++) {                            \
        if (i < nr && j < nc) memcpy(&acc[i][j], base_out + (m0 + i) * P->ldo + n0 + j * LANES, sizeof(VT)); \
        else acc[i][j] = (VT){0}; }                                                            \
    /* data whose blocks keep failing (e.g. many products in the product format's subnormal   \
       range) would pay for a wasted fast pass per block: after a failure the next `backoff`   \
       blocks go straight to the careful path, backoff doubling (to 8) while failures go on    \
       and resetting on a success.  Only the speed depends on this, never a result. */         \
    int backoff = 0, wait = 0;                                                                 \
    for (int64_t k0 = 0; k0 < P->K; k0 += KB) {                                                \
        int64_t k1 = P->K - k0 < KB ? P->K : k0 + KB;                                          \
        /* edge tiles (rows or columns missing) and redone blocks take the careful path */     \
        if (full && wait > 0) wait--;                                                          \
        else if (full) {                                                                       \
            int failed = rne == 1 ? (unfused ? tile_rne_##SUF(P, acc, A, B, m0, n0, k0, k1, 1, 0) \
                                             : tile_rne_##SUF(P, acc, A, B, m0, n0, k0, k1, 0, 0)) \
                       : rne == 2 ? (unfused ? tile_rne_##SUF(P, acc, A, B, m0, n0, k0, k1, 1, 1) \
                                             : tile_rne_##SUF(P, acc, A, B, m0, n0, k0, k1, 0, 1)) \
                       : unfused ? tile_fast_##SUF(P, acc, A, B, m0, n0, k0, k1, zero_slow, dep, 1) \
                                 : tile_fast_##SUF(P, acc, A, B, m0, n0, k0, k1, zero_slow, dep, 0); \
            if (!failed) {                                                                     \
                backoff = 0; continue; }                                                       \
            backoff = backoff ? (backoff < 8 ? 2 * backoff : 8) : 1; wait = backoff; }          \
        tile_careful_##SUF(P, acc, A, B, m0, nr, n0, nc, k0, k1, zero_slow, dep); }            \
    for (int i = 0; i < nr; i++) for (int j = 0; j < nc; j++)                                  \
        memcpy(base_out + (m0 + i) * P->ldo + n0 + j * LANES, &acc[i][j], sizeof(VT));        \
}                                                                                              \
static TGT void run_float_##SUF(const params_t *P, const T *A, const T *B, T *out) {          \
    int64_t ntr = (P->M + ROWS - 1) / ROWS, nvec = P->N / LANES;                               \
    int64_t ntc = (nvec + COLS - 1) / COLS;                                                    \
    _Pragma("omp parallel for schedule(dynamic, 4) num_threads(P->nthreads)")                 \
    for (int64_t t = 0; t < ntr * ntc; t++) {                                                  \
        int64_t tr = t / ntc, tc = t % ntc;                                                    \
        int64_t m0 = tr * ROWS, nr = P->M - m0 < ROWS ? P->M - m0 : ROWS;                     \
        int64_t n0 = tc * COLS * LANES, nc = nvec - tc * COLS < COLS ? nvec - tc * COLS : COLS;\
        /* instances by what the rounding bias depends on and by the zero check, so a spec pays  \
           for no term its rule book does not use */                                           \
        int z = P->zero_slow != 0;                                                             \
        /* RNE blocks: the caller sets rne_path only where bias_dep is 1 and zero_slow 0 */     \
        if (P->rne_path == 1) { tile_##SUF(P, out, A, B, m0, nr, n0, nc, 0, 1, 1); continue; }   \
        if (P->rne_path == 2) { tile_##SUF(P, out, A, B, m0, nr, n0, nc, 0, 1, 2); continue; }   \
        switch (P->bias_dep) {                                                                 \
        case 0: if (z) tile_##SUF(P, out, A, B, m0, nr, n0, nc, 1, 0, 0);                         \
                else tile_##SUF(P, out, A, B, m0, nr, n0, nc, 0, 0, 0); break;                    \
        case 1: if (z) tile_##SUF(P, out, A, B, m0, nr, n0, nc, 1, 1, 0);                         \
                else tile_##SUF(P, out, A, B, m0, nr, n0, nc, 0, 1, 0); break;                    \
        case 2: if (z) tile_##SUF(P, out, A, B, m0, nr, n0, nc, 1, 2, 0);                         \
                else tile_##SUF(P, out, A, B, m0, nr, n0, nc, 0, 2, 0); break;                    \
        default: tile_##SUF(P, out, A, B, m0, nr, n0, nc, z, 7, 0); break;                        \
        } } }

/* stochastic rounding and integer accumulators: scalar element loops (type T only) */
#define DEFINE_SCALAR(SUF, T)                                                                  \
/* stochastic rounding: every step through slow_step with its counter-based random bits */     \
static void run_sr_##SUF(const params_t *P, const T *A, const T *B, T *out) {                 \
    _Pragma("omp parallel for schedule(dynamic, 4) num_threads(P->nthreads)")                 \
    for (int64_t m = 0; m < P->M; m++) for (int64_t n = 0; n < P->N; n++) {                    \
        double acc = out[m * P->ldo + n];                                                      \
        int64_t idx = P->row_base[m] + n * P->col_stride;                                     \
        for (int64_t k = 0; k < P->K; k++)                                                     \
            acc = slow_step(P, acc, A[m * P->lda + k], B[k * P->ldb + n],                      \
                            sr_rand(P->seed, idx, P->k_offset + k, P->sr_bits));               \
        out[m * P->ldo + n] = (T)acc; } }                                                      \
/* integer MAC on exact integer values: product fitted into prod, sum saturated per step (sat) \
   or left unwrapped (the caller wraps once at the end: addition mod 2**n is associative) */   \
static void run_int_##SUF(const params_t *P, const T *A, const T *B, T *out) {                \
    const fmt_t *pf = &P->prod; int sat = P->saturate;                                         \
    T plo = 0, phi = 0, pm = 0, alo = 0, ahi = 0;                                              \
    if (pf->present) { pm = (T)ldexp(1.0, pf->int_bits);                                       \
        plo = pf->is_signed ? -pm / 2 : 0; phi = pf->is_signed ? pm / 2 - 1 : pm - 1; }       \
    alo = P->acc.is_signed ? -(T)ldexp(1.0, P->acc.int_bits - 1) : 0;                          \
    ahi = P->acc.is_signed ? (T)ldexp(1.0, P->acc.int_bits - 1) - 1 : (T)ldexp(1.0, P->acc.int_bits) - 1; \
    _Pragma("omp parallel for schedule(static) num_threads(P->nthreads)")                     \
    for (int64_t m = 0; m < P->M; m++) {                                                       \
        T *o = out + m * P->ldo;                                                               \
        for (int64_t k = 0; k < P->K; k++) {                                                   \
            T a = A[m * P->lda + k]; const T *b = B + k * P->ldb;                              \
            for (int64_t n = 0; n < P->N; n++) {                                               \
                T p = a * b[n];                                                                \
                if (pf->present) {                                                             \
                    if (sat) p = p < plo ? plo : (p > phi ? phi : p);                          \
                    else { p = p - pm * floor(p / pm); if (p > phi) p -= pm; }                 \
                }                                                                              \
                T s = o[n] + p;                                                                \
                if (sat) s = s < alo ? alo : (s > ahi ? ahi : s);                              \
                o[n] = s; } } } }

/* Tiles: ROWS x COLS vectors of accumulators, each B vector load shared by ROWS rows and each
   A broadcast by COLS vectors; 8 independent TwoSum chains hide the ~30-cycle step latency.
   AVX-512 has 32 vector registers (8 accumulators + 2 B + 4 range registers + temporaries);
   AVX2 and generic code have 16, hence 2 x 2 there. */
DEFINE_KERNEL(f16, float, vf16, vi16, vu16, int32_t, 16, 24, 31, TGT_512, 4, 2)
DEFINE_KERNEL(d8, double, vd8, vl8, vq8, int64_t, 8, 53, 63, TGT_512, 4, 2)
DEFINE_KERNEL(f8a, float, vf8, vi8, vu8, int32_t, 8, 24, 31, TGT_256, 2, 2)
DEFINE_KERNEL(d4a, double, vd4, vl4, vq4, int64_t, 4, 53, 63, TGT_256, 2, 2)
DEFINE_KERNEL(f8g, float, vf8, vi8, vu8, int32_t, 8, 24, 31, TGT_GEN, 2, 2)
DEFINE_KERNEL(d4g, double, vd4, vl4, vq4, int64_t, 4, 53, 63, TGT_GEN, 2, 2)
DEFINE_SCALAR(f, float)
DEFINE_SCALAR(d, double)

/* ------------------------------------------------------------------------------------------ */
/* The host's own binary16 MAC (AVX512-FP16, isa 3), for specs that are exactly it             */
/* ------------------------------------------------------------------------------------------ */
/* When the accumulator is IEEE binary16 (subnormals, inf, NaN), the rounding the rule book's
   round-to-nearest-even, the operands binary16 values and the product either exact (fused) or
   rounded into binary16 (unfused, prod = fp16), one MAC step is by definition what IEEE 754
   fusedMultiplyAdd(a, b, acc) (fused) or addition(acc, multiplication(a, b)) (unfused) returns
   in binary16 under roundTiesToEven: one rounding of the exact value, subnormal results
   included, and the exact-zero sign of IEEE's round-to-nearest rule, which the caller has
   checked is the rule book's (fp16_native in kernels.py).  AVX512-FP16's VFMADD231PH /
   VMULPH + VADDPH are those operations on 32 lanes, 1 (2) instructions per step instead of
   ~11 (16).  What IEEE and the rule book may do differently is kept out: overflow (inf or a
   saturated value, per the rule book) and infinite or NaN operands and results.  Once a lane is
   inf or NaN it stays so (inf + finite = inf, inf - inf = NaN, NaN absorbs), so a tile whose
   K steps end all finite never left the finite range, and its results are kept; any other tile
   is recomputed from its saved initial values by the float path (tile_f16).  MXCSR's
   flush-to-zero / denormals-are-zero bits would break subnormals: a thread with either set
   takes the float path too. */
#if PSUM_X86 && ((defined(__clang__) && __clang_major__ >= 14) || (!defined(__clang__) && __GNUC__ >= 12))
#define PSUM_FP16 1
#define TGT_FP16 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512fp16")))
#include <stdlib.h>
static inline __attribute__((always_inline)) TGT_FP16 __m512h h32_load(const float *o) {
    __m256i lo = _mm256_castph_si256(_mm512_cvtxps_ph(_mm512_loadu_ps(o)));
    __m256i hi = _mm256_castph_si256(_mm512_cvtxps_ph(_mm512_loadu_ps(o + 16)));
    return _mm512_castsi512_ph(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1)); }
static inline __attribute__((always_inline)) TGT_FP16 void h32_store(float *o, __m512h v) {
    __m512i x = _mm512_castph_si512(v);
    _mm512_storeu_ps(o, _mm512_cvtxph_ps(_mm256_castsi256_ph(_mm512_castsi512_si256(x))));
    _mm512_storeu_ps(o + 16, _mm512_cvtxph_ps(_mm256_castsi256_ph(_mm512_extracti64x4_epi64(x, 1)))); }
/* Narrower accumulators with binary16's exponent layout (e5m<M>, M < 10: same bias, same
   emin, ieee specials; fp16_native 3).  Their values are the binary16 values whose pattern has
   D = 10 - M low zero bits, in the subnormal range too (the same quantum 2^(emin-M) there), so
   rounding into e5m<M> is rounding the binary16 *pattern* at bit D: add the rule book's RNE bias
   (half - 1 + lsb, the lsb read at bit D) to the magnitude pattern and clear the low D bits; a
   carry into the exponent is the next binade and past the top it is the inf pattern (overflow:
   the tile is redone).  The sum before that rounding is RO_11(acc + a*b), the fused sum rounded
   to odd in binary16 (the odd one of the {rd-sae} / {ru-sae} FMAs, as roadd_f16), and
   RN_M(RO_11(x)) = RN_M(x) since 11 >= (M + 1) + 2 (Boldo & Melquiond 2008; the subnormal grid
   has the same 4 extra bits).  A non-zero sum that rounds to zero keeps its sign bit, the rule's
   (round_fmt); exact zeros get IEEE's sign from the pick of RU's +0 over RD's -0, as in roadd_*.
   Patterns stay below 0x7C08 in magnitude as long as no NaN appears, so the add never reaches
   the sign bit: the caller runs this only on finite operands and tiles with finite initial
   values, where a lane can become inf (overflow) but never NaN. */
static inline __attribute__((always_inline)) TGT_FP16 __m512h h32_fma_ro_round(__m512h a, __m512h b,
        __m512h c, __m512i one, __m512i lsbm, __m128i sh, __m512i half1, __m512i keep) {
    __m512h d = _mm512_fmadd_round_ph(a, b, c, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512h u = _mm512_fmadd_round_ph(a, b, c, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
    __mmask32 odd = _mm512_test_epi16_mask(_mm512_castph_si512(d), one);
    __m512i s = _mm512_mask_blend_epi16(odd, _mm512_castph_si512(u), _mm512_castph_si512(d));
    __m512i lsb = _mm512_srl_epi16(_mm512_and_si512(s, lsbm), sh);
    return _mm512_castsi512_ph(_mm512_and_si512(_mm512_add_epi16(_mm512_add_epi16(s, half1), lsb), keep)); }
/* 4 rows x 64 columns (2 vectors of 32 lanes), all K steps; 0: results written, 1: redo.
   mode 1: fused binary16, 2: unfused binary16, 3: fused e5m<M> (above) */
static inline __attribute__((always_inline)) TGT_FP16 int tile_h32(const params_t *P, float *out,
        const _Float16 *Ah, const _Float16 *Bh, int64_t m0, int64_t n0, int mode) {
    if (_mm_getcsr() & 0x8040) return 1;               /* FTZ (bit 15) or DAZ (bit 6) set */
    int64_t K = P->K, N = P->N;
    int D = 10 - P->acc.man_bits;
    __m512i one = _mm512_set1_epi16(1), lsbm = _mm512_set1_epi16((short)(1 << D));
    __m512i half1 = _mm512_set1_epi16((short)((1 << D) / 2 - 1)), keep = _mm512_set1_epi16((short)~((1 << D) - 1));
    __m128i sh = _mm_cvtsi32_si128(D);
    __m512h acc[4][2];
    __mmask32 bad0 = 0;
    for (int i = 0; i < 4; i++) for (int j = 0; j < 2; j++) {
        acc[i][j] = h32_load(out + (m0 + i) * P->ldo + n0 + 32 * j);
        bad0 |= _mm512_fpclass_ph_mask(acc[i][j], 0x99); }
    if (mode == 3 && bad0) return 1;                     /* mode 3 starts from finite values only */
    for (int64_t k = 0; k < K; k++) {
        __m512h b0 = _mm512_loadu_ph(Bh + k * N + n0), b1 = _mm512_loadu_ph(Bh + k * N + n0 + 32);
        for (int i = 0; i < 4; i++) {
            __m512h a = _mm512_set1_ph(Ah[(m0 + i) * K + k]);
            if (mode == 2) {
                acc[i][0] = _mm512_add_ph(acc[i][0], _mm512_mul_ph(a, b0));
                acc[i][1] = _mm512_add_ph(acc[i][1], _mm512_mul_ph(a, b1));
            } else if (mode == 3) {
                acc[i][0] = h32_fma_ro_round(a, b0, acc[i][0], one, lsbm, sh, half1, keep);
                acc[i][1] = h32_fma_ro_round(a, b1, acc[i][1], one, lsbm, sh, half1, keep);
            } else {
                acc[i][0] = _mm512_fmadd_ph(a, b0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ph(a, b1, acc[i][1]);
            } } }
    __mmask32 bad = 0;                                   /* QNaN | +inf | -inf | SNaN */
    for (int i = 0; i < 4; i++) for (int j = 0; j < 2; j++) bad |= _mm512_fpclass_ph_mask(acc[i][j], 0x99);
    if (bad) return 1;
    for (int i = 0; i < 4; i++) for (int j = 0; j < 2; j++)
        h32_store(out + (m0 + i) * P->ldo + n0 + 32 * j, acc[i][j]);
    return 0; }
static TGT_FP16 void run_h32(const params_t *P, const float *A, const float *B, float *out) {
    int64_t M = P->M, N = P->N, K = P->K;
    _Float16 *Ah = malloc((size_t)(M * K + K * N) * sizeof(_Float16));
    if (!Ah) { run_float_f16(P, A, B, out); return; }
    _Float16 *Bh = Ah + M * K;
    /* exact: every operand value is a binary16 value (caller); mode 3 needs finite operands */
    uint32_t nonfinite = 0;
    for (int64_t m = 0; m < M; m++) for (int64_t k = 0; k < K; k++) {
        float v = A[m * P->lda + k]; uint32_t u; memcpy(&u, &v, 4);
        nonfinite |= (u & 0x7f800000u) == 0x7f800000u; Ah[m * K + k] = (_Float16)v; }
    for (int64_t k = 0; k < K; k++) for (int64_t n = 0; n < N; n++) {
        float v = B[k * P->ldb + n]; uint32_t u; memcpy(&u, &v, 4);
        nonfinite |= (u & 0x7f800000u) == 0x7f800000u; Bh[k * N + n] = (_Float16)v; }
    int64_t ntr = (M + 3) / 4, ntc = (N + 63) / 64;
    int mode = P->fp16_native;
    if (mode == 3 && nonfinite) { free(Ah); run_float_f16(P, A, B, out); return; }
    _Pragma("omp parallel for schedule(dynamic, 4) num_threads(P->nthreads)")
    for (int64_t t = 0; t < ntr * ntc; t++) {
        int64_t m0 = t / ntc * 4, n0 = t % ntc * 64;
        int64_t nr = M - m0 < 4 ? M - m0 : 4, ncol = N - n0 < 64 ? N - n0 : 64;
        if (nr == 4 && ncol == 64 && !(mode == 1 ? tile_h32(P, out, Ah, Bh, m0, n0, 1)
                                       : mode == 2 ? tile_h32(P, out, Ah, Bh, m0, n0, 2)
                                       : tile_h32(P, out, Ah, Bh, m0, n0, 3))) continue;
        /* edge tiles and redone tiles: the float path on 16-lane vectors (N is a multiple of 16) */
        for (int64_t c = 0; c < ncol; c += 32) {
            int64_t nc = (ncol - c) / 16 < 2 ? (ncol - c) / 16 : 2;
            if (P->rne_path == 1) tile_f16(P, out, A, B, m0, nr, n0 + c, nc, 0, 1, 1);
            else tile_f16(P, out, A, B, m0, nr, n0 + c, nc, 0, 1, 2);
        } }
    free(Ah);
}
#else
#define PSUM_FP16 0
#endif

/* The instruction set the float path runs on: 3 AVX-512 with AVX512-FP16 (binary16 arithmetic;
   used by specs that are the host's binary16 MAC, else as 2), 2 AVX-512, 1 AVX2, 0 generic; the
   best the CPU has, capped by `want` (>= 0: tests force each variant the host can run; < 0: best). */
int psum_isa(int want) {
    int best = 0;
#if PSUM_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) best = 1;
    if (best && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) best = 2;
#if PSUM_FP16
    if (best == 2 && __builtin_cpu_supports("avx512fp16")) best = 3;
#endif
#endif
    return want >= 0 && want < best ? want : best;
}
/* lanes of the float path at an ISA level (the caller pads N to a multiple) */
int psum_lanes(int isa, int dtype) { return (isa >= 2 ? 16 : 8) / (dtype ? 2 : 1); }

/* Entry points: dtype 0 = float32 arrays, 1 = float64 arrays; isa from psum_isa.  N must be a
   multiple of psum_lanes(isa, dtype) for the float path (the caller pads). */
int psum_accumulate(const params_t *P, int dtype, const void *A, const void *B, void *out) {
    if (P->int_acc) {
        if (dtype == 0) run_int_f(P, A, B, out); else run_int_d(P, A, B, out);
    } else if (P->mode == SR) {
        if (dtype == 0) run_sr_f(P, A, B, out); else run_sr_d(P, A, B, out);
    } else {
        int isa = psum_isa(P->isa);
#if PSUM_FP16
        if (isa == 3 && dtype == 0 && P->fp16_native && P->rne_path) run_h32(P, A, B, out); else
#endif
        if (isa >= 2) { if (dtype == 0) run_float_f16(P, A, B, out); else run_float_d8(P, A, B, out); }
        else if (isa == 1) { if (dtype == 0) run_float_f8a(P, A, B, out); else run_float_d4a(P, A, B, out); }
        else { if (dtype == 0) run_float_f8g(P, A, B, out); else run_float_d4g(P, A, B, out); }
    }
    return 0;
}

/* scalar single step exported for tests: acc, a, b values in, new acc value out */
double psum_slow_step(const params_t *P, double acc, double a, double b, uint32_t rnd) {
    return slow_step(P, acc, a, b, rnd);
}
uint32_t psum_sr_rand(uint32_t seed, int64_t idx, int64_t step, int bits) {
    return sr_rand(seed, idx, step, bits);
}

/* im2row of a 2-D convolution (golden/emulation/ops.py, _im2row): data movement only, no
   arithmetic, so exactness is not in question -- every value is copied, none computed.
   out[(b*OH + oh)*OW + ow][(c*KH + i)*KW + j] = x[b][c][oh*SH + i*DH][ow*SW + j*DW] for an
   already zero-padded float32 input with element strides (sb, sc, sh, 1). Why in C: the rows'
   reduction order (channel, kernel row, kernel column) gathers runs of KW values (3 for a 3x3
   kernel), which torch moves with two strided copies; here rows are written once, in order,
   while the KH-row window of every channel stays in L1, and the common kernel widths (1, 3
   with DW = 1) are unrolled at compile time. */
#define IM2ROW_BODY(KWC, DWC)                                                                 \
    for (int64_t ow = 0; ow < OW; ow++) {                                                     \
        const float *xw = xb + ow * SW;                                                       \
        for (int64_t c = 0; c < C; c++) {                                                     \
            const float *xc = xw + c * sc;                                                    \
            for (int64_t i = 0; i < KH; i++) {                                                \
                const float *xr = xc + i * DH * sh;                                           \
                for (int64_t j = 0; j < (KWC); j++) d[j] = xr[j * (DWC)];                     \
                d += (KWC);                                                                   \
            }                                                                                 \
        }                                                                                     \
    }
void psum_im2row2d_f32(const float *x, int64_t B, int64_t C, int64_t sb, int64_t sc, int64_t sh,
                       int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t DH, int64_t DW,
                       int64_t OH, int64_t OW, float *out, int nthreads) {
    const int64_t K = C * KH * KW;
    #pragma omp parallel for collapse(2) num_threads(nthreads) if (nthreads > 1)
    for (int64_t b = 0; b < B; b++)
        for (int64_t oh = 0; oh < OH; oh++) {
            const float *xb = x + b * sb + oh * SH * sh;
            float *d = out + (b * OH + oh) * OW * K;
            if (KW == 3 && DW == 1) { IM2ROW_BODY(3, 1) }
            else if (KW == 1) { IM2ROW_BODY(1, 1) }
            else { IM2ROW_BODY(KW, DW) }
        }
}

/* Operand quantisation (golden/emulation/ops.py, _quantize): the C twin of the float64 branch of
   ops.round_rne_saturate, statement for statement, on x / scale. Its proof is that function's
   Notes: C = 2**(e - M + 52) built from a's exponent field clamped at the lowest binade, (a + C)
   - C is the round-to-nearest-even of a at the binade's quantum (IEEE binary64 addition, no
   contraction: the library is built with -ffp-contract=off and without fast-math), then
   saturation (clamp), flush (formats without subnormals), the sign, and +0 for formats without
   -0. v = x / scale is the reference's own float64 division (x converted exactly), NaN -> +0 as
   torch.nan_to_num(nan=0.0). scale[i / row_len]: one scale per row of row_len values (per-row
   weight scales) or one for all (row_len = n). Tested against golden's encoder and the torch
   version (tests/test_emulate_fast.py). */
#define DEFINE_QUANTIZE(NAME, TIN, TOUT)                                                      \
void NAME(const TIN *x, int64_t n, const double *scale, int64_t row_len, double mv,           \
          double two_mv, uint64_t lo_bits, uint64_t c_offset, double min_normal,              \
          int subnormals, int neg_zero, TOUT *out) {                                          \
    const double flush = subnormals ? 0.0 : min_normal;                                       \
    for (int64_t r0 = 0; r0 < n; r0 += row_len) {                                             \
        const double s = scale[r0 / row_len];                                                 \
        int e2;                                                                               \
        /* a power of two's reciprocal is exact (when normal): x * (1/s) == x / s, rounded    \
           once (no division in the loop); the body is branch-free so that the loop vectorises */\
        const int pow2 = frexp(s, &e2) == 0.5 && fabs(1.0 / s) >= 0x1p-1022 && isfinite(1.0 / s); \
        const double inv = 1.0 / s;                                                           \
        const int64_t r1 = r0 + row_len < n ? r0 + row_len : n;                               \
        if (pow2) {                                                                           \
            for (int64_t i = r0; i < r1; i++) QUANTIZE_ONE((double)x[i] * inv, TOUT)           \
        } else {                                                                              \
            for (int64_t i = r0; i < r1; i++) QUANTIZE_ONE((double)x[i] / s, TOUT)             \
        }                                                                                     \
    }                                                                                         \
}
#define QUANTIZE_ONE(QUOTIENT, TOUT) {                                                            \
            double v = (QUOTIENT);                                                            \
            v = v != v ? 0.0 : v;                                                             \
            double a = fabs(v);                                                               \
            a = a > two_mv ? two_mv : a;                                                      \
            uint64_t ab, cb;                                                                  \
            memcpy(&ab, &a, 8);                                                               \
            cb = ab & 0x7FF0000000000000ull;                                                  \
            cb = (cb < lo_bits ? lo_bits : cb) + c_offset;                                    \
            double C;                                                                         \
            memcpy(&C, &cb, 8);                                                               \
            double r = (a + C) - C;                                                           \
            r = r > mv ? mv : r;                                                              \
            r = r < flush ? 0.0 : r;                                                          \
            r = copysign(r, v);                                                               \
            r = (!neg_zero && r == 0.0) ? 0.0 : r;                                            \
            out[i] = (TOUT)r;                                                                 \
        }
/* float64 results only: with a float32 store gcc 12 leaves the loop scalar (5x slower than the
   vector loop plus a conversion pass in torch) */
DEFINE_QUANTIZE(psum_quantize_f32_f64, float, double)
DEFINE_QUANTIZE(psum_quantize_f64_f64, double, double)
