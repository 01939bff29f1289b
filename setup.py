"""Native parts of rootstream; everything else is declared in pyproject.toml.

setup.py exists only because C extensions and cffi build scripts are still
declared here in setuptools.
"""

import os

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HELPER = "rootstream-kms-helper"
HELPER_SOURCE = "rootstream/_native/kms_helper.c"
# The helper runs with CAP_SYS_ADMIN: every hardening the toolchain offers.
HELPER_CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-D_FORTIFY_SOURCE=2",
                 "-fstack-protector-strong", "-fstack-clash-protection", "-fPIE"]
HELPER_LDFLAGS = ["-pie", "-Wl,-z,relro,-z,now", "-Wl,-z,noexecstack"]
DRM_HEADERS = ("/usr/include/drm/drm_mode.h", "/usr/include/libdrm/drm_mode.h")


class BuildWithHelper(build_ext):
    """build_ext, then rootstream-kms-helper as an executable next to the extensions
    (package data: `rootstream doctor` prints the commands that install it)."""

    def run(self):
        super().run()
        if not any(os.path.exists(path) for path in DRM_HEADERS):
            print(f"warning: {HELPER} not built: no DRM headers "
                  "(apt-get install libdrm-dev); KMS capture will need root")
            return
        if self.inplace:
            out_dir = self.get_finalized_command("build_py").get_package_dir("rootstream._native")
        else:
            out_dir = os.path.join(self.build_lib, "rootstream", "_native")
        objects = self.compiler.compile([HELPER_SOURCE], output_dir=self.build_temp,
                                        extra_preargs=HELPER_CFLAGS)
        self.compiler.link_executable(objects, HELPER, output_dir=out_dir,
                                      extra_preargs=HELPER_LDFLAGS)

    def get_outputs(self):
        helper = os.path.join(self.build_lib, "rootstream", "_native", HELPER)
        return super().get_outputs() + ([helper] if os.path.exists(helper) else [])


def conversion(name: str, sources: list[str], header: str) -> Extension:
    """A pixel conversion extension (scalar, SSE2 and AVX2 paths) in rootstream/_native."""
    native = "rootstream/_native/"
    return Extension(
        f"rootstream._native.{name}", [f"{native}{source}.c" for source in sources],
        depends=[native + header, native + "simd_paths.h"],
        # Only PyInit_<name> is exported: internal calls skip the PLT and
        # cannot clash with another extension's symbols.  Python builds
        # extensions with -fwrapv; none of this C relies on signed
        # wrap-around (sizes are checked before they are multiplied), and
        # with it GCC kept _nv12's AVX2 loop's counters in a form that cost
        # 11 % of its time (Zen 3, source in cache).
        extra_compile_args=["-fvisibility=hidden", "-fno-wrapv"],
    )


setup(
    cmdclass={"build_ext": BuildWithHelper},
    # rootstream and every subpackage, plus the command line from cli/ under
    # its own import name (package-dir in pyproject.toml maps it).
    packages=find_packages(include=["rootstream", "rootstream.*"]) + ["rootstream_cli"],
    ext_modules=[
        Extension("rootstream._native._crc16", ["rootstream/_native/crc16.c"],
                  extra_compile_args=["-O3"]),
        conversion("_nv12", ["nv12_module", "nv12_pool", "nv12_scalar", "nv12_x86"], "nv12.h"),
        # The x11 presenter's yuv420p -> BGRX at equal size.
        conversion("_yuv2rgb", ["yuv2rgb_module", "yuv2rgb_scalar", "yuv2rgb_x86"],
                   "yuv2rgb.h"),
        # A frame's datagrams in one sendmmsg(2), GIL released (issue 15).
        Extension("rootstream._native._sendmany", ["rootstream/_native/sendmany.c"],
                  extra_compile_args=["-O2", "-fvisibility=hidden"]),
    ],
)
