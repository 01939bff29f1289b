"""The tree matches docs/ARCHITECTURE.md: every import is an allowed arrow, none
is a forbidden one, and no two packages depend on each other through any path.

The allowed arrows are read from the table in docs/ARCHITECTURE.md, so the
page and the code cannot drift apart; the forbidden ones are also written
here, with their reasons, so the table cannot quietly allow them either.
Every import counts, lazy ones inside functions included: a lazy import is
still an arrow, only a hidden one.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "ARCHITECTURE.md"
STAGES = {"capture", "convert", "encode", "decode", "present", "input", "audio", "clipboard"}
NO_SOCKETS = {"capture", "convert", "encode", "decode", "present", "crypto", "protocol"}
# Below the network no package waits on sockets; capture and present may
# select() on their own X or DRM descriptors, so the standard library check
# is for the two that handle only bytes.
SOCKET_MODULES = {"protocol": {"socket", "select", "selectors", "asyncio"},
                  "crypto": {"select", "selectors", "asyncio"}}


def allowed_arrows() -> dict[str, set[str]]:
    """package -> the packages it may import, from the page's table."""
    table: dict[str, set[str]] = {}
    for line in DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        table[cells[0].strip("`")] = set(re.findall(r"`([\w]+)`", cells[2]))
    return table


def package_of(module: str) -> str | None:
    """'rootstream.net.udp' -> 'net', 'rootstream.errors' -> 'errors',
    'rootstream_cli.host' -> 'cli'; None outside the project."""
    parts = module.split(".")
    if parts[0] == "rootstream_cli":
        return "cli"
    if parts[0] != "rootstream":
        return None
    return parts[1] if len(parts) > 1 else "rootstream"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "cli":
        parts[0] = "rootstream_cli"
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(absolute module imported, line) for every import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            # `from rootstream import host` imports the package rootstream.host.
            if node.module in ("rootstream", "rootstream_cli") and not node.level:
                found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names
                          if is_module(node.module, alias.name)]
    return found


def is_module(package: str, name: str) -> bool:
    folder = ROOT / ("cli" if package == "rootstream_cli" else package)
    return (folder / f"{name}.py").exists() or (folder / name / "__init__.py").exists()


def project_files() -> list[Path]:
    return sorted([*ROOT.glob("rootstream/**/*.py"), *ROOT.glob("cli/**/*.py")])


def arrows() -> dict[tuple[str, str], list[str]]:
    """(from package, to package) -> where, for every import across packages."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in project_files():
        source = package_of(module_name(path))
        for target, line in imports_of(path):
            destination = package_of(target)
            if destination is not None and destination != source:
                found[(source, destination)].append(f"{path.relative_to(ROOT)}:{line} {target}")
    return found


def stdlib_imports(package: str) -> dict[str, list[str]]:
    """Top-level module -> where, for every import in ``package``."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in project_files():
        if package_of(module_name(path)) == package:
            for target, line in imports_of(path):
                found[target.split(".")[0]].append(f"{path.relative_to(ROOT)}:{line}")
    return found


def forbidden(source: str, destination: str) -> str | None:
    """Why an arrow must never exist, or None."""
    if source == "protocol" and destination in {"net", "crypto", "host", "client", "session"}:
        return "protocol knows no sockets or sessions"
    if source in NO_SOCKETS and destination == "net":
        return "capture, codecs, converters, presenters and crypto know no sockets"
    if source in STAGES and destination in {"host", "client"}:
        return "stages know no sessions"
    if source != "cli" and destination == "cli":
        return "nothing in the library imports the command line"
    if source == "_native" and destination != "errors":
        return "the native core is a leaf"
    if source != "cli" and destination == "benchrun":
        return "the product does not run on the bench"
    if destination == "testing":
        return "nothing in the library imports the test harnesses"
    return None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_package_is_on_the_page():
    table = allowed_arrows()
    packages = {package_of(module_name(path)) for path in project_files()}
    assert packages - set(table) == set(), "add these to docs/ARCHITECTURE.md"


def test_every_import_is_an_allowed_arrow():
    table = allowed_arrows()
    unlisted = {f"{source} -> {destination}": where[:3]
                for (source, destination), where in arrows().items()
                if destination not in table.get(source, set())}
    assert unlisted == {}, "arrows docs/ARCHITECTURE.md does not allow"


def test_no_forbidden_arrow_exists_or_is_allowed():
    table = allowed_arrows()
    allowed = {(s, d) for s, targets in table.items() for d in targets}
    bad = {f"{s} -> {d}: {forbidden(s, d)}": where[:3]
           for (s, d), where in {**{a: ["(allowed by the page)"] for a in allowed},
                                 **arrows()}.items()
           if forbidden(s, d)}
    assert bad == {}


@pytest.mark.parametrize("package", sorted(SOCKET_MODULES))
def test_no_socket_loops_below_the_network(package):
    banned = SOCKET_MODULES[package]
    found = {name: where for name, where in stdlib_imports(package).items() if name in banned}
    assert found == {}, f"{package} knows no sockets"


def test_no_package_cycles():
    graph: dict[str, set[str]] = defaultdict(set)
    for source, destination in arrows():
        graph[source].add(destination)
    assert cycles(graph) == []


def test_the_checks_catch_what_they_are_for():
    # The same functions on made-up graphs: a cycle and each kind of forbidden arrow.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert forbidden("protocol", "net") and forbidden("capture", "net")
    assert forbidden("present", "client") and forbidden("host", "cli")
    assert forbidden("_native", "capture") and forbidden("host", "benchrun")
    assert forbidden("client", "testing")
    assert forbidden("host", "capture") is None
    assert package_of("rootstream.net.udp") == "net" and package_of("numpy") is None
    assert package_of("rootstream_cli.doctor") == "cli"
