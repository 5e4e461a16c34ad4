/*
 * pixpack._native._lossless: decode a `lossless` sample's bands (format.py, LOSSLESS_*):
 * LZ4 blocks and filters, all of a sample's bands in one call that releases the GIL.
 * (The lz4 package's decompress releases the GIL once per block; with ~10 us blocks,
 * two threads then mostly wait for each other to hand the GIL back.)
 *
 * The LZ4 block decoder is a plain bounds-checked implementation of the documented
 * block format (lz4/doc/lz4_Block_format.md), so no LZ4 headers are needed to build.
 *
 * The stored stream, once decompressed, holds `planes` = itemsize byte planes of
 * n = rows * row_len values (plane k: byte k of every value, little-endian). With the
 * "up" filter each value is the zigzag code of its residual against the value one row
 * above (the first row: against 0), modulo 2^(8 * itemsize). Undoing it is
 *
 *     z = gather(planes, i);  r = (z >> 1) ^ -(z & 1);  out[i] = out[i - row_len] + r
 *
 * which has no dependency along a row, so the compiler vectorises it. The fallback in
 * pixpack/read/lossless.py (the lz4 package and numpy) computes the same values.
 */
#include "glue.h"

#include <stdint.h>
#include <string.h>

#define UNFILTER(T)                                                                        \
    static void unfilter_##T(const uint8_t *src, T *out, Py_ssize_t rows, Py_ssize_t row_len, \
                             int up)                                                       \
    {                                                                                      \
        const Py_ssize_t n = rows * row_len;                                               \
        const int size = (int)sizeof(T);                                                   \
        for (Py_ssize_t y = 0; y < rows; y++) {                                            \
            T *o = out + y * row_len;                                                      \
            const T *above = y > 0 ? o - row_len : NULL;                                   \
            const Py_ssize_t at = y * row_len;                                             \
            for (Py_ssize_t x = 0; x < row_len; x++) {                                     \
                T z = 0;                                                                   \
                for (int k = 0; k < size; k++)                                             \
                    z |= (T)((T)src[(Py_ssize_t)k * n + at + x] << (8 * k));               \
                if (up) {                                                                  \
                    T r = (T)((z >> 1) ^ (T)(0u - (T)(z & 1u)));                           \
                    z = above ? (T)(above[x] + r) : r;                                     \
                }                                                                          \
                o[x] = z;                                                                  \
            }                                                                              \
        }                                                                                  \
    }

UNFILTER(uint8_t)
UNFILTER(uint16_t)
UNFILTER(uint32_t)

/* One LZ4 block (the format of LZ4_compress_default/HC without a size prefix) into
 * exactly `cap` bytes. Every read and write is bounds-checked, so a damaged block can
 * only fail: returns 0 when it decodes to exactly `cap` bytes, -1 otherwise. */
static int extend(const uint8_t **ipp, const uint8_t *iend, size_t *len)
{ /* a length's extension bytes: each adds its value; 255 says another follows */
    const uint8_t *ip = *ipp;
    unsigned b;
    do {
        if (ip >= iend)
            return -1;
        b = *ip++;
        *len += b;
    } while (b == 255);
    *ipp = ip;
    return 0;
}

static int lz4_block(const uint8_t *ip, const uint8_t *iend, uint8_t *out, size_t cap)
{
    uint8_t *op = out, *const oend = out + cap;
    for (;;) {
        if (ip >= iend)
            return -1;
        unsigned token = *ip++;
        size_t len = token >> 4;
        if (len == 15 && extend(&ip, iend, &len))
            return -1;
        if (len > (size_t)(iend - ip) || len > (size_t)(oend - op))
            return -1;
        if (len <= 16 && iend - ip >= 16 && oend - op >= 16)
            memcpy(op, ip, 16); /* a fixed-size copy; the bytes past len are rewritten */
        else
            memcpy(op, ip, len);
        op += len;
        ip += len;
        if (ip == iend) /* the last sequence has literals only */
            return op == oend ? 0 : -1;
        if (iend - ip < 2)
            return -1;
        size_t offset = (size_t)ip[0] | ((size_t)ip[1] << 8);
        ip += 2;
        if (offset == 0 || offset > (size_t)(op - out))
            return -1;
        len = (token & 15) + 4;
        if ((token & 15) == 15 && extend(&ip, iend, &len))
            return -1;
        if (len > (size_t)(oend - op))
            return -1;
        const uint8_t *m = op - offset;
        if (offset >= 16) {
            if (len <= 16 && oend - op >= 16) {
                memcpy(op, m, 16);
                op += len;
                continue;
            }
            while (len >= 16) {
                memcpy(op, m, 16);
                op += 16;
                m += 16;
                len -= 16;
            }
            memcpy(op, m, len);
            op += len;
        } else if (offset == 1) {
            memset(op, *m, len);
            op += len;
        } else {
            /* overlapping: the last `offset` bytes repeat; each copy doubles the source */
            while (len > 0) {
                size_t n = (size_t)(op - m) < len ? (size_t)(op - m) : len;
                memcpy(op, m, n);
                op += n;
                len -= n;
            }
        }
    }
}

static void unfilter_any(const uint8_t *src, void *dst, Py_ssize_t rows, Py_ssize_t row_len,
                         int itemsize, int up)
{
    if (itemsize == 1)
        unfilter_uint8_t(src, (uint8_t *)dst, rows, row_len, up);
    else if (itemsize == 2)
        unfilter_uint16_t(src, (uint16_t *)dst, rows, row_len, up);
    else
        unfilter_uint32_t(src, (uint32_t *)dst, rows, row_len, up);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* decode_rows(sample, dst, height, row_len, itemsize, first_band): the bands of a
 * lossless sample (header already checked by the caller: codec LZ4, a known filter)
 * that fill dst, starting at band `first_band`. The band table must account for every
 * byte of the sample and dst must hold exactly whole bands' rows (the last band of
 * the image may be short). ValueError names what is wrong; the GIL is released once,
 * for all the bands. */
static PyObject *decode_rows(PyObject *self, PyObject *args)
{
    PyObject *src_obj, *dst_obj;
    Py_ssize_t height, row_len, first_band;
    int itemsize;
    if (!PyArg_ParseTuple(args, "OOnnin", &src_obj, &dst_obj, &height, &row_len, &itemsize,
                          &first_band))
        return NULL;
    if (height < 1 || row_len < 1 || first_band < 0 ||
        (itemsize != 1 && itemsize != 2 && itemsize != 4) ||
        row_len > PY_SSIZE_T_MAX / itemsize / height) {
        PyErr_SetString(PyExc_ValueError, "decode_rows: bad height, row_len, itemsize or band");
        return NULL;
    }
    Py_buffer s, d;
    if (PyObject_GetBuffer(src_obj, &s, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    if (PyObject_GetBuffer(dst_obj, &d, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&s);
        return NULL;
    }
    const uint8_t *p = (const uint8_t *)s.buf;
    const char *why = NULL;
    Py_ssize_t row_bytes = row_len * itemsize, band = 0, nbands = 0, table_end = 0;
    Py_ssize_t y0 = 0, y1 = 0, failed = -1;
    int filter = 0;
    uint8_t *scratch = NULL;
    if (s.len < 8) {
        why = "shorter than its header";
        goto done;
    }
    filter = p[1];
    band = (Py_ssize_t)le32(p + 4);
    if (band < 1 || filter > 2) {
        why = "its band height is 0 or its filter unknown";
        goto done;
    }
    nbands = (height + band - 1) / band;
    table_end = 8 + 4 * nbands;
    if (s.len < table_end) {
        why = "too short for its band table";
        goto done;
    }
    {
        Py_ssize_t total = table_end;
        for (Py_ssize_t k = 0; k < nbands; k++)
            total += (Py_ssize_t)le32(p + 8 + 4 * k);
        if (total != s.len) {
            why = "its band table does not account for its bytes";
            goto done;
        }
    }
    y0 = first_band * band;
    y1 = y0 + (d.len % row_bytes ? -1 : d.len / row_bytes);
    if (first_band >= nbands || y1 <= y0 || y1 > height ||
        (y1 != height && (y1 - y0) % band != 0)) {
        why = "the destination is not whole bands of the image";
        goto done;
    }
    if (filter != 0) {
        scratch = (uint8_t *)PyMem_RawMalloc((size_t)(band * row_bytes));
        if (!scratch) {
            PyBuffer_Release(&s);
            PyBuffer_Release(&d);
            return PyErr_NoMemory();
        }
    }
    Py_BEGIN_ALLOW_THREADS
    const uint8_t *block = p + table_end;
    for (Py_ssize_t k = 0; k < first_band; k++)
        block += le32(p + 8 + 4 * k);
    for (Py_ssize_t k = first_band, y = y0; y < y1; k++, y += band) {
        Py_ssize_t n = y1 - y < band ? y1 - y : band;
        const uint8_t *next = block + le32(p + 8 + 4 * k);
        uint8_t *o = (uint8_t *)d.buf + (y - y0) * row_bytes;
        if (lz4_block(block, next, filter == 0 ? o : scratch, (size_t)(n * row_bytes))) {
            failed = k;
            break;
        }
        if (filter != 0)
            unfilter_any(scratch, o, n, row_len, itemsize, filter == 2);
        block = next;
    }
    Py_END_ALLOW_THREADS
    if (failed >= 0)
        why = "a band is damaged (LZ4 block)";
done:
    PyMem_RawFree(scratch);
    PyBuffer_Release(&s);
    PyBuffer_Release(&d);
    if (why) {
        if (failed >= 0)
            PyErr_Format(PyExc_ValueError, "band %zd is damaged (LZ4 block)", failed);
        else
            PyErr_SetString(PyExc_ValueError, why);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"decode_rows", decode_rows, METH_VARARGS,
     "decode_rows(sample, dst, height, row_len, itemsize, first_band): the bands of a lossless "
     "sample that fill dst from band first_band on, filters undone; bounds-checked "
     "(ValueError); GIL released."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_lossless",
                                    "Undo the lossless mode's byte-plane and delta filters.",
                                    -1, methods};

PyMODINIT_FUNC PyInit__lossless(void) { return PyModule_Create(&module); }
