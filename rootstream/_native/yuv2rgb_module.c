/* rootstream._native._yuv2rgb: the Python face of yuv2rgb.h.
 *
 * Every size and stride is checked here against the buffers, with the GIL
 * held; the kernels never check bounds.  The conversion itself runs with the
 * GIL released (the decode thread keeps working meanwhile).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#include "simd_paths.h"
#include "yuv2rgb.h"

#define MAX_DIMENSION 32768

/* The kernels in the order of simd_paths.h's names, and how many this CPU runs. */
#ifdef YUV2RGB_HAVE_X86
static const yuv2rgb_rows_fn ROWS[SIMD_PATH_COUNT] = {yuv2rgb_rows_scalar, yuv2rgb_rows_sse2,
                                                      yuv2rgb_rows_avx2};
#define USABLE_PATHS() (yuv2rgb_cpu_has_avx2() ? 3 : 2)
#else
static const yuv2rgb_rows_fn ROWS[1] = {yuv2rgb_rows_scalar};
#define USABLE_PATHS() 1
#endif

/* Is a plane of `rows` rows of `row_bytes` bytes, `stride` apart from
 * `offset` on, inside a buffer of `length` bytes?  Sets ValueError if not. */
static int plane_fits(const char *name, Py_ssize_t length, Py_ssize_t offset, Py_ssize_t stride,
                      int rows, Py_ssize_t row_bytes)
{
    if (stride < row_bytes) {
        PyErr_Format(PyExc_ValueError, "%s stride %zd is less than its row of %zd bytes", name,
                     stride, row_bytes);
        return 0;
    }
    /* stride and rows are bounded above, so this product cannot overflow. */
    if (offset < 0 || stride > PY_SSIZE_T_MAX / MAX_DIMENSION / 2
        || length - offset < (Py_ssize_t)(rows - 1) * stride + row_bytes) {
        PyErr_Format(PyExc_ValueError, "%s buffer of %zd bytes is too small", name, length);
        return 0;
    }
    return 1;
}

static PyObject *py_yuv420_to_rgb32(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"y", "y_stride", "u", "u_stride", "v", "v_stride", "width",
                             "height", "dst", "dst_stride", "dst_offset", "pixel_format",
                             "path", NULL};
    PyObject *objects[4];
    Py_ssize_t strides[4], dst_offset = 0;
    const char *pixel_format = "BGRX", *path_name = "auto";
    int width, height;
    Py_buffer views[4];
    int held = 0;
    PyObject *result = NULL;
    (void)self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnOnOniiOn|$nss:yuv420_to_rgb32", kwlist,
                                     &objects[0], &strides[0], &objects[1], &strides[1],
                                     &objects[2], &strides[2], &width, &height, &objects[3],
                                     &strides[3], &dst_offset, &pixel_format, &path_name))
        return NULL;
    if (width < 1 || height < 1 || width > MAX_DIMENSION || height > MAX_DIMENSION)
        return PyErr_Format(PyExc_ValueError, "size %dx%d is outside 1..%d", width, height,
                            MAX_DIMENSION);
    int bgrx = strcmp(pixel_format, "BGRX") == 0;
    if (!bgrx && strcmp(pixel_format, "RGBX") != 0)
        return PyErr_Format(PyExc_ValueError, "unknown pixel_format '%s'; known: BGRX, RGBX",
                            pixel_format);
    int path = simd_path_find(path_name, USABLE_PATHS());
    if (path < 0)
        return NULL;

    for (; held < 4; held++) {
        int flags = held == 3 ? PyBUF_SIMPLE | PyBUF_WRITABLE : PyBUF_SIMPLE;
        if (PyObject_GetBuffer(objects[held], &views[held], flags) < 0)
            goto done;
    }
    int chroma_w = (width + 1) / 2, chroma_h = (height + 1) / 2;
    if (!plane_fits("y", views[0].len, 0, strides[0], height, width)
        || !plane_fits("u", views[1].len, 0, strides[1], chroma_h, chroma_w)
        || !plane_fits("v", views[2].len, 0, strides[2], chroma_h, chroma_w)
        || !plane_fits("dst", views[3].len, dst_offset, strides[3], height,
                       (Py_ssize_t)width * 4))
        goto done;

    yuv2rgb_job job = {
        .y = views[0].buf, .u = views[1].buf, .v = views[2].buf,
        .y_stride = (size_t)strides[0], .u_stride = (size_t)strides[1],
        .v_stride = (size_t)strides[2],
        .dst = (uint8_t *)views[3].buf + dst_offset, .dst_stride = (size_t)strides[3],
        .width = width, .height = height, .r_at = bgrx ? 2 : 0, .b_at = bgrx ? 0 : 2,
    };
    Py_BEGIN_ALLOW_THREADS
    ROWS[path](&job, 0, height);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    while (held-- > 0)
        PyBuffer_Release(&views[held]);
    return result;
}

static PyObject *py_auto_path(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return PyUnicode_FromString(SIMD_PATH_NAMES[USABLE_PATHS() - 1]);
}

static PyObject *py_paths(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return simd_path_list(USABLE_PATHS());
}

static PyMethodDef METHODS[] = {
    {"yuv420_to_rgb32", (PyCFunction)(void (*)(void))py_yuv420_to_rgb32,
     METH_VARARGS | METH_KEYWORDS,
     "yuv420_to_rgb32(y, y_stride, u, u_stride, v, v_stride, width, height, dst, dst_stride,\n"
     "                *, dst_offset=0, pixel_format='BGRX', path='auto')\n"
     "BT.709 limited-range yuv420p -> full-range 32-bit pixels written into dst\n"
     "(writable, contiguous) from dst_offset on, rows dst_stride bytes apart."},
    {"auto_path", py_auto_path, METH_NOARGS, "The path 'auto' chooses on this CPU."},
    {"paths", py_paths, METH_NOARGS, "The paths this CPU can run, slowest first."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_yuv2rgb",
    "yuv420p (BT.709, limited) -> packed 32-bit RGB (full), bit-exact across its scalar,\n"
    "SSE2 and AVX2 paths (the formula: rootstream/_native/yuv2rgb.h).",
    -1, METHODS, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__yuv2rgb(void)
{
    return PyModule_Create(&MODULE);
}
