/*
 * pixpack._native._store: the loader's last per-sample step, fused into one pass.
 *
 *   store(src, dst, alpha, beta)
 *
 * reads an HWC (or HW) uint8/uint16 image with ANY strides (so a flipped view,
 * img[:, ::-1] or img[::-1], costs nothing: the flip happens here) and writes it
 * into one sample slot of the batch buffer, dst: (C, H, W) or (H, W, C), of
 * float32 (x * alpha[c] + beta[c]: Normalize and the int-to-float scale folded
 * into one multiply-add) or of the source's integer type (a plain copy).
 * A 1-channel source is replicated into every output channel.
 *
 * Why native: the same work through OpenCV is split + one addWeighted per
 * channel (+ a flip before it), i.e. five GIL release/re-acquire round trips per
 * sample. Each one is a chance to sleep on the GIL while another loader thread
 * runs Python, and on a VM waking a sleeping thread is expensive. Here it is one
 * release and one read of the pixels.
 *
 * dst layout is given by `chw` (True: (C, H, W)); shapes are checked against the
 * source, strides of both are honoured (in bytes, any sign).
 */

#include "glue.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHANNELS 4

typedef struct {
    const char *src;
    Py_ssize_t s_row, s_px, s_ch; /* source strides in bytes (s_ch 0: replicate gray) */
    char *dst;
    Py_ssize_t d_row, d_px, d_ch; /* destination strides in bytes */
    Py_ssize_t height, width, channels;
    float alpha[MAX_CHANNELS], beta[MAX_CHANNELS];
} job_t;

/* Wider vectors where the CPU has them, chosen once at load time (GCC/clang ifunc). */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "ssse3", "default")))
#else
#define VECTOR_CLONES
#endif

/* The common case, written so the compiler vectorises it: one row of 3 interleaved
 * 8-bit channels, left to right in memory, into three float rows. (A loop over a
 * negative pixel stride does not vectorise; flipped rows go through reverse_row.) */
VECTOR_CLONES
static void row_u8c3_f32(const uint8_t *restrict s, float *restrict d0, float *restrict d1,
                         float *restrict d2, Py_ssize_t w, float a0, float a1, float a2,
                         float b0, float b1, float b2)
{
    for (Py_ssize_t x = 0; x < w; x++) {
        d0[x] = (float)s[3 * x] * a0 + b0;
        d1[x] = (float)s[3 * x + 1] * a1 + b1;
        d2[x] = (float)s[3 * x + 2] * a2 + b2;
    }
}

/* The same deinterleave for integer output (uint8 NCHW batches, e.g. normalised on a
 * GPU later): three planar uint8 rows. */
VECTOR_CLONES
static void row_u8c3_u8(const uint8_t *restrict s, uint8_t *restrict d0, uint8_t *restrict d1,
                        uint8_t *restrict d2, Py_ssize_t w)
{
    for (Py_ssize_t x = 0; x < w; x++) {
        d0[x] = s[3 * x];
        d1[x] = s[3 * x + 1];
        d2[x] = s[3 * x + 2];
    }
}

VECTOR_CLONES
static void reverse_row(const float *restrict t, float *restrict d, Py_ssize_t w)
{
    for (Py_ssize_t x = 0; x < w; x++)
        d[x] = t[w - 1 - x];
}

/* Pixel stride +3 or -3 (a horizontally flipped view), planar float rows out.
 * Returns -1 when the scratch row for flipped input cannot be allocated. */
static int rows_u8c3_f32_planar(const job_t *j)
{
    const Py_ssize_t w = j->width;
    float *scratch = NULL;
    if (j->s_px < 0 && !(scratch = (float *)malloc(3 * (size_t)w * sizeof(float))))
        return -1;
    for (Py_ssize_t y = 0; y < j->height; y++) {
        const uint8_t *s = (const uint8_t *)(j->src + y * j->s_row);
        float *d0 = (float *)(j->dst + y * j->d_row);
        float *d1 = (float *)((char *)d0 + j->d_ch);
        float *d2 = (float *)((char *)d1 + j->d_ch);
        if (!scratch) {
            row_u8c3_f32(s, d0, d1, d2, w, j->alpha[0], j->alpha[1], j->alpha[2], j->beta[0],
                         j->beta[1], j->beta[2]);
        } else { /* s is the row's first output pixel, the rightmost one in memory */
            row_u8c3_f32(s - 3 * (w - 1), scratch, scratch + w, scratch + 2 * w, w,
                         j->alpha[0], j->alpha[1], j->alpha[2], j->beta[0], j->beta[1],
                         j->beta[2]);
            reverse_row(scratch, d0, w);
            reverse_row(scratch + w, d1, w);
            reverse_row(scratch + 2 * w, d2, w);
        }
    }
    free(scratch);
    return 0;
}

/* Pixel stride +3 or -3, planar uint8 rows out (a flipped row is read from its
 * leftmost byte and written back to front). Returns 0 when the strides do not fit. */
VECTOR_CLONES
static void reverse_row_u8(const uint8_t *restrict t, uint8_t *restrict d, Py_ssize_t w)
{
    for (Py_ssize_t x = 0; x < w; x++)
        d[x] = t[w - 1 - x];
}

/* A row of 3-byte pixels in reverse order, with 4-byte moves 3 bytes apart (one load
 * and one store per pixel): each store's spare byte is overwritten by the next one.
 * The first output pixel (the source's rightmost) and the last are moved as 3 bytes,
 * so nothing outside either row is read or written. */
static void reverse_pixels_u8c3(const uint8_t *restrict left, uint8_t *restrict d,
                                Py_ssize_t w)
{
    memcpy(d, left + 3 * (w - 1), 3);
    for (Py_ssize_t x = 1; x < w - 1; x++) {
        uint32_t v;
        memcpy(&v, left + 3 * (w - 1 - x), 4);
        memcpy(d + 3 * x, &v, 4);
    }
    if (w > 1)
        memcpy(d + 3 * (w - 1), left, 3);
}

/* Pixel stride +3 or -3, uint8 out: planar rows (CHW), or packed rows (HWC) for a
 * flipped source (unflipped packed rows are a memcpy). A flipped row is deinterleaved
 * forward into scratch rows and reversed from there: reading or writing backwards
 * does not vectorise. Returns 0 when the strides do not fit, -1 without memory. */
static int rows_u8c3_u8(const job_t *j)
{
    /* Unflipped packed rows never get here: copy_packed_rows memcpys them. */
    const int planar = j->d_px == 1, packed = j->d_px == 3 && j->d_ch == 1 && j->s_px < 0;
    if (j->s_ch != 1 || (j->s_px != 3 && j->s_px != -3) || j->channels != 3 ||
        !(planar || packed))
        return 0;
    const Py_ssize_t w = j->width;
    uint8_t *scratch = NULL;
    if (j->s_px < 0 && planar && !(scratch = (uint8_t *)malloc(3 * (size_t)w)))
        return -1;
    for (Py_ssize_t y = 0; y < j->height; y++) {
        const uint8_t *s = (const uint8_t *)(j->src + y * j->s_row);
        uint8_t *d = (uint8_t *)(j->dst + y * j->d_row);
        if (j->s_px > 0) {
            row_u8c3_u8(s, d, d + j->d_ch, d + 2 * j->d_ch, w);
            continue;
        }
        if (packed) {
            reverse_pixels_u8c3(s - 3 * (w - 1), d, w);
            continue;
        }
        row_u8c3_u8(s - 3 * (w - 1), scratch, scratch + w, scratch + 2 * w, w);
        for (int c = 0; c < 3; c++)
            reverse_row_u8(scratch + c * w, d + c * j->d_ch, w);
    }
    free(scratch);
    return 1;
}

/* Any strides, any channel count: one loop, specialised by the per-pixel expression
 * (v is the source value, a/b the channel's alpha/beta). */
#define GENERIC(NAME, SRC_T, DST_T, EXPR)                                                \
    static void NAME(const job_t *j)                                                     \
    {                                                                                    \
        for (Py_ssize_t y = 0; y < j->height; y++) {                                     \
            for (Py_ssize_t c = 0; c < j->channels; c++) {                               \
                const char *s = j->src + y * j->s_row + c * j->s_ch;                     \
                char *d = j->dst + y * j->d_row + c * j->d_ch;                           \
                const float a = j->alpha[c], b = j->beta[c];                             \
                (void)a;                                                                 \
                (void)b;                                                                 \
                for (Py_ssize_t x = 0; x < j->width; x++) {                              \
                    const SRC_T v = *(const SRC_T *)(s + x * j->s_px);                   \
                    *(DST_T *)(d + x * j->d_px) = (EXPR);                                \
                }                                                                        \
            }                                                                            \
        }                                                                                \
    }

GENERIC(generic_u8_f32, uint8_t, float, (float)v * a + b)
GENERIC(generic_u16_f32, uint16_t, float, (float)v * a + b)
GENERIC(copy_u8, uint8_t, uint8_t, v)
GENERIC(copy_u16, uint16_t, uint16_t, v)

/* Integer copy whose source and destination pixels are both packed rows (an HWC
 * slot, no horizontal flip): one memcpy per row. This is the device path's uint8
 * NHWC staging copy. Returns 0 when the strides do not allow it. */
static int copy_packed_rows(const job_t *j, Py_ssize_t item)
{
    const Py_ssize_t px = j->channels * item;
    if (j->s_px != px || j->d_px != px || j->s_ch != item || j->d_ch != item)
        return 0;
    for (Py_ssize_t y = 0; y < j->height; y++)
        memcpy(j->dst + y * j->d_row, j->src + y * j->s_row, (size_t)(j->width * px));
    return 1;
}

static PyObject *store(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    static char *kwlist[] = {"src", "dst", "alpha", "beta", "chw", NULL};
    PyObject *src_obj, *dst_obj, *alpha_obj = Py_None, *beta_obj = Py_None;
    int chw = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OOp", kwlist, &src_obj, &dst_obj,
                                     &alpha_obj, &beta_obj, &chw))
        return NULL;

    Py_buffer s, d;
    if (get_src_dst(src_obj, dst_obj, &s, &d) < 0)
        return NULL;
    PyObject *result = NULL;
    job_t j;
    memset(&j, 0, sizeof j);
    int src_u8 = is_format(&s, 'B'), src_u16 = is_format(&s, 'H');
    int dst_f32 = is_format(&d, 'f'), dst_u8 = is_format(&d, 'B'), dst_u16 = is_format(&d, 'H');

    if (!(src_u8 || src_u16) || (s.ndim != 2 && s.ndim != 3)) {
        PyErr_SetString(PyExc_ValueError, "store: src must be a 2-D or 3-D uint8/uint16 array");
        goto done;
    }
    if (d.ndim != 3 || !(dst_f32 || (dst_u8 && src_u8) || (dst_u16 && src_u16))) {
        PyErr_SetString(PyExc_ValueError,
                        "store: dst must be a 3-D float32 array, or of the source's dtype");
        goto done;
    }
    Py_ssize_t src_c = s.ndim == 3 ? s.shape[2] : 1;
    j.height = chw ? d.shape[1] : d.shape[0];
    j.width = chw ? d.shape[2] : d.shape[1];
    j.channels = chw ? d.shape[0] : d.shape[2];
    if (s.shape[0] != j.height || s.shape[1] != j.width ||
        (src_c != j.channels && src_c != 1) || j.channels > MAX_CHANNELS) {
        PyErr_Format(PyExc_ValueError,
                     "store: a (%zd, %zd, %zd) image does not fit a (%zd, %zd, %zd) slot",
                     s.shape[0], s.shape[1], src_c, j.height, j.width, j.channels);
        goto done;
    }
    j.src = (const char *)s.buf;
    j.s_row = s.strides[0];
    j.s_px = s.strides[1];
    j.s_ch = (s.ndim == 3 && src_c > 1) ? s.strides[2] : 0;
    j.dst = (char *)d.buf;
    j.d_row = chw ? d.strides[1] : d.strides[0];
    j.d_px = chw ? d.strides[2] : d.strides[1];
    j.d_ch = chw ? d.strides[0] : d.strides[2];

    if (dst_f32 && parse_affine(alpha_obj, beta_obj, j.channels, j.alpha, j.beta, "store") < 0)
        goto done;

    int status = 0;
    Py_BEGIN_ALLOW_THREADS
    if (dst_f32 && src_u8 && j.channels == 3 && j.s_ch == 1 && (j.s_px == 3 || j.s_px == -3) &&
        j.d_px == (Py_ssize_t)sizeof(float))
        status = rows_u8c3_f32_planar(&j);
    else if (dst_f32 && src_u8)
        generic_u8_f32(&j);
    else if (dst_f32)
        generic_u16_f32(&j);
    else if (copy_packed_rows(&j, dst_u8 ? 1 : 2))
        ;
    else if (dst_u8 && (status = rows_u8c3_u8(&j)) != 0)
        ;
    else if (dst_u8)
        copy_u8(&j);
    else
        copy_u16(&j);
    Py_END_ALLOW_THREADS

    result = none_or_nomemory(status);
done:
    PyBuffer_Release(&d);
    PyBuffer_Release(&s);
    return result;
}

static PyMethodDef methods[] = {
    {"store", (PyCFunction)(void (*)(void))store, METH_VARARGS | METH_KEYWORDS,
     "store(src, dst, alpha=None, beta=None, chw=True) -> None\n\n"
     "Write an HWC/HW uint8|uint16 image (any strides) into dst ((C,H,W) if chw else\n"
     "(H,W,C)): float32 as x*alpha[c]+beta[c], or a copy for the source's dtype."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_store",
                                    "Fused per-sample store for the pixpack loader.", -1,
                                    methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__store(void) { return PyModule_Create(&module); }
