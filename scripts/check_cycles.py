#!/usr/bin/env python3
"""Fail when the crate's modules or files import each other in a cycle.

Usage: scripts/check_cycles.py [SRC_DIR]    (default: src)

Reads every .rs file under SRC_DIR (the library crate rooted at lib.rs; main.rs is a
separate crate and is skipped) and collects the paths it names: `use crate::...`,
`use super::...`, `use self::...`, use paths that start with a child module's name, and the
same paths written inline in code (`crate::audit::Event`, `super::stub::answer(..)`).
Comments, strings, character literals and `pub(in path)` visibilities are skipped; `super::` inside an inline `mod tests
{ .. }` is resolved from that inline module. Each path is resolved to the file that defines
the longest module prefix it names, giving two graphs:

  files:   src/proxy/engine.rs -> src/proxy/broker.rs   (a path from one file into the other)
  modules: proxy -> policy                              (the same, between top-level modules)

Any cycle in either graph is printed, file -> file -> ..., each arrow with the line that
makes it, and the script exits 1. Exit 0 means both graphs are acyclic; 2 is a usage error.
Python 3 standard library only.
"""

import os
import re
import sys
from collections import defaultdict, deque

# Imports from these (from, to) top-level module pairs are left out of both graphs. Empty: the
# ci -> cli -> ci cycle went when the step pipeline left cli/ for step/. Keep it empty.
TEMPORARY_ALLOWED_MODULE_EDGES = []

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_code(text):
    """Blank out comments, string literals and char literals, keeping newlines and offsets."""
    out = []
    i, n = 0, len(text)

    def blank(s):
        return "".join("\n" if c == "\n" else " " for c in s)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif (m := re.compile(r'b?r(#*)"').match(text, i)) and (i == 0 or not re.match(r"[A-Za-z0-9_]", text[i - 1])):
            end = '"' + m.group(1)
            j = text.find(end, m.end())
            j = n if j < 0 else j + len(end)
            out.append(blank(text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(blank(text[i:j]))
            i = j
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a); only the former is blanked.
            m = re.compile(r"'(\\u\{[0-9A-Fa-f]+\}|\\x[0-9A-Fa-f]{2}|\\.|[^\\'\n])'").match(text, i)
            if m:
                out.append(blank(m.group(0)))
                i = m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_of(rel):
    """src-relative file path -> module path tuple (lib.rs -> ())."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] in ("lib", "mod"):
        parts = parts[:-1]
    return tuple(parts)


def expand_use_tree(tree):
    """'a::{b, c::{d, self}}' -> [['a','b'], ['a','c','d'], ['a','c']]."""
    tree = re.sub(r"\s+", "", tree)
    results = []

    def parse(s, i, prefix):
        # parse one use tree starting at s[i]; returns index after it
        segs = list(prefix)
        while i < len(s):
            if s[i] == "{":
                i += 1
                while i < len(s) and s[i] != "}":
                    i = parse(s, i, segs)
                    if i < len(s) and s[i] == ",":
                        i += 1
                return i + 1
            m = re.compile(r"(" + IDENT + r"|\*)").match(s, i)
            if not m:
                return i + 1
            name = m.group(1)
            i = m.end()
            if name == "self":
                results.append(segs)
                return i
            segs = segs + [name]
            if s.startswith("::", i):
                i += 2
                continue
            results.append(segs)
            return i
        return i

    # (`x as y` aliases were removed by the caller, before the whitespace.)
    parse(tree, 0, [])
    return results


class FileInfo:
    def __init__(self, rel, module):
        self.rel = rel
        self.module = module
        self.children = set()  # child module names declared with `mod x;` (file modules)
        self.refs = []  # (line, inner_module_tuple, segments, text)


USE_RE = re.compile(r"\buse\s+([^;]*);")
PATH_RE = re.compile(r"(?<![A-Za-z0-9_:$])((?:crate|super|self)(?:\s*::\s*" + IDENT + r")+)")
VISIBILITY_RE = re.compile(r"\bpub\s*\(\s*in\s+[^)]*\)")
MOD_DECL_RE = re.compile(r"\bmod\s+(" + IDENT + r")\s*;")
MOD_BLOCK_RE = re.compile(r"\bmod\s+(" + IDENT + r")\s*\{")


def parse_file(rel, text):
    info = FileInfo(rel, module_of(rel))
    code = strip_code(text)
    # `pub(in crate::x)` names where an item is visible, not something it uses.
    code = VISIBILITY_RE.sub(lambda m: " " * len(m.group(0)), code)
    line_starts = [0] + [m.end() for m in re.finditer(r"\n", code)]

    def line_of(pos):
        lo, hi = 0, len(line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if line_starts[mid] <= pos:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1

    for m in MOD_DECL_RE.finditer(code):
        info.children.add(m.group(1))

    # Inline modules: (start, end, name) by brace matching.
    inline = []
    for m in MOD_BLOCK_RE.finditer(code):
        depth, j = 1, m.end()
        while j < len(code) and depth:
            if code[j] == "{":
                depth += 1
            elif code[j] == "}":
                depth -= 1
            j += 1
        inline.append((m.start(), j, m.group(1)))

    def inner_module(pos):
        path = list(info.module)
        for start, end, name in sorted(inline):
            if start <= pos < end:
                path.append(name)
        return tuple(path)

    use_spans = []
    for m in USE_RE.finditer(code):
        use_spans.append((m.start(), m.end()))
        body = re.sub(r"\s+as\s+" + IDENT, "", m.group(1))
        body = re.sub(r"^\s*::", "", body)
        for segs in expand_use_tree(body):
            if segs:
                info.refs.append((line_of(m.start()), inner_module(m.start()), segs, "use " + "::".join(segs)))

    def in_use(pos):
        return any(s <= pos < e for s, e in use_spans)

    for m in PATH_RE.finditer(code):
        if in_use(m.start()):
            continue
        segs = [s for s in re.split(r"\s*::\s*", m.group(1)) if s]
        info.refs.append((line_of(m.start()), inner_module(m.start()), segs, "::".join(segs)))

    # Inline paths through a declared child module (`engine::run(..)` in proxy/mod.rs).
    if info.children:
        child_re = re.compile(
            r"(?<![A-Za-z0-9_:$])((?:" + "|".join(sorted(info.children)) + r")(?:\s*::\s*" + IDENT + r")+)"
        )
        for m in child_re.finditer(code):
            if in_use(m.start()):
                continue
            segs = [s for s in re.split(r"\s*::\s*", m.group(1)) if s]
            info.refs.append((line_of(m.start()), inner_module(m.start()), ["self"] + segs, "::".join(segs)))
    return info


def analyse(src):
    files = {}
    for root, dirs, names in os.walk(src):
        dirs.sort()
        for name in sorted(names):
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, name), src)
            if rel == "main.rs" or os.sep + "bin" + os.sep in os.sep + rel:
                continue
            with open(os.path.join(root, name), encoding="utf-8") as f:
                files[rel] = f.read()

    infos = {}
    modules = {}  # module tuple -> file rel (file modules and inline modules)
    for rel, text in files.items():
        info = parse_file(rel, text)
        infos[rel] = info
        modules[info.module] = rel
    # Inline modules map to their file (recomputed cheaply from the refs' inner modules).
    for rel, info in infos.items():
        for _, inner, _, _ in info.refs:
            modules.setdefault(inner, rel)

    def resolve(inner, segs):
        """Absolute module path for segs as written in module `inner`, or None if external."""
        head = segs[0]
        if head == "crate":
            path, rest = [], segs[1:]
        elif head in ("self", "super"):
            path, rest = list(inner), segs
            while rest and rest[0] in ("self", "super"):
                if rest[0] == "super":
                    if not path:
                        return None
                    path.pop()
                rest = rest[1:]
        else:
            # A relative use path: valid when it names a child module of `inner`.
            if tuple(inner) + (head,) in modules:
                path, rest = list(inner), segs
            else:
                return None
        full = tuple(path) + tuple(r for r in rest if r != "*")
        for k in range(len(full), -1, -1):
            if full[:k] in modules:
                return full[:k]
        return None

    edges = defaultdict(dict)  # from rel -> to rel -> (line, text)
    for rel, info in infos.items():
        for line, inner, segs, text in info.refs:
            target = resolve(inner, segs)
            if target is None:
                continue
            to = modules[target]
            if to != rel and to not in edges[rel]:
                edges[rel][to] = (line, text)
    return sorted(files), edges


def top_module(rel):
    parts = rel.split(os.sep)
    if len(parts) == 1:
        return "crate" if parts[0] == "lib.rs" else parts[0][:-3]
    return parts[0]


def sccs(nodes, succ):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        # iterative Tarjan
        work = [(v, iter(sorted(succ.get(v, ()))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(succ.get(w, ())))))
                    advanced = True
                    break
                elif w in on:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def cycles_in(comp, succ):
    """One shortest cycle through each edge inside the component, deduplicated."""
    members = set(comp)
    seen, found = set(), []
    for u in comp:
        for v in sorted(succ.get(u, ())):
            if v not in members:
                continue
            prev, q = {v: None}, deque([v])
            while q and u not in prev:
                x = q.popleft()
                for y in sorted(succ.get(x, ())):
                    if y in members and y not in prev:
                        prev[y] = x
                        q.append(y)
            if u not in prev:
                continue
            path, x = [], u
            while x is not None:
                path.append(x)
                x = prev[x]
            cyc = [u] + path[::-1]  # u -> v -> ... -> u
            body = cyc[:-1]
            k = body.index(min(body))
            canon = tuple(body[k:] + body[:k])
            if canon not in seen:
                seen.add(canon)
                found.append(list(canon) + [canon[0]])
    return sorted(found, key=lambda c: (len(c), c))


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1].startswith("-")):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    src = argv[1] if len(argv) == 2 else "src"
    if not os.path.isfile(os.path.join(src, "lib.rs")):
        print(f"check_cycles: {src}/lib.rs not found", file=sys.stderr)
        return 2
    files, edges = analyse(src)
    allowed = set(TEMPORARY_ALLOWED_MODULE_EDGES)

    file_succ, mod_succ, mod_why = defaultdict(set), defaultdict(set), {}
    excepted = []
    for a, tos in edges.items():
        for b, why in tos.items():
            ma, mb = top_module(a), top_module(b)
            if (ma, mb) in allowed:
                excepted.append((a, b, why))
                continue
            file_succ[a].add(b)
            if ma != mb:
                mod_succ[ma].add(mb)
                mod_why.setdefault((ma, mb), (a, b, why))

    status = 0
    name = lambda rel: os.path.join(src, rel)
    file_cycles = [c for comp in sccs(files, file_succ) for c in cycles_in(comp, file_succ)]
    mod_nodes = sorted({top_module(f) for f in files})
    mod_cycles = [c for comp in sccs(mod_nodes, mod_succ) for c in cycles_in(comp, mod_succ)]

    print(f"check_cycles: {len(files)} files, {sum(len(t) for t in edges.values())} file imports")
    for what, cycles, explain in (
        ("module", mod_cycles, lambda a, b: "%s:%d  %s" % (name(mod_why[(a, b)][0]), mod_why[(a, b)][2][0], mod_why[(a, b)][2][1])),
        ("file", file_cycles, lambda a, b: "%s:%d  %s" % (name(a), edges[a][b][0], edges[a][b][1])),
    ):
        if not cycles:
            print(f"no {what}-level cycle")
            continue
        status = 1
        print(f"{len(cycles)} {what}-level cycle(s):")
        for cyc in cycles:
            shown = cyc if what == "module" else [name(f) for f in cyc]
            print("  " + " -> ".join(shown))
            for a, b in zip(cyc, cyc[1:]):
                print(f"      {explain(a, b)}")
    if excepted:
        pairs = ", ".join(f"{a} -> {b}" for a, b in sorted(allowed))
        print(f"temporarily allowed ({pairs}), {len(excepted)} import(s):")
        for a, b, (line, text) in sorted(excepted):
            print(f"      {name(a)}:{line}  {text}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
