"""The device tests on a real kernel: boot the test VM once, run them inside.

The VM (tests/vm/) is Debian's kernel with vkms and uinput, so the tests
marked ``kms`` or ``uinput`` run there against real drivers instead of
skipping.  The guest's pytest output streams to this terminal; this test fails
when any of them fails, when the VM does not boot, or when it times out.  Only
a machine where QEMU cannot be installed skips it, and with CI=true nothing
skips.  The first run builds the VM into ~/.cache/rootstream-vm (see README).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
VM = TESTS / "vm" / "vm.py"
MARKERS = "kms or uinput"
VM_TIMEOUT = 1500  # seconds for the guest's pytest: TCG runs Python 50-70x slower


def device_test_files() -> list[str]:
    """The test files that use the kms or uinput marker (found by reading them,
    so a new device test is never left out of the VM run)."""
    pattern = re.compile(r"pytest\.mark\.(kms|uinput)\b")
    return sorted(str(path.relative_to(REPO)) for path in TESTS.glob("test_*.py")
                  if path.name != Path(__file__).name and pattern.search(path.read_text()))


def test_device_test_files_are_found():
    files = device_test_files()
    assert "tests/test_kms_vkms.py" in files and "tests/test_uinput_evdev.py" in files


@pytest.mark.timeout(VM_TIMEOUT + 600)  # + the first run's cache build
def test_kms_and_uinput_tests_pass_on_a_real_kernel(capsys):
    if os.environ.get("ROOTSTREAM_IN_VM") == "1":
        pytest.skip("already inside the test VM")
    if shutil.which("qemu-system-x86_64") is None and os.environ.get("CI") != "true":
        pytest.skip("QEMU is not installed (apt-get install qemu-system-x86), so the VM "
                    "that runs the kms and uinput tests cannot boot here")
    command = [sys.executable, str(VM), "run", "--timeout", str(VM_TIMEOUT), "--",
               ".venv/bin/python", "-m", "pytest", "-m", MARKERS, "-p", "no:cacheprovider",
               "--color=no", "-v", "-rs", *device_test_files()]
    started = time.monotonic()
    lines: list[str] = []
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        try:
            with capsys.disabled():  # stream the guest's output live
                print(f"\n--- test VM: {' '.join(command[2:])}", flush=True)
                for line in proc.stdout:
                    lines.append(line)
                    print(f"vm| {line}", end="", flush=True)
        finally:
            if proc.poll() is None:
                proc.terminate()  # vm.py kills QEMU on its way out
            status = proc.wait()
    output = "".join(lines)
    assert status != 124, f"the VM run timed out after {time.monotonic() - started:.0f} s"
    assert status == 0, f"the tests in the VM failed (exit status {status}):\n{output[-4000:]}"
    assert re.search(r"\b\d+ passed\b", output), "no test ran inside the VM"
    skipped = re.findall(r"SKIPPED .*", output)
    assert not skipped, f"device tests skipped inside the VM: {skipped}"
