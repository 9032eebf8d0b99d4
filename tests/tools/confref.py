#!/usr/bin/env python3
"""confref.py: the configuration reference, generated from the code.

Reads the option table of common/config.c (the one list of config keys: name,
type, default, range) and the descriptions in docs/config-keys.txt (one per
key, grouped under "## " headings), and writes docs/config-reference.md.

  tests/tools/confref.py           rewrite docs/config-reference.md
  tests/tools/confref.py --check   exit 1 (naming the difference) when the file
                                   is stale, a key has no description or a
                                   description names no key

Used by `make docs` and tests/integration/test_docs_config.py.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_C = os.path.join(ROOT, "common", "config.c")
KEYS_TXT = os.path.join(ROOT, "docs", "config-keys.txt")
OUT_MD = os.path.join(ROOT, "docs", "config-reference.md")
# Keys deploy/tango.json sets to a production value rather than the code's
# default (the defaults suit `make run` in a checkout); every other key there
# shows the default (tests/integration/test_docs_config.py checks it).
DEPLOYMENT_KEYS = ("courselabs", "keys", "vmms_dir", "vmms_config")

# INT("port", port, 3000, 1, 65535) and friends (the macros of config.c)
MACRO = re.compile(r'^\s*(INT|STR|LIST|BOOL)\((.*)\),\s*(?:/\*.*\*/)?\s*$')
# {"secret_file", OPT_STR, F(secret_file), 0, 0, 4096, ""}
RAW = re.compile(r'^\s*\{\s*"([a-z0-9_]+)",\s*OPT_([A-Z]+),\s*F\(\w+\),\s*([^,]+),\s*'
                 r'([^,]+),\s*([^,]+),\s*"((?:[^"\\]|\\.)*)"\s*\},')


def split_args(text):
    """Comma-separated macro arguments, commas inside "..." kept."""
    return [a.strip() for a in re.findall(r'"(?:[^"\\]|\\.)*"|[^,]+', text)]


def num(text):
    """A C constant expression of the table as a number (64 * 1024 included),
    or its text when it names a macro."""
    text = text.strip()
    if re.fullmatch(r"[0-9 ()+*-]+", text):
        return int(eval(text, {"__builtins__": {}}))  # digits and operators only
    return text


def unquote(s):
    return s[1:-1] if len(s) >= 2 and s[0] == '"' and s[-1] == '"' else s


def option_from_macro(kind, args):
    a = split_args(args)
    name = unquote(a[0])
    if kind == "INT":
        return dict(name=name, type="int", default=str(num(a[2])), min=num(a[3]), max=num(a[4]))
    if kind == "STR":
        return dict(name=name, type="string", default=unquote(a[2]), min=1, max=num(a[3]))
    if kind == "LIST":
        return dict(name=name, type="list", default=unquote(a[3]), min=0, max=255)
    return dict(name=name, type="bool", default=unquote(a[2]), min=0, max=1)


def option_from_raw(m):
    name, kind, _, lo, hi, default = m.groups()
    kinds = {"INT": "int", "STR": "string", "LIST": "list", "BOOL": "bool", "JSON": "json"}
    opt = dict(name=name, type=kinds[kind], default=default, min=num(lo), max=num(hi))
    if opt["type"] == "json":
        opt["type"] = "list or object" if opt["max"] == 1 else "object"
    return opt


def read_options(path=CONFIG_C):
    """The rows of `static const struct option_def options[]`, in order."""
    text = open(path).read()
    start = text.index("options[] = {")
    end = text.index("\n};", start)
    opts = []
    for line in text[start:end].splitlines()[1:]:
        m = MACRO.match(line)
        if m:
            opts.append(option_from_macro(m.group(1), m.group(2)))
            continue
        m = RAW.match(line)
        if m:
            opts.append(option_from_raw(m))
        elif line.strip() and not line.strip().startswith(("/*", "*", "//")):
            raise SystemExit("confref: cannot read this row of %s: %s" % (path, line.strip()))
    return opts


def read_descriptions(path=KEYS_TXT):
    """[(heading, intro, [(key, text)])] from docs/config-keys.txt.

    "## Heading" starts a section; the lines after it up to the first key are
    its introduction; "key: text" describes a key, indented lines continue it;
    lines starting with "#" (not "##") are comments."""
    sections = []
    for raw in open(path):
        line = raw.rstrip("\n")
        if line.startswith("## "):
            sections.append((line[3:].strip(), [], []))
        elif line.startswith("#") or not line.strip():
            continue
        elif not sections:
            raise SystemExit("confref: %s: text before the first ## heading" % path)
        elif line[0] in " \t":
            target = sections[-1][2][-1] if sections[-1][2] else None
            if target is None:
                sections[-1][1].append(line.strip())
            else:
                sections[-1][2][-1] = (target[0], target[1] + " " + line.strip())
        elif re.match(r"^[a-z0-9_]+: ", line):
            key, text = line.split(": ", 1)
            sections[-1][2].append((key, text.strip()))
        elif not sections[-1][2]:
            sections[-1][1].append(line.strip())
        else:
            raise SystemExit("confref: %s: not a key line: %s" % (path, line))
    return [(h, " ".join(intro), keys) for h, intro, keys in sections]


def shown_default(opt):
    d = opt["default"]
    if opt["type"] == "list":
        return "`[%s]`" % ", ".join('"%s"' % x for x in d.split(",") if x) if d else "`[]`"
    if opt["type"] == "string":
        return '`"%s"`' % d
    return "`%s`" % d


def shown_range(opt):
    t, lo, hi = opt["type"], opt["min"], opt["max"]
    if t == "int":
        return "%s..%s" % (lo, hi)
    if t == "string":
        return "%s..%s bytes" % (lo, hi)
    if t == "list":
        return "entries of 1..%s bytes" % hi
    return ""


def problems(opts, sections):
    """Keys without a description, descriptions of no key, keys described twice."""
    names = [o["name"] for o in opts]
    described = [k for _, _, keys in sections for k, _ in keys]
    out = ["config key %s (common/config.c) has no description in docs/config-keys.txt" % n
           for n in names if n not in described]
    out += ["docs/config-keys.txt describes %s, which common/config.c does not have" % k
            for k in described if k not in names]
    out += ["docs/config-keys.txt describes %s twice" % k
            for k in sorted(set(described)) if described.count(k) > 1]
    return out


def render(opts, sections):
    by_name = {o["name"]: o for o in opts}
    out = ["# Configuration reference", "",
           "<!-- Generated by tests/tools/confref.py (`make docs`) from the option table in",
           "     common/config.c and the descriptions in docs/config-keys.txt. Do not edit;",
           "     tests/integration/test_docs_config.py fails when it is stale. -->", "",
           "One JSON file (`-c FILE`) is shared by the producer, the consumer and",
           "`tangoctl`. Every key can also be set in the environment as `TANGO_<KEY>`",
           "(upper case; a list as a comma-separated value, e.g. `TANGO_KEYS=k1,k2`),",
           "which wins over the file. An unknown key or a value out of range stops the",
           "process with a message naming the key. `deploy/tango.json` lists every key",
           "with its default, except those an installation sets for itself",
           "(%s). Back ends read their own" % ", ".join("`%s`" % k for k in DEPLOYMENT_KEYS),
           "block of `vmms_config`: see [the back end guides](README.md#back-ends).", ""]
    for heading, intro, keys in sections:
        out += ["## " + heading, ""]
        if intro:
            out += [intro, ""]
        out += ["| key | type | default | range | meaning |", "|---|---|---|---|---|"]
        for key, text in keys:
            o = by_name.get(key)
            if o is None:
                continue
            out.append("| `%s` | %s | %s | %s | %s |" % (key, o["type"], shown_default(o),
                                                         shown_range(o), text))
        out.append("")
    return "\n".join(out)


def generate():
    """(text of docs/config-reference.md, [problems])."""
    opts = read_options()
    sections = read_descriptions()
    return render(opts, sections), problems(opts, sections)


def main():
    text, errs = generate()
    for e in errs:
        print("confref: " + e, file=sys.stderr)
    if "--check" in sys.argv[1:]:
        current = open(OUT_MD).read() if os.path.exists(OUT_MD) else ""
        if current != text:
            print("confref: docs/config-reference.md is stale: run `make docs`", file=sys.stderr)
            errs.append("stale")
        return 1 if errs else 0
    with open(OUT_MD, "w") as f:
        f.write(text)
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
