"""Two producers behind a real load balancer on loopback: haproxy running the
shipped deploy/haproxy.cfg itself (its addresses come from the environment,
which haproxy expands), then nginx running deploy/nginx.conf with its
listen address, servers, body limit and pid/log paths replaced (nginx reads
no environment). A localDocker consumer runs the jobs.

Through each balancer: open, upload, addJob, the callback and poll; then
one producer is SIGKILLed and restarted while jobs are submitted through the
balancer by clients that retry as Autolab's TangoClient does (3 tries, 2 s
apart, on a connection error; a 502/503/504 from the balancer is a
connection error behind it): every job a client was told "Job added"
completes and no client sees an error its retries did not absorb.

The clients connect from 127.0.0.2, the balancers reach the producers from
127.0.0.1 (trusted_proxies): the producers' logs name 127.0.0.2 as the
client; a spoofed X-Forwarded-For does not change that, nor does one sent
straight to a producer, and a producer without trusted_proxies names the
balancer. Also: `haproxy -c` on the shipped file passes without a warning,
a declared body over max_upload_mb is refused by haproxy itself."""
import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time

import tjobs
import tlib
from tjobs import makefile

CLIENT_ADDR = "127.0.0.2"
MAX_UPLOAD_MB = 1
PREFIX = "tbal%d-" % os.getpid()
HAPROXY_CFG = os.path.join(tlib.ROOT, "deploy", "haproxy.cfg")
NGINX_CONF = os.path.join(tlib.ROOT, "deploy", "nginx.conf")


class RetryingClient:
    """A Tango client from CLIENT_ADDR that retries as Autolab's TangoClient:
    3 tries, 2 s apart, on connection errors. Counts its retries; raises
    ConnectionError once the tries are spent."""
    TRIES = 3
    PAUSE_S = 2.0

    def __init__(self, port, key):
        self.port = port
        self.key = key
        self.retries = 0
        self.lock = threading.Lock()

    def call(self, method, path, body=None, headers=None):
        last = None
        for attempt in range(self.TRIES):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30,
                                                  source_address=(CLIENT_ADDR, 0))
                try:
                    conn.request(method, path, body=body, headers=headers or {})
                    r = conn.getresponse()
                    resp = tlib.Response(r.status, r.getheaders(), r.read())
                finally:
                    conn.close()
                if resp.status not in (502, 503, 504):
                    return resp
                last = "HTTP %d from the balancer" % resp.status
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            if attempt + 1 < self.TRIES:
                with self.lock:
                    self.retries += 1
                time.sleep(self.PAUSE_S)  # the client's own pause, as TangoClient's
        raise ConnectionError(last)

    def json(self, method, path, body=None, headers=None):
        return self.call(method, path, body, headers).json()

    def submit(self, lab, tag, cb_url):
        """open, upload the Makefile, addJob (each retried); returns addJob's answer."""
        self.json("GET", "/open/%s/%s/" % (self.key, lab))
        r = self.json("POST", "/upload/%s/%s/" % (self.key, lab), makefile("echo job %s" % tag),
                      {"Filename": tag + "-Makefile"})
        if r.get("statusId") != 0:
            return r
        job = {"image": "autograding_image", "jobName": tag, "output_file": tag + ".out",
               "timeout": 30, "callback_url": cb_url,
               "files": [{"localFile": tag + "-Makefile", "destFile": "Makefile"}]}
        return self.json("POST", "/addJob/%s/%s/" % (self.key, lab), json.dumps(job))


def balanced_flow(name, client, svc, cb):
    """One job end to end through the balancer, then poll its output."""
    lab = "lab-" + name
    r = client.json("GET", "/open/%s/%s/" % (svc.key, lab))
    tlib.check("%s: open" % name, r.get("statusMsg") == "Created directory", r)
    r = client.json("POST", "/upload/%s/%s/" % (svc.key, lab),
                    makefile("cat hello.txt"), {"Filename": "Makefile"})
    tlib.check("%s: upload Makefile" % name, r.get("statusMsg") == "Uploaded file", r)
    r = client.json("POST", "/upload/%s/%s/" % (svc.key, lab), b"hello through %s\n" % name.encode(),
                    {"Filename": "hello.txt"})
    tlib.check("%s: upload a file" % name, r.get("statusMsg") == "Uploaded file", r)
    job = {"image": "autograding_image", "jobName": "first", "output_file": "first.out",
           "timeout": 30, "callback_url": cb.url(name + "-first"),
           "files": [{"localFile": "Makefile", "destFile": "Makefile"},
                     {"localFile": "hello.txt", "destFile": "hello.txt"}]}
    r = client.json("POST", "/addJob/%s/%s/" % (svc.key, lab), json.dumps(job))
    tlib.check("%s: addJob" % name, r.get("statusMsg") == "Job added", r)
    calls = cb.wait(name + "-first", timeout=60)
    content = calls[0]["content"] if calls else b""
    tlib.check("%s: callback with the output" % name,
               b"hello through %s" % name.encode() in content, calls or consumer_trouble(svc))
    out = client.call("GET", "/poll/%s/%s/first.out/" % (svc.key, lab))
    tlib.check("%s: poll returns the same output" % name,
               out.header("Content-Type") == "application/octet-stream" and out.body == content,
               (out.status, out.body[:200]))


def kill_while_submitting(name, svc, cb, port, victim, njobs, nclients):
    """nclients clients submit njobs jobs in all through the balancer while
    producer index `victim` is SIGKILLed and restarted once."""
    accepted, errors = [], []
    lock = threading.Lock()
    clients = [RetryingClient(port, svc.key) for _ in range(nclients)]

    def submitter(ci):
        for i in range(ci, njobs, nclients):
            tag = "%s-k%d" % (name, i)
            try:
                r = clients[ci].submit("kill-" + name, tag, cb.url(tag))
            except ConnectionError as e:
                with lock:
                    errors.append("%s: %s" % (tag, e))
                continue
            with lock:
                if r.get("statusMsg") == "Job added":
                    accepted.append(tag)
                else:
                    errors.append("%s: %s" % (tag, r))

    threads = [threading.Thread(target=submitter, args=(ci,)) for ci in range(nclients)]
    for t in threads:
        t.start()
    tlib.wait_for(lambda: len(accepted) >= njobs // 3, 60)
    svc.restart(svc.producers[victim])  # SIGKILL, then the same command line
    for t in threads:
        t.join(120)
    tlib.check("%s: every submission accepted, no client error past its retries" % name,
               not errors and len(accepted) == njobs, errors[:5])
    missing = lambda: [t for t in accepted if not cb.for_tag(t)]  # noqa: E731
    tlib.wait_for(lambda: not missing(), 90)
    tlib.check("%s: every accepted job completed (callback)" % name, not missing(),
               "%s %s" % (missing()[:5], consumer_trouble(svc)))
    bad = [t for t in accepted if cb.for_tag(t) and
           b"job %s" % t.encode() not in (cb.for_tag(t)[0]["content"] or b"")]
    tlib.check("%s: each callback carries its own job's output" % name, not bad, bad[:5])
    print("# %s: %d jobs, client retries %d" % (name, len(accepted),
                                                 sum(c.retries for c in clients)), flush=True)


def back_in_rotation(client, svc, proc):
    """Whether requests through the balancer reach proc's current process."""
    def reached():
        client.call("GET", "/info/%s/" % svc.key)
        text = proc.logtext()
        return "client=%s peer=127.0.0.1" % CLIENT_ADDR in text[text.rfind("event=listening"):]
    return tlib.wait_for(reached, 15)


def consumer_trouble(svc):
    """The consumer's last warnings and errors (for a failed check's detail)."""
    lines = [l for l in svc.consumers[0].logtext().splitlines()
             if "level=warn" in l or "level=error" in l]
    return lines[-4:]


def log_clients(proc):
    return set(re.findall(r"event=http_request .*client=(\S+) peer=(\S+)", proc.logtext()))


def start_balancer(name, what, args, env, port, svc, cb):
    """Starts balancer `name` (output to svc.tmp/<name>.log), waits for its
    port and runs balanced_flow through it: (proc, log, client), or None
    after the FAIL line `what` (with the log) when it does not come up."""
    logpath = os.path.join(svc.tmp, "%s.log" % name)
    log = open(logpath, "ab")
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=log)
    try:
        tlib.wait_port(port, proc=proc)
    except RuntimeError as e:
        tlib.check(what, False, "%s %s" % (e, open(logpath).read()))
        return None
    client = RetryingClient(port, svc.key)
    balanced_flow(name, client, svc, cb)
    return proc, log, client


def upload_head(svc, filename, length):
    """The head of a POST /upload of the lab "big" with the body-length
    header line `length` ("Content-Length: N", "Transfer-Encoding: ...")."""
    return ("POST /upload/%s/big/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            "Filename: %s\r\n%s\r\n\r\n" % (svc.key, filename, length)).encode()


def stop_proc(name, proc, log, sig):
    proc.send_signal(sig)
    try:
        rc = proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "hung"
    log.close()
    tlib.check("%s stops cleanly" % name, rc == 0, rc)


def haproxy_part(svc, cb):
    out = subprocess.run(["haproxy", "-c", "-f", HAPROXY_CFG], capture_output=True, text=True)
    text = out.stdout + out.stderr
    tlib.check("haproxy -c: the shipped file is valid, without a warning",
               out.returncode == 0 and "WARNING" not in text and "ALERT" not in text, text)
    port = tlib.free_port()
    env = dict(os.environ, TANGO_LISTEN="127.0.0.1:%d" % port,
               TANGO_P1="127.0.0.1:%d" % svc.producers[0].port,
               TANGO_P2="127.0.0.1:%d" % svc.producers[1].port,
               TANGO_MAX_UPLOAD_MB=str(MAX_UPLOAD_MB))
    started = start_balancer("haproxy", "haproxy starts with the shipped file",
                             ["haproxy", "-db", "-f", HAPROXY_CFG], env, port, svc, cb)
    if not started:
        return
    proc, log, client = started

    # the body limit: a declared body over max_upload_mb never reaches a producer
    client.call("GET", "/open/%s/big/" % svc.key)
    head = upload_head(svc, "big", "Content-Length: %d" % ((MAX_UPLOAD_MB << 20) + 1))
    ans = tlib.raw(port, head + b"x" * 1000)
    tlib.check("haproxy: a declared body over max_upload_mb answered 413 by the balancer",
               ans.startswith(b"HTTP/1.1 413") and
               b'"File too large: the limit is %d MiB"' % MAX_UPLOAD_MB in ans, ans[:300])
    ans = tlib.raw(port, upload_head(svc, "big", "Content-Length: %d" % (MAX_UPLOAD_MB << 20)) +
                   b"x" * (MAX_UPLOAD_MB << 20))
    tlib.check("haproxy: a body of exactly max_upload_mb passes",
               b'"Uploaded file"' in ans, ans[:300])
    chunk = b"%x\r\n%s\r\n" % (65536, b"y" * 65536)
    ans = tlib.raw(port, upload_head(svc, "big2", "Transfer-Encoding: chunked") +
                   chunk * (MAX_UPLOAD_MB * 16 + 1) + b"0\r\n\r\n", paced=True)
    tlib.check("haproxy: a chunked body over it is refused by the producer",
               b"File too large" in ans, ans[:300])

    # the client's address reaches the producers' logs, spoofing aside
    client.call("GET", "/info/%s/" % svc.key, headers={"X-Forwarded-For": "6.6.6.6"})
    client.call("GET", "/info/%s/" % svc.key, headers={"X-Forwarded-For": "garbage"})
    seen = [log_clients(p) for p in svc.producers[:2]]
    tlib.check("haproxy: both producers log the real client behind the balancer",
               all((CLIENT_ADDR, "127.0.0.1") in s for s in seen), seen)
    tlib.check("haproxy: a spoofed X-Forwarded-For is not believed",
               not any(c in ("6.6.6.6", "garbage") for s in seen for c, _ in s), seen)

    kill_while_submitting("haproxy", svc, cb, port, 0, njobs=24, nclients=3)
    tlib.check("haproxy: the restarted producer is back in rotation (health check)",
               back_in_rotation(client, svc, svc.producers[0]))
    stop_proc("haproxy", proc, log, signal.SIGUSR1)  # soft stop


def nginx_part(svc, cb):
    port = tlib.free_port()
    text = open(NGINX_CONF).read()
    subs = [("listen 3000;", "listen 127.0.0.1:%d;" % port),
            ("server 127.0.0.1:3001 ", "server 127.0.0.1:%d " % svc.producers[0].port),
            ("server 127.0.0.1:3002 ", "server 127.0.0.1:%d " % svc.producers[1].port),
            ("client_max_body_size 256m;", "client_max_body_size %dm;" % MAX_UPLOAD_MB),
            ("pid /run/nginx-tango.pid;", "pid %s/nginx.pid;" % svc.tmp),
            ("access_log /var/log/nginx/tango-access.log;",
             "access_log %s/nginx-access.log;" % svc.tmp)]
    missing = [old for old, _ in subs if text.count(old) != 1]
    tlib.check("nginx: the shipped file has each value the test replaces, once", not missing,
               missing)
    for old, new in subs:
        text = text.replace(old, new)
    conf = os.path.join(svc.tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(text)
    out = subprocess.run(["nginx", "-e", "stderr", "-t", "-c", conf], capture_output=True,
                         text=True)
    tlib.check("nginx -t: the generated file is valid", out.returncode == 0 and
               "test is successful" in out.stderr and "[warn]" not in out.stderr, out.stderr)
    started = start_balancer("nginx", "nginx starts",
                             ["nginx", "-e", "stderr", "-c", conf, "-g", "daemon off;"],
                             dict(os.environ), port, svc, cb)
    if not started:
        return
    proc, log, client = started
    ans = tlib.raw(port, upload_head(svc, "big", "Content-Length: %d" % ((MAX_UPLOAD_MB << 20) + 1)))
    tlib.check("nginx: a declared body over max_upload_mb answered 413 by the balancer",
               ans.startswith(b"HTTP/1.1 413"), ans[:200])
    kill_while_submitting("nginx", svc, cb, port, 1, njobs=8, nclients=2)
    tlib.check("nginx: the restarted producer is back in rotation",
               back_in_rotation(client, svc, svc.producers[1]))
    seen = [log_clients(p) for p in svc.producers[:2]]
    tlib.check("nginx: the producers log the real client behind it",
               any((CLIENT_ADDR, "127.0.0.1") in s for s in seen), seen)
    stop_proc("nginx", proc, log, signal.SIGQUIT)  # graceful shutdown


def trust_part(svc):
    """X-Forwarded-For from a peer not in trusted_proxies is ignored."""
    direct = RetryingClient(svc.producers[0].port, svc.key)
    direct.call("GET", "/info/%s/" % svc.key, headers={"X-Forwarded-For": "6.6.6.7"})
    tlib.check("a producer ignores X-Forwarded-For from a peer it does not trust",
               (CLIENT_ADDR, CLIENT_ADDR) in log_clients(svc.producers[0]) and
               "client=6.6.6.7" not in svc.producers[0].logtext(),
               log_clients(svc.producers[0]))
    plain = svc.start_producer({"trusted_proxies": []})
    tlib.request(plain.port, "GET", "/info/%s/" % svc.key,
                 headers={"X-Forwarded-For": CLIENT_ADDR})
    seen = log_clients(plain)
    tlib.check("a producer without trusted_proxies names the balancer, whatever it forwards",
               ("127.0.0.1", "127.0.0.1") in seen and not any(c == CLIENT_ADDR for c, _ in seen),
               seen)


cfg = {"trusted_proxies": ["127.0.0.1"], "max_upload_mb": MAX_UPLOAD_MB,
       "default_disable_network": True}
consumer = {"vmms": "localDocker", "vmms_dir": os.path.join(tlib.BUILD, "vmms"),
            "instance_prefix": PREFIX, "max_jobs": 4, "max_jobs_per_image": 4,
            "lease_ms": 3000, "callback_backoff_ms": 100,
            "metrics_port": 0}  # no /metrics listener (a fixed port other tests may hold)
with tlib.Service(producers=2, config=cfg, key="k-balancer-7Qw2") as svc:
    cb = tjobs.CallbackReceiver()
    consumer["vmms_config"] = {"localDocker": {"volume_dir": os.path.join(svc.tmp, "volumes")}}
    svc.start_consumer(consumer)
    try:
        haproxy_part(svc, cb)
        nginx_part(svc, cb)
        trust_part(svc)
        tlib.check("balancer: key never in the producers' logs",
                   not any(svc.key in p.logtext() for p in svc.producers))
    finally:
        cb.close()

tlib.done()
