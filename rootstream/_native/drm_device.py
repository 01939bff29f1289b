"""The thin ioctl layer: one method per DRM ioctl rootstream issues.

Argument blocks are built by the ``*_args`` functions (pure, so tests compare
their bytes with what a C program builds from the real headers); replies are
turned into images and handed to drm_parse.  This module only moves bytes
between the two and the kernel, with ``fcntl.ioctl`` (which releases the GIL).

Arrays the kernel fills are sized with the usual two calls: ask for the
counts, allocate, ask again; when the counts grew in between (a hotplug), ask
again.
"""

from __future__ import annotations

import errno as errno_codes
import fcntl
import math
import os
import select
from collections.abc import Callable, Sequence

from rootstream._native import drm_ioctl as req
from rootstream._native import drm_parse as parse
from rootstream._native.drm_abi import (
    DRM_VBLANK_HIGH_CRTC_MASK,
    DRM_VBLANK_HIGH_CRTC_SHIFT,
    DRM_VBLANK_RELATIVE,
    ffi,
)
from rootstream._native.drm_parse import DrmError

_RETRY_ERRNOS = (errno_codes.EINTR, errno_codes.EAGAIN)
_MAX_RESIZES = 8  # counts that keep growing over this many calls: give up


class DrmIoctlError(DrmError):
    """An ioctl failed; ``errno`` says why (EACCES, EINVAL, ENOENT, ...)."""

    def __init__(self, message: str, *, errno: int, hint: str = ""):
        super().__init__(message, hint=hint)
        self.errno = errno


def _address(cdata) -> int:
    return int(ffi.cast("uintptr_t", cdata))


def _image(args, *arrays) -> bytes:
    """The reply image drm_parse expects: struct bytes, then each filled array.

    ``arrays`` are (array, count) pairs, count being what the kernel reported
    in the final call: an array it filled only partly is cut to that count.
    """
    parts = [bytes(ffi.buffer(args))]
    for array, count in arrays:
        if array is not None and count:
            # The item type's size: indexing a uint32_t[] gives a Python int,
            # which ffi.sizeof refuses (the first real kernel reply showed it).
            item_size = ffi.sizeof(ffi.typeof(array).item)
            parts.append(ffi.buffer(array, count * item_size)[:])
    return b"".join(parts)


def _array(ctype: str, count: int):
    return ffi.new(f"{ctype}[]", count) if count else None


# --- argument blocks (pure) ------------------------------------------------

def get_cap_args(capability: int):
    return ffi.new("struct drm_get_cap *", {"capability": capability})


def set_client_cap_args(capability: int, value: int):
    return ffi.new("struct drm_set_client_cap *", {"capability": capability, "value": value})


def gem_close_args(handle: int):
    return ffi.new("struct drm_gem_close *", {"handle": handle})


def prime_handle_to_fd_args(handle: int):
    # Read-only export: capture only reads, and DRM_RDWR is refused by
    # kernels before 4.6.  The fd must not leak into child processes.
    return ffi.new("struct drm_prime_handle *",
                   {"handle": handle, "flags": os.O_CLOEXEC, "fd": -1})


def getfb2_args(fb_id: int):
    return ffi.new("struct drm_mode_fb_cmd2 *", {"fb_id": fb_id})


def create_dumb_args(width: int, height: int, bpp: int = 32):
    return ffi.new("struct drm_mode_create_dumb *",
                   {"width": width, "height": height, "bpp": bpp})


def map_dumb_args(handle: int):
    return ffi.new("struct drm_mode_map_dumb *", {"handle": handle})


def destroy_dumb_args(handle: int):
    return ffi.new("struct drm_mode_destroy_dumb *", {"handle": handle})


def addfb2_args(width: int, height: int, pixel_format: int, handle: int, pitch: int):
    return ffi.new("struct drm_mode_fb_cmd2 *", {
        "width": width, "height": height, "pixel_format": pixel_format,
        "handles": [handle, 0, 0, 0], "pitches": [pitch, 0, 0, 0],
    })


def rmfb_args(fb_id: int):
    return ffi.new("unsigned int *", fb_id)


def setcrtc_args(crtc_id: int, fb_id: int, x: int, y: int,
                 connector_ids: Sequence[int], mode_raw: bytes | None):
    """SETCRTC's block and the connector array it points to (keep both alive)."""
    connectors = _array("uint32_t", len(connector_ids))
    for i, connector_id in enumerate(connector_ids):
        connectors[i] = connector_id
    args = ffi.new("struct drm_mode_crtc *", {
        "set_connectors_ptr": _address(connectors) if connectors is not None else 0,
        "count_connectors": len(connector_ids),
        "crtc_id": crtc_id, "fb_id": fb_id, "x": x, "y": y,
        "mode_valid": 1 if mode_raw else 0,
    })
    if mode_raw:
        mode = ffi.addressof(args[0], "mode")
        if len(mode_raw) != ffi.sizeof(mode[0]):
            raise ValueError("a mode is exactly one struct drm_mode_modeinfo")
        ffi.memmove(mode, mode_raw, len(mode_raw))
    return args, connectors


def page_flip_args(crtc_id: int, fb_id: int, flags: int, user_data: int):
    return ffi.new("struct drm_mode_crtc_page_flip *", {
        "crtc_id": crtc_id, "fb_id": fb_id, "flags": flags, "user_data": user_data,
    })


def obj_get_properties_args(obj_id: int, obj_type: int):
    return ffi.new("struct drm_mode_obj_get_properties *",
                   {"obj_id": obj_id, "obj_type": obj_type})


def dma_buf_sync_args(flags: int):
    return ffi.new("struct dma_buf_sync *", {"flags": flags})


def dma_buf_sync(fd: int, flags: int) -> None:
    """DMA_BUF_IOCTL_SYNC: bracket CPU access so caches are coherent with the GPU."""
    args = dma_buf_sync_args(flags)
    _ioctl(fd, req.DMA_BUF_IOCTL_SYNC, args)


def _ioctl(fd: int, request: int, args) -> None:
    # libdrm's drmIoctl retries on EINTR and EAGAIN; so do we.
    while True:
        try:
            fcntl.ioctl(fd, request, ffi.buffer(args), True)
            return
        except OSError as exc:
            if exc.errno in _RETRY_ERRNOS:
                continue
            name = req.REQUEST_NAMES.get(request, hex(request))
            raise DrmIoctlError(
                f"{name} failed: {os.strerror(exc.errno)}", errno=exc.errno
            ) from exc


class DrmDevice:
    """An open DRM card (/dev/dri/cardN).

    ``on_reply(name, image)``, when given, sees every reply image:
    ``KmsCapture.probe(record_dir=...)`` uses it to turn a real card into
    recorded images like those in tests/data/drm/.
    """

    def __init__(self, path: str, *, on_reply: Callable[[str, bytes], None] | None = None):
        self.path = path
        self._on_reply = on_reply
        self.atomic = False  # set by whoever enables DRM_CLIENT_CAP_ATOMIC
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise DrmIoctlError(f"cannot open {path}: {os.strerror(exc.errno)}",
                                errno=exc.errno) from exc

    # -- plumbing ----------------------------------------------------------
    def ioctl(self, request: int, args) -> None:
        if self.fd < 0:
            raise DrmError(f"{self.path} is closed")
        _ioctl(self.fd, request, args)

    def _reply(self, name: str, image: bytes) -> bytes:
        if self._on_reply is not None:
            self._on_reply(name, image)
        return image

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- capabilities ------------------------------------------------------
    def version(self) -> parse.DriverVersion:
        args = ffi.new("struct drm_version *")
        self.ioctl(req.DRM_IOCTL_VERSION, args)
        strings = []
        for field in ("name", "date", "desc"):
            length = min(getattr(args, f"{field}_len"), parse.MAX_STRING_BYTES)
            buf = ffi.new("char[]", length + 1)
            strings.append((buf, length))
            setattr(args, field, buf)
            setattr(args, f"{field}_len", length)
        self.ioctl(req.DRM_IOCTL_VERSION, args)
        # The kernel reports the full lengths again; the image holds what it copied.
        for (_, length), field in zip(strings, ("name", "date", "desc"), strict=True):
            setattr(args, f"{field}_len", min(getattr(args, f"{field}_len"), length))
        image = bytes(ffi.buffer(args)) + b"".join(
            ffi.buffer(buf, getattr(args, f"{field}_len"))[:]
            for (buf, _), field in zip(strings, ("name", "date", "desc"), strict=True)
        )
        return parse.parse_version(self._reply("version", image))

    def get_cap(self, capability: int) -> int:
        args = get_cap_args(capability)
        self.ioctl(req.DRM_IOCTL_GET_CAP, args)
        return args.value

    def set_client_cap(self, capability: int, value: int = 1) -> bool:
        """True if the kernel accepted the capability, False if it does not know it."""
        try:
            self.ioctl(req.DRM_IOCTL_SET_CLIENT_CAP, set_client_cap_args(capability, value))
        except DrmIoctlError as exc:
            if exc.errno in (errno_codes.EINVAL, errno_codes.EOPNOTSUPP):
                return False
            raise
        return True

    # -- topology ----------------------------------------------------------
    def resources(self) -> parse.CardResources:
        args = ffi.new("struct drm_mode_card_res *")
        counts = ("count_fbs", "count_crtcs", "count_connectors", "count_encoders")
        ptrs = ("fb_id_ptr", "crtc_id_ptr", "connector_id_ptr", "encoder_id_ptr")
        self.ioctl(req.DRM_IOCTL_MODE_GETRESOURCES, args)
        for _ in range(_MAX_RESIZES):
            sizes = [getattr(args, c) for c in counts]
            arrays = [_array("uint32_t", n) for n in sizes]
            for array, ptr in zip(arrays, ptrs, strict=True):
                setattr(args, ptr, _address(array) if array is not None else 0)
            self.ioctl(req.DRM_IOCTL_MODE_GETRESOURCES, args)
            if all(getattr(args, c) <= n for c, n in zip(counts, sizes, strict=True)):
                filled = [(a, getattr(args, c)) for a, c in zip(arrays, counts, strict=True)]
                image = _image(args, *filled)
                return parse.parse_card_res(self._reply("resources", image))
        raise DrmError("GETRESOURCES counts kept changing (hotplug storm?)")

    def connector(self, connector_id: int) -> parse.Connector:
        """The connector's current state, without forcing a probe.

        Asking with count_modes == 0 makes the kernel re-probe the monitor
        (EDID over DDC, hundreds of ms, a visible blink on some screens), so
        the first call offers room for one mode, like drmModeGetConnectorCurrent.
        """
        args = ffi.new("struct drm_mode_get_connector *", {"connector_id": connector_id})
        scratch = ffi.new("struct drm_mode_modeinfo[]", 1)
        args.modes_ptr, args.count_modes = _address(scratch), 1
        self.ioctl(req.DRM_IOCTL_MODE_GETCONNECTOR, args)
        for _ in range(_MAX_RESIZES):
            n_enc, n_props = args.count_encoders, args.count_props
            n_modes = max(args.count_modes, 1)
            encoders = _array("uint32_t", n_enc)
            modes = _array("struct drm_mode_modeinfo", n_modes)
            props = _array("uint32_t", n_props)
            values = _array("uint64_t", n_props)
            args.encoders_ptr = _address(encoders) if encoders is not None else 0
            args.modes_ptr, args.count_modes = _address(modes), n_modes
            args.props_ptr = _address(props) if props is not None else 0
            args.prop_values_ptr = _address(values) if values is not None else 0
            self.ioctl(req.DRM_IOCTL_MODE_GETCONNECTOR, args)
            if (args.count_encoders <= n_enc and args.count_modes <= n_modes
                    and args.count_props <= n_props):
                image = _image(args, (encoders, args.count_encoders), (modes, args.count_modes),
                               (props, args.count_props), (values, args.count_props))
                return parse.parse_connector(self._reply(f"connector-{connector_id}", image))
        raise DrmError("GETCONNECTOR counts kept changing (hotplug storm?)")

    def encoder(self, encoder_id: int) -> parse.Encoder:
        args = ffi.new("struct drm_mode_get_encoder *", {"encoder_id": encoder_id})
        self.ioctl(req.DRM_IOCTL_MODE_GETENCODER, args)
        return parse.parse_encoder(self._reply(f"encoder-{encoder_id}", _image(args)))

    def crtc(self, crtc_id: int) -> parse.Crtc:
        args = ffi.new("struct drm_mode_crtc *", {"crtc_id": crtc_id})
        self.ioctl(req.DRM_IOCTL_MODE_GETCRTC, args)
        return parse.parse_crtc(self._reply(f"crtc-{crtc_id}", _image(args)))

    def plane_resources(self) -> tuple[int, ...]:
        args = ffi.new("struct drm_mode_get_plane_res *")
        self.ioctl(req.DRM_IOCTL_MODE_GETPLANERESOURCES, args)
        for _ in range(_MAX_RESIZES):
            n = args.count_planes
            ids = _array("uint32_t", n)
            args.plane_id_ptr = _address(ids) if ids is not None else 0
            self.ioctl(req.DRM_IOCTL_MODE_GETPLANERESOURCES, args)
            if args.count_planes <= n:
                image = _image(args, (ids, args.count_planes))
                return parse.parse_plane_res(self._reply("plane-resources", image))
        raise DrmError("GETPLANERESOURCES counts kept changing")

    def plane(self, plane_id: int, *, formats: bool = True) -> parse.Plane:
        """A plane; ``formats=False`` skips its format list (one ioctl, for per-frame use)."""
        args = ffi.new("struct drm_mode_get_plane *", {"plane_id": plane_id})
        self.ioctl(req.DRM_IOCTL_MODE_GETPLANE, args)
        n = args.count_format_types if formats else 0
        array = _array("uint32_t", n)
        if array is not None:
            args.format_type_ptr = _address(array)
            self.ioctl(req.DRM_IOCTL_MODE_GETPLANE, args)
        # A plane's format list is fixed at driver load: it cannot grow.
        args.count_format_types = min(args.count_format_types, n)
        image = _image(args, (array, args.count_format_types))
        return parse.parse_plane(self._reply(f"plane-{plane_id}", image))

    def object_properties(self, obj_id: int, obj_type: int) -> dict[int, int]:
        args = obj_get_properties_args(obj_id, obj_type)
        self.ioctl(req.DRM_IOCTL_MODE_OBJ_GETPROPERTIES, args)
        for _ in range(_MAX_RESIZES):
            n = args.count_props
            ids, values = _array("uint32_t", n), _array("uint64_t", n)
            args.props_ptr = _address(ids) if ids is not None else 0
            args.prop_values_ptr = _address(values) if values is not None else 0
            self.ioctl(req.DRM_IOCTL_MODE_OBJ_GETPROPERTIES, args)
            if args.count_props <= n:
                image = _image(args, (ids, args.count_props), (values, args.count_props))
                return parse.parse_obj_properties(self._reply(f"props-{obj_id}", image))
        raise DrmError("OBJ_GETPROPERTIES counts kept changing")

    def property(self, prop_id: int) -> parse.Property:
        args = ffi.new("struct drm_mode_get_property *", {"prop_id": prop_id})
        self.ioctl(req.DRM_IOCTL_MODE_GETPROPERTY, args)
        n_values = args.count_values
        n_enums = args.count_enum_blobs if parse.property_has_enums(args.flags) else 0
        values = _array("uint64_t", n_values)
        enums = _array("struct drm_mode_property_enum", n_enums)
        args.values_ptr = _address(values) if values is not None else 0
        args.enum_blob_ptr = _address(enums) if enums is not None else 0
        args.count_enum_blobs = n_enums
        self.ioctl(req.DRM_IOCTL_MODE_GETPROPERTY, args)
        # Properties are immutable once created, so the counts did not change.
        args.count_values, args.count_enum_blobs = n_values, n_enums
        image = _image(args, (values, n_values), (enums, n_enums))
        return parse.parse_property(self._reply(f"property-{prop_id}", image))

    def property_blob(self, blob_id: int) -> bytes:
        args = ffi.new("struct drm_mode_get_blob *", {"blob_id": blob_id})
        self.ioctl(req.DRM_IOCTL_MODE_GETPROPBLOB, args)
        if args.length > parse.MAX_BLOB_BYTES:
            raise parse.DrmReplyError("DRM property blob is malformed: implausible size")
        data = ffi.new("uint8_t[]", max(args.length, 1))
        args.data = _address(data)
        self.ioctl(req.DRM_IOCTL_MODE_GETPROPBLOB, args)
        return self._reply(f"blob-{blob_id}", bytes(ffi.buffer(data, args.length)))

    # -- framebuffers and buffers ------------------------------------------
    def getfb2(self, fb_id: int) -> parse.Framebuffer:
        """The framebuffer's layout; each non-zero handle must be gem_close()d."""
        args = getfb2_args(fb_id)
        self.ioctl(req.DRM_IOCTL_MODE_GETFB2, args)
        return parse.parse_fb2(self._reply(f"fb-{fb_id}", _image(args)))

    def gem_close(self, handle: int) -> None:
        self.ioctl(req.DRM_IOCTL_GEM_CLOSE, gem_close_args(handle))

    def prime_handle_to_fd(self, handle: int) -> int:
        args = prime_handle_to_fd_args(handle)
        self.ioctl(req.DRM_IOCTL_PRIME_HANDLE_TO_FD, args)
        return args.fd

    def map_dumb(self, handle: int) -> int:
        """The fake offset at which the card fd mmaps this buffer."""
        args = map_dumb_args(handle)
        self.ioctl(req.DRM_IOCTL_MODE_MAP_DUMB, args)
        return args.offset

    def create_dumb(self, width: int, height: int, bpp: int = 32) -> tuple[int, int, int]:
        """(handle, pitch, size) of a new CPU-mappable scanout buffer."""
        args = create_dumb_args(width, height, bpp)
        self.ioctl(req.DRM_IOCTL_MODE_CREATE_DUMB, args)
        return args.handle, args.pitch, args.size

    def destroy_dumb(self, handle: int) -> None:
        self.ioctl(req.DRM_IOCTL_MODE_DESTROY_DUMB, destroy_dumb_args(handle))

    def addfb2(self, width: int, height: int, pixel_format: int, handle: int, pitch: int) -> int:
        args = addfb2_args(width, height, pixel_format, handle, pitch)
        self.ioctl(req.DRM_IOCTL_MODE_ADDFB2, args)
        return args.fb_id

    def rmfb(self, fb_id: int) -> None:
        self.ioctl(req.DRM_IOCTL_MODE_RMFB, rmfb_args(fb_id))

    # -- modesetting -------------------------------------------------------
    def set_crtc(self, crtc_id: int, fb_id: int, x: int, y: int,
                 connector_ids: Sequence[int], mode: parse.Mode | None) -> None:
        args, _connectors = setcrtc_args(crtc_id, fb_id, x, y, connector_ids,
                                         mode.raw if mode is not None else None)
        self.ioctl(req.DRM_IOCTL_MODE_SETCRTC, args)

    def page_flip(self, crtc_id: int, fb_id: int, flags: int, user_data: int = 0) -> None:
        self.ioctl(req.DRM_IOCTL_MODE_PAGE_FLIP, page_flip_args(crtc_id, fb_id, flags, user_data))

    def wait_vblank(self, crtc_index: int) -> tuple[int, int]:
        """Block until the next vblank of the CRTC at ``crtc_index`` (its place in
        GETRESOURCES' list): (vblank count, its CLOCK_MONOTONIC time in ns).

        Needs no DRM master.  A CRTC that is off fails at once (EINVAL).
        """
        if not 0 <= crtc_index <= DRM_VBLANK_HIGH_CRTC_MASK >> DRM_VBLANK_HIGH_CRTC_SHIFT:
            raise DrmError(f"CRTC index {crtc_index} cannot be named to WAIT_VBLANK")
        args = ffi.new("struct drm_wait_vblank_reply *")
        request = ffi.cast("struct drm_wait_vblank_request *", args)
        request.type = DRM_VBLANK_RELATIVE | (crtc_index << DRM_VBLANK_HIGH_CRTC_SHIFT)
        request.sequence = 1  # the next one
        self.ioctl(req.DRM_IOCTL_WAIT_VBLANK, args)
        return args.sequence, args.tval_sec * 1_000_000_000 + args.tval_usec * 1000

    def read_events(self, timeout: float | None) -> list[parse.VblankEvent]:
        """Events queued on the card fd; [] if none arrived within ``timeout`` seconds."""
        # poll, not select: a busy client may hold fds beyond select's 1024.
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        if not poller.poll(None if timeout is None else max(0, math.ceil(timeout * 1000))):
            return []
        # The kernel only returns whole events; 4 KiB holds over a hundred.
        data = os.read(self.fd, 4096)
        return parse.parse_events(self._reply("events", data))
