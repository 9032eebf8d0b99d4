"""Registry images on localOCI with no Docker daemon (issue 21): Debian's
CNCF distribution registry on loopback with TLS (a test CA) and htpasswd
auth, a second one with token auth behind a small token server, and TLS
proxies that alter a blob, stall one, or answer an index without
linux/amd64. The consumer's localOCI has no Docker socket and imports
nothing: every image comes from a registry.

Checks: a job on a registry image by tag (its record keeps the digest the
tag resolved to), then by digest (no pull again), a zstd layer on the same
gzip base (only that layer fetched), two jobs needing one image at once
(one pull), a layer store without room for the image,
through the bearer-token flow; a tampered blob refused with nothing of it
kept; a stalled registry failing by stall_timeout_s; an index without
linux/amd64; a certificate of another CA; bad credentials (a clear error,
neither password in any log or record); an unlisted registry refused at
addJob; a group-readable credentials file refused at start."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import test_e2e_localoci
import timages
import tjobs
import tlib
import tregistry as tr

BAD_PASSWORD = "wrong-Secret-991"
ZMARK = "from-a-zstd-layer"


def fixtures(d):
    ca = tr.make_ca(d, "srv")
    tr.make_ca(d, "other")
    certdir = os.path.join(d, "certs")
    os.mkdir(certdir)
    shutil.copy(ca, os.path.join(certdir, "ca.crt"))
    storage = os.path.join(d, "storage")
    reg = tr.Registry(d, storage, "basic")
    tok = tr.TokenServer(d)
    treg = tr.Registry(d, storage, "token", token=tok)
    return ca, certdir, reg, tok, treg


def push_images(reg, certdir):
    """course/img:v1 (autograding_image) and course/small:v1 (it plus a
    marker layer); returns img's digest and small's own layer digest."""
    tr.skopeo_push("docker-daemon:autograding_image:latest", reg.host, "course/img:v1", certdir)
    small = "tregistry-small:%d" % os.getpid()
    timages.marker_image(small, "registry test %d" % os.getpid())
    try:
        tr.skopeo_push("docker-daemon:" + small, reg.host, "course/small:v1", certdir)
    finally:
        tlib.docker("rmi", small, check=False)
    _, digest = tr.manifest(reg.host, "course/img", "v1", certdir)
    sman, sdigest = tr.manifest(reg.host, "course/small", "v1", certdir)
    tr.push_zstd_on_base(tr.RegistryAPI(reg.host, os.path.join(certdir, "ca.crt")),
                         os.path.dirname(certdir), "course/zimg", "v1", ZMARK)
    return digest, sman["layers"][-1]["digest"], sdigest


def run_job(svc, image, name, timeout=300, recipe="echo ran-on-registry-image"):
    """Submits a job on image; returns (addJob answer, dead record, output)."""
    r = tjobs.submit(svc, "reglab", {"Makefile": tjobs.makefile(recipe)},
                     name, image=image, timeout=60)
    if r.get("statusId") != 0:
        return r, None, b""
    out = tjobs.wait_output(svc, "reglab", name, timeout) or b""
    return r, tjobs.wait_dead(svc, r["jobId"], 30), out


def failed_with(svc, image, name, pattern, label):
    t0 = time.time()
    r, dead, out = run_job(svc, image, name)
    text = out.decode("utf-8", "replace") + json.dumps(dead or {})
    tlib.check("%s: the job fails with a clear error" % label,
               re.search(pattern, text) is not None, text[-600:])
    return time.time() - t0, text


def store_clean(store, layer_hex, label):
    tlib.check("%s: nothing of the blob kept (no layer, nothing in tmp/)" % label,
               not os.path.exists(os.path.join(store, "layers", layer_hex)) and
               os.listdir(os.path.join(store, "tmp")) == [],
               (os.listdir(os.path.join(store, "tmp")), layer_hex))


def good_jobs(svc, reg, treg, tok, digest, store):
    r, dead, out = run_job(svc, "%s/course/img:v1" % reg.host, "tag.out")
    tlib.check("by tag: a localOCI job with no Docker daemon runs the registry image",
               b"ran-on-registry-image" in out, (r, (dead or {}).get("trace")))
    pinned = "%s/course/img@%s" % (reg.host, digest)
    tlib.check("by tag: the record keeps the digest the tag resolved to (a retry runs the same)",
               ((dead or {}).get("vm") or {}).get("image") == pinned, dead)
    log = open(os.path.join(svc.tmp, "consumer0.log")).read()
    tlib.check("by tag: the consumer pulled it (manifest, config, layers)",
               re.search(r"event=image_pulled .*fetched=[1-9]", log), log[-1500:])
    r, dead, out = run_job(svc, "%s/course/img@%s" % (reg.host, digest), "digest.out")
    tlib.check("by digest: the job runs", b"ran-on-registry-image" in out,
               (r, (dead or {}).get("trace")))
    log = open(os.path.join(svc.tmp, "consumer0.log")).read()
    tlib.check("by digest: the same image is not pulled again",
               len(re.findall(r"event=image_pulled ", log)) == 1, log[-1500:])
    named = hashlib.sha256(("%s/course/img@%s" % (reg.host, digest)).encode()).hexdigest()
    tlib.check("the record is named by the full reference (registry, path, digest)",
               os.path.exists(os.path.join(store, "images", "reg-%s.json" % named)))
    r, dead, out = run_job(svc, "%s/course/zimg:v1" % reg.host, "zstd.out",
                           recipe="cat /zstd-marker")
    log = open(os.path.join(svc.tmp, "consumer0.log")).read()
    tlib.check("a zstd layer on the gzip base: the job sees its file",
               ZMARK.encode() in out, (dead or {}).get("trace"))
    tlib.check("the shared base layer is not fetched again (1 of 2 layers fetched)",
               re.search(r"event=image_pulled name=\S+/course/zimg@\S+ .*layers=2 fetched=1 ", log),
               log[-1500:])
    r, dead, out = run_job(svc, "%s/course/img:v1" % treg.host, "token.out")
    tlib.check("bearer-token flow: the job runs through the token registry",
               b"ran-on-registry-image" in out and tok.issued > 0, (tok.issued, (dead or {}).get("trace")))


def other_path_same_digest(svc, reg, digest):
    """course/img's digest, pulled above, named under course/small (which
    does not hold it): the registry is asked and says no; not run."""
    r, dead, out = run_job(svc, "%s/course/small@%s" % (reg.host, digest), "otherpath.out")
    text = out.decode("utf-8", "replace") + json.dumps(dead or {})
    tlib.check("a digest pulled from one path, named under another that lacks it: refused, "
               "not run", b"ran-on-registry-image" not in out and
               re.search(r"manifest course/small:sha256:\S+: not found", text), text[-600:])


def fault_jobs(svc, px, store, small_layer, spy):
    el, _ = failed_with(svc, "%s/course/small:v1" % px["tamper"].host, "tamper.out",
                        r"not its digest: refused", "tampered blob")
    store_clean(store, small_layer[7:], "tampered blob")
    failed_with(svc, "%s/course/small:v1" % px["oversize"].host, "oversize.out",
                r"larger than \d+ bytes: refused", "a blob longer than its manifest says")
    store_clean(store, small_layer[7:], "a blob longer than its manifest says")
    failed_with(svc, "%s/course/small:v1" % px["realm"].host, "realm.out",
                r"HTTP 401|token server", "a Bearer realm on another host")
    tlib.check("a Bearer realm on another host: asked, and no credentials sent to it",
               len(spy.auth) > 0 and all(a is None for a in spy.auth),
               ["sent" if a else "none" for a in spy.auth])
    el, _ = failed_with(svc, "%s/course/small:v1" % px["stall"].host, "stall.out",
                        r"no progress for 3 s", "stalled registry")
    tlib.check("stalled registry: failed by its deadline", el < 60, el)
    store_clean(store, small_layer[7:], "stalled registry")
    failed_with(svc, "%s/course/img:multi" % px["index"].host, "index.out",
                r"no linux/amd64 image \(it has: linux/arm64, windows/amd64\)", "index")
    failed_with(svc, "%s/course/img:v1" % px["badca"].host, "badca.out",
                r"(?i)SSL|certificate", "TLS failure (another CA)")
    _, text = failed_with(svc, "%s/course/img:v1" % px["badcreds"].host, "badcreds.out",
                          r"refused the credentials of /\S+bad\.creds", "bad credentials")


def two_at_once(svc, reg):
    """Two jobs on an image the store lacks, at once: one pull."""
    image = "%s/course/small:v1" % reg.host
    ids = [tjobs.submit(svc, "reglab", {"Makefile": tjobs.makefile("cat /marker")}, name,
                        image=image, timeout=60) for name in ("twin1.out", "twin2.out")]
    outs = [tjobs.wait_output(svc, "reglab", n, 300) or b"" for n in ("twin1.out", "twin2.out")]
    log = open(os.path.join(svc.tmp, "consumer0.log")).read()
    pulls = re.findall(r"event=image_pulled name=\S+/course/small@", log)
    tlib.check("two jobs needing the same image at once: both run, one pull",
               all(b"registry test" in o for o in outs) and len(pulls) == 1,
               (ids, len(pulls), [o[-200:] for o in outs]))


def small_disk(svc, d, reg):
    """A store on a 200 MiB file system: the 111 MiB blob fits, the 300 MiB
    it unpacks to does not: refused before unpacking, nothing kept."""
    mnt = os.path.join(d, "smalldisk")
    os.mkdir(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200m,mode=0700", "tango-reg-test", mnt],
                   check=True)
    try:
        svc.start_consumer(test_e2e_localoci.oci_config(svc, oci={
            "store_dir": mnt + "/store", "docker_socket": "", "import_images": []}))
        try:
            failed_with(svc, "%s/course/img:v1" % reg.host, "smalldisk.out",
                        r"the layer store's disk has \d+ MiB free \(needs \d+ MiB\): refused",
                        "a store without room")
            tlib.check("a store without room: nothing kept (no layer, nothing in tmp/)",
                       os.listdir(mnt + "/store/layers") == [] and
                       os.listdir(mnt + "/store/tmp") == [], os.listdir(mnt + "/store"))
        finally:
            tlib.check("second consumer drains and exits 0", svc.consumers[-1].stop(60) == 0)
    finally:
        subprocess.run(["umount", mnt], check=False)


def no_secret_anywhere(svc):
    logs = "".join(open(os.path.join(svc.tmp, n), errors="replace").read()
                   for n in os.listdir(svc.tmp) if n.endswith(".log"))
    jobs = svc.get("/jobs/%s/1/" % svc.key).text
    keys = svc.redis.cli("--scan")
    dump = "".join(svc.redis.cli("GET", k) for k in keys.split() if "job" in k)
    for secret, what in ((BAD_PASSWORD, "the bad password"), (tr.PASSWORD, "the password")):
        tlib.check("%s is in no log, job list or record" % what,
                   secret not in logs and secret not in jobs and secret not in dump)


def producer_start(svc, config):
    """(exit code, stderr) of a producer started on svc's config plus config;
    a producer still running after 20 s (it started: the fault these checks
    look for) gives ("still running after 20 s", "")."""
    path = svc.write_config(config)
    try:
        r = subprocess.run([os.path.join(tlib.BUILD, "tango-producer"), "-c", path],
                           capture_output=True, text=True, timeout=20, env=svc.env())
        return (r.returncode, r.stderr)
    except subprocess.TimeoutExpired:
        return ("still running after 20 s", "")


def refused_at_start(d, svc):
    loose = tr.creds_file(d, "loose.creds", tr.USER, tr.PASSWORD, 0o640)
    got = producer_start(svc, {"registries": {"127.0.0.1:1": {"credentials": loose}}})
    tlib.check("a group-readable credentials file: the service refuses to start",
               got[0] == 2 and "readable by group or others (mode 0640)" in got[1], got)


def main():
    d = tempfile.mkdtemp(prefix="tango-registry-")
    ca, certdir, reg, tok, treg = fixtures(d)
    px = {}
    spy = None
    try:
        digest, small_layer, _ = push_images(reg, certdir)
        spy = tr.RealmSpy(d)
        px = {"tamper": tr.Proxy(d, reg.host, ca, "tamper", small_layer),
              "stall": tr.Proxy(d, reg.host, ca, "stall", small_layer),
              "oversize": tr.Proxy(d, reg.host, ca, "oversize", small_layer),
              "realm": tr.Proxy(d, reg.host, ca, "realm", spy.realm),
              "index": tr.Proxy(d, reg.host, ca, "index", "multi"),
              "badca": tr.Proxy(d, reg.host, ca, "pass", cert="other"),
              "badcreds": tr.Proxy(d, reg.host, ca, "pass")}
        good = tr.creds_file(d, "good.creds", tr.USER, tr.PASSWORD)
        bad = tr.creds_file(d, "bad.creds", tr.USER, BAD_PASSWORD)
        regs = {h: {"credentials": good, "ca_file": ca} for h in
                (reg.host, treg.host, px["tamper"].host, px["index"].host, px["badca"].host,
                 px["oversize"].host, px["realm"].host)}
        regs[px["stall"].host] = {"credentials": good, "ca_file": ca, "stall_timeout_s": 3}
        regs[px["badcreds"].host] = {"credentials": bad, "ca_file": ca}
        store = os.path.join(d, "store")
        # one retry: an unrelated hiccup of a loaded host (a sandbox that does
        # not start) must not fail a good job; the faults fail every try
        with tlib.Service(config={"registries": regs, "job_retries": 1}) as svc:
            r = tjobs.submit(svc, "reglab", {"Makefile": tjobs.makefile("true")}, "unlisted.out",
                             image="10.9.8.7:5000/course/img:v1")
            tlib.check("an unlisted registry is refused at addJob",
                       r.get("statusId") != 0 and
                       'registry \\"10.9.8.7:5000\\" is not one' in json.dumps(r), r)
            refused_at_start(d, svc)
            svc.start_consumer(test_e2e_localoci.oci_config(svc, oci={
                "store_dir": store, "docker_socket": "", "import_images": []}))
            try:
                good_jobs(svc, reg, treg, tok, digest, store)
                other_path_same_digest(svc, reg, digest)
                fault_jobs(svc, px, store, small_layer, spy)
                two_at_once(svc, reg)
            finally:
                tlib.check("consumer drains and exits 0", svc.consumers[0].stop(60) == 0)
            small_disk(svc, d, reg)
            svc.consumers.clear()
            no_secret_anywhere(svc)
        test_e2e_localoci.settled_leftovers()
        test_e2e_localoci.remove_run_dir()
    finally:
        for p in px.values():
            p.stop()
        for r in (reg, treg):
            r.stop()
        tok.stop()
        if spy:
            spy.stop()
        shutil.rmtree(d, ignore_errors=True)
    tlib.done()


if __name__ == "__main__":
    main()
