"""The conversion core compiled on its own: under AddressSanitizer and
ThreadSanitizer, and in the portable (no SIMD) configuration.

The Python tests see writes outside the planes (guard bytes) but not reads
past the source; here every buffer is malloc'ed to the exact minimum the
extension's checks allow, so ASan stops at the first byte read or written
beyond it.  TSan watches the helper pool while three threads convert at once.
The portable build is what non-x86 machines get; NV12_NO_SIMD builds it here.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from test_convert_reference import reference_nv12

NATIVE = Path(__file__).resolve().parent.parent / "rootstream" / "_native"
X86 = platform.machine() in ("x86_64", "AMD64")

# Every path on every width 1..133 and height 1..7 (all SIMD block remainders,
# odd edges), NV12 and I420, against the scalar path; buffers exactly minimal.
BOUNDS = r"""
#include "nv12.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const nv12_coeffs K = {{3208, 16520, 8414}, {14392, -9535, -4857},
                              {-2341, -12051, 14392}, (16 << 15) + (1 << 14),
                              (128 << 17) + (1 << 16)};

int main(void)
{
#ifdef NV12_HAVE_X86
    nv12_rows_fn paths[] = {nv12_rows_scalar, nv12_rows_sse2, nv12_rows_avx2};
    int n_paths = nv12_cpu_has_avx2() ? 3 : 2;
#else
    nv12_rows_fn paths[] = {nv12_rows_scalar};
    int n_paths = 1;
#endif
    long compared = 0, differ = 0;
    for (int w = 1; w <= 133; w++)
        for (int h = 1; h <= 7; h++)
            for (int i420 = 0; i420 < 2; i420++) {
                int cw = (w + 1) / 2, ch = (h + 1) / 2;
                size_t ss = (size_t)w * 4 + w % 3, ys = w, us = i420 ? cw : 2 * cw;
                size_t sn = ss * (h - 1) + w * 4, yn = ys * (h - 1) + w;
                size_t un = us * (ch - 1) + us, vn = us * (ch - 1) + cw;
                uint8_t *src = malloc(sn), *ref_y = NULL, *ref_u = NULL, *ref_v = NULL;
                for (size_t k = 0; k < sn; k++)
                    src[k] = (uint8_t)(k * 131 + 7);
                for (int p = 0; p < n_paths; p++) {
                    uint8_t *y = malloc(yn), *u = malloc(un), *v = i420 ? malloc(vn) : NULL;
                    nv12_job job = {src, ss, y, ys, u, us, v, us, w, h, K};
                    paths[p](&job, 0, ch);
                    if (p == 0) {
                        ref_y = y, ref_u = u, ref_v = v;
                        continue;
                    }
                    compared++;
                    if (memcmp(y, ref_y, yn) || memcmp(u, ref_u, un) || (v && memcmp(v, ref_v, vn)))
                        differ++;
                    free(y), free(u), free(v);
                }
                free(ref_y), free(ref_u), free(ref_v), free(src);
            }
    printf("compared=%ld differ=%ld\n", compared, differ);
    return differ != 0;
}
"""

# Three threads converting at once through nv12_run() with 2..5 threads each:
# one holds the pool, the others start their own; every result is checked.
STRESS = r"""
#include "nv12.h"
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#define W 97
#define H 61

static uint8_t src[H * W * 4], ref_y[H * W], ref_uv[(H + 1) / 2 * (W + 1)];
static const nv12_coeffs K = {{3208, 16520, 8414}, {14392, -9535, -4857},
                              {-2341, -12051, 14392}, (16 << 15) + (1 << 14),
                              (128 << 17) + (1 << 16)};

static nv12_job job_for(uint8_t *y, uint8_t *uv)
{
    nv12_job job = {src, W * 4, y, W, uv, W + 1, NULL, 0, W, H, K};
    return job;
}

static void *converter(void *arg)
{
    long id = (long)arg, differ = 0;
    for (int i = 0; i < 200; i++) {
        uint8_t y[sizeof ref_y], uv[sizeof ref_uv];
        nv12_job job = job_for(y, uv);
        nv12_run(&job, nv12_rows_scalar, 2 + (int)((i + id) % 4));
        differ += memcmp(y, ref_y, sizeof y) || memcmp(uv, ref_uv, sizeof uv);
    }
    return (void *)differ;
}

int main(void)
{
    for (size_t k = 0; k < sizeof src; k++)
        src[k] = (uint8_t)(k * 31 + 7);
    nv12_job job = job_for(ref_y, ref_uv);
    nv12_rows_scalar(&job, 0, (H + 1) / 2);
    pthread_t threads[3];
    long differ = 0;
    for (long i = 0; i < 3; i++)
        pthread_create(&threads[i], NULL, converter, (void *)i);
    for (int i = 0; i < 3; i++) {
        void *result;
        pthread_join(threads[i], &result);
        differ += (long)result;
    }
    printf("differ=%ld\n", differ);
    return differ != 0;
}
"""


def compiler() -> str:
    found = shutil.which("cc") or shutil.which("gcc")
    if found is None:
        pytest.skip("no C compiler (apt-get install gcc)")
    return found


def build(tmp_path: Path, name: str, source: str, sanitize: str, files: list[str]) -> Path:
    cc = compiler()
    probe = tmp_path / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    if subprocess.run([cc, f"-fsanitize={sanitize}", str(probe), "-o", str(tmp_path / "probe")],
                      capture_output=True).returncode != 0:
        pytest.skip(f"{cc} has no -fsanitize={sanitize} runtime")
    main = tmp_path / f"{name}.c"
    main.write_text(source)
    binary = tmp_path / name
    result = subprocess.run(
        [cc, "-O1", "-g", f"-fsanitize={sanitize}", "-fno-sanitize-recover=all",
         f"-I{NATIVE}", str(main), *(str(NATIVE / f) for f in files), "-o", str(binary),
         "-lpthread"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return binary


def run(binary: Path) -> str:
    result = subprocess.run([str(binary)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_kernels_stay_inside_minimal_buffers_under_asan(tmp_path):
    binary = build(tmp_path, "bounds", BOUNDS, "address,undefined",
                   ["nv12_scalar.c", "nv12_x86.c"])
    output = run(binary)
    assert "differ=0" in output
    if X86:
        assert "compared=0" not in output


def test_helper_pool_is_race_free_under_tsan(tmp_path):
    binary = build(tmp_path, "stress", STRESS, "thread",
                   ["nv12_pool.c", "nv12_scalar.c", "nv12_x86.c"])
    assert "differ=0" in run(binary)


def build_portable(tmp_path: Path, module: str, files: list[str], define: str):
    """Extension ``module`` compiled from ``files`` with ``define`` (its no-SIMD
    switch) and -Werror, as a non-x86 machine builds it, and imported."""
    cc = compiler()
    library = tmp_path / f"{module}{sysconfig.get_config_var('EXT_SUFFIX')}"
    result = subprocess.run(
        [cc, "-shared", "-fPIC", "-O1", "-Wall", "-Werror", f"-D{define}",
         f"-I{sysconfig.get_paths()['include']}", f"-I{NATIVE}", *(str(NATIVE / f) for f in files),
         "-o", str(library), "-lpthread"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    spec = importlib.util.spec_from_file_location(module, library)
    portable = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(portable)
    return portable


def test_portable_build_without_simd(tmp_path):
    """The extension as a non-x86 machine builds it: the scalar path only."""
    portable = build_portable(tmp_path, "_nv12", ["nv12_module.c", "nv12_pool.c",
                                                  "nv12_scalar.c", "nv12_x86.c"], "NV12_NO_SIMD")
    assert portable.paths() == ["scalar"] and portable.auto_path() == "scalar"
    src = np.random.default_rng(4).integers(0, 256, (45, 37 * 4), np.uint8)
    y, uv = np.zeros((45, 37), np.uint8), np.zeros((23, 38), np.uint8)
    portable.nv12(src, 37, 45, 37 * 4, y, 37, uv, 38, threads=3)
    want_y, want_uv = reference_nv12(src.reshape(45, 37, 4))
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(uv, want_uv)
    with pytest.raises(ValueError, match="path 'avx2' is not available on this CPU"):
        portable.nv12(src, 37, 45, 37 * 4, y, 37, uv, 38, path="avx2")
