"""No circle of files inside any folder (the "house" rule).

A file A uses file B of the same folder when A's object file has an
undefined symbol that B's object defines (nm). A circle is a strongly
connected component of more than one file: each of its files needs the
others, so none can be read, tested or replaced alone. For every folder
holding .c files (common/, producer/, consumer/, autodriver/, tangoctl/,
vmms/*/) this reads the objects of $BUILD/obj/<folder>/ (build first:
`make all`; a source without its object is a FAIL) and prints
`ok <folder>` or `FAIL <folder>: <circle>` naming each edge of the circle
with the symbols that make it. Objects without a source (left by an old
build) are ignored. KNOWN lists the circles still allowed, with the reason.
No services are started.
"""
import collections
import glob
import os
import subprocess

import tlib

# (folder, files of the circle): why it is still allowed. Remove a line once
# its circle is gone (the test says so).
KNOWN = {}


def folders():
    """{folder relative to ROOT: [its .c file names]} for the program folders."""
    out = collections.defaultdict(list)
    for pattern in ("*/*.c", "vmms/*/*.c"):
        for path in glob.glob(os.path.join(tlib.ROOT, pattern)):
            rel = os.path.relpath(path, tlib.ROOT)
            if rel.split(os.sep)[0] == "tests":
                continue
            out[os.path.dirname(rel)].append(os.path.basename(rel))
    return out


def symbols(obj):
    """(defined global symbols, undefined symbols) of one object file."""
    res = subprocess.run(["nm", obj], capture_output=True, text=True, check=True)
    defined, undefined = set(), set()
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TDBRCVW":
            defined.add(parts[2])
        elif len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1])
    return defined, undefined


def uses(syms):
    """{file: {file it uses: sorted symbols}} within one folder."""
    owner = {}
    for name, (defined, _) in syms.items():
        for s in defined:
            owner[s] = name
    edges = collections.defaultdict(dict)
    for name, (_, undefined) in syms.items():
        for s in undefined:
            other = owner.get(s)
            if other and other != name:
                edges[name].setdefault(other, []).append(s)
    for name in edges:
        for other in edges[name]:
            edges[name][other].sort()
    return edges


def circles(nodes, edges):
    """The strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
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
            if len(comp) > 1:
                found.append(tuple(sorted(comp)))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return found


def describe(comp, edges):
    """'a.c -> b.c [sym, ...]; ...' for the edges inside one circle."""
    parts = []
    for a in comp:
        for b in sorted(edges.get(a, {})):
            if b in comp:
                parts.append("%s -> %s [%s]" % (a, b, ", ".join(edges[a][b])))
    return "; ".join(parts)


def check_folder(folder, sources):
    objdir = os.path.join(tlib.BUILD, "obj", folder)
    missing = [c for c in sources if not os.path.exists(os.path.join(objdir, c[:-2] + ".o"))]
    if missing:
        tlib.check(folder, False, "no object for %s in %s (run make all first)"
                   % (", ".join(sorted(missing)), objdir))
        return
    syms = {c: symbols(os.path.join(objdir, c[:-2] + ".o")) for c in sources}
    edges = uses(syms)
    bad, known = [], []
    for comp in circles(syms, edges):
        (known if (folder, comp) in KNOWN else bad).append(comp)
    for comp in known:
        print("# %s: known circle %s: %s" % (folder, " <-> ".join(comp),
                                            KNOWN[(folder, comp)]), flush=True)
    tlib.check(folder, not bad,
               " | ".join("circle %s: %s" % (" <-> ".join(c), describe(c, edges)) for c in bad))


def main():
    found = folders()
    for folder in sorted(found):
        check_folder(folder, sorted(found[folder]))
    for (folder, comp), why in sorted(KNOWN.items()):
        # a known circle that is gone (or a folder that is gone): drop its line
        objdir = os.path.join(tlib.BUILD, "obj", folder)
        files = [os.path.join(objdir, c[:-2] + ".o") for c in comp]
        if folder in found and all(os.path.exists(f) for f in files):
            syms = {c: symbols(f) for c, f in zip(comp, files)}
            still = comp in circles(syms, uses(syms))
        else:
            still = False
        tlib.check("known circle %s %s still there" % (folder, "+".join(comp)), still,
                   "gone: remove its line from KNOWN in tests/integration/test_no_circles.py")
    tlib.done()


if __name__ == "__main__":
    main()
