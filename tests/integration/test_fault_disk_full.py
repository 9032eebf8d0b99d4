"""Issue 19 point 2: the disk fills mid-burst. Real Redis, a producer, a
consumer on localDocker, Docker; courselabs and localDocker's volume_dir on
a small file system of the test's own (a 64 MiB tmpfs it mounts and
removes; never the machine's own disk).

A burst of 9 jobs starts; while some run, the file system is filled to the
last byte for ~20 s, then freed. Checked:
  - an upload while it is full answers -1 (statusId), cleanly;
  - leasing pauses below the floor (min_free_mb) and resumes by itself
    once space is back: the consumer leases no job in between;
  - the free-space metric shows the fall (tango_disk_free_bytes below
    tango_disk_min_free_bytes) and the alert rules for it pass promtool;
  - no job ends without its output: every one of the 9 completes, once
    space is back, with its own correct output.
"""
import errno
import os
import re
import subprocess
import tempfile
import time

import tlib
from test_e2e_localdocker import consumer_config
from tjobs import makefile, submit, wait_output

SIZE_MB = 64
FLOOR_MB = 8
FULL_S = 20
NJOBS = 9
wait_for = tlib.wait_for
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fill(path):
    """Writes path until the file system has no byte left; returns bytes."""
    n = 0
    chunk = b"\0" * (1 << 20)
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                n += f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
        # the last partial chunk
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    n += f.write(b"\0" * size)
                except OSError:
                    break
    return n


def scrape(port):
    try:
        return tlib.request(port, "GET", "/metrics").body.decode()
    except OSError:
        return ""


def gauge(text, name, path=None):
    for line in text.splitlines():
        if line.startswith(name + "{") and (path is None or 'path="%s"' % path in line):
            return float(line.rsplit(" ", 1)[1])
    return None


def run_started(svc, job_id):
    try:
        job = svc.get("/job/%s/%d/" % (svc.key, job_id)).json().get("job") or {}
    except ValueError:
        return False
    return any("Input copied for job" in t for t in job.get("trace", []))


def dead_ids(svc):
    return [j["id"] for j in svc.get("/jobs/%s/1/" % svc.key).json()["jobs"]]


def disk_full(svc, mnt):
    mport = tlib.free_port()
    cfg = consumer_config(svc, extra={
        "min_free_mb": FLOOR_MB, "metrics_port": mport, "max_jobs": 4, "auto_pool_max": 0,
        "vmms_config": {"localDocker": {"volume_dir": os.path.join(mnt, "volumes")}}})
    consumer = svc.start_consumer(cfg)
    tlib.wait_port(mport, proc=consumer.proc)
    # a grader whose output is big enough that writing it needs real space
    grader = "sleep 2\necho graded-%d\nseq 1 8000\necho end-%d"
    ids = []
    for i in range(NJOBS):
        r = submit(svc, "full", {"Makefile": makefile(grader % (i, i))}, "full%d.out" % i,
                   timeout=60)
        tlib.check("job %d accepted" % i, r.get("statusId") == 0, r)
        ids.append(r["jobId"])
    started = wait_for(lambda: sum(run_started(svc, i) for i in ids) >= 2, 60)
    tlib.check("the burst is running", started)

    t_fill = time.time()
    filler = os.path.join(mnt, "fill")
    filled = fill(filler)
    print("# filled %.1f MiB" % (filled / 1048576.0))
    up = svc.upload("full", "while-full.bin", b"x" * 200000)
    tlib.check("an upload while the disk is full answers -1", up.get("statusId") == -1, up)
    paused = wait_for(lambda: "event=disk_leasing_paused" in consumer.logtext(), 10)
    tlib.check("leasing pauses below the floor", paused, consumer.logtext()[-1500:])
    text = wait_for(lambda: (lambda t: t if (gauge(t, "tango_disk_free_bytes", svc.courselabs)
                                             or 1e18) < FLOOR_MB << 20 else None)(scrape(mport)),
                    10) or scrape(mport)
    free = gauge(text, "tango_disk_free_bytes", svc.courselabs)
    floor = gauge(text, "tango_disk_min_free_bytes")
    tlib.check("the metric shows the disk below the floor",
               free is not None and floor == FLOOR_MB << 20 and free < floor,
               (free, floor, [l for l in text.splitlines() if "disk" in l]))
    vol = gauge(text, "tango_disk_free_bytes", os.path.join(mnt, "volumes"))
    tlib.check("volume_dir is watched too", vol is not None and vol < FLOOR_MB << 20, vol)
    # The fault lasts ~FULL_S seconds: the length of the fault, not a synchronisation.
    time.sleep(max(0.0, FULL_S - (time.time() - t_fill)))
    ended_early = [j for j in svc.get("/jobs/%s/1/" % svc.key).json()["jobs"]
                   if j["id"] in ids]
    print("# %d of %d jobs ended while the disk was full" % (len(ended_early), NJOBS))
    os.unlink(filler)
    t_free = time.time()
    resumed = wait_for(lambda: "event=disk_leasing_resumed" in consumer.logtext(), 15)
    tlib.check("leasing resumes by itself once space is back", resumed,
               consumer.logtext()[-1500:])
    print("# leasing resumed %.1fs after the space came back" % (time.time() - t_free))

    deadline = time.time() + 120
    outs = [wait_output(svc, "full", "full%d.out" % i, max(1, deadline - time.time()))
            for i in range(NJOBS)]
    good = [o is not None and b"graded-%d" % i in o and b"end-%d" % i in o and
            b"\n8000\n" in o and b"Success: Autodriver returned normally" in o
            for i, o in enumerate(outs)]
    tlib.check("every job completes with its own correct output", all(good),
               [(i, o[-200:] if o else None) for i, o in enumerate(outs) if not good[i]])
    wait_for(lambda: set(ids) <= set(dead_ids(svc)), 30)
    recs = [j for j in svc.get("/jobs/%s/1/" % svc.key).json()["jobs"] if j["id"] in ids]
    tlib.check("every job ended once", sorted(j["id"] for j in recs) == sorted(ids),
               [j["id"] for j in recs])
    print("# retries per job: %s" % [j.get("retries") for j in recs])
    tlib.check("no job ended with an internal error",
               all("finished: Internal error" not in " ".join(j.get("trace", [])) for j in recs),
               [[t for t in j["trace"] if "finished:" in t] for j in recs])
    log = consumer.logtext()
    a = log.find("event=disk_leasing_paused")
    b = log.find("event=disk_leasing_resumed", a)
    between = log[a:b] if a >= 0 and b >= 0 else ""
    tlib.check("no job leased while leasing was paused", "event=job_leased" not in between,
               re.findall(r"event=job_leased id=\d+", between))
    tlib.check("the consumer says it waited for space",
               re.search(r"event=(output_write_waiting|copyout_waiting|disk_low)", log) is not None,
               log[-1500:])
    consumer.stop(60)


def alert_rules():
    alerts = os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")
    text = open(alerts).read()
    tlib.check("an alert rule on free disk space",
               "tango_disk_free_bytes" in text and "tango_disk_min_free_bytes" in text)
    try:
        p = subprocess.run(["promtool", "test", "rules",
                            os.path.join(ROOT, "deploy", "prometheus", "alerts_test.yml")],
                           capture_output=True, text=True, timeout=60)
        ok, out = p.returncode == 0, p.stdout + p.stderr
    except OSError as e:
        ok, out = False, str(e)
    tlib.check("the alert rules' unit tests pass (promtool test rules)", ok, out[-1500:])
    tlib.check("the disk alerts have unit tests",
               "TangoDiskBelowFloor" in open(os.path.join(ROOT, "deploy", "prometheus",
                                                          "alerts_test.yml")).read())


def main():
    alert_rules()
    mnt = tempfile.mkdtemp(prefix="tango-disk-")
    rc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0755" % SIZE_MB,
                         "tango-disk-test", mnt], capture_output=True, text=True)
    tlib.check("the test's own small file system is mounted", rc.returncode == 0, rc.stderr)
    if rc.returncode != 0:
        tlib.done()
        return
    try:
        courselabs = os.path.join(mnt, "courselabs")
        with tlib.Service(producers=1, config={"courselabs": courselabs}) as svc:
            svc.courselabs = courselabs
            disk_full(svc, mnt)
    finally:
        subprocess.run(["umount", "-l", mnt])
        os.rmdir(mnt)
    tlib.done()


if __name__ == "__main__":
    main()
