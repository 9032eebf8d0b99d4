"""Prometheus metrics (docs/operators.md "Metrics") with the real tools: redis-server, a
producer, a consumer on localDocker; one job with a callback; promtool
check metrics on both /metrics answers; a Prometheus server on loopback
scraping both every second, queried through its HTTP API until the job's
end-to-end latency and the addJob request counter show up; the service-wide
counters equal what the test did; the shipped deploy/prometheus/ files pass
promtool (config, rules, rule unit tests) and the alert rules load into the
running server, where TangoNoLeader goes pending once the consumer stops."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse

import sys

import tjobs
import tlib
from tjobs import makefile, submit, wait_output

sys.path.insert(0, os.path.join(tlib.ROOT, "tests", "fleet"))
import fleet  # noqa: E402

PREFIX = "tm%d-" % os.getpid()
LAB = "course1-lab1"  # Autolab's <course>-<assessment>: share group "course1"
DEPLOY = os.path.join(tlib.ROOT, "deploy", "prometheus")


def metrics_text(port, path="/metrics", method="GET"):
    return tlib.request(port, method, path, timeout=10)


def samples(text):
    """{'name{labels}': value} of a text exposition (comments skipped)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out


def promtool_check(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=30)
    return p.returncode == 0, (p.stdout + p.stderr).decode("utf-8", "replace")


def run_tool(*args):
    p = subprocess.run(list(args), capture_output=True, timeout=60, cwd=tlib.ROOT)
    return p.returncode == 0, (p.stdout + p.stderr).decode("utf-8", "replace")


class Prometheus:
    """A real Prometheus server on loopback (temp storage, 1 s scrapes)."""

    def __init__(self, tmp, producer_port, consumer_port):
        self.dir = tempfile.mkdtemp(prefix="prom-", dir=tmp)
        self.port = tlib.free_port()
        shutil.copy(os.path.join(DEPLOY, "alerts.yml"), os.path.join(self.dir, "alerts.yml"))
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [alerts.yml]
scrape_configs:
  - job_name: tango-producer
    honor_labels: true
    static_configs: [{targets: ["127.0.0.1:%d"]}]
  - job_name: tango-consumer
    honor_labels: true
    static_configs: [{targets: ["127.0.0.1:%d"]}]
""" % (producer_port, consumer_port))
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        tlib.wait_port(self.port, timeout=30, proc=self.proc)

    def api(self, path, **params):
        r = tlib.request(self.port, "GET", "/api/v1/%s?%s" % (path, urllib.parse.urlencode(params)),
                         timeout=10)
        if r.status != 200:
            return None
        return r.json().get("data")

    def value(self, query):
        """The first sample's value of an instant query, or None."""
        data = self.api("query", query=query)
        if not data or not data.get("result"):
            return None
        return float(data["result"][0]["value"][1])

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def logtext(self):
        with open(os.path.join(self.dir, "prometheus.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-1500:]


def shipped_files():
    ok, out = run_tool("promtool", "check", "config", os.path.join(DEPLOY, "prometheus.yml"))
    tlib.check("deploy/prometheus/prometheus.yml passes promtool check config", ok, out)
    ok, out = run_tool("promtool", "check", "rules", os.path.join(DEPLOY, "alerts.yml"))
    tlib.check("deploy/prometheus/alerts.yml passes promtool check rules", ok, out)
    ok, out = run_tool("promtool", "test", "rules", os.path.join(DEPLOY, "alerts_test.yml"))
    tlib.check("the alert rules' unit tests pass (promtool test rules)", ok, out)
    with open(os.path.join(DEPLOY, "alerts.yml")) as f:
        rules = f.read()
    for name in ("TangoQueueOldestJobWaiting", "TangoNoLeader", "TangoCallbacksFailing",
                 "TangoWorkerHostDown"):
        tlib.check("alerts.yml has %s" % name, "alert: %s" % name in rules)


def main():
    shipped_files()
    cb = tjobs.CallbackReceiver()
    mport = tlib.free_port()
    with tlib.Service(producers=1) as svc:
        cfg = {"vmms": "localDocker", "vmms_dir": os.path.join(tlib.BUILD, "vmms"),
               "instance_prefix": PREFIX, "lease_ms": 2000, "callback_backoff_ms": 100,
               "metrics_port": mport,
               "vmms_config": {"localDocker": {"volume_dir": os.path.join(svc.tmp, "volumes")}}}
        # the producer's answer: no key, the format's content type
        r = metrics_text(svc.port)
        tlib.check("producer GET /metrics answers 200 without a key", r.status == 200, r.status)
        tlib.check("producer /metrics content type is text/plain; version=0.0.4",
                   (r.header("Content-Type") or "").startswith("text/plain; version=0.0.4"),
                   r.header("Content-Type"))
        r = metrics_text(svc.port, method="POST")
        tlib.check("producer POST /metrics is 405", r.status == 405, r.status)

        # one job through the API, with a callback, queued before any consumer runs
        files = {"hello.sh": b"echo hello metrics\n", "Makefile": makefile("sh hello.sh")}
        upload_bytes = sum(len(v) for v in files.values())
        res = submit(svc, LAB, files, "hello.out", timeout=20, callback_url=cb.url("m"))
        tlib.check("job accepted", res.get("statusMsg") == "Job added", res)
        queued = 'tango_queue_length{class="normal",group="course1"}'
        ps = tlib.wait_for(lambda: (lambda s: s if s.get(
            'tango_queue_oldest_age_seconds{class="normal",group="course1"}', 0) > 0 else None)(
            samples(metrics_text(svc.port).text)), 10) or samples(metrics_text(svc.port).text)
        tlib.check("producer: the job is queued under its class and course", ps.get(queued) == 1,
                   {k: v for k, v in ps.items() if k.startswith("tango_queue")})
        tlib.check("producer: the queue head's age grows",
                   ps.get('tango_queue_oldest_age_seconds{class="normal",group="course1"}', 0) > 0)
        tlib.check("producer: no leader yet", ps.get("tango_leader_present") == 0)

        consumer = svc.start_consumer(cfg)
        try:
            tlib.wait_port(mport, timeout=20, proc=consumer.proc)
            up = True
        except RuntimeError as e:
            up = tlib.check("consumer metrics listener comes up", False, e)
        if not up:
            return
        out = wait_output(svc, LAB, "hello.out", timeout=60)
        tlib.check("job ran", out is not None and b"hello metrics" in out, out)
        tlib.check("callback delivered", len(cb.wait("m", timeout=30)) == 1)

        # wait until the consumer's end-to-end latency shows up
        ctext = tlib.wait_for(lambda: (lambda t: t if re.search(
            r'^tango_job_latency_seconds_count\{[^}]*\} 1$', t, re.M) else None)(
            metrics_text(mport).text), 20)
        ctext = ctext or metrics_text(mport).text
        ok, why = promtool_check(ctext)
        tlib.check("promtool check metrics passes on the consumer's /metrics", ok, why)
        cs = samples(ctext)
        inst = [k for k in cs if k.startswith("tango_consumer_leader{")]
        tlib.check("consumer reports itself leader", inst and cs[inst[0]] == 1, inst)
        tlib.check("consumer: one job latency observed",
                   any(k.startswith("tango_job_latency_seconds_count{") and v == 1
                       for k, v in cs.items()), ctext[-1500:])
        for phase in ("waitvm", "copyin", "run", "copyout"):
            tlib.check("consumer: %s phase observed once" % phase,
                       any(k.startswith("tango_job_phase_duration_seconds_count{") and
                           'phase="%s"' % phase in k and v == 1 for k, v in cs.items()))
        r = metrics_text(mport, "/other")
        tlib.check("consumer listener: another path is 404", r.status == 404, r.status)
        r = metrics_text(mport, method="POST")
        tlib.check("consumer listener: POST /metrics is 404", r.status == 404, r.status)

        # callbacks are counted after the delivery: wait for the counter
        ptext = tlib.wait_for(lambda: (lambda t: t if "\ntango_callbacks_delivered_total 1\n" in t
                                       else None)(metrics_text(svc.port).text), 10)
        ptext = ptext or metrics_text(svc.port).text
        ok, why = promtool_check(ptext)
        tlib.check("promtool check metrics passes on the producer's /metrics", ok, why)
        ps = samples(ptext)
        tlib.check("producer: jobs accepted equals the jobs the test added",
                   ps.get("tango_jobs_accepted_total") == 1, ps.get("tango_jobs_accepted_total"))
        tlib.check("producer: one job finished with outcome success",
                   ps.get('tango_jobs_finished_total{outcome="success"}') == 1,
                   {k: v for k, v in ps.items() if "finished" in k})
        tlib.check("producer: one callback delivered, none failed",
                   ps.get("tango_callbacks_delivered_total") == 1 and
                   ps.get("tango_callback_failures_total") == 0)
        tlib.check("producer: queue empty, leader present",
                   sum(v for k, v in ps.items() if k.startswith("tango_queue_length")) == 0 and
                   ps.get("tango_leader_present") == 1 and ps.get("tango_redis_up") == 1)
        add = [v for k, v in ps.items() if k.startswith("tango_http_requests_total{") and
               'route="/addJob"' in k and 'code="200"' in k]
        tlib.check("producer: one addJob request counted", add == [1], add)
        up_b = [v for k, v in ps.items() if k.startswith("tango_upload_bytes_total{")]
        tlib.check("producer: upload bytes equal the bytes uploaded", up_b == [upload_bytes],
                   (up_b, upload_bytes))

        # a real Prometheus scraping both
        try:
            prom = Prometheus(svc.tmp, svc.port, mport)
        except (RuntimeError, OSError) as e:
            tlib.check("prometheus server starts", False, e)
            return
        try:
            targets = tlib.wait_for(lambda: (lambda d: d if d and len(d.get("activeTargets", [])) == 2
                                             and all(t["health"] == "up" for t in d["activeTargets"])
                                             else None)(prom.api("targets")), 30)
            tlib.check("prometheus scrapes both targets (health up)", targets,
                       prom.api("targets") or prom.logtext())
            lat = tlib.wait_for(lambda: (prom.value("sum(tango_job_latency_seconds_count)") or 0) >= 1, 30)
            tlib.check("prometheus: the job's latency is in the histogram (count >= 1)", lat,
                       prom.value("sum(tango_job_latency_seconds_count)"))
            le = prom.value('sum(tango_job_latency_seconds_bucket{le="+Inf"})')
            tlib.check("prometheus: +Inf bucket equals the count", le == 1, le)
            add = tlib.wait_for(lambda: prom.value('sum(tango_http_requests_total{route="/addJob"})'), 20)
            tlib.check("prometheus: the addJob request counter is seen", add == 1, add)
            acc = prom.value("max(tango_jobs_accepted_total)")
            tlib.check("prometheus: jobs accepted equals what the test did", acc == 1, acc)
            rules = prom.api("rules")
            names = [r.get("name") for g in (rules or {}).get("groups", []) for r in g.get("rules", [])]
            healthy = all(r.get("health") in ("ok", "unknown")
                          for g in (rules or {}).get("groups", []) for r in g.get("rules", []))
            tlib.check("prometheus loaded the shipped alert rules", "TangoNoLeader" in names and
                       len(names) >= 4 and healthy, rules)
            # the consumer stops: its lease goes, TangoNoLeader goes pending
            rc = consumer.stop()
            tlib.check("consumer exits cleanly (drained)", rc == 0, consumer.logtext()[-800:])
            pend = tlib.wait_for(lambda: any(a["labels"].get("alertname") == "TangoNoLeader"
                                             for a in (prom.api("alerts") or {}).get("alerts", [])), 30)
            tlib.check("TangoNoLeader goes pending once no consumer holds the lease", pend,
                       prom.api("alerts"))
        finally:
            prom.stop()

        # Redis goes away: /metrics still answers, says so, and counts the failures
        def redis_errors():
            s = samples(metrics_text(svc.port).text)
            v = [v for k, v in s.items() if k.startswith("tango_redis_errors_total{")]
            return (v[0] if v else None), s
        before, _ = redis_errors()
        svc.redis.stop()
        after, s = redis_errors()
        tlib.check("Redis down: producer /metrics answers with tango_redis_up 0",
                   s.get("tango_redis_up") == 0 and "tango_jobs_accepted_total" not in s,
                   {k: v for k, v in s.items() if "redis" in k})
        after, s = redis_errors()
        tlib.check("Redis down: tango_redis_errors_total counts the failed commands",
                   before is not None and after is not None and after > before, (before, after))
        ok, why = promtool_check(metrics_text(svc.port).text)
        tlib.check("promtool check metrics passes with Redis down", ok, why)
        svc.redis.start()
        back = tlib.wait_for(lambda: samples(metrics_text(svc.port).text).get("tango_redis_up") == 1, 15)
        tlib.check("Redis back: tango_redis_up 1 again", back)
    leftovers = subprocess.run(["docker", "ps", "-aq", "--filter", "name=" + PREFIX],
                               capture_output=True, text=True).stdout.split()
    tlib.check("no container left", not leftovers, leftovers)


def worker_hosts():
    """distDocker: tango_worker_host_up per host (the plugin's get_hosts op):
    a host of the test fleet up, an address nobody answers on down, and the
    live host reported down once its sshd is killed."""
    if os.geteuid() != 0:
        tlib.check("worker host metrics need root (test fleet: network namespaces, sshd)", False)
        return
    mport = tlib.free_port()
    with fleet.Fleet(1) as f, tlib.Service(producers=1) as svc:
        dead = f.host(1, address=f.dead_address())
        cfg = {"vmms": "distDocker", "vmms_dir": os.path.join(tlib.BUILD, "vmms"),
               "instance_prefix": PREFIX, "lease_ms": 2000, "metrics_port": mport,
               "vmms_config": {"distDocker": f.distdocker_config(hosts=[f.host(1), dead])}}
        consumer = svc.start_consumer(cfg)
        try:
            tlib.wait_port(mport, timeout=30, proc=consumer.proc)
        except RuntimeError as e:
            tlib.check("distDocker consumer metrics listener comes up", False, e)
            return

        def host_up(label):
            s = samples(metrics_text(mport).text)
            v = [v for k, v in s.items() if k.startswith("tango_worker_host_up{") and
                 'host="%s"' % label in k]
            return v[0] if v else None

        live, gone = f.label(1), "%s:22" % f.dead_address()
        tlib.check("distDocker: the live worker host is reported up",
                   tlib.wait_for(lambda: host_up(live) == 1, 20), host_up(live))
        tlib.check("distDocker: the unreachable worker host is reported down", host_up(gone) == 0,
                   host_up(gone))
        ok, why = promtool_check(metrics_text(mport).text)
        tlib.check("promtool check metrics passes on the distDocker consumer's /metrics", ok, why)
        f.stop(1)
        tlib.check("distDocker: a host whose sshd died is reported down",
                   tlib.wait_for(lambda: host_up(live) == 0, 30), host_up(live))
        rc = consumer.stop(60)
        tlib.check("distDocker consumer exits cleanly", rc == 0, consumer.logtext()[-800:])


main()
worker_hosts()
tlib.done()
