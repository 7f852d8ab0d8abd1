#!/usr/bin/env python3
"""Formats the bodies of the directory's SQL macros (src/directory/sql/*.rs) with rustfmt.

rustfmt leaves `macro_rules!` bodies alone. Each file holds one macro whose body is ordinary Rust apart from
`$dir`; this takes the body out, dedents it, formats it 8 columns narrower (the indentation it gets back) and
puts it back. Run it after editing those files, then `cargo fmt`:

    python3 scripts/fmt-sql-macros.py src/directory/sql/{admin,logins,tenants,usage}.rs
"""
import subprocess
import sys

OPEN = "    ($dir:ident) => {\n"
CLOSE = "    };\n}\n"
PLACEHOLDER = "MacroDir__"

for path in sys.argv[1:]:
    text = open(path).read()
    start = text.index(OPEN) + len(OPEN)
    end = text.rindex(CLOSE)
    body = "\n".join(line[8:] if line.startswith(" " * 8) else line.strip() for line in text[start:end].split("\n"))
    result = subprocess.run(
        ["rustfmt", "--edition", "2021", "--config", "max_width=112,use_small_heuristics=Max"],
        input=body.replace("$dir", PLACEHOLDER),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"{path}: rustfmt failed:\n{result.stderr}")
    lines = result.stdout.rstrip("\n").split("\n")
    formatted = "\n".join((" " * 8 + line) if line.strip() else "" for line in lines).replace(PLACEHOLDER, "$dir")
    open(path, "w").write(text[:start] + formatted + "\n" + text[end:])
