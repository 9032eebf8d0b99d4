"""Redis high availability with Sentinel (issue 13 part 3), on loopback: one
master, one replica, three real redis-sentinel processes, a producer and a
localDocker consumer reaching Redis through redis-sentinel://, every write
followed by WAIT 1 (redis_min_replicas 1).

- A write the replica cannot confirm is answered -1 "Redis unavailable"
  within about redis_wait_ms, never a success; a producer pointed straight
  at a replica answers -1 too (READONLY) and writes nothing there.
- Jobs flow continuously from a client thread that retries like Autolab (3
  tries, 2 s apart); the master is SIGKILLed, the sentinels promote the
  replica, the old master comes back as a replica of the new one; then the
  same the other way. Every job accepted (statusId 0 with a jobId) before,
  during and after completes exactly once (its output file, one dead
  record); the producer's error window (seconds of -1 answers) is printed.
- Then a manual SENTINEL FAILOVER demotes the running master: the services
  leave it within seconds, while it still is a master (before Sentinel
  converts it into a replica), and jobs keep completing exactly once.
"""
import json
import os
import signal
import subprocess
import threading
import time

import tlib
from test_e2e_localdocker import consumer_config
from tjobs import makefile

MASTER = "tangoha"
WAIT_MS = 500
TRIES, TRY_GAP_S = 3, 2.0  # Autolab's retry of a failed Tango request


class HARedis:
    """Two redis-server nodes (node 0 starts as master, node 1 as its
    replica) and three sentinels: stands in for tlib.Redis in a Service."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.ports = [tlib.free_port(), tlib.free_port()]
        self.sports = [tlib.free_port() for _ in range(3)]
        self.nodes = [None, None]
        self.sentinels = []

    def start_node(self, i, replicaof=None):
        d = os.path.join(self.workdir, "node%d" % i)
        os.makedirs(d, exist_ok=True)
        args = ["redis-server", "--port", str(self.ports[i]), "--bind", "127.0.0.1",
                "--dir", d, "--save", "", "--appendonly", "no",
                "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"]
        if replicaof is not None:
            args += ["--replicaof", "127.0.0.1", str(replicaof)]
        log = open(os.path.join(self.workdir, "node%d.log" % i), "ab")
        self.nodes[i] = subprocess.Popen(args, stdout=log, stderr=log)
        log.close()
        tlib.wait_port(self.ports[i], proc=self.nodes[i])

    def cli(self, port, *args):
        out = subprocess.run(["redis-cli", "-p", str(port)] + [str(a) for a in args],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip()

    def synced(self, replica_port):
        info = self.cli(replica_port, "INFO", "replication")
        return "master_link_status:up" in info

    def start(self):
        self.start_node(0)
        self.start_node(1, replicaof=self.ports[0])
        if not tlib.wait_for(lambda: self.synced(self.ports[1]), 20):
            raise RuntimeError("the replica did not sync")
        for i, sp in enumerate(self.sports):
            conf = os.path.join(self.workdir, "sentinel%d.conf" % i)
            with open(conf, "w") as f:
                f.write("port %d\nbind 127.0.0.1\ndir %s\n"
                        "sentinel monitor %s 127.0.0.1 %d 2\n"
                        "sentinel down-after-milliseconds %s 1000\n"
                        "sentinel failover-timeout %s 1000\n"
                        "sentinel parallel-syncs %s 1\n"
                        % (sp, self.workdir, MASTER, self.ports[0], MASTER, MASTER, MASTER))
            log = open(os.path.join(self.workdir, "sentinel%d.log" % i), "ab")
            self.sentinels.append(subprocess.Popen(["redis-sentinel", conf], stdout=log,
                                                   stderr=log))
            log.close()
            tlib.wait_port(sp, proc=self.sentinels[-1])

        def all_see_each_other():
            for sp in self.sports:
                out = self.cli(sp, "SENTINEL", "MASTER", MASTER).split("\n")
                kv = dict(zip(out[0::2], out[1::2]))
                if kv.get("num-other-sentinels") != "2" or kv.get("num-slaves") != "1":
                    return False
            return True
        if not tlib.wait_for(all_see_each_other, 30, 0.2):
            raise RuntimeError("the sentinels did not find each other and the replica")
        return self

    def master_index(self):
        """Which node every sentinel names as the master (None: no agreement)."""
        seen = set()
        for sp in self.sports:
            out = self.cli(sp, "SENTINEL", "get-master-addr-by-name", MASTER).split("\n")
            seen.add(int(out[1]) if len(out) == 2 else None)
        if len(seen) != 1:
            return None
        port = seen.pop()
        return self.ports.index(port) if port in self.ports else None

    def role(self, i):
        return self.cli(self.ports[i], "ROLE").split("\n")[0]

    def kill(self, i):
        self.nodes[i].send_signal(signal.SIGKILL)
        self.nodes[i].wait(10)

    def stop(self):
        for p in self.sentinels + self.nodes:
            if p and p.poll() is None:
                p.terminate()
                p.wait(10)

    @property
    def url(self):
        return "redis-sentinel://%s/%s/0" % (",".join("127.0.0.1:%d" % p for p in self.sports),
                                             MASTER)


class Client:
    """Submits jobs continuously, retrying each request like Autolab (3
    tries, 2 s apart). Records every answer with its time."""

    def __init__(self, svc, lab):
        self.svc, self.lab = svc, lab
        self.accepted = {}   # jobId -> tag
        self.rejected = []   # tags whose addJob failed TRIES times
        self.failures = []   # (time, what, answer) of every failed try
        self.oks = []        # times of successful answers
        self.unknown = set() # tags whose addJob got a failed answer before success
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.n = 0

    def call(self, what, fn):
        for attempt in range(TRIES):
            try:
                d = fn()
            except Exception as e:  # connection refused, timeout, bad JSON
                d = {"error": repr(e)}
            now = time.time()
            with self.lock:
                if d.get("statusId") == 0:
                    self.oks.append(now)
                    return d
                self.failures.append((now, what, d))
            if attempt < TRIES - 1:
                time.sleep(TRY_GAP_S)  # Autolab's fixed gap between tries
        return None

    def submit_one(self):
        tag = "ha%03d" % self.n
        self.n += 1
        up = self.call("upload", lambda: self.svc.upload(self.lab, tag + ".txt",
                                                         tag.encode(), timeout=10))
        if up is None:
            with self.lock:
                self.rejected.append(tag)
            return
        body = {"image": "autograding_image", "jobName": "job-" + tag, "output_file": tag + ".out",
                "timeout": 30, "files": [{"localFile": "Makefile", "destFile": "Makefile"},
                                         {"localFile": tag + ".txt", "destFile": "tag.txt"}]}
        tries_before = len(self.failures)
        d = self.call("addJob", lambda: self.svc.add_job(self.lab, body, timeout=10))
        with self.lock:
            if any(w == "addJob" for _, w, _ in self.failures[tries_before:]):
                self.unknown.add(tag)
            if d is None:
                self.rejected.append(tag)
            else:
                self.accepted[d["jobId"]] = tag

    def run(self):
        while not self.stop.is_set():
            self.submit_one()
            time.sleep(0.25)

    def error_window(self, since, until):
        """Seconds from the first to the last failed answer in [since, until],
        and how many there were."""
        with self.lock:
            ts = [t for t, _, _ in self.failures if since <= t <= until]
        return (max(ts) - min(ts) if ts else 0.0), len(ts)

    def accepted_since(self, t):
        with self.lock:
            return sum(1 for x in self.oks if x > t)


class Probe:
    """A write every 100 ms (an upload: a lab-file hash in Redis), to time
    the producer's error window: the seconds between the last success
    before a run of failed answers and the first success after it."""

    def __init__(self, svc, lab):
        self.svc, self.lab = svc, lab
        self.answers = []  # (time, ok)
        self.stop = threading.Event()
        self.n = 0

    def run(self):
        while not self.stop.is_set():
            self.n += 1
            try:
                ok = self.svc.upload(self.lab, "probe.txt", b"%d" % self.n,
                                     timeout=5).get("statusId") == 0
            except Exception:
                ok = False
            self.answers.append((time.time(), ok))
            time.sleep(0.1)

    def window(self, since):
        """The longest run of failed answers after since: (seconds from the
        success before it to the success after it, failed answers)."""
        best, nbest = 0.0, 0
        last_ok, run = None, 0
        for t, ok in list(self.answers):
            if t < since:
                if ok:
                    last_ok = t
                continue
            if ok:
                if run and last_ok is not None and t - last_ok > best:
                    best, nbest = t - last_ok, run
                last_ok, run = t, 0
            else:
                run += 1
        return best, nbest


def dead_jobs(svc):
    return svc.get("/jobs/%s/1/" % svc.key, timeout=10).json()["jobs"]


def add_once(svc, lab, tag):
    body = {"image": "autograding_image", "jobName": "job-" + tag, "output_file": tag + ".out",
            "files": [{"localFile": "Makefile", "destFile": "Makefile"}]}
    t0 = time.time()
    d = svc.add_job(lab, body, timeout=10)
    return d, time.time() - t0


def failover(svc, ha, client, probe, phase):
    """SIGKILLs the master with jobs flowing, waits for the sentinels to
    promote the replica, brings the old master back as its replica."""
    old = ha.master_index()
    new = 1 - old
    tlib.wait_for(lambda: client.accepted_since(time.time() - 1) > 0, 20)
    t_kill = time.time()
    ha.kill(old)
    promoted = tlib.wait_for(lambda: ha.master_index() == new and ha.role(new) == "master", 30, 0.1)
    t_promoted = time.time()
    tlib.check("%s: the sentinels promote the replica (node %d)" % (phase, new), promoted,
               ha.master_index())
    print("# %s: promotion %.1f s after the SIGKILL" % (phase, t_promoted - t_kill))
    ha.start_node(old, replicaof=ha.ports[new])
    rejoined = tlib.wait_for(lambda: ha.synced(ha.ports[old]), 30, 0.1)
    t_rejoined = time.time()
    tlib.check("%s: the old master rejoins as a replica" % phase,
               rejoined and ha.role(old) == "slave", ha.role(old))
    resumed = tlib.wait_for(lambda: client.accepted_since(t_rejoined) > 0, 30)
    tlib.check("%s: jobs are accepted again after the failover" % phase, resumed)
    # Jobs keep flowing a while (and Sentinel's 2 x failover-timeout pass
    # before the next failover of the same master).
    t_more = time.time() + 3
    tlib.wait_for(lambda: time.time() > t_more and client.accepted_since(t_rejoined) >= 3, 30)
    window, nfail = probe.window(t_kill - 0.5)
    _, ntries = client.error_window(t_kill, time.time())
    print("# %s: producer error window %.1f s (%d failed probe writes, %d failed client tries; "
          "kill->promotion %.1f s, kill->replica back %.1f s)"
          % (phase, window, nfail, ntries, t_promoted - t_kill, t_rejoined - t_kill))
    return window


def switchover(ha, client, probe):
    """SENTINEL FAILOVER: the master is demoted while it runs, with the
    services connected to it; they must follow to the new master (the old
    one now answers READONLY, or Sentinel closes their connections)."""
    old = ha.master_index()
    new = 1 - old
    t0 = time.time()
    # Refused (NOGOODSLAVE) until the sentinel has seen the rejoined replica.
    ok = tlib.wait_for(lambda: ha.cli(ha.sports[0], "SENTINEL", "FAILOVER", MASTER) == "OK", 20, 0.5)
    tlib.check("manual failover: SENTINEL FAILOVER accepted", ok)
    tlib.wait_for(lambda: ha.master_index() == new, 20, 0.05)
    t_switch = time.time()

    def busy_clients():
        """Connections to the old master, not Sentinel's nor this redis-cli's,
        that ran a command in the last 2 s (CLIENT LIST idle=, whole s)."""
        out = ha.cli(ha.ports[old], "CLIENT", "LIST", "TYPE", "normal").split("\n")
        return [l for l in out if l and " name=sentinel-" not in l and "cmd=client|list" not in l
                and int(l.split(" idle=")[1].split()[0]) <= 1]
    # Sentinel turns the old master into a replica only seconds later; till
    # then it still takes writes. The services must leave it on their own
    # (they ask the sentinels again at least once a second while busy).
    t_look = t_switch + 3.5
    tlib.wait_for(lambda: time.time() >= t_look, 5, 0.05)
    busy = busy_clients()
    tlib.check("manual failover: 3.5 s after the switch no service talks to the demoted master "
               "(still a master until Sentinel converts it)",
               not busy and ha.role(old) == "master", (busy[:3], ha.role(old)))
    switched = tlib.wait_for(lambda: ha.role(new) == "master" and ha.role(old) == "slave" and
                             ha.synced(ha.ports[old]), 30, 0.1)
    tlib.check("manual failover: node %d master, node %d its replica" % (new, old), switched,
               (ha.role(0), ha.role(1)))
    t_switched = time.time()
    resumed = tlib.wait_for(lambda: client.accepted_since(t_switched + 1) > 0, 30)
    tlib.check("manual failover: jobs are accepted on the new master", resumed)
    window, _ = probe.window(t0 - 0.5)
    return window


def main():
    svc = tlib.Service(producers=1, config={"redis_min_replicas": 1, "redis_wait_ms": WAIT_MS,
                                            "redis_timeout_ms": 2000})
    ha = svc.redis = HARedis(svc.tmp)
    with svc:
        K = svc.key
        lab = "halab"
        tlib.check("producer answers through the sentinels",
                   svc.open(lab).get("statusId") == 0)
        up = svc.upload(lab, "Makefile", makefile("sleep 0.5\ncat tag.txt"))
        tlib.check("upload through the sentinels", up.get("statusId") == 0, up)
        svc.start_consumer(consumer_config(svc, extra={"lease_ms": 5000, "max_jobs": 4,
                                                        "metrics_port": 0}))
        d, _ = add_once(svc, lab, "first")
        tlib.check("addJob through the sentinels", d.get("statusId") == 0 and d.get("jobId"), d)

        # --- WAIT: the replica stopped, a write is refused, not acknowledged.
        ha.nodes[1].send_signal(signal.SIGSTOP)
        try:
            d, took = add_once(svc, lab, "nowait")
        finally:
            ha.nodes[1].send_signal(signal.SIGCONT)
        tlib.check("replica stopped: addJob answers -1 \"Redis unavailable\"",
                   d == {"statusId": -1, "statusMsg": "Redis unavailable"}, d)
        tlib.check("... within about redis_wait_ms", WAIT_MS / 1000 * 0.8 <= took <= WAIT_MS / 1000 + 1.5,
                   "%.2f s" % took)
        print("# addJob with the replica stopped answered -1 after %.2f s (redis_wait_ms %d)"
              % (took, WAIT_MS))
        tlib.wait_for(lambda: ha.synced(ha.ports[1]), 10)
        d, _ = add_once(svc, lab, "second")
        tlib.check("replica back: addJob succeeds again", d.get("statusId") == 0, d)

        # --- never write to a replica: a producer pointed straight at it.
        port = tlib.free_port()
        path = svc.write_config({"port": port, "bind": "127.0.0.1", "redis_min_replicas": 0})
        env = dict(svc.env(), TANGO_REDIS_URL="redis://127.0.0.1:%d/0" % ha.ports[1])
        p2 = tlib.Proc("producer-on-replica", [os.path.join(tlib.BUILD, "tango-producer"), "-c", path],
                       env, os.path.join(svc.tmp, "producer-on-replica.log")).start()
        tlib.wait_port(port, proc=p2.proc)
        body = {"image": "autograding_image", "jobName": "job-replica", "output_file": "replica.out",
                "files": [{"localFile": "Makefile", "destFile": "Makefile"}]}
        d = svc.post("/addJob/%s/%s/" % (K, lab), json.dumps(body).encode(), port=port,
                     timeout=10).json()
        tlib.check("producer on a replica: addJob answers -1 \"Redis unavailable\" (READONLY)",
                   d == {"statusId": -1, "statusMsg": "Redis unavailable"}, d)
        names = [j.get("name") for d in (0, 1)
                 for j in svc.get("/jobs/%s/%d/" % (K, d), timeout=10).json()["jobs"]]
        tlib.check("... and the job exists nowhere", "job-replica" not in names, names)
        tlib.check("... its log says the server is not the master",
                   "event=redis_not_master" in p2.logtext(), p2.logtext()[-500:])
        tlib.check("producer on a replica exits cleanly", p2.stop() == 0)

        # --- failovers with jobs flowing.
        client = Client(svc, lab)
        probe = Probe(svc, lab)
        threads = [threading.Thread(target=x.run, daemon=True) for x in (client, probe)]
        for t in threads:
            t.start()
        w1 = failover(svc, ha, client, probe, "failover 1")
        w2 = failover(svc, ha, client, probe, "failover 2 (back)")
        w3 = switchover(ha, client, probe)
        client.stop.set()
        probe.stop.set()
        for t in threads:
            t.join(60)
        accepted = dict(client.accepted)
        print("# %d jobs accepted, %d given up after %d tries, %d failed answers in all; "
              "error windows %.1f s and %.1f s" % (len(accepted), len(client.rejected), TRIES,
                                                   len(client.failures), w1, w2))
        print("# manual failover (the old master demoted while running): error window %.1f s" % w3)
        tlib.check("jobs were accepted throughout", len(accepted) >= 10, len(accepted))

        def all_dead():
            ids = {j["id"] for j in dead_jobs(svc)}
            return set(accepted) <= ids
        tlib.wait_for(all_dead, 90, 0.5)
        dead = dead_jobs(svc)
        ids = [j["id"] for j in dead]
        missing = sorted(set(accepted) - set(ids))
        tlib.check("every accepted job finished", not missing, missing)
        twice = sorted(i for i in accepted if ids.count(i) > 1)
        tlib.check("no accepted job finished twice", not twice, twice)
        # A failed addJob answer after the write ("Redis unavailable": the
        # replicas did not confirm) means "outcome unknown" (docs/operators.md
        # "Redis high availability"): the job may exist, and the client's retry
        # makes a second one of the same submission, which writes the same
        # output file. That is the one duplicate allowed, and only for a
        # submission whose addJob was answered -1 at least once.
        bad, dups, stray = [], [], []
        by_name = {}
        for j in dead:
            by_name.setdefault(j.get("name"), []).append(j["id"])
        for jid, tag in accepted.items():
            r = svc.poll(lab, tag + ".out", timeout=10)
            text = r.body.decode("utf-8", "replace")
            others = [i for i in by_name.get("job-" + tag, []) if i != jid]
            own = "Received job job-%s:%d" % (tag, jid) in text
            twin = any("Received job job-%s:%d" % (tag, i) in text for i in others)
            if (r.header("Content-Type") != "application/octet-stream" or
                    tag not in text.split("\n") or "Success" not in text or not (own or twin)):
                bad.append((jid, tag, text[:200]))
            if others:
                (dups if tag in client.unknown else stray).append((tag, jid, others))
        print("# second jobs of a submission answered -1 (outcome unknown), allowed: %s" % dups)
        tlib.check("every accepted job's output file is its submission's, with Success",
                   not bad, bad[:5])
        tlib.check("a second job of a submission only where its addJob was answered -1",
                   not stray, stray[:5])
        names = [j.get("name") for j in dead]
        extra = sorted({n for n in names if names.count(n) > 1})
        print("# jobs run twice under one name (a -1 answer whose job had landed, then "
              "Autolab's retry): %s" % (extra or "none"))
        live = svc.get("/jobs/%s/0/" % K, timeout=10).json()["jobs"]
        tlib.check("no job left live", not live, [j["id"] for j in live])
    tlib.done()


main()
