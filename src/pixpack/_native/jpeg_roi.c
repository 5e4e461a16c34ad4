/*
 * pixpack._native._jpeg: region-of-interest JPEG decoding over libjpeg-turbo.
 *
 * Decodes only the rows and iMCU columns a crop needs, at a reduced DCT scale
 * (1/2, 1/4, 1/8), the way TensorFlow's decode_and_crop_jpeg does:
 *
 *   jpeg_read_header -> scale_denom -> jpeg_start_decompress
 *   -> jpeg_crop_scanline   (horizontal crop, snapped left to an iMCU boundary)
 *   -> jpeg_skip_scanlines  (rows above the box: entropy-decoded, no IDCT)
 *   -> jpeg_read_scanlines  (only the box rows) -> stop, no jpeg_finish_decompress
 *
 * The crop is widened by one pixel on each side (where the image has one) before
 * snapping: libjpeg-turbo's fancy h2v1/h2v2 upsampling treats the crop edges as
 * image edges, so the outermost decoded column may differ from a full decode.
 * One spare column keeps every returned pixel identical to the full decode.
 *
 * All libjpeg work runs without the GIL. The input buffer is held with
 * PyObject_GetBuffer for the whole call. libjpeg errors longjmp back to the phase
 * that started them and become Python exceptions; warnings (corrupt data that
 * libjpeg would paper over with grey) raise too when strict=True. Nothing is
 * ever printed to stderr.
 *
 * Python API (the wrapper pixpack.read.jpeg is the public face):
 *   header(data) -> (height, width, components)
 *   decode(data, out=None, scale=1, top=0, left=0, height=0, width=0,
 *          channels=0, fast=False, strict=True) -> (buffer, h, w, c)
 *     region (top, left, height, width) is in FULL-resolution pixels; height or
 *     width 0 means "to the bottom / right edge". The decoded box is the region
 *     at 1/scale, rounded outward: rows floor(top/s) .. ceil((top+height)/s).
 *     `out`, when given, must be a writable C-contiguous uint8 buffer of exactly
 *     h*w*c bytes (shape (h, w, c), (h, w) for c == 1, or flat); else a new
 *     bytearray is returned.
 *
 * C API (jpeg_api.h, the capsule _strip_api): decode_strip, the same decode into a
 * caller's growing buffer as whole rows of the decoded strip (no row copy), for the
 * loader's chunk path in pixpack._native._resample.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "jpeg_api.h"

static PyObject *ArgError; /* ValueError subclass: a bad region / out / argument. */

/* ------------------------------------------------------------------------ */
/* Error manager: longjmp instead of exit(), keep the message, no stderr.    */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int strict;
    int failed;
    char message[JMSG_LENGTH_MAX];
} error_mgr;

static void on_error_exit(j_common_ptr cinfo)
{
    error_mgr *err = (error_mgr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->message);
    err->failed = 1;
    longjmp(err->jump, 1);
}

static void on_emit_message(j_common_ptr cinfo, int msg_level)
{
    error_mgr *err = (error_mgr *)cinfo->err;
    if (msg_level >= 0)
        return; /* trace messages */
    /* A warning means corrupt data that libjpeg would fill with grey. A pack's
     * bytes were written by our encoder, so by default that is an error. */
    cinfo->err->num_warnings++;
    if (err->strict) {
        (*cinfo->err->format_message)(cinfo, err->message);
        err->failed = 1;
        longjmp(err->jump, 1);
    }
}

static void on_output_message(j_common_ptr cinfo)
{
    (void)cinfo; /* never write to stderr from inside a training loop */
}

/* ------------------------------------------------------------------------ */
/* One decode: parameters, libjpeg state and results, shared by both phases. */

typedef struct {
    struct jpeg_decompress_struct cinfo;
    error_mgr err;
    int created;
    const unsigned char *data;
    size_t size;
    /* request */
    int scale;
    int channels; /* 0 = as stored (1 for grey, 3 otherwise) */
    int fast;
    long top, left, height, width; /* full-resolution region */
    /* resolved box in scaled output coordinates */
    JDIMENSION box_top, box_left, box_h, box_w;
    int out_c;
    unsigned char *out; /* destination, box_h * box_w * out_c bytes */
    /* strip mode (decode_strip): decode into *grow (realloc'd to fit, *grow_cap its
     * size) as whole rows of the strip, and say where the box lies in them */
    unsigned char **grow;
    size_t *grow_cap;
    size_t strip_stride, col_skip;
    char bad_arg[256];  /* set when the request (not the data) is invalid */
} job_t;

static void job_destroy(job_t *job)
{
    if (job->created) {
        jpeg_destroy_decompress(&job->cinfo); /* also aborts a running decode */
        job->created = 0;
    }
}

static int job_start(job_t *job)
{
    memset(&job->cinfo, 0, sizeof(job->cinfo));
    job->cinfo.err = jpeg_std_error(&job->err.pub);
    job->err.pub.error_exit = on_error_exit;
    job->err.pub.emit_message = on_emit_message;
    job->err.pub.output_message = on_output_message;
    job->err.failed = 0;
    job->err.message[0] = '\0';
    job->bad_arg[0] = '\0';
    jpeg_create_decompress(&job->cinfo);
    job->created = 1;
    /* jpeg_mem_src takes an unsigned long length. */
    if ((unsigned long)job->size != job->size) {
        snprintf(job->err.message, sizeof(job->err.message), "input too large");
        return -1;
    }
    jpeg_mem_src(&job->cinfo, job->data, (unsigned long)job->size);
    jpeg_read_header(&job->cinfo, TRUE);
    return 0;
}

/* Phase 1 (no GIL): parse the header, set parameters, resolve the box. */
static int job_plan(job_t *job)
{
    j_decompress_ptr cinfo = &job->cinfo;
    if (setjmp(job->err.jump)) {
        job_destroy(job);
        return -1;
    }
    if (job_start(job) < 0) {
        job_destroy(job);
        return -1;
    }

    int comps = cinfo->num_components;
    if (comps != 1 && comps != 3) {
        snprintf(job->err.message, sizeof(job->err.message),
                 "unsupported JPEG with %d components (only greyscale and YCbCr/RGB)", comps);
        job_destroy(job);
        return -1;
    }
    int channels = job->channels ? job->channels : (comps == 1 ? 1 : 3);
    cinfo->out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    job->out_c = channels;
    cinfo->scale_num = 1;
    cinfo->scale_denom = (unsigned int)job->scale;
    cinfo->dct_method = job->fast ? JDCT_IFAST : JDCT_ISLOW;
    cinfo->do_fancy_upsampling = TRUE;
    cinfo->do_block_smoothing = TRUE;
    jpeg_calc_output_dimensions(cinfo);

    long H = (long)cinfo->image_height, W = (long)cinfo->image_width;
    long top = job->top, left = job->left;
    long height = job->height > 0 ? job->height : H - top;
    long width = job->width > 0 ? job->width : W - left;
    if (top < 0 || left < 0 || height <= 0 || width <= 0 || top + height > H ||
        left + width > W) {
        snprintf(job->bad_arg, sizeof(job->bad_arg),
                 "region (top=%ld, left=%ld, height=%ld, width=%ld) does not fit in the "
                 "%ldx%ld (HxW) image",
                 job->top, job->left, job->height, job->width, H, W);
        job_destroy(job);
        return -1;
    }
    long s = job->scale;
    long y0 = top / s, x0 = left / s;
    long y1 = (top + height + s - 1) / s, x1 = (left + width + s - 1) / s;
    /* libjpeg's scaled size is ceil(size / s), so y1, x1 never exceed it. */
    if (y1 > (long)cinfo->output_height) y1 = (long)cinfo->output_height;
    if (x1 > (long)cinfo->output_width) x1 = (long)cinfo->output_width;
    job->box_top = (JDIMENSION)y0;
    job->box_left = (JDIMENSION)x0;
    job->box_h = (JDIMENSION)(y1 - y0);
    job->box_w = (JDIMENSION)(x1 - x0);
    return 0;
}

/* Phase 2 (no GIL): decode the box into job->out, then drop the decoder. */
static int job_run(job_t *job)
{
    j_decompress_ptr cinfo = &job->cinfo;
    unsigned char *volatile scratch = NULL;
    JSAMPROW *volatile rows = NULL;
    if (setjmp(job->err.jump)) {
        free(scratch);
        free(rows);
        job_destroy(job);
        return -1;
    }
    jpeg_start_decompress(cinfo);

    const size_t c = (size_t)job->out_c;
    const JDIMENSION full_w = cinfo->output_width;
    JDIMENSION col_skip = 0; /* columns of the decoded strip left of the box */
    if (job->box_left > 0 || job->box_w < full_w) {
        /* One spare column on each side keeps the fancy-upsampled edge exact. */
        JDIMENSION x0 = job->box_left > 0 ? job->box_left - 1 : 0;
        JDIMENSION x1 = job->box_left + job->box_w;
        if (x1 < full_w) x1++;
        JDIMENSION xoff = x0, cw = x1 - x0;
        if (xoff > 0 || cw < full_w) {
            jpeg_crop_scanline(cinfo, &xoff, &cw);
        }
        col_skip = job->box_left - xoff;
    }
    const JDIMENSION strip_w = cinfo->output_width;
    size_t row_bytes = (size_t)job->box_w * c;
    int direct = (col_skip == 0 && strip_w == job->box_w);
    if (job->grow) { /* strip mode: the strip's rows as they are, no copy */
        size_t need = (size_t)job->box_h * strip_w * c;
        if (need > *job->grow_cap) {
            unsigned char *grown = (unsigned char *)realloc(*job->grow, need);
            if (!grown) {
                snprintf(job->err.message, sizeof(job->err.message), "out of memory");
                job_destroy(job);
                return -1;
            }
            *job->grow = grown;
            *job->grow_cap = need;
        }
        job->out = *job->grow;
        row_bytes = (size_t)strip_w * c;
        job->strip_stride = row_bytes;
        job->col_skip = col_skip;
        direct = 1;
    }

    if (job->box_top > 0) {
        JDIMENSION done = jpeg_skip_scanlines(cinfo, job->box_top);
        if (done != job->box_top) {
            snprintf(job->err.message, sizeof(job->err.message),
                     "skipped %u of %u rows", (unsigned)done, (unsigned)job->box_top);
            job_destroy(job);
            return -1;
        }
    }

    const int batch = cinfo->rec_outbuf_height > 0 ? cinfo->rec_outbuf_height : 1;
    rows = (JSAMPROW *)malloc(sizeof(JSAMPROW) * (size_t)batch);
    if (!direct)
        scratch = (unsigned char *)malloc((size_t)strip_w * c * (size_t)batch);
    if (!rows || (!direct && !scratch)) {
        free(scratch);
        free(rows);
        snprintf(job->err.message, sizeof(job->err.message), "out of memory");
        job_destroy(job);
        return -1;
    }
    JDIMENSION y = 0;
    while (y < job->box_h) {
        JDIMENSION want = job->box_h - y;
        if (want > (JDIMENSION)batch) want = (JDIMENSION)batch;
        for (JDIMENSION i = 0; i < want; i++)
            rows[i] = direct ? job->out + (size_t)(y + i) * row_bytes
                             : scratch + (size_t)i * strip_w * c;
        JDIMENSION got = jpeg_read_scanlines(cinfo, rows, want);
        if (got == 0) {
            free(scratch);
            free(rows);
            snprintf(job->err.message, sizeof(job->err.message), "decoder returned no rows");
            job_destroy(job);
            return -1;
        }
        if (!direct) {
            for (JDIMENSION i = 0; i < got; i++)
                memcpy(job->out + (size_t)(y + i) * row_bytes,
                       scratch + (size_t)i * strip_w * c + (size_t)col_skip * c, row_bytes);
        }
        y += got;
    }
    free(scratch);
    free(rows);
    job_destroy(job); /* stop here: the rows below the box are never decoded */
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Python glue                                                               */

static void raise_job_error(job_t *job)
{
    if (job->bad_arg[0])
        PyErr_SetString(ArgError, job->bad_arg);
    else
        PyErr_Format(PyExc_ValueError, "corrupt JPEG data: %s",
                     job->err.message[0] ? job->err.message : "unknown libjpeg error");
}

static PyObject *py_header(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    job_t *job = (job_t *)calloc(1, sizeof(job_t));
    if (!job) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    job->data = (const unsigned char *)view.buf;
    job->size = (size_t)view.len;
    job->err.strict = 1;
    int rc;
    volatile long h = 0, w = 0, comps = 0;
    Py_BEGIN_ALLOW_THREADS
    if (setjmp(job->err.jump)) {
        rc = -1;
    } else {
        rc = job_start(job);
        if (rc == 0) {
            h = (long)job->cinfo.image_height;
            w = (long)job->cinfo.image_width;
            comps = (long)job->cinfo.num_components;
        }
    }
    job_destroy(job);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    PyObject *result = NULL;
    if (rc < 0)
        raise_job_error(job);
    else
        result = Py_BuildValue("(lll)", h, w, comps);
    free(job);
    return result;
}

static PyObject *py_decode(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    static char *kwlist[] = {"data", "out", "scale", "top", "left", "height", "width",
                             "channels", "fast", "strict", "scratch", NULL};
    Py_buffer in;
    PyObject *out_obj = Py_None;
    int scale = 1, channels = 0, fast = 0, strict = 1, scratch = 0;
    long top = 0, left = 0, height = 0, width = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*|O$illllippp", kwlist, &in, &out_obj,
                                     &scale, &top, &left, &height, &width, &channels, &fast,
                                     &strict, &scratch))
        return NULL;
    if (scale != 1 && scale != 2 && scale != 4 && scale != 8) {
        PyBuffer_Release(&in);
        return PyErr_Format(ArgError, "scale must be 1, 2, 4 or 8 (got %d)", scale);
    }
    if (channels != 0 && channels != 1 && channels != 3) {
        PyBuffer_Release(&in);
        return PyErr_Format(ArgError, "channels must be 1 or 3 (got %d)", channels);
    }
    job_t *job = (job_t *)calloc(1, sizeof(job_t));
    if (!job) {
        PyBuffer_Release(&in);
        return PyErr_NoMemory();
    }
    job->data = (const unsigned char *)in.buf;
    job->size = (size_t)in.len;
    job->scale = scale;
    job->channels = channels;
    job->fast = fast;
    job->err.strict = strict;
    job->top = top;
    job->left = left;
    job->height = height;
    job->width = width;

    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = job_plan(job);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        raise_job_error(job);
        goto fail;
    }

    /* The destination: the caller's buffer, checked, or a fresh bytearray. */
    const Py_ssize_t h = (Py_ssize_t)job->box_h, w = (Py_ssize_t)job->box_w;
    const Py_ssize_t c = (Py_ssize_t)job->out_c;
    const Py_ssize_t nbytes = h * w * c;
    PyObject *result_buf = NULL;
    Py_buffer out = {0};
    int have_out = 0;
    if (out_obj == Py_None) {
        result_buf = PyByteArray_FromStringAndSize(NULL, nbytes);
        if (!result_buf)
            goto fail;
        job->out = (unsigned char *)PyByteArray_AS_STRING(result_buf);
    } else {
        if (PyObject_GetBuffer(out_obj, &out, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) <
            0)
            goto fail;
        have_out = 1;
        /* scratch: a reused 1-D buffer, at least as long; the result is its start. */
        int at_least = scratch && out.ndim == 1;
        int ok = out.itemsize == 1 && (at_least ? out.len >= nbytes : out.len == nbytes) &&
                 (out.format == NULL || strcmp(out.format, "B") == 0);
        if (ok && out.ndim == 3)
            ok = out.shape[0] == h && out.shape[1] == w && out.shape[2] == c;
        else if (ok && out.ndim == 2)
            ok = c == 1 && out.shape[0] == h && out.shape[1] == w;
        else if (ok && out.ndim != 1)
            ok = 0;
        if (!ok) {
            if (scratch)
                PyErr_Format(ArgError,
                             "scratch must be a writable 1-D uint8 buffer of at least %zd bytes",
                             nbytes);
            else
                PyErr_Format(
                    ArgError,
                    "out must be a writable C-contiguous uint8 buffer of shape (%zd, %zd, %zd)", h,
                    w, c);
            PyBuffer_Release(&out);
            goto fail;
        }
        job->out = (unsigned char *)out.buf;
        Py_INCREF(out_obj);
        result_buf = out_obj;
    }

    Py_BEGIN_ALLOW_THREADS
    rc = job_run(job);
    Py_END_ALLOW_THREADS
    if (have_out)
        PyBuffer_Release(&out);
    if (rc < 0) {
        raise_job_error(job);
        Py_DECREF(result_buf);
        goto fail;
    }
    PyBuffer_Release(&in);
    free(job);
    return Py_BuildValue("(Nnnn)", result_buf, h, w, c);

fail:
    job_destroy(job);
    PyBuffer_Release(&in);
    free(job);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* C API (jpeg_api.h): the loader's chunk path decodes without Python objects.  */

static int decode_strip(const unsigned char *data, size_t size, int scale, long top, long left,
                        long height, long width, unsigned char **buf, size_t *cap,
                        pixpack_strip_t *out)
{
    if (scale != 1 && scale != 2 && scale != 4 && scale != 8)
        return -1;
    job_t *job = (job_t *)calloc(1, sizeof(job_t));
    if (!job)
        return -1;
    job->data = data;
    job->size = size;
    job->scale = scale;
    job->err.strict = 1;
    job->top = top;
    job->left = left;
    job->height = height;
    job->width = width;
    job->grow = buf;
    job->grow_cap = cap;
    int rc = job_plan(job);
    if (rc == 0)
        rc = job_run(job);
    if (rc == 0) {
        out->h = (int)job->box_h;
        out->w = (int)job->box_w;
        out->c = job->out_c;
        out->stride = job->strip_stride;
        out->col_skip = job->col_skip;
    }
    job_destroy(job);
    free(job);
    return rc;
}

static const pixpack_jpeg_api_t strip_api = {PIXPACK_JPEG_API_VERSION, decode_strip};

static PyMethodDef methods[] = {
    {"header", py_header, METH_O,
     "header(data) -> (height, width, components) of a JPEG, without decoding it."},
    {"decode", (PyCFunction)(void (*)(void))py_decode, METH_VARARGS | METH_KEYWORDS,
     "decode(data, out=None, *, scale=1, top=0, left=0, height=0, width=0, channels=0,\n"
     "       fast=False, strict=True) -> (buffer, h, w, c)\n\n"
     "Decode the full-resolution region at 1/scale (box rounded outward) without the GIL."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_jpeg",
    "Region-of-interest JPEG decoding at a reduced DCT scale (libjpeg-turbo).", -1, methods,
};

PyMODINIT_FUNC PyInit__jpeg(void)
{
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    ArgError = PyErr_NewExceptionWithDoc("pixpack._native._jpeg.ArgError",
                                         "A bad region, scale, channels or out buffer.",
                                         PyExc_ValueError, NULL);
    if (!ArgError || PyModule_AddObject(m, "ArgError", ArgError) < 0) {
        Py_XDECREF(ArgError);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(ArgError);
    PyObject *api = PyCapsule_New((void *)&strip_api, PIXPACK_JPEG_API_NAME, NULL);
    if (!api || PyModule_AddObject(m, "_strip_api", api) < 0) {
        Py_XDECREF(api);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "LIBJPEG_TURBO_VERSION_NUMBER", LIBJPEG_TURBO_VERSION_NUMBER);
    PyModule_AddIntConstant(m, "JPEG_LIB_VERSION", JPEG_LIB_VERSION);
    return m;
}
