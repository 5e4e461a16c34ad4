/*
 * The region decoder of pixpack._native._jpeg as a C function, for the loader's chunk
 * path in pixpack._native._resample: a chunk of JPEG samples is decoded and resized in
 * one GIL release. The two modules stay separate extensions (only _jpeg links
 * libjpeg), so the function travels in a capsule, the way NumPy exports its C API.
 */
#ifndef PIXPACK_JPEG_API_H
#define PIXPACK_JPEG_API_H

#include <stddef.h>

#define PIXPACK_JPEG_API_NAME "pixpack._native._jpeg._strip_api"
#define PIXPACK_JPEG_API_VERSION 1

/* A decoded box as rows of the decoder's strip: pixel (y, x) of the box is at
 * buf + y * stride + (col_skip + x) * c. Decoding into the strip as it is saves
 * copying each row out of it. */
typedef struct {
    int h, w, c;
    size_t stride;
    size_t col_skip;
} pixpack_strip_t;

typedef struct {
    int version;
    /* Decode region (top, left, height, width) (full-resolution pixels) of a JPEG at
     * 1/scale (the box rounded outward, as decode() does), grey as 1 channel and colour
     * as RGB, strictly (corrupt data fails), into *buf, which it grows with realloc
     * (*cap: its size). Returns 0, or -1 (corrupt data, a region outside the image,
     * no memory) with *buf still the caller's to free. Needs no GIL. */
    int (*decode_strip)(const unsigned char *data, size_t size, int scale, long top,
                        long left, long height, long width, unsigned char **buf,
                        size_t *cap, pixpack_strip_t *out);
} pixpack_jpeg_api_t;

#endif
