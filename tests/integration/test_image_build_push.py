"""Dockerfile builds pushed to a registry (issue 21, build_push_to): the
registry is tregistry.py's CNCF distribution registry on loopback with TLS
(a test CA dockerd trusts by /etc/docker/certs.d) and htpasswd auth.

Checks: a Dockerfile FROM autograding_image with a RUN step, built on
localDocker with build_push_to set, ends with statusId 0 and the pushed
reference (with its digest) in /build_status's imageRef; another key naming
that reference is refused at addJob (it belongs to the key that built it),
also when it names that digest under a build name the other key owns;
a localOCI consumer with no Docker daemon reachable runs the building key's
job on the reference and sees what the RUN step made. A push with bad
credentials (a second registry listed with a wrong password) fails the
build with a negative statusId and a log saying the registry refused the
push, and no password is in any log, build status or record."""
import os
import re
import shutil
import subprocess
import tempfile
import time

import test_e2e_localoci
import test_image_build as tib
import test_registry
import test_registry_docker
import timages
import tlib
import tregistry as tr
from timages import K1, K2

NAME = "%s-dfpush" % timages.TAG
BADNAME = "%s-dfpushbad" % timages.TAG
K2NAME = "%s-dfpushk2" % timages.TAG
PREFIX = "courses"
DOCKERFILE = "FROM autograding_image\nRUN echo made-by-push-run > /made\n"


def build_and_push(svc, reg):
    """K1 builds NAME with the consumer pushing to reg; returns imageRef."""
    code, r = tib.send(svc, K1, NAME, DOCKERFILE)
    tlib.check("push build answered with an id", code == 200 and r.get("statusId") == 1, r)
    seen, last = tib.wait_end(svc, r.get("buildId"), 300)
    ref = last.get("imageRef") or ""
    tlib.check("the build ends with statusId 0", last.get("statusId") == 0,
               (seen[-3:], {k: v for k, v in last.items() if k != "log"}, last.get("log", "")[-800:]))
    want = r"%s/%s/%s:latest@sha256:[0-9a-f]{64}$" % (re.escape(reg.host), PREFIX, re.escape(NAME))
    tlib.check("/build_status shows the pushed reference with its digest",
               re.match(want, ref) is not None, ref)
    if not ref:
        return ""
    rc, text = tib.ctl(svc, "builds", "log", str(r.get("buildId")))
    tlib.check("tangoctl builds log names the pushed reference",
               rc == 0 and ("pushed: %s\n" % ref) in text, (rc, text[:300]))
    digest = ref.rsplit("@", 1)[-1]
    _, served = tr.manifest(reg.host, "%s/%s" % (PREFIX, NAME), "latest", svc.certdir)
    tlib.check("the registry serves that digest for the tag", served == digest, (served, digest))
    return ref


def refused_at_start(svc):
    """build_push_to naming an unlisted registry: the producer does not start."""
    got = test_registry.producer_start(svc, {"build_push_to": "127.0.0.1:1/courses"})
    tlib.check("build_push_to on an unlisted registry: the service refuses to start",
               got[0] == 2 and 'config key "build_push_to": registry "127.0.0.1:1" is not '
               'listed' in got[1], got)


def other_key_builds(svc):
    """K2 builds K2NAME (a copy of autograding_image) with /build: a name
    of its own, so the refusals below are about the digest, not the name."""
    timages.docker("tag", "autograding_image", K2NAME)
    tar = timages.saved(K2NAME)
    timages.docker("rmi", K2NAME)
    r = timages.build(svc, K2, K2NAME, tar)
    tlib.check("K2 builds a name of its own", r.get("statusId") == 0, r)
    tlib.check("K2's image published", timages.wait_published(svc, K2NAME),
               timages.published(svc))


def other_key_refused(svc, ref):
    by_digest = ref.split(":latest@")[0] + "@" + ref.split("@")[1]
    digest = ref.split("@")[1]
    mine = ref.split("/%s:" % NAME)[0] + "/" + K2NAME
    for what, image in (("tag and digest", ref), ("tag", ref.split("@")[0]),
                        ("digest", by_digest),
                        ("its own name and tag with the build's digest",
                         "%s:latest@%s" % (mine, digest)),
                        ("its own name with the build's digest", "%s@%s" % (mine, digest))):
        j = timages.submit_as(svc, K2, "lab2", "cat /made", "k2push.out", image=image)
        tlib.check("another key naming the pushed build by %s is refused at addJob" % what,
                   j.get("statusId") == -1 and
                   "does not own" in j.get("statusMsg", "") + str(j), j)


def oci_runs_it(svc, d, ref):
    """A localOCI consumer with no Docker socket runs K1's job on ref."""
    svc.start_consumer(test_e2e_localoci.oci_config(svc, extra={"builds_at_once": 0}, oci={
        "store_dir": os.path.join(d, "store"), "docker_socket": "", "import_images": []}))
    try:
        j = timages.submit_as(svc, K1, "lab1", "cat /made", "pushmade.out", image=ref)
        tlib.check("the building key's job on the pushed reference is added",
                   j.get("statusId") == 0, j)
        out = timages.output_as(svc, K1, "lab1", "pushmade.out", 300)
        tlib.check("localOCI (no Docker daemon) runs it and sees what the RUN step made",
                   out is not None and b"made-by-push-run" in out, out and out[-400:])
    finally:
        timages.stop_consumer(svc)


def bad_credentials(svc, bad_reg):
    svc.start_consumer(timages.consumer_config(svc, "localDocker", {
        "build_push_to": "%s/%s" % (bad_reg.host, PREFIX)}))
    try:
        code, r = tib.send(svc, K1, BADNAME, DOCKERFILE)
        _, last = tib.wait_end(svc, r.get("buildId"), 300)
        log = last.get("log", "")
        tlib.check("bad credentials: the build fails with a negative statusId",
                   (last.get("statusId") or 0) < 0 and "imageRef" not in last,
                   {k: v for k, v in last.items() if k != "log"})
        tlib.check("bad credentials: the log says the registry refused the push",
                   re.search(r"Push failed: the registry refused the push of \S+: .*(?i:"
                             r"unauthorized|authentication|credentials)", log) is not None,
                   log[-800:])
        answers = str(last) + str(tib.status(svc, K1, r.get("buildId"))[1])
        dump = svc.redis.cli("HVALS", svc.prefix + "imgbuilds")
        for secret, what in ((test_registry.BAD_PASSWORD, "the bad password"),
                             (tr.PASSWORD, "the password")):
            tlib.check("%s is in no build status nor build record" % what,
                       secret not in answers and secret not in dump)
    finally:
        timages.stop_consumer(svc)


def main():
    t0 = time.time()
    d = tempfile.mkdtemp(prefix="tango-buildpush-")
    ca = tr.make_ca(d, "srv")
    certdir = os.path.join(d, "certs")
    os.mkdir(certdir)
    shutil.copy(ca, os.path.join(certdir, "ca.crt"))
    reg = tr.Registry(d, os.path.join(d, "storage"), "basic")
    bad_reg = tr.Registry(d, os.path.join(d, "storage2"), "basic2")
    trusted = []
    try:
        for h in (reg.host, bad_reg.host):
            test_registry_docker.trust(h, ca)
            trusted.append(h)
        good = tr.creds_file(d, "good.creds", tr.USER, tr.PASSWORD)
        bad = tr.creds_file(d, "bad.creds", tr.USER, test_registry.BAD_PASSWORD)
        regs = {reg.host: {"credentials": good, "ca_file": ca},
                bad_reg.host: {"credentials": bad, "ca_file": ca}}
        with timages.service("localDocker", {"registries": regs, "build_push_to":
                                             "%s/%s" % (reg.host, PREFIX)}) as svc:
            svc.certdir = certdir
            refused_at_start(svc)
            svc.start_consumer(timages.consumer_config(svc, "localDocker"))
            try:
                ref = build_and_push(svc, reg)
                other_key_builds(svc)
            finally:
                timages.stop_consumer(svc)
            if ref:
                other_key_refused(svc, ref)
                oci_runs_it(svc, d, ref)
            bad_credentials(svc, bad_reg)
            test_registry.no_secret_anywhere(svc)
        test_e2e_localoci.settled_leftovers()
        test_e2e_localoci.remove_run_dir()
    finally:
        timages.forget_image("localDocker", K2NAME)
        for n in (NAME, BADNAME):
            for r in (n, "%s/%s/%s" % (reg.host, PREFIX, n), "%s/%s/%s" % (bad_reg.host, PREFIX, n)):
                subprocess.run(["docker", "rmi", "-f", r], capture_output=True)
        for h in trusted:
            shutil.rmtree(os.path.join(test_registry_docker.CERTS_D, h), ignore_errors=True)
        bad_reg.stop()
        reg.stop()
        shutil.rmtree(d, ignore_errors=True)
    print("# test_image_build_push took %.0f s" % (time.time() - t0))
    tlib.done()


if __name__ == "__main__":
    main()
