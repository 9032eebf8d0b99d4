"""Registry images on distDocker (issue 21): the consumer pins a tag to its
digest (distDocker's resolve_image, the registry client), and the worker
host that gets the job pulls the image with `docker --config DIR pull`
over SSH, the registry's credentials in a config.json sent on the
command's stdin into a fresh 0700 directory that goes in every case. The
registry and the bad-credentials proxy are test_registry_docker.py's
(tregistry.py: TLS with a test CA trusted by dockerd's certs.d, htpasswd
auth); the worker is a fleet host (tests/fleet: a network namespace with
its own sshd, sharing this machine's dockerd, which pulls from loopback).

Checks: a distDocker job on a registry image by tag runs (the host pulled
it; the record keeps the digest), then by digest (not pulled again); bad
credentials: the job fails with Docker's clear refusal; neither password
(nor user:password in base64) is in any log, job list or record; no
config directory is left on the worker. Needs root."""
import base64
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fleet"))

import fleet  # noqa: E402
import test_e2e_distdocker  # noqa: E402
import test_registry  # noqa: E402
import test_registry_docker as trd  # noqa: E402
import tlib  # noqa: E402
import tregistry as tr  # noqa: E402

LEFT_GLOB = "/tmp/tango-pull.*"  # the pull's config directory on a fleet host (shared /tmp)


PULL_VIA = r"event=image_pulled name=\S+ host=\S+ via=docker_cli"


def pulls(svc):
    return trd.pulls(svc, PULL_VIA)


def good_jobs(svc, reg, digest):
    return trd.good_jobs(svc, reg, digest, repo="course/ddimg", backend="distDocker",
                         puller="the worker host pulled it with the docker CLI",
                         via=PULL_VIA)


def no_base64_secret(svc):
    logs = "".join(open(os.path.join(svc.tmp, n), errors="replace").read()
                   for n in os.listdir(svc.tmp) if n.endswith(".log"))
    for pw in (tr.PASSWORD, test_registry.BAD_PASSWORD):
        b = base64.b64encode(("%s:%s" % (tr.USER, pw)).encode()).decode()
        tlib.check("user:password in base64 is in no log", b not in logs)


def run(d, f, reg, px, digest, pulled):
    good = tr.creds_file(d, "good.creds", tr.USER, tr.PASSWORD)
    bad = tr.creds_file(d, "bad.creds", tr.USER, test_registry.BAD_PASSWORD)
    regs = {reg.host: {"credentials": good, "ca_file": os.path.join(d, "srv-ca.crt")},
            px.host: {"credentials": bad, "ca_file": os.path.join(d, "srv-ca.crt")}}
    with tlib.Service(config={"registries": regs}) as svc:
        cfg = test_e2e_distdocker.consumer_config(svc, f)
        # room besides the warm pool's instances of the registry image
        cfg["vmms_config"] = {"distDocker": f.distdocker_config(max_jobs=4)}
        svc.start_consumer(cfg)
        try:
            pulled.append(good_jobs(svc, reg, digest))
            pulled.append("%s/course/ddimg@%s" % (px.host, digest))
            test_registry.failed_with(svc, pulled[-1], "ddbadcreds.out",
                                      r"Docker could not pull \S+ on \S+: .*(?i:unauthorized|"
                                      r"authentication|credentials)", "bad credentials")
        finally:
            tlib.check("consumer drains and exits 0", svc.consumers[0].stop(60) == 0)
            print("".join("# " + l[:700] + "\n" for l in pulls(svc)[1].splitlines()
                          if re.search(r"event=image_pull", l)), end="")
        svc.consumers.clear()
        test_registry.no_secret_anywhere(svc)
        no_base64_secret(svc)
    left = glob.glob(LEFT_GLOB)
    tlib.check("no pull config directory left on the worker host", not left, left)
    tlib.check("no volume directory left on the host", not f.leftovers(), f.leftovers())


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    if os.geteuid() != 0:
        tlib.check("distDocker registry test needs root (network namespaces, sshd)", False)
        tlib.done()
    d = tempfile.mkdtemp(prefix="tango-regdd-")
    ca = tr.make_ca(d, "srv")
    certdir = os.path.join(d, "certs")
    os.mkdir(certdir)
    shutil.copy(ca, os.path.join(certdir, "ca.crt"))
    reg = tr.Registry(d, os.path.join(d, "storage"), "basic")
    px = tr.Proxy(d, reg.host, ca, "pass")
    trusted, pulled = [], []
    try:
        tr.skopeo_push("docker-daemon:autograding_image:latest", reg.host, "course/ddimg:v1",
                       certdir)
        _, digest = tr.manifest(reg.host, "course/ddimg", "v1", certdir)
        for h in (reg.host, px.host):
            trd.trust(h, ca)
            trusted.append(h)
        with fleet.Fleet(1) as f:
            run(d, f, reg, px, digest, pulled)
    finally:
        for ref in pulled:
            subprocess.run(["docker", "rmi", ref], capture_output=True)
        for h in trusted:
            shutil.rmtree(os.path.join(trd.CERTS_D, h), ignore_errors=True)
        px.stop()
        reg.stop()
        shutil.rmtree(d, ignore_errors=True)
    tlib.done()


if __name__ == "__main__":
    main()
