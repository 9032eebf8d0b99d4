"""Issue 13 part 1: fair share and priorities, end to end against real Redis,
a real producer and real localDocker consumers (jobs of about 1 s).

  - 200 jobs of course A submitted at once (leasing paused, so the queue is
    all there), then one of course B; max_jobs 2: B's job is leased within
    one job slot (at most one A job before it), A's jobs are leased in
    FIFO order, and every job's queuePosition (read while paused) is its
    real place in the lease order; a job started in its container in that
    order too (the grader prints the time it started).
  - pause: while control:paused exists nothing is leased; deleting it
    resumes.
  - takeover mid-burst: kill -9 the leader; the standby takes over and the
    rule still holds (A stays FIFO; a new course's job comes within one
    slot).
  - a low-priority burst (priority_rules: "*-regrade" is low) does not
    delay a normal job of the same course by more than one slot.
  - addJob: a bad priority and a full queue (max_queued_per_course) are
    refused with -1 and a message naming the field / the limit.
  - a second consumer config: max_running_per_course 1 (never two jobs of
    one course running at once, read from the graders' start and end
    times) and max_wait_s 2 (a low job queued longer is promoted: leased
    first instead of after six normal jobs).
"""
import json
import re
import signal
import time

import tlib
from test_e2e_localdocker import consumer_config
from tjobs import makefile

K = tlib.KEYS
wait_for = tlib.wait_for
GRADER = makefile("echo start $$(date +%s.%N)\nsleep 1\necho end $$(date +%s.%N)")


def leased_ids(proc):
    return [int(m) for m in re.findall(r"event=job_leased id=(\d+)", proc.logtext())]


def all_leased(svc):
    out = []
    for c in svc.consumers:
        out += leased_ids(c)
    return out


def prepare(svc, lab):
    svc.open(lab)
    r = svc.upload(lab, "grader.mk", GRADER)
    assert r["statusId"] == 0, r


def add(svc, lab, out, port=None, **extra):
    body = {"image": "autograding_image", "jobName": out, "output_file": out, "timeout": 30,
            "files": [{"localFile": "grader.mk", "destFile": "Makefile"}]}
    body.update(extra)
    return svc.add_job(lab, body, port=port)


def job(svc, jid):
    return svc.get("/job/%s/%d/" % (svc.key, jid)).json()


def pause(svc, on):
    R = svc.redis
    if on:
        R.cli("SET", svc.prefix + K["PAUSED"], '{"by":"test_fairshare"}')
    else:
        R.cli("DEL", svc.prefix + K["PAUSED"])


def start_time(svc, lab, out):
    r = svc.poll(lab, out)
    if r.header("Content-Type") != "application/octet-stream":
        return None
    m = re.search(rb"start (\d+\.\d+)", r.body)
    e = re.search(rb"end (\d+\.\d+)", r.body)
    return (float(m.group(1)), float(e.group(1))) if m and e else None


def leader_of(svc):
    for i, c in enumerate(svc.consumers):
        if c.proc and c.proc.poll() is None and "leader_acquired" in c.logtext():
            return i
    return None


def cancel_all(svc, ids):
    for jid in ids:
        svc.post("/cancel/%s/%d/" % (svc.key, jid))


def live_count(svc):
    return int(svc.redis.cli("HLEN", svc.prefix + K["JOBS_LIVE"]))


def phase_one(svc):
    cfg = consumer_config(svc, extra={"max_jobs": 2, "max_jobs_per_image": 2, "lease_ms": 2000,
                                      "sweep_interval_ms": 500, "auto_pool_max": 0, "metrics_port": 0,
                                      "max_wait_s": 0})
    pause(svc, True)
    svc.start_consumer(cfg)
    tlib.check("a leader is elected", wait_for(lambda: leader_of(svc) is not None, 15))
    svc.start_consumer(cfg)
    wait_for(lambda: "event=started" in svc.consumers[1].logtext(), 10)
    for lab in ("courseA-lab1", "courseB-lab1", "courseE-lab1", "courseC-regrade",
                "courseC-lab2"):
        prepare(svc, lab)
    t0 = time.time()
    a_ids = [add(svc, "courseA-lab1", "a%03d.out" % i)["jobId"] for i in range(200)]
    b_id = add(svc, "courseB-lab1", "b.out")["jobId"]
    print("# 201 jobs added in %.1f s" % (time.time() - t0))
    tlib.check("burst: every job added", all(isinstance(i, int) for i in a_ids + [b_id]))
    # Paused: nothing is leased (watched for 1.5 s: three control checks).
    tlib.check("pause: nothing leased while control:paused exists",
               not wait_for(lambda: all_leased(svc), 1.5))
    pos = {jid: job(svc, jid)["queuePosition"] for jid in a_ids[:12] + [b_id]}
    tlib.check("queuePosition: B's job is second (one A job ahead of it)", pos[b_id] == 2, pos[b_id])
    tlib.check("queuePosition: A's first jobs 1, 3, 4, ...",
               [pos[j] for j in a_ids[:5]] == [1, 3, 4, 5, 6], [pos[j] for j in a_ids[:5]])
    pause(svc, False)
    tlib.check("pause: deleting the key resumes leasing",
               wait_for(lambda: len(all_leased(svc)) >= 8, 30), all_leased(svc))
    order = all_leased(svc)
    tlib.check("fair share: B's job leased within one job slot (at most one A job before it)",
               b_id in order[:2], order[:4])
    a_order = [j for j in order if j in set(a_ids)]
    tlib.check("fair share: A's jobs leased in FIFO order", a_order == sorted(a_order), a_order)
    placed = [(order.index(j) + 1, pos[j]) for j in pos if j in order]
    tlib.check("queuePosition matches the real lease order",
               len(placed) >= 8 and all(a == b for a, b in placed), placed)
    starts = {}
    wait_for(lambda: all(start_time(svc, "courseA-lab1", "a%03d.out" % i) for i in range(3)), 30)
    for i in range(3):
        starts[a_ids[i]] = start_time(svc, "courseA-lab1", "a%03d.out" % i)
    sb = wait_for(lambda: start_time(svc, "courseB-lab1", "b.out"), 30)
    tlib.check("fair share: B's grader started before A's third",
               sb and starts.get(a_ids[2]) and sb[0] < starts[a_ids[2]][0], (sb, starts))

    # Takeover mid-burst.
    leader = leader_of(svc)
    before = len(all_leased(svc))
    svc.consumers[leader].kill(signal.SIGKILL)
    standby = 1 - leader
    tlib.check("takeover: the standby becomes leader",
               wait_for(lambda: "leader_acquired" in svc.consumers[standby].logtext(), 15))
    tlib.check("takeover: the standby leases",
               wait_for(lambda: len(leased_ids(svc.consumers[standby])) >= 2, 20))
    e_id = add(svc, "courseE-lab1", "e.out")["jobId"]
    n_at_e = len(leased_ids(svc.consumers[standby]))
    tlib.check("takeover: a new course's job is leased within one slot",
               wait_for(lambda: e_id in leased_ids(svc.consumers[standby])[n_at_e:n_at_e + 2], 30),
               leased_ids(svc.consumers[standby])[n_at_e - 2:n_at_e + 4])
    # Jobs the dead leader had leased come back at the head of A at the
    # next sweep (possibly after a lease or two of newer ones); every other
    # A job is leased in FIFO order.
    was = set(leased_ids(svc.consumers[leader]))
    after = [j for j in leased_ids(svc.consumers[standby]) if j in set(a_ids) and j not in was]
    tlib.check("takeover: A stays FIFO on the new leader", after == sorted(after), after)
    print("# %d leases before the kill" % before)

    # A low-priority burst of course C and then one normal job of C.
    lows = [add(svc, "courseC-regrade", "low%02d.out" % i)["jobId"] for i in range(10)]
    norm_at = len(leased_ids(svc.consumers[standby]))
    n_id = add(svc, "courseC-lab2", "normal.out")["jobId"]
    tlib.check("priority_rules: the regrade lab's jobs are low",
               job(svc, lows[0])["job"].get("priority") == "low", job(svc, lows[0])["job"].get("priority"))
    # A's queue is still full: the normal job competes with A round-robin,
    # the low ones wait for both.
    got = wait_for(lambda: n_id in leased_ids(svc.consumers[standby])[norm_at:norm_at + 2], 30)
    tlib.check("a low burst does not delay a normal job by more than one slot", got,
               leased_ids(svc.consumers[standby])[norm_at - 2:norm_at + 4])
    tlib.check("low jobs wait while normal ones are queued",
               not any(j in lows for j in leased_ids(svc.consumers[standby])))
    # Enough: cancel every job still live, wait until nothing is.
    cancel_all(svc, a_ids + lows)
    tlib.check("cancelled the rest of the burst: nothing left live",
               wait_for(lambda: live_count(svc) == 0, 90), live_count(svc))
    svc.consumers[standby].kill(signal.SIGKILL)


def phase_two(svc):
    cfg = consumer_config(svc, extra={"max_jobs": 2, "max_jobs_per_image": 2, "lease_ms": 2000,
                                      "sweep_interval_ms": 500, "auto_pool_max": 0, "metrics_port": 0,
                                      "max_wait_s": 2, "max_running_per_course": 1})
    pause(svc, True)
    c = svc.start_consumer(cfg)
    tlib.check("second consumer: leader", wait_for(lambda: "leader_acquired" in c.logtext(), 15))
    for lab in ("courseF-lab1", "courseG-lab1", "courseH-lab1", "courseI-lab1", "courseJ-lab1",
                "courseQ-lab1"):
        prepare(svc, lab)

    # Upgrade: a job queued the old way (the single queue:pending, a record
    # without priority or shareGroup) is moved into its course's queue by
    # the leader's sweep (paused or not), and runs like the others.
    prepare(svc, "courseK-lab1")
    legacy = add(svc, "courseK-lab1", "k.out")["jobId"]
    R, pre = svc.redis, svc.prefix
    R.cli("LREM", pre + K["QUEUE_CLASS"] + "normal:courseK", 0, legacy)
    R.cli("LREM", pre + K["QUEUE_RING"] + "normal", 0, "courseK")
    R.cli("HDEL", pre + K["QUEUE_SCHED"], legacy)
    R.cli("HDEL", pre + K["QUEUE_SINCE"], legacy)
    rec = json.loads(R.cli("HGET", pre + K["JOBS_LIVE"], legacy))
    rec.pop("priority", None)
    rec.pop("shareGroup", None)
    R.cli("HSET", pre + K["JOBS_LIVE"], legacy, json.dumps(rec, separators=(",", ":")))
    R.cli("RPUSH", pre + K["QUEUE_PENDING"], legacy)
    tlib.check("upgrade: an older version's queue:pending is drained into the course queues",
               wait_for(lambda: R.cli("LLEN", pre + K["QUEUE_PENDING"]) == "0" and
                        R.cli("HGET", pre + K["QUEUE_SCHED"], legacy) == "normal:courseK", 10),
               (R.cli("LLEN", pre + K["QUEUE_PENDING"]), R.cli("HGET", pre + K["QUEUE_SCHED"], legacy)))
    tlib.check("upgrade: the migrated job keeps its queue position",
               job(svc, legacy).get("queuePosition") == 1, job(svc, legacy))

    # addJob refusals.
    r = add(svc, "courseF-lab1", "bad.out", priority="urgent")
    tlib.check("addJob: a bad priority answers -1 naming the field",
               r.get("statusId") == -1 and "priority" in r.get("statusMsg", ""), r)

    # Promotion: one low job queued (paused) until it has waited max_wait_s,
    # then three normal jobs each of two other courses (with the cap of 1
    # per course both slots stay busy with them); on resume the low one is
    # promoted (to normal: its course joins the normal ring after I and J)
    # and leased third, not after the six.
    low = add(svc, "courseH-lab1", "h.out", priority="low")["jobId"]
    since = svc.redis.cli("HGET", svc.prefix + K["QUEUE_SINCE"], low)
    tlib.check("the low job's queue time is recorded (Redis time)", since.isdigit(), since)
    tlib.check("the low job is queued as low in its course's queue",
               svc.redis.cli("HGET", svc.prefix + K["QUEUE_SCHED"], low) == "low:courseH",
               svc.redis.cli("HGET", svc.prefix + K["QUEUE_SCHED"], low))

    def waited():
        t = svc.redis.cli("TIME").split()
        return int(t[0]) * 1000 + int(t[1]) // 1000 - int(since) > 2200
    wait_for(waited, 10)
    norms = [add(svc, "course%s-lab1" % ("IJ"[i % 2]), "%s%d.out" % ("ij"[i % 2], i // 2))["jobId"]
             for i in range(6)]
    base = len(leased_ids(c))
    pause(svc, False)
    tlib.check("promotion: the low job ran", wait_for(
        lambda: start_time(svc, "courseH-lab1", "h.out"), 60))
    order = [j for j in leased_ids(c)[base:] if j != legacy]
    tlib.check("upgrade: the migrated job ran", wait_for(
        lambda: start_time(svc, "courseK-lab1", "k.out"), 30))
    # Unpromoted it would be leased 7th, after the six normal jobs. Promoted
    # it is 3rd when the normal jobs run at once; on a loaded machine they
    # also wait past max_wait_s and move up to high ahead of it (each class
    # costs another max_wait_s), so what is certain is "before the last".
    tlib.check("max_wait_s: the low job, promoted, is leased before the six normal ones are "
               "(3rd when nothing else ages)", low in order[:6], order)
    tlib.check("promotion counted", int(svc.redis.cli("HGET", svc.prefix + K["COUNTERS"],
                                                      "job_promotions") or 0) >= 1)
    i_jobs = [j for j in order if j in norms[0::2]]
    j_jobs = [j for j in order if j in norms[1::2]]
    tlib.check("courses I and J stay FIFO (promoted one by one as they age)",
               i_jobs == sorted(i_jobs) and j_jobs == sorted(j_jobs), (i_jobs, j_jobs))

    # Caps: course F gets four jobs and G two while I's are still going.
    fs = [add(svc, "courseF-lab1", "f%d.out" % i)["jobId"] for i in range(4)]
    gs = [add(svc, "courseG-lab1", "g%d.out" % i)["jobId"] for i in range(2)]
    tlib.check("every job ran", wait_for(lambda: all(
        start_time(svc, "courseF-lab1", "f%d.out" % i) for i in range(4)) and all(
        start_time(svc, "course%s-lab1" % c.upper(), "%s%d.out" % (c, i))
        for c in "ij" for i in range(3)) and all(
        start_time(svc, "courseG-lab1", "g%d.out" % i) for i in range(2)), 90))
    spans = {"F": [start_time(svc, "courseF-lab1", "f%d.out" % i) for i in range(4)],
             "I": [start_time(svc, "courseI-lab1", "i%d.out" % i) for i in range(3)],
             "J": [start_time(svc, "courseJ-lab1", "j%d.out" % i) for i in range(3)]}
    for course, sp in spans.items():
        sp = sorted(s for s in sp if s)
        overlap = any(sp[k + 1][0] < sp[k][1] for k in range(len(sp) - 1))
        tlib.check("max_running_per_course 1: course %s never ran two jobs at once" % course,
                   len(sp) >= 3 and not overlap, sp)
    every = sorted(s for s in (spans["F"] + spans["I"] + spans["J"]) if s)
    tlib.check("two courses ran side by side (the cap is per course)",
               any(every[k + 1][0] < every[k][1] for k in range(len(every) - 1)), every)

    # max_queued_per_course (a producer with its own limit).
    pause(svc, True)
    small = svc.start_producer({"max_queued_per_course": 3})
    qs = [add(svc, "courseQ-lab1", "q%d.out" % i, port=small.port) for i in range(4)]
    tlib.check("max_queued_per_course: the first 3 are accepted",
               all(q.get("statusId") == 0 for q in qs[:3]), qs[:3])
    tlib.check("max_queued_per_course: the 4th answers -1 naming the limit",
               qs[3].get("statusId") == -1 and "max_queued_per_course (3)" in qs[3].get("statusMsg", ""),
               qs[3])
    cancel_all(svc, [q["jobId"] for q in qs[:3]])
    pause(svc, False)
    tlib.check("nothing left live", wait_for(lambda: live_count(svc) == 0, 30), live_count(svc))
    tlib.check("running counts back to zero", wait_for(
        lambda: svc.redis.cli("HLEN", svc.prefix + K["RUNNING_COUNT"]) == "0", 20),
        svc.redis.cli("HGETALL", svc.prefix + K["RUNNING_COUNT"]))
    tlib.check("no running-count correction was ever needed",
               "running_recounted" not in "".join(p.logtext() for p in svc.consumers))
    del fs, gs


def main():
    with tlib.Service(producers=1, config={"priority_rules": [{"lab": "*-regrade", "class": "low"}]}) as svc:
        phase_one(svc)
        phase_two(svc)
    tlib.done()


if __name__ == "__main__":
    main()
