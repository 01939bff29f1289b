"""The kernel's DRM/KMS and dma-buf UAPI structures, declared by hand for cffi.

cffi runs in ABI mode here: nothing is compiled at install time, so
``pip install .`` needs no libdrm headers.  The price is that these
declarations must match the kernel byte for byte; tests/test_drm_abi.py
compiles a C program against the real headers (drm.h, drm_mode.h,
linux/dma-buf.h) and compares every sizeof and offsetof with cffi's layout.

Field names and order follow the UAPI headers exactly, so that test can name
them in C.  Only the structures rootstream uses are declared.
"""

from __future__ import annotations

import cffi

ffi = cffi.FFI()

# Kept as one string so the ABI test can list the declared structs.
CDEF = """
struct drm_version {
    int version_major;
    int version_minor;
    int version_patchlevel;
    size_t name_len;
    char *name;
    size_t date_len;
    char *date;
    size_t desc_len;
    char *desc;
};

struct drm_gem_close {
    uint32_t handle;
    uint32_t pad;
};

struct drm_get_cap {
    uint64_t capability;
    uint64_t value;
};

struct drm_set_client_cap {
    uint64_t capability;
    uint64_t value;
};

struct drm_prime_handle {
    uint32_t handle;
    uint32_t flags;
    int32_t fd;
};

struct drm_event {
    uint32_t type;
    uint32_t length;
};

struct drm_event_vblank {
    struct drm_event base;
    uint64_t user_data;
    uint32_t tv_sec;
    uint32_t tv_usec;
    uint32_t sequence;
    uint32_t crtc_id;
};

struct drm_mode_modeinfo {
    uint32_t clock;
    uint16_t hdisplay;
    uint16_t hsync_start;
    uint16_t hsync_end;
    uint16_t htotal;
    uint16_t hskew;
    uint16_t vdisplay;
    uint16_t vsync_start;
    uint16_t vsync_end;
    uint16_t vtotal;
    uint16_t vscan;
    uint32_t vrefresh;
    uint32_t flags;
    uint32_t type;
    char name[32];
};

struct drm_mode_card_res {
    uint64_t fb_id_ptr;
    uint64_t crtc_id_ptr;
    uint64_t connector_id_ptr;
    uint64_t encoder_id_ptr;
    uint32_t count_fbs;
    uint32_t count_crtcs;
    uint32_t count_connectors;
    uint32_t count_encoders;
    uint32_t min_width;
    uint32_t max_width;
    uint32_t min_height;
    uint32_t max_height;
};

struct drm_mode_crtc {
    uint64_t set_connectors_ptr;
    uint32_t count_connectors;
    uint32_t crtc_id;
    uint32_t fb_id;
    uint32_t x;
    uint32_t y;
    uint32_t gamma_size;
    uint32_t mode_valid;
    struct drm_mode_modeinfo mode;
};

struct drm_mode_get_plane {
    uint32_t plane_id;
    uint32_t crtc_id;
    uint32_t fb_id;
    uint32_t possible_crtcs;
    uint32_t gamma_size;
    uint32_t count_format_types;
    uint64_t format_type_ptr;
};

struct drm_mode_get_plane_res {
    uint64_t plane_id_ptr;
    uint32_t count_planes;
};

struct drm_mode_get_encoder {
    uint32_t encoder_id;
    uint32_t encoder_type;
    uint32_t crtc_id;
    uint32_t possible_crtcs;
    uint32_t possible_clones;
};

struct drm_mode_get_connector {
    uint64_t encoders_ptr;
    uint64_t modes_ptr;
    uint64_t props_ptr;
    uint64_t prop_values_ptr;
    uint32_t count_modes;
    uint32_t count_props;
    uint32_t count_encoders;
    uint32_t encoder_id;
    uint32_t connector_id;
    uint32_t connector_type;
    uint32_t connector_type_id;
    uint32_t connection;
    uint32_t mm_width;
    uint32_t mm_height;
    uint32_t subpixel;
    uint32_t pad;
};

struct drm_mode_property_enum {
    uint64_t value;
    char name[32];
};

struct drm_mode_get_property {
    uint64_t values_ptr;
    uint64_t enum_blob_ptr;
    uint32_t prop_id;
    uint32_t flags;
    char name[32];
    uint32_t count_values;
    uint32_t count_enum_blobs;
};

struct drm_mode_obj_get_properties {
    uint64_t props_ptr;
    uint64_t prop_values_ptr;
    uint32_t count_props;
    uint32_t obj_id;
    uint32_t obj_type;
};

struct drm_mode_get_blob {
    uint32_t blob_id;
    uint32_t length;
    uint64_t data;
};

struct drm_mode_fb_cmd2 {
    uint32_t fb_id;
    uint32_t width;
    uint32_t height;
    uint32_t pixel_format;
    uint32_t flags;
    uint32_t handles[4];
    uint32_t pitches[4];
    uint32_t offsets[4];
    uint64_t modifier[4];
};

struct drm_mode_crtc_page_flip {
    uint32_t crtc_id;
    uint32_t fb_id;
    uint32_t flags;
    uint32_t reserved;
    uint64_t user_data;
};

struct drm_mode_create_dumb {
    uint32_t height;
    uint32_t width;
    uint32_t bpp;
    uint32_t flags;
    uint32_t handle;
    uint32_t pitch;
    uint64_t size;
};

struct drm_mode_map_dumb {
    uint32_t handle;
    uint32_t pad;
    uint64_t offset;
};

struct drm_mode_destroy_dumb {
    uint32_t handle;
};

struct drm_format_modifier_blob {
    uint32_t version;
    uint32_t flags;
    uint32_t count_formats;
    uint32_t formats_offset;
    uint32_t count_modifiers;
    uint32_t modifiers_offset;
};

struct drm_format_modifier {
    uint64_t formats;
    uint32_t offset;
    uint32_t pad;
    uint64_t modifier;
};

struct dma_buf_sync {
    uint64_t flags;
};

struct drm_wait_vblank_request {
    unsigned int type;  /* enum drm_vblank_seq_type */
    unsigned int sequence;
    unsigned long signal;
};

struct drm_wait_vblank_reply {
    unsigned int type;  /* enum drm_vblank_seq_type */
    unsigned int sequence;
    long tval_sec;
    long tval_usec;
};
"""

ffi.cdef(CDEF)

# Every struct declared above, in declaration order (the ABI test walks it).
STRUCTS = tuple(
    line.split()[1]
    for line in CDEF.splitlines()
    if line.startswith("struct ") and line.rstrip().endswith("{")
)

# --- drm.h ---------------------------------------------------------------
DRM_CAP_DUMB_BUFFER = 0x1
DRM_CAP_PRIME = 0x5
DRM_PRIME_CAP_EXPORT = 0x2
DRM_CAP_TIMESTAMP_MONOTONIC = 0x6
DRM_CAP_CURSOR_WIDTH = 0x8
DRM_CAP_CURSOR_HEIGHT = 0x9
DRM_CAP_ADDFB2_MODIFIERS = 0x10

# enum drm_vblank_seq_type: wait for a vblank relative to the current count,
# on the CRTC whose index sits in the HIGH_CRTC bits.
DRM_VBLANK_RELATIVE = 0x1
DRM_VBLANK_HIGH_CRTC_SHIFT = 1
DRM_VBLANK_HIGH_CRTC_MASK = 0x3E

DRM_CLIENT_CAP_UNIVERSAL_PLANES = 2
DRM_CLIENT_CAP_ATOMIC = 3

DRM_EVENT_VBLANK = 0x01
DRM_EVENT_FLIP_COMPLETE = 0x02
DRM_EVENT_CRTC_SEQUENCE = 0x03

# --- drm_mode.h ----------------------------------------------------------
DRM_MODE_TYPE_PREFERRED = 1 << 3
DRM_MODE_FLAG_INTERLACE = 1 << 4

# drm_mode_get_connector.connection: the kernel's enum drm_connector_status
# (include/drm/drm_connector.h), not exported by the UAPI headers.
CONNECTOR_STATUS_CONNECTED = 1
CONNECTOR_STATUS_DISCONNECTED = 2
CONNECTOR_STATUS_UNKNOWN = 3

DRM_MODE_PROP_RANGE = 1 << 1
DRM_MODE_PROP_IMMUTABLE = 1 << 2
DRM_MODE_PROP_ENUM = 1 << 3
DRM_MODE_PROP_BLOB = 1 << 4
DRM_MODE_PROP_BITMASK = 1 << 5
DRM_MODE_PROP_EXTENDED_TYPE = 0x0000FFC0
DRM_MODE_PROP_OBJECT = 1 << 6
DRM_MODE_PROP_SIGNED_RANGE = 2 << 6

DRM_MODE_OBJECT_CRTC = 0xCCCCCCCC
DRM_MODE_OBJECT_CONNECTOR = 0xC0C0C0C0
DRM_MODE_OBJECT_PLANE = 0xEEEEEEEE

DRM_MODE_FB_MODIFIERS = 1 << 1
DRM_MODE_PAGE_FLIP_EVENT = 0x01

# The plane "type" property's enum values: the kernel's enum drm_plane_type
# (include/drm/drm_plane.h), fixed ABI but not in the UAPI headers.
PLANE_TYPE_OVERLAY = 0
PLANE_TYPE_PRIMARY = 1
PLANE_TYPE_CURSOR = 2

# --- drm_fourcc.h --------------------------------------------------------


def fourcc(code: str) -> int:
    """The little-endian fourcc_code() of four ASCII characters."""
    a, b, c, d = code.encode("ascii")
    return a | (b << 8) | (c << 16) | (d << 24)


DRM_FORMAT_XRGB8888 = fourcc("XR24")
DRM_FORMAT_ARGB8888 = fourcc("AR24")
DRM_FORMAT_XBGR8888 = fourcc("XB24")
DRM_FORMAT_ABGR8888 = fourcc("AB24")
DRM_FORMAT_MOD_LINEAR = 0
DRM_FORMAT_MOD_INVALID = 0x00FFFFFFFFFFFFFF

# --- linux/dma-buf.h -----------------------------------------------------
DMA_BUF_SYNC_READ = 1 << 0
DMA_BUF_SYNC_WRITE = 2 << 0
DMA_BUF_SYNC_START = 0 << 2
DMA_BUF_SYNC_END = 1 << 2

# The kernel's own connector type names (drm_connector_enum_list in
# drivers/gpu/drm/drm_connector.c); the index is DRM_MODE_CONNECTOR_*.  A
# connector is called "<name>-<connector_type_id>", e.g. "HDMI-A-1", the same
# name /sys/class/drm and the compositors show.
CONNECTOR_TYPE_NAMES = (
    "Unknown", "VGA", "DVI-I", "DVI-D", "DVI-A", "Composite", "SVIDEO", "LVDS",
    "Component", "DIN", "DP", "HDMI-A", "HDMI-B", "TV", "eDP", "Virtual", "DSI",
    "DPI", "Writeback", "SPI", "USB",
)
