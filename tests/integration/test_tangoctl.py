"""tangoctl (issue 14) against a live service: real redis-server, producer,
consumers on localDocker and Docker. Each command is driven as an operator
would, and checked against what the test did and what Redis and the
services show:

  - status: the leader's token is consumer:leader's, the standby is listed
    (heartbeat), the queue length, oldest age and per-course lists match the
    jobs the test submitted; --json parses (every --json call is checked).
  - pause: the leader logs it within a second and leases nothing: jobs
    submitted after it stay queued; the job already running finishes; a
    queued job can still be cancelled (tangoctl cancel); resume starts the
    queued jobs.
  - pause survives a takeover: the leader is SIGKILLed while paused, the
    standby takes over and still leases nothing until resume.
  - drain: the leader drains, exits 0 by itself, the standby takes over and
    runs the next job.
  - requeue once: a second requeue of the same job is refused naming the
    job it became; --force queues one more.
  - requeue: a dead-letter job (its record's fields in another order, set
    aside by the sweep) runs again as a new job; a record that still cannot
    be read, a running, a cancelled, a succeeded and an unknown job are
    refused (exit 1, a message naming why).
  - cancel: a running job ends cancelled; a finished one is refused.
  - callbacks retry: a callback to a dead port is given up into
    callbacks:failed; with a listener on that port, retry delivers it.
  - prune: only the dead job older than DAYS goes.
  - every command with the services stopped (Redis only), and Redis down
    (exit 3, a clear message).
  - worker hosts (distDocker on the test fleet): status shows both hosts up
    and the host a running job uses; a host whose sshd is killed shows DOWN.
"""
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fleet"))

import fleet  # noqa: E402
import tlib  # noqa: E402
from test_e2e_localdocker import consumer_config, our_containers  # noqa: E402
from tjobs import makefile, submit, wait_output  # noqa: E402

K = tlib.KEYS
CTL = os.path.join(tlib.BUILD, "tangoctl")
LEASE_MS = 2000
wait_for = tlib.wait_for
json_failures = []


def ctl(svc, *args, js=False):
    """Runs tangoctl with the services' own config file; returns (exit
    code, parsed JSON or stdout text, stderr)."""
    cmd = [CTL, "-c", svc.ctl_config] + (["--json"] if js else []) + [str(a) for a in args]
    p = subprocess.run(cmd, env=svc.env(), capture_output=True, text=True, timeout=60)
    if not js:
        return p.returncode, p.stdout, p.stderr
    try:
        doc = json.loads(p.stdout)
    except ValueError:
        json_failures.append((args, p.stdout[:300]))
        doc = {}
    return p.returncode, doc, p.stderr


def status(svc):
    return ctl(svc, "status", js=True)[1]


def job_state(svc, jid):
    r = svc.get("/job/%s/%d/" % (svc.key, jid)).json()
    return r.get("state")


def token_of(proc):
    """The 8-character token prefix a consumer logged when it started
    ("?" before it did)."""
    m = re.search(r"event=started token=(\w{8})", proc.logtext())
    return m.group(1) if m else "?"


def is_leader(proc):
    return proc.proc is not None and proc.proc.poll() is None and "leader_acquired" in proc.logtext()


class PortReceiver:
    """A callback receiver on a given port (one that was dead before)."""

    def __init__(self, port):
        self.calls = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.calls.append((self.path, body))
                self.send_response(204)
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def cfg(svc):
    extra = {"lease_ms": LEASE_MS, "sweep_interval_ms": 500, "auto_pool_max": 0, "max_jobs": 2,
             "max_jobs_per_image": 2, "callback_attempts": 2, "callback_backoff_ms": 100,
             "job_retries": 1}
    with open(os.path.join(tlib.ROOT, "deploy", "tango.json")) as f:
        if "metrics_port" in json.load(f):
            extra["metrics_port"] = 0  # several consumers on one host: no metrics listener
    return consumer_config(svc, extra=extra)


def pause_and_status(svc):
    c0 = svc.start_consumer(cfg(svc))
    tlib.check("a leader is elected", wait_for(lambda: is_leader(c0), 15), c0.logtext()[-800:])
    wait_for(lambda: status(svc).get("leader"), 5)
    st = status(svc)
    leader = svc.redis.cli("GET", svc.prefix + K["LEADER"])
    tlib.check("status: the leader is consumer:leader's token",
               (st.get("leader") or {}).get("token") == leader and leader.startswith(token_of(c0)),
               (st.get("leader"), leader))
    tlib.check("status: the leader's heartbeat (host, pid) is shown",
               ((st.get("leader") or {}).get("heartbeat") or {}).get("pid") == c0.proc.pid,
               st.get("leader"))
    tlib.check("status: no standby", st.get("standbys") == [], st.get("standbys"))

    long = submit(svc, "ops-long", {"Makefile": makefile("sleep 4\necho long-done")},
                  "long.out", timeout=60)["jobId"]
    tlib.check("a job is running before the pause",
               wait_for(lambda: job_state(svc, long) == "running", 30), job_state(svc, long))
    rc, doc, err = ctl(svc, "pause", "--reason", "maintenance", js=True)
    t_pause = time.time()
    tlib.check("pause: exit 0", rc == 0 and doc.get("paused") is True, (rc, doc, err))
    seen = wait_for(lambda: "event=leasing_paused" in c0.logtext(), 1.0, interval=0.02)
    took = time.time() - t_pause
    tlib.check("pause: the leader stops leasing within a second", seen, "%.2fs" % took)
    print("# pause seen by the leader %.2f s after tangoctl returned" % took)

    t_submit = time.time()
    ids = {"c1": [], "c2": []}
    for course, n in (("c1", 3), ("c2", 2)):
        for i in range(n):
            r = submit(svc, "%s-lab" % course, {"Makefile": makefile("echo %s-%d" % (course, i))},
                       "%s-%d.out" % (course, i), timeout=30)
            ids[course].append(r["jobId"])
    doomed = submit(svc, "c2-lab", {"Makefile": makefile("echo never")}, "doomed.out",
                    timeout=30)["jobId"]
    queued = ids["c1"] + ids["c2"]
    leased = wait_for(lambda: [j for j in queued if job_state(svc, j) != "queued"], 3)
    tlib.check("paused: jobs submitted after the pause stay queued (3 s)", not leased, leased)
    out = wait_output(svc, "ops-long", "long.out", 30)
    tlib.check("paused: the running job finishes", out is not None and b"long-done" in out, out)

    rc, out, err = ctl(svc, "cancel", doomed)
    tlib.check("cancel (queued, paused): exit 0", rc == 0 and "cancellation requested" in out,
               (rc, out, err))
    out = wait_output(svc, "c2-lab", "doomed.out", 20)
    tlib.check("cancel (queued, paused): the job ends cancelled without running",
               out is not None and b"Job cancelled by request" in out and b"never" not in out, out)

    st = status(svc)
    q = st.get("queue") or {}
    age = time.time() - t_submit
    tlib.check("status: queue length is what the test queued (5)", q.get("length") == 5, q)
    tlib.check("status: oldest queued age matches the first submission",
               q.get("oldestAgeS") is not None and 0 <= q["oldestAgeS"] <= age + 1, (q, age))
    tlib.check("status: nothing running while paused",
               (st.get("running") or {}).get("count") == 0, st.get("running"))
    tlib.check("status: paused, by whom and why",
               (st.get("paused") or {}).get("reason") == "maintenance" and
               "@" in (st.get("paused") or {}).get("by", ""), st.get("paused"))
    courses = (q.get("courses") or None)
    if courses is not None:  # per course once the scheduler publishes it (store_queue_stats)
        per = {c.get("group"): c.get("length") for c in courses}
        tlib.check("status: queue per course (c1 3, c2 2)",
                   per.get("c1") == 3 and per.get("c2") == 2, courses)
    rc, out, _ = ctl(svc, "status")
    tlib.check("status (text): says PAUSED and 5 queued",
               rc == 0 and "PAUSED" in out and "5 queued" in out, out)
    rc, doc, _ = ctl(svc, "jobs", "--live", js=True)
    tlib.check("jobs --live: the 5 queued jobs",
               rc == 0 and sorted(j["id"] for j in doc.get("jobs", [])) == sorted(queued),
               doc.get("jobs"))
    rc, doc, _ = ctl(svc, "jobs", "--course", "c1", js=True)
    tlib.check("jobs --course c1: its 3 jobs",
               sorted(j["id"] for j in doc.get("jobs", [])) == sorted(ids["c1"]),
               [j.get("id") for j in doc.get("jobs", [])])
    rc, doc, _ = ctl(svc, "jobs", "--dead", js=True)
    tlib.check("jobs --dead: the finished and the cancelled job",
               {long, doomed} <= {j["id"] for j in doc.get("jobs", [])},
               [j.get("id") for j in doc.get("jobs", [])])
    rc, doc, _ = ctl(svc, "job", queued[0], js=True)
    tlib.check("job ID: record, state queued, queue position",
               rc == 0 and doc.get("state") == "queued" and doc.get("queuePosition", 0) >= 1 and
               doc.get("job", {}).get("id") == queued[0], doc)
    rc, out, _ = ctl(svc, "job", long)
    tlib.check("job ID (text): state and trace", rc == 0 and "Job %d: done" % long in out and
               "Trace:" in out and "long-done" not in out, out)
    return c0, queued


def takeover_keeps_pause(svc, c0, queued):
    c1 = svc.start_consumer(cfg(svc))
    standby = wait_for(lambda: [s for s in status(svc).get("standbys", [])
                                if s.get("token", "").startswith(token_of(c1))], 10)
    tlib.check("status: the standby is listed (heartbeat)", standby, status(svc).get("standbys"))
    c0.kill(signal.SIGKILL)
    t_kill = time.time()
    took = wait_for(lambda: is_leader(c1), 15)
    tlib.check("takeover: the standby leads after the leader is SIGKILLed", took,
               c1.logtext()[-600:])
    print("# takeover %.1f s after the kill (lease %d ms)" % (time.time() - t_kill, LEASE_MS))
    lead = wait_for(lambda: (status(svc).get("leader") or {}).get("token", "").startswith(
        token_of(c1)), 5)
    tlib.check("status: the new leader is shown", lead, status(svc).get("leader"))
    leased = wait_for(lambda: [j for j in queued if job_state(svc, j) != "queued"], 3)
    tlib.check("takeover: still paused, the new leader leases nothing (3 s)", not leased, leased)
    rc, doc, err = ctl(svc, "resume", js=True)
    t_resume = time.time()
    tlib.check("resume: exit 0, was paused", rc == 0 and doc.get("wasPaused") is True, (doc, err))
    first = wait_for(lambda: [j for j in queued if job_state(svc, j) != "queued"], 10,
                     interval=0.05)
    print("# first lease %.2f s after resume" % (time.time() - t_resume))
    tlib.check("resume: leasing starts again within 2 s", first and time.time() - t_resume < 2,
               "%.2fs" % (time.time() - t_resume))
    outs = [wait_output(svc, "%s-lab" % c, "%s-%d.out" % (c, i), 40)
            for c, n in (("c1", 3), ("c2", 2)) for i in range(n)]
    tlib.check("resume: every queued job runs", all(o is not None for o in outs), outs)
    rc, doc, _ = ctl(svc, "resume", js=True)
    tlib.check("resume when not paused: exit 0, says so", rc == 0 and doc.get("wasPaused") is False,
               doc)
    return c1


def drain(svc, c1):
    c2 = svc.start_consumer(cfg(svc))
    wait_for(lambda: len(status(svc).get("standbys", [])) == 1, 10)
    rc, doc, err = ctl(svc, "drain", js=True)
    tlib.check("drain: exit 0, names the leader",
               rc == 0 and doc.get("drainRequested", "").startswith(token_of(c1)) and
               doc.get("leader") is True, (rc, doc, err))
    exited = wait_for(lambda: c1.proc.poll() is not None, 20)
    tlib.check("drain: the leader drains and exits 0 by itself",
               exited and c1.proc.returncode == 0 and "event=drain_requested" in c1.logtext(),
               (c1.proc.returncode, c1.logtext()[-800:]))
    tlib.check("drain: the standby takes over", wait_for(lambda: is_leader(c2), 15),
               c2.logtext()[-600:])
    r = submit(svc, "after-drain", {"Makefile": makefile("echo after-drain")}, "ad.out", timeout=30)
    out = wait_output(svc, "after-drain", "ad.out", 30)
    tlib.check("drain: the new leader runs the next job", out is not None and b"after-drain" in out,
               out)
    st = status(svc)
    tlib.check("drain: the request is gone and the drained consumer is not listed",
               st.get("drainRequested") is None and len(st.get("consumers", [])) == 1,
               (st.get("drainRequested"), st.get("consumers")))
    rc, _, err = ctl(svc, "drain", "--consumer", "zzzz")
    tlib.check("drain --consumer unknown: refused (exit 1)", rc == 1 and "zzzz" in err, (rc, err))
    return c2, r["jobId"]


def plant(svc, template, jid, text):
    R, pre = svc.redis, svc.prefix
    R.cli("HSET", pre + K["JOBS_LIVE"], jid, text)
    R.cli("ZADD", pre + K["JOBS_LIVE_IDS"], jid, jid)
    R.cli("RPUSH", pre + K["QUEUE_LEASED"], jid)  # no lease: the sweep adopts it


def requeue_and_cancel(svc, done_id):
    R, pre = svc.redis, svc.prefix
    rec = json.loads(R.cli("HGET", pre + K["JOBS_DEAD"], done_id))
    good = int(R.cli("INCR", pre + K["JOB_LASTID"]))
    rec.update({"id": good, "state": "queued", "outputFile": "dl.out", "trace": [],
                "retries": 0, "outcome": None, "assigned": False})
    rec.pop("run", None)
    rec.pop("outputTemp", None)
    rec["vm"]["name"] = None
    # readable JSON, but "state" before "id": the library cannot read its state
    reordered = dict([("state", "queued")] + [(k, v) for k, v in rec.items() if k != "state"])
    plant(svc, rec, good, json.dumps(reordered, separators=(",", ":")))
    broken = int(R.cli("INCR", pre + K["JOB_LASTID"]))
    plant(svc, rec, broken, '{"id":%d,"name": broken' % broken)
    dl = wait_for(lambda: all(ctl(svc, "job", j, js=True)[1].get("state") == "dead-letter"
                              for j in (good, broken)), 20)
    tlib.check("dead-letter: both planted records set aside", dl,
               [ctl(svc, "job", j, js=True)[1].get("state") for j in (good, broken)])
    rc, out, _ = ctl(svc, "job", good)
    tlib.check("job ID (dead-letter): says its raw text is kept", "jobs:deadletter" in out, out)
    rc, doc, err = ctl(svc, "requeue", good, js=True)
    new = doc.get("newJobId")
    tlib.check("requeue dead-letter: exit 0, a new job", rc == 0 and new and new != good,
               (rc, doc, err))
    out = wait_output(svc, "after-drain", "dl.out", 30)
    tlib.check("requeue dead-letter: the job runs again through the queue",
               out is not None and b"after-drain" in out, out)
    rc, doc, _ = ctl(svc, "job", new, js=True) if new else (1, {}, "")
    tlib.check("requeue dead-letter: the new job's trace names the old one",
               any("from job %d (dead-letter)" % good in t for t in doc.get("job", {}).get("trace", [])),
               doc.get("job", {}).get("trace"))
    tlib.check("requeue dead-letter: the old record stays dead-letter",
               ctl(svc, "job", good, js=True)[1].get("state") == "dead-letter")
    rc, _, err = ctl(svc, "requeue", broken)
    tlib.check("requeue unreadable dead-letter: refused (exit 1)",
               rc == 1 and "cannot be read" in err, (rc, err))

    run = submit(svc, "after-drain", {"Makefile": makefile("echo started\nsleep 20\necho finished")},
                 "run.out", timeout=60)["jobId"]
    wait_for(lambda: job_state(svc, run) == "running", 30)
    rc, _, err = ctl(svc, "requeue", run)
    tlib.check("requeue running: refused (exit 1), says it is running",
               rc == 1 and "running" in err, (rc, err))
    rc, doc, err = ctl(svc, "cancel", run, js=True)
    tlib.check("cancel running: exit 0", rc == 0 and doc.get("cancelRequested") is True, (doc, err))
    out = wait_output(svc, "after-drain", "run.out", 20)
    tlib.check("cancel running: the job ends cancelled",
               out is not None and b"Job cancelled by request" in out, out)
    wait_for(lambda: job_state(svc, run) == "cancelled", 10)
    rc, doc, err = ctl(svc, "cancel", run, js=True)
    tlib.check("cancel finished: refused (exit 1), JSON error",
               rc == 1 and doc.get("ok") is False and "already finished" in err, (rc, doc, err))
    rc, _, err = ctl(svc, "requeue", run)
    tlib.check("requeue cancelled: refused (exit 1)", rc == 1 and "cancelled" in err, (rc, err))
    rc, _, err = ctl(svc, "requeue", done_id)
    tlib.check("requeue succeeded job: refused without --force", rc == 1 and "--force" in err,
               (rc, err))
    rc, _, err = ctl(svc, "requeue", 999999)
    tlib.check("requeue unknown: refused (exit 1)", rc == 1 and "no job 999999" in err, (rc, err))
    rc, _, err = ctl(svc, "job", "abc")
    tlib.check("job abc: usage error (exit 2)", rc == 2, (rc, err))
    rc, _, err = ctl(svc, "frobnicate")
    tlib.check("unknown command: usage error (exit 2)", rc == 2 and "frobnicate" in err, (rc, err))


def callbacks_retry(svc):
    port = tlib.free_port()
    url = "http://127.0.0.1:%d/cb/late" % port
    jid = submit(svc, "after-drain", {"Makefile": makefile("echo cb-job")}, "cb.out", timeout=30,
                 callback_url=url)["jobId"]
    failed = wait_for(lambda: (status(svc).get("callbacks") or {}).get("failed") == 1, 30)
    tlib.check("callbacks: a callback to a dead port ends in callbacks:failed", failed,
               status(svc).get("callbacks"))
    rx = PortReceiver(port)
    try:
        rc, doc, err = ctl(svc, "callbacks", "retry", js=True)
        tlib.check("callbacks retry: exit 0, 1 moved", rc == 0 and doc.get("moved") == 1,
                   (rc, doc, err))
        got = wait_for(lambda: rx.calls, 15)
        tlib.check("callbacks retry: the callback is delivered",
                   got and rx.calls[0][0] == "/cb/late" and b"cb-job" in rx.calls[0][1],
                   rx.calls[:1])
        cbs = status(svc).get("callbacks") or {}
        tlib.check("callbacks retry: nothing failed or pending afterwards",
                   wait_for(lambda: (status(svc).get("callbacks") or {}) ==
                            {"pending": 0, "failed": 0}, 10), cbs)
        rc, doc, _ = ctl(svc, "callbacks", "retry", js=True)
        tlib.check("callbacks retry with none failed: exit 0, 0 moved",
                   rc == 0 and doc.get("moved") == 0, doc)
    finally:
        rx.close()
    return jid


def prune(svc, old_id):
    R, pre = svc.redis, svc.prefix
    rec = json.loads(R.cli("HGET", pre + K["JOBS_DEAD"], old_id))
    rec["createdAt"] = time.time() - 10 * 86400
    R.cli("HSET", pre + K["JOBS_DEAD"], old_id, json.dumps(rec, separators=(",", ":")))
    total = (status(svc).get("dead") or {}).get("total")
    rc, doc, err = ctl(svc, "prune", "--dead-older-than", 5, js=True)
    tlib.check("prune: exactly the job older than 5 days goes",
               rc == 0 and doc.get("pruned") == 1 and doc.get("kept") == total - 1,
               (rc, doc, err, total))
    tlib.check("prune: its record and id are gone",
               R.cli("HEXISTS", pre + K["JOBS_DEAD"], old_id) == "0" and
               R.cli("ZSCORE", pre + K["JOBS_DEAD_IDS"], old_id) == "" and
               ctl(svc, "job", old_id)[0] == 1)
    rc, _, err = ctl(svc, "prune", "--dead-older-than", "-1")
    tlib.check("prune with a bad DAYS: usage error (exit 2)", rc == 2, (rc, err))


def services_stopped(svc, timed_out):
    for p in svc.consumers + svc.producers:
        rc = p.stop(60)  # None: killed on purpose, or already checked
        if rc is not None:
            bad = [l for l in p.logtext().splitlines() if "Sanitizer" in l or "runtime error" in l]
            tlib.check("%s exits cleanly" % p.name, rc == 0 and not bad, (rc, bad[:3]))
    rc, doc, err = ctl(svc, "status", js=True)
    tlib.check("stopped: status works (no leader, no consumer)",
               rc == 0 and doc.get("leader") is None and doc.get("consumers") == [], (doc, err))
    rc, doc, err = ctl(svc, "requeue", timed_out, js=True)
    new = doc.get("newJobId")
    tlib.check("stopped: requeue of a failed (timed out) job queues a new job",
               rc == 0 and new and ctl(svc, "job", new, js=True)[1].get("state") == "queued",
               (rc, doc, err))
    st = status(svc)
    tlib.check("stopped: status counts it queued", (st.get("queue") or {}).get("length") == 1,
               st.get("queue"))
    # Requeue once: the same command again (an operator's repeat, a script's
    # retry) is refused naming the job it became; --force runs it once more.
    rc, doc, err = ctl(svc, "requeue", timed_out, js=True)
    tlib.check("stopped: a second requeue of the same job is refused, naming the first new job",
               rc == 1 and doc.get("ok") is False and "as job %s" % new in (doc.get("error") or ""),
               (rc, doc, err))
    tlib.check("... and queues nothing",
               (status(svc).get("queue") or {}).get("length") == 1, status(svc).get("queue"))
    rc, doc, err = ctl(svc, "requeue", timed_out, "--force", js=True)
    forced = doc.get("newJobId")
    tlib.check("stopped: requeue --force queues one more job",
               rc == 0 and forced and forced != new and
               (status(svc).get("queue") or {}).get("length") == 2, (rc, doc, err))
    ctl(svc, "cancel", forced)
    for args, want in ((("jobs",), 0), (("jobs", "--dead"), 0), (("job", timed_out), 0),
                       (("pause",), 0), (("resume",), 0), (("callbacks", "retry"), 0),
                       (("prune", "--dead-older-than", 30), 0), (("cancel", new), 0),
                       (("drain",), 1)):
        rc, doc, err = ctl(svc, *args, js=True)
        tlib.check("stopped: %s -> exit %d" % (" ".join(map(str, args)), want),
                   rc == want and doc.get("ok") is (want == 0), (rc, doc, err))
    tlib.check("stopped: cancel recorded for the consumer to act on",
               svc.redis.cli("SISMEMBER", svc.prefix + K["CANCELS"], new) == "1")
    rc, _, err = ctl(svc, "drain")
    tlib.check("stopped: drain says why it refuses", "no consumer holds the leader lease" in err, err)
    svc.redis.stop()
    rc, _, err = ctl(svc, "status")
    tlib.check("Redis down: exit 3 naming Redis's address",
               rc == 3 and "127.0.0.1:%d" % svc.redis.port in err and "unavailable" in err,
               (rc, err))
    svc.consumers.clear()
    svc.producers.clear()


def worker_hosts():
    from test_distdocker import consumer_config as dd_config
    with fleet.Fleet(2) as f, tlib.Service(producers=1) as svc:
        svc.ctl_config = svc.write_config()
        extra = cfg(svc)
        dd = dd_config(svc, f.distdocker_config(max_jobs=2))
        dd.update({k: extra[k] for k in ("lease_ms", "metrics_port") if k in extra})
        c = svc.start_consumer(dd)
        labels = {f.label(1), f.label(2)}

        def hosts():
            return {h.get("host"): h for h in (status(svc).get("hosts") or {}).get("workers") or []}
        up = wait_for(lambda: set(hosts()) == labels and all(h["up"] for h in hosts().values()), 30)
        tlib.check("hosts: status shows both worker hosts up", up, (hosts(), labels))
        jid = submit(svc, "dd-lab", {"Makefile": makefile("sleep 4\necho dd-done")}, "dd.out",
                     timeout=30)["jobId"]
        wait_for(lambda: job_state(svc, jid) == "running", 30)

        def in_use():
            return (status(svc).get("hosts") or {}).get("inUse") or {}
        shown = wait_for(lambda: set(in_use()) <= labels and sum(in_use().values()) == 1 and
                         sum(h["jobs"] for h in hosts().values()) == 1, 10)
        tlib.check("hosts: the running job's host is shown", shown, (in_use(), hosts()))
        wait_output(svc, "dd-lab", "dd.out", 40)
        f.stop(2)
        down = wait_for(lambda: hosts().get(f.label(2), {}).get("up") is False, 20)
        tlib.check("hosts: a host whose sshd is killed shows DOWN", down, hosts())
        rc, out, _ = ctl(svc, "status")
        tlib.check("hosts (text): DOWN shown", rc == 0 and "DOWN" in out, out)
        tlib.check("hosts: the other stays up", hosts().get(f.label(1), {}).get("up") is True,
                   hosts())
        c.stop(60)
        svc.consumers.clear()
        tlib.check("hosts: consumer exits 0 after the host went down", c.proc is None)


def main():
    with tlib.Service(producers=1) as svc:
        svc.ctl_config = svc.write_config()
        t0 = time.time()
        c0, queued = pause_and_status(svc)
        c1 = takeover_keeps_pause(svc, c0, queued)
        c2, done_id = drain(svc, c1)
        requeue_and_cancel(svc, done_id)
        cb_id = callbacks_retry(svc)
        prune(svc, cb_id)
        timed_out = submit(svc, "after-drain", {"Makefile": makefile("sleep 30")}, "to.out",
                           timeout=1)["jobId"]
        wait_output(svc, "after-drain", "to.out", 30)
        tlib.check("a job timed out (failed)",
                   wait_for(lambda: job_state(svc, timed_out) == "done", 10))
        services_stopped(svc, timed_out)
        tlib.check("every --json answer parses", not json_failures, json_failures)
        tlib.check("no container left", wait_for(lambda: not our_containers(), 20), our_containers())
        print("# test_tangoctl took %.0f s" % (time.time() - t0))
        del c2
    t1 = time.time()
    worker_hosts()
    print("# worker hosts part took %.0f s" % (time.time() - t1))
    tlib.done()


if __name__ == "__main__":
    main()
