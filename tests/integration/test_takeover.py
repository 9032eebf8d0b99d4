"""Issue #9: one fenced job lifecycle, end to end against real Redis, real
producers, two consumers and Docker (and, for distDocker, the SSH test fleet).

  - takeover keeps running jobs running: 3 jobs run a 12-second grader, the
    leader is SIGKILLed 3 s in; the standby re-attaches to the same runs:
    each job completes once, with retries 0, one run ("Assigned" once in its
    trace), within 12 s + lease + a few seconds of its start, one callback
    each, and its trace shows the adoption. Same on distDocker.
  - a stale leader (SIGSTOPped past its lease, SIGCONTed after the standby
    finished its job) has its late writes refused: the output file is the
    new owner's, byte for byte, and the job ended once.
  - two consumers on clocks 30 s apart (libfaketime): the skewed leader's
    leases are Redis time, so when it dies the standby adopts its job within
    the lease, not 30 s later, and nothing is adopted while it lives.
  - an id stuck in queue:leased without a lease runs within the sweep period
    with no change of leader.
  - a finishing job whose accepted output file is gone is graded again
    (one retry), never ended without its output.
  - a malformed record ends in dead-letter, visible in /jobs/KEY/1/ with a
    clear trace line, and the queue keeps moving.
"""
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fleet"))

import fleet  # noqa: E402
import tjobs  # noqa: E402
import tlib  # noqa: E402
from test_e2e_localdocker import PREFIX, consumer_config  # noqa: E402
from tjobs import makefile, submit, wait_output  # noqa: E402

K = tlib.KEYS
LEASE_MS = 2000
SWEEP_MS = 500
FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


wait_for = tlib.wait_for


def leader_of(svc, among):
    for i in among:
        c = svc.consumers[i]
        if c.proc and c.proc.poll() is None and "leader_acquired" in c.logtext():
            return i
    return None


def run_started(svc, job_id):
    """Whether the job's trace says its input is in and its run is next
    (words the consumer has always written, so old builds are judged fairly)."""
    r = svc.get("/job/%s/%d/" % (svc.key, job_id))
    try:
        trace = (r.json().get("job") or {}).get("trace", [])
    except ValueError:
        return False
    return any("Input copied for job" in t for t in trace)


def dead_record(svc, job_id):
    jobs = svc.get("/jobs/%s/1/" % svc.key).json()["jobs"]
    return [j for j in jobs if j["id"] == job_id]


def config(svc, vmms_cfg=None, extra=None):
    cfg = vmms_cfg or consumer_config(svc)
    cfg = dict(cfg)
    cfg.update({"lease_ms": LEASE_MS, "sweep_interval_ms": SWEEP_MS, "job_retries": 2,
                "auto_pool_max": 0})
    cfg.update(extra or {})
    return cfg


def two_consumers(svc, cfg, first_env=None):
    """Starts a leader (with first_env) and then a standby; returns their
    indexes in svc.consumers."""
    a = len(svc.consumers)
    svc.start_consumer(cfg, env=first_env)
    wait_for(lambda: leader_of(svc, [a]) is not None, 15)
    svc.start_consumer(cfg)
    wait_for(lambda: "event=started" in svc.consumers[a + 1].logtext(), 10)
    return a, a + 1


def takeover_keeps_runs(svc, cb, cfg, label, lab):
    leader, standby = two_consumers(svc, cfg)
    tlib.check("%s: a leader is elected" % label, leader_of(svc, [leader]) is not None)
    grader = makefile("echo run-start $$(cat /proc/sys/kernel/random/uuid)\nsleep 12\necho graded")
    ids, t_submit = [], time.time()
    for i in range(3):
        r = submit(svc, lab, {"Makefile": grader}, "keep%d.out" % i, timeout=60,
                   callback_url=cb.url("%s-keep%d" % (lab, i)))
        ids.append(r["jobId"])
    started = wait_for(lambda: all(run_started(svc, i) for i in ids), 30)
    tlib.check("%s: 3 jobs running on the leader" % label, started)
    # 3 s into the runs (the trace records each start)
    time.sleep(3)  # the grader's own progress, not a synchronisation: the kill must land mid-run
    t_kill = time.time()
    svc.consumers[leader].kill(signal.SIGKILL)
    outs = [wait_output(svc, lab, "keep%d.out" % i, 12 + LEASE_MS / 1000 + 30) for i in range(3)]
    t_done = time.time()
    ok = [o is not None and b"graded" in o and b"Success: Autodriver returned normally" in o
          for o in outs]
    tlib.check("%s: every job completes after the takeover" % label, all(ok), outs)
    runs = [sum(1 for l in o.split(b"\n") if l.startswith(b"run-start ")) if o else 0
            for o in outs]
    tlib.check("%s: each output shows one run" % label, runs == [1, 1, 1], runs)
    recs = [wait_for(lambda i=i: dead_record(svc, i), 20) for i in ids]
    tlib.check("%s: each job dead exactly once" % label, all(len(r) == 1 for r in recs), recs)
    recs = [r[0] for r in recs if r]
    tlib.check("%s: retries 0 for every job" % label,
               len(recs) == 3 and all(r["retries"] == 0 for r in recs),
               [r.get("retries") for r in recs])
    tlib.check("%s: one run per job (Assigned once in its trace)" % label,
               all(sum("Assigned job" in t for t in r["trace"]) == 1 for r in recs),
               [r["trace"] for r in recs])
    tlib.check("%s: the trace shows the re-attach" % label,
               all(any("Re-attached" in t for t in r["trace"]) for r in recs),
               [r["trace"][-6:] for r in recs])
    limit = 12 + LEASE_MS / 1000 + 8
    tlib.check("%s: done within 12 s + lease + a few s of the start" % label,
               t_done - t_submit < limit + 5, "%.1fs (limit %.1fs)" % (t_done - t_submit, limit))
    print("# %s: kill at +%.1fs, all 3 done at +%.1fs after submit (12 s grader, lease %d ms)"
          % (label, t_kill - t_submit, t_done - t_submit, LEASE_MS))
    counts = [len(cb.wait("%s-keep%d" % (lab, i), 20)) for i in range(3)]
    tlib.check("%s: one callback per job" % label, counts == [1, 1, 1], counts)
    tlib.check("%s: the standby logged the adoptions" % label,
               svc.consumers[standby].logtext().count("mode=reattach") >= 3,
               svc.consumers[standby].logtext()[-1500:])
    return standby


def stale_leader(svc):
    cfg = config(svc)
    leader, standby = two_consumers(svc, cfg)
    r = submit(svc, "stale", {"Makefile": makefile("sleep 4\necho by-whoever-finishes")},
               "stale.out", timeout=60)
    jid = r["jobId"]
    running = wait_for(lambda: run_started(svc, jid), 30)
    tlib.check("stale leader: the run started on the leader", running)
    time.sleep(1)  # 1 s into the 4 s run: the pause must land mid-run
    old = svc.consumers[leader]
    old.proc.send_signal(signal.SIGSTOP)
    took = wait_for(lambda: "leader_acquired" in svc.consumers[standby].logtext(), 20)
    tlib.check("stale leader: the standby takes over while it is stopped", took)
    out = wait_output(svc, "stale", "stale.out", 40)
    tlib.check("stale leader: the new owner finishes the job", out is not None and
               b"by-whoever-finishes" in out, out)
    path = os.path.join(svc.courselabs, [d for d in os.listdir(svc.courselabs)
                                         if not d.startswith(".")
                                         and os.path.exists(os.path.join(svc.courselabs, d,
                                                                         "output", "stale.out"))][0],
                        "output", "stale.out")
    before = open(path, "rb").read()
    old.proc.send_signal(signal.SIGCONT)
    refused = wait_for(lambda: "job_lease_lost" in old.logtext() or "leader_lost" in old.logtext(), 30)
    tlib.check("stale leader: it notices it lost the job", refused, old.logtext()[-1500:])
    # Give its worker the chance to try its late writes (its run ended, its
    # copy-out and finish are refused): wait until its worker has exited.
    wait_for(lambda: "job_lease_lost" in old.logtext(), 30)
    after = open(path, "rb").read()
    tlib.check("stale leader: the output file is the new owner's, byte for byte",
               after == before, (before[-200:], after[-200:]))
    recs = dead_record(svc, jid)
    tlib.check("stale leader: the job ended once", len(recs) == 1 and recs[0]["retries"] == 0,
               recs)
    tmp_left = wait_for(lambda: not [f for f in os.listdir(os.path.dirname(path))
                                     if f.startswith(".")], 20)
    tlib.check("stale leader: no temp file of the stale writer left", tmp_left,
               os.listdir(os.path.dirname(path)))
    old.kill(signal.SIGKILL)
    svc.consumers[standby].kill(signal.SIGKILL)


def clock_skew(svc):
    if not os.path.exists(FAKETIME):
        tlib.check("clock skew: libfaketime is installed", False, FAKETIME)
        return
    cfg = config(svc)
    skewed = {"LD_PRELOAD": FAKETIME, "FAKETIME": "+30s", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
              "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}
    leader, standby = two_consumers(svc, cfg, first_env=skewed)
    tlib.check("clock skew: the consumer 30 s ahead leads", leader_of(svc, [leader]) is not None)
    r = submit(svc, "skew", {"Makefile": makefile("sleep 8\necho skew-ok")}, "skew.out", timeout=60)
    jid = r["jobId"]
    wait_for(lambda: "event=job_start " in svc.consumers[leader].logtext(), 20)
    # While the skewed leader lives, the standby adopts nothing.
    time.sleep(LEASE_MS / 1000 * 2)  # two lease periods of observation, not a synchronisation
    tlib.check("clock skew: no spurious adoption while the leader lives",
               "job_adopted" not in svc.consumers[standby].logtext() and
               "job_recovered" not in svc.consumers[standby].logtext(),
               svc.consumers[standby].logtext()[-800:])
    t_kill = time.time()
    svc.consumers[leader].kill(signal.SIGKILL)
    adopted = wait_for(lambda: "job_adopted" in svc.consumers[standby].logtext(), 25)
    t_adopt = time.time() - t_kill
    tlib.check("clock skew: the standby adopts the job within the lease (not 30 s late)",
               adopted and t_adopt < LEASE_MS / 1000 * 3 + 3, "%.1fs" % t_adopt)
    print("# clock skew +30s: adoption %.1fs after the kill (lease %d ms)" % (t_adopt, LEASE_MS))
    out = wait_output(svc, "skew", "skew.out", 40)
    recs = wait_for(lambda: dead_record(svc, jid), 10)
    tlib.check("clock skew: the job completes once with retries 0",
               out is not None and b"skew-ok" in out and len(recs) == 1 and recs[0]["retries"] == 0,
               (out, recs))
    svc.consumers[standby].kill(signal.SIGKILL)


def template_record(svc, lab):
    """A real record to copy: a finished job's, as Redis holds it."""
    r = submit(svc, lab, {"Makefile": makefile("echo template")}, "template.out", timeout=20)
    wait_output(svc, lab, "template.out", 40)
    wait_for(lambda: dead_record(svc, r["jobId"]), 10)
    return json.loads(svc.redis.cli("HGET", svc.prefix + K["JOBS_DEAD"], r["jobId"]))


def stuck_and_malformed(svc):
    cfg = config(svc)
    svc.start_consumer(cfg)
    leader = len(svc.consumers) - 1
    wait_for(lambda: leader_of(svc, [leader]) is not None, 15)
    rec = template_record(svc, "stuck")
    R, pre = svc.redis, svc.prefix
    # An id in queue:leased with no lease, as a crash between BLMOVE and the
    # lease would leave it.
    jid = int(R.cli("INCR", pre + K["JOB_LASTID"]))
    rec.update({"id": jid, "state": "queued", "outputFile": "stuck.out", "trace": [],
                "retries": 0, "outcome": None, "assigned": False})
    rec.pop("run", None)
    rec.pop("outputTemp", None)
    rec["vm"]["name"] = None
    text = json.dumps(rec, separators=(",", ":"))
    tlib.check("stuck in queue:leased: planted record starts with its id and state",
               text.startswith('{"id":%d,"state":"queued",' % jid), text[:40])
    R.cli("HSET", pre + K["JOBS_LIVE"], jid, text)
    R.cli("ZADD", pre + K["JOBS_LIVE_IDS"], jid, jid)
    R.cli("RPUSH", pre + K["QUEUE_LEASED"], jid)
    t0 = time.time()
    out = wait_output(svc, "stuck", "stuck.out", 30)
    tlib.check("stuck in queue:leased: the job runs without a change of leader",
               out is not None and b"template" in out, out)
    print("# stuck leased id ran %.1fs after it was planted (sweep %d ms)" % (time.time() - t0, SWEEP_MS))
    tlib.check("stuck in queue:leased: still the same leader",
               svc.consumers[leader].logtext().count("leader_acquired") == 1)
    # A lease granted to the leader itself whose reply it never saw (Redis
    # went away right after the grant): the leader's own lapsed lease on a
    # job it does not hold is adopted like anyone's.
    own = int(R.cli("INCR", pre + K["JOB_LASTID"]))
    rec.update({"id": own, "state": "leased", "outputFile": "own.out"})
    R.cli("HSET", pre + K["JOBS_LIVE"], own, json.dumps(rec, separators=(",", ":")))
    R.cli("ZADD", pre + K["JOBS_LIVE_IDS"], own, own)
    R.cli("RPUSH", pre + K["QUEUE_LEASED"], own)
    R.cli("HSET", pre + K["LEASE_OWNER"], own, R.cli("GET", pre + K["LEADER"]))
    R.cli("HSET", pre + K["LEASE_FENCE"], own, 999999)
    R.cli("ZADD", pre + K["LEASES"], 1, own)
    out = wait_output(svc, "stuck", "own.out", 30)
    tlib.check("own lapsed lease on a job not held: the leader adopts and runs it",
               out is not None and b"template" in out, out)
    # A finishing job whose accepted output file is gone (its writer lost
    # the file, or a failover made it give the file up): the adopter must
    # grade it again, not end it with no output.
    def plant_finishing(output_file, fence, **fields):
        """A finishing job whose accepted temp file does not exist, with a
        lapsed lease of a consumer that died; returns its id."""
        jid = int(R.cli("INCR", pre + K["JOB_LASTID"]))
        rec.update({"id": jid, "state": "finishing", "outputFile": output_file,
                    "outputTemp": ".%d.%d.tmp" % (jid, fence)}, **fields)
        R.cli("HSET", pre + K["JOBS_LIVE"], jid, json.dumps(rec, separators=(",", ":")))
        R.cli("ZADD", pre + K["JOBS_LIVE_IDS"], jid, jid)
        R.cli("RPUSH", pre + K["QUEUE_LEASED"], jid)
        R.cli("HSET", pre + K["LEASE_OWNER"], jid, "a-consumer-that-died")
        R.cli("HSET", pre + K["LEASE_FENCE"], jid, fence)
        R.cli("ZADD", pre + K["LEASES"], 1, jid)
        return jid
    lost = plant_finishing("lost.out", 999998)
    out = wait_output(svc, "stuck", "lost.out", 30)
    tlib.check("finishing job whose output file is gone: graded again, its output written",
               out is not None and b"template" in out, out)
    recs = wait_for(lambda: dead_record(svc, lost), 20)
    tlib.check("... ended once, one retry counted, the reason in its trace",
               len(recs) == 1 and recs[0].get("retries") == 1 and
               any("output file was gone" in t for t in recs[0].get("trace", [])), recs)
    # The same for a job that was being cancelled: it ends cancelled, with
    # its cancellation output, and is not graded again.
    gone = plant_finishing("gone.out", 999997, outcome="Error: Job cancelled by request")
    out = wait_output(svc, "stuck", "gone.out", 30)
    recs = wait_for(lambda: dead_record(svc, gone), 20)
    tlib.check("finishing cancelled job whose output file is gone: ends cancelled, not regraded",
               out is not None and b"cancelled by request" in out and b"\ntemplate" not in out and
               len(recs) == 1 and recs[0].get("state") == "cancelled", (out, recs))
    rec.pop("outputTemp", None)
    rec["outcome"] = None
    # A malformed record: its keyId kept so its owner sees it.
    bad = int(R.cli("INCR", pre + K["JOB_LASTID"]))
    R.cli("HSET", pre + K["JOBS_LIVE"], bad, '{"id":%d,"keyId":"%s","name": broken' % (bad, rec.get("keyId", "")))
    R.cli("ZADD", pre + K["JOBS_LIVE_IDS"], bad, bad)
    R.cli("RPUSH", pre + K["QUEUE_PENDING"], bad)
    after = submit(svc, "stuck", {"Makefile": makefile("echo after-bad")}, "after.out", timeout=20)
    recs = wait_for(lambda: dead_record(svc, bad), 20)
    tlib.check("malformed record: in /jobs/KEY/1/ as dead-letter",
               len(recs) == 1 and recs[0].get("state") == "dead-letter", recs)
    tlib.check("malformed record: a clear trace line",
               recs and any("Record unreadable" in t for t in recs[0].get("trace", [])), recs)
    tlib.check("malformed record: raw text kept in jobs:deadletter",
               "broken" in R.cli("HGET", pre + K["DEADLETTER"], bad))
    out = wait_output(svc, "stuck", "after.out", 30)
    tlib.check("malformed record: the queue keeps moving", out is not None and b"after-bad" in out, out)
    tlib.check("malformed record: not left in the live set",
               R.cli("HEXISTS", pre + K["JOBS_LIVE"], bad) == "0")
    svc.consumers[leader].kill(signal.SIGKILL)
    del after


def main():
    cb = tjobs.CallbackReceiver()
    try:
        with tlib.Service(producers=1) as svc:
            takeover_keeps_runs(svc, cb, config(svc), "localDocker", "keep")
            for c in svc.consumers:
                c.kill(signal.SIGKILL)
            stale_leader(svc)
            clock_skew(svc)
            stuck_and_malformed(svc)
        with fleet.Fleet(2) as f, tlib.Service(producers=1) as svc:
            from test_distdocker import consumer_config as dd_config
            dd = f.distdocker_config(max_jobs=3)
            takeover_keeps_runs(svc, cb, config(svc, dd_config(svc, dd)), "distDocker", "ddkeep")
            for c in svc.consumers:
                c.kill(signal.SIGKILL)
    finally:
        cb.close()
    tlib.done()


if __name__ == "__main__":
    main()
