#!/usr/bin/env python3
"""Lists the Rust functions longer than a limit (default 80 lines, from the `fn` line to its
closing brace, nested functions and closures counted in their parent too).
Usage: python3 tools/long_functions.py [--max N] [DIR_OR_FILE ...]
(default: src examples benches, as tests/layout.rs checks)
Exit 1 when any function is over the limit."""
import os
import re
import sys

FN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?"
                r"(?:extern\s+\"[^\"]*\"\s+)?fn\s+(\w+)")


def code_only(line, in_block):
    """The line without comments and string contents (so braces in them do not count)."""
    out, i = [], 0
    while i < len(line):
        if in_block:
            j = line.find("*/", i)
            if j < 0:
                return "".join(out), True
            i, in_block = j + 2, False
        elif line.startswith("//", i):
            break
        elif line.startswith("/*", i):
            in_block, i = True, i + 2
        elif line[i] == '"':
            j = i + 1
            while j < len(line) and line[j] != '"':
                j += 2 if line[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif line[i] == "'" and re.match(r"'(\\.|[^\\'])'", line[i:]):
            i += len(re.match(r"'(\\.|[^\\'])'", line[i:]).group(0))
        else:
            out.append(line[i])
            i += 1
    return "".join(out), in_block


def functions(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    clean, in_block = [], False
    for line in lines:
        c, in_block = code_only(line, in_block)
        clean.append(c)
    for start, line in enumerate(clean):
        m = FN.match(line)
        if not m:
            continue
        depth, opened = 0, False
        for end in range(start, len(clean)):
            for ch in clean[end]:
                if ch == "{":
                    depth, opened = depth + 1, True
                elif ch == "}":
                    depth -= 1
                elif ch == ";" and not opened and depth == 0:
                    break  # a declaration without a body
            else:
                if opened and depth == 0:
                    yield m.group(1), start + 1, end - start + 1
                    break
                continue
            break


def main():
    args = sys.argv[1:]
    limit = 80
    if "--max" in args:
        i = args.index("--max")
        limit = int(args[i + 1])
        del args[i : i + 2]
    roots = args or ["src", "examples", "benches"]
    found = []
    for root in roots:
        paths = [root] if root.endswith(".rs") else [
            os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".rs")]
        for p in sorted(paths):
            for name, line, n in functions(p):
                if n > limit:
                    found.append((n, f"{p}:{line}", name))
    for n, where, name in sorted(found, reverse=True):
        print(f"{n:5}  {where}  {name}")
    print(f"{len(found)} function(s) over {limit} lines")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
