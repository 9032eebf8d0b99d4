"""Never lose a job: a hot standby takes over from a SIGKILLed leader, a
SIGTERM drain hands work over cleanly, and Redis restarts with AOF lose
nothing. Real Redis, producers, two consumers, Docker."""
import os
import re
import signal
import subprocess
import time

import tjobs
import tlib
from test_e2e_localdocker import PREFIX, consumer_config, our_containers
from tjobs import makefile, submit, wait_output


def leader_index(svc):
    """Which consumer holds the leader lease (by its log)."""
    for i, c in enumerate(svc.consumers):
        if c.proc and c.proc.poll() is None and "leader_acquired" in c.logtext():
            return i
    return None


wait_for = tlib.wait_for


def running(svc, job_id):
    """Whether the job's run has started (its trace says the input is in)."""
    try:
        job = svc.get("/job/%s/%d/" % (svc.key, job_id)).json().get("job") or {}
    except ValueError:
        return False
    return any("Input copied for job" in t for t in job.get("trace", []))


def dead_ids(svc):
    jobs = svc.get("/jobs/%s/1/" % svc.key).json()["jobs"]
    return [j["id"] for j in jobs]


def standby_takeover(svc, cb):
    lease_ms = 2000
    cfg = consumer_config(svc, extra={"lease_ms": lease_ms, "max_jobs": 2})
    svc.start_consumer(cfg)
    wait_for(lambda: leader_index(svc) is not None, 10)
    svc.start_consumer(cfg)
    first = wait_for(lambda: leader_index(svc) is not None, 10)
    tlib.check("one consumer becomes leader", first is not None)
    leader = leader_index(svc)
    standby = 1 - leader
    # Jobs that take a while, so the leader dies mid-run.
    ids = []
    for i in range(6):
        r = submit(svc, "fo", {"Makefile": makefile("sleep 2\necho done %d" % i)}, "fo%d.out" % i,
                   timeout=30, callback_url=cb.url("fo%d" % i))
        ids.append(r["jobId"])
    wait_for(lambda: any(running(svc, i) for i in ids), 20)
    t_kill = time.time()
    dead_token = re.findall(r"event=started token=(\w+)", svc.consumers[leader].logtext())[-1]
    svc.consumers[leader].kill(signal.SIGKILL)
    took_over = wait_for(lambda: "leader_acquired" in svc.consumers[standby].logtext(), lease_ms / 1000 * 3 + 5)
    t_over = time.time() - t_kill
    tlib.check("standby takes over within the lease time", took_over and t_over < lease_ms / 1000 * 2 + 2,
               "%.1fs" % t_over)
    print("# takeover after SIGKILL: %.2fs (lease %d ms)" % (t_over, lease_ms))
    outs = [wait_output(svc, "fo", "fo%d.out" % i, 90) for i in range(6)]
    ok = sum(1 for i, o in enumerate(outs) if o and b"done %d" % i in o and b"Success" in o)
    tlib.check("every job completes after the takeover", ok == 6, "%d of 6" % ok)
    wait_for(lambda: len(set(ids) & set(dead_ids(svc))) == 6, 30)
    dead = dead_ids(svc)
    tlib.check("each job dead exactly once", all(dead.count(i) == 1 for i in ids), dead)
    live = svc.get("/jobs/%s/0/" % svc.key).json()["jobs"]
    tlib.check("no job left live", not [j for j in live if j["id"] in ids], live)
    counts = [len(cb.wait("fo%d" % i, 30)) for i in range(6)]
    tlib.check("every callback arrived", all(c >= 1 for c in counts), counts)
    print("# callbacks per job: %s (duplicates allowed only for jobs finished at the kill)" % counts)
    tlib.check("no job's callback more than twice", all(c <= 2 for c in counts), counts)
    of_dead = lambda: [n for n in our_containers() if n.endswith("-" + dead_token)]
    wait_for(lambda: not of_dead(), 20)
    tlib.check("no container of the dead leader left", not of_dead(), of_dead())
    return standby


def drain(svc, standby):
    r = submit(svc, "dr", {"Makefile": makefile("sleep 3\necho drained-ok")}, "dr.out", timeout=30)
    wait_for(lambda: running(svc, r["jobId"]), 20)
    t0 = time.time()
    rc = svc.consumers[standby].stop(60)
    tlib.check("SIGTERM drain exits 0", rc == 0, rc)
    out = wait_output(svc, "dr", "dr.out", 5)
    tlib.check("drain finished the running job first", out is not None and b"drained-ok" in out, out)
    print("# drain with one running job took %.1fs" % (time.time() - t0))
    leader_key = svc.redis.cli("GET", svc.prefix + "consumer:leader")
    tlib.check("drained consumer released the leader lease", leader_key == "", leader_key)


def redis_restart(svc, cb):
    cfg = consumer_config(svc, extra={"lease_ms": 2000})
    svc.start_consumer(cfg)
    ids = []
    for i in range(4):
        r = submit(svc, "rr", {"Makefile": makefile("sleep 1\necho rr %d" % i)}, "rr%d.out" % i, timeout=30)
        ids.append(r["jobId"])
    time.sleep(1.5)  # let AOF fsync (everysec)
    svc.redis.stop()
    svc.redis.start()
    outs = [wait_output(svc, "rr", "rr%d.out" % i, 90) for i in range(4)]
    ok = sum(1 for i, o in enumerate(outs) if o and b"rr %d" % i in o)
    tlib.check("Redis restart (AOF): every job completes", ok == 4, "%d of 4" % ok)
    r = submit(svc, "rr", {"Makefile": makefile("echo after")}, "after.out", timeout=30)
    tlib.check("service accepts jobs after the Redis restart", r.get("statusId") == 0, r)
    tlib.check("job after the restart runs", wait_output(svc, "rr", "after.out", 60) is not None)
    rc = svc.consumers[-1].stop(60)
    tlib.check("consumer exits 0 after Redis restart", rc == 0, rc)


def stale_pool(svc):
    """A warm container killed from outside is dropped when a job takes it:
    the job still succeeds, with no retry spent."""
    cfg = consumer_config(svc, extra={"auto_pool_max": 0})
    c = svc.start_consumer(cfg)
    r = svc.post("/prealloc/%s/autograding_image/1/" % svc.key).json()
    tlib.check("prealloc 1 accepted", r.get("statusId") == 0, r)
    free = wait_for(lambda: (svc.get("/pool/%s/autograding_image/" % svc.key).json()
                             .get("pools", {}).get("autograding_image", {}).get("free")), 30)
    tlib.check("warm container ready", bool(free), free)
    if free:
        subprocess.run(["docker", "kill", free[0]], capture_output=True)
    r = submit(svc, "sp", {"Makefile": makefile("echo after-stale")}, "sp.out", timeout=30)
    out = wait_output(svc, "sp", "sp.out", 60)
    tlib.check("job after a dead warm container succeeds", out is not None and b"after-stale" in out
               and b"Success" in out, out)
    j = svc.get("/job/%s/%d/" % (svc.key, r["jobId"])).json()
    tlib.check("no retry spent on the dead warm container", j.get("job", {}).get("retries") == 0, j)
    log = c.logtext()
    tlib.check("the stale container was noticed", "pool_vm_stale" in log,
               [l for l in log.splitlines() if "pool" in l or "job_start" in l][-6:])
    svc.post("/prealloc/%s/autograding_image/0/" % svc.key)
    rc = c.stop(60)
    tlib.check("consumer exits 0 after the stale-pool case", rc == 0, rc)
    svc.consumers.clear()


def main():
    cb = tjobs.CallbackReceiver()
    with tlib.Service(producers=1, appendonly=True) as svc:
        try:
            standby = standby_takeover(svc, cb)
            drain(svc, standby)
            redis_restart(svc, cb)
            stale_pool(svc)
        finally:
            for c in svc.consumers:
                c.stop(60)
            svc.consumers.clear()
        left = wait_for(lambda: not our_containers(), 20)
        tlib.check("no container of our prefix left at the end", not our_containers(), our_containers())
    cb.close()
    tlib.done()


if __name__ == "__main__":
    main()
