/*
 * CPython glue shared by pixpack's native modules (header-only: each module is its
 * own extension, so these are static in each).
 */
#ifndef PIXPACK_NATIVE_GLUE_H
#define PIXPACK_NATIVE_GLUE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Whether a buffer's items are of struct code `code` (native or little-endian). */
static inline int is_format(const Py_buffer *b, char code)
{
    const char *f = b->format ? b->format : "B";
    if (*f == '<' || *f == '=' || *f == '@')
        f++;
    return f[0] == code && f[1] == '\0';
}

/* alpha/beta (None, or sequences of exactly `channels` floats) into a[] and b[], which
 * default to 1 and 0. `who` names the caller in errors. Returns 0, or -1 with an
 * exception set. */
static inline int parse_affine(PyObject *alpha, PyObject *beta, Py_ssize_t channels, float *a,
                        float *b, const char *who)
{
    for (Py_ssize_t c = 0; c < channels; c++) {
        a[c] = 1.0f;
        b[c] = 0.0f;
    }
    PyObject *seqs[2] = {alpha, beta};
    float *vals[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        if (seqs[k] == Py_None)
            continue;
        PyObject *fast = PySequence_Fast(seqs[k], "alpha/beta must be sequences");
        if (!fast)
            return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
        if (n != channels) {
            Py_DECREF(fast);
            PyErr_Format(PyExc_ValueError, "%s: %zd alpha/beta values for %zd channels", who, n,
                         channels);
            return -1;
        }
        for (Py_ssize_t c = 0; c < n; c++) {
            double v = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(fast, c));
            if (v == -1.0 && PyErr_Occurred()) {
                Py_DECREF(fast);
                return -1;
            }
            vals[k][c] = (float)v;
        }
        Py_DECREF(fast);
    }
    return 0;
}

/* A read-only source and a writable destination, both with strides. Returns 0, or -1
 * with an exception set and neither held. */
static inline int get_src_dst(PyObject *src, PyObject *dst, Py_buffer *s, Py_buffer *d)
{
    if (PyObject_GetBuffer(src, s, PyBUF_RECORDS_RO) < 0)
        return -1;
    if (PyObject_GetBuffer(dst, d, PyBUF_RECORDS) < 0) {
        PyBuffer_Release(s);
        return -1;
    }
    return 0;
}

/* The return value of a call whose native work ended with `status` (< 0: no memory). */
static inline PyObject *none_or_nomemory(int status)
{
    if (status < 0)
        return PyErr_NoMemory();
    return Py_NewRef(Py_None);
}

#endif
