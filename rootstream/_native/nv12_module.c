/* rootstream._native._nv12: the Python face of the conversion core.
 *
 * Argument checking happens here, with the GIL held; once every buffer size
 * and stride has been proven sufficient, the GIL is released for the whole
 * conversion and the rows are split across threads.  The kernels themselves
 * never check bounds, so nothing may reach them unchecked.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifdef __linux__
#include <sched.h>
#endif
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "nv12.h"
#include "simd_paths.h"

#define MAX_DIMENSION 32768
/* Below this many pixels threads=0 converts on the caller alone.  Measured
 * on a 2-vCPU VM (bench/bench_convert.py): back to back a second thread
 * halves the time from 640x360 up, but at a display's cadence, where the
 * helper must first be woken (40-460 us there), 960x540 lost about 10% with
 * two threads and 1280x720 gained about 15%. */
#define THREADING_MIN_PIXELS (1280 * 720)

/* ----------------------------------------------------------- coefficients */

/* Derived from the rule in nv12.h; tests/test_convert.py re-derives them.
 * Order: R, G, B (the tables below are re-ordered per pixel format). */
typedef struct matrix_table {
    const char *name;
    int32_t limited[3][3]; /* Y, U, V rows */
    int32_t full[3][3];
} matrix_table;

static const matrix_table MATRICES[] = {
    {"bt601",
     {{8414, 16520, 3208}, {-4857, -9535, 14392}, {14392, -12051, -2341}},
     {{9798, 19234, 3736}, {-5529, -10855, 16384}, {16384, -13720, -2664}}},
    {"bt709",
     {{5983, 20127, 2032}, {-3298, -11094, 14392}, {14392, -13072, -1320}},
     {{6966, 23436, 2366}, {-3754, -12630, 16384}, {16384, -14882, -1502}}},
};
#define N_MATRICES (sizeof(MATRICES) / sizeof(MATRICES[0]))

/* Byte position of R, G, B inside a pixel. */
typedef struct pixel_format {
    const char *name;
    int r, g, b;
} pixel_format;

static const pixel_format FORMATS[] = {
    {"BGRX", 2, 1, 0}, {"BGRA", 2, 1, 0}, {"RGBX", 0, 1, 2}, {"RGBA", 0, 1, 2},
};
#define N_FORMATS (sizeof(FORMATS) / sizeof(FORMATS[0]))

static const matrix_table *find_matrix(const char *name)
{
    for (size_t i = 0; i < N_MATRICES; i++)
        if (strcmp(MATRICES[i].name, name) == 0)
            return &MATRICES[i];
    PyErr_Format(PyExc_ValueError, "unknown matrix '%s'; known: bt601, bt709", name);
    return NULL;
}

static const pixel_format *find_format(const char *name)
{
    for (size_t i = 0; i < N_FORMATS; i++)
        if (strcmp(FORMATS[i].name, name) == 0)
            return &FORMATS[i];
    PyErr_Format(PyExc_ValueError, "unknown pixel_format '%s'; known: BGRX, BGRA, RGBX, RGBA",
                 name);
    return NULL;
}

static void build_coeffs(const matrix_table *m, int full_range, const pixel_format *f,
                         nv12_coeffs *k)
{
    const int32_t(*rgb)[3] = full_range ? m->full : m->limited;
    int32_t *rows[3] = {k->y, k->u, k->v};

    for (int i = 0; i < 3; i++) {
        rows[i][f->r] = rgb[i][0];
        rows[i][f->g] = rgb[i][1];
        rows[i][f->b] = rgb[i][2];
    }
    k->y_bias = (full_range ? 0 : 16 << NV12_SHIFT) + (1 << (NV12_SHIFT - 1));
    k->c_bias = (128 << (NV12_SHIFT + 2)) + (1 << (NV12_SHIFT + 1));
}

/* ------------------------------------------------------------------ paths */

/* The kernels in the order of simd_paths.h's names, and how many this CPU runs. */
#ifdef NV12_HAVE_X86
static const nv12_rows_fn ROWS[SIMD_PATH_COUNT] = {nv12_rows_scalar, nv12_rows_sse2,
                                                   nv12_rows_avx2};
#define USABLE_PATHS() (nv12_cpu_has_avx2() ? 3 : 2)
#else
static const nv12_rows_fn ROWS[1] = {nv12_rows_scalar};
#define USABLE_PATHS() 1
#endif

/* ---------------------------------------------------------------- threads */

/* The CPUs this process may run on: a container or `taskset` can allow
 * fewer than the machine has online. */
static long usable_cpus(void)
{
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
#endif
    return sysconf(_SC_NPROCESSORS_ONLN);
}

static int auto_threads(const nv12_job *job)
{
    long cpus = usable_cpus();
    if ((long)job->width * job->height < THREADING_MIN_PIXELS || cpus < 2)
        return 1;
    return cpus > 8 ? 8 : (int)cpus;
}

/* ---------------------------------------------------------------- buffers */

typedef struct plane {
    const char *name;
    Py_buffer view;
    int held;
} plane;

static void release_planes(plane *planes, int n)
{
    for (int i = 0; i < n; i++)
        if (planes[i].held)
            PyBuffer_Release(&planes[i].view);
}

static int get_plane(PyObject *obj, plane *p, const char *name, int writable)
{
    p->name = name;
    if (PyObject_GetBuffer(obj, &p->view, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        PyErr_Format(PyExc_TypeError, "%s must be a %scontiguous buffer, got %.80s", name,
                     writable ? "writable " : "", Py_TYPE(obj)->tp_name);
        PyObject *new_type, *new_value, *new_tb;
        PyErr_Fetch(&new_type, &new_value, &new_tb);
        PyErr_NormalizeException(&new_type, &new_value, &new_tb);
        if (value) {
            PyException_SetContext(new_value, Py_NewRef(value));
            PyException_SetCause(new_value, value); /* steals value */
        }
        PyErr_Restore(new_type, new_value, new_tb);
        Py_XDECREF(type);
        Py_XDECREF(tb);
        return -1;
    }
    p->held = 1;
    return 0;
}

/* A plane of `rows` rows of `row_bytes` bytes, `stride` apart, must fit. */
static int check_plane(const plane *p, Py_ssize_t stride, Py_ssize_t row_bytes, int rows,
                       const char *stride_name)
{
    if (stride < row_bytes) {
        PyErr_Format(PyExc_ValueError, "%s must be at least %zd bytes, got %zd", stride_name,
                     row_bytes, stride);
        return -1;
    }
    /* stride * (rows - 1) + row_bytes, refusing anything that would overflow */
    if (rows > 1 && stride > (PY_SSIZE_T_MAX - row_bytes) / (rows - 1)) {
        PyErr_Format(PyExc_ValueError, "%s of %zd bytes is too large", stride_name, stride);
        return -1;
    }
    Py_ssize_t need = stride * (rows - 1) + row_bytes;
    if (p->view.len < need) {
        PyErr_Format(PyExc_ValueError,
                     "%s buffer is too small: %d rows of %zd bytes at a stride of %zd need "
                     "%zd bytes, got %zd",
                     p->name, rows, row_bytes, stride, need, p->view.len);
        return -1;
    }
    return 0;
}

static int check_disjoint(const plane *planes, int n)
{
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++) {
            const char *a = planes[i].view.buf, *b = planes[j].view.buf;
            if (a < b + planes[j].view.len && b < a + planes[i].view.len) {
                PyErr_Format(PyExc_ValueError, "%s and %s buffers overlap", planes[i].name,
                             planes[j].name);
                return -1;
            }
        }
    }
    return 0;
}

/* --------------------------------------------------------------- convert */

typedef struct options {
    const char *pixel_format, *matrix, *path;
    int full_range, threads;
} options;

/* Shared by nv12() and i420(): n_out is 2 (Y, UV) or 3 (Y, U, V). */
static PyObject *convert(PyObject *src, int width, int height, Py_ssize_t src_stride,
                         PyObject **outs, Py_ssize_t *strides, int n_out, const options *o)
{
    static const char *NV12_NAMES[] = {"y", "uv"}, *I420_NAMES[] = {"y", "u", "v"};
    static const char *NV12_STRIDES[] = {"y_stride", "uv_stride"};
    static const char *I420_STRIDES[] = {"y_stride", "u_stride", "v_stride"};
    const char **names = n_out == 2 ? NV12_NAMES : I420_NAMES;
    const char **stride_names = n_out == 2 ? NV12_STRIDES : I420_STRIDES;
    plane planes[4] = {{0}};
    nv12_job job;
    const matrix_table *matrix;
    const pixel_format *format;
    int path;
    int threads = o->threads;

    if (width < 1 || width > MAX_DIMENSION || height < 1 || height > MAX_DIMENSION)
        return PyErr_Format(PyExc_ValueError,
                            "width and height must be between 1 and %d, got %dx%d",
                            MAX_DIMENSION, width, height);
    if (!(format = find_format(o->pixel_format)) || !(matrix = find_matrix(o->matrix))
        || (path = simd_path_find(o->path, USABLE_PATHS())) < 0)
        return NULL;
    if (threads < 0 || threads > NV12_MAX_THREADS)
        return PyErr_Format(PyExc_ValueError, "threads must be between 0 (auto) and %d, got %d",
                            NV12_MAX_THREADS, threads);

    int chroma_w = (width + 1) / 2, chroma_h = (height + 1) / 2;
    Py_ssize_t row_bytes[4] = {(Py_ssize_t)width * 4, width,
                               n_out == 2 ? (Py_ssize_t)chroma_w * 2 : chroma_w, chroma_w};
    int rows[4] = {height, height, chroma_h, chroma_h};

    if (get_plane(src, &planes[0], "src", 0) < 0
        || check_plane(&planes[0], src_stride, row_bytes[0], rows[0], "src_stride") < 0)
        goto fail;
    for (int i = 0; i < n_out; i++) {
        if (get_plane(outs[i], &planes[i + 1], names[i], 1) < 0
            || check_plane(&planes[i + 1], strides[i], row_bytes[i + 1], rows[i + 1],
                           stride_names[i]) < 0)
            goto fail;
    }
    if (check_disjoint(planes, n_out + 1) < 0)
        goto fail;

    job.src = planes[0].view.buf;
    job.src_stride = (size_t)src_stride;
    job.y = planes[1].view.buf;
    job.y_stride = (size_t)strides[0];
    job.u = planes[2].view.buf;
    job.u_stride = (size_t)strides[1];
    job.v = n_out == 3 ? planes[3].view.buf : NULL;
    job.v_stride = n_out == 3 ? (size_t)strides[2] : 0;
    job.width = width;
    job.height = height;
    build_coeffs(matrix, o->full_range, format, &job.k);
    if (threads == 0)
        threads = auto_threads(&job);

    Py_BEGIN_ALLOW_THREADS
    nv12_run(&job, ROWS[path], threads);
    Py_END_ALLOW_THREADS

    release_planes(planes, n_out + 1);
    Py_RETURN_NONE;

fail:
    release_planes(planes, n_out + 1);
    return NULL;
}

static PyObject *py_nv12(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"src", "width", "height", "src_stride", "y", "y_stride", "uv",
                             "uv_stride", "pixel_format", "matrix", "full_range", "path",
                             "threads", NULL};
    PyObject *src, *outs[2];
    int width, height;
    Py_ssize_t src_stride, strides[2];
    options o = {"BGRX", "bt709", "auto", 0, 1};

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OiinOnOn|$sspsi:nv12", kwlist, &src, &width,
                                     &height, &src_stride, &outs[0], &strides[0], &outs[1],
                                     &strides[1], &o.pixel_format, &o.matrix, &o.full_range,
                                     &o.path, &o.threads))
        return NULL;
    return convert(src, width, height, src_stride, outs, strides, 2, &o);
}

static PyObject *py_i420(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"src", "width", "height", "src_stride", "y", "y_stride", "u",
                             "u_stride", "v", "v_stride", "pixel_format", "matrix",
                             "full_range", "path", "threads", NULL};
    PyObject *src, *outs[3];
    int width, height;
    Py_ssize_t src_stride, strides[3];
    options o = {"BGRX", "bt709", "auto", 0, 1};

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OiinOnOnOn|$sspsi:i420", kwlist, &src,
                                     &width, &height, &src_stride, &outs[0], &strides[0],
                                     &outs[1], &strides[1], &outs[2], &strides[2],
                                     &o.pixel_format, &o.matrix, &o.full_range, &o.path,
                                     &o.threads))
        return NULL;
    return convert(src, width, height, src_stride, outs, strides, 3, &o);
}

static PyObject *py_auto_path(PyObject *self, PyObject *unused)
{
    return PyUnicode_FromString(SIMD_PATH_NAMES[USABLE_PATHS() - 1]);
}

static PyObject *py_paths(PyObject *self, PyObject *unused)
{
    return simd_path_list(USABLE_PATHS());
}

static PyObject *py_coefficients(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"matrix", "full_range", NULL};
    const char *name;
    int full_range;
    const matrix_table *m;
    nv12_coeffs k;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "sp:coefficients", kwlist, &name, &full_range)
        || !(m = find_matrix(name)))
        return NULL;
    build_coeffs(m, full_range, &FORMATS[2] /* RGBX: byte order R, G, B */, &k);
    return Py_BuildValue("{s(iii)s(iii)s(iii)sisisi}", "y", k.y[0], k.y[1], k.y[2], "u", k.u[0],
                         k.u[1], k.u[2], "v", k.v[0], k.v[1], k.v[2], "y_bias", k.y_bias,
                         "c_bias", k.c_bias, "shift", NV12_SHIFT);
}

static PyMethodDef METHODS[] = {
    {"nv12", (PyCFunction)(void (*)(void))py_nv12, METH_VARARGS | METH_KEYWORDS,
     "nv12(src, width, height, src_stride, y, y_stride, uv, uv_stride, *,\n"
     "     pixel_format='BGRX', matrix='bt709', full_range=False, path='auto', threads=1)\n"
     "--\n\n"
     "Convert packed 32-bit pixels into caller-given NV12 planes (writable buffers).\n"
     "threads=0 picks a count from the frame size and the CPUs online."},
    {"i420", (PyCFunction)(void (*)(void))py_i420, METH_VARARGS | METH_KEYWORDS,
     "i420(src, width, height, src_stride, y, y_stride, u, u_stride, v, v_stride, *,\n"
     "     pixel_format='BGRX', matrix='bt709', full_range=False, path='auto', threads=1)\n"
     "--\n\n"
     "Convert packed 32-bit pixels into caller-given I420 planes (writable buffers)."},
    {"auto_path", py_auto_path, METH_NOARGS, "The path 'auto' chooses on this CPU."},
    {"paths", py_paths, METH_NOARGS, "The paths this CPU can run, slowest first."},
    {"coefficients", (PyCFunction)(void (*)(void))py_coefficients, METH_VARARGS | METH_KEYWORDS,
     "coefficients(matrix, full_range)\n--\n\n"
     "The fixed-point table in R, G, B order, the biases and the shift."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT,
    "rootstream._native._nv12",
    "Packed 32-bit RGB (BGRX, BGRA, RGBX, RGBA) to NV12 and I420, BT.601/BT.709,\n"
    "limited or full range, bit-exact across its scalar, SSE2 and AVX2 paths.\n\n"
    "Integer formula (S = 15; coefficients in coefficients(); Rs, Gs, Bs are the\n"
    "sums of a 2x2 block, the missing column/row repeating the last on odd sizes):\n"
    "  Y = clamp8((yR*R + yG*G + yB*B + y_bias) >> S)\n"
    "      y_bias = (16 << S if limited else 0) + (1 << (S - 1))\n"
    "  U = clamp8((uR*Rs + uG*Gs + uB*Bs + c_bias) >> (S + 2)), V likewise\n"
    "      c_bias = (128 << (S + 2)) + (1 << (S + 1))\n"
    "See nv12.h for how the coefficients are derived.",
    -1,
    METHODS,
};

PyMODINIT_FUNC PyInit__nv12(void)
{
    return PyModule_Create(&MODULE);
}
