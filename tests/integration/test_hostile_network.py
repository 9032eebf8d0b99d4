"""Jobs on a network of their own (issue 10 items 2 and 3), end to end through
the HTTP API with a real producer, consumer (localDocker) and Docker:
  - the consumer makes the jobs' network (default "tango-jobs"): a bridge
    with inter-container traffic off, and the host firewall rule that drops
    new connections from its bridge (IPv4 and IPv6);
  - two concurrent jobs in different labs: one listens (and reaches itself),
    the other cannot connect to it;
  - a job cannot connect to ports this test listens on at the jobs' bridge
    gateway and at docker0's address (172.17.0.1), nor to the producer's port
    there, nor to a second producer bound to the gateway address (an operator
    who binds the bridge); a slowloris from inside the job against that
    producer opens no connection, and the producer keeps answering;
  - the job still has a default route (outbound stays on; nothing outside
    this machine is contacted);
  - a consumer told to use a network with inter-container traffic on refuses
    to start, saying why;
  - distDocker (a test fleet of SSH worker hosts, tests/fleet): a job with
    network joins the jobs' network on its host, checked there first, and
    cannot connect to the host at the gateway.
Traffic goes only to addresses of this machine."""
import http.client
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import tlib
from tjobs import makefile, submit, wait_output

P = "hn%d" % os.getpid()
PREFIX = P + "-"
NET = "tango-jobs"          # the plugin's default
DOCKER0 = "172.17.0.1"
LISTEN_PORT = 7000          # inside the listening job
LISTEN_S = 20               # how long that job waits for a connection


def consumer_config(svc, ld_extra=None, prefix=PREFIX):
    ld = {"volume_dir": os.path.join(svc.tmp, "volumes")}
    ld.update(ld_extra or {})
    return {"vmms": "localDocker", "vmms_dir": os.path.join(tlib.BUILD, "vmms"),
            "instance_prefix": prefix, "max_jobs": 4, "max_jobs_per_image": 4,
            "lease_ms": 3000, "partial_output_interval_ms": 200, "auto_pool_max": 0,
            "vmms_config": {"localDocker": ld}}


def inspect_network(name):
    r = subprocess.run(["docker", "network", "inspect", name], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)[0]


def wait_for(cond, timeout):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    return None


class Listener:
    """A TCP listener on (addr, ephemeral port) that counts connections."""

    def __init__(self, addr):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stopped = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
                self.accepted += 1
                c.close()
            except OSError:
                pass

    def close(self):
        self.stopped = True
        self.thread.join(5)
        self.sock.close()


PROBE = r'''
import json, socket, threading, time
t = json.load(open("targets.json"))
res = {}
def connect(label, host, port):
    s = socket.socket()
    s.settimeout(3)
    res[label] = s.connect_ex((host, port))
    s.close()
ths = [threading.Thread(target=connect, args=(k, h, p)) for k, (h, p) in t["connect"].items()]
loris = []
def open_loris(host, port):
    s = socket.socket()
    s.settimeout(3)
    if s.connect_ex((host, port)) == 0:
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            loris.append(s)
        except OSError:
            pass
h, p = t["loris"]
ths += [threading.Thread(target=open_loris, args=(h, p)) for _ in range(t["loris_n"])]
for th in ths:
    th.start()
for th in ths:
    th.join()
for _ in range(4):          # one header line a second on whatever opened
    for s in loris:
        try:
            s.sendall(b"X-Slow: 1\r\n")
        except OSError:
            pass
    time.sleep(1)
route = any(l.split()[1] == "00000000" for l in open("/proc/net/route").read().split("\n")[1:] if l.strip())
print("RESULT " + json.dumps({"connect": res, "loris_open": len(loris), "default_route": route}))
'''

LISTEN = r'''
import socket, time
ip = socket.gethostbyname(socket.gethostname())
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", %d))
srv.listen(16)
c = socket.create_connection((ip, %d), timeout=3)   # control: it is really listening
a, _ = srv.accept()
a.close()
c.close()
print("LISTENING " + ip, flush=True)
srv.settimeout(0.5)
n = 0
end = time.time() + %d
while time.time() < end:
    try:
        a, _ = srv.accept()
        n += 1
        a.close()
    except socket.timeout:
        pass
print("ACCEPTED %%d" %% n, flush=True)
''' % (LISTEN_PORT, LISTEN_PORT, LISTEN_S)

CROSS = r'''
import socket, sys
s = socket.socket()
s.settimeout(3)
print("CROSS %d" % s.connect_ex((sys.argv[1], int(sys.argv[2]))))
'''


def result_of(out):
    for line in (out or b"").decode("utf-8", "replace").split("\n"):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return None


def partial(svc, job_id):
    r = svc.get("/getPartialOutput/%s/%d/" % (svc.key, job_id)).json()
    return r.get("output", "") if r.get("statusId") == 0 else ""


def check_network_setup(svc):
    net = inspect_network(NET)
    tlib.check("jobs' network exists", net is not None)
    opts = (net or {}).get("Options", {})
    tlib.check("jobs' network: bridge with inter-container traffic off",
               net and net["Driver"] == "bridge" and
               opts.get("com.docker.network.bridge.enable_icc") == "false", opts)
    ifname = opts.get("com.docker.network.bridge.name") or "br-" + (net or {}).get("Id", "")[:12]
    rule = ["INPUT", "-i", ifname, "-m", "conntrack", "!", "--ctstate", "ESTABLISHED,RELATED",
            "-j", "DROP"]
    for prog in ("iptables", "ip6tables"):
        rc = subprocess.run([prog, "-w", "5", "-C"] + rule, capture_output=True).returncode
        tlib.check("host firewall rule in place (%s)" % prog, rc == 0, rc)
    log = svc.consumers[0].logtext()
    tlib.check("consumer logged the jobs' network", "event=jobs_network network=%s" % NET in log,
               log[-400:])
    cfg = (net or {}).get("IPAM", {}).get("Config") or [{}]
    return cfg[0].get("Gateway") or DOCKER0


def run(svc):
    gw = check_network_setup(svc)
    print("# jobs' gateway %s" % gw)
    l_gw, l_d0 = Listener(gw), Listener(DOCKER0)
    p2_port = tlib.free_port()
    p2 = tlib.Proc("producer-gw", [os.path.join(tlib.BUILD, "tango-producer"), "-c",
                                   svc.write_config({"port": p2_port, "bind": gw})],
                   svc.env(), os.path.join(svc.tmp, "producer-gw.log")).start()
    def listening():
        try:
            socket.create_connection((gw, p2_port), 0.5).close()
            return True
        except OSError:
            return None
    tlib.check("second producer listens on the gateway address", wait_for(listening, 10))
    try:
        run_jobs(svc, gw, l_gw, l_d0, p2_port)
    finally:
        l_gw.close()
        l_d0.close()
        rc = p2.stop()
        tlib.check("second producer exits cleanly", rc == 0, rc)


def run_jobs(svc, gw, l_gw, l_d0, p2_port):
    # the listening job first (lab netA), then the probe, then the other job (lab netB)
    rl = submit(svc, "netA", {"listen.py": LISTEN.encode(), "Makefile": makefile("python3 listen.py")},
                "listen.out", timeout=LISTEN_S + 30)
    tlib.check("listening job added", rl.get("statusMsg") == "Job added", rl)
    targets = {"connect": {"gateway listener": [gw, l_gw.port],
                           "docker0 listener": [DOCKER0, l_d0.port],
                           "producer bound to the gateway": [gw, p2_port],
                           "producer port at the gateway": [gw, svc.port],
                           "producer port at docker0": [DOCKER0, svc.port]},
               "loris": [gw, p2_port], "loris_n": 40}
    watch = Watch(gw, p2_port)   # the gateway-bound producer, while the probe runs
    rp = submit(svc, "netP", {"probe.py": PROBE.encode(),
                              "targets.json": json.dumps(targets).encode(),
                              "Makefile": makefile("python3 probe.py")},
                "probe.out", timeout=40)
    tlib.check("probe job added", rp.get("statusMsg") == "Job added", rp)

    text = wait_for(lambda: partial(svc, rl["jobId"]) if "LISTENING" in partial(svc, rl["jobId"])
                    else None, 60) or ""
    ip = [l.split()[1] for l in text.split("\n") if l.startswith("LISTENING ")]
    tlib.check("listening job listens and reaches itself", ip, text[-300:])
    if ip:
        rc = submit(svc, "netB", {"cross.py": CROSS.encode(),
                                  "Makefile": makefile("python3 cross.py %s %d" % (ip[0], LISTEN_PORT))},
                    "cross.out", timeout=20)
        out = wait_output(svc, "netB", "cross.out", 60) or b""
        line = [l for l in out.decode("utf-8", "replace").split("\n") if l.startswith("CROSS ")]
        tlib.check("a job in another lab cannot connect to it",
                   line and line[0] != "CROSS 0", out[-400:])

    res = result_of(wait_output(svc, "netP", "probe.out", 90))
    watch.stop()
    tlib.check("gateway-bound producer kept answering during the slowloris",
               watch.ok >= 5 and watch.bad == 0, (watch.ok, watch.bad))
    tlib.check("probe job reports", res is not None)
    res = res or {"connect": {}, "loris_open": -1, "default_route": False}
    for label in targets["connect"]:
        rc = res["connect"].get(label)
        tlib.check("job cannot connect to the %s" % label, rc not in (None, 0), rc)
    tlib.check("slowloris from a job opens no connection to the producer",
               res["loris_open"] == 0, res["loris_open"])
    tlib.check("test listeners saw no connection", l_gw.accepted == 0 and l_d0.accepted == 0,
               (l_gw.accepted, l_d0.accepted))
    tlib.check("job keeps a default route (outbound on)", res["default_route"], res)

    out = wait_output(svc, "netA", "listen.out", LISTEN_S + 40) or b""
    tlib.check("listening job accepted nothing from the other job",
               b"ACCEPTED 0" in out, out[-300:])


def status_at(host, port):
    """GET / on host:port (an address of this machine); the HTTP status."""
    c = http.client.HTTPConnection(host, port, timeout=3)
    try:
        c.request("GET", "/")
        return c.getresponse().status
    finally:
        c.close()


class Watch:
    """Asks GET / of host:port every 0.5 s until stopped; counts answers."""

    def __init__(self, host, port):
        self.ok = self.bad = 0
        self.stopped = False
        self.thread = threading.Thread(target=self.loop, args=(host, port), daemon=True)
        self.thread.start()

    def loop(self, host, port):
        while not self.stopped:
            try:
                if status_at(host, port) == 200:
                    self.ok += 1
                else:
                    self.bad += 1
            except OSError:
                self.bad += 1
            time.sleep(0.5)

    def stop(self):
        self.stopped = True
        self.thread.join(10)


def misconfigured(svc):
    """A consumer pointed at a network with inter-container traffic on."""
    name = P + "icc"
    subprocess.run(["docker", "network", "create", name], capture_output=True, check=True)
    try:
        c = svc.start_consumer(consumer_config(svc, {"network": name}, prefix=P + "x-"))
        rc = wait_for(lambda: c.proc.poll(), 30)
        log = c.logtext()
        tlib.check("consumer refuses a network with inter-container traffic on",
                   rc not in (None, 0) and "lets jobs reach each other" in log, (rc, log[-500:]))
        if rc is None:
            c.kill()
    finally:
        subprocess.run(["docker", "network", "rm", name], capture_output=True)
    c = svc.start_consumer(consumer_config(svc, {"host_firewall": False}, prefix=P + "y-"))
    seen = wait_for(lambda: "event=jobs_firewall_off" in c.logtext(), 30)
    rc = c.stop(60)
    tlib.check("host_firewall false: started, with a warning naming the rule",
               seen and rc == 0 and "-j DROP" in c.logtext(), (rc, c.logtext()[-400:]))


WHERE = r'''
import socket, sys
s = socket.socket()
s.settimeout(3)
print("WHERE %s %d" % (socket.gethostbyname(socket.gethostname()),
                       s.connect_ex((sys.argv[1], int(sys.argv[2])))))
'''


def dist_docker(svc):
    """distDocker: a job with network on a worker host joins the jobs' network
    there (the test fleet's hosts share this machine's Docker engine)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "fleet"))
    import fleet
    net = inspect_network(NET) or {}
    cfg = (net.get("IPAM", {}).get("Config") or [{}])[0]
    gw, subnet = cfg.get("Gateway", DOCKER0), cfg.get("Subnet", "0.0.0.0/32")
    lis = Listener(gw)
    try:
        with fleet.Fleet(2) as f:
            c = svc.start_consumer(dict(consumer_config(svc, prefix=P + "d-"), vmms="distDocker",
                                        vmms_config={"distDocker": f.distdocker_config()}))
            r = submit(svc, "netD", {"where.py": WHERE.encode(),
                                     "Makefile": makefile("python3 where.py %s %d" % (gw, lis.port))},
                       "where.out", timeout=20)
            out = (wait_output(svc, "netD", "where.out", 90) or b"").decode("utf-8", "replace")
            rc = c.stop(60)
            tlib.check("distDocker: consumer exits 0", rc == 0, rc)
            where = [l.split() for l in out.split("\n") if l.startswith("WHERE ")]
            tlib.check("distDocker: the job runs on the jobs' network", r.get("jobId") and where and
                       ipaddress.ip_address(where[0][1]) in ipaddress.ip_network(subnet),
                       (subnet, out[-300:]))
            tlib.check("distDocker: the job cannot connect to the host at the gateway",
                       where and where[0][2] != "0" and lis.accepted == 0, out[-300:])
            log = c.logtext()
            tlib.check("distDocker: the network checked on the job's host",
                       re.search(r"event=jobs_network host=\S+ network=%s " % NET, log), log[-500:])
    finally:
        lis.close()


def main():
    with tlib.Service(producers=1) as svc:
        svc.start_consumer(consumer_config(svc))
        wait_for(lambda: "event=jobs_network" in svc.consumers[0].logtext() or
                 svc.consumers[0].proc.poll() is not None, 30)
        try:
            run(svc)
        finally:
            rc = svc.consumers[0].stop(60)
            tlib.check("consumer drains and exits 0", rc == 0, rc)
        misconfigured(svc)
        if os.geteuid() == 0:
            dist_docker(svc)
        svc.consumers.clear()
    tlib.done()


if __name__ == "__main__":
    main()
