"""tlib: the integration tests' harness. Starts real services (redis-server,
tango-producer, tango-consumer) on free loopback ports in a private temp
directory, talks HTTP to them, and reports checks as the runner expects:
one "ok NAME" or "FAIL NAME: why" line per check; exit status 1 if any failed.

Usage in a test file:
    import tlib
    with tlib.Service() as svc:          # redis + one producer
        r = svc.get("/open/%s/lab/" % svc.key)
        tlib.check("open creates a lab", r.json()["statusMsg"] == "Created directory", r.text)
    tlib.done()
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
_failed = 0
_passed = 0


def check(name, cond, detail=""):
    global _failed, _passed
    if cond:
        _passed += 1
        print("ok %s" % name, flush=True)
    else:
        _failed += 1
        detail = str(detail).replace("\n", "\\n")[:500]
        print("FAIL %s: %s" % (name, detail), flush=True)
    return cond


def done():
    print("# %d checks passed, %d failed" % (_passed, _failed), flush=True)
    sys.exit(1 if _failed else 0)


def docker(*args, data=None, check=True, timeout=300):
    """Runs the docker CLI (the machine's daemon) with args, data on stdin;
    returns its stdout stripped. check: raise RuntimeError when it fails."""
    r = subprocess.run(["docker"] + list(args), input=data, capture_output=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("docker %s: %s" % (" ".join(args), r.stderr.decode()))
    return r.stdout.decode().strip()


def image_id(name):
    """The Docker image id of name, or None when there is no such image."""
    r = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", name],
                       capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10.0, proc=None):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before listening" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d not listening after %.0fs" % (port, timeout))


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


def request(port, method, path, body=None, headers=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def raw(port, data, timeout=5.0, paced=False):
    """Sends data and reads to close. paced: in 8 KiB pieces 5 ms apart, as a
    client streaming a request does; it must be able to send it all (no reset
    from a server that answered early) and then read the answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        if paced:
            for i in range(0, len(data), 8192):
                s.sendall(data[i:i + 8192])
                time.sleep(0.005)
        else:
            s.sendall(data)
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except OSError:
        pass
    finally:
        s.close()
    return out


class Redis:
    """A private redis-server on a free port."""

    def __init__(self, workdir, appendonly=False):
        self.port = free_port()
        self.workdir = workdir
        self.appendonly = appendonly
        self.proc = None

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.workdir, "--save", "",
                "--appendonly", "yes" if self.appendonly else "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def cli(self, *args):
        out = subprocess.run(["redis-cli", "-p", str(self.port)] + [str(a) for a in args],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip()

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port


class Proc:
    """A service process with its own log file; stops cleanly and reports
    sanitizer findings (a non-zero exit after SIGTERM counts as a failure)."""

    def __init__(self, name, args, env, logpath):
        self.name = name
        self.args = args
        self.env = env
        self.logpath = logpath
        self.proc = None
        self.killed = False

    def start(self):
        self.log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=self.log, stderr=self.log)
        return self

    def kill(self, sig=signal.SIGKILL):
        """Kills on purpose: the exit check at the end skips this process."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)
            self.killed = True

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit code (None if it was not running)."""
        if not self.proc or self.killed:
            if self.proc:
                self.log.close()
                self.proc = None
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return "hung"
        rc = self.proc.returncode
        self.log.close()
        self.proc = None
        return rc

    def logtext(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")


class Service:
    """Redis + N producers (+ optionally a consumer) sharing one courselabs
    directory. Use as a context manager; on exit every process is stopped and
    a clean exit (status 0, no sanitizer report) is itself checked."""

    def __init__(self, producers=1, consumer=False, config=None, key="testkey",
                 appendonly=False, env=None):
        self.tmp = tempfile.mkdtemp(prefix="tango-test-")
        self.key = key
        self.redis = Redis(self.tmp, appendonly=appendonly)
        self.courselabs = os.path.join(self.tmp, "courselabs")
        self.prefix = "t%d:" % os.getpid()
        self.config = {"keys": [key], "courselabs": self.courselabs, "prefix": self.prefix,
                       "log_level": "debug",
                       # several consumers share a host in tests: no metrics
                       # listener unless a test asks for one on its own port
                       "metrics_port": 0}
        self.config.update(config or {})
        self.extra_env = env or {}
        self.nproducers = producers
        self.want_consumer = consumer
        self.producers = []
        self.consumers = []

    def env(self):
        e = dict(os.environ)
        e["TANGO_REDIS_URL"] = self.redis.url
        e.update(self.extra_env)
        return e

    def write_config(self, extra=None):
        cfg = dict(self.config)
        cfg.update(extra or {})
        path = os.path.join(self.tmp, "config-%d.json" % len(os.listdir(self.tmp)))
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path

    def start_producer(self, extra=None):
        port = free_port()
        path = self.write_config(dict(extra or {}, port=port, bind="127.0.0.1"))
        p = Proc("producer%d" % len(self.producers), [os.path.join(BUILD, "tango-producer"), "-c", path],
                 self.env(), os.path.join(self.tmp, "producer%d.log" % len(self.producers))).start()
        p.port = port
        wait_port(port, proc=p.proc)
        self.producers.append(p)
        return p

    def restart(self, proc, sig=signal.SIGKILL):
        """Kills a service process and starts it again with the same command
        line (same port for a producer). Returns the new Proc."""
        proc.kill(sig)
        proc.log.close()
        fresh = Proc(proc.name, proc.args, proc.env, proc.logpath).start()
        if hasattr(proc, "port"):
            fresh.port = proc.port
            wait_port(fresh.port, proc=fresh.proc)
        for group in (self.producers, self.consumers):
            for i, p in enumerate(group):
                if p is proc:
                    group[i] = fresh
        return fresh

    def start_consumer(self, extra=None, env=None):
        """Starts a consumer with extra config; env: extra environment
        variables for this process only (e.g. a faked clock)."""
        path = self.write_config(extra)
        c = Proc("consumer%d" % len(self.consumers), [os.path.join(BUILD, "tango-consumer"), "-c", path],
                 dict(self.env(), **(env or {})),
                 os.path.join(self.tmp, "consumer%d.log" % len(self.consumers))).start()
        self.consumers.append(c)
        return c

    def __enter__(self):
        self.redis.start()
        for _ in range(self.nproducers):
            self.start_producer()
        if self.want_consumer:
            self.start_consumer()
        return self

    def __exit__(self, *exc):
        for p in self.consumers + self.producers:
            rc = p.stop()
            if rc is not None:
                log = p.logtext()
                bad = [l for l in log.splitlines() if "Sanitizer" in l or "runtime error" in l]
                check("%s exits cleanly" % p.name, rc == 0 and not bad,
                      "exit=%s %s" % (rc, "\n".join(bad[:5]) or log[-800:]))
        self.redis.stop()
        if exc[0] is None and not os.environ.get("TANGO_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print("# kept %s" % self.tmp)
        return False

    @property
    def port(self):
        return self.producers[0].port

    def request(self, method, path, body=None, headers=None, port=None, timeout=30):
        return request(port or self.port, method, path, body, headers, timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=b"", headers=None, **kw):
        return self.request("POST", path, body, headers, **kw)

    # Tango client helpers
    def open(self, lab, **kw):
        return self.get("/open/%s/%s/" % (self.key, urllib.parse.quote(lab, safe="")), **kw).json()

    def upload(self, lab, name, data, **kw):
        return self.post("/upload/%s/%s/" % (self.key, lab), data,
                         {"Filename": name.encode("utf-8")}, **kw).json()

    def add_job(self, lab, job, **kw):
        return self.post("/addJob/%s/%s/" % (self.key, lab), json.dumps(job).encode(), **kw).json()

    def poll(self, lab, outfile, **kw):
        return self.get("/poll/%s/%s/%s/" % (self.key, lab, urllib.parse.quote(outfile, safe="")), **kw)


# Callbacks to loopback are refused unless config callback_allow names them
# (issue 10). Tests' callback receivers listen on 127.0.0.1, so every Service
# allows it unless the test's own config sets callback_allow (e.g. [] to see
# the refusal).
_service_init = Service.__init__


def _service_init_allowing_local_callbacks(self, *args, **kwargs):
    _service_init(self, *args, **kwargs)
    self.config.setdefault("callback_allow", ["127.0.0.1"])


Service.__init__ = _service_init_allowing_local_callbacks


def _key_table():
    """Redis key names from common/keys.h (the one table): {TAG: name}."""
    import re
    table = {}
    with open(os.path.join(ROOT, "common", "keys.h")) as f:
        for line in f:
            m = re.match(r'\s*X\((\w+),\s*"([^"]+)"', line)
            if m:
                table[m.group(1)] = m.group(2)
    return table


KEYS = _key_table()


def wait_for(pred, timeout, interval=0.1):
    """Polls pred until it returns something true or timeout seconds pass;
    returns its last value (the condition, never a fixed sleep)."""
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()
