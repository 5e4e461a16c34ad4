/*
 * pixpack._native._readahead: start the reads of many byte spans of a file with
 * posix_fadvise(POSIX_FADV_WILLNEED), in one call that releases the GIL.
 *
 * The read-ahead thread advises every sample of the next batches; in Python each
 * request holds the GIL for a few microseconds of bookkeeping, which the decode
 * threads then wait for. Here the whole step is one GIL release. Spans that touch are
 * merged into one request, and requests are split into pieces of at most `piece`
 * bytes (the kernel drops what exceeds its per-request read-ahead limit).
 */
#include "glue.h"

#include <fcntl.h>
#include <stdint.h>

static PyObject *will_need(PyObject *self, PyObject *args)
{
    int fd;
    PyObject *off_obj, *len_obj;
    long long piece;
    if (!PyArg_ParseTuple(args, "iOOL", &fd, &off_obj, &len_obj, &piece))
        return NULL;
    if (piece <= 0) {
        PyErr_SetString(PyExc_ValueError, "will_need: piece must be positive");
        return NULL;
    }
    Py_buffer o, l;
    if (PyObject_GetBuffer(off_obj, &o, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    if (PyObject_GetBuffer(len_obj, &l, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&o);
        return NULL;
    }
    int ok_o = o.itemsize == 8 && (is_format(&o, 'q') || is_format(&o, 'l'));
    int ok_l = l.itemsize == 8 && (is_format(&l, 'q') || is_format(&l, 'l'));
    if (!ok_o || !ok_l || o.len != l.len) {
        PyBuffer_Release(&o);
        PyBuffer_Release(&l);
        PyErr_SetString(PyExc_ValueError, "will_need: offsets and nbytes must be int64 arrays "
                                          "of one length");
        return NULL;
    }
    const int64_t *offsets = (const int64_t *)o.buf, *nbytes = (const int64_t *)l.buf;
    Py_ssize_t n = o.len / 8;
    long long requests = 0;
    Py_BEGIN_ALLOW_THREADS
    int64_t start = -1, stop = -1;
    for (Py_ssize_t i = 0; i <= n; i++) {
        if (i < n) {
            if (nbytes[i] <= 0 || offsets[i] < 0)
                continue;
            if (offsets[i] == stop) { /* touches the run: extend it */
                stop += nbytes[i];
                continue;
            }
        }
        for (int64_t at = start; stop > start && at < stop; at += piece) {
            int64_t len = stop - at < piece ? stop - at : piece;
            posix_fadvise(fd, (off_t)at, (off_t)len, POSIX_FADV_WILLNEED);
            requests++;
        }
        if (i < n) {
            start = offsets[i];
            stop = offsets[i] + nbytes[i];
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&o);
    PyBuffer_Release(&l);
    return PyLong_FromLongLong(requests);
}

static PyMethodDef methods[] = {
    {"will_need", will_need, METH_VARARGS,
     "will_need(fd, offsets, nbytes, piece) -> requests: POSIX_FADV_WILLNEED on each span "
     "(int64 arrays), neighbours merged, in pieces of at most `piece` bytes; GIL released."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_readahead",
                                    "Asynchronous read requests for many spans.", -1, methods};

PyMODINIT_FUNC PyInit__readahead(void) { return PyModule_Create(&module); }
