"""libpipewire-0.3 and SPA buffer declarations for cffi's ABI mode.

Nothing is compiled: ``load()`` dlopens libpipewire-0.3.so.0 the first time a
stream is opened, so installing rootstream needs no PipeWire headers and a
machine without PipeWire only loses the portal backend.  ABI mode cannot check
layouts, so every struct is declared field for field as in PipeWire 0.3.65's
headers (stream.h, proxy.h, spa/buffer/*.h, spa/utils/hook.h);
tests/test_pipewire_abi.py compiles those headers and compares every size,
offset and constant.

Helpers that the headers define inline (spa_hook_remove, pw_core_add_listener,
the spa_pod_builder family) are not exported by the library: the stream module
only uses exported entry points, and PODs are built by rootstream._native.spa_pod.
"""

from __future__ import annotations

import threading

from cffi import FFI

from ..errors import CaptureError

ffi = FFI()

# Kept as one string so the ABI test can list the declared structs.
CDEF = """
struct spa_list { struct spa_list *next; struct spa_list *prev; };
struct spa_callbacks { const void *funcs; void *data; };
struct spa_hook {
    struct spa_list link;
    struct spa_callbacks cb;
    void (*removed)(struct spa_hook *hook);
    void *priv;
};
struct spa_pod { uint32_t size; uint32_t type; };
struct spa_point { int32_t x; int32_t y; };
struct spa_rectangle { uint32_t width; uint32_t height; };
struct spa_region { struct spa_point position; struct spa_rectangle size; };

struct spa_chunk { uint32_t offset; uint32_t size; int32_t stride; int32_t flags; };
struct spa_data {
    uint32_t type;
    uint32_t flags;
    int64_t fd;
    uint32_t mapoffset;
    uint32_t maxsize;
    void *data;
    struct spa_chunk *chunk;
};
struct spa_meta { uint32_t type; uint32_t size; void *data; };
struct spa_buffer {
    uint32_t n_metas;
    uint32_t n_datas;
    struct spa_meta *metas;
    struct spa_data *datas;
};
struct spa_meta_header {
    uint32_t flags;
    uint32_t offset;
    int64_t pts;
    int64_t dts_offset;
    uint64_t seq;
};
struct spa_meta_region { struct spa_region region; };
struct spa_meta_bitmap {
    uint32_t format;
    struct spa_rectangle size;
    int32_t stride;
    uint32_t offset;
};
struct spa_meta_cursor {
    uint32_t id;
    uint32_t flags;
    struct spa_point position;
    struct spa_point hotspot;
    uint32_t bitmap_offset;
};

struct pw_buffer {
    struct spa_buffer *buffer;
    void *user_data;
    uint64_t size;
    uint64_t requested;
};

struct pw_stream_events {
    uint32_t version;
    void (*destroy)(void *data);
    void (*state_changed)(void *data, int old, int state, const char *error);
    void (*control_info)(void *data, uint32_t id, const void *control);
    void (*io_changed)(void *data, uint32_t id, void *area, uint32_t size);
    void (*param_changed)(void *data, uint32_t id, const struct spa_pod *param);
    void (*add_buffer)(void *data, struct pw_buffer *buffer);
    void (*remove_buffer)(void *data, struct pw_buffer *buffer);
    void (*process)(void *data);
    void (*drained)(void *data);
    void (*command)(void *data, const void *command);
    void (*trigger_done)(void *data);
};

struct pw_proxy_events {
    uint32_t version;
    void (*destroy)(void *data);
    void (*bound)(void *data, uint32_t global_id);
    void (*removed)(void *data);
    void (*done)(void *data, int seq);
    void (*error)(void *data, int seq, int res, const char *message);
};
"""

FUNCTIONS = """
struct pw_thread_loop; struct pw_loop; struct pw_context; struct pw_core;
struct pw_stream; struct pw_properties; struct pw_proxy; struct spa_dict;

void pw_init(int *argc, char ***argv);
const char *pw_get_library_version(void);

struct pw_thread_loop *pw_thread_loop_new(const char *name, const struct spa_dict *props);
void pw_thread_loop_destroy(struct pw_thread_loop *loop);
int pw_thread_loop_start(struct pw_thread_loop *loop);
void pw_thread_loop_stop(struct pw_thread_loop *loop);
void pw_thread_loop_lock(struct pw_thread_loop *loop);
void pw_thread_loop_unlock(struct pw_thread_loop *loop);
struct pw_loop *pw_thread_loop_get_loop(struct pw_thread_loop *loop);

struct pw_properties *pw_properties_new_string(const char *args);
int pw_properties_set(struct pw_properties *properties, const char *key, const char *value);

struct pw_context *pw_context_new(struct pw_loop *main_loop, struct pw_properties *props,
                                  size_t user_data_size);
void pw_context_destroy(struct pw_context *context);
struct pw_core *pw_context_connect(struct pw_context *context, struct pw_properties *properties,
                                   size_t user_data_size);
struct pw_core *pw_context_connect_fd(struct pw_context *context, int fd,
                                      struct pw_properties *properties, size_t user_data_size);
int pw_core_disconnect(struct pw_core *core);

void pw_proxy_add_listener(struct pw_proxy *proxy, struct spa_hook *listener,
                           const struct pw_proxy_events *events, void *data);

struct pw_stream *pw_stream_new(struct pw_core *core, const char *name,
                                struct pw_properties *props);
void pw_stream_destroy(struct pw_stream *stream);
void pw_stream_add_listener(struct pw_stream *stream, struct spa_hook *listener,
                            const struct pw_stream_events *events, void *data);
int pw_stream_connect(struct pw_stream *stream, int direction, uint32_t target_id,
                      int flags, const struct spa_pod **params, uint32_t n_params);
int pw_stream_disconnect(struct pw_stream *stream);
int pw_stream_update_params(struct pw_stream *stream, const struct spa_pod **params,
                            uint32_t n_params);
uint32_t pw_stream_get_node_id(struct pw_stream *stream);
struct pw_buffer *pw_stream_dequeue_buffer(struct pw_stream *stream);
int pw_stream_queue_buffer(struct pw_stream *stream, struct pw_buffer *buffer);
const char *pw_stream_state_as_string(int state);
"""
ffi.cdef(CDEF + FUNCTIONS)

# enum pw_stream_state
STATE_ERROR = -1
STATE_UNCONNECTED = 0
STATE_CONNECTING = 1
STATE_PAUSED = 2
STATE_STREAMING = 3
# enum spa_direction
DIRECTION_INPUT = 0
DIRECTION_OUTPUT = 1
# enum pw_stream_flags
STREAM_FLAG_AUTOCONNECT = 1 << 0
STREAM_FLAG_MAP_BUFFERS = 1 << 2
STREAM_FLAG_DRIVER = 1 << 3
STREAM_FLAG_DONT_RECONNECT = 1 << 7
STREAM_FLAG_ALLOC_BUFFERS = 1 << 8
VERSION_STREAM_EVENTS = 2
VERSION_PROXY_EVENTS = 0
ID_ANY = 0xFFFFFFFF
# spa/buffer/buffer.h
DATA_MEMPTR = 1
DATA_MEMFD = 2
DATA_DMABUF = 3
CHUNK_FLAG_CORRUPTED = 1 << 0
CHUNK_FLAG_EMPTY = 1 << 1
# spa/buffer/meta.h
META_HEADER = 1
META_VIDEO_DAMAGE = 3
META_CURSOR = 5
META_HEADER_FLAG_CORRUPTED = 1 << 1

LIBRARY = "libpipewire-0.3.so.0"  # the runtime package's soname: no -dev package needed
_lib = None
_lock = threading.Lock()


def load():
    """The dlopened libpipewire, initialised once; CaptureError when absent."""
    global _lib
    with _lock:
        if _lib is None:
            try:
                lib = ffi.dlopen(LIBRARY)
            except OSError as exc:
                raise CaptureError(
                    "libpipewire-0.3 is not installed, so PipeWire streams cannot be read",
                    hint="apt-get install libpipewire-0.3-0 (the portal backend needs it)",
                ) from exc
            lib.pw_init(ffi.NULL, ffi.NULL)
            _lib = lib
        return _lib
