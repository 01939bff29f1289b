"""The soak's census (rootstream/census.py) names what grows and what the collector frees."""

from __future__ import annotations

import collections
import gc
import sys
import types

import pytest

from rootstream import census


class Records:
    def __init__(self):
        self.fills = collections.deque()


class Knot:
    def __init__(self):
        self.me = self  # a reference cycle: only the cyclic collector frees it


@pytest.fixture
def probe_module():
    # The census walks from the loaded modules (and other threads' frames).
    module = types.ModuleType("census_probe")
    module.records = Records()
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


def test_a_growing_container_is_found_and_named_by_its_path(probe_module):
    reference = census.census()
    for n in range(500):
        probe_module.records.fills.append((n, n))
    now = census.census()
    grown = census.compare(reference, now, top=50)["containers"]
    top = next(c for c in grown if c["kind"].startswith("deque") and c["grew"] == 500)
    names = census.name_containers([top["key"]], now["parents"], now["roots"])
    assert names[top["key"]].startswith("module census_probe")
    assert "Records" in names[top["key"]] and "fills" in names[top["key"]]


def test_cyclic_garbage_is_counted_by_type_and_freed():
    gc.collect()
    gc.disable()  # no automatic collection may free some of them first
    try:
        for _ in range(50):
            Knot()
    finally:
        gc.enable()
    garbage = census.collect_garbage()
    assert dict(garbage["kinds"]).get("Knot") == 50
    assert gc.garbage == []  # saved only to be counted


def test_pymallocs_own_account_is_read():
    figures = census.pymalloc_figures()
    assert figures["arenas_now"] >= 1 and figures["live_bytes"] > 0
    assert {"arenas_highwater", "free_block_bytes", "empty_pools"} <= set(figures)


def test_the_interpreters_free_lists_are_counted_and_a_full_collection_empties_them():
    # Freed tuples wait in per-size free lists (up to 2,000 each) that only a
    # full collection empties: blocks counted as live with nothing alive.
    gc.collect()
    tuples = [tuple(range(n % 5 + 1)) for n in range(5_000)]
    before = census.pymalloc_figures()["free_list_objects"]
    del tuples
    kept = census.pymalloc_figures()["free_list_objects"]
    gc.collect()
    assert kept - before >= 4_000
    assert census.pymalloc_figures()["free_list_objects"] < before + 100
