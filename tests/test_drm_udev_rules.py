"""udev/60-rootstream.rules is well-formed udev syntax and grants what the README says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

RULES = Path(__file__).parent.parent / "udev" / "60-rootstream.rules"

# One key/operator/value item: KEY, KEY{attr}, then ==, !=, =, +=, -= or :=, then "value".
ITEM = re.compile(r'\s*([A-Z_]+)(\{[^}]*\})?\s*(==|!=|\+=|-=|:=|=)\s*"([^"\\]*)"\s*')
MATCH_KEYS = {"ACTION", "KERNEL", "SUBSYSTEM", "DRIVER", "ATTR", "ENV", "TAG", "KERNELS",
              "SUBSYSTEMS", "DRIVERS", "ATTRS", "NAME", "SYMLINK", "TEST", "PROGRAM", "RESULT"}
ASSIGN_KEYS = {"GROUP", "MODE", "OWNER", "OPTIONS", "TAG", "ENV", "SYMLINK", "RUN", "NAME",
               "ATTR", "IMPORT", "GOTO", "LABEL"}


def parse_rules(text: str) -> list[list[tuple[str, str, str]]]:
    """Each rule as [(key, operator, value)]; ValueError on anything else."""
    rules = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        items, pos = [], 0
        while True:
            item = ITEM.match(line, pos)
            if item is None:
                raise ValueError(f"line {number}: not key=\"value\" syntax at column {pos + 1}")
            key, _, op, value = item.groups()
            if op in ("==", "!=") and key not in MATCH_KEYS:
                raise ValueError(f"line {number}: {key} cannot be matched")
            if op not in ("==", "!=") and key not in ASSIGN_KEYS:
                raise ValueError(f"line {number}: {key} cannot be assigned")
            items.append((key, op, value))
            pos = item.end()
            if pos == len(line):
                break
            if line[pos] != ",":
                raise ValueError(f"line {number}: expected a comma at column {pos + 1}")
            pos += 1
        rules.append(items)
    return rules


def test_rules_parse():
    rules = parse_rules(RULES.read_text())
    assert len(rules) == 3
    assert RULES.read_text().endswith("\n")


def _rule_for(kernel: str) -> dict[str, tuple[str, str]]:
    for rule in parse_rules(RULES.read_text()):
        fields = {key: (op, value) for key, op, value in rule}
        if fields.get("KERNEL") == ("==", kernel):
            return fields
    raise AssertionError(f"no rule for {kernel}")


@pytest.mark.parametrize("kernel", ["card[0-9]*", "renderD[0-9]*"])
def test_dri_nodes_for_the_video_group(kernel):
    fields = _rule_for(kernel)
    assert fields["SUBSYSTEM"] == ("==", "drm")
    assert fields["GROUP"] == ("=", "video") and fields["MODE"] == ("=", "0660")


def test_uinput_for_the_input_group():
    fields = _rule_for("uinput")
    assert fields["GROUP"] == ("=", "input") and fields["MODE"] == ("=", "0660")
    assert fields["OPTIONS"] == ("+=", "static_node=uinput")


@pytest.mark.parametrize("line, message", [
    ('KERNEL=="card0" GROUP="video"', "expected a comma"),
    ('KERNEL=="card0", GROUP=video', "not key=\"value\" syntax"),
    ('MODE=="0660"', "MODE cannot be matched"),
    ('KERNEL="card0"', "KERNEL cannot be assigned"),
])
def test_parser_rejects_broken_rules(line, message):
    with pytest.raises(ValueError, match=message):
        parse_rules(line)
