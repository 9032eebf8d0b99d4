"""tangoctl images (issue 21, clean-up): real Redis, a producer and no
consumer, so a job stays queued; the machine's dockerd; a localOCI store
in a temp directory.

  - Docker: an image labelled tango.image nothing uses, one a queued job
    names, one without our label (all derived from autograding_image by
    docker commit, named per test run).
  - localOCI store: a record of a local image and its layer, a layer no
    record lists (old), one no record lists but just made (a pull in
    progress stores layers before its record), a registry-pull record
    ("reg-<hex>") nothing uses and its own layer.
  - `images` lists them with the right in-use counts and the owner's
    course (never the keyId); `prune --dry-run` marks only the unused
    labelled image, the old orphan layer, the unused pull record and its
    layer, and removes nothing; `prune` removes exactly those. With a
    record that cannot be read, no layer is removed.

The machine's dockerd is shared: removal is limited with --match to this
run's names (and the temp store's), so no other labelled image is touched.
"""
import json
import os
import subprocess
import time

import tlib
from tjobs import makefile, submit

CTL = os.path.join(tlib.BUILD, "tangoctl")
TAG = "tci%d" % os.getpid()
UNUSED, USED, UNLAB = TAG + "-unused", TAG + "-used", TAG + "-unlab"
HEX = {k: (c * 64) for k, c in (("kept", "a"), ("orphan", "b"), ("young", "c"), ("reg", "d"),
                                 ("reglayer", "e"))}
LAB = "imgc-lab1"


def commit(name, label):
    cid = tlib.docker("create", "autograding_image", "true")
    try:
        args = ["commit"] + (["--change", "LABEL %s=%s" % (label, name)] if label else [])
        tlib.docker(*(args + [cid, name]))
    finally:
        tlib.docker("rm", "-f", cid, check=False)


def make_store(store):
    for sub in ("images", "layers", "tmp"):
        os.makedirs(os.path.join(store, sub))
    for k in HEX:
        if k != "reg":
            os.makedirs(os.path.join(store, "layers", HEX[k], "etc"))
    records = {"localimg": [HEX["kept"]], "reg-" + HEX["reg"]: [HEX["reglayer"]]}
    for name, layers in records.items():
        with open(os.path.join(store, "images", name + ".json"), "w") as f:
            json.dump({"name": name, "id": "x", "layers": layers, "env": [], "cwd": "/"}, f)
    old = time.time() - 7200
    for k in ("kept", "orphan", "reglayer"):
        os.utime(os.path.join(store, "layers", HEX[k]), (old, old))


def ctl(svc, cfg, *args):
    p = subprocess.run([CTL, "-c", cfg, "--json"] + list(args), env=svc.env(),
                       capture_output=True, text=True, timeout=120)
    try:
        doc = json.loads(p.stdout)
    except ValueError:
        doc = {}
    return p.returncode, doc, p.stdout + p.stderr


def rows(doc):
    return {r["name"]: r for r in doc.get("images", [])}


def present(store):
    have = set(n[:-5] for n in os.listdir(os.path.join(store, "images")))
    have |= set("layer:" + n for n in os.listdir(os.path.join(store, "layers")))
    for n in (UNUSED, USED, UNLAB):
        if tlib.image_id(n):
            have.add(n + ":latest")
    return have


def checks(svc, cfg, store):
    # the owner: this key (its keyId, read from a first job's record), so
    # the producer lets the key name the image (its image list is cached 1 s)
    first = submit(svc, LAB, {"Makefile": makefile("echo hi")}, "o0")
    tlib.check("a first job is queued", first.get("statusId") == 0, first)
    jobs = json.loads(subprocess.run([CTL, "-c", cfg, "--json", "jobs"], env=svc.env(),
                                     capture_output=True, text=True).stdout)["jobs"]
    kid = jobs[0].get("keyId", "") if jobs else ""
    svc.redis.cli("HSET", svc.prefix + "images:owners", USED, kid)
    got = {}
    tlib.wait_for(lambda: got.update(submit(svc, LAB, {"Makefile": makefile("echo hi")}, "o1",
                                            image=USED)) or got.get("statusId") == 0, 10, 0.3)
    tlib.check("a job naming the in-use image is queued", got.get("statusId") == 0, got)

    rc, doc, out = ctl(svc, cfg, "images")
    r = rows(doc)
    tlib.check("images: exit 0", rc == 0, out[-800:])
    tlib.check("images: the in-use labelled image has 1 user and is ours",
               r.get(USED + ":latest", {}).get("in_use") == 1
               and r[USED + ":latest"]["ours"], r.get(USED + ":latest"))
    tlib.check("images: the unused labelled image: ours, 0 users",
               r.get(UNUSED + ":latest", {}).get("in_use") == 0
               and r[UNUSED + ":latest"]["ours"], r.get(UNUSED + ":latest"))
    tlib.check("images: the unlabelled image is not ours",
               r.get(UNLAB + ":latest", {}).get("ours") is False, r.get(UNLAB + ":latest"))
    tlib.check("images: autograding_image (configured) is in use",
               r.get("autograding_image:latest", {}).get("in_use", 0) >= 1,
               r.get("autograding_image:latest"))
    tlib.check("images: the owner's course is shown, never the keyId",
               r.get(USED + ":latest", {}).get("course") == "imgc" and kid and kid not in out,
               (r.get(USED + ":latest"), bool(kid)))
    tlib.check("images: the store's record and layers are listed",
               {"localimg", "reg-" + HEX["reg"], "layer:" + HEX["orphan"]} <= set(r), sorted(r))

    match = ["--match", TAG + "-*", "--match", "layer:*", "--match", "reg-*"]
    want = {UNUSED + ":latest", "layer:" + HEX["orphan"], "reg-" + HEX["reg"],
            "layer:" + HEX["reglayer"]}
    before = present(store)
    rc, doc, out = ctl(svc, cfg, "images", "prune", "--dry-run", *match)
    marked = {n for n, x in rows(doc).items() if x["action"] == "remove"}
    tlib.check("prune --dry-run: exit 0", rc == 0, out[-800:])
    tlib.check("prune --dry-run marks exactly the unused ones", marked == want,
               sorted(marked ^ want))
    tlib.check("prune --dry-run removes nothing", present(store) == before,
               sorted(before ^ present(store)))

    rc, doc, out = ctl(svc, cfg, "images", "prune", *match)
    gone = {n for n, x in rows(doc).items() if x["action"] == "removed"}
    tlib.check("prune: exit 0, reports the same set", rc == 0 and gone == want,
               (rc, sorted(gone ^ want), out[-500:]))
    tlib.check("prune removed exactly those", before - present(store) == want,
               sorted((before - present(store)) ^ want))
    tlib.check("prune kept the in-use and the unlabelled image",
               tlib.image_id(USED) and tlib.image_id(UNLAB))

    # a record that cannot be read: its layers are unknown, so no layer goes
    with open(os.path.join(store, "images", "broken.json"), "w") as f:
        f.write("{not json")
    orphan = os.path.join(store, "layers", "f" * 64)
    os.makedirs(orphan)
    os.utime(orphan, (time.time() - 7200,) * 2)
    rc, doc, out = ctl(svc, cfg, "images", "prune", *match)
    tlib.check("prune with an unreadable record removes no layer",
               os.path.isdir(orphan) and "unreadable" in out, out[-500:])


def main():
    made = []
    try:
        for name, label in ((UNUSED, "tango.image"), (USED, "tango.image"), (UNLAB, None)):
            commit(name, label)
            made.append(name)
        with tlib.Service(producers=1, consumer=False) as svc:
            store = os.path.join(svc.tmp, "oci")
            make_store(store)
            svc.redis.cli("SET", svc.prefix + "images",
                          json.dumps({"images": ["autograding_image", USED]}))
            cfg = svc.write_config({"images": ["autograding_image"],
                                    "vmms_config": {"localOCI": {"store_dir": store}}})
            checks(svc, cfg, store)
    finally:
        for name in made:
            tlib.docker("rmi", "-f", name, check=False)
    tlib.done()


if __name__ == "__main__":
    main()
