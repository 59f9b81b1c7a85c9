#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Every source file of the project starts with its SPDX license line.

usage: license_headers.py SOURCE_DIR

Source files: C++ (.cpp, .hpp, .hpp.in), Python, CMake, shell scripts (scripts/, .ci/run,
bench/micro/run) and the configured templates under cmake/ and docs/. The line is
`// SPDX-License-Identifier: MIT` or `# SPDX-License-Identifier: MIT`, first in the file or
right after a `#!` line. Build trees, .git and fuzz corpora are not sources.
"""
import os
import sys

LINE = "SPDX-License-Identifier: MIT"
SKIP_DIRS = {".git", "build", "corpus", "__pycache__"}


def comment_of(rel):
    name = os.path.basename(rel)
    if rel.endswith((".cpp", ".hpp", ".hpp.in")):
        return "// "
    if rel.endswith((".py", ".cmake", ".cmake.in", ".pc.in", "Doxyfile.in")) or name == "CMakeLists.txt":
        return "# "
    if rel.startswith("scripts/") or rel in (".ci/run", "bench/micro/run"):
        return "# "
    return None


def main():
    root = sys.argv[1]
    missing, checked = [], 0
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith("build")]
        for f in files:
            rel = os.path.relpath(os.path.join(top, f), root)
            prefix = comment_of(rel)
            if prefix is None:
                continue
            checked += 1
            with open(os.path.join(root, rel), encoding="utf-8") as fh:
                lines = fh.read().split("\n", 2)
            first = lines[1] if lines[0].startswith("#!") and len(lines) > 1 else lines[0]
            if first != prefix + LINE:
                missing.append(rel)
    for rel in sorted(missing):
        print(f"no SPDX line: {rel}")
    print(f"{checked} source files, {len(missing)} without '{LINE}'")
    return 1 if missing or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
