"""Registry images on localDocker (issue 21): the host's dockerd pulls them
through the Engine API (POST /images/create with X-Registry-Auth built from
the registry's credentials file), and the consumer pins a tag to its digest
first through the registry client (resolve_image). The registry is Debian's
CNCF distribution registry of tregistry.py on loopback with TLS (a test
CA, written to /etc/docker/certs.d/HOST:PORT/ca.crt for dockerd, removed
after) and htpasswd auth; a pass-through proxy with wrong credentials
listed gives the bad-credentials case.

Checks: a localDocker job on a registry image by tag (dockerd pulled it;
the record keeps the digest), then by digest (not pulled again); bad
credentials: the job fails with Docker's clear refusal and neither
password is in any log, job list or record."""
import os
import re
import shutil
import subprocess
import tempfile

import test_e2e_localdocker
import test_registry
import tlib
import tregistry as tr

CERTS_D = "/etc/docker/certs.d"


def trust(host, ca):
    """dockerd trusts ca for registry host (its certs.d rule)."""
    d = os.path.join(CERTS_D, host)
    os.makedirs(d, exist_ok=True)
    shutil.copy(ca, os.path.join(d, "ca.crt"))


PULL_VIA = r"event=image_pulled name=\S+ via=engine"


def pulls(svc, via=PULL_VIA):
    """(the consumer's image_pulled lines matching via, its whole log)."""
    log = open(os.path.join(svc.tmp, "consumer0.log")).read()
    return re.findall(via, log), log


def good_jobs(svc, reg, digest, repo="course/dimg", backend="localDocker",
              puller="dockerd pulled it through the Engine API", via=PULL_VIA):
    """A job on repo:v1 runs and its record keeps the digest; one pull
    (a log line matching via); a job by that digest runs with no second
    pull. Returns the pinned reference. Shared by the distDocker test."""
    r, dead, out = test_registry.run_job(svc, "%s/%s:v1" % (reg.host, repo), "tag.out")
    tlib.check("by tag: a %s job runs the registry image" % backend,
               b"ran-on-registry-image" in out, (r, (dead or {}).get("trace")))
    pinned = "%s/%s@%s" % (reg.host, repo, digest)
    tlib.check("by tag: the record keeps the digest the tag resolved to",
               ((dead or {}).get("vm") or {}).get("image") == pinned, dead)
    got, log = pulls(svc, via)
    tlib.check("by tag: " + puller, len(got) == 1, log[-1500:])
    r, dead, out = test_registry.run_job(svc, pinned, "digest.out")
    tlib.check("by digest: the job runs", b"ran-on-registry-image" in out,
               (r, (dead or {}).get("trace")))
    got, log = pulls(svc, via)
    tlib.check("by digest: the image is not pulled again", len(got) == 1, log[-1500:])
    return pinned


def main():
    d = tempfile.mkdtemp(prefix="tango-regdocker-")
    ca = tr.make_ca(d, "srv")
    certdir = os.path.join(d, "certs")
    os.mkdir(certdir)
    shutil.copy(ca, os.path.join(certdir, "ca.crt"))
    reg = tr.Registry(d, os.path.join(d, "storage"), "basic")
    px = tr.Proxy(d, reg.host, ca, "pass")
    trusted, pulled = [], []
    try:
        tr.skopeo_push("docker-daemon:autograding_image:latest", reg.host, "course/dimg:v1",
                       certdir)
        _, digest = tr.manifest(reg.host, "course/dimg", "v1", certdir)
        for h in (reg.host, px.host):
            trust(h, ca)
            trusted.append(h)
        good = tr.creds_file(d, "good.creds", tr.USER, tr.PASSWORD)
        bad = tr.creds_file(d, "bad.creds", tr.USER, test_registry.BAD_PASSWORD)
        regs = {reg.host: {"credentials": good, "ca_file": ca},
                px.host: {"credentials": bad, "ca_file": ca}}
        with tlib.Service(config={"registries": regs}) as svc:
            svc.start_consumer(test_e2e_localdocker.consumer_config(svc))
            try:
                pulled.append(good_jobs(svc, reg, digest))
                pulled.append("%s/course/dimg@%s" % (px.host, digest))
                test_registry.failed_with(svc, pulled[-1], "dbadcreds.out",
                                          r"Docker could not pull \S+: .*(?i:unauthorized|"
                                          r"authentication|credentials)", "bad credentials")
            finally:
                tlib.check("consumer drains and exits 0", svc.consumers[0].stop(60) == 0)
                print("".join("# " + l[:700] + "\n" for l in pulls(svc)[1].splitlines()
                              if re.search(r"event=image_pull", l)), end="")
            svc.consumers.clear()
            test_registry.no_secret_anywhere(svc)
    finally:
        for ref in pulled:
            subprocess.run(["docker", "rmi", ref], capture_output=True)
        for h in trusted:
            shutil.rmtree(os.path.join(CERTS_D, h), ignore_errors=True)
        px.stop()
        reg.stop()
        shutil.rmtree(d, ignore_errors=True)
    tlib.done()


if __name__ == "__main__":
    main()
