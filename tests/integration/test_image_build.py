"""Dockerfile builds through HTTP (issue 21, the build half) on localDocker:
real Redis, producers and a consumer. A Dockerfile FROM autograding_image
(local: no registry is reachable) with a RUN step is sent to
/build_image, answered at once with a build id; /build_status goes 1 then
0 and a job on the built image reads what the RUN step made. A failing RUN
ends with a negative statusId and its log. With build_approval required (a
second producer), a build waits while a later unreviewed one builds, until
`tangoctl builds approve`; `reject` fails another with -2. Another key can
neither read a build's status nor run a job on its image. A context tar
with COPY builds; a compressed one is refused; RUN steps have no network.
ADD of a URL, FROM / COPY --from another key's image and # syntax= are
refused at POST time with 400 naming the line. A body over
build_context_max_kb is refused with 413. A consumer killed mid-build: the
build is taken back and built by the next consumer, not lost."""
import json
import os
import signal
import io
import tarfile
import subprocess
import time

import timages
import tlib
from timages import K1, K2

CTL = os.path.join(tlib.BUILD, "tangoctl")
NAME = "%s-dfbuild" % timages.TAG
SLOW = "%s-dfslow" % timages.TAG
BAD = "%s-dfbad" % timages.TAG
WAIT = "%s-dfwait" % timages.TAG
REJ = "%s-dfrej" % timages.TAG
LATE = "%s-dflate" % timages.TAG
CTX = "%s-dfctx" % timages.TAG
REF = "%s-dfref" % timages.TAG  # refused Dockerfiles (K1's name): never built
REF2 = "%s-dfref2" % timages.TAG  # the same, K2's name


def send(svc, key, name, dockerfile, port=None):
    r = svc.post("/build_image/%s/" % key, dockerfile.encode(), headers={"imageName": name},
                 port=port)
    return r.status, r.json()


def status(svc, key, bid):
    r = svc.get("/build_status/%s/%s/" % (key, bid))
    return r.status, r.json()


def wait_end(svc, bid, timeout=90):
    """Polls K1's status of bid until it is no longer 1; returns (all
    statusIds seen, last answer)."""
    seen, last = [], {}

    def ended():
        nonlocal last
        last = status(svc, K1, bid)[1]
        seen.append(last.get("statusId"))
        return last.get("statusId") != 1
    tlib.wait_for(ended, timeout, 0.2)
    return seen, last


def submit_on(svc, name, recipe, out):
    """K1's job on image name; a producer accepts a newly published image
    within a second (it caches the image list), so a refusal is retried
    until then."""
    got = {}

    def accepted():
        got.update(timages.submit_as(svc, K1, "lab1", recipe, out, image=name))
        return got.get("statusId") == 0
    tlib.wait_for(accepted, 10, 0.3)
    return got


def ctl(svc, *args):
    p = subprocess.run([CTL, "-c", svc.write_config(), *args], capture_output=True, text=True,
                       env=svc.env(), timeout=30)
    return p.returncode, p.stdout + p.stderr


def check_build_and_run(svc):
    code, r = send(svc, K1, NAME, "FROM autograding_image\nRUN echo made-by-run > /made && "
                   "ls /sys/class/net > /nets\n")
    tlib.check("build answered at once with an id", code == 200 and r.get("statusId") == 1
               and isinstance(r.get("buildId"), int), (code, r))
    seen, last = wait_end(svc, r.get("buildId"))
    tlib.check("status goes 1 then 0", seen and seen[0] == 1 and last.get("statusId") == 0,
               (seen[:5], last))
    tlib.check("the build log is answered", "made-by-run" in last.get("log", ""), last)
    code, other = status(svc, K2, r.get("buildId"))
    tlib.check("another key cannot see the build's status", code == 404
               and "log" not in other, (code, other))
    tlib.check("built image published", timages.wait_published(svc, NAME),
               timages.published(svc))
    j = submit_on(svc, NAME, "cat /made", "made.out")
    tlib.check("job on the built image added", j.get("statusId") == 0, j)
    out = timages.output_as(svc, K1, "lab1", "made.out", 90)
    tlib.check("the job sees what the RUN step made", out is not None and b"made-by-run" in out,
               out and out[-300:])
    j = timages.submit_as(svc, K1, "lab1", "cat /nets", "nets.out", image=NAME)
    out = timages.output_as(svc, K1, "lab1", "nets.out", 90)
    tlib.check("the RUN step had no network (build_network none): lo only",
               out is not None and b"\nlo\n" in out and b"eth" not in out, out and out[-300:])
    j = timages.submit_as(svc, K2, "lab2", "cat /made", "k2.out", image=NAME)
    tlib.check("another key cannot run a job on the built image", j.get("statusId") == -1, j)
    code, r = send(svc, K2, NAME, "FROM autograding_image\n")
    tlib.check("another key cannot build over the name", r.get("statusId") == -1
               and "another key" in r.get("statusMsg", ""), (code, r))


def check_refused(svc):
    """The producer refuses, with 400 naming the line, what dockerd would do
    outside the build sandbox: ADD of a URL (fetched on the host network;
    loopback here, never a metadata address) and FROM another key's image
    (NAME, K1's build) -- docs/images-build.md."""
    code, r = send(svc, K1, REF, "FROM autograding_image\nADD http://127.0.0.1:9/x /x\n")
    tlib.check("ADD of a URL refused with 400 naming the line", code == 400
               and "line 2: ADD of a URL" in r.get("statusMsg", ""), (code, r))
    code, r = send(svc, K2, REF2, "FROM %s\nRUN cat /made\n" % NAME)
    tlib.check("FROM another key's image refused with 400", code == 400
               and "line 1: FROM" in r.get("statusMsg", ""), (code, r))
    code, r = send(svc, K2, REF2, "FROM autograding_image\nCOPY --from=%s /made /m\n" % NAME)
    tlib.check("COPY --from another key's image refused with 400", code == 400
               and "line 2: --from" in r.get("statusMsg", ""), (code, r))
    code, r = send(svc, K1, REF, "# syntax=docker/dockerfile:1\nFROM autograding_image\n")
    tlib.check("a # syntax= directive refused with 400", code == 400
               and "line 1: parser directive" in r.get("statusMsg", ""), (code, r))
    rr = svc.post("/build_image/%s/" % K1, tar_of({"Dockerfile": b"FROM autograding_image\n"
                                                   b"ADD http://127.0.0.1:9/x /x\n"}),
                  headers={"imageName": REF, "Content-Type": "application/x-tar"})
    tlib.check("ADD of a URL in a context tar's Dockerfile refused with 400", rr.status == 400
               and "ADD of a URL" in rr.json().get("statusMsg", ""), (rr.status, rr.json()))


def tar_of(files, gz=False):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as t:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            t.addfile(info, io.BytesIO(text))
    return buf.getvalue()


def check_context(svc):
    files = {"Dockerfile": b"FROM autograding_image\nCOPY data.txt /data.txt\n",
             "data.txt": b"from-the-context\n"}
    r = svc.post("/build_image/%s/" % K1, tar_of(files), headers={
        "imageName": CTX, "Content-Type": "application/x-tar"}).json()
    _, last = wait_end(svc, r.get("buildId"))
    tlib.check("a context tar with COPY builds", last.get("statusId") == 0, last)
    tlib.check("built image published", timages.wait_published(svc, CTX))
    j = submit_on(svc, CTX, "cat /data.txt", "ctx.out")
    tlib.check("job on the context-built image added", j.get("statusId") == 0, j)
    out = timages.output_as(svc, K1, "lab1", "ctx.out", 90)
    tlib.check("the job sees the copied file", out is not None and b"from-the-context" in out,
               out and out[-300:])
    rr = svc.post("/build_image/%s/" % K1, tar_of(files, gz=True), headers={
        "imageName": CTX, "Content-Type": "application/x-tar"})
    tlib.check("a compressed context is refused", rr.status == 400
               and "Compressed" in rr.json().get("statusMsg", ""), (rr.status, rr.text[:200]))


def check_failure_and_size(svc):
    code, r = send(svc, K1, BAD, "FROM autograding_image\nRUN echo about-to-fail && false\n")
    seen, last = wait_end(svc, r.get("buildId"))
    tlib.check("a failing RUN gives a negative statusId", (last.get("statusId") or 0) < 0, last)
    tlib.check("... and its log", "about-to-fail" in last.get("log", "")
               and "non-zero" in last.get("log", ""), last.get("log", "")[-400:])
    big = "FROM autograding_image\n" + "# padding\n" * 8000
    code, r = send(svc, K1, BAD, big)
    tlib.check("an over-size Dockerfile is refused with 413 naming the limit", code == 413
               and "build_context_max_kb" in r.get("statusMsg", ""), (code, r))
    code, r = status(svc, K1, "12x")
    tlib.check("a bad build id is refused", code == 400, (code, r))


def check_approval(svc):
    review = svc.start_producer({"build_approval": "required"})
    code, a = send(svc, K1, WAIT, "FROM autograding_image\nRUN echo ok > /ok\n", review.port)
    code, c = send(svc, K1, REJ, "FROM autograding_image\n", review.port)
    code, b = send(svc, K1, LATE, "FROM autograding_image\nRUN echo late > /late\n")
    _, last = wait_end(svc, b.get("buildId"))
    tlib.check("an unreviewed later build is built", last.get("statusId") == 0, last)
    _, wa = status(svc, K1, a.get("buildId"))
    tlib.check("a build needing approval still waits", wa.get("statusId") == 1
               and wa.get("state") == "waiting", wa)
    rc, text = ctl(svc, "builds", "list")
    tlib.check("tangoctl builds list shows it waiting", rc == 0 and WAIT in text
               and "waiting" in text, text)
    rc, text = ctl(svc, "builds", "approve", str(a.get("buildId")))
    tlib.check("tangoctl builds approve", rc == 0, text)
    _, wa = wait_end(svc, a.get("buildId"))
    tlib.check("the approved build is built", wa.get("statusId") == 0, wa)
    rc, text = ctl(svc, "builds", "reject", str(c.get("buildId")))
    _, rj = status(svc, K1, c.get("buildId"))
    tlib.check("tangoctl builds reject fails it (-2)", rc == 0 and rj.get("statusId") == -2,
               (text, rj))
    rc, text = ctl(svc, "builds", "log", str(a.get("buildId")))
    tlib.check("tangoctl builds log", rc == 0 and "Step" in text, text[-300:])


def check_consumer_killed(svc, cfg):
    code, r = send(svc, K1, SLOW, "FROM autograding_image\nRUN sleep 6 && echo slow > /slow\n")
    bid = r.get("buildId")
    running = tlib.wait_for(lambda: status(svc, K1, bid)[1].get("state") == "running", 30, 0.1)
    tlib.check("slow build running", running, status(svc, K1, bid))
    svc.consumers[0].kill(signal.SIGKILL)
    svc.consumers.clear()
    svc.start_consumer(cfg)
    seen, last = wait_end(svc, bid, 90)
    tlib.check("a build whose consumer was killed is built, not lost",
               last.get("statusId") == 0 and "slow" in last.get("log", ""), (seen[-3:], last))
    rec = json.loads(svc.redis.cli("HGET", svc.prefix + "imgbuilds", str(bid)))
    tlib.check("... by a second attempt (taken back, not left running)",
               rec.get("attempts") == 2 and not svc.redis.cli("HKEYS", svc.prefix +
                                                               "imgbuilds:running").strip(), rec)


def main():
    t0 = time.time()
    with timages.service("localDocker", {"build_context_max_kb": 64}) as svc:
        cfg = timages.consumer_config(svc, "localDocker", {"lease_ms": 2000})
        svc.start_consumer(cfg)
        try:
            check_build_and_run(svc)
            check_refused(svc)
            check_context(svc)
            check_failure_and_size(svc)
            check_approval(svc)
            check_consumer_killed(svc, cfg)
        finally:
            timages.stop_consumer(svc)
            for n in (NAME, SLOW, BAD, WAIT, REJ, LATE, CTX, REF, REF2):
                timages.forget_image("localDocker", n)
                # an interrupted build dockerd finished anyway: by our label
                left = tlib.docker("images", "-q", "--filter", "label=tango.image=" + n,
                                   check=False).split()
                for i in left:
                    tlib.docker("rmi", "-f", i, check=False)
    print("# test_image_build took %.0f s" % (time.time() - t0))
    tlib.done()


if __name__ == "__main__":
    main()
