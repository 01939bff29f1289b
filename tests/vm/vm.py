#!/usr/bin/env python3
"""Boot the rootstream test VM once and run one command inside it.

    python3 tests/vm/vm.py build                 # build the cache (also done lazily)
    python3 tests/vm/vm.py run [--user vmuser] [--timeout S] [--env K=V] -- CMD...

The guest is Debian's own kernel with vkms (enable_cursor=1,
enable_writeback=1) and uinput loaded; its / is this machine's / read-only
under a tmpfs overlay, so the repo and its .venv are at the same paths.  The
command runs in the repo root with ROOTSTREAM_IN_VM=1, as root or as the
given user (``vmuser`` is a non-root user in groups video and input); its
output streams here and its exit status is this program's.  A guest that does
not come up within --boot-timeout, or a command that outlives --timeout, ends
the VM and fails (exit status 124), never hangs.

Files the command writes land in the guest's tmpfs overlay and vanish with
it.  File capabilities work there: ``chgrp video F; chmod 0750 F`` first,
then ``setcap cap_sys_admin+ep F`` (a chown or chgrp clears a file's
capabilities, as on any Linux).

KVM is used when it really runs a guest (probed once per machine, with a
timeout: a nested paravirtual /dev/kvm can hang a stock guest), else TCG.
ROOTSTREAM_VM_ACCEL=kvm|tcg overrides the probe.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build  # noqa: E402  (a sibling module of this script)

REPO = Path(__file__).resolve().parents[2]
READY = "rootstream-vm: ready"
FAILED = "rootstream-vm: FAILED"
SYSRQ_NOISE = "sysrq: Resetting"  # the kernel's note as init ends the VM
TIMEOUT_STATUS = 124
PR_SET_PDEATHSIG = 1
KVM_PROBE_TIMEOUT = 20.0  # a working KVM boots to init in about a second
ENV_PASSED = ("CI", "TERM", "PYTEST_ADDOPTS", "COLUMNS")


class VmError(RuntimeError):
    pass


def _die_with_parent() -> None:
    """Runs in the QEMU child: the kernel kills it if this process dies first
    (SIGKILL, a killed test run), so no guest outlives its harness."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def qemu_binary() -> str:
    path = shutil.which("qemu-system-x86_64")
    if path is None:
        raise VmError("qemu-system-x86_64 is missing (apt-get install qemu-system-x86)")
    return path


def qemu_command(parts: Path, job_dir: Path, accel: str, memory_mb: int = 2048) -> list[str]:
    if accel == "kvm":
        accel_args = ["-accel", "kvm", "-cpu", "host"]
    else:
        accel_args = ["-accel", "tcg,thread=multi", "-cpu", "max"]
    return [
        qemu_binary(), "-M", "pc", *accel_args, "-m", str(memory_mb),
        "-smp", str(min(2, os.cpu_count() or 1)),
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-serial", "stdio",
        "-kernel", str(parts / "vmlinux"), "-initrd", str(parts / "initramfs.gz"),
        "-append", "console=ttyS0 quiet loglevel=3 panic=-1 oops=panic",
        "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
        "-fsdev", f"local,id=job,path={job_dir},security_model=none",
        "-device", "virtio-9p-pci,fsdev=job,mount_tag=job",
    ]


def closed_ancestors(venv_bin: Path) -> list[Path]:
    """Directories above the venv's interpreter that others may not enter.

    A venv made by root from a Python under /root (pyenv) is unusable by any
    other user; the guest opens those directories for search (on its overlay
    only, never on this machine) so a non-root command can run the venv.
    """
    python = venv_bin / "python3"
    if not python.exists():
        return []
    closed = []
    for directory in Path(os.path.realpath(python)).parents:
        try:
            if not directory.stat().st_mode & 0o001:
                closed.append(directory)
        except OSError:
            break
    return closed


def job_script(command: list[str], user: str, env: dict[str, str]) -> str:
    """The shell script the guest's init runs in the new root."""
    venv_bin = REPO / ".venv" / "bin"
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    if venv_bin.is_dir():
        path = f"{venv_bin}:{path}"
    home = "/root" if user == "root" else f"/tmp/{user}"
    exports = {"PATH": path, "HOME": home, "USER": user, "LOGNAME": user,
               "LANG": "C.UTF-8", "ROOTSTREAM_IN_VM": "1", **env}
    lines = ["set -e", f"cd {shlex.quote(str(REPO))}",
             f"mkdir -p {shlex.quote(home)}"]
    if user != "root":
        lines.append(f"chown {shlex.quote(user)} {shlex.quote(home)}")
    # Also for root: a root command may switch users itself (setpriv, su).
    lines += [f"chmod o+x {shlex.quote(str(d))}" for d in closed_ancestors(venv_bin)]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in exports.items()]
    lines.append("set +e")
    argv = shlex.join(command)
    if user == "root":
        lines.append(f"exec {argv}")
    else:
        lines.append(f"exec setpriv --reuid={shlex.quote(user)} --regid={shlex.quote(user)} "
                     f"--init-groups -- {argv}")
    return "\n".join(lines) + "\n"


def boot(command: list[str], *, user: str = "root", accel: str, timeout: float,
         boot_timeout: float, env: dict[str, str] | None = None,
         echo: bool = True) -> tuple[int, dict[str, float]]:
    """Run ``command`` in a fresh VM: (exit status, timings in seconds).

    Raises VmError when the guest does not boot; returns TIMEOUT_STATUS when
    the command outlives ``timeout``.
    """
    parts = build.build()
    with tempfile.TemporaryDirectory(prefix="rootstream-vm-job-") as tmp:
        job_dir = Path(tmp)
        (job_dir / "job.sh").write_text(job_script(command, user, env or {}))
        started = time.monotonic()
        proc = subprocess.Popen(qemu_command(parts, job_dir, accel), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent)
        timings: dict[str, float] = {}
        tail: list[str] = []
        try:
            status = _follow(proc, started, timeout, boot_timeout, timings, tail, echo)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
        timings["total"] = time.monotonic() - started
        if status is not None:
            return status, timings
        status_file = job_dir / "exit-status"
        if "ready" not in timings:
            raise VmError(f"the VM ({accel}) did not boot; its last output:\n" + "".join(tail))
        if not status_file.is_file():
            raise VmError("the VM stopped before the command finished; its last output:\n"
                          + "".join(tail))
        return int(status_file.read_text().strip() or "1"), timings


def _follow(proc, started, timeout, boot_timeout, timings, tail, echo) -> int | None:
    """Stream the guest's console until QEMU exits; TIMEOUT_STATUS on a deadline."""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        return _pump(proc, selector, started, timeout, boot_timeout, timings, tail, echo)


def _pump(proc, selector, started, timeout, boot_timeout, timings, tail, echo) -> int | None:
    pending = b""
    while True:
        elapsed = time.monotonic() - started
        # The command's time starts when the guest is ready, not with QEMU.
        deadline = timings["ready"] + timeout if "ready" in timings else boot_timeout
        if elapsed > deadline:
            what = "command" if "ready" in timings else "boot"
            print(f"vm: {what} timed out {elapsed:.0f} s after QEMU started; killing QEMU",
                  file=sys.stderr, flush=True)
            if "ready" not in timings:
                raise VmError(f"the VM did not boot within {boot_timeout:.0f} s; its last "
                              "output:\n" + "".join(tail))
            return TIMEOUT_STATUS
        if not selector.select(min(1.0, deadline - elapsed + 0.05)):
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            return None
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace").replace("\r", "") + "\n"
            tail[:] = (tail + [line])[-40:]
            if line.startswith(READY):
                timings["ready"] = time.monotonic() - started
                timings["guest_uptime"] = float(line.split()[-1])
                continue
            if line.rstrip().endswith(SYSRQ_NOISE):
                continue
            if line.startswith(FAILED):
                raise VmError(line.strip())
            if echo and "ready" in timings:
                sys.stdout.write(line)
                sys.stdout.flush()


def kvm_works(boot_timeout: float = KVM_PROBE_TIMEOUT) -> bool:
    """Whether KVM really boots our guest here; the verdict is cached per machine."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    verdict_file = build.cache_root() / f"kvm-verdict-{os.uname().release}"
    if verdict_file.is_file():
        return verdict_file.read_text().strip() == "kvm"
    try:
        status, _ = boot(["true"], accel="kvm", timeout=boot_timeout,
                         boot_timeout=boot_timeout, echo=False)
        works = status == 0
    except VmError:
        works = False
    verdict_file.parent.mkdir(parents=True, exist_ok=True)
    verdict_file.write_text("kvm\n" if works else "tcg\n")
    return works


def choose_accel() -> str:
    forced = os.environ.get("ROOTSTREAM_VM_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    return "kvm" if kvm_works() else "tcg"


def parse_env(pairs: list[str]) -> dict[str, str]:
    env = {key: os.environ[key] for key in ENV_PASSED if key in os.environ}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"vm: --env wants KEY=VALUE, not {pair!r}")
        env[key] = value
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    build_parser = sub.add_parser("build", help="build the VM cache (kernel, vkms, initramfs)")
    build_parser.add_argument("--force", action="store_true")
    run_parser = sub.add_parser("run", help="boot the VM and run CMD in the repo root")
    run_parser.add_argument("--user", default="root", help="root, vmuser (groups video, "
                            "input) or another user of this machine")
    run_parser.add_argument("--timeout", type=float, default=1200.0,
                            help="seconds the command may run (default 1200)")
    run_parser.add_argument("--boot-timeout", type=float, default=120.0)
    run_parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    run_parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    # SIGTERM (a test runner's timeout) unwinds like Ctrl+C, so QEMU is killed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.action == "build":
            print(build.build(force=args.force))
            return 0
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not command:
            parser.error("run needs a command after --")
        build.build()
        accel = choose_accel()
        status, timings = boot(command, user=args.user, accel=accel, timeout=args.timeout,
                               boot_timeout=args.boot_timeout, env=parse_env(args.env))
    except (VmError, build.BuildError) as exc:
        print(f"vm: {exc}", file=sys.stderr)
        return 125
    ready = timings.get("ready", float("nan"))
    print(f"vm: {accel}: qemu start to command {ready:.1f} s, total {timings['total']:.1f} s, "
          f"exit status {status}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
