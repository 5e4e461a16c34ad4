/* draw.c: the loader fast path's per-chunk random parameters (see draw.c). */
#ifndef PIXPACK_NATIVE_DRAW_H
#define PIXPACK_NATIVE_DRAW_H

#include "glue.h"

PyObject *py_draw_boxes(PyObject *self, PyObject *args, PyObject *kwargs);

#endif
