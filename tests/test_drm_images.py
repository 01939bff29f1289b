"""The recorded reply images are exactly what make_images.c writes from the real headers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data" / "drm"


def test_recorded_images_match_the_generator(tmp_path):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: cannot rebuild the recorded images")
    if not Path("/usr/include/libdrm/drm_mode.h").exists():
        pytest.skip("libdrm headers missing: apt-get install libdrm-dev")
    binary = tmp_path / "make_images"
    subprocess.run(
        ["gcc", "-std=c11", "-Wall", "-Werror", "-I/usr/include/libdrm", "-o", str(binary),
         str(DATA / "make_images.c")],
        check=True, capture_output=True, timeout=120,
    )
    out = tmp_path / "card-hdmi"
    out.mkdir()
    subprocess.run([str(binary), str(out)], check=True, timeout=30)
    fresh = {p.name: p.read_bytes() for p in out.iterdir()}
    recorded = {p.name: p.read_bytes() for p in (DATA / "card-hdmi").iterdir()}
    assert sorted(fresh) == sorted(recorded)
    for name, data in fresh.items():
        assert recorded[name] == data, name
