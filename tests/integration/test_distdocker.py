"""The distDocker back end's fleet behaviour, end to end through the HTTP API
with a real consumer and a fleet of three SSH worker hosts built by
tests/fleet/fleet.sh (network namespaces with their own sshd, sharing the
local Docker engine). Needs root. Shows:
  - jobs spread round-robin over the three hosts (counted from the
    consumer's vm_created lines; printed as "# per-host ...");
  - a host whose sshd is killed while its jobs run: those jobs finish on the
    other hosts with one retry, none is lost, its leftover containers are
    removed and it returns into rotation when sshd is back ("# failover ...");
  - every host down: jobs wait in the queue (not failed) and complete once
    one host returns;
  - a host whose known_hosts entry is wrong is refused (logged, no job runs
    there) and a dead address never holds the queue longer than the connect
    timeout.
"""
import collections
import datetime
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fleet"))

import fleet  # noqa: E402
import tjobs  # noqa: E402
import tlib  # noqa: E402
from tjobs import makefile, submit, wait_output  # noqa: E402

PREFIX = "dd%d-" % os.getpid()
CONNECT_TIMEOUT = 2


def consumer_config(svc, dd):
    return {"vmms": "distDocker", "vmms_dir": os.path.join(tlib.BUILD, "vmms"),
            "instance_prefix": PREFIX, "max_jobs": 9, "max_jobs_per_image": 9,
            "job_retries": 2, "lease_ms": 3000, "default_memory_mb": 256, "pids_limit": 256,
            "partial_output_interval_ms": 1000, "callback_backoff_ms": 100,
            "auto_pool_max": 0,  # counts per host are of jobs; pools are tested on their own
            "vmms_config": {"distDocker": dd}}


def ts_of(line):
    m = re.match(r"ts=(\S+)Z ", line)
    if not m:
        return None
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


class Log:
    """The consumer's log, read incrementally by event."""

    def __init__(self, proc):
        self.proc = proc

    def lines(self, event, since=0.0, contains=""):
        out = []
        for l in self.proc.logtext().splitlines():
            if ("event=%s " % event) in (l + " ") and contains in l:
                t = ts_of(l)
                if t is not None and t >= since:
                    out.append((t, l))
        return out

    def wait(self, event, since=0.0, contains="", count=1, timeout=20.0):
        end = time.time() + timeout
        while time.time() < end:
            got = self.lines(event, since, contains)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        return self.lines(event, since, contains)

    def per_host(self, since=0.0):
        c = collections.Counter()
        for _, l in self.lines("vm_created", since):
            m = re.search(r" host=(\S+)", l)
            c[m.group(1)] += 1
        return c


def job_text(i, secs):
    return makefile("sleep %s\necho job %d done" % (secs, i))


def submit_batch(svc, lab, tag, n, secs):
    ids = []
    for i in range(n):
        r = submit(svc, lab, {"Makefile": job_text(i, secs)}, "%s%d.out" % (tag, i), timeout=30)
        ids.append(r.get("jobId"))
    return ids


def outputs_ok(svc, lab, tag, n, timeout):
    outs = [wait_output(svc, lab, "%s%d.out" % (tag, i), timeout) for i in range(n)]
    good = [o is not None and b"Success: Autodriver returned normally" in o and
            (b"job %d done" % i) in o for i, o in enumerate(outs)]
    return sum(good), outs


def dead_jobs(svc):
    return {j["id"]: j for j in svc.get("/jobs/%s/1/" % svc.key).json()["jobs"]}


def live_jobs(svc):
    return {j["id"]: j for j in svc.get("/jobs/%s/0/" % svc.key).json()["jobs"]}


def fmt_counts(f, c, n=3):
    return " ".join("%s=%d" % (f.label(i), c.get(f.label(i), 0)) for i in range(1, n + 1))


def round_robin(svc, f, log):
    t0 = time.time()
    submit_batch(svc, "rr", "rr", 9, 2)
    ok, _ = outputs_ok(svc, "rr", "rr", 9, 60)
    tlib.check("round robin: 9 jobs succeed", ok == 9, ok)
    c = log.per_host(t0)
    print("# per-host (9 jobs, max_jobs 3 per host): %s" % fmt_counts(f, c))
    tlib.check("round robin: 3 jobs on each host", [c[f.label(i)] for i in (1, 2, 3)] == [3, 3, 3],
               dict(c))


def warm_pool(svc, f, log):
    t0 = time.time()
    r = svc.post("/prealloc/%s/autograding_image/3/" % svc.key, b"").json()
    tlib.check("pool: prealloc accepted", r.get("statusMsg") == "VMs preallocated", r)
    ready = log.wait("pool_vm_ready", t0, count=3, timeout=30)
    names = [re.search(r" vm=(\S+)", l).group(1) for _, l in ready]
    hosts = {re.search(r" host=(\S+)", l).group(1) for _, l in log.lines("vm_created", t0)
             if any(" name=%s " % n in l for n in names)}
    tlib.check("pool: 3 warm containers, one per host", len(ready) == 3 and len(hosts) == 3,
               (names, hosts))
    ids = submit_batch(svc, "pool", "pool", 3, 0.2)
    ok, _ = outputs_ok(svc, "pool", "pool", 3, 30)
    dead = dead_jobs(svc)
    tlib.check("pool: jobs run in the warm containers",
               ok == 3 and all(any("existing VM" in t for t in dead.get(i, {}).get("trace", []))
                               for i in ids), [dead.get(i, {}).get("trace") for i in ids])
    r = svc.post("/prealloc/%s/autograding_image/0/" % svc.key, b"").json()

    def not_destroyed():
        made = {re.search(r" name=(\S+)", l).group(1) for _, l in log.lines("vm_created", t0)}
        gone = {re.search(r" name=(\S+)", l).group(1) for _, l in log.lines("vm_destroyed", t0)}
        return made - gone

    end = time.time() + 15
    while time.time() < end and not_destroyed():
        time.sleep(0.1)
    tlib.check("pool: emptied again, every container removed", not not_destroyed(),
               not_destroyed())


def failover(svc, f, log):
    t0 = time.time()
    ids = submit_batch(svc, "fo", "fo", 6, 6)
    created = log.wait("vm_created", t0, count=6, timeout=30)
    on2 = [l for _, l in created if " host=%s " % f.label(2) in l]
    tlib.check("failover: 6 jobs running, some on host 2", len(created) >= 6 and on2, created)
    time.sleep(1.0)
    t_kill = time.time()
    f.stop(2)
    down = log.wait("host_down", t_kill, contains="host=%s " % f.label(2), timeout=10)
    t_detect = down[0][0] - t_kill if down else None
    ok, outs = outputs_ok(svc, "fo", "fo", 6, 60)
    t_done = time.time() - t_kill
    tlib.check("failover: host 2 marked down", down, log.lines("host_down", t_kill))
    tlib.check("failover: all 6 jobs succeed, none lost", ok == 6,
               [o[-200:] if o else None for o in outs])
    dead = dead_jobs(svc)
    retried = [i for i in ids if dead.get(i, {}).get("retries") == 1]
    tlib.check("failover: the jobs that were on host 2 were retried once elsewhere",
               len(retried) == len(on2) and all(dead.get(i, {}).get("retries", 9) <= 1 for i in ids),
               {i: dead.get(i, {}).get("retries") for i in ids})
    moved = log.lines("vm_created", t_kill)
    t_moved = max(t for t, _ in moved) - t_kill if moved else -1
    tlib.check("failover: retried jobs ran on hosts 1 and 3 only",
               len(moved) == len(on2) and all(" host=%s " % f.label(2) not in l for _, l in moved),
               moved)
    # back into rotation, and the killed jobs' containers removed there
    t_start = time.time()
    f.start(2)
    up = log.wait("host_up", t_start, contains="host=%s " % f.label(2), timeout=15)
    t_rejoin = up[0][0] - t_start if up else None
    tlib.check("failover: host 2 back up after sshd restarts", up, log.lines("host_up", t_start))
    late = log.wait("vm_destroyed_late", t_start, contains="host=%s " % f.label(2),
                    count=len(on2), timeout=15)
    tlib.check("failover: host 2's leftover containers removed when it is back",
               len(late) == len(on2), late)
    t1 = time.time()
    submit_batch(svc, "fo2", "fo2", 6, 0.2)
    ok2, _ = outputs_ok(svc, "fo2", "fo2", 6, 60)
    c = log.per_host(t1)
    tlib.check("failover: 6 more jobs succeed", ok2 == 6, ok2)
    tlib.check("failover: host 2 takes jobs again", c[f.label(2)] >= 1, dict(c))
    print("# failover: sshd of host 2 killed with %d of 6 jobs (6 s each) on it; detected "
          "%.2fs after; its jobs restarted on other hosts %.2fs after; all 6 done %.1fs after; "
          "host 2 back in rotation %.2fs after sshd restarted; next 6 jobs: %s"
          % (len(on2), t_detect if t_detect is not None else -1, t_moved, t_done,
             t_rejoin if t_rejoin is not None else -1, fmt_counts(f, c)))


def all_down(svc, f, log):
    t0 = time.time()
    for i in (1, 2, 3):
        f.stop(i)
    downs = [log.wait("host_down", t0, contains="host=%s " % f.label(i), timeout=10)
             for i in (1, 2, 3)]
    tlib.check("all down: every host marked down", all(downs), log.lines("host_down", t0))
    t_detect = max(d[0][0] for d in downs) - t0 if all(downs) else -1
    t_sub = time.time()
    ids = submit_batch(svc, "ad", "ad", 3, 0.2)
    time.sleep(4.0)
    live = live_jobs(svc)
    dead = dead_jobs(svc)
    tlib.check("all down: jobs wait in the queue, not failed",
               all(i in live and i not in dead for i in ids), {i: (i in live, i in dead) for i in ids})
    tlib.check("all down: no retry spent while waiting",
               all(live.get(i, {}).get("retries") == 0 for i in ids),
               {i: live.get(i, {}).get("retries") for i in ids})
    tlib.check("all down: the consumer logs why (back end unavailable, leasing paused)",
               log.lines("backend_down", t_sub, "no worker host is up"))
    t_start = time.time()
    f.start(1)
    ok, outs = outputs_ok(svc, "ad", "ad", 3, 40)
    t_done = time.time() - t_start
    tlib.check("all down: jobs complete once a host returns", ok == 3, outs)
    dead = dead_jobs(svc)
    tlib.check("all down: ... with no retry counted",
               all(dead.get(i, {}).get("retries") == 0 for i in ids),
               {i: dead.get(i, {}).get("retries") for i in ids})
    print("# all hosts down: detected within %.2fs; 3 jobs waited %.1fs in the queue and were "
          "done %.1fs after host 1's sshd returned" % (t_detect, t_start - t_sub, t_done))
    t_back = time.time()
    f.start(2)
    f.start(3)
    for i in (2, 3):
        log.wait("host_up", t_back, contains="host=%s " % f.label(i), timeout=10)
    end = time.time() + 10
    while f.leftovers() and time.time() < end:  # removals deferred while they were down
        time.sleep(0.1)


def wrong_key_and_dead_host(svc, f):
    dd = f.distdocker_config(hosts=[
        f.host(1, 3), f.host(2, 3), f.host(3, 3, known_hosts=f.info["known_hosts_wrong"]),
        dict(f.host(3, 3), address=f.dead_address())], connect_timeout_s=CONNECT_TIMEOUT)
    t_start = time.time()
    c = svc.start_consumer(consumer_config(svc, dd))
    log = Log(c)
    ready = log.wait("host_state", t_start - 1, count=4, timeout=CONNECT_TIMEOUT + 10)
    t_ready = (ready[-1][0] - t_start) if len(ready) >= 4 else -1
    tlib.check("dead host: consumer startup waits at most the connect timeout (+1 s)",
               0 <= t_ready <= CONNECT_TIMEOUT + 1.5, "%.2fs" % t_ready)
    refused = log.lines("host_refused", t_start - 1, "host=%s " % f.label(3))
    tlib.check("wrong host key: refused and logged", refused and "host key mismatch" in refused[0][1],
               log.lines("host_refused", t_start - 1))
    dead_label = "%s:22" % f.dead_address()
    down = log.lines("host_down", t_start - 1, "host=%s " % dead_label)
    tlib.check("dead host: marked down", down, log.lines("host_down", t_start - 1))
    lat = []
    for k in range(3):
        t = time.time()
        submit_batch(svc, "dk%d" % k, "dk", 3, 0.2)
        ok, _ = outputs_ok(svc, "dk%d" % k, "dk", 3, 30)
        lat.append(time.time() - t)
        tlib.check("dead host: batch %d of 3 jobs succeeds" % k, ok == 3, ok)
    tlib.check("dead host: no batch held up by it (each < 8 s)", max(lat) < 8, lat)
    cnt = log.per_host(t_start - 1)
    tlib.check("wrong key / dead host: no job ran there",
               cnt[f.label(3)] == 0 and cnt[dead_label] == 0 and
               cnt[f.label(1)] + cnt[f.label(2)] == 9, dict(cnt))
    print("# dead host %s + refused host %s: consumer ready %.2fs after start "
          "(connect_timeout_s=%d); batches of 3 took %s s; jobs: %s"
          % (dead_label, f.label(3), t_ready, CONNECT_TIMEOUT,
             "/".join("%.1f" % x for x in lat), fmt_counts(f, cnt, 2)))
    return c


def main():
    # Killed from outside: unwind, so the fleet, services and containers go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    if os.geteuid() != 0:
        tlib.check("distDocker fleet tests need root (network namespaces, sshd)", False)
        tlib.done()
    with fleet.Fleet(3) as f, tlib.Service(producers=1) as svc:
        c = svc.start_consumer(consumer_config(svc, f.distdocker_config(max_jobs=3)))
        log = Log(c)
        ups = log.wait("host_up", 0, count=3, timeout=10)
        tlib.check("three hosts up", len(ups) == 3, log.proc.logtext()[-600:])
        try:
            round_robin(svc, f, log)
            warm_pool(svc, f, log)
            failover(svc, f, log)
            all_down(svc, f, log)
        finally:
            rc = c.stop(60)
            tlib.check("consumer drains and exits 0", rc == 0, rc)
        c2 = None
        try:
            c2 = wrong_key_and_dead_host(svc, f)
        finally:
            if c2 is not None:
                rc = c2.stop(60)
                tlib.check("second consumer drains and exits 0", rc == 0, rc)
        svc.consumers.clear()
        end = time.time() + 10
        while f.leftovers() and time.time() < end:
            time.sleep(0.1)
        left = subprocess.run(["docker", "ps", "-aq", "--filter", "name=^/" + PREFIX],
                              capture_output=True, text=True).stdout.split()
        tlib.check("no container of our prefix left", not left, left)
        tlib.check("no volume directory left on the hosts", not f.leftovers(), f.leftovers())
        logs = c.logtext() + c2.logtext() if c2 else c.logtext()
        tlib.check("key never in consumer logs", svc.key not in logs)
        tlib.check("no private key material in consumer logs", "PRIVATE KEY" not in logs)
    tlib.done()


if __name__ == "__main__":
    main()
