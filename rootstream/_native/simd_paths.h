/* The paths of a conversion module (scalar, SSE2, AVX2), which of them this
 * build and CPU run, and their Python faces: shared by _nv12 and _yuv2rgb.
 *
 * A module keeps its kernels in an array in the order of SIMD_PATH_NAMES
 * and says how many of them, from the first, this CPU runs: 1 in a build
 * without x86 SIMD, 2 on an x86 CPU without AVX2, 3 with it.  Include after
 * Python.h.
 */
#ifndef ROOTSTREAM_SIMD_PATHS_H
#define ROOTSTREAM_SIMD_PATHS_H

#include <string.h>

#define SIMD_PATH_COUNT 3
static const char *const SIMD_PATH_NAMES[SIMD_PATH_COUNT] = {"scalar", "sse2", "avx2"};

/* The index of path `name` ("auto": the fastest of the `usable`), or -1 with
 * ValueError set. */
static int simd_path_find(const char *name, int usable)
{
    if (strcmp(name, "auto") == 0)
        return usable - 1;
    for (int i = 0; i < SIMD_PATH_COUNT; i++) {
        if (strcmp(SIMD_PATH_NAMES[i], name) != 0)
            continue;
        if (i < usable)
            return i;
        PyErr_Format(PyExc_ValueError, "path '%s' is not available on this CPU", name);
        return -1;
    }
    PyErr_Format(PyExc_ValueError, "unknown path '%s'; known: auto, scalar, sse2, avx2", name);
    return -1;
}

/* The names of the `usable` paths, slowest first, as a new list. */
static PyObject *simd_path_list(int usable)
{
    PyObject *result = PyList_New(0);
    for (int i = 0; result && i < usable; i++) {
        PyObject *name = PyUnicode_FromString(SIMD_PATH_NAMES[i]);
        if (!name || PyList_Append(result, name) < 0)
            Py_CLEAR(result);
        Py_XDECREF(name);
    }
    return result;
}

#endif
