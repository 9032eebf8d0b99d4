"""A hostile job against the sandbox, end to end on localDocker (real Redis,
producer, consumer, Docker and autograding_image), issue 10:
- the disk filler: a job writes 2.5 GB in /tmp and in its home while the
  test samples the host's disk use; growth stays under the job's limit and
  the job ends with its own outcome (ENOSPC inside, no retry, no OS error);
- a job that tries to change an input file cannot change the lab's copy
  (the next job and the host see the original bytes);
- partial output of a job that points output.log at /etc/shadow shows none
  of it; a FIFO at output.log in one job does not hold up another job's
  partial output;
- two input files with one destFile: the last one listed wins."""
import hashlib
import os
import subprocess
import threading
import time

import tjobs
import tlib
from tjobs import makefile, submit, wait_output

PREFIX = "th%d-" % os.getpid()
DISK_MB = 1024  # the plugin's default disk limit (the consumer passes 0)


def consumer_config(svc):
    return {"vmms": "localDocker", "vmms_dir": os.path.join(tlib.BUILD, "vmms"),
            "instance_prefix": PREFIX, "max_jobs": 4, "max_jobs_per_image": 4,
            "lease_ms": 3000, "default_memory_mb": 512, "pids_limit": 256,
            "partial_output_interval_ms": 200, "callback_backoff_ms": 100,
            "vmms_config": {"localDocker": {"volume_dir": os.path.join(svc.tmp, "volumes")}}}


def docker_root():
    r = subprocess.run(["docker", "info", "--format", "{{.DockerRootDir}}"],
                       capture_output=True, text=True)
    return r.stdout.strip() or "/var/lib/docker"


def used_bytes(path):
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


class DiskSampler:
    """Samples the used bytes of every file system in paths every 100 ms."""

    def __init__(self, paths):
        self.paths = sorted(set(paths))
        self.base = {p: used_bytes(p) for p in self.paths}
        self.peak = dict(self.base)
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_ev.is_set():
            for p in self.paths:
                self.peak[p] = max(self.peak[p], used_bytes(p))
            time.sleep(0.1)

    def stop(self):
        self.stop_ev.set()
        self.thread.join()
        return max(self.peak[p] - self.base[p] for p in self.paths)


def outcome_line(out):
    lines = out.decode("utf-8", "replace").split("\n") if out else []
    return lines[1] if len(lines) > 1 else ""


def test_disk_filler(svc):
    # 14 files of 90 MB (under the per-file size limit) in /tmp, then 14 in
    # the home: 2.5 GB in all, each place past its share; `-` lets make go
    # on after the ENOSPC.
    fill = makefile("-for i in $$(seq 1 14); do dd if=/dev/zero of=/tmp/f$$i bs=1M count=90 "
                    "2>&1 | grep -v records; done\n"
                    "-for i in $$(seq 1 14); do dd if=/dev/zero of=f$$i bs=1M count=90 "
                    "2>&1 | grep -v records; done\n"
                    "-dd if=/dev/zero of=/var/tmp/fill bs=1M count=90 2>&1 | grep -v records\n"
                    "-dd if=/dev/zero of=/dev/shm/fill bs=1M count=90 2>&1 | grep -v records\n"
                    "-touch /etc/x /usr/x 2>&1\n"
                    "df -m /tmp /home/autograde | tail -2\n"
                    "echo writer finished")
    paths = [docker_root(), svc.courselabs, svc.tmp]
    sampler = DiskSampler(paths)
    t0 = time.time()
    r = submit(svc, "disk", {"Makefile": fill}, "fill.out", timeout=120)
    out = wait_output(svc, "disk", "fill.out", 180)
    grew = sampler.stop()
    text = out.decode("utf-8", "replace") if out else ""
    print("# disk filler: host disk grew %.1f MB at most (limit %d MB), job took %.1fs"
          % (grew / 1e6, DISK_MB, time.time() - t0))
    tlib.check("disk filler: job ends", out is not None)
    tlib.check("disk filler: host disk growth under the limit", grew < DISK_MB * 1024 * 1024,
               "%.1f MB" % (grew / 1e6))
    tlib.check("disk filler: writes end in ENOSPC", text.count("No space left on device") >= 2,
               text[-1500:])
    tlib.check("disk filler: root file system read-only", "Read-only file system" in text,
               text[-800:])
    tlib.check("disk filler: the job's own normal outcome",
               outcome_line(out).endswith("Success: Autodriver returned normally") and
               "writer finished" in text, outcome_line(out))
    dead = tjobs.wait_dead(svc, r["jobId"], 10)
    tlib.check("disk filler: no retry", dead is not None and dead.get("retries", 0) == 0 and
               not any("OS error" in t for t in dead.get("trace", [])), dead)


def lab_file(svc, name):
    for d, _, files in os.walk(svc.courselabs):
        if name in files:
            return os.path.join(d, name)
    return None


def md5(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def test_input_isolation(svc):
    original = b"the grader's reference data\n" * 100
    want = hashlib.md5(original).hexdigest()
    # whatever the job can do to its inputs: as the grading user, on its
    # copy, on /home/mount, through /proc of the root processes
    evil = makefile("-echo tampered >> /home/mount/ref.dat 2>&1\n"
                    "-chmod 666 /home/mount/ref.dat 2>&1\n"
                    "-echo tampered > ref.dat\n"
                    "-for f in /proc/[0-9]*/root/home/mount/ref.dat; do echo tampered >> $$f; done 2>&1\n"
                    "echo tamper attempts done")
    # the lab file as a service account whose uid happens to be the
    # grading user's (1001 in autograding_image) would own it: a hard link
    # into the job would be writable from inside
    svc.open("iso")
    svc.upload("iso", "evil.out-ref.dat", original)
    host = lab_file(svc, "evil.out-ref.dat")
    os.chown(host, 1001, 1001)
    os.chmod(host, 0o644)
    svc.upload("iso", "evil.out-Makefile", evil)
    svc.add_job("iso", {"image": "autograding_image", "jobName": "evil", "timeout": 20,
                        "output_file": "evil.out",
                        "files": [{"localFile": "evil.out-ref.dat", "destFile": "ref.dat"},
                                  {"localFile": "evil.out-Makefile", "destFile": "Makefile"}]})
    out1 = wait_output(svc, "iso", "evil.out")
    tlib.check("input isolation: tampering job ends", out1 is not None and
               b"tamper attempts done" in out1, out1)
    tlib.check("input isolation: host lab file unchanged",
               host is not None and md5(host) == want, host and md5(host))
    # the next job names the same lab file: it must see the uploaded bytes
    reader = makefile("md5sum ref.dat")
    svc.open("iso")
    job = {"image": "autograding_image", "jobName": "reader", "output_file": "reader.out",
           "timeout": 20,
           "files": [{"localFile": "evil.out-ref.dat", "destFile": "ref.dat"},
                     {"localFile": "reader-Makefile", "destFile": "Makefile"}]}
    svc.upload("iso", "reader-Makefile", reader)
    svc.add_job("iso", job)
    out2 = wait_output(svc, "iso", "reader.out")
    tlib.check("input isolation: the next job reads the original bytes",
               out2 is not None and want.encode() in out2, out2)


def test_duplicate_dest(svc):
    first = makefile("echo first Makefile")
    second = makefile("echo second Makefile")
    svc.open("dup")
    svc.upload("dup", "Makefile", first)
    svc.upload("dup", "autograde-Makefile", second)
    job = {"image": "autograding_image", "jobName": "dup", "output_file": "dup.out",
           "timeout": 20,
           "files": [{"localFile": "Makefile", "destFile": "Makefile"},
                     {"localFile": "autograde-Makefile", "destFile": "Makefile"}]}
    r = svc.add_job("dup", job)
    if r.get("statusId") != 0:
        tlib.check("two files, one destFile: accepted (producer)", False, r)
        return
    out = wait_output(svc, "dup", "dup.out")
    tlib.check("two files, one destFile: the last one listed wins",
               out is not None and b"second Makefile" in out and b"first Makefile" not in out,
               out)


def partial(svc, job_id):
    p = svc.get("/getPartialOutput/%s/%d/" % (svc.key, job_id)).json()
    return p.get("output", "") if p.get("statusId") == 0 else None


def test_partial_output(svc):
    shadow = makefile("echo before the link\nrm -f /home/autograde/output.log\n"
                      "ln -s /etc/shadow /home/autograde/output.log\nsleep 6")
    fifo = makefile("echo before the fifo\nrm -f /home/autograde/output.log\n"
                    "mkfifo /home/autograde/output.log\nsleep 10")
    slow = makefile("for i in $$(seq 1 20); do echo tick$$i; sleep 0.4; done")
    rs = submit(svc, "peek", {"Makefile": shadow}, "shadow.out", timeout=30)
    rf = submit(svc, "peek", {"Makefile": fifo}, "fifo.out", timeout=30)
    rt = submit(svc, "peek", {"Makefile": slow}, "tick.out", timeout=30)
    seen_shadow = []
    ticks = []  # (time, count) whenever the slow job's output changed
    last = None
    end = time.time() + 12
    while time.time() < end:
        s = partial(svc, rs["jobId"])
        if s:
            seen_shadow.append(s)
        partial(svc, rf["jobId"])  # keeps the FIFO job watched, so it is peeked
        t = partial(svc, rt["jobId"])
        if t is not None and t != last:
            ticks.append((time.time(), t.count("tick")))
            last = t
        if last and "tick20" in last:
            break
        time.sleep(0.1)
    tlib.check("partial output: no /etc/shadow content",
               not any("root:" in s for s in seen_shadow), [s[:80] for s in seen_shadow[-3:]])
    gaps = [b[0] - a[0] for a, b in zip(ticks, ticks[1:])]
    tlib.check("partial output: a FIFO job does not hold up another job's output",
               len(ticks) >= 5 and max(gaps or [99]) < 2.5,
               "%d changes, largest gap %.1fs" % (len(ticks), max(gaps or [0])))
    for name in ("shadow.out", "fifo.out", "tick.out"):
        out = wait_output(svc, "peek", name, 60)
        tlib.check("partial output: %s ends normally" % name, out is not None and
                   b"Autodriver returned normally" in out, outcome_line(out))


def main():
    with tlib.Service(producers=1) as svc:
        svc.start_consumer(consumer_config(svc))
        try:
            test_duplicate_dest(svc)
            test_input_isolation(svc)
            test_partial_output(svc)
            test_disk_filler(svc)
        finally:
            rc = svc.consumers[0].stop(60)
            tlib.check("consumer drains and exits 0", rc == 0, rc)
            svc.consumers.clear()
    tlib.done()


if __name__ == "__main__":
    main()
