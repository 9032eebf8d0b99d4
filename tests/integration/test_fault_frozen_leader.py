"""Issue 19 point 3: a frozen leader comes back. Real Redis, a producer, two
consumers on localDocker (with warm pools), Docker.

The leader runs 3 long jobs and is SIGSTOPped (a stalled VM) for 14 s,
longer than its lease and than the clean-up period, so its clean-up pass is
due the moment it resumes; its Redis traffic (through a proxy of the
test's own) is held 3 s more, so it cannot learn at once that it lost. Meanwhile the standby takes over (re-attaching
to the 3 runs), fills its own warm pool and runs 4 new 20 s jobs in its
pool instances, still running when the old leader resumes. Then the old
leader is SIGCONTed. Checked:
  - the old leader destroys no instance of the new leader (its log names
    none as reaped);
  - every job completes once: its output shows one run, retries 0, one
    "Assigned" line in its trace;
  - the old leader notices it lost the lease (leader_lost or
    leader_lease_expired).
"""
import re
import signal
import socket
import threading
import time

import tlib
from test_e2e_localdocker import consumer_config
from tjobs import makefile, submit, wait_output

LEASE_MS = 2000
FREEZE_S = 14
wait_for = tlib.wait_for


class HoldingProxy:
    """A TCP proxy to Redis for the frozen consumer alone: while held it
    forwards nothing, as a stalled VM's network is still catching up for a
    moment after the VM itself runs again."""

    def __init__(self, port):
        self.upstream = port
        self.held = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def _accept(self):
        while not self.closed:
            try:
                a, _ = self.sock.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                a.close()
                continue
            for src, dst in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                while self.held.is_set():
                    time.sleep(0.02)
                data = src.recv(65536)
                if not data:
                    break
                while self.held.is_set():
                    time.sleep(0.02)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.closed = True
        self.sock.close()


def token_of(proc):
    found = re.findall(r"event=started token=(\w+)", proc.logtext())
    return found[-1] if found else None


def leader_of(svc):
    for i, c in enumerate(svc.consumers):
        if c.proc and c.proc.poll() is None and "leader_acquired" in c.logtext():
            return i
    return None


def job_record(svc, job_id):
    try:
        return svc.get("/job/%s/%d/" % (svc.key, job_id)).json().get("job") or {}
    except ValueError:
        return {}


def run_started(svc, job_id):
    return any("Input copied for job" in t for t in job_record(svc, job_id).get("trace", []))


def dead_record(svc, job_id):
    jobs = svc.get("/jobs/%s/1/" % svc.key).json()["jobs"]
    return [j for j in jobs if j["id"] == job_id]


def reaped_names(text):
    return re.findall(r"event=vm_reaped vm=(\S+)", text)


def frozen_leader(svc, proxy):
    cfg = consumer_config(svc, extra={"lease_ms": LEASE_MS, "sweep_interval_ms": 500,
                                      "job_retries": 2, "max_jobs": 8, "max_jobs_per_image": 8,
                                      "auto_pool_max": 0})
    svc.start_consumer(cfg, env={"TANGO_REDIS_URL": proxy.url})
    ok = wait_for(lambda: leader_of(svc) == 0, 15)
    tlib.check("a leader is elected", ok)
    svc.start_consumer(cfg)
    wait_for(lambda: "event=started" in svc.consumers[1].logtext(), 10)
    old, new = svc.consumers[0], svc.consumers[1]
    new_token = token_of(new)
    tlib.check("the standby started", new_token is not None, new.logtext()[-800:])
    # a warm pool of 4: every leader keeps its own, so the standby makes its
    # own once it leads, and the 4 new jobs run in them
    r = svc.post("/prealloc/%s/autograding_image/4/" % svc.key, b"").json()
    tlib.check("prealloc accepted", r.get("statusId") == 0, r)
    grader = "echo run-start $$(cat /proc/sys/kernel/random/uuid)\nsleep %d\necho graded-%s"
    ids, names = [], []
    for i in range(3):
        r = submit(svc, "frz", {"Makefile": makefile(grader % (14, "old%d" % i))},
                   "old%d.out" % i, timeout=90)
        ids.append(r["jobId"])
        names.append("old%d" % i)
    started = wait_for(lambda: all(run_started(svc, i) for i in ids), 40)
    tlib.check("3 jobs running on the leader", started)

    t_stop = time.time()
    old.proc.send_signal(signal.SIGSTOP)
    proxy.held.set()
    took = wait_for(lambda: "leader_acquired" in new.logtext(), 15)
    tlib.check("the standby takes over while the leader is stopped", took)
    adopted = wait_for(lambda: new.logtext().count("mode=reattach") >= 3, 15)
    tlib.check("the standby re-attached the 3 runs", adopted, new.logtext()[-1500:])
    pool_ready = wait_for(lambda: new.logtext().count("event=pool_vm_ready") >= 4, 40)
    tlib.check("the new leader's warm pool is ready", pool_ready, new.logtext()[-1500:])
    for i in range(4):
        r = submit(svc, "frz", {"Makefile": makefile(grader % (20, "new%d" % i))},
                   "new%d.out" % i, timeout=90)
        ids.append(r["jobId"])
        names.append("new%d" % i)
    started = wait_for(lambda: all(run_started(svc, i) for i in ids[3:]), 40)
    tlib.check("4 new jobs running on the new leader", started)
    in_use = sorted(job_record(svc, i).get("vm", {}).get("name") for i in ids[3:])
    print("# instances of the new jobs: %s" % in_use)
    # The fault: the old leader stays stopped FREEZE_S in all, past its
    # lease and past its clean-up period.
    left = FREEZE_S - (time.time() - t_stop)
    if left > 0:
        time.sleep(left)  # the length of the fault itself, not a synchronisation
    mark = len(old.logtext())
    old.proc.send_signal(signal.SIGCONT)
    print("# old leader stopped for %.1fs" % (time.time() - t_stop))
    # its network lags 3 s behind (longer than one Redis timeout, 2 s)
    time.sleep(3)  # the length of the fault itself, not a synchronisation
    proxy.held.clear()
    noticed = wait_for(lambda: re.search(r"event=leader_(lost|lease_expired)",
                                         old.logtext()[mark:]), 15)
    tlib.check("the old leader notices it lost the lease", noticed, old.logtext()[-1500:])

    outs = [wait_output(svc, "frz", n + ".out", 90) for n in names]
    good = [o is not None and (b"graded-" + n.encode()) in o and
            b"Success: Autodriver returned normally" in o for n, o in zip(names, outs)]
    tlib.check("every job completes", all(good), [o[-300:] if o else None for o in outs])
    runs = [sum(1 for l in o.split(b"\n") if l.startswith(b"run-start ")) if o else 0
            for o in outs]
    tlib.check("each output shows one run", runs == [1] * 7, runs)
    recs = [wait_for(lambda i=i: dead_record(svc, i), 20) for i in ids]
    recs = [r[0] for r in recs if r]
    tlib.check("no job re-run: retries 0 for every job",
               len(recs) == 7 and all(r["retries"] == 0 for r in recs),
               [(r["id"], r.get("retries")) for r in recs])
    tlib.check("no job re-run: Assigned once in each trace",
               len(recs) == 7 and all(sum("Assigned job" in t for t in r["trace"]) == 1
                                      for r in recs),
               [r["trace"][-8:] for r in recs])
    after = old.logtext()[mark:]
    theirs = [n for n in reaped_names(after) if n.endswith("-" + new_token)]
    tlib.check("the old leader destroyed no instance of the new leader", not theirs,
               theirs or after[-2000:])
    old.kill(signal.SIGKILL)
    new.kill(signal.SIGKILL)


def main():
    with tlib.Service(producers=1) as svc:
        proxy = HoldingProxy(svc.redis.port)
        try:
            frozen_leader(svc, proxy)
        finally:
            proxy.close()
    tlib.done()


if __name__ == "__main__":
    main()
