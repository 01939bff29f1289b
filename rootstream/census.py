"""A census of the Python heap over time, for soaks: ``ROOTSTREAM_CENSUS=PATH``.

tracemalloc names the line that allocated what stays, but not a container
that grows by one small object a second to a large bound, nor memory that
pymalloc keeps although nothing lives in it.  A census answers both without
tracing every allocation: every ``ROOTSTREAM_CENSUS_EVERY`` seconds (default
30) it appends one JSON line to PATH with

- ``blocks``: Python's live small-object blocks (``sys.getallocatedblocks``);
- ``pymalloc``: pymalloc's own account (``sys._debugmallocstats``): arenas
  now and at their high-water mark, bytes in live blocks, bytes free inside
  pools that are in use, and empty pools.  Live blocks flat while arenas
  grow is fragmentation, not a leak;
- ``types``: the object counts by type (``gc.get_objects``) that changed most
  since the reference census (the first one taken after
  ``ROOTSTREAM_CENSUS_AFTER`` seconds, default 60);
- ``reached``: the same for every object the walk below reaches, ints and
  strings included (the collector does not track those);
- ``containers``: the lists, dicts, deques and sets reachable
  from the loaded modules and the running threads' frames whose length grew
  most since the reference, each with the path that reaches it (``module
  rootstream.x > Client > _frames``), so a slow-growing record has a name.

A census holds the GIL for as long as the walk takes (a second or so for a
client's 200,000 objects), so it is for investigations, never on by default.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import re
import sys
import tempfile
import threading
import time
import types

ENV_PATH = "ROOTSTREAM_CENSUS"
TOP = 15
SIZED = (list, dict, set, frozenset, collections.deque, collections.OrderedDict)
# Below this a container cannot hide a growth worth reporting in one census.
MIN_LEN = 8


def start_from_environment() -> threading.Thread | None:
    """Start the census when ``ROOTSTREAM_CENSUS`` names a file; else nothing."""
    from rootstream.memtrace import start_logger

    return start_logger(ENV_PATH, 30.0, _census_loop, "census")


def type_counts() -> collections.Counter:
    """Objects the cyclic GC tracks, counted by type name (module-qualified)."""
    counts: collections.Counter = collections.Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        counts[f"{kind.__module__}.{kind.__qualname__}"] += 1
    return counts


def roots() -> list:
    """Where a long-lived container hangs from: the modules and every running frame."""
    found: list = [module for module in list(sys.modules.values()) if module is not None]
    for thread_id, frame in sys._current_frames().items():
        if thread_id == threading.get_ident():
            continue  # the census's own locals: its reference and its results
        while frame is not None:
            found.append(frame.f_locals)
            frame = frame.f_back
    return found


def walk(start: list, skip: set[int] | None = None) -> tuple[dict, dict, collections.Counter]:
    """Every container of ``MIN_LEN`` or more reachable from ``start``, as
    id -> (len, parent id, type name); the parent id of every object seen;
    and how many objects of each type were reached.

    Breadth first, so the parent recorded is on a shortest path.  Types,
    code and the census's own objects are not followed (their referents are
    the interpreter's, not the program's data)."""
    skip = set(skip or ()) | {id(start)}
    parent: dict[int, int | None] = {id(obj): None for obj in start}
    seen: set[int] = set(parent) | skip
    sized: dict[int, tuple] = {}
    reached: collections.Counter = collections.Counter()
    queue = collections.deque(start)
    while queue:
        obj = queue.popleft()
        reached[type(obj).__qualname__] += 1  # ints and strings too, which gc does not track
        if isinstance(obj, SIZED):
            try:
                length = len(obj)
            except Exception:  # noqa: BLE001 - a container mid-mutation on another thread
                length = -1
            if length >= MIN_LEN:  # ids and lengths only: a census keeps nothing alive
                sized[id(obj)] = (length, parent[id(obj)], type(obj).__qualname__)
        if isinstance(obj, (type, types.CodeType, types.FunctionType, str, bytes)):
            continue
        try:
            children = gc.get_referents(obj)
        except Exception:  # noqa: BLE001
            continue
        for child in children:
            if id(child) not in seen:
                seen.add(id(child))
                parent[id(child)] = id(obj)
                queue.append(child)
    return sized, parent, reached


def path_of(key: int, parents: dict[int, int | None], objects: dict[int, object]) -> str:
    """The chain of objects from a root down to ``key``, named by type and by
    the attribute or key that holds the next one."""
    chain = []
    while key is not None and len(chain) < 12:
        chain.append(key)
        key = parents.get(key)
    chain.reverse()
    names = []
    for up, down in zip([None, *chain], chain, strict=False):
        obj = objects.get(down)
        holder = objects.get(up) if up is not None else None
        names.append(_name_step(holder, obj))
    return " > ".join(names)


def _name_step(holder, obj) -> str:
    if holder is None:
        if isinstance(obj, types.ModuleType):
            return f"module {obj.__name__}"
        return type(obj).__qualname__
    if isinstance(holder, dict):
        for k, v in holder.items():
            if v is obj:
                return f"[{k!r}]"[:60]
        return "[?]"
    if isinstance(holder, (list, tuple, collections.deque)):
        return f"[item] {type(obj).__qualname__}"
    attributes = getattr(holder, "__dict__", None)
    if attributes is obj:
        return f"{type(holder).__qualname__}.__dict__"
    for name, value in (attributes.items() if isinstance(attributes, dict) else ()):
        if value is obj:  # 3.11 keeps an instance's attributes without a dict
            return f"{type(holder).__qualname__}.{name}"
    return type(obj).__qualname__


def pymalloc_figures() -> dict:
    """pymalloc's account of itself, parsed from ``sys._debugmallocstats`` (it
    writes to the C stderr, so fd 2 is pointed at a temporary file for it: a
    line another thread writes to stderr in that millisecond goes there too,
    which is why only the soak's logs call this, never a normal run)."""
    with tempfile.TemporaryFile(mode="w+") as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        text = sink.read()
    wanted = {"arenas allocated total": "arenas_total",
              "arenas reclaimed": "arenas_reclaimed",
              "arenas highwater mark": "arenas_highwater",
              "arenas allocated current": "arenas_now",
              "bytes in allocated blocks": "live_bytes",
              "bytes in available blocks": "free_block_bytes"}
    figures = {}
    empty = re.search(r"^(\d+) unused pools", text, re.MULTILINE)
    if empty:
        figures["empty_pools"] = int(empty.group(1))
    # The interpreter's own free lists (tuples of each size up to 2,000 each,
    # floats, lists, dicts...): blocks Python counts as allocated, kept for
    # reuse and emptied only by a full collection.
    figures["free_list_objects"] = sum(int(n) for n in re.findall(
        r"^\s*(\d+) free [\w-]+ ?\w*Objects", text, re.MULTILINE))
    for line in text.splitlines():
        match = re.match(r"#?\s*(\d+\s+)?([a-z ]+?)\s*=\s*([\d,]+)", line.strip())
        if match and match.group(2).strip() in wanted:
            figures[wanted[match.group(2).strip()]] = int(match.group(3).replace(",", ""))
    return figures


def collect_garbage() -> dict:
    """A full collection, saying what it freed: objects in reference cycles
    wait for it, and a long-running process makes one only every few thousand
    surviving objects, so cyclic garbage made at a steady rate looks like a
    leak in RSS (a closed sound playback did, docs/SOAK.md).  Counted by type
    with ``DEBUG_SAVEALL``, then let go."""
    blocks = sys.getallocatedblocks()
    flags = gc.get_debug()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        found = gc.collect()
        kinds = collections.Counter(type(obj).__qualname__ for obj in gc.garbage)
    finally:
        gc.garbage.clear()
        gc.set_debug(flags)
    gc.collect()  # now frees what was saved
    return {"blocks_before": blocks, "unreachable": found,
            "kinds": kinds.most_common(TOP)}


def census() -> dict:
    """One census: cyclic garbage freed, then live blocks, pymalloc's figures
    (before the walk, which allocates), counts by type, containers."""
    garbage = collect_garbage()
    blocks, pymalloc = sys.getallocatedblocks(), pymalloc_figures()
    start = roots()
    sized, parents, reached = walk(start)
    return {"blocks": blocks, "pymalloc": pymalloc, "garbage": garbage, "types": type_counts(),
            "reached": reached, "sized": sized, "parents": parents, "roots": start}


def compare(reference: dict, now: dict, top: int = TOP) -> dict:
    """What grew between two censuses: counts by type and container lengths."""
    grown, new = [], []
    for key, (length, _parent, label) in now["sized"].items():
        before = reference["sized"].get(key)
        if before is not None and before[2] == label:
            grown.append((length - before[0], key, length, label))
        else:  # made since the reference (or its id reused): in flight, or a new record
            new.append((length, key, length, label + " (new)"))
    grown.sort(reverse=True)
    new.sort(reverse=True)
    return {"types": _changed(reference["types"], now["types"], top),
            "reached": _changed(reference.get("reached", {}), now.get("reached", {}), top),
            "containers": [{"key": key, "len": length, "grew": diff, "kind": label}
                           for diff, key, length, label in grown[:top] + new[:5] if diff > 0]}


def _changed(before: dict, after: dict, top: int) -> list:
    diffs = sorted(((name, count - before.get(name, 0)) for name, count in after.items()),
                   key=lambda item: -abs(item[1]))
    return [[name, diff] for name, diff in diffs[:top] if diff]


def name_containers(keys: list[int], parents: dict, start: list) -> dict[int, str]:
    """Paths for the few containers worth naming: a second walk keeps the
    objects on their chains alive only for as long as it takes."""
    wanted = set()
    for key in keys:
        while key is not None and key not in wanted:
            wanted.add(key)
            key = parents.get(key)
    objects: dict[int, object] = {}
    seen: set[int] = set()
    queue = collections.deque(start)
    while queue and len(objects) < len(wanted):
        obj = queue.popleft()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if id(obj) in wanted:
            objects[id(obj)] = obj
        if isinstance(obj, (type, types.CodeType, types.FunctionType, str, bytes)):
            continue
        queue.extend(gc.get_referents(obj))
    names = {key: path_of(key, parents, objects) for key in keys}
    objects.clear()
    return names


def _census_loop(path: str, after: float, every: float) -> None:
    started = time.monotonic()
    time.sleep(after)
    reference = census()
    for bulky in ("roots", "parents"):
        reference.pop(bulky)
    while True:
        time.sleep(every)
        taken = time.perf_counter()
        now = census()
        grown = compare(reference, now)
        names = name_containers([c["key"] for c in grown["containers"]], now["parents"],
                                now.pop("roots"))
        for container in grown["containers"]:
            container["path"] = names.get(container.pop("key"), "?")
        record = {"t": round(time.monotonic() - started, 1), "garbage": now["garbage"],
                  "blocks": now["blocks"],
                  "blocks_since_reference": now["blocks"] - reference["blocks"],
                  "pymalloc": now["pymalloc"], "objects": sum(now["types"].values()),
                  **grown, "took_s": round(time.perf_counter() - taken, 2)}
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        del now
