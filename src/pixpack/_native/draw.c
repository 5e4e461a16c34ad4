/*
 * The loader fast path's random parameters for a whole chunk, drawn natively:
 *
 *   draw_boxes(seed, epoch, indices, heights, widths, rrc, flips, out)
 *
 * Exactly what the Python ops draw, sample by sample: the generator is numpy's
 * Philox4x64-10 keyed (seed, epoch) with its counter at (0, 0, index, 0)
 * (ops.base.sample_rng); uniforms are numpy's Generator.random() doubles; the box is
 * RandomResizedCrop.make_params (up to 10 attempts of 4 uniforms, then the central
 * fallback) and each flip is one more uniform compared with its p. Same IEEE double
 * arithmetic and the same libm exp/log/sqrt as Python's math module, round-half-even
 * like Python's round(). tests/loader/test_fused.py compares it with the Python ops
 * over many seeds, indices and shapes, fallback included.
 *
 * Why native: drawing in Python cost ~12 us per sample of GIL-held time next to a
 * ~95 us kernel (cold caches after each kernel make it slower than in isolation),
 * the largest serial part left in the loader's raw path.
 */

#include "draw.h"

#include <math.h>
#include <stdint.h>

/* ---- numpy's Philox4x64-10 (Random123), bit for bit ---- */

typedef struct {
    uint64_t ctr[4], key[2], buf[4];
    int pos;
} philox_t;

static inline void mulhilo(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo)
{
    unsigned __int128 p = (unsigned __int128)a * b;
    *hi = (uint64_t)(p >> 64);
    *lo = (uint64_t)p;
}

static void philox_block(const uint64_t in[4], const uint64_t key_in[2], uint64_t out[4])
{
    uint64_t c[4] = {in[0], in[1], in[2], in[3]}, k0 = key_in[0], k1 = key_in[1];
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += 0x9E3779B97F4A7C15ULL;
            k1 += 0xBB67AE8584CAA73BULL;
        }
        uint64_t hi0, lo0, hi1, lo1;
        mulhilo(0xD2E7470EE14C6C93ULL, c[0], &hi0, &lo0);
        mulhilo(0xCA5A826395121157ULL, c[2], &hi1, &lo1);
        uint64_t n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0;
        c[1] = lo1;
        c[2] = n2;
        c[3] = lo0;
    }
    for (int i = 0; i < 4; i++)
        out[i] = c[i];
}

/* numpy's philox_next: the buffer first, else bump the counter and fill it. */
static uint64_t philox_next(philox_t *p)
{
    if (p->pos < 4)
        return p->buf[p->pos++];
    if (++p->ctr[0] == 0 && ++p->ctr[1] == 0 && ++p->ctr[2] == 0)
        ++p->ctr[3];
    philox_block(p->ctr, p->key, p->buf);
    p->pos = 1;
    return p->buf[0];
}

static double uniform(philox_t *p) { return (double)(philox_next(p) >> 11) * (1.0 / 9007199254740992.0); }

static void sample_rng(philox_t *p, uint64_t seed, uint64_t epoch, uint64_t index)
{
    p->ctr[0] = p->ctr[1] = p->ctr[3] = 0;
    p->ctr[2] = index;
    p->key[0] = seed;
    p->key[1] = epoch;
    p->pos = 4;
}

/* ---- RandomResizedCrop.make_params ---- */

typedef struct {
    double log_lo, log_span, s_lo, s_span, ratio0, ratio1;
} rrc_t;

static int64_t round_half_even(double x) { return (int64_t)nearbyint(x); }

static void rrc_box(philox_t *p, const rrc_t *c, int64_t height, int64_t width, int64_t box[4])
{
    const double area = (double)(height * width);
    for (int attempt = 0; attempt < 10; attempt++) {
        const double u_area = uniform(p), u_ratio = uniform(p), u_top = uniform(p),
                     u_left = uniform(p);
        const double target = area * (c->s_lo + c->s_span * u_area);
        const double aspect = exp(c->log_lo + c->log_span * u_ratio);
        const int64_t w = round_half_even(sqrt(target * aspect));
        const int64_t h = round_half_even(sqrt(target / aspect));
        if (0 < w && w <= width && 0 < h && h <= height) {
            box[0] = (int64_t)(u_top * (double)(height - h + 1));
            box[1] = (int64_t)(u_left * (double)(width - w + 1));
            box[2] = h;
            box[3] = w;
            return;
        }
    }
    const double in_ratio = (double)width / (double)height;
    int64_t w = width, h = height;
    if (in_ratio < c->ratio0) {
        h = round_half_even((double)width / c->ratio0);
    } else if (in_ratio > c->ratio1) {
        w = round_half_even((double)height * c->ratio1);
    }
    /* Python floor division of non-negative ints */
    box[0] = (height - h) / 2;
    box[1] = (width - w) / 2;
    box[2] = h;
    box[3] = w;
}

/* ---- Python glue ---- */

static int get_i64(PyObject *obj, Py_buffer *b, Py_ssize_t n, const char *what)
{
    if (PyObject_GetBuffer(obj, b, PyBUF_RECORDS_RO) < 0)
        return -1;
    if (b->ndim != 1 || b->shape[0] != n || b->itemsize != 8 || b->strides[0] != 8 ||
        !(is_format(b, 'q') || is_format(b, 'l'))) {
        PyBuffer_Release(b);
        PyErr_Format(PyExc_ValueError, "draw_boxes: %s must be a contiguous (n,) int64 array",
                     what);
        return -1;
    }
    return 0;
}

PyObject *py_draw_boxes(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    static char *kwlist[] = {"seed",   "epoch", "indices", "heights",
                             "widths", "rrc",   "flips",   "out",     NULL};
    unsigned long long seed, epoch;
    PyObject *idx_obj, *h_obj, *w_obj, *rrc_obj, *flips_obj, *out_obj;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "KKOOOOOO", kwlist, &seed, &epoch, &idx_obj,
                                     &h_obj, &w_obj, &rrc_obj, &flips_obj, &out_obj))
        return NULL;
    rrc_t rrc = {0, 0, 0, 0, 0, 0};
    int has_rrc = rrc_obj != Py_None;
    if (has_rrc && !PyArg_ParseTuple(rrc_obj, "dddddd;draw_boxes: rrc is 6 floats", &rrc.log_lo,
                                     &rrc.log_span, &rrc.s_lo, &rrc.s_span, &rrc.ratio0,
                                     &rrc.ratio1))
        return NULL;
    double flip_p[8];
    long flip_bit[8];
    PyObject *fast = PySequence_Fast(flips_obj, "draw_boxes: flips must be a sequence");
    if (!fast)
        return NULL;
    Py_ssize_t nflips = PySequence_Fast_GET_SIZE(fast);
    if (nflips > 8) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_ValueError, "draw_boxes: at most 8 flips");
        return NULL;
    }
    for (Py_ssize_t f = 0; f < nflips; f++) {
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, f), "dl;draw_boxes: a flip is (p, bit)",
                              &flip_p[f], &flip_bit[f])) {
            Py_DECREF(fast);
            return NULL;
        }
    }
    Py_DECREF(fast);

    Py_buffer ib, hb, wb, ob;
    if (PyObject_GetBuffer(idx_obj, &ib, PyBUF_RECORDS_RO) < 0)
        return NULL;
    Py_ssize_t n = ib.ndim == 1 ? ib.shape[0] : -1;
    PyBuffer_Release(&ib);
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "draw_boxes: indices must be 1-D");
        return NULL;
    }
    if (get_i64(idx_obj, &ib, n, "indices") < 0)
        return NULL;
    if (get_i64(h_obj, &hb, n, "heights") < 0) {
        PyBuffer_Release(&ib);
        return NULL;
    }
    if (get_i64(w_obj, &wb, n, "widths") < 0) {
        PyBuffer_Release(&hb);
        PyBuffer_Release(&ib);
        return NULL;
    }
    PyObject *result = NULL;
    if (PyObject_GetBuffer(out_obj, &ob, PyBUF_RECORDS) < 0)
        goto release;
    if (ob.ndim != 2 || ob.shape[0] != n || ob.shape[1] != 5 || ob.itemsize != 8 ||
        ob.strides[1] != 8 || ob.strides[0] != 40 || !(is_format(&ob, 'q') || is_format(&ob, 'l'))) {
        PyErr_SetString(PyExc_ValueError, "draw_boxes: out must be a C-contiguous (n, 5) int64");
        PyBuffer_Release(&ob);
        goto release;
    }
    const int64_t *idx = (const int64_t *)ib.buf, *hs = (const int64_t *)hb.buf,
                  *ws = (const int64_t *)wb.buf;
    int64_t *out = (int64_t *)ob.buf;
    int bad = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        bad |= hs[i] < 1 || ws[i] < 1;
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "draw_boxes: heights and widths must be >= 1");
        PyBuffer_Release(&ob);
        goto release;
    }
    Py_BEGIN_ALLOW_THREADS
    philox_t p;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t *row = out + 5 * i;
        sample_rng(&p, seed, epoch, (uint64_t)idx[i]);
        if (has_rrc) {
            rrc_box(&p, &rrc, hs[i], ws[i], row);
        } else {
            row[0] = row[1] = 0;
            row[2] = hs[i];
            row[3] = ws[i];
        }
        int64_t flip = 0;
        for (Py_ssize_t f = 0; f < nflips; f++)
            if (uniform(&p) < flip_p[f])
                flip ^= flip_bit[f];
        row[4] = flip;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&ob);
    result = Py_NewRef(Py_None);
release:
    PyBuffer_Release(&wb);
    PyBuffer_Release(&hb);
    PyBuffer_Release(&ib);
    return result;
}
