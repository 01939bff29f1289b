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


def need_qemu() -> None:
    if os.environ.get("ROOTSTREAM_IN_VM") == "1":
        pytest.skip("already inside the test VM")
    if shutil.which("qemu-system-x86_64") is None and os.environ.get("CI") != "true":
        pytest.skip("QEMU is not installed (apt-get install qemu-system-x86), so the VM "
                    "that runs the kms and uinput tests cannot boot here")


# Run as root in the guest: give a copy of grep a file capability on the
# overlay (group and mode first: a chgrp clears capabilities), then run it as
# vmuser, whose groups must include video, and who must open the card.
HARNESS_CHECK = """
set -e
echo "in vm: $ROOTSTREAM_IN_VM, cwd: $(pwd)"
cp /usr/bin/grep /usr/local/bin/capgrep
chgrp video /usr/local/bin/capgrep && chmod 0750 /usr/local/bin/capgrep
setcap cap_sys_admin+ep /usr/local/bin/capgrep
setpriv --reuid=vmuser --regid=vmuser --init-groups sh -c '
    echo "groups: $(id -nG)"
    /usr/local/bin/capgrep CapEff /proc/self/status
    exec 3<>/dev/dri/card0 && echo "card opened"
    .venv/bin/python -c "import sys; print(sys.prefix)"'
exit 7
"""


@pytest.mark.timeout(600)
def test_the_vm_runs_a_command_as_a_video_user_with_file_capabilities():
    need_qemu()
    result = subprocess.run([sys.executable, str(VM), "run", "--timeout", "300", "--",
                             "sh", "-c", HARNESS_CHECK], cwd=REPO, capture_output=True,
                            text=True, timeout=900)
    out = result.stdout
    assert result.returncode == 7, result.stdout + result.stderr  # the command's own status
    assert f"in vm: 1, cwd: {REPO}" in out
    assert "groups: vmuser video" in out
    assert "CapEff:\t0000000000200000" in out  # CAP_SYS_ADMIN alone, from the file
    assert "card opened" in out
    assert f"\n{REPO / '.venv'}\n" in out  # vmuser runs the repo's venv


@pytest.mark.timeout(VM_TIMEOUT + 600)  # + the first run's cache build
def test_kms_and_uinput_tests_pass_on_a_real_kernel(capsys):
    need_qemu()
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
