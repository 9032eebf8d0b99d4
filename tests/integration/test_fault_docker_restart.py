"""Fault: the Docker daemon restarts mid-burst (issue 19 point 1).

The test runs its OWN dockerd (never the machine's): its own bridge (made
here, own subnet), --data-root/--exec-root/--pidfile on a temp dir, its own
unix socket, no iptables changes; the autograding image is loaded into it
from a `docker save` of the main daemon's (cached by image id under
/var/tmp/tango-test-cache, so only the first run pays for the save).
A consumer on localDocker points at that socket. 100 jobs are queued; once
some have finished, the daemon is stopped (SIGTERM, as an upgrade would)
and kept down ~20 s, then started again. Checks: while it is down /health
(producer), tangoctl status and tango_backend_up show the outage, no job
ends; after the restart leasing resumes by itself and all 100 jobs end with
their own correct output and retries 0 (no try spent on the outage).
Before the burst, with the daemon healthy, a job whose input file is gone
still spends its tries, spaced 1 s and 2 s apart (not within milliseconds).
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import tjobs
import tlib

NJOBS = 100
DOWN_S = 20
TAG = "%05d" % (os.getpid() % 100000)
BRIDGE = "tfbr" + TAG                  # the daemon's default bridge (made here)
JOBS_BRIDGE = "tfj" + TAG              # the jobs' network localDocker creates
SOCK = "/run/tf-docker-%s.sock" % TAG
NET3 = 200 + os.getpid() % 50          # 10.213.<NET3>.0/24 for the bridge
CACHE = "/var/tmp/tango-test-cache"
CTL = os.path.join(tlib.BUILD, "tangoctl")
PREFIX = "tf%s-" % TAG


def sh(*args, timeout=120):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    return p.returncode == 0, (p.stdout + p.stderr).strip()


class Dockerd:
    """A private dockerd (its own bridge, roots, pidfile and socket)."""

    def __init__(self, tmp):
        self.root = tmp
        self.proc = None
        self.log = os.path.join(tmp, "dockerd.log")

    def args(self):
        return ["dockerd", "--data-root", os.path.join(self.root, "data"),
                "--exec-root", os.path.join(self.root, "exec"),
                "--pidfile", os.path.join(self.root, "docker.pid"),
                "-H", "unix://" + SOCK, "--bridge", BRIDGE,
                "--iptables=false", "--ip6tables=false", "--ip-masq=false",
                "--shutdown-timeout", "2"]
        # Never --bridge=none nor --default-address-pool: on a restart with
        # either, dockerd deletes the interface named docker0 (the host's).
        # The jobs' network gets its subnet by hand instead (jobs_network).

    def cli(self, *args, timeout=120):
        return sh("docker", "-H", "unix://" + SOCK, *args, timeout=timeout)

    def start(self, timeout=60):
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(self.args(), stdout=f, stderr=f)
        return tlib.wait_for(lambda: self.proc.poll() is None and self.cli("version")[0], timeout,
                             0.2)

    def stop(self, timeout=60):
        """SIGTERM (as systemctl stop does) and wait for it to exit."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def docker0_index():
    try:
        with open("/sys/class/net/docker0/ifindex") as f:
            return f.read().strip()
    except OSError:
        return None


def jobs_network(d):
    """The jobs' network localDocker wants (checked, not made, by its init),
    on a subnet of its own: no address pool is needed."""
    return d.cli("network", "create", "--driver", "bridge", "--subnet", "10.214.%d.0/24" % NET3,
                 "-o", "com.docker.network.bridge.name=" + JOBS_BRIDGE,
                 "-o", "com.docker.network.bridge.enable_icc=false",
                 "--label", "tango.jobs=1", JOBS_BRIDGE)


def mounts_under(top):
    """The mount points below top, deepest first (from /proc/self/mounts: a
    walk of the tree would descend into every container's merged root)."""
    top = os.path.realpath(top) + "/"
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    return sorted((p for p in points if p.startswith(top)), key=len, reverse=True)


def make_bridge():
    sh("ip", "link", "del", BRIDGE)  # a leftover of a killed run
    for cmd in (["ip", "link", "add", BRIDGE, "type", "bridge"],
                ["ip", "addr", "add", "10.213.%d.1/24" % NET3, "dev", BRIDGE],
                ["ip", "link", "set", BRIDGE, "up"]):
        ok, out = sh(*cmd)
        if not ok:
            return False, "%s: %s" % (" ".join(cmd), out)
    return True, ""


def image_tar():
    """The autograding image as a `docker save` tarball, cached by image id."""
    ok, iid = sh("docker", "image", "inspect", "-f", "{{.Id}}", "autograding_image")
    if not ok:
        return None, iid
    path = os.path.join(CACHE, "autograding_image-%s.tar" % iid.split(":")[-1][:16])
    if os.path.exists(path):
        return path, ""
    os.makedirs(CACHE, exist_ok=True)
    tmp = path + ".%d.tmp" % os.getpid()
    ok, out = sh("docker", "save", "-o", tmp, "autograding_image", timeout=300)
    if not ok:
        return None, out
    os.rename(tmp, path)
    return path, ""


def consumer_config(svc, metrics_port):
    return {"vmms": "localDocker", "vmms_dir": os.path.join(tlib.BUILD, "vmms"),
            "instance_prefix": PREFIX, "max_jobs": 6, "max_jobs_per_image": 6,
            "lease_ms": 3000, "default_memory_mb": 256, "pids_limit": 256,
            "metrics_port": metrics_port, "metrics_bind": "127.0.0.1",
            "vmms_config": {"localDocker": {
                "socket": SOCK, "volume_dir": os.path.join(svc.tmp, "volumes"),
                "network": JOBS_BRIDGE, "network_bridge": JOBS_BRIDGE,
                "host_firewall": False}}}


def submit_all(svc):
    ids = {}
    svc.open("lab1")
    for i in range(NJOBS):
        mk = tjobs.makefile("echo result-%d-ok" % i)
        r = tjobs.submit(svc, "lab1", {"Makefile": mk}, "j%d.out" % i, timeout=30,
                         disable_network=True)
        if r.get("statusId") != 0:
            return None, r
        ids[r["jobId"]] = i
    return ids, ""


def dead_records(svc):
    jobs = svc.get("/jobs/%s/1/" % svc.key).json().get("jobs") or []
    return {j["id"]: j for j in jobs}


def backend_gauge(port):
    try:
        text = tlib.request(port, "GET", "/metrics", timeout=5).text
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("tango_backend_up{") and 'backend="localDocker"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def ctl_status(svc, cfg):
    return ctl(svc, cfg, "status")[1]


def check_outputs(svc, ids, dead):
    wrong, spent, internal = [], [], []
    for jid, i in ids.items():
        rec = dead.get(jid)
        out = svc.poll("lab1", "j%d.out" % i).body.decode("utf-8", "replace")
        if "result-%d-ok" % i not in out or "Success: Autodriver returned normally" not in out:
            wrong.append((i, out[-200:]))
        if "Internal error" in out:
            internal.append(i)
        if rec is None or rec.get("retries") != 0:
            spent.append((jid, rec and rec.get("retries")))
    tlib.check("all %d jobs end with their own output and success" % NJOBS, not wrong, wrong[:3])
    tlib.check("no job ends with 'Internal error'", not internal,
               "%d jobs: %s" % (len(internal), internal[:10]))
    tlib.check("no job spent a try on the outage (record's retries 0)", not spent,
               "%d jobs: %s" % (len(spent), spent[:10]))


def ctl(svc, cfg, *args):
    p = subprocess.run([CTL, "-c", cfg] + list(args), capture_output=True, text=True, timeout=30,
                       env=svc.env())
    return p.returncode == 0, p.stdout + p.stderr


def own_failure_spaced(svc, ctl_cfg):
    """A job's own failure (its input file gone, the daemon healthy) still
    spends its tries, but spaced (1 s, then 2 s), not within milliseconds."""
    ok, out = ctl(svc, ctl_cfg, "pause", "--reason", "test")
    r = tjobs.submit(svc, "lab1", {"Makefile": tjobs.makefile("echo never")}, "gone.out",
                     timeout=30, disable_network=True)
    files = glob.glob(os.path.join(svc.courselabs, "**", "gone.out-Makefile"), recursive=True)
    for f in files:
        os.unlink(f)
    tlib.check("fixture: a job whose input file is gone", ok and r.get("statusId") == 0 and files,
               (out, r, files))
    t0 = time.time()
    ctl(svc, ctl_cfg, "resume")
    rec = tlib.wait_for(lambda: dead_records(svc).get(r.get("jobId")), 30)
    took = time.time() - t0
    trace = " ".join((rec or {}).get("trace") or [])
    print("# own failure: 3 tries took %.1f s" % took)
    tlib.check("a job's own failure spends its tries (retries 2)", rec and rec.get("retries") == 2,
               rec)
    tlib.check("its retries are spaced (1 s, 2 s), not at once",
               took >= 2.5 and "Retrying in 1000 ms" in trace and "Retrying in 2000 ms" in trace,
               (took, trace[-400:]))


def outage(svc, d, ids, mport, ctl_cfg):
    """Stops the daemon mid-burst for DOWN_S s; checks what shows it."""
    t_stop = time.time()
    d.stop()
    t0 = time.time()
    print("# dockerd stopped in %.1f s" % (t0 - t_stop))
    h = tlib.wait_for(lambda: svc.get("/health").json().get("backend") == "down" and
                      svc.get("/health").json(), 15)
    tlib.check("/health shows the back end down", h and h.get("statusId") == 0 and
               "backendDown" in h, h)
    g = tlib.wait_for(lambda: backend_gauge(mport) == 0, 10)
    tlib.check("tango_backend_up{backend=localDocker} is 0 while down", g, backend_gauge(mport))
    st = tlib.wait_for(lambda: "BACK END DOWN" in ctl_status(svc, ctl_cfg), 10)
    tlib.check("tangoctl status shows the back end down", st, ctl_status(svc, ctl_cfg)[-600:])
    before = len([j for j in dead_records(svc) if j in ids])
    while time.time() - t0 < DOWN_S:
        time.sleep(0.5)
    after = len([j for j in dead_records(svc) if j in ids])
    tlib.check("no job ends while the back end is down", after == before, (before, after))
    return before


def main():
    tmp = tempfile.mkdtemp(prefix="tango-tfd-")
    host_docker0 = docker0_index()
    d = Dockerd(tmp)
    ok, why = make_bridge()
    tlib.check("fixture: own bridge %s" % BRIDGE, ok, why)
    if not ok:
        return
    try:
        t0 = time.time()
        ok = d.start()
        tlib.check("fixture: own dockerd on %s" % SOCK, ok, open(d.log).read()[-800:])
        tar, why = image_tar()
        ok2, out = d.cli("load", "-i", tar, timeout=300) if tar else (False, why)
        tlib.check("fixture: autograding_image loaded into it", ok and ok2, out[-400:])
        ok3, out = jobs_network(d) if ok else (False, "")
        tlib.check("fixture: the jobs' network on its own subnet", ok3, out)
        ok2 = ok2 and ok3
        print("# fixture up in %.0f s" % (time.time() - t0))
        if ok and ok2:
            run(d)
    finally:
        t0 = time.time()
        d.stop()
        sh("ip", "link", "del", BRIDGE)
        sh("ip", "link", "del", JOBS_BRIDGE)
        for m in mounts_under(tmp):
            sh("umount", "-l", m)
        shutil.rmtree(tmp, ignore_errors=True)
        print("# fixture down in %.0f s" % (time.time() - t0))
        tlib.check("the host's docker0 is untouched", docker0_index() == host_docker0,
                   (host_docker0, docker0_index()))


def run(d):
    t_start = time.time()
    mport = tlib.free_port()
    with tlib.Service(config={"vmms": "localDocker"}) as svc:
        c = svc.start_consumer(consumer_config(svc, mport))
        ctl_cfg = svc.write_config()
        own_failure_spaced(svc, ctl_cfg)
        ids, why = submit_all(svc)
        tlib.check("%d jobs queued" % NJOBS, ids, why)
        if not ids:
            return
        some = tlib.wait_for(lambda: len([j for j in dead_records(svc) if j in ids]) >= 10, 90)
        tlib.check("jobs run on the private daemon", some, c.logtext()[-800:])
        done_before = outage(svc, d, ids, mport, ctl_cfg)
        tlib.check("the burst was mid-way when the daemon stopped", done_before < NJOBS,
                   done_before)
        tlib.check("fixture: the daemon starts again", d.start(), open(d.log).read()[-800:])
        t_up = time.time()
        g = tlib.wait_for(lambda: backend_gauge(mport) == 1, 30)
        print("# leasing resumed %.1f s after the daemon answered again" % (time.time() - t_up))
        tlib.check("tango_backend_up is 1 again: the probe saw it back", g, backend_gauge(mport))
        h = svc.get("/health").json()
        tlib.check("/health shows the back end up again", h.get("backend") == "up", h)
        tlib.check("the consumer logged the outage once and its end",
                   c.logtext().count("event=backend_down") == 1 and
                   "event=backend_up" in c.logtext(), c.logtext()[-600:])
        all_done = tlib.wait_for(lambda: len([j for j in dead_records(svc) if j in ids]) == NJOBS,
                                 150, 0.5)
        tlib.check("all %d jobs end after the restart (leasing resumed by itself)" % NJOBS,
                   all_done, len([j for j in dead_records(svc) if j in ids]))
        check_outputs(svc, ids, dead_records(svc))
    print("# test_fault_docker_restart took %.0f s" % (time.time() - t_start))


main()
tlib.done()
