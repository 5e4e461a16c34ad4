/*
 * pixpack._native._resample: crop + bilinear resize (+ flips + Normalize + layout)
 * in one pass, the loader's whole per-sample job for a raw pack.
 *
 *   resize(src, box, dst, alpha=None, beta=None, chw=False, flip=0, antialias=True,
 *          sigma=(0, 0), radius=(0, 0))
 *   resize_chunk(buffer, jobs, dst, alpha, beta, chw, antialias, ok)
 *   resize_jpeg_chunk(buffer, jobs, dst, alpha, beta, chw, antialias, ok)
 *     (decoding through pixpack._native._jpeg's C API, jpeg_api.h)
 *
 * The filter is torchvision's (torch's _upsample_bilinear2d_aa, PIL's): a separable
 * triangle of half-width max(scale, 1) source pixels with half-pixel centres, so a
 * downscale is antialiased exactly as torchvision's Resize(antialias=True) does it;
 * without antialias (and for every upscale) it is plain bilinear with the edge pixel
 * repeated. Two separable passes in float32, horizontal first (writing one plane per
 * channel) unless filtering the rows first is cheaper (a downscale in y); the result is rounded to the pixel
 * type and clamped, then either stored as pixels or mapped through x * alpha[c] +
 * beta[c] into float32. Because every output goes through the same rounding, the fused
 * float write equals "resize to pixels, then store" bit for bit, which is what lets
 * the loader fuse the steps. AVX2, SSE and scalar loops do the same multiplies and
 * adds in the same order (built with -ffp-contract=off), so they agree exactly.
 *
 * Flips cost nothing: a flipped output column (row) uses the taps of its mirror.
 *
 * sigma > 0 selects the packer's max_side filter instead: OpenCV's GaussianBlur
 * (reflect-101 border) then INTER_LINEAR, folded into the same taps and evaluated only
 * at the output positions (the blur of a full-resolution image is most of its cost).
 *
 * Why native: per 224x224x3 float32 sample on the benchmark VM, OpenCV's resize of a
 * 256x197 crop (no antialias) takes ~89 us plus ~30 us for the separate float store,
 * with three GIL round trips; this kernel, antialiased, takes ~111 us in one call
 * (~78 us against ~106 us for an upscale from 150x150), and resize_chunk does a
 * whole chunk of samples in one GIL release.
 */

#include "draw.h"
#include "glue.h"
#include "jpeg_api.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define HAVE_SSE 1
#endif

#if defined(HAVE_SSE) && defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
static int cpu_avx2; /* set at import: AVX2 versions of the two hot loops */
#endif

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VECTOR_CLONES
#endif

#define MAX_CHANNELS 4
enum { OUT_F32 = 0, OUT_U8 = 1, OUT_U16 = 2 };

/* How one axis is filtered: torchvision's triangle (widened to the scale when
 * downscaling with antialias), or, with sigma > 0, the packer's Gaussian pre-blur
 * (reflect-101 border, radius taps each side) followed by bilinear sampling, folded
 * into one set of taps evaluated only where an output needs them. */
typedef struct {
    int antialias;
    double sigma;
    int radius;
} axis_filter_t;

typedef struct {
    const char *src; /* the box's top-left pixel */
    Py_ssize_t s_row;
    int item, src_c; /* bytes per value (1 or 2), channels of the source */
    int box_h, box_w;
    char *dst;
    Py_ssize_t d_row, d_px, d_ch; /* destination strides in bytes */
    int out_h, out_w, out_c, out_kind;
    float alpha[MAX_CHANNELS], beta[MAX_CHANNELS];
    int flip; /* bit 0: horizontal, bit 1: vertical */
    axis_filter_t fy, fx;
} job_t;

/* ---- scratch: one growing block per thread, so a sample allocates nothing ----
 * Held in a pthread key whose destructor frees it when the thread exits: loader and
 * packer threads come and go with each Loader and pack(), and a __thread pointer
 * would leak its block every time. */

typedef struct {
    char *buf;
    size_t cap;
} scratch_t;

static pthread_key_t scratch_key;
#define SCRATCH_KEEP ((size_t)32 << 20) /* larger blocks are freed after each call */

static void scratch_destroy(void *p)
{
    scratch_t *s = (scratch_t *)p;
    free(s->buf);
    free(s);
}

/* This thread's block under `key` (the resize scratch, or the JPEG chunk path's strip). */
static scratch_t *thread_block(pthread_key_t key)
{
    scratch_t *s = (scratch_t *)pthread_getspecific(key);
    if (!s && (s = (scratch_t *)calloc(1, sizeof *s)) && pthread_setspecific(key, s)) {
        free(s);
        s = NULL;
    }
    return s;
}

static scratch_t *thread_scratch(void) { return thread_block(scratch_key); }

/* At least `bytes` of this thread's scratch (contents kept only when it does not grow),
 * or NULL without memory. */
static char *scratch(scratch_t *s, size_t bytes)
{
    if (bytes > s->cap) {
        free(s->buf);
        s->buf = (char *)malloc(bytes);
        s->cap = s->buf ? bytes : 0;
    }
    return s->buf;
}

/* Free this thread's block under `key` if it grew past SCRATCH_KEEP. */
static void block_trim(pthread_key_t key)
{
    scratch_t *s = (scratch_t *)pthread_getspecific(key);
    if (s && s->cap > SCRATCH_KEEP) {
        free(s->buf);
        s->buf = NULL;
        s->cap = 0;
    }
}

static void scratch_trim(void) { block_trim(scratch_key); }

/* ---- filter taps ---- */

static int tap_count(int in, int out, const axis_filter_t *f)
{
    double scale = (double)in / out;
    int k;
    if (f->sigma > 0.0)
        k = 2 * f->radius + 2; /* the blur's window around two bilinear neighbours */
    else if (f->antialias && scale > 1.0)
        k = (int)ceil(2.0 * scale); /* [centre - scale, centre + scale] spans fewer
                                       than 2 * scale + 1 whole pixels */
    else
        k = 2;
    return k < in ? k : in;
}

static double triangle(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static int reflect101(int j, int n)
{
    if (n == 1)
        return 0;
    while (j < 0 || j >= n)
        j = j < 0 ? -j : 2 * (n - 1) - j;
    return j;
}

/* Bilinear sampling position of output i: left neighbour and the right one's weight
 * (OpenCV's and torch's half-pixel convention, the edge pixel repeated). */
static int bilinear_at(double scale, int i, int in, double *lam)
{
    double s = scale * (i + 0.5) - 0.5;
    if (s < 0.0)
        s = 0.0;
    int lo = (int)s;
    *lam = lo >= in - 1 ? 0.0 : s - lo;
    return lo >= in - 1 ? in - 1 : lo;
}

/* Gaussian-then-bilinear taps of one output: (1 - lam) * g around x0 plus lam * g
 * around x0 + 1, reflected at the borders, into wx[j - first]. Returns first. */
static int gauss_taps(int in, int k, int x0, double lam, const axis_filter_t *f, float *wx)
{
    const int r = f->radius;
    int lo = in, hi = -1;
    for (int m = x0; m <= x0 + (lam > 0.0); m++)
        for (int t = -r; t <= r; t++) {
            int j = reflect101(m + t, in);
            lo = j < lo ? j : lo;
            hi = j > hi ? j : hi;
        }
    const int first = lo + k > in ? in - k : lo;
    double total = 0.0;
    for (int t = -r; t <= r; t++)
        total += exp(-0.5 * t * t / (f->sigma * f->sigma));
    for (int t = 0; t < k; t++)
        wx[t] = 0.0f;
    for (int m = x0; m <= x0 + (lam > 0.0); m++) {
        const double coef = (m == x0 ? 1.0 - lam : lam) / total;
        for (int t = -r; t <= r; t++)
            wx[reflect101(m + t, in) - first] +=
                (float)(coef * exp(-0.5 * t * t / (f->sigma * f->sigma)));
    }
    return first;
}

/* For each output position: the first source index and k weights. Windows are
 * shifted to fit inside [0, in) with zero weights, so every output runs the same
 * fixed-length loop; adding a zero product changes no sum. */
static void make_taps(int in, int out, const axis_filter_t *f, int flip, int k, int *start,
                      float *w)
{
    const double scale = (double)in / out;
    const int aa = f->antialias && scale > 1.0;
    for (int x = 0; x < out; x++) {
        const int i = flip ? out - 1 - x : x;
        float *wx = w + (size_t)x * k;
        if (f->sigma > 0.0) {
            double lam;
            int x0 = bilinear_at(scale, i, in, &lam);
            start[x] = gauss_taps(in, k, x0, lam, f, wx);
            continue;
        }
        int lo, n;
        double lam = 0.0, total = 1.0, center = 0.0, inv = 1.0;
        if (aa) {
            center = scale * (i + 0.5);
            inv = 1.0 / scale;
            lo = (int)(center - scale + 0.5);
            if (lo < 0)
                lo = 0;
            int hi = (int)(center + scale + 0.5);
            n = (hi > in ? in : hi) - lo;
            if (n > k)
                n = k;
            total = 0.0;
            for (int t = 0; t < n; t++)
                total += triangle((t + lo - center + 0.5) * inv);
        } else {
            lo = bilinear_at(scale, i, in, &lam);
            n = lam > 0.0 ? 2 : 1;
        }
        const int first = lo + k > in ? in - k : lo;
        start[x] = first;
        for (int t = 0; t < k; t++)
            wx[t] = 0.0f;
        for (int t = 0; t < n; t++) {
            double v = aa ? triangle((t + lo - center + 0.5) * inv) : (t == 0 ? 1.0 - lam : lam);
            wx[(lo - first) + t] = total > 0.0 ? (float)(v / total) : 0.0f;
        }
    }
}

/* ---- horizontal pass: one source row (as floats) into out_w * c floats ---- */

VECTOR_CLONES
static void row_to_float(const char *s, int item, Py_ssize_t n, float *restrict d)
{
    if (item == 1) {
        const uint8_t *p = (const uint8_t *)s;
        for (Py_ssize_t i = 0; i < n; i++)
            d[i] = (float)p[i];
    } else {
        const uint16_t *p = (const uint16_t *)s;
        for (Py_ssize_t i = 0; i < n; i++)
            d[i] = (float)p[i];
    }
}

/* One output pixel of c == 3 or 4 channels: one 4-lane multiply-add per tap. With 3
 * channels the 4th lane reads the next pixel's first value (row buffers are padded)
 * and is never used. */
#ifdef HAVE_SSE
static inline __m128 pixel4(const float *p, int c, int k, const float *wx)
{
    __m128 acc = _mm_mul_ps(_mm_set1_ps(wx[0]), _mm_loadu_ps(p));
    if (k == 2)
        return _mm_add_ps(acc, _mm_mul_ps(_mm_set1_ps(wx[1]), _mm_loadu_ps(p + c)));
    for (int t = 1; t < k; t++)
        acc = _mm_add_ps(acc, _mm_mul_ps(_mm_set1_ps(wx[t]), _mm_loadu_ps(p + t * c)));
    return acc;
}
#endif

static inline float tap_sum(const float *p, int c, int k, const float *wx)
{
    float acc = wx[0] * p[0];
    for (int t = 1; t < k; t++)
        acc = acc + wx[t] * p[t * c];
    return acc;
}

#ifdef HAVE_AVX2_PATH
/* Pixels x (low lane) and x + 4 (high lane) at once, 8 per iteration, transposed into
 * the planes; the same multiplies and adds, in the same order, as pixel4. Inlined
 * with a constant k for the common tap counts, so the tap loop unrolls and the four
 * pixel pairs stay in registers. Returns how many pixels it did (a multiple of 8). */
__attribute__((target("avx2"), always_inline)) static inline int
hpass_planar_avx2_k(const float *restrict r, int c, int out_w, const int k, const int *start,
                    const float *w, float *restrict d, Py_ssize_t plane)
{
    int x = 0;
    for (; x + 8 <= out_w; x += 8) {
        __m256 v[4];
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            const int xa = x + q, xb = x + 4 + q;
            const float *pa = r + (size_t)start[xa] * c, *pb = r + (size_t)start[xb] * c;
            const float *wa = w + (size_t)xa * k, *wb = w + (size_t)xb * k;
            __m256 acc = _mm256_mul_ps(
                _mm256_set_m128(_mm_set1_ps(wb[0]), _mm_set1_ps(wa[0])),
                _mm256_set_m128(_mm_loadu_ps(pb), _mm_loadu_ps(pa)));
            for (int t = 1; t < k; t++)
                acc = _mm256_add_ps(
                    acc, _mm256_mul_ps(_mm256_set_m128(_mm_set1_ps(wb[t]), _mm_set1_ps(wa[t])),
                                       _mm256_set_m128(_mm_loadu_ps(pb + t * c),
                                                       _mm_loadu_ps(pa + t * c))));
            v[q] = acc;
        }
        __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
        __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
        _mm256_storeu_ps(d + x, _mm256_shuffle_ps(t0, t2, 0x44));
        _mm256_storeu_ps(d + plane + x, _mm256_shuffle_ps(t0, t2, 0xEE));
        _mm256_storeu_ps(d + 2 * plane + x, _mm256_shuffle_ps(t1, t3, 0x44));
        if (c == 4)
            _mm256_storeu_ps(d + 3 * plane + x, _mm256_shuffle_ps(t1, t3, 0xEE));
    }
    return x;
}

__attribute__((target("avx2"))) static int hpass_planar_avx2(const float *restrict r, int c,
                                                             int out_w, int k, const int *start,
                                                             const float *w, float *restrict d,
                                                             Py_ssize_t plane)
{
#define K_CASE(C, K)                                                                       \
    if (c == C && k == K)                                                                  \
        return hpass_planar_avx2_k(r, C, out_w, K, start, w, d, plane);
    K_CASE(3, 2) K_CASE(3, 3) K_CASE(3, 4) K_CASE(3, 5) K_CASE(3, 6) K_CASE(3, 7) K_CASE(3, 8)
    K_CASE(4, 2) K_CASE(4, 3) K_CASE(4, 4)
#undef K_CASE
    return hpass_planar_avx2_k(r, c, out_w, k, start, w, d, plane);
}
#endif

/* Horizontal pass of one row (floats r) into d: planar (ch * plane + x); a single
 * channel has plane 0. */
static void hpass(const float *restrict r, int c, int out_w, int k, const int *start,
                  const float *w, float *restrict d, Py_ssize_t plane)
{
    int x = 0;
#ifdef HAVE_AVX2_PATH
    if (cpu_avx2 && c >= 3 && plane > 0)
        x = hpass_planar_avx2(r, c, out_w, k, start, w, d, plane);
#endif
#ifdef HAVE_SSE
    if (c >= 3 && plane > 0) { /* 4 pixels at a time, transposed into the planes */
        for (; x + 4 <= out_w; x += 4) {
            __m128 p0 = pixel4(r + (size_t)start[x] * c, c, k, w + (size_t)x * k);
            __m128 p1 = pixel4(r + (size_t)start[x + 1] * c, c, k, w + (size_t)(x + 1) * k);
            __m128 p2 = pixel4(r + (size_t)start[x + 2] * c, c, k, w + (size_t)(x + 2) * k);
            __m128 p3 = pixel4(r + (size_t)start[x + 3] * c, c, k, w + (size_t)(x + 3) * k);
            _MM_TRANSPOSE4_PS(p0, p1, p2, p3);
            _mm_storeu_ps(d + x, p0);
            _mm_storeu_ps(d + plane + x, p1);
            _mm_storeu_ps(d + 2 * plane + x, p2);
            if (c == 4)
                _mm_storeu_ps(d + 3 * plane + x, p3);
        }
    }
#endif
    for (; x < out_w; x++) {
        const float *p = r + (size_t)start[x] * c, *wx = w + (size_t)x * k;
        for (int ch = 0; ch < c; ch++)
            d[ch * plane + x] = tap_sum(p + ch, c, k, wx);
    }
}

/* ---- vertical pass and the final write ---- */

/* A row of gray pixel values into 8/16-bit pixels. */
VECTOR_CLONES
static void packed_u8(const float *restrict s, uint8_t *restrict d, Py_ssize_t n)
{
    for (Py_ssize_t v = 0; v < n; v++)
        d[v] = (uint8_t)(int32_t)s[v];
}

VECTOR_CLONES
static void packed_u16(const float *restrict s, uint16_t *restrict d, Py_ssize_t n)
{
    for (Py_ssize_t v = 0; v < n; v++)
        d[v] = (uint16_t)(int32_t)s[v];
}

/* Three planes of pixel values into packed 8-bit RGB rows (an HWC uint8 output): 16
 * pixels at a time, packed to bytes, then interleaved by byte shuffles (the masks
 * are built at import: output byte p takes pixel p / 3 of plane p % 3). */
#ifdef HAVE_AVX2_PATH
static uint8_t rgb_masks[3][3][16]; /* [output vector][plane][byte] */

static void init_rgb_masks(void)
{
    for (int o = 0; o < 3; o++)
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 16; i++) {
                int p = 16 * o + i;
                rgb_masks[o][c][i] = p % 3 == c ? (uint8_t)(p / 3) : 0x80;
            }
}

__attribute__((target("avx2"))) static __m128i bytes16(const float *p)
{
    __m128i a = _mm_cvttps_epi32(_mm_loadu_ps(p)), b = _mm_cvttps_epi32(_mm_loadu_ps(p + 4));
    __m128i c = _mm_cvttps_epi32(_mm_loadu_ps(p + 8)), d = _mm_cvttps_epi32(_mm_loadu_ps(p + 12));
    return _mm_packus_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(c, d));
}

__attribute__((target("avx2"))) static int interleave3_u8_avx2(const float *p0, const float *p1,
                                                               const float *p2, uint8_t *d, int w)
{
    int x = 0;
    for (; x + 16 <= w; x += 16) {
        __m128i v[3] = {bytes16(p0 + x), bytes16(p1 + x), bytes16(p2 + x)};
        for (int o = 0; o < 3; o++) {
            __m128i out = _mm_setzero_si128();
            for (int c = 0; c < 3; c++)
                out = _mm_or_si128(out, _mm_shuffle_epi8(v[c], _mm_loadu_si128(
                                                                   (const __m128i *)rgb_masks[o][c])));
            _mm_storeu_si128((__m128i *)(d + 3 * x + 16 * o), out);
        }
    }
    return x;
}
#endif

static void interleave3_u8(const float *restrict p0, const float *restrict p1,
                           const float *restrict p2, uint8_t *restrict d, int w)
{
    int x = 0;
#ifdef HAVE_AVX2_PATH
    if (cpu_avx2)
        x = interleave3_u8_avx2(p0, p1, p2, d, w);
#endif
    for (; x < w; x++) {
        d[3 * x] = (uint8_t)(int32_t)p0[x];
        d[3 * x + 1] = (uint8_t)(int32_t)p1[x];
        d[3 * x + 2] = (uint8_t)(int32_t)p2[x];
    }
}

/* Three planes of final float values into one packed RGB float row (a channels_last
 * float32 slot, what TF and JAX take): four pixels of each plane become three stores
 * by shuffles instead of a strided scalar store per value, which cost the NHWC
 * outputs ~20% of the loader's CPU time against a planar slot. */
#ifdef HAVE_SSE
/* Four pixels of three planes (r, g, b) stored as 12 packed floats at o. */
static inline void store_rgb4(float *o, __m128 r, __m128 g, __m128 b)
{
    const __m128 rg_lo = _mm_unpacklo_ps(r, g), rg_hi = _mm_unpackhi_ps(r, g);
    const __m128 b0r1 = _mm_shuffle_ps(b, r, _MM_SHUFFLE(1, 1, 0, 0));
    const __m128 g1b1 = _mm_shuffle_ps(g, b, _MM_SHUFFLE(1, 1, 1, 1));
    const __m128 b2r3 = _mm_shuffle_ps(b, r, _MM_SHUFFLE(3, 3, 2, 2));
    const __m128 g3b3 = _mm_shuffle_ps(g, b, _MM_SHUFFLE(3, 3, 3, 3));
    _mm_storeu_ps(o, _mm_shuffle_ps(rg_lo, b0r1, _MM_SHUFFLE(2, 0, 1, 0)));     /* r0 g0 b0 r1 */
    _mm_storeu_ps(o + 4, _mm_shuffle_ps(g1b1, rg_hi, _MM_SHUFFLE(1, 0, 2, 0))); /* g1 b1 r2 g2 */
    _mm_storeu_ps(o + 8, _mm_shuffle_ps(b2r3, g3b3, _MM_SHUFFLE(2, 0, 2, 0)));  /* b2 r3 g3 b3 */
}
#endif

static void interleave3_f32(const float *restrict p0, const float *restrict p1,
                            const float *restrict p2, float *restrict d, int w)
{
    int x = 0;
#ifdef HAVE_SSE
    for (; x + 4 <= w; x += 4)
        store_rgb4(d + 3 * x, _mm_loadu_ps(p0 + x), _mm_loadu_ps(p1 + x), _mm_loadu_ps(p2 + x));
#endif
    for (; x < w; x++) {
        d[3 * x] = p0[x];
        d[3 * x + 1] = p1[x];
        d[3 * x + 2] = p2[x];
    }
}

/* One output row from pixel values px (channel planes `plane` apart; a gray source has
 * one) into any slot but a planar float one, which vfinish writes directly. The fast
 * cases are contiguous; the rest (e.g. a channels_last float slot) take the strided
 * loop. */
static void write_row(const job_t *j, const float *px, Py_ssize_t plane, char *d)
{
    const int w = j->out_w, sc = j->src_c, oc = j->out_c;
    const Py_ssize_t item = j->out_kind == OUT_F32 ? 4 : (j->out_kind == OUT_U8 ? 1 : 2);
    const Py_ssize_t d_px = j->d_px, d_ch = j->d_ch;
    if (j->out_kind != OUT_F32 && sc == 1 && oc == 1 && d_px == item) {
        if (j->out_kind == OUT_U8)
            packed_u8(px, (uint8_t *)d, w);
        else
            packed_u16(px, (uint16_t *)d, w);
        return;
    }
    if (j->out_kind == OUT_U8 && sc == 3 && oc == 3 && d_ch == 1 && d_px == 3) {
        interleave3_u8(px, px + plane, px + 2 * plane, (uint8_t *)d, w);
        return;
    }
    for (int c = 0; c < oc; c++) {
        const float *s = px + (sc == 1 ? 0 : c * plane);
        char *dc = d + c * d_ch;
        const float a = j->alpha[c], b = j->beta[c];
        if (j->out_kind == OUT_F32)
            for (int x = 0; x < w; x++)
                *(float *)(dc + x * d_px) = s[x] * a + b;
        else if (j->out_kind == OUT_U8)
            for (int x = 0; x < w; x++)
                *(uint8_t *)(dc + x * d_px) = (uint8_t)(int32_t)s[x];
        else
            for (int x = 0; x < w; x++)
                *(uint16_t *)(dc + x * d_px) = (uint16_t)(int32_t)s[x];
    }
}

/* One channel plane of one output row in one pass: vertical taps, rounding to the
 * nearest pixel value clamped to [0, maxv] (x >= 0 after the clamp, so truncating
 * x + 0.5 rounds half up), then x * a + b (a = 1, b = 0 keeps pixel values). Every
 * version does the same multiplies and adds in the same order. */
#ifdef HAVE_AVX2_PATH
__attribute__((target("avx2"))) static int vfinish_avx2(const float *rows, Py_ssize_t stride,
                                                        int k, const float *w, int n, float maxv,
                                                        float a, float b, float *restrict d)
{
    const __m256 lo = _mm256_setzero_ps(), hi = _mm256_set1_ps(maxv),
                 half = _mm256_set1_ps(0.5f), va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    int x = 0;
    for (; x + 8 <= n; x += 8) {
        __m256 acc = _mm256_mul_ps(_mm256_set1_ps(w[0]), _mm256_loadu_ps(rows + x));
        for (int t = 1; t < k; t++)
            acc = _mm256_add_ps(
                acc, _mm256_mul_ps(_mm256_set1_ps(w[t]), _mm256_loadu_ps(rows + t * stride + x)));
        acc = _mm256_min_ps(_mm256_max_ps(acc, lo), hi);
        acc = _mm256_cvtepi32_ps(_mm256_cvttps_epi32(_mm256_add_ps(acc, half)));
        _mm256_storeu_ps(d + x, _mm256_add_ps(_mm256_mul_ps(acc, va), vb));
    }
    return x;
}
#endif

#ifdef HAVE_AVX2_PATH
/* vfinish_avx2 for three planes at once, storing packed RGB floats: the shuffles and
 * stores then overlap the filter's arithmetic, where a separate interleave pass was
 * bound by its stores alone. Same operations per value as vfinish. */
__attribute__((target("avx2"))) static inline __m256 vtaps8(const float *r, Py_ssize_t stride,
                                                            int k, const float *w, __m256 hi)
{
    __m256 acc = _mm256_mul_ps(_mm256_set1_ps(w[0]), _mm256_loadu_ps(r));
    for (int t = 1; t < k; t++)
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(w[t]), _mm256_loadu_ps(r + t * stride)));
    acc = _mm256_min_ps(_mm256_max_ps(acc, _mm256_setzero_ps()), hi);
    return _mm256_cvtepi32_ps(_mm256_cvttps_epi32(_mm256_add_ps(acc, _mm256_set1_ps(0.5f))));
}

__attribute__((target("avx2"))) static int vfinish3_avx2(const float *rows, Py_ssize_t stride,
                                                         Py_ssize_t plane, int k, const float *w,
                                                         int n, float maxv, const float *a,
                                                         const float *b, float *restrict d)
{
    const __m256 hi = _mm256_set1_ps(maxv);
    const __m256 a0 = _mm256_set1_ps(a[0]), a1 = _mm256_set1_ps(a[1]), a2 = _mm256_set1_ps(a[2]);
    const __m256 b0 = _mm256_set1_ps(b[0]), b1 = _mm256_set1_ps(b[1]), b2 = _mm256_set1_ps(b[2]);
    const float *p0 = rows, *p1 = rows + plane, *p2 = rows + 2 * plane;
    int x = 0;
    for (; x + 8 <= n; x += 8) {
        const __m256 r = _mm256_add_ps(_mm256_mul_ps(vtaps8(p0 + x, stride, k, w, hi), a0), b0);
        const __m256 g = _mm256_add_ps(_mm256_mul_ps(vtaps8(p1 + x, stride, k, w, hi), a1), b1);
        const __m256 b = _mm256_add_ps(_mm256_mul_ps(vtaps8(p2 + x, stride, k, w, hi), a2), b2);
        /* store_rgb4's shuffles on both 128-bit lanes at once give, per lane, the 12
         * packed floats of pixels 0-3 (lane 0: A0 A1 A2) and 4-7 (lane 1: B0 B1 B2);
         * three lane permutes put them in order: A0 A1 | A2 B0 | B1 B2. */
        const __m256 rg_lo = _mm256_unpacklo_ps(r, g), rg_hi = _mm256_unpackhi_ps(r, g);
        const __m256 b0r1 = _mm256_shuffle_ps(b, r, _MM_SHUFFLE(1, 1, 0, 0));
        const __m256 g1b1 = _mm256_shuffle_ps(g, b, _MM_SHUFFLE(1, 1, 1, 1));
        const __m256 b2r3 = _mm256_shuffle_ps(b, r, _MM_SHUFFLE(3, 3, 2, 2));
        const __m256 g3b3 = _mm256_shuffle_ps(g, b, _MM_SHUFFLE(3, 3, 3, 3));
        const __m256 x0 = _mm256_shuffle_ps(rg_lo, b0r1, _MM_SHUFFLE(2, 0, 1, 0));
        const __m256 x1 = _mm256_shuffle_ps(g1b1, rg_hi, _MM_SHUFFLE(1, 0, 2, 0));
        const __m256 x2 = _mm256_shuffle_ps(b2r3, g3b3, _MM_SHUFFLE(2, 0, 2, 0));
        float *o = d + 3 * x;
        _mm256_storeu_ps(o, _mm256_permute2f128_ps(x0, x1, 0x20));
        _mm256_storeu_ps(o + 8, _mm256_permute2f128_ps(x2, x0, 0x30));
        _mm256_storeu_ps(o + 16, _mm256_permute2f128_ps(x1, x2, 0x31));
    }
    return x;
}
#endif

static void vfinish(const float *rows, Py_ssize_t stride, int k, const float *w, int n,
                    float maxv, float a, float b, float *restrict d)
{
    int x = 0;
#ifdef HAVE_AVX2_PATH
    if (cpu_avx2)
        x = vfinish_avx2(rows, stride, k, w, n, maxv, a, b, d);
#endif
#ifdef HAVE_SSE
    const __m128 lo = _mm_setzero_ps(), hi = _mm_set1_ps(maxv), half = _mm_set1_ps(0.5f),
                 va = _mm_set1_ps(a), vb = _mm_set1_ps(b);
    for (; x + 4 <= n; x += 4) {
        __m128 acc = _mm_mul_ps(_mm_set1_ps(w[0]), _mm_loadu_ps(rows + x));
        for (int t = 1; t < k; t++)
            acc = _mm_add_ps(acc,
                             _mm_mul_ps(_mm_set1_ps(w[t]), _mm_loadu_ps(rows + t * stride + x)));
        acc = _mm_min_ps(_mm_max_ps(acc, lo), hi);
        acc = _mm_cvtepi32_ps(_mm_cvttps_epi32(_mm_add_ps(acc, half)));
        _mm_storeu_ps(d + x, _mm_add_ps(_mm_mul_ps(acc, va), vb));
    }
#endif
    for (; x < n; x++) {
        float v = w[0] * rows[x];
        for (int t = 1; t < k; t++)
            v = v + w[t] * rows[t * stride + x];
        v = v > 0.0f ? v : 0.0f;
        v = v < maxv ? v : maxv;
        v = (float)(int32_t)(v + 0.5f);
        d[x] = v * a + b;
    }
}

/* ---- one sample ---- */

static size_t pad4(size_t n) { return (n + 4 + 3) & ~(size_t)3; }

/* Vertical pass straight from the source rows (the vertical-first order): the k rows
 * from `first` of the box, weighted, into one float row of n values. */
#define VPASS_SRC(NAME, T)                                                                   \
    VECTOR_CLONES                                                                            \
    static void NAME(const char *src, Py_ssize_t s_row, int first, int k, const float *w,    \
                     Py_ssize_t n, float *restrict acc)                                      \
    {                                                                                        \
        const T *r = (const T *)(src + first * s_row);                                       \
        for (Py_ssize_t v = 0; v < n; v++)                                                   \
            acc[v] = w[0] * (float)r[v];                                                     \
        for (int t = 1; t < k; t++) {                                                        \
            const T *rt = (const T *)(src + (first + t) * s_row);                            \
            const float wt = w[t];                                                           \
            for (Py_ssize_t v = 0; v < n; v++)                                               \
                acc[v] = acc[v] + wt * (float)rt[v];                                         \
        }                                                                                    \
    }

VPASS_SRC(vpass_src_u8, uint8_t)
VPASS_SRC(vpass_src_u16, uint16_t)

/* One output row from k planar float rows `stride` apart weighted by w (k = 1 and
 * w = {1}: a row that is already final), rounded and written to d. */
static void finish_row(const job_t *j, const float *rows, Py_ssize_t stride, int k,
                       const float *w, Py_ssize_t plane, float *acc, char *d)
{
    const float maxv = j->item == 1 ? 255.0f : 65535.0f;
    const int c = j->src_c, ow = j->out_w;
    if (j->out_kind == OUT_F32 && j->d_px == (Py_ssize_t)sizeof(float)) {
        for (int ch = 0; ch < j->out_c; ch++) /* a planar float slot: straight in */
            vfinish(rows + (c == 1 ? 0 : ch * plane), stride, k, w, ow, maxv, j->alpha[ch],
                    j->beta[ch], (float *)(d + ch * j->d_ch));
        return;
    }
    if (j->out_kind == OUT_F32 && c == 3 && j->out_c == 3 && j->d_ch == 4 && j->d_px == 12) {
        /* packed RGB float: fused where AVX2 is; else (and for the last < 8 pixels)
         * the final values into the planar scratch, then interleaved */
        int x = 0;
#ifdef HAVE_AVX2_PATH
        if (cpu_avx2)
            x = vfinish3_avx2(rows, stride, plane, k, w, ow, maxv, j->alpha, j->beta, (float *)d);
#endif
        if (x == ow)
            return;
        for (int ch = 0; ch < 3; ch++)
            vfinish(rows + ch * plane + x, stride, k, w, ow - x, maxv, j->alpha[ch], j->beta[ch],
                    acc + ch * plane);
        interleave3_f32(acc, acc + plane, acc + 2 * plane, (float *)d + 3 * x, ow - x);
        return;
    }
    for (int ch = 0; ch < (c == 1 ? 1 : c); ch++)
        vfinish(rows + ch * plane, stride, k, w, ow, maxv, 1.0f, 0.0f, acc + ch * plane);
    write_row(j, acc, plane, d);
}

static int resample(const job_t *j)
{
    const int c = j->src_c, ow = j->out_w, oh = j->out_h;
    const int kh = tap_count(j->box_w, ow, &j->fx);
    const int kv = tap_count(j->box_h, oh, &j->fy);
    /* Rows of the intermediate are planar (one padded plane per channel): the vertical
     * pass and the writes are then contiguous loops per channel. */
    const Py_ssize_t plane = c > 1 ? (Py_ssize_t)pad4((size_t)ow) : 0;
    const size_t row_n = c > 1 ? (size_t)plane * c : (size_t)ow, tstride = pad4(row_n);
    const size_t src_n = pad4((size_t)j->box_w * c);

    /* Vertical taps first: they say which source rows the horizontal pass needs. */
    size_t taps_bytes = ((size_t)ow * (1 + kh) + (size_t)oh * (1 + kv)) * sizeof(float);
    size_t fixed = taps_bytes + (src_n + 2 * tstride) * sizeof(float);
    scratch_t *sc = thread_scratch();
    char *base = sc ? scratch(sc, fixed) : NULL;
    if (!base)
        return -1;
    int *vstart = (int *)base;
    float *vw = (float *)(vstart + oh);
    make_taps(j->box_h, oh, &j->fy, j->flip & 2, kv, vstart, vw);
    int y0 = j->box_h, y1 = 0;
    for (int y = 0; y < oh; y++) {
        if (vstart[y] < y0)
            y0 = vstart[y];
        if (vstart[y] + kv > y1)
            y1 = vstart[y] + kv;
    }
    /* The cheaper order: a downscale in y filters the source rows down to the output
     * rows before the horizontal pass, whose multiply-adds cost ~3x the vertical
     * pass's contiguous ones (measured). Both callers of a sample (the loader's fused
     * path, resize then store) make the same choice, so their results stay identical. */
    const double h_first = 3.0 * (y1 - y0) * ow * kh + (double)oh * ow * kv;
    const double v_first = (double)oh * j->box_w * kv + 3.0 * oh * ow * kh;
    const int vfirst = v_first < h_first;
    size_t total = fixed + (vfirst ? 0 : (size_t)(y1 - y0) * tstride * sizeof(float));
    if (total > sc->cap) { /* grow, keeping the vertical taps */
        char *grown = (char *)malloc(total);
        if (!grown)
            return -1;
        memcpy(grown, base, (size_t)oh * (1 + kv) * sizeof(float));
        free(sc->buf);
        sc->buf = base = grown;
        sc->cap = total;
        vstart = (int *)base;
        vw = (float *)(vstart + oh);
    }
    int *hstart = (int *)(vw + (size_t)oh * kv);
    float *hw = (float *)(hstart + ow);
    float *rowf = hw + (size_t)ow * kh;
    float *acc = rowf + src_n;
    float *tmp = acc + tstride;
    make_taps(j->box_w, ow, &j->fx, j->flip & 1, kh, hstart, hw);
    memset(rowf + (size_t)j->box_w * c, 0, (src_n - (size_t)j->box_w * c) * sizeof(float));

    if (vfirst) {
        static const float one = 1.0f;
        for (int y = 0; y < oh; y++) {
            (j->item == 1 ? vpass_src_u8 : vpass_src_u16)(j->src, j->s_row, vstart[y], kv,
                                                          vw + (size_t)y * kv,
                                                          (Py_ssize_t)j->box_w * c, rowf);
            hpass(rowf, c, ow, kh, hstart, hw, tmp, plane);
            finish_row(j, tmp, 0, 1, &one, plane, acc, j->dst + y * j->d_row);
        }
        return 0;
    }
    for (int y = y0; y < y1; y++) {
        row_to_float(j->src + y * j->s_row, j->item, (Py_ssize_t)j->box_w * c, rowf);
        hpass(rowf, c, ow, kh, hstart, hw, tmp + (size_t)(y - y0) * tstride, plane);
    }
    for (int y = 0; y < oh; y++)
        finish_row(j, tmp + (size_t)(vstart[y] - y0) * tstride, (Py_ssize_t)tstride, kv,
                   vw + (size_t)y * kv, plane, acc, j->dst + y * j->d_row);
    return 0;
}

/* ---- Python glue ---- */

static int out_kind(const Py_buffer *d)
{
    if (is_format(d, 'f'))
        return OUT_F32;
    if (is_format(d, 'B'))
        return OUT_U8;
    if (is_format(d, 'H'))
        return OUT_U16;
    return -1;
}

/* The output side of a job from a 3-D dst ((C,H,W) if chw else (H,W,C)); dst_off and
 * the strides index one sample. Returns 0, or -1 with a ValueError set. */
static int set_output(job_t *j, const Py_buffer *d, int first_dim, int chw, int kind)
{
    const Py_ssize_t *sh = d->shape + first_dim, *st = d->strides + first_dim;
    j->out_h = (int)(chw ? sh[1] : sh[0]);
    j->out_w = (int)(chw ? sh[2] : sh[1]);
    j->out_c = (int)(chw ? sh[0] : sh[2]);
    j->d_row = chw ? st[1] : st[0];
    j->d_px = chw ? st[2] : st[1];
    j->d_ch = chw ? st[0] : st[2];
    j->out_kind = kind;
    if (j->out_h < 1 || j->out_w < 1 || j->out_c < 1 || j->out_c > MAX_CHANNELS) {
        PyErr_SetString(PyExc_ValueError, "resize: dst must hold 1-4 channels of at least 1x1");
        return -1;
    }
    return 0;
}

static PyObject *py_resize(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    static char *kwlist[] = {"src", "box",       "dst",   "alpha",  "beta", "chw",
                             "flip", "antialias", "sigma", "radius", NULL};
    PyObject *src_obj, *dst_obj, *alpha = Py_None, *beta = Py_None;
    int top, left, bh, bw, chw = 0, flip = 0, antialias = 1, ry = 0, rx = 0;
    double sy = 0.0, sx = 0.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O(iiii)O|OOpip(dd)(ii)", kwlist, &src_obj,
                                     &top, &left, &bh, &bw, &dst_obj, &alpha, &beta, &chw, &flip,
                                     &antialias, &sy, &sx, &ry, &rx))
        return NULL;
    if (sy < 0.0 || sx < 0.0 || ry < 0 || rx < 0 || (sy > 0.0) != (sx > 0.0)) {
        PyErr_SetString(PyExc_ValueError, "resize: sigma and radius must be >= 0, sigma both or none");
        return NULL;
    }
    Py_buffer s, d;
    if (get_src_dst(src_obj, dst_obj, &s, &d) < 0)
        return NULL;
    PyObject *result = NULL;
    job_t j;
    memset(&j, 0, sizeof j);
    int item = is_format(&s, 'B') ? 1 : (is_format(&s, 'H') ? 2 : 0);
    int kind = out_kind(&d);
    if (!item || s.ndim != 3 || s.shape[2] > MAX_CHANNELS) {
        PyErr_SetString(PyExc_ValueError, "resize: src must be an HWC uint8/uint16 array");
        goto done;
    }
    j.src_c = (int)s.shape[2];
    if (s.strides[2] != item || s.strides[1] != item * j.src_c || s.strides[0] <= 0) {
        PyErr_SetString(PyExc_ValueError, "resize: src rows must hold packed pixels");
        goto done;
    }
    if (d.ndim != 3 || kind < 0 || (kind == OUT_U8 && item != 1) ||
        (kind == OUT_U16 && item != 2)) {
        PyErr_SetString(PyExc_ValueError,
                        "resize: dst must be a 3-D float32 array, or of the source's dtype");
        goto done;
    }
    if (set_output(&j, &d, 0, chw, kind) < 0)
        goto done;
    /* In Py_ssize_t: top + bh in int overflows for a huge top. */
    if (top < 0 || left < 0 || bh < 1 || bw < 1 || (Py_ssize_t)top + bh > s.shape[0] ||
        (Py_ssize_t)left + bw > s.shape[1] || (j.src_c != j.out_c && j.src_c != 1)) {
        PyErr_Format(PyExc_ValueError,
                     "resize: box (%d, %d, %d, %d) of a (%zd, %zd, %d) image does not fit "
                     "a %d-channel output",
                     top, left, bh, bw, s.shape[0], s.shape[1], j.src_c, j.out_c);
        goto done;
    }
    if (parse_affine(alpha, beta, j.out_c, j.alpha, j.beta, "resize") < 0)
        goto done;
    j.item = item;
    j.s_row = s.strides[0];
    j.src = (const char *)s.buf + top * s.strides[0] + (Py_ssize_t)left * item * j.src_c;
    j.box_h = bh;
    j.box_w = bw;
    j.dst = (char *)d.buf;
    j.flip = flip & 3;
    j.fy = (axis_filter_t){antialias, sy, ry};
    j.fx = (axis_filter_t){antialias, sx, rx};
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = resample(&j);
    scratch_trim();
    Py_END_ALLOW_THREADS
    result = none_or_nomemory(status);
done:
    PyBuffer_Release(&d);
    PyBuffer_Release(&s);
    return result;
}

/* jobs columns: offset, height, width, channels, itemsize, top, left, box_h, box_w,
 * flip, slot (the sample's index in dst); when `buffer` is a tuple of buffers (the
 * shards of a sharded pack), a 12th column says which one holds the sample. */
enum { J_OFF, J_H, J_W, J_C, J_ITEM, J_TOP, J_LEFT, J_BH, J_BW, J_FLIP, J_SLOT, J_COLS };

static void release_buffers(Py_buffer *bufs, Py_ssize_t count)
{
    for (Py_ssize_t k = 0; k < count; k++)
        PyBuffer_Release(&bufs[k]);
    PyMem_Free(bufs);
}

/* The source buffers: one, or each item of a tuple; NULL with an exception set. */
static Py_buffer *get_buffers(PyObject *obj, Py_ssize_t *count)
{
    int multi = PyTuple_Check(obj);
    Py_ssize_t nb = multi ? PyTuple_GET_SIZE(obj) : 1;
    Py_buffer *bufs = (Py_buffer *)PyMem_Calloc(nb > 0 ? nb : 1, sizeof(Py_buffer));
    if (bufs == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t k = 0; k < nb; k++) {
        if (PyObject_GetBuffer(multi ? PyTuple_GET_ITEM(obj, k) : obj, &bufs[k], PyBUF_SIMPLE) <
            0) {
            release_buffers(bufs, k);
            return NULL;
        }
    }
    *count = nb;
    return bufs;
}

/* What a chunk call holds: its source buffers, jobs table, batch and ok flags. */
typedef struct {
    Py_buffer *bufs;
    Py_ssize_t nbufs, n, cols;
    int multi, chw, antialias;
    PyObject *alpha, *beta; /* borrowed */
    Py_buffer jobs, dst, ok;
} chunk_args_t;

static void chunk_release(chunk_args_t *a)
{
    PyBuffer_Release(&a->ok);
    PyBuffer_Release(&a->dst);
    PyBuffer_Release(&a->jobs);
    release_buffers(a->bufs, a->nbufs);
}

/* Parse a chunk call (buffer, jobs, dst, alpha, beta, chw, antialias, ok), hold its
 * buffers and check the jobs table ((n, cols) C-contiguous int64, one more column with
 * a tuple of buffers) and ok ((n,) writable bytes). Returns 0, or -1 with an
 * exception set and nothing held. */
static int chunk_acquire(chunk_args_t *a, PyObject *args, PyObject *kwargs, Py_ssize_t cols,
                         const char *who)
{
    static char *kwlist[] = {"buffer", "jobs", "dst", "alpha", "beta",
                             "chw",    "antialias", "ok", NULL};
    PyObject *buf_obj, *jobs_obj, *dst_obj, *ok_obj;
    memset(a, 0, sizeof *a);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOppO", kwlist, &buf_obj, &jobs_obj,
                                     &dst_obj, &a->alpha, &a->beta, &a->chw, &a->antialias,
                                     &ok_obj))
        return -1;
    a->multi = PyTuple_Check(buf_obj);
    a->cols = a->multi ? cols + 1 : cols;
    a->bufs = get_buffers(buf_obj, &a->nbufs);
    if (a->bufs == NULL)
        return -1;
    /* (a Py_buffer not acquired is still zeroed: chunk_release skips it) */
    if (PyObject_GetBuffer(jobs_obj, &a->jobs, PyBUF_RECORDS_RO) < 0 ||
        PyObject_GetBuffer(dst_obj, &a->dst, PyBUF_RECORDS) < 0 ||
        PyObject_GetBuffer(ok_obj, &a->ok, PyBUF_RECORDS) < 0) {
        chunk_release(a);
        return -1;
    }
    const Py_buffer *jb = &a->jobs, *okb = &a->ok;
    a->n = jb->ndim == 2 ? jb->shape[0] : -1;
    if (a->n < 0 || jb->shape[1] != a->cols || jb->itemsize != 8 ||
        !(is_format(jb, 'q') || is_format(jb, 'l')) || jb->strides[1] != 8 ||
        jb->strides[0] != 8 * a->cols) {
        PyErr_Format(PyExc_ValueError,
                     "%s: jobs must be a C-contiguous (n, %zd) int64, (n, %zd) with a tuple of "
                     "buffers", who, cols, cols + 1);
        chunk_release(a);
        return -1;
    }
    /* ok[i] is written as contiguous bytes: a strided view would be written past */
    if (okb->ndim != 1 || okb->shape[0] < a->n || okb->itemsize != 1 || okb->readonly ||
        okb->strides[0] != 1) {
        PyErr_Format(PyExc_ValueError, "%s: ok must be a writable contiguous (n,) bool array",
                     who);
        chunk_release(a);
        return -1;
    }
    return 0;
}

static PyObject *py_resize_chunk(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    chunk_args_t a;
    if (chunk_acquire(&a, args, kwargs, J_COLS, "resize_chunk") < 0)
        return NULL;
    const Py_buffer d = a.dst;
    const int multi = a.multi;
    const Py_ssize_t cols = a.cols, n = a.n, nbufs = a.nbufs;
    const Py_buffer *bufs = a.bufs;
    PyObject *result = NULL;
    job_t proto;
    memset(&proto, 0, sizeof proto);
    int kind = out_kind(&d);
    if (d.ndim != 4 || kind < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "resize_chunk: dst must be (n, C, H, W) or (n, H, W, C), float32 or "
                        "integer pixels");
        goto done;
    }
    if (set_output(&proto, &d, 1, a.chw, kind) < 0 ||
        parse_affine(a.alpha, a.beta, proto.out_c, proto.alpha, proto.beta, "resize_chunk") < 0)
        goto done;
    proto.fy = proto.fx = (axis_filter_t){a.antialias, 0.0, 0};
    int status = 0;
    Py_BEGIN_ALLOW_THREADS
    const int64_t *rows = (const int64_t *)a.jobs.buf;
    uint8_t *ok = (uint8_t *)a.ok.buf;
    for (Py_ssize_t i = 0; i < n && status == 0; i++) {
        const int64_t *r = rows + i * cols;
        job_t j = proto;
        int64_t h = r[J_H], w = r[J_W], c = r[J_C], item = r[J_ITEM];
        int64_t which = multi ? r[J_COLS] : 0;
        if (which < 0 || which >= nbufs) {
            ok[i] = 0;
            continue;
        }
        const Py_buffer *b = &bufs[which];
        /* Every bound in a form that cannot overflow: a damaged index may hold any
         * height and width (h * w * c * item could wrap around to the stored size). */
        int64_t len = (int64_t)b->len;
        int fits = h > 0 && w > 0 && h <= INT_MAX && w <= INT_MAX &&
                   (c == 1 || c == 3 || c == 4) && (item == 1 || item == 2) &&
                   (c == proto.out_c || c == 1) &&
                   (kind == OUT_F32 || (kind == OUT_U8) == (item == 1)) && r[J_TOP] >= 0 &&
                   r[J_LEFT] >= 0 && r[J_BH] > 0 && r[J_BW] > 0 && r[J_BH] <= h &&
                   r[J_TOP] <= h - r[J_BH] && r[J_BW] <= w && r[J_LEFT] <= w - r[J_BW] &&
                   r[J_OFF] >= 0 && r[J_OFF] <= len && w * c * item <= (len - r[J_OFF]) / h &&
                   r[J_SLOT] >= 0 && r[J_SLOT] < d.shape[0];
        ok[i] = (uint8_t)fits;
        if (!fits)
            continue;
        j.item = (int)item;
        j.src_c = (int)c;
        j.s_row = (Py_ssize_t)(w * c * item);
        j.src = (const char *)b->buf + r[J_OFF] + r[J_TOP] * j.s_row + r[J_LEFT] * c * item;
        j.box_h = (int)r[J_BH];
        j.box_w = (int)r[J_BW];
        j.dst = (char *)d.buf + r[J_SLOT] * d.strides[0];
        j.flip = (int)(r[J_FLIP] & 3);
        status = resample(&j);
    }
    scratch_trim();
    Py_END_ALLOW_THREADS
    result = none_or_nomemory(status);
done:
    chunk_release(&a);
    return result;
}

/* ---- JPEG samples of a chunk: decode the box (jpeg_api.h) and resize, one GIL release ----
 * Per sample from Python this was two GIL round trips and ~15 us of Python; with the
 * GIL held by anything else (a training step, TensorFlow's iterator) the loader's
 * threads then queued for it between samples. */

/* jobs columns: offset, nbytes, top, left, box_h, box_w (full resolution), flip,
 * slot, scale; with a tuple of buffers a 10th column says which one. */
enum { K_OFF, K_LEN, K_TOP, K_LEFT, K_BH, K_BW, K_FLIP, K_SLOT, K_SCALE, K_COLS };

static const pixpack_jpeg_api_t *jpeg_api; /* imported on first use, with the GIL */
static pthread_key_t strip_key;            /* this thread's decode buffer (a scratch_t) */

static PyObject *py_resize_jpeg_chunk(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    if (!jpeg_api) {
        /* PyCapsule_Import only walks attributes: the submodule must be imported first */
        PyObject *mod = PyImport_ImportModule("pixpack._native._jpeg");
        if (!mod)
            return NULL;
        Py_DECREF(mod);
        const pixpack_jpeg_api_t *api =
            (const pixpack_jpeg_api_t *)PyCapsule_Import(PIXPACK_JPEG_API_NAME, 0);
        if (!api)
            return NULL;
        if (api->version != PIXPACK_JPEG_API_VERSION)
            return PyErr_Format(PyExc_ImportError, "pixpack._native._jpeg is of another build");
        jpeg_api = api;
    }
    chunk_args_t a;
    if (chunk_acquire(&a, args, kwargs, K_COLS, "resize_jpeg_chunk") < 0)
        return NULL;
    PyObject *result = NULL;
    job_t proto;
    memset(&proto, 0, sizeof proto);
    const int kind = out_kind(&a.dst);
    if (a.dst.ndim != 4 || (kind != OUT_F32 && kind != OUT_U8)) {
        PyErr_SetString(PyExc_ValueError, "resize_jpeg_chunk: dst must be (n, C, H, W) or "
                                          "(n, H, W, C), float32 or uint8");
        goto done;
    }
    if (set_output(&proto, &a.dst, 1, a.chw, kind) < 0 ||
        parse_affine(a.alpha, a.beta, proto.out_c, proto.alpha, proto.beta, "resize_jpeg_chunk") < 0)
        goto done;
    proto.fy = proto.fx = (axis_filter_t){a.antialias, 0.0, 0};
    proto.item = 1;
    int status = 0;
    Py_BEGIN_ALLOW_THREADS
    const int64_t *rows = (const int64_t *)a.jobs.buf;
    uint8_t *ok = (uint8_t *)a.ok.buf;
    scratch_t *strip = thread_block(strip_key);
    if (!strip)
        status = -1;
    for (Py_ssize_t i = 0; i < a.n && status == 0; i++) {
        const int64_t *r = rows + i * a.cols;
        int64_t which = a.multi ? r[K_COLS] : 0;
        ok[i] = 0;
        if (which < 0 || which >= a.nbufs)
            continue;
        const Py_buffer *b = &a.bufs[which];
        /* The decoder checks the region against the image; here only what it trusts. */
        if (r[K_OFF] < 0 || r[K_LEN] <= 0 || r[K_OFF] > (int64_t)b->len ||
            r[K_LEN] > (int64_t)b->len - r[K_OFF] || r[K_SLOT] < 0 || r[K_SLOT] >= a.dst.shape[0] ||
            r[K_TOP] < 0 || r[K_LEFT] < 0 || r[K_BH] < 1 || r[K_BW] < 1 ||
            r[K_TOP] > INT_MAX || r[K_LEFT] > INT_MAX || r[K_BH] > INT_MAX || r[K_BW] > INT_MAX ||
            (r[K_SCALE] != 1 && r[K_SCALE] != 2 && r[K_SCALE] != 4 && r[K_SCALE] != 8))
            continue; /* (the scale checked before the int cast, which would wrap it) */
        pixpack_strip_t px;
        unsigned char *block = (unsigned char *)strip->buf;
        int rc = jpeg_api->decode_strip((const unsigned char *)b->buf + r[K_OFF],
                                        (size_t)r[K_LEN], (int)r[K_SCALE], (long)r[K_TOP],
                                        (long)r[K_LEFT], (long)r[K_BH], (long)r[K_BW], &block,
                                        &strip->cap, &px);
        strip->buf = (char *)block;
        if (rc < 0 || (px.c != proto.out_c && px.c != 1))
            continue; /* the general path decodes it again and reports why */
        job_t j = proto;
        j.src_c = px.c;
        j.s_row = (Py_ssize_t)px.stride;
        j.src = (const char *)block + px.col_skip * (size_t)px.c;
        j.box_h = px.h;
        j.box_w = px.w;
        j.dst = (char *)a.dst.buf + r[K_SLOT] * a.dst.strides[0];
        j.flip = (int)(r[K_FLIP] & 3);
        status = resample(&j);
        ok[i] = (uint8_t)(status == 0);
    }
    block_trim(strip_key);
    scratch_trim();
    Py_END_ALLOW_THREADS
    result = none_or_nomemory(status);
done:
    chunk_release(&a);
    return result;
}

/* Tests run every code path: _set_avx2(False) makes this process use the SSE/portable
 * loops; returns whether AVX2 was in use before. */
static PyObject *py_set_avx2(PyObject *self, PyObject *arg)
{
    (void)self;
    int want = PyObject_IsTrue(arg);
    if (want < 0)
        return NULL;
#ifdef HAVE_AVX2_PATH
    int before = cpu_avx2;
    cpu_avx2 = want && __builtin_cpu_supports("avx2");
    return PyBool_FromLong(before);
#else
    return PyBool_FromLong(0);
#endif
}

static PyMethodDef methods[] = {
    {"_set_avx2", py_set_avx2, METH_O, "_set_avx2(enabled) -> was_enabled (for tests)."},
    {"draw_boxes", (PyCFunction)(void (*)(void))py_draw_boxes, METH_VARARGS | METH_KEYWORDS,
     "draw_boxes(seed, epoch, indices, heights, widths, rrc, flips, out)\n\n"
     "The fast path's random parameters for n samples, exactly as the Python ops draw\n"
     "them (see draw.c): out[i] = (top, left, box_h, box_w, flip). rrc: None (a fixed\n"
     "Resize: the whole image) or RandomResizedCrop's (log_lo, log_span, s_lo, s_span,\n"
     "ratio0, ratio1); flips: (p, bit) pairs in pipeline order."},
    {"resize", (PyCFunction)(void (*)(void))py_resize, METH_VARARGS | METH_KEYWORDS,
     "resize(src, box, dst, alpha=None, beta=None, chw=False, flip=0, antialias=True,\n"
     "       sigma=(0, 0), radius=(0, 0))\n\n"
     "Resize box=(top, left, height, width) of an HWC uint8/uint16 image (packed pixel\n"
     "rows) into dst ((C,H,W) if chw else (H,W,C)): pixels of the source's dtype, or\n"
     "float32 as x*alpha[c]+beta[c]. flip: bit 0 horizontal, bit 1 vertical.\n"
     "sigma=(sy, sx) > 0: a Gaussian blur (radius=(ry, rx) taps each side, reflect-101\n"
     "border) then bilinear sampling, instead of torchvision's triangle filter."},
    {"resize_chunk", (PyCFunction)(void (*)(void))py_resize_chunk, METH_VARARGS | METH_KEYWORDS,
     "resize_chunk(buffer, jobs, dst, alpha, beta, chw, antialias, ok)\n\n"
     "resize() for n samples of a raw pack in one GIL release. jobs: (n, 11) int64 rows\n"
     "(offset, height, width, channels, itemsize, top, left, box_h, box_w, flip, slot)\n"
     "into buffer; row i goes to dst[slot]. ok[i] is set False (and nothing written)\n"
     "for a row that does not fit the buffer, its own shape or dst."},
    {"resize_jpeg_chunk", (PyCFunction)(void (*)(void))py_resize_jpeg_chunk,
     METH_VARARGS | METH_KEYWORDS,
     "resize_jpeg_chunk(buffer, jobs, dst, alpha, beta, chw, antialias, ok)\n\n"
     "For n JPEG samples in one GIL release: decode the region at 1/scale (as\n"
     "_jpeg.decode does, strictly) and resize() all of it into dst[slot]. jobs: (n, 9)\n"
     "int64 rows (offset, nbytes, top, left, box_h, box_w, flip, slot, scale) into\n"
     "buffer. ok[i] is False for a row that failed (corrupt data, a region outside the\n"
     "image, a span outside the buffer): nothing else is reported; decode it again."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_resample",
                                    "Fused crop + antialiased bilinear resize + store.", -1,
                                    methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__resample(void)
{
    if (pthread_key_create(&scratch_key, scratch_destroy) != 0 ||
        pthread_key_create(&strip_key, scratch_destroy) != 0)
        return PyErr_NoMemory();
#ifdef HAVE_AVX2_PATH
    __builtin_cpu_init();
    cpu_avx2 = __builtin_cpu_supports("avx2");
    init_rgb_masks();
#endif
    return PyModule_Create(&module);
}
