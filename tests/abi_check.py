"""Compare structs declared to cffi with what the C compiler makes of the real headers."""

from __future__ import annotations

import subprocess


def layouts(ffi, structs, headers, work_dir) -> tuple[dict[str, int], dict[str, int]]:
    """(ours, the compiler's): sizeof and every field's offsetof of each struct.

    ``structs`` are cffi type names (as in the headers: "struct wl_message",
    "XPropertyEvent"); ``headers`` the #include names that define them.
    """
    checks = []
    for struct_name in structs:
        checks.append(f"sizeof({struct_name})")
        fields = ffi.typeof(struct_name).fields
        checks += [f"offsetof({struct_name}, {field})" for field, _ in fields]
    source = work_dir / "abi.c"
    source.write_text("#include <stddef.h>\n#include <stdio.h>\n"
                      + "".join(f"#include <{h}>\n" for h in headers) + "int main(void) {\n"
                      + "".join(f'printf("%lu\\n", (unsigned long)({c}));\n' for c in checks)
                      + "return 0;\n}\n")
    subprocess.run(["gcc", "-Wall", "-Werror", "-o", str(work_dir / "abi"), str(source)],
                   check=True)
    printed = subprocess.run([str(work_dir / "abi")], capture_output=True, text=True,
                             check=True).stdout.split()

    def ours(check: str) -> int:
        if check.startswith("sizeof("):
            return ffi.sizeof(check[7:-1])
        struct_name, field = check[9:-1].split(", ")
        return ffi.offsetof(struct_name, field)

    return {c: ours(c) for c in checks}, dict(zip(checks, map(int, printed), strict=True))
