#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs README.md's build, install and consume commands exactly as a reader copies them.

A block the test takes is marked by an HTML comment (invisible when rendered) on the line
before its fence:

  <!-- readme-test: file PATH -->
      The block is a file the reader creates: written to WORK/PATH.
  <!-- readme-test: run DIR -->
  <!-- readme-test: run DIR; expect TEXT -->
      The block is shell commands the reader types in DIR: `reactor` is the checkout (a
      scratch copy of it, build trees and results left out), any other name is WORK/DIR.
      Each block runs in a fresh bash (pipefail on), one command line after another; the
      first that exits non-zero fails the test. With `expect`, TEXT must be in the output.

Files are written first, then the run blocks run in the order the README gives them.

The one change made to the text: the install prefix the README uses, /opt/reactor, becomes
WORK/opt/reactor, because a test may not write to /opt. The environment is the caller's
without the variables that would make a broken command pass (PKG_CONFIG_PATH,
CMAKE_PREFIX_PATH and the rest of CMAKE_* and PKG_CONFIG_*, compiler and flag variables).
When ccache is installed, CMake's compiler launcher is set to it (an environment variable,
not a change to the commands) so that repeated runs reuse objects.

usage: readme_commands.py --readme README.md --source CHECKOUT --work SCRATCH_DIR
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

PREFIX = "/opt/reactor"
MARKER = re.compile(r"^<!--\s*readme-test:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(```+)\s*([\w+-]*)\s*$")
# Variables that point tools at an installed copy or change how code is compiled.
CLEARED = ("PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR", "CPATH", "CPLUS_INCLUDE_PATH",
           "LIBRARY_PATH", "LD_LIBRARY_PATH", "CC", "CXX", "CFLAGS", "CXXFLAGS",
           "CPPFLAGS", "LDFLAGS")


def not_copied(source):
    """For shutil.copytree: what .gitignore leaves out of the checkout (build trees, results)."""
    source = os.path.abspath(source)

    def ignore(directory, names):
        top = os.path.abspath(directory) == source
        bench = os.path.abspath(directory) == os.path.join(source, "bench")
        return {n for n in names
                if n in (".git", "__pycache__", "compile_commands.json")
                or (top and (n.startswith("build") or n == "out"))
                or (bench and n == "results")}
    return ignore


def fail(message):
    print(f"readme-test: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def parse_blocks(readme):
    """[(line number, kind, argument, expect, text)] for every marked block."""
    lines = open(readme, encoding="utf-8").read().split("\n")
    blocks = []
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        if not m:
            i += 1
            continue
        where = i + 1
        spec, _, expect = m.group(1).partition(";")
        words = spec.split()
        expect = expect.strip()
        if expect and not expect.startswith("expect "):
            fail(f"README.md:{where}: after ';' only 'expect TEXT' is known: {m.group(1)!r}")
        expect = expect[len("expect "):].strip() if expect else ""
        if len(words) != 2 or words[0] not in ("file", "run"):
            fail(f"README.md:{where}: marker must be 'file PATH' or 'run DIR': {m.group(1)!r}")
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if not fence:
            fail(f"README.md:{where}: a readme-test marker must be right before a ``` fence")
        body = []
        j = i + 2
        while j < len(lines) and lines[j].strip() != fence.group(1):
            body.append(lines[j])
            j += 1
        if j == len(lines):
            fail(f"README.md:{where}: the marked block is never closed")
        blocks.append((where, words[0], words[1], expect, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def command_lines(text):
    """The block's command lines, a line ending in a backslash joined with the next."""
    out, current = [], ""
    for line in text.split("\n"):
        current += line + "\n"
        if line.endswith("\\"):
            continue
        if current.strip() and not current.lstrip().startswith("#"):
            out.append(current)
        current = ""
    if current.strip():
        out.append(current)
    return out


def script_for(text):
    """The block's commands, unchanged, each followed by a check of its exit status."""
    parts = ["set -o pipefail"]
    for i, cmd in enumerate(command_lines(text)):
        parts.append(f"printf '%s\\n' {shell_quote('$ ' + cmd.rstrip())}")
        parts.append(cmd.rstrip("\n"))
        parts.append(f"rc=$?; if [ $rc -ne 0 ]; then echo \"readme-test: command {i + 1} "
                     f"exited $rc\" >&2; exit $rc; fi")
    return "\n".join(parts) + "\n"


def shell_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def clean_environment():
    env = {k: v for k, v in os.environ.items()
           if k not in CLEARED and not k.startswith(("CMAKE_", "PKG_CONFIG_"))}
    if shutil.which("ccache"):
        env["CMAKE_CXX_COMPILER_LAUNCHER"] = "ccache"
        env["CMAKE_C_COMPILER_LAUNCHER"] = "ccache"
    return env


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--readme", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--timeout", type=float, default=900, help="seconds per block")
    args = ap.parse_args()

    blocks = parse_blocks(args.readme)
    if not any(kind == "run" for _, kind, _, _, _ in blocks):
        fail("README.md has no <!-- readme-test: run DIR --> block")

    work = os.path.abspath(args.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    prefix = os.path.join(work, "opt", "reactor")
    print(f"readme-test: {len(blocks)} marked blocks; {PREFIX} is {prefix} here")
    shutil.copytree(args.source, os.path.join(work, "reactor"), ignore=not_copied(args.source),
                    symlinks=True)
    env = clean_environment()
    if "CMAKE_CXX_COMPILER_LAUNCHER" in env:
        # ccache keys on absolute paths; relative to WORK they are the same in every run.
        env["CCACHE_BASEDIR"] = work

    for where, kind, arg, _, text in blocks:
        if kind == "file":
            path = os.path.normpath(os.path.join(work, arg))
            if not path.startswith(work + os.sep) or arg.startswith("reactor/"):
                fail(f"README.md:{where}: file {arg!r} is outside the scratch directory")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text.replace(PREFIX, prefix))
            print(f"readme-test: README.md:{where}: wrote {arg}")

    for where, kind, arg, expect, text in blocks:
        if kind != "run":
            continue
        cwd = os.path.join(work, arg)
        if not os.path.isdir(cwd):
            fail(f"README.md:{where}: no directory {arg!r} to run in (no file block made it)")
        print(f"readme-test: README.md:{where}: running in {arg}/:", flush=True)
        try:
            r = subprocess.run(["bash", "-c", script_for(text.replace(PREFIX, prefix))],
                               cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=args.timeout)
        except subprocess.TimeoutExpired:
            fail(f"README.md:{where}: the block took over {args.timeout:.0f} s")
        output = r.stdout.decode(errors="replace")
        print(output, end="" if output.endswith("\n") else "\n")
        if r.returncode != 0:
            fail(f"README.md:{where}: a command of the block failed (exit {r.returncode})")
        if expect and expect not in output:
            fail(f"README.md:{where}: the output lacks {expect!r}")
    print("readme-test: every marked README command ran as written")


if __name__ == "__main__":
    main()
