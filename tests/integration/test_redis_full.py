"""Redis refuses writes (issue 19.5), on the test's own redis-server:
- at maxmemory under noeviction, /health turns 503 "redis": "not writable"
  naming OOM, addJob answers -1 naming the cause (nothing lost: the jobs
  added before are all there, reads still answer), and once memory is freed
  /health is 200 again by itself within a deadline and addJob works;
- /health's write probe is cached: a burst of probes makes at most a few
  writes to Redis;
- an evicting maxmemory-policy (allkeys-*, volatile-*) is refused at start
  by the producer and the consumer (exit 2, naming the policy and the way
  out), and a producer started with redis_allow_eviction true runs, warning
  once."""
import json
import os
import subprocess

import tlib

K = tlib.KEYS


def job(name):
    return {"image": "autograding_image", "jobName": name, "output_file": name + ".out",
            "files": [{"localFile": "Makefile", "destFile": "Makefile"}]}


def used_memory(redis):
    for line in redis.cli("INFO", "memory").splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    return 0


def set_calls(redis):
    """SETs Redis was sent: run, and refused (OOM) ones."""
    for line in redis.cli("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_set:"):
            f = dict(kv.split("=") for kv in line.split(":", 1)[1].split(","))
            return int(f.get("calls", 0)) + int(f.get("rejected_calls", 0))
    return 0


def health(svc):
    r = svc.get("/health")
    return r.status, r.json()


def start_refused(svc, binary, extra):
    """Runs a service that should refuse to start; (exit code, stderr)."""
    path = svc.write_config(dict(extra, port=tlib.free_port(), bind="127.0.0.1"))
    try:
        p = subprocess.run([os.path.join(tlib.BUILD, binary), "-c", path], env=svc.env(),
                           capture_output=True, text=True, timeout=20)
        return p.returncode, p.stderr
    except subprocess.TimeoutExpired:
        return "still running after 20 s", ""


with tlib.Service() as svc:
    R = svc.redis
    svc.open("lab")
    svc.upload("lab", "Makefile", b"all:\n\techo ok\n")
    ids = [svc.add_job("lab", job("before%d" % i)).get("jobId") for i in range(3)]
    st, d = health(svc)
    tlib.check("health 200 up before", st == 200 and d.get("redis") == "up", d)

    # --- fill Redis to maxmemory (noeviction)
    R.cli("CONFIG", "SET", "maxmemory-policy", "noeviction")
    R.cli("EVAL", "redis.call('SET', KEYS[1], string.rep('x', tonumber(ARGV[1]))) return 1",
          1, "filler", 4 * 1024 * 1024)
    R.cli("CONFIG", "SET", "maxmemory", used_memory(R) - 1024 * 1024)
    full = R.cli("SET", "probe-by-test", "1")
    tlib.check("fixture: Redis refuses writes (OOM)", full.startswith("OOM"), full)

    got = tlib.wait_for(lambda: health(svc)[0] != 200 and health(svc), 5)
    st, d = got if got else health(svc)
    tlib.check("full: /health 503 'not writable' naming OOM",
               st == 503 and d.get("statusId") == -1 and d.get("redis") == "not writable" and
               "OOM" in d.get("statusMsg", "") and "maxmemory" in d.get("statusMsg", ""),
               (st, d))
    d = svc.add_job("lab", job("full"))
    tlib.check("full: addJob -1 naming the cause (Redis refuses writes: OOM ... maxmemory)",
               d.get("statusId") == -1 and "refuses writes" in d.get("statusMsg", "") and
               "OOM" in d.get("statusMsg", "") and "maxmemory" in d.get("statusMsg", ""), d)
    d = svc.get("/jobs/%s/0/" % svc.key).json()
    tlib.check("full: reads still answer, nothing lost",
               [j["id"] for j in d.get("jobs", [])] == ids, d)
    log = svc.producers[0].logtext()
    tlib.check("full: logged once as redis_refuses_writes",
               log.count("redis_refuses_writes") == 1, log.count("redis_refuses_writes"))

    # --- the probe is cached: a burst of /health makes few writes
    before = set_calls(R)
    for _ in range(50):
        svc.get("/health")
    tlib.check("full: 50 /health probes try at most a few SETs (cached about 1 s)",
               set_calls(R) - before <= 5, set_calls(R) - before)

    # --- memory freed: recovers by itself
    R.cli("DEL", "filler")
    back = tlib.wait_for(lambda: health(svc)[0] == 200, 5)
    st, d = health(svc)
    tlib.check("freed: /health 200 up again within 5 s", back and d.get("redis") == "up", d)
    d = svc.add_job("lab", job("after"))
    tlib.check("freed: addJob works", d.get("statusMsg") == "Job added", d)
    before = set_calls(R)
    for _ in range(50):
        svc.get("/health")
    tlib.check("freed: 50 /health probes make at most a few SETs", set_calls(R) - before <= 5,
               set_calls(R) - before)
    tlib.check("freed: logged redis_takes_writes",
               "redis_takes_writes" in svc.producers[0].logtext())
    R.cli("CONFIG", "SET", "maxmemory", 0)

    # --- an evicting maxmemory-policy at start
    for policy in ("allkeys-lru", "volatile-ttl"):
        R.cli("CONFIG", "SET", "maxmemory-policy", policy)
        rc, err = start_refused(svc, "tango-producer", {})
        tlib.check("producer refuses maxmemory-policy %s: exit 2 naming it" % policy,
                   rc == 2 and ("maxmemory-policy is %s" % policy) in err and
                   "noeviction" in err and "redis_allow_eviction" in err, (rc, err))
    rc, err = start_refused(svc, "tango-consumer", {})
    tlib.check("consumer refuses an evicting policy: exit 2 naming it",
               rc == 2 and "maxmemory-policy is volatile-ttl" in err, (rc, err))
    p = svc.start_producer({"redis_allow_eviction": True})
    st = svc.get("/health", port=p.port).status
    tlib.check("redis_allow_eviction true: the producer runs, /health 200", st == 200, st)
    d = svc.add_job("lab", job("allowed"), port=p.port)
    tlib.check("redis_allow_eviction true: addJob works", d.get("statusMsg") == "Job added", d)
    log = p.logtext()
    tlib.check("redis_allow_eviction true: warned once (redis_eviction_allowed)",
               log.count("redis_eviction_allowed") == 1 and "volatile-ttl" in log,
               log.count("redis_eviction_allowed"))
    # the running producer's next connection is refused too (not at start only)
    R.cli("CLIENT", "KILL", "TYPE", "normal")
    st, d = health(svc)
    tlib.check("a running producer reconnecting to an evicting Redis: /health 503 down",
               st == 503 and d.get("redis") == "down", (st, d))
    R.cli("CONFIG", "SET", "maxmemory-policy", "noeviction")
    tlib.check("policy back to noeviction: /health 200 again",
               tlib.wait_for(lambda: health(svc)[0] == 200, 5))

tlib.done()
