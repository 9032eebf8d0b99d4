"""/build only creates or replaces the tag named in imageName (issue 10 item
8), end to end: POST /build/KEY/ through a real producer to a real consumer
(localDocker) and Docker. The tarballs are made here with `docker save` of
tiny images made with `docker import` (no registry), some then edited as an
attacker would (Python's tarfile): RepoTags naming another image, a mix of
the right tag and another one, Docker's other spellings of a name, a
lower-case "repotags" key (Go's JSON reader folds case), manifest.json as a
symlink or reached through one, a second manifest.json after a good one, a
gzip-compressed one, a legacy tarball with only a `repositories` file.
Each is refused before loading, and the victim image keeps its id; then the
same against autograding_image itself (only once a private victim was seen
safe, so a broken build never retags the shared image; its tag is put back
in any case). A good tarball (tagged imageName) and an untagged one (saved
by id) still load, under imageName, and appear in the published images
list."""
import gzip
import io
import json
import os
import subprocess
import tarfile
import time

import tlib

P = "hb%d" % os.getpid()
VICTIM = P + "victim"
MYLAB = P + "mylab"
PREFIX = P + "-"


docker = tlib.docker
image_id = tlib.image_id


def rootfs(text):
    """A one-file root file system as a tar (bytes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = text.encode()
        info = tarfile.TarInfo("hello")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def saved(ref):
    return subprocess.run(["docker", "save", ref], capture_output=True, check=True,
                          timeout=120).stdout


def members(tar_bytes):
    """[(TarInfo, bytes or None)] of a tarball."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as t:
        for m in t.getmembers():
            out.append((m, t.extractfile(m).read() if m.isreg() else None))
    return out


def build_tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            else:
                t.addfile(info)
    return buf.getvalue()


def with_manifest(tar_bytes, edit=None, raw=None, drop=False, extra=()):
    """The tarball with manifest.json edited (edit: manifest -> manifest),
    replaced by raw bytes, dropped, and extra (TarInfo, bytes) entries added."""
    out = []
    for m, data in members(tar_bytes):
        if m.name == "manifest.json":
            if drop:
                continue
            if raw is not None:
                data = raw
            elif edit is not None:
                data = json.dumps(edit(json.loads(data))).encode()
        out.append((m, data))
    out.extend(extra)
    return build_tar(out)


def manifest_of(tar_bytes):
    return json.loads(dict((m.name, d) for m, d in members(tar_bytes))["manifest.json"])


def set_tags(tags):
    def edit(man):
        man[0]["RepoTags"] = tags
        return man
    return edit


def file_entry(name, data):
    i = tarfile.TarInfo(name)
    i.size = len(data)
    return (i, data)


def symlink_entry(name, target):
    i = tarfile.TarInfo(name)
    i.type = tarfile.SYMTYPE
    i.linkname = target
    return (i, None)


def build(svc, name, tar):
    r = svc.post("/build/%s/" % svc.key, tar, {"imageName": name}, timeout=180)
    try:
        return r.json()
    except ValueError:
        return {"statusId": None, "statusMsg": r.text}


def published(svc):
    raw = svc.redis.cli("GET", svc.prefix + "images")
    try:
        return json.loads(raw).get("images", [])
    except ValueError:
        return []


def wait_published(svc, name, timeout=40):
    end = time.time() + timeout
    while time.time() < end:
        if name in published(svc):
            return True
        time.sleep(0.2)
    return False


def refused(svc, label, name, tar, victim, victim_id, words):
    """Returns whether the victim kept its id."""
    r = build(svc, name, tar)
    msg = r.get("statusMsg", "")
    tlib.check("%s: refused with a clear message" % label,
               r.get("statusId") == -1 and all(w in msg for w in words), r)
    safe = tlib.check("%s: %s keeps its id" % (label, victim), image_id(victim) == victim_id,
                      (image_id(victim), victim_id))
    tlib.check("%s: %s not created" % (label, name), image_id(name) is None, image_id(name))
    return safe


def run(svc):
    docker("import", "-", VICTIM + ":latest", data=rootfs("victim"))
    docker("import", "-", P + "src:latest", data=rootfs("lab image"))
    victim_id = image_id(VICTIM)
    src_id = image_id(P + "src")
    tlib.check("setup: two distinct images", victim_id and src_id and victim_id != src_id,
               (victim_id, src_id))
    docker("tag", P + "src", MYLAB)
    good = saved(MYLAB)               # RepoTags [MYLAB:latest]
    docker("rmi", MYLAB)              # the build must make it again
    untagged = saved(src_id)          # RepoTags null

    # --- hostile tarballs, against a private victim
    only = "only creates or replaces"
    evil_manifest = json.dumps(set_tags([VICTIM])(manifest_of(good))).encode()
    cases = [
        ("RepoTags naming another image", with_manifest(good, set_tags([VICTIM + ":latest"])),
         [VICTIM, only]),
        ("RepoTags: the right tag plus another",
         with_manifest(good, set_tags([MYLAB + ":latest", "docker.io/library/" + VICTIM])),
         [VICTIM, only]),
        ("RepoTags naming another image without a tag",
         with_manifest(good, set_tags([VICTIM])), [VICTIM, only]),
        ("lower-case repotags key", with_manifest(good, lambda m: [
            {("repotags" if k == "RepoTags" else k): (v if k != "RepoTags" else [VICTIM])
             for k, v in m[0].items()}]), ["repotags"]),
        ("two RepoTags keys", with_manifest(good, raw=(
            '[{"Config":"x.json","RepoTags":["%s"],"RepoTags":["%s"],"Layers":[]}]'
            % (MYLAB, VICTIM)).encode()), ["manifest.json"]),
        ("a second manifest.json after a good one", with_manifest(
            good, extra=[file_entry("./manifest.json", evil_manifest)]),
         [VICTIM, only]),
        ("manifest.json as a symlink", with_manifest(
            good, drop=True, extra=[file_entry("evil/m.json", evil_manifest), symlink_entry("manifest.json", "evil/m.json")]),
         ["manifest.json"]),
        ("manifest.json through a symlinked directory", with_manifest(
            good, drop=True, extra=[symlink_entry("d", "."), file_entry("d/manifest.json",
                                                            evil_manifest)]), ["symlink"]),
        ("gzip-compressed, RepoTags naming another image",
         gzip.compress(with_manifest(good, set_tags([VICTIM + ":latest"]))), [VICTIM, only]),
        ("legacy tarball (repositories, no manifest.json)", with_manifest(
            good, drop=True, extra=[file_entry("repositories", json.dumps(
                {VICTIM: {"latest": "0" * 64}}).encode())]), ["no manifest.json"]),
        ("two images in one tarball", with_manifest(good, lambda m: m + m), ["2 images"]),
        ("not a tarball", b"hello, this is not a tar file\n" * 40, ["tarball"]),
    ]
    private_safe = True
    for label, tar, words in cases:
        private_safe &= refused(svc, label, MYLAB, tar, VICTIM, victim_id, words)
    log = svc.consumers[0].logtext()
    tlib.check("refusals logged as image_refused", log.count("event=image_refused") >= len(cases) - 1,
               log.count("event=image_refused"))

    # --- the same against the shared course image, once the code is seen safe
    course_id = image_id("autograding_image")
    if not private_safe:
        tlib.check("autograding_image: not tried (a private victim was retagged)", False)
    elif course_id is None:
        tlib.check("autograding_image present (make image)", False)
    else:
        try:
            refused(svc, "RepoTags naming autograding_image", MYLAB,
                    with_manifest(good, set_tags(["autograding_image:latest"])),
                    "autograding_image", course_id, ["autograding_image", only])
        finally:
            if image_id("autograding_image") != course_id:
                docker("tag", course_id, "autograding_image:latest")

    # --- good tarballs still load
    r = build(svc, MYLAB, good)
    tlib.check("good tarball (tagged imageName): built", r.get("statusId") == 0 and
               r.get("statusMsg") == "Docker image built", r)
    tlib.check("good tarball: imageName is the loaded image", image_id(MYLAB) == src_id,
               (image_id(MYLAB), src_id))
    tlib.check("good tarball: in the published images list", wait_published(svc, MYLAB),
               published(svc))
    r = build(svc, P + "lab2:v1", untagged)
    tlib.check("untagged tarball: built", r.get("statusId") == 0, r)
    tlib.check("untagged tarball: tagged as imageName", image_id(P + "lab2:v1") == src_id,
               image_id(P + "lab2:v1"))
    tlib.check("untagged tarball: in the published images list",
               wait_published(svc, P + "lab2:v1"), published(svc))
    tlib.check("victim untouched at the end", image_id(VICTIM) == victim_id)


def cleanup():
    out = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
                         capture_output=True, text=True).stdout.split()
    mine = [r for r in out if r.startswith(P)]
    if mine:
        subprocess.run(["docker", "rmi", "-f"] + mine, capture_output=True)


def main():
    try:
        with tlib.Service(producers=1, config={"build_timeout_s": 120}) as svc:
            svc.start_consumer({"vmms": "localDocker", "vmms_dir": os.path.join(tlib.BUILD, "vmms"),
                                "instance_prefix": PREFIX, "auto_pool_max": 0,
                                "vmms_config": {"localDocker": {
                                    "volume_dir": os.path.join(svc.tmp, "volumes")}}})
            try:
                run(svc)
            finally:
                rc = svc.consumers[0].stop(60)
                tlib.check("consumer exits 0", rc == 0, rc)
                svc.consumers.clear()
    finally:
        cleanup()
    tlib.done()


if __name__ == "__main__":
    main()
