"""Read the hex test vectors out of docs/PROTOCOL.md.

The spec is the single source: each vector is a fenced block

    ```vector NAME
    hex bytes (whitespace ignored), one datagram or payload per line
    ```

so the document and the tests cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
_BLOCK = re.compile(r"^```vector ([\w.-]+)\n(.*?)^```", re.S | re.M)


def load_vectors(name: str = "PROTOCOL.md") -> dict[str, list[bytes]]:
    text = (DOCS / name).read_text(encoding="utf-8")
    vectors: dict[str, list[bytes]] = {}
    for match in _BLOCK.finditer(text):
        lines = [line.split("#", 1)[0].strip() for line in match.group(2).splitlines()]
        vectors[match.group(1)] = [bytes.fromhex(line) for line in lines if line]
    return vectors
