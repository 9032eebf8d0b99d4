"""Chaos test: jobs are submitted continuously while a driver SIGKILLs the
leading consumer at random moments (a standby takes over and the killed one
comes back as the new standby), restarts Redis once (AOF on), restarts a
producer, and kills a job's container from outside. At the end every accepted
job must be dead exactly once with one well-formed output file and at least
one callback, and nothing may be left behind.

    python3 tests/chaos/chaos.py --jobs 500        (make chaos)
Prints: accepted, completed, lost, duplicate callbacks, leftover containers,
and how running jobs fared at a takeover: re-attached (the run went on in its
container and was finished by the new leader) or re-run (requeued because no
run was recorded yet, or its container was gone).
Exit status 0 only if nothing was lost and nothing was left."""
import argparse
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import tjobs  # noqa: E402
import tlib  # noqa: E402
from tjobs import makefile  # noqa: E402

PREFIX = "tc%d-" % os.getpid()
LAB = "chaos"


def our_containers():
    out = subprocess.run(["docker", "ps", "-a", "--filter", "name=" + PREFIX, "--format",
                          "{{.Names}}"], capture_output=True, text=True).stdout.split()
    return [n for n in out if n.startswith(PREFIX)]


class Chaos:
    def __init__(self, svc, cb, jobs, rate):
        self.svc = svc
        self.cb = cb
        self.jobs = jobs
        self.rate = rate
        self.accepted = {}          # id -> output file name
        self.refused = 0
        self.lock = threading.Lock()
        self.done_submitting = threading.Event()
        self.events = []
        self.killed = []            # container names killed from outside

    def note(self, what):
        line = "%.1f %s" % (time.time() - self.t0, what)
        self.events.append(line)
        print("# chaos: " + line, flush=True)

    def submit_all(self):
        rnd = random.Random(1)
        for i in range(self.jobs):
            out = "c%d.out" % i
            body = {"image": "autograding_image", "jobName": "chaos%d" % i, "output_file": out,
                    "timeout": 30, "callback_url": self.cb.url("c%d" % i),
                    "files": [{"localFile": "mk-fast" if rnd.random() < 0.7 else "mk-slow",
                               "destFile": "Makefile"}]}
            for attempt in range(200):
                p = rnd.choice(self.svc.producers)
                try:
                    r = tlib.request(p.port, "POST", "/addJob/%s/%s/" % (self.svc.key, LAB),
                                     tjobs.json.dumps(body).encode(), timeout=10)
                    j = r.json()
                except Exception:
                    j = {"statusId": -1}
                if j.get("statusId") == 0:
                    with self.lock:
                        self.accepted[j["jobId"]] = out
                    break
                self.refused += 1
                time.sleep(0.1)
            time.sleep(1.0 / self.rate)
        self.done_submitting.set()

    def drive(self):
        rnd = random.Random(2)
        duration = self.jobs / self.rate
        kills = max(2, self.jobs // 60)
        plan = sorted([("kill_consumer", (k + rnd.uniform(0.6, 1.4)) / (kills + 1) * duration)
                       for k in range(kills)] +
                      [("restart_redis", 0.5 * duration), ("restart_producer", 0.3 * duration),
                       ("kill_container", 0.4 * duration), ("kill_container", 0.7 * duration)],
                      key=lambda x: x[1])
        for what, at in plan:
            while time.time() - self.t0 < at:
                time.sleep(0.05)
            getattr(self, what)()

    def kill_consumer(self):
        """SIGKILLs the consumer holding the leader lease and starts it again
        (it comes back as the standby)."""
        token = self.svc.redis.cli("GET", self.svc.prefix + "consumer:leader")
        live = [c for c in self.svc.consumers if c.proc and c.proc.poll() is None]
        victim = live[0]
        for c in live:
            started = re.findall(r"event=started token=(\w+)", c.logtext())
            if started and token.startswith(started[-1]):
                victim = c
        self.note("SIGKILL consumer %s (leader token %s)" % (victim.name, token[:8]))
        self.svc.restart(victim)

    def restart_redis(self):
        self.note("restart Redis")
        self.svc.redis.stop()
        self.svc.redis.start()

    def restart_producer(self):
        self.note("SIGKILL and restart producer0")
        self.svc.restart(self.svc.producers[0])

    def kill_container(self):
        names = our_containers()
        if names:
            victim = random.Random(3).choice(names)
            self.note("docker kill %s" % victim)
            self.killed.append(victim)
            subprocess.run(["docker", "kill", victim], capture_output=True)

    def run(self):
        self.t0 = time.time()
        sub = threading.Thread(target=self.submit_all)
        drv = threading.Thread(target=self.drive)
        sub.start()
        drv.start()
        sub.join()
        drv.join()


def wait_until(pred, timeout):
    end = time.time() + timeout
    while time.time() < end and not pred():
        time.sleep(0.2)
    return pred()


def leftovers(svc):
    """Temp files (dotfiles: .upload-*, .feedback-*, .<id>.<fence>.tmp) under
    courselabs, and volume directories; the installation secret is no leftover."""
    out = []
    for root, dirs, files in os.walk(svc.courselabs):
        out += [os.path.join(root, f) for f in files if f.startswith(".") and f != ".tango-secret"]
    vols = os.path.join(svc.tmp, "volumes")
    if os.path.isdir(vols):
        out += [os.path.join(vols, v) for v in os.listdir(vols)]
    return out


def well_formed(data, job_id, name):
    if data is None:
        return False
    lines = data.split(b"\n")
    return (len(lines) >= 5 and re.match(rb"^Autograder \[[^\]]+\]: Received job %s:%d$" % (name.encode(), job_id), lines[0])
            is not None and lines[1].startswith(b"Autograder [") and
            any(l.endswith(b"Here is the output from the autograder:") for l in lines) and b"---" in lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--rate", type=float, default=6.0, help="jobs submitted per second")
    args = ap.parse_args()
    cb = tjobs.CallbackReceiver()
    ccfg = {"vmms": "localDocker", "vmms_dir": os.path.join(tlib.BUILD, "vmms"),
            "instance_prefix": PREFIX, "max_jobs": 4, "max_jobs_per_image": 4,
            "lease_ms": 2000, "job_retries": 5, "callback_backoff_ms": 200,
            "log_level": "info"}
    with tlib.Service(producers=2, appendonly=True, config={"log_level": "info"}) as svc:
        ccfg["vmms_config"] = {"localDocker": {"volume_dir": os.path.join(svc.tmp, "volumes")}}
        svc.open(LAB)
        svc.upload(LAB, "mk-fast", makefile("echo fast"))
        svc.upload(LAB, "mk-slow", makefile("sleep 2\necho slow"))
        svc.start_consumer(ccfg)
        wait_until(lambda: svc.redis.cli("GET", svc.prefix + "consumer:leader") != "", 15)
        svc.start_consumer(ccfg)
        chaos = Chaos(svc, cb, args.jobs, args.rate)
        chaos.run()
        # Wait for every accepted job to end.
        deadline = time.time() + 120 + args.jobs * 0.5
        ids = set(chaos.accepted)
        dead = []
        while time.time() < deadline:
            dead = [j["id"] for j in svc.get("/jobs/%s/1/" % svc.key).json()["jobs"]]
            if ids <= set(dead):
                break
            time.sleep(0.5)
        # The leader's reaper removes what dead consumers left (temp files,
        # volume directories) within its period: wait for it, then stop.
        wait_until(lambda: not leftovers(svc) and
                   all(len(cb.for_tag("c%s" % chaos.accepted[i][1:-4])) for i in ids), 60)
        for c in list(svc.consumers):
            c.stop(120)
        svc.consumers.clear()
        deadl = [j["id"] for j in svc.get("/jobs/%s/1/" % svc.key).json()["jobs"]]
        live = [j["id"] for j in svc.get("/jobs/%s/0/" % svc.key).json()["jobs"]]
        completed = sum(1 for i in ids if deadl.count(i) == 1 and i not in live)
        twice = [i for i in ids if deadl.count(i) > 1]
        lost = sorted(ids - set(deadl))
        bad_output = []
        for i in ids:
            r = svc.poll(LAB, chaos.accepted[i])
            data = r.body if r.header("Content-Type") == "application/octet-stream" else None
            if not well_formed(data, i, "chaos%s" % chaos.accepted[i][1:-4]):
                bad_output.append(i)
                job = svc.get("/job/%s/%d/" % (svc.key, i)).json().get("job") or {}
                print("# bad output of job %d: %r; trace: %s" % (i, (data or b"")[:300],
                                                                   job.get("trace")))
        cb_counts = {i: len(cb.for_tag("c%s" % chaos.accepted[i][1:-4])) for i in ids}
        no_cb = [i for i, n in cb_counts.items() if n == 0]
        dup_cb = sum(n - 1 for n in cb_counts.values() if n > 1)
        leftover = our_containers()
        temp = leftovers(svc)
        traces = {j["id"]: j.get("trace", []) for j in svc.get("/jobs/%s/1/" % svc.key).json()["jobs"]}
        reattached = sum(1 for t in traces.values() if any("Re-attached" in l for l in t))
        before_run = sum(1 for t in traces.values() if any("before its run started" in l for l in t))
        gone = sum(1 for t in traces.values() if any("instance was gone after a takeover" in l for l in t))
        # Re-run although its container survived: re-attached, then failed
        # for another reason than its container being gone (the driver's
        # `docker kill` of a job's container is such a reason).
        rerun = 0
        for t in traces.values():
            at = [k for k, l in enumerate(t) if "Re-attached" in l]
            killed = any(name in l for l in t for name in chaos.killed)
            if at and not killed and any(" failed: " in l and "instance was gone" not in l
                                         for l in t[at[0]:]):
                rerun += 1
        # An output is written (accepted by `finish`) once per job: a second
        # "finished:" line in a record's trace would be a second output.
        dup_out = sum(1 for t in traces.values() if sum(" finished: " in l for l in t) > 1)
        print("accepted=%d completed=%d lost=%d duplicate_callbacks=%d duplicate_outputs=%d "
              "leftover_containers=%d" % (len(ids), completed, len(lost), dup_cb, dup_out, len(leftover)))
        print("takeovers: reattached=%d rerun_with_container_alive=%d rerun_container_gone=%d "
              "requeued_before_run=%d" % (reattached, rerun, gone, before_run))
        print("# refused submissions (retried): %d; events: %s" % (chaos.refused, "; ".join(chaos.events)))
        tlib.check("chaos: every accepted job dead exactly once", completed == len(ids) and not twice,
                   "lost=%s twice=%s" % (lost[:10], twice[:10]))
        tlib.check("chaos: every output file exists and is well formed", not bad_output, bad_output[:10])
        tlib.check("chaos: one output per job", dup_out == 0, dup_out)
        tlib.check("chaos: no job re-run whose container survived a takeover", rerun == 0, rerun)
        tlib.check("chaos: every callback arrived", not no_cb, no_cb[:10])
        tlib.check("chaos: no container of our prefix left", not leftover, leftover)
        tlib.check("chaos: no temp files left", not temp, temp[:10])
    cb.close()
    tlib.done()


if __name__ == "__main__":
    main()
