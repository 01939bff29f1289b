"""Native parts of rootstream; everything else is declared in pyproject.toml.

setup.py exists only because C extensions and cffi build scripts are still
declared here in setuptools.
"""

from setuptools import Extension, find_packages, setup

setup(
    # rootstream and every subpackage, plus the command line from cli/ under
    # its own import name (package-dir in pyproject.toml maps it).
    packages=find_packages(include=["rootstream", "rootstream.*"]) + ["rootstream_cli"],
    ext_modules=[
        Extension("rootstream._native._crc16", ["rootstream/_native/crc16.c"],
                  extra_compile_args=["-O3"]),
        Extension(
            "rootstream._native._nv12",
            [
                "rootstream/_native/nv12_module.c",
                "rootstream/_native/nv12_pool.c",
                "rootstream/_native/nv12_scalar.c",
                "rootstream/_native/nv12_x86.c",
            ],
            depends=["rootstream/_native/nv12.h"],
            # Only PyInit__nv12 is exported: internal calls skip the PLT and
            # cannot clash with another extension's symbols.  Python builds
            # extensions with -fwrapv; none of this C relies on signed
            # wrap-around (sizes are checked before they are multiplied), and
            # with it GCC kept the AVX2 loop's counters in a form that cost
            # 11 % of its time (Zen 3, source in cache).
            extra_compile_args=["-fvisibility=hidden", "-fno-wrapv"],
        ),
    ],
)
