"""libwayland-client through cffi's ABI mode, and the wlr data-control protocol's tables.

Why cffi ABI mode and not a C helper: the clipboard needs a handful of
requests and events, all of plain types; libwayland-client exports the core
interfaces (wl_registry, wl_seat) as data, and its generic entry points
(``wl_proxy_marshal_array_flags`` to send, ``wl_proxy_add_dispatcher`` to
receive every event of a proxy through one Python callback) take the
protocol's description as tables we can build at run time.  No compiler at
install time, no second process to supervise.

Only the zwlr_data_control_* tables are written here, from the protocol's
documented signatures (wlr-data-control-unstable-v1, version 2; Debian 12
does not package wlr-protocols).  They were checked once, by a script,
against protocol/wlr-data-control-unstable-v1.xml of Debian's wlroots
0.15.1-6 source package: names, order, signatures, types and versions equal.
The signature strings use libwayland's letters: ``n`` new_id, ``o`` object
(``?`` allows null), ``s`` string, ``h`` file descriptor; a leading number is
the version that added the message.  tests/test_clipboard_wayland.py pins
them by driving real sway and wl-clipboard with them, and pins the struct
layouts against the headers.
"""

from __future__ import annotations

from cffi import FFI

ffi = FFI()
ffi.cdef("""
    struct wl_message {
        const char *name; const char *signature; const struct wl_interface **types;
    };
    struct wl_interface {
        const char *name; int version;
        int method_count; const struct wl_message *methods;
        int event_count; const struct wl_message *events;
    };
    union wl_argument {
        int32_t i; uint32_t u; int32_t f; const char *s; void *o; uint32_t n; void *a; int32_t h;
    };
    struct wl_display; struct wl_proxy;
    typedef int (*wl_dispatcher_func_t)(const void *, void *, uint32_t,
                                        const struct wl_message *, union wl_argument *);

    /* not const: cffi reads a const global as a constant, and cannot take its address */
    extern struct wl_interface wl_registry_interface;
    extern struct wl_interface wl_seat_interface;

    struct wl_display *wl_display_connect(const char *name);
    void wl_display_disconnect(struct wl_display *display);
    int wl_display_get_fd(struct wl_display *display);
    int wl_display_roundtrip(struct wl_display *display);
    int wl_display_prepare_read(struct wl_display *display);
    int wl_display_read_events(struct wl_display *display);
    void wl_display_cancel_read(struct wl_display *display);
    int wl_display_dispatch_pending(struct wl_display *display);
    int wl_display_flush(struct wl_display *display);
    int wl_display_get_error(struct wl_display *display);

    struct wl_proxy *wl_proxy_marshal_array_flags(struct wl_proxy *proxy, uint32_t opcode,
        const struct wl_interface *interface, uint32_t version, uint32_t flags,
        union wl_argument *args);
    int wl_proxy_add_dispatcher(struct wl_proxy *proxy, wl_dispatcher_func_t dispatcher_func,
                                const void *dispatcher_data, void *data);
    void wl_proxy_destroy(struct wl_proxy *proxy);
    uint32_t wl_proxy_get_version(struct wl_proxy *proxy);
""")

MARSHAL_FLAG_DESTROY = 1  # WL_MARSHAL_FLAG_DESTROY: the request is the proxy's destructor
DISPLAY_GET_REGISTRY = 1  # wl_display's request opcodes (wayland.xml)
REGISTRY_BIND = 0
REGISTRY_GLOBAL = 0  # wl_registry's event opcodes

# Opcodes, in the protocol's order: requests first, then events, per interface.
MANAGER_CREATE_DATA_SOURCE, MANAGER_GET_DATA_DEVICE, MANAGER_DESTROY = 0, 1, 2
DEVICE_SET_SELECTION, DEVICE_DESTROY = 0, 1
DEVICE_DATA_OFFER, DEVICE_SELECTION, DEVICE_FINISHED, DEVICE_PRIMARY_SELECTION = 0, 1, 2, 3
SOURCE_OFFER, SOURCE_DESTROY = 0, 1
SOURCE_SEND, SOURCE_CANCELLED = 0, 1
OFFER_RECEIVE, OFFER_DESTROY = 0, 1
OFFER_OFFER = 0

MANAGER = "zwlr_data_control_manager_v1"
PROTOCOL_VERSION = 2  # the manager's newest version we speak (primary selection added in 2)
VERSIONS = {MANAGER: 2, "zwlr_data_control_device_v1": 2, "zwlr_data_control_source_v1": 1,
            "zwlr_data_control_offer_v1": 1}

# interface -> (requests, events); each message (name, signature, types of its
# arguments: an interface name for n/o arguments, None for the others).
_PROTOCOL = {
    MANAGER: (
        [("create_data_source", "n", ["zwlr_data_control_source_v1"]),
         ("get_data_device", "no", ["zwlr_data_control_device_v1", "wl_seat"]),
         ("destroy", "", [])],
        []),
    "zwlr_data_control_device_v1": (
        [("set_selection", "?o", ["zwlr_data_control_source_v1"]),
         ("destroy", "", []),
         ("set_primary_selection", "2?o", ["zwlr_data_control_source_v1"])],
        [("data_offer", "n", ["zwlr_data_control_offer_v1"]),
         ("selection", "?o", ["zwlr_data_control_offer_v1"]),
         ("finished", "", []),
         ("primary_selection", "2?o", ["zwlr_data_control_offer_v1"])]),
    "zwlr_data_control_source_v1": (
        [("offer", "s", [None]), ("destroy", "", [])],
        [("send", "sh", [None, None]), ("cancelled", "", [])]),
    "zwlr_data_control_offer_v1": (
        [("receive", "sh", [None, None]), ("destroy", "", [])],
        [("offer", "s", [None])]),
}
PROTOCOL = _PROTOCOL  # read by the tests

_keep: list = []  # every cdata the tables point into lives as long as the module


def _build_interfaces(lib) -> dict[str, object]:
    interfaces = {name: ffi.new("struct wl_interface *") for name in _PROTOCOL}
    known = dict(interfaces, wl_seat=ffi.addressof(lib, "wl_seat_interface"))

    def messages(specs):
        table = ffi.new("struct wl_message[]", max(len(specs), 1))  # C forbids [0]
        for slot, (name, signature, types) in zip(table, specs, strict=False):
            type_table = ffi.new("const struct wl_interface *[]", max(len(types), 1))
            for i, type_name in enumerate(types):
                type_table[i] = known[type_name] if type_name else ffi.NULL
            strings = (ffi.new("char[]", name.encode()), ffi.new("char[]", signature.encode()))
            slot.name, slot.signature, slot.types = strings[0], strings[1], type_table
            _keep.extend((type_table, *strings))
        _keep.append(table)
        return table

    for name, (requests, events) in _PROTOCOL.items():
        interface = interfaces[name]
        label = ffi.new("char[]", name.encode())
        _keep.append(label)
        interface.name, interface.version = label, VERSIONS[name]
        interface.method_count, interface.methods = len(requests), messages(requests)
        interface.event_count, interface.events = len(events), messages(events)
    _keep.extend(interfaces.values())
    return interfaces


class Wayland:
    """The loaded library and the interface tables (loaded once per process)."""

    _loaded: Wayland | None = None

    def __init__(self) -> None:
        self.lib = ffi.dlopen("libwayland-client.so.0")
        self.interfaces = _build_interfaces(self.lib)
        self.registry_interface = ffi.addressof(self.lib, "wl_registry_interface")
        self.seat_interface = ffi.addressof(self.lib, "wl_seat_interface")

    @classmethod
    def load(cls) -> Wayland:
        if cls._loaded is None:
            cls._loaded = cls()
        return cls._loaded

    def request(self, proxy, opcode: int, args: list, *, creates=None, version: int = 0,
                destroy: bool = False):
        """Send one request; ``creates`` names the interface of the new object it makes.

        ``args`` holds ints, bytes (strings) or proxies; a new_id's slot is None.
        ``version`` is the new object's (wl_registry.bind), else the parent's.
        Returns the new proxy (or NULL).
        """
        proxy = ffi.cast("struct wl_proxy *", proxy)  # a wl_display is a proxy too
        array = ffi.new("union wl_argument[]", max(len(args), 1))  # C forbids [0]
        strings = []
        for slot, value in zip(array, args, strict=False):
            if value is None:
                slot.o = ffi.NULL
            elif isinstance(value, bytes):
                strings.append(ffi.new("char[]", value))
                slot.s = strings[-1]
            elif isinstance(value, int):
                slot.u = value & 0xFFFFFFFF
            else:
                slot.o = value
        interface = self.interfaces[creates] if isinstance(creates, str) else creates
        version = version or self.lib.wl_proxy_get_version(proxy)
        return self.lib.wl_proxy_marshal_array_flags(
            proxy, opcode, interface if interface is not None else ffi.NULL, version,
            MARSHAL_FLAG_DESTROY if destroy else 0, array)
