#!/usr/bin/env python3
"""The one-way house, checked from the object files' symbols.

A module A depends on a module B when A's object file uses (nm: U) a symbol that B's
object file defines. This test fails when:
  - the dependency graph of the modules of src/ (the members of libustatus.a) and fcgi/
    (ustatus-fcgi's objects) has a cycle: each layer may only know those below it;
  - a module of the core library uses libfcgi (only fcgi/ may know FastCGI);
  - a module of src/ or fcgi/ has no test file named after it: tests/unit/test_<m>.c, or
    tests/integration/test_<m>.py where it needs a live Redis or web server.
It prints the modules layer by layer, lowest first.

Environment: USTATUS_BUILDDIR (the build tree), USTATUS_SRCDIR (the source tree); both
default to what the working directory suggests (make check sets them)."""
import glob
import os
import re
import subprocess
import sys

SRC = os.environ.get("USTATUS_SRCDIR") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("USTATUS_BUILDDIR") or os.getcwd()


def nm(path):
    """(object name, symbol type, symbol) for every global symbol of an object or archive."""
    out = subprocess.run(["nm", "-o", path], check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        # "lib.a:member.o:0000000000000000 T name" or "obj.o:                 U name"
        m = re.match(r"^(.*?):\s*(?:[0-9a-f]+)?\s+([A-Za-z])\s+(\S+)$", line)
        if m:
            rows.append((m.group(1), m.group(2), m.group(3)))
    return rows


def module_of(objname):
    base = os.path.basename(objname.split(":")[-1])
    base = re.sub(r"\.o$", "", base)
    return re.sub(r"^ustatus_fcgi-", "", base)


def main():
    lib = os.path.join(BUILD, "libustatus.a")
    fcgi_objs = sorted(glob.glob(os.path.join(BUILD, "fcgi", "ustatus_fcgi-*.o")))
    if not os.path.exists(lib) or not fcgi_objs:
        print(f"FAIL: no libustatus.a or fcgi objects under {BUILD}: build first")
        return 1
    defined, used, core = {}, {}, set()
    for path in [lib] + fcgi_objs:
        for obj, kind, sym in nm(path):
            mod = module_of(obj)
            used.setdefault(mod, set())
            if path == lib:
                core.add(mod)
            if kind == "U":
                used[mod].add(sym)
            elif kind.isupper():
                defined[sym] = mod
    deps = {m: sorted({defined[s] for s in syms if s in defined and defined[s] != m})
            for m, syms in used.items()}
    problems = []

    # Tarjan's strongly connected components: any component of two or more is a cycle.
    index, low, stack, on, comps = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in deps[v]:
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
            comps.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(deps):
        if v not in index:
            visit(v)
    for comp in comps:
        if len(comp) > 1:
            edges = [f"{a} -> {b}" for a in sorted(comp) for b in deps[a] if b in comp]
            problems.append("dependency cycle: " + ", ".join(edges))

    for m in sorted(core):
        fcgx = sorted(s for s in used[m] if s.startswith("FCGX_") or s.startswith("FCGI_"))
        if fcgx:
            problems.append(f"{m} (core library) uses libfcgi: {', '.join(fcgx)}")

    for m in sorted(deps):
        unit = os.path.join(SRC, "tests", "unit", f"test_{m}.c")
        integ = os.path.join(SRC, "tests", "integration", f"test_{m}.py")
        if not os.path.exists(unit) and not os.path.exists(integ):
            problems.append(f"{m} has no test file (tests/unit/test_{m}.c or "
                            f"tests/integration/test_{m}.py)")

    # Layers, lowest first: a module's layer is one more than its highest dependency.
    layer = {}

    def depth(v, seen=()):
        if v in layer:
            return layer[v]
        if v in seen:
            return 0  # a cycle, reported above
        layer[v] = 1 + max((depth(w, seen + (v,)) for w in deps[v]), default=-1)
        return layer[v]

    for v in deps:
        depth(v)
    for n in range(max(layer.values()) + 1):
        print(f"layer {n}: " + " ".join(sorted(m for m in layer if layer[m] == n)))

    for p in problems:
        print("FAIL: " + p)
    print(f"{len(deps)} modules, {sum(len(d) for d in deps.values())} dependencies, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
