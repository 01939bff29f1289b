"""Build the test VM's parts into a cache outside the clone.

Everything comes from Debian packages, downloaded with ``apt-get download`` and
unpacked with ``dpkg -x`` (nothing is installed on this machine):

* the kernel (``linux-image-<abi>``): its compressed bzImage is unpacked to
  the plain ``vmlinux``, which QEMU boots directly (PVH entry), skipping the
  decompressor that hangs under this machine's nested KVM and costs seconds
  under TCG;
* ``vkms.ko``, which Debian's kernel does not ship (CONFIG_DRM_VKMS is not
  set), built out of tree from ``linux-source-6.1`` with the matching
  ``linux-headers-<abi>``;
* a busybox initramfs with the modules the guest needs (9p, overlay, DRM,
  vkms, uinput) and tests/vm/init.sh as /init.

The cache key is the kernel ABI plus a hash of this file and init.sh, so a
clean clone on the same machine reuses the cache and a changed recipe rebuilds.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Modules the guest loads, in order, with their parameters (evdev: what
# udev loads on a desktop, without it no /dev/input/event* exists); their
# dependencies (read from each .ko's .modinfo) are loaded first.
GUEST_MODULES = [
    ("virtio_pci", ""), ("9pnet_virtio", ""), ("9p", ""), ("overlay", ""),
    ("evdev", ""), ("uinput", ""), ("vkms", "enable_cursor=1 enable_writeback=1"),
]
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")  # busybox-static
XZ_MAGIC = b"\xfd7zXZ\x00"


class BuildError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"vm-build: {message}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "rootstream-vm"


def recipe_hash() -> str:
    digest = hashlib.sha256()
    for name in ("build.py", "init.sh"):
        digest.update((HERE / name).read_bytes())
    return digest.hexdigest()[:12]


def kernel_abi() -> str:
    """The ABI (e.g. 6.1.0-57-amd64) that linux-image-amd64 points at now.

    Without apt metadata (an offline machine) the newest kernel already in
    the cache is used.
    """
    override = os.environ.get("ROOTSTREAM_VM_KERNEL")
    if override:
        return override
    try:
        out = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], check=True,
                             capture_output=True, text=True).stdout
        match = re.search(r"Depends: linux-image-(\d[\w.-]*-amd64)\b", out)
        if match:
            return match.group(1)
    except (OSError, subprocess.CalledProcessError):
        pass
    built = sorted(cache_root().glob("*-amd64-*/vmlinux"))
    if built:
        return built[-1].parent.name.rsplit("-", 1)[0]
    raise BuildError("cannot tell which Debian kernel to use: apt-cache knows no "
                     "linux-image-amd64 (run apt-get update)")


def build_dir() -> Path:
    return cache_root() / f"{kernel_abi()}-{recipe_hash()}"


def download(packages: list[str], debs: Path) -> dict[str, Path]:
    """The .deb of each package, downloaded once into ``debs``."""
    debs.mkdir(parents=True, exist_ok=True)

    def present() -> dict[str, Path]:
        found = {}
        for package in packages:
            hits = sorted(debs.glob(f"{package}_*.deb"))
            if hits:
                found[package] = hits[-1]
        return found

    missing = [p for p in packages if p not in present()]
    if missing:
        log(f"downloading {' '.join(missing)}")
        result = subprocess.run(["apt-get", "download", *missing], cwd=debs,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError(f"apt-get download failed: {result.stderr.strip()[-500:]}")
    found = present()
    if len(found) != len(packages):
        raise BuildError(f"apt-get download did not fetch {set(packages) - set(found)}")
    return found


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The ELF kernel inside a bzImage (Debian compresses it with xz)."""
    start = bzimage.find(XZ_MAGIC)
    while start >= 0:
        try:
            data = lzma.LZMADecompressor().decompress(bzimage[start:])
        except lzma.LZMAError:
            data = b""
        if data.startswith(b"\x7fELF"):
            return data
        start = bzimage.find(XZ_MAGIC, start + 1)
    raise BuildError("no xz-compressed ELF kernel found in the bzImage")


def modinfo_depends(ko: Path) -> list[str]:
    """A module's ``depends=`` list from its .modinfo strings."""
    match = re.search(rb"\x00depends=([^\x00]*)\x00", ko.read_bytes())
    if match is None or not match.group(1):
        return []
    return match.group(1).decode().split(",")


def module_order(tree: Path, extra: dict[str, Path]) -> list[Path]:
    """GUEST_MODULES and their dependencies, each after what it needs."""
    by_name = {ko.name[:-3].replace("-", "_"): ko for ko in tree.rglob("*.ko")}
    by_name.update(extra)
    order: list[Path] = []

    def visit(name: str, stack: tuple[str, ...]) -> None:
        name = name.replace("-", "_")
        if name in stack:
            raise BuildError(f"module dependency loop: {' -> '.join(stack + (name,))}")
        ko = by_name.get(name)
        if ko is None:
            raise BuildError(f"module {name} is not in the kernel package")
        if ko in order:
            return
        for dep in modinfo_depends(ko):
            visit(dep, stack + (name,))
        order.append(ko)

    for name, _ in GUEST_MODULES:
        visit(name, ())
    return order


def series(abi: str) -> str:
    """6.1 for 6.1.0-57-amd64: the suffix of linux-source-* and linux-kbuild-*."""
    return ".".join(abi.split(".")[:2])


def build_vkms(debs: dict[str, Path], abi: str, work: Path) -> Path:
    """vkms.ko, built out of tree against the kernel's own headers."""
    headers_root = work / "headers"
    for package in (f"linux-headers-{abi}", f"linux-headers-{abi.rsplit('-', 1)[0]}-common",
                    f"linux-kbuild-{series(abi)}"):
        subprocess.run(["dpkg", "-x", str(debs[package]), str(headers_root)], check=True)
    src = headers_root / "usr" / "src"
    makefile = src / f"linux-headers-{abi}" / "Makefile"
    # The arch headers' Makefile includes the common one by absolute path.
    makefile.write_text(makefile.read_text().replace("/usr/src/", f"{src}/"))
    source = f"linux-source-{series(abi)}"
    log(f"unpacking drivers/gpu/drm/vkms from {source}")
    deb = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debs[source])],
                           stdout=subprocess.PIPE)
    inner = subprocess.Popen(["tar", "-xO", f"./usr/src/{source}.tar.xz"],
                             stdin=deb.stdout, stdout=subprocess.PIPE)
    deb.stdout.close()
    subprocess.run(["tar", "-xJ", "-C", str(work), f"{source}/drivers/gpu/drm/vkms"],
                   stdin=inner.stdout, check=True)
    inner.stdout.close()
    if inner.wait() or deb.wait():
        raise BuildError(f"could not unpack {source}")
    vkms_src = work / source / "drivers" / "gpu" / "drm" / "vkms"
    log("building vkms.ko")
    result = subprocess.run(
        ["make", "-C", str(src / f"linux-headers-{abi}"), f"M={vkms_src}",
         "CONFIG_DRM_VKMS=m", "modules", f"-j{os.cpu_count() or 1}"],
        capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"building vkms.ko failed:\n{result.stdout[-2000:]}{result.stderr}")
    return vkms_src / "vkms.ko"


def cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A newc cpio archive of (path, mode, data); directories have empty data."""
    out = io.BytesIO()

    def add(name: str, mode: int, data: bytes, ino: int) -> None:
        encoded = name.encode() + b"\x00"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0]
        out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + encoded)
        out.write(b"\x00" * (-out.tell() % 4) + data)
        out.write(b"\x00" * (-out.tell() % 4))

    for ino, (name, mode, data) in enumerate(entries, start=1):
        add(name, mode, data, ino)
    add("TRAILER!!!", 0, b"", 0)
    return out.getvalue()


def make_initramfs(modules: list[Path]) -> bytes:
    busybox = next((p for p in BUSYBOX_CANDIDATES if Path(p).is_file()), None)
    if busybox is None:
        raise BuildError("busybox is missing (apt-get install busybox-static)")
    params = dict(GUEST_MODULES)
    load_list = "".join(
        f"/lib/modules/{ko.name} {params.get(ko.name[:-3].replace('-', '_'), '')}\n"
        for ko in modules)
    entries = [(d, 0o40755, b"") for d in ("bin", "dev", "proc", "sys", "lib", "lib/modules",
                                           "lower", "upper", "newroot")]
    entries += [
        ("bin/busybox", 0o100755, Path(busybox).read_bytes()),
        ("init", 0o100755, (HERE / "init.sh").read_bytes()),
        ("modules.load", 0o100644, load_list.encode()),
    ]
    entries += [(f"lib/modules/{ko.name}", 0o100644, ko.read_bytes()) for ko in modules]
    return gzip.compress(cpio_newc(entries), compresslevel=1)


def build(force: bool = False) -> Path:
    """The cache directory holding vmlinux and initramfs.gz, built if missing."""
    target = build_dir()
    if not force and (target / "vmlinux").is_file() and (target / "initramfs.gz").is_file():
        return target
    abi = kernel_abi()
    started = time.monotonic()
    log(f"building the test VM for kernel {abi} into {target}")
    packages = [f"linux-image-{abi}", f"linux-headers-{abi}",
                f"linux-headers-{abi.rsplit('-', 1)[0]}-common", f"linux-kbuild-{series(abi)}",
                f"linux-source-{series(abi)}"]
    debs = download(packages, cache_root() / "debs")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        work = Path(tmp)
        image_root = work / "image"
        subprocess.run(["dpkg", "-x", str(debs[f"linux-image-{abi}"]), str(image_root)],
                       check=True)
        out = work / "out"
        out.mkdir()
        vmlinuz = image_root / "boot" / f"vmlinuz-{abi}"
        (out / "vmlinux").write_bytes(extract_vmlinux(vmlinuz.read_bytes()))
        vkms = build_vkms(debs, abi, work)
        shutil.copy(vkms, out / "vkms.ko")
        modules = module_order(image_root / "lib" / "modules" / abi, {"vkms": out / "vkms.ko"})
        (out / "initramfs.gz").write_bytes(make_initramfs(modules))
        # Publish atomically: a half-built directory never looks complete.
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    for stale in target.parent.glob(f"{abi}-*"):
        if stale != target and stale.is_dir():  # built by an older recipe
            shutil.rmtree(stale, ignore_errors=True)
    log(f"built in {time.monotonic() - started:.0f} s")
    return target
