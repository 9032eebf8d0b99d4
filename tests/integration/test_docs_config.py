"""The docs agree with the code and stand on their own.

- docs/config-reference.md is exactly what tests/tools/confref.py generates
  from common/config.c's option table and docs/config-keys.txt; every key has
  a description and every description a key.
- deploy/tango.json lists every key with the code's default, except the keys
  an installation must set for itself (confref.DEPLOYMENT_KEYS), and no unknown key.
- Nothing in the repository cites a file outside it (the brief's spec and
  design files, the folder they live in: CITES_OUTSIDE), except the fuzz
  corpora (inputs, not prose).
- docs/README.md indexes every doc; every relative link between the docs (and
  from README.md) names a file and a heading that exist.
- README.md fits on a few screens and starts with the two commands.
No services are started.
"""
import json
import os
import re
import subprocess
import sys

import tlib

sys.path.insert(0, os.path.join(tlib.ROOT, "tests", "tools"))
import confref  # noqa: E402

CITES_OUTSIDE = re.compile(r"\bshared/|\bSPEC\.md\b|\bDESIGN\.md\b")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def default_value(opt):
    """The option's default as the JSON value deploy/tango.json would hold."""
    d, t = opt["default"], opt["type"]
    if t == "int":
        return int(d)
    if t == "bool":
        return d == "true"
    if t == "list":
        return [x for x in d.split(",") if x]
    if t == "string":
        return d
    return json.loads(d)


def check_reference():
    text, errs = confref.generate()
    for e in errs:
        tlib.check("config key documented", False, e)
    if not errs:
        tlib.check("every config key has one description, every description a key", True)
    path = confref.OUT_MD
    current = open(path).read() if os.path.exists(path) else ""
    tlib.check("docs/config-reference.md is what `make docs` generates from the code",
               current == text, "stale or missing: run `make docs`")


def check_tango_json():
    opts = {o["name"]: o for o in confref.read_options()}
    example = json.load(open(os.path.join(tlib.ROOT, "deploy", "tango.json")))
    unknown = sorted(set(example) - set(opts))
    tlib.check("deploy/tango.json has no key the code does not know", not unknown, unknown)
    missing = sorted(set(opts) - set(example))
    tlib.check("deploy/tango.json lists every key", not missing, missing)
    wrong = ["%s: %r, the code's default is %r" % (k, example[k], default_value(opts[k]))
             for k in sorted(set(example) & set(opts) - set(confref.DEPLOYMENT_KEYS))
             if example[k] != default_value(opts[k])]
    tlib.check("deploy/tango.json shows the code's defaults", not wrong, "; ".join(wrong))


def repository_files():
    try:
        out = subprocess.run(["git", "ls-files"], cwd=tlib.ROOT, capture_output=True,
                             text=True, check=True).stdout.split("\n")
        return [f for f in out if f]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for d, dirs, names in os.walk(tlib.ROOT):
            dirs[:] = [x for x in dirs if x not in (".git", "build", "run")]
            files += [os.path.relpath(os.path.join(d, n), tlib.ROOT) for n in names]
        return files


def check_no_outside_citations():
    bad = []
    for f in repository_files():
        if f.startswith("tests/fuzz/corpus/"):
            continue
        try:
            text = open(os.path.join(tlib.ROOT, f), encoding="utf-8").read()
        except (OSError, UnicodeDecodeError):
            continue
        for n, line in enumerate(text.split("\n"), 1):
            if CITES_OUTSIDE.search(line):
                bad.append("%s:%d" % (f, n))
    tlib.check("nothing in the repository cites a file outside it (%s)" % CITES_OUTSIDE.pattern,
               not bad, " ".join(bad[:20]))


def slug(heading):
    """GitHub's anchor for a heading."""
    h = re.sub(r"[`*_]", lambda m: "_" if m.group(0) == "_" else "", heading.strip().lower())
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")


def anchors(path):
    text = re.sub(r"```.*?```", "", open(path).read(), flags=re.S)
    return {slug(m) for m in re.findall(r"^#+ (.+)$", text, re.M)}


def docs_files():
    out = []
    for d, _, names in os.walk(os.path.join(tlib.ROOT, "docs")):
        out += [os.path.join(d, n) for n in names if n.endswith(".md")]
    return sorted(out)


def check_links():
    docs = docs_files()
    index = os.path.join(tlib.ROOT, "docs", "README.md")
    if not tlib.check("docs/README.md (the index) exists", os.path.exists(index)):
        return
    indexed = {os.path.normpath(os.path.join(os.path.dirname(index), m.split("#")[0]))
               for m in LINK.findall(open(index).read()) if not m.startswith("http")}
    unindexed = [os.path.relpath(d, tlib.ROOT) for d in docs if d != index and d not in indexed]
    tlib.check("docs/README.md links every doc", not unindexed, unindexed)
    broken = []
    # The index also names docs that land with other branches; its own links
    # are checked the other way round (above).
    for src in [os.path.join(tlib.ROOT, "README.md")] + [d for d in docs if d != index]:
        for target in LINK.findall(open(src).read()):
            if re.match(r"[a-z]+:", target):
                continue
            name, _, frag = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(src), name)) if name else src
            where = "%s -> %s" % (os.path.relpath(src, tlib.ROOT), target)
            if not os.path.exists(dest):
                broken.append(where)
            elif frag and dest.endswith(".md") and frag not in anchors(dest):
                broken.append(where + " (no such heading)")
    tlib.check("every link between the docs names a file and heading that exist",
               not broken, "; ".join(broken[:20]))


def check_readme():
    lines = open(os.path.join(tlib.ROOT, "README.md")).read().split("\n")
    tlib.check("README.md is under 150 lines", len(lines) < 150, "%d lines" % len(lines))
    head = "\n".join(lines[:25])
    tlib.check("README.md's first screen has `make run` and `make check`",
               re.search(r"^make run\b", head, re.M) and re.search(r"^make check\b", head, re.M),
               head[:300])
    tlib.check("README.md points to docs/", "docs/README.md" in "\n".join(lines))


def main():
    check_reference()
    check_tango_json()
    check_no_outside_citations()
    check_links()
    check_readme()
    tlib.done()


if __name__ == "__main__":
    main()
