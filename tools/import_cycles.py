#!/usr/bin/env python3
"""Lists the module-to-module import edges of src/ (`use crate::…`, `use super::…`, inline
`crate::a::b` paths in code, and child modules named bare, `lbfgs::State` in optim/mod.rs)
and reports every import circle (a strongly connected component of more than one module),
as tests/layout.rs does: among files (leaving out a module's use of its own ancestors) and
among the top-level modules of src/ (all of their files' edges). Exit 1 when there is one.

A module is a file: src/a/b.rs and src/a/b/mod.rs are `a::b`; src/lib.rs is the root.
A parent's `mod child;` declaration is not an edge; a parent naming its child is.
Usage: python3 tools/import_cycles.py [--edges] [SRC_DIR]"""
import os
import re
import sys


def module_of(path, src):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel in (["lib"], ["main"]):
        return ()
    return tuple(rel)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def use_trees(text):
    """Yields every full path a `use` statement names, braces expanded."""
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        # `a as b` becomes `a@b` before the white space goes.
        yield from expand(re.sub(r"\s+", "", re.sub(r"\s+as\s+", "@", m.group(1))))


def expand(tree):
    i = tree.find("{")
    if i < 0:
        yield tree.split("@")[0]
        return
    prefix, inner = tree[:i], tree[i + 1 : tree.rfind("}")]
    depth, start, parts = 0, 0, []
    for j, ch in enumerate(inner):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:j])
            start = j + 1
    parts.append(inner[start:])
    for p in parts:
        if p:
            yield from expand(prefix + p)


def resolve(path, here, modules):
    """The module a path names: the longest known module prefix of its absolute form."""
    segs = [s for s in path.split("::") if s]
    if not segs:
        return None
    if segs[0] == "crate":
        abs_ = []
        segs = segs[1:]
    elif segs[0] == "super":
        abs_ = list(here)
        while segs and segs[0] == "super":
            abs_ = abs_[:-1]
            segs = segs[1:]
    elif segs[0] == "self":
        abs_ = list(here)
        segs = segs[1:]
    else:
        return None
    full = abs_ + [s for s in segs if s != "self"]
    for k in range(len(full), -1, -1):
        if tuple(full[:k]) in modules:
            return tuple(full[:k])
    return None


def edges_of(src):
    files = {}
    for root, _, names in os.walk(src):
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(root, n)
                files[module_of(p, src)] = p
    modules = set(files)
    edges = {m: set() for m in modules}
    for m, p in files.items():
        text = strip_comments(open(p, encoding="utf-8").read())
        paths = list(use_trees(text))
        # Inline paths in code: crate::a::b::Item, super::x::y.
        paths += re.findall(r"(?<![\w:])((?:crate|super)(?:::\w+)+)", text)
        for path in paths:
            t = resolve(path, m, modules)
            if t is not None and t != m and t != ():
                edges[m].add(t)
        # Child modules named bare, outside strings.
        code = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
        for c in modules:
            if len(c) == len(m) + 1 and c[: len(m)] == m:
                if re.search(r"(?<![\w:])" + re.escape(c[-1]) + r"::", code):
                    edges[m].add(c)
    return edges


def file_graph(edges):
    """Every edge but a module's use of its own ancestors."""
    return {m: {t for t in to if not (len(t) < len(m) and m[: len(t)] == t)} for m, to in edges.items()}


def top_level(edges):
    """The top-level modules' graph: each one's files' edges to the others."""
    out = {}
    for m, to in edges.items():
        if not m:
            continue
        out.setdefault(m[:1], set()).update(t[:1] for t in to if t and t[0] != m[0])
    return out


def sccs(edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def name(m):
    return "::".join(m) or "crate"


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    src = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "src")
    edges = edges_of(src)
    if "--edges" in sys.argv:
        for m in sorted(edges):
            for t in sorted(edges[m]):
                print(f"{name(m)} -> {name(t)}")
    n_edges = sum(len(t) for t in edges.values())
    found = 0
    for what, graph in (("files", file_graph(edges)), ("top-level modules", top_level(edges))):
        circles = sccs(graph)
        found += len(circles)
        print(f"{what}: {len(graph)} modules, {len(circles)} circle(s)")
        for c in circles:
            members = set(c)
            print("circle:", ", ".join(sorted(name(m) for m in c)))
            for m in sorted(c):
                for t in sorted(graph[m] & members):
                    print(f"    {name(m)} -> {name(t)}")
    print(f"{n_edges} import edges in all")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
