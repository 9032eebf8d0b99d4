"""Callbacks when receivers are slow or hang (issue 19 point 4). Real Redis,
producer and consumer; callback entries are seeded into callbacks:due the
way a job's end queues them (so a hundred need no hundred jobs), plus one
end-to-end run of real jobs through localDocker.

- a receiver taking 1 s per request gets 100 callbacks within a few
  seconds (several in flight, at most callback_max_per_host at once);
- a receiver that accepts and never answers delays no other host, and its
  breaker opens: each grade reaches it once, not again and again;
- every callback carries X-Tango-Job-Id, X-Tango-Callback-Id and
  X-Tango-Callback-Attempt (a retry: the same id, the next attempt);
- a consumer killed with callbacks in flight loses none: the next one
  sends them (claimed entries stay in Redis, hidden, until delivered);
- a consumer stopped (SIGTERM) lets its callbacks in flight finish and
  hands the ones it held back to Redis, due at once.
Prints the measured figures as "# ..." lines."""
import json
import os
import re
import socket
import threading
import time

import tjobs
import tlib
from test_e2e_localdocker import consumer_config
from tjobs import makefile, submit

PER_HOST = 16          # callback_max_per_host's default
BREAKER_FAILURES = 5   # callback_breaker_failures' default
DUE = tlib.KEYS["CALLBACKS_DUE"]
FAILED = tlib.KEYS["CALLBACKS_FAILED"]
WAKE = tlib.KEYS["CALLBACKS_WAKE"]


class HangingReceiver:
    """Accepts connections and reads requests but never answers; records
    each request's headers (lower-case names) as it arrives."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        self.conns = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
        except OSError:
            return
        lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        headers = dict((k.strip().lower(), v.strip()) for k, v in
                       (l.split(":", 1) for l in lines[1:] if ":" in l))
        path = (lines[0].split(" ") + ["", ""])[1]
        with self.lock:
            self.requests.append({"t": time.time(), "headers": headers, "path": path})
        # and never answer: the connection stays open until close()

    def url(self, tag):
        return "http://127.0.0.1:%d/cb/%s" % (self.port, tag)

    def close(self):
        self.closed = True
        self.sock.close()
        with self.lock:
            for c in self.conns:
                c.close()


def seed(svc, url_of, jobs, score):
    """Queues one callback entry per job id, as a job's end does (the same
    fields; its output file written first). Returns the entries' ids."""
    outdir = os.path.join(svc.tmp, "seeded")
    os.makedirs(outdir, exist_ok=True)
    args = []
    for j in jobs:
        path = os.path.join(outdir, "j%d.out" % j)
        with open(path, "wb") as f:
            f.write(b"grade of job %d\n" % j)
        entry = {"attempts": 0, "id": "%d-1" % j, "job": j, "name": "j%d.out" % j,
                 "path": path, "url": url_of(j)}
        args += [score, json.dumps(entry, sort_keys=True, separators=(",", ":"))]
    svc.redis.cli("ZADD", svc.prefix + DUE, *args)
    svc.redis.cli("RPUSH", svc.prefix + WAKE, "seeded")


def wait_leader(proc):
    return tlib.wait_for(lambda: "leader_acquired" in proc.logtext(), 30)


def headers_ok(h, job, attempt):
    """The dedupe headers a callback for job must carry."""
    return (h.get("x-tango-job-id") == str(job) and h.get("x-tango-callback-id") == "%d-1" % job
            and h.get("x-tango-callback-attempt") == str(attempt))


def job_of(call):
    """The seeded job a request is for (its URL ends in the job id)."""
    return int(re.search(r"(\d+)$", call["path"]).group(1))


def slow_receiver():
    cb = tjobs.CallbackReceiver(delay=1.0)
    with tlib.Service() as svc:
        c = svc.start_consumer(consumer_config(svc))
        tlib.check("slow: the consumer leads", wait_leader(c), c.logtext()[-400:])
        jobs = list(range(1000, 1100))
        t0 = time.time()
        seed(svc, lambda j: cb.url("slow%d" % j), jobs, 1)
        bound = 100.0 / PER_HOST + 4  # rounds of 1 s each, and room for a busy host
        tlib.wait_for(lambda: len(cb.calls) >= 100, bound + 2)
        calls = list(cb.calls)
        got = sorted(job_of(x) for x in calls)
        last = max((x["t"] for x in calls), default=t0) - t0
        print("# slow receiver (1 s each): %d of 100 callbacks, first arrived %.2f s, last "
              "arrived %.2f s after they were queued; at most %d at once (bound %.1f s)" %
              (len(calls), min((x["t"] for x in calls), default=t0) - t0, last,
               cb.max_active, bound), flush=True)
        tlib.check("slow receiver: all 100 callbacks arrive, each once, the last within %.0f s"
                   % bound, got == jobs and last <= bound, (len(got), last))
        tlib.check("slow receiver: at most callback_max_per_host (%d) at once" % PER_HOST,
                   1 <= cb.max_active <= PER_HOST, cb.max_active)
        tlib.check("slow receiver: every callback carries X-Tango-Job-Id, X-Tango-Callback-Id, "
                   "X-Tango-Callback-Attempt: 1",
                   calls and all(headers_ok(x["headers"], job_of(x), 1) for x in calls),
                   [x["headers"] for x in calls[:2]])
        tlib.check("slow receiver: the body is unchanged (multipart part file, Filename header)",
                   all(x["part_name"] == "file" and x["filename_header"] == "j%d.out" % job_of(x)
                       and x["content"] == b"grade of job %d\n" % job_of(x) for x in calls))
    cb.close()


def hanging_receiver():
    hang = HangingReceiver()
    good = tjobs.CallbackReceiver()
    metrics_port = tlib.free_port()
    with tlib.Service() as svc:
        c = svc.start_consumer(consumer_config(svc, extra={
            "callback_timeout_s": 1, "metrics_port": metrics_port, "metrics_bind": "127.0.0.1"}))
        tlib.check("hanging: the consumer leads", wait_leader(c), c.logtext()[-400:])
        hung = list(range(2000, 2000 + BREAKER_FAILURES))
        healthy = list(range(3000, 3020))
        t0 = time.time()
        seed(svc, lambda j: hang.url("h%d" % j), hung, 1)       # due first
        seed(svc, lambda j: good.url("g%d" % j), healthy, 2)
        tlib.wait_for(lambda: len(good.calls) >= len(healthy), 6)
        last = max((x["t"] for x in good.calls), default=t0 + 99) - t0
        print("# hanging receiver ahead of a healthy one: the healthy host's %d callbacks "
              "arrived within %.2f s" % (len(good.calls), last), flush=True)
        tlib.check("hanging receiver delays no other host: the healthy host's 20 callbacks "
                   "arrive within 2 s", len(good.calls) == len(healthy) and last <= 2.0,
                   (len(good.calls), last))
        opened = tlib.wait_for(lambda: "callback_host_open" in c.logtext(), 8)
        scrape = tlib.request(metrics_port, "GET", "/metrics").text if opened else ""
        tlib.check("hanging receiver: its breaker opens, shown in tango_callback_hosts_open",
                   opened and any(l.startswith("tango_callback_hosts_open{") and
                                  l.endswith(" 1") for l in scrape.splitlines()),
                   [l for l in scrape.splitlines() if "callback" in l] or c.logtext()[-400:])
        # watch it for 8 s (the condition is time itself: how often it is sent to)
        tlib.wait_for(lambda: time.time() - t0 >= 8, 10)
        reqs = list(hang.requests)
        per_job = {}
        for r in reqs:
            per_job.setdefault(job_of(r), []).append(r)
        print("# hanging receiver: %d requests in 8 s for %d grades (%s)" %
              (len(reqs), len(hung), sorted(len(v) for v in per_job.values())), flush=True)
        tlib.check("hanging receiver: each grade reaches it once in 8 s (timeout 1 s; the "
                   "breaker opened after %d failures and holds them)" % BREAKER_FAILURES,
                   sorted(per_job) == hung and
                   all(len(v) == 1 for v in per_job.values()), sorted(
                       (k, len(v)) for k, v in per_job.items()))
        tlib.check("hanging receiver: its requests carry the dedupe headers",
                   reqs and all(headers_ok(r["headers"], job_of(r), 1) for r in reqs),
                   [r["headers"] for r in reqs[:2]])
        tlib.check("hanging receiver: nothing given up, its callbacks wait in callbacks:due",
                   svc.redis.cli("LLEN", svc.prefix + FAILED) == "0" and
                   svc.redis.cli("ZCARD", svc.prefix + DUE) == str(len(hung)))
    hang.close()
    good.close()


def crash_midflight():
    cb = tjobs.CallbackReceiver(delay=1.5)
    with tlib.Service() as svc:
        cfg = consumer_config(svc, extra={"callback_timeout_s": 2})
        c = svc.start_consumer(cfg)
        tlib.check("crash: the consumer leads", wait_leader(c), c.logtext()[-400:])
        jobs = list(range(4000, 4030))
        seed(svc, lambda j: cb.url("c%d" % j), jobs, 1)
        busy = tlib.wait_for(lambda: cb.active >= 8, 10)
        in_flight = cb.active
        c.kill()
        answered_before = len(cb.calls)
        c2 = svc.start_consumer(cfg)
        t0 = time.time()
        tlib.check("crash: the next consumer leads", wait_leader(c2), c2.logtext()[-400:])
        done = tlib.wait_for(lambda: svc.redis.cli("ZCARD", svc.prefix + DUE) == "0", 40)
        got = set(job_of(x) for x in cb.calls)
        print("# crash with %d callbacks in flight: %d answered before the kill, all %d "
              "delivered %.1f s after the restart" % (in_flight, answered_before, len(got),
                                                       time.time() - t0), flush=True)
        tlib.check("crash with callbacks in flight: none is lost (the next consumer sends "
                   "every one)", busy and done and got == set(jobs) and
                   svc.redis.cli("LLEN", svc.prefix + FAILED) == "0",
                   (busy, done, sorted(set(jobs) - got)[:5], c2.logtext()[-300:]))
    cb.close()


def stop_midflight():
    cb = tjobs.CallbackReceiver(delay=1.5)
    with tlib.Service() as svc:
        c = svc.start_consumer(consumer_config(svc))
        tlib.check("stop: the consumer leads", wait_leader(c), c.logtext()[-400:])
        jobs = list(range(5000, 5040))
        seed(svc, lambda j: cb.url("s%d" % j), jobs, 1)
        tlib.wait_for(lambda: cb.active >= PER_HOST, 10)
        in_flight = cb.active
        rc = c.stop()
        sent = c.logtext().count("event=callback_sent ")
        left = int(svc.redis.cli("ZCARD", svc.prefix + DUE))
        now_ms = int(svc.redis.cli("TIME").split()[0]) * 1000 + 1000
        due_now = int(svc.redis.cli("ZCOUNT", svc.prefix + DUE, "-inf", now_ms))
        print("# SIGTERM with %d callbacks in flight: %d delivered before the exit, %d left "
              "in callbacks:due, %d of them due at once" % (in_flight, sent, left, due_now),
              flush=True)
        tlib.check("stop with callbacks in flight: they finish and are recorded before the "
                   "exit; the rest are handed back due at once",
                   rc == 0 and in_flight == PER_HOST and sent >= in_flight and
                   sent == len(cb.calls) and left == len(jobs) - sent and due_now == left,
                   (rc, in_flight, sent, len(cb.calls), left, due_now))
    cb.close()


def output_mtime(svc, name):
    for root, _, files in os.walk(svc.courselabs):
        if name in files and os.sep + "output" in root:
            return os.stat(os.path.join(root, name)).st_mtime
    return None


def real_jobs():
    cb = tjobs.CallbackReceiver(delay=1.0)
    n = 16
    with tlib.Service() as svc:
        c = svc.start_consumer(consumer_config(svc))
        tlib.check("e2e: the consumer leads", wait_leader(c), c.logtext()[-400:])
        ids = {}
        for i in range(n):
            d = submit(svc, "fcb", {"Makefile": makefile("echo job %d" % i)}, "f%d.out" % i,
                       timeout=20, callback_url=cb.url("e%d" % i))
            ids[i] = d.get("jobId")
        tlib.wait_for(lambda: len(cb.calls) >= n, 60)
        ends = [output_mtime(svc, "f%d.out" % i) for i in range(n)]
        calls = list(cb.calls)
        if None in ends or len(calls) < n:
            tlib.check("e2e: %d jobs end and their callbacks arrive" % n, False,
                       (ends, len(calls)))
            return
        lag = max(x["t"] for x in calls) - max(ends)
        print("# %d real jobs, receiver 1 s each: the last callback arrived %.2f s after "
              "the last job ended (jobs ran over %.2f s)" % (n, lag, max(ends) - min(ends)),
              flush=True)
        tlib.check("e2e: %d real jobs' callbacks to a 1 s receiver, the last within 2 s of "
                   "the last job's end" % n, lag <= 2.0, lag)
        by_tag = dict((x["path"].rsplit("/", 1)[-1], x) for x in calls)
        tlib.check("e2e: each callback names its job (X-Tango-Job-Id is the addJob jobId)",
                   all(by_tag.get("e%d" % i, {}).get("headers", {}).get("x-tango-job-id") ==
                       str(ids[i]) for i in range(n)), [x["headers"] for x in calls[:1]])
        cb.delay = 0
        cb.fail_first = 1
        d = submit(svc, "fcb", {"Makefile": makefile("echo retried")}, "retry.out",
                   timeout=20, callback_url=cb.url("retry"))
        got = cb.wait("retry", 60)
        tries = [x["headers"] for x in cb.seen if x["path"] == "/cb/retry"]
        tlib.check("e2e: a retry carries the same X-Tango-Callback-Id, attempt 1 then 2",
                   len(got) == 1 and len(tries) == 2 and
                   [h.get("x-tango-callback-attempt") for h in tries] == ["1", "2"] and
                   tries[0].get("x-tango-callback-id") == tries[1].get("x-tango-callback-id")
                   and tries[0].get("x-tango-job-id") == str(d.get("jobId")), tries)
    cb.close()


slow_receiver()
hanging_receiver()
crash_midflight()
stop_midflight()
real_jobs()
tlib.done()
