"""Native parts of rootstream; everything else is declared in pyproject.toml.

setup.py exists only because C extensions and cffi build scripts are still
declared here in setuptools.
"""

from setuptools import Extension, setup

setup(
    packages=[
        "rootstream",
        "rootstream.protocol",
        "rootstream.capture",
        "rootstream.present",
        "rootstream.input",
        "rootstream.net",
        "rootstream.crypto",
        "rootstream.audio",
        "rootstream._native",
        "rootstream_cli",
    ],
    ext_modules=[
        Extension("rootstream._native._crc16", ["rootstream/_native/crc16.c"], extra_compile_args=["-O3"]),
    ],
)
