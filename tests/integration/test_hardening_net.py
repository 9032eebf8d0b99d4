"""What a job's network can reach (issue 18 points 1 and 2), end to end
through the HTTP API with a real producer and consumer, on localOCI,
localDocker and distDocker (tests/fleet):
  - fixtures of the test's own: two throwaway containers on the host's
    Docker serving a secret, one on docker0 and one on a network of ours,
    each with a published port; an "internet" host in a network namespace
    of ours behind a veth, answering at its address and at a link-local
    address of ours (169.254.99.2; the metadata service's address is never
    sent a packet);
  - localOCI (its bridge, subnet and uplink of the test's own): a job gets
    to the internet host and nowhere else: not a container on docker0, not
    a container on another bridge, not a port Docker publishes (at the job's
    gateway or at docker0's address), not a service of the host, not the
    link-local address; the mangle chain that decides is installed and
    jumped to (IPv4 and IPv6: DNAT, 169.254.0.0/16, fe80::/10,
    fd00:ec2::254) while localOCI's own filter ACCEPT sits above Docker's
    chains, so the drops hold whatever the filter order;
  - localDocker: the same probes (Docker's isolation already kept the
    containers away; the link-local address and the chain are new); a
    consumer whose iptables fails (its own mount namespace, the binary
    replaced by /bin/false) does not start and says why;
  - distDocker: the chain installed on the worker host (the fleet host's
    own network namespace), read there with iptables -C.
Everything the test makes (containers, networks, namespaces, routes, the
bridges' rules) is removed at the end."""
import json
import os
import socket
import subprocess
import sys

import test_e2e_localdocker as ldbase
import test_e2e_localoci as oci
import tlib
from tjobs import makefile, submit, wait_output

PID = os.getpid()
P = "thn%d" % (PID % 100000)            # names: containers, networks, netns
OCI_BR = "thno%d" % (PID % 100000)      # localOCI's bridge (<= 15 chars)
OCI_NET = "10.237.0.0/16"
OCI_GW = "10.237.0.1"
LD_NET = "thnj%d" % (PID % 100000)      # localDocker's / distDocker's network and bridge
NS = P + "-inet"
NS_IF = "thni%d" % (PID % 100000)       # host end of the internet host's veth
NS_HOST, NS_ADDR = "10.238.%d.1" % (PID % 250), "10.238.%d.2" % (PID % 250)
LINKLOCAL = "169.254.99.2"              # an address of the internet host; ours
DOCKER0 = "172.17.0.1"
SECRET_PORT = 8765

SERVER = ("import os, socket\ns = socket.socket()\n"
          "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "s.bind(('0.0.0.0', %d))\ns.listen(16)\nwhile True:\n"
          "    c, _ = s.accept()\n    c.sendall(os.environ['SECRET'].encode())\n"
          "    c.close()\n" % SECRET_PORT)

PROBE = r'''
import json, socket
for name, host, port in json.load(open("targets.json")):
    s = socket.socket()
    s.settimeout(3)
    got = b""
    try:
        rc = s.connect_ex((host, port))
        if rc == 0:
            got = s.recv(200)
    except OSError as e:
        rc = "err"
    s.close()
    print("PROBE %s %s %s" % (name, rc, got.decode("ascii", "replace") or "-"), flush=True)
'''


def sh(*args, check=True, ns=None):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.strip()))
    return r


def read_secret(host, port):
    """What a server of this machine sends on connect ("" if nothing)."""
    try:
        with socket.create_connection((host, port), 3) as s:
            return s.recv(200).decode("ascii", "replace")
    except OSError:
        return ""


class Fixtures:
    """The secret containers and the internet host."""

    def __init__(self):
        self.secret = {}
        self.addr = {}
        self.pub = {}
        self.listener = None

    def up(self):
        sh("docker", "network", "create", P + "-pub")
        for name, net in (("d0", "bridge"), ("pub", P + "-pub")):
            self.secret[name] = "SECRET-%s-%d" % (name, PID)
            sh("docker", "run", "-d", "--name", "%s-%s" % (P, name), "--network", net,
               "-e", "SECRET=" + self.secret[name], "-p", str(SECRET_PORT),
               "autograding_image", "python3", "-c", SERVER)
            info = json.loads(sh("docker", "inspect", "%s-%s" % (P, name)).stdout)[0]
            nets = info["NetworkSettings"]["Networks"]
            self.addr[name] = nets[net]["IPAddress"]
            self.pub[name] = int(info["NetworkSettings"]["Ports"]["%d/tcp" % SECRET_PORT][0]
                                 ["HostPort"])
        self.internet_up()
        for name in self.secret:
            tlib.check("fixture: container %s serves its secret directly" % name,
                       tlib.wait_for(lambda: read_secret(self.addr[name], SECRET_PORT) ==
                                     self.secret[name], 30), self.addr[name])
            tlib.check("fixture: container %s's published port serves it" % name,
                       tlib.wait_for(lambda: read_secret(DOCKER0, self.pub[name]) ==
                                     self.secret[name], 30), self.pub[name])
        for a in (NS_ADDR, LINKLOCAL):
            tlib.check("fixture: internet host answers at %s" % a,
                       tlib.wait_for(lambda: read_secret(a, self.inet_port) == "pong", 30))

    def internet_up(self):
        sh("ip", "netns", "add", NS)
        sh("ip", "link", "add", NS_IF, "type", "veth", "peer", "name", "eth0", "netns", NS)
        sh("ip", "addr", "add", NS_HOST + "/30", "dev", NS_IF)
        sh("ip", "link", "set", NS_IF, "up")
        for cmd in (["addr", "add", NS_ADDR + "/30", "dev", "eth0"],
                    ["addr", "add", LINKLOCAL + "/32", "dev", "lo"], ["link", "set", "eth0", "up"],
                    ["link", "set", "lo", "up"], ["route", "add", "default", "via", NS_HOST]):
            sh("ip", *cmd, ns=NS)
        sh("ip", "route", "add", LINKLOCAL + "/32", "via", NS_ADDR, "dev", NS_IF)
        self.inet_port = tlib.free_port()
        code = ("import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, "
                "socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', %d)); s.listen(16)\nwhile True:\n"
                "    c, _ = s.accept(); c.sendall(b'pong'); c.close()\n" % self.inet_port)
        self.listener = subprocess.Popen(["ip", "netns", "exec", NS, "python3", "-c", code])

    def down(self):
        if self.listener:
            self.listener.kill()
            self.listener.wait()
        for name in ("d0", "pub"):
            sh("docker", "rm", "-f", "%s-%s" % (P, name), check=False)
        sh("docker", "network", "rm", P + "-pub", check=False)
        sh("ip", "route", "del", LINKLOCAL + "/32", check=False)
        sh("ip", "netns", "del", NS, check=False)
        sh("ip", "link", "del", NS_IF, check=False)


def probe(svc, lab, targets, timeout=60):
    """Runs the probe in a job with network; {name: (rc, what it read)}."""
    r = submit(svc, lab, {"probe.py": PROBE.encode(),
                          "targets.json": json.dumps(targets).encode(),
                          "Makefile": makefile("python3 probe.py")}, "probe.out", timeout=40)
    out = wait_output(svc, lab, "probe.out", timeout) or b""
    res = {}
    for line in out.decode("utf-8", "replace").split("\n"):
        f = line.split()
        if len(f) == 4 and f[0] == "PROBE":
            res[f[1]] = (f[2], f[3])
    tlib.check("%s: probe job ran" % lab, r.get("jobId") is not None and
               len(res) == len(targets), out[-600:])
    return res


def blocked_targets(fx, gw):
    return [["docker0-container", fx.addr["d0"], SECRET_PORT],
            ["other-bridge-container", fx.addr["pub"], SECRET_PORT],
            ["published-docker0-at-gateway", gw, fx.pub["d0"]],
            ["published-other-at-gateway", gw, fx.pub["pub"]],
            ["published-at-docker0-address", DOCKER0, fx.pub["pub"]],
            ["linklocal", LINKLOCAL, fx.inet_port]]


def check_probe(who, fx, res, blocked):
    got = res.get("internet", ("?", "-"))
    tlib.check("%s: a job reaches the internet host" % who, got == ("0", "pong"), got)
    for name, _, _ in blocked:
        rc, text = res.get(name, ("?", "-"))
        tlib.check("%s: a job cannot reach the %s" % (who, name),
                   rc not in ("0", "?") and "SECRET" not in text and text != "pong",
                   (rc, text))


def rule_ok(prog, bridge, *rule, table="mangle", ns=None):
    chain = "TANGO-" + bridge
    args = [prog, "-w", "5", "-t", table, "-C"] + (list(rule) if rule[0] in ("FORWARD", "INPUT")
                                                  else [chain] + list(rule))
    return sh(*args, check=False, ns=ns).returncode == 0


def check_rules(who, bridge, ns=None):
    """The jobs' firewall as installed (iptables -C), never by a packet to
    the metadata service."""
    c = "TANGO-" + bridge
    checks = [("iptables", "chain jumped to from mangle FORWARD", ("FORWARD", "-j", c)),
              ("iptables", "DNAT'd destinations dropped",
               ("-i", bridge, "-m", "conntrack", "--ctstate", "DNAT", "-j", "DROP")),
              ("iptables", "169.254.0.0/16 dropped", ("-i", bridge, "-d", "169.254.0.0/16",
                                                      "-j", "DROP")),
              ("ip6tables", "IPv6 chain jumped to", ("FORWARD", "-j", c)),
              ("ip6tables", "IPv6 DNAT'd destinations dropped",
               ("-i", bridge, "-m", "conntrack", "--ctstate", "DNAT", "-j", "DROP")),
              ("ip6tables", "fe80::/10 dropped", ("-i", bridge, "-d", "fe80::/10", "-j", "DROP")),
              ("ip6tables", "fd00:ec2::254 dropped", ("-i", bridge, "-d", "fd00:ec2::254/128",
                                                      "-j", "DROP"))]
    for prog, what, rule in checks:
        tlib.check("%s: %s (%s -C)" % (who, what, prog), rule_ok(prog, bridge, *rule, ns=ns))
    for prog in ("iptables", "ip6tables"):
        tlib.check("%s: INPUT rule in place (%s)" % (who, prog), rule_ok(
            prog, bridge, "INPUT", "-i", bridge, "-m", "conntrack", "!", "--ctstate",
            "ESTABLISHED,RELATED", "-j", "DROP", table="filter", ns=ns))


def remove_rules(bridge):
    """Every rule naming bridge or its chain, and the chain (v4 and v6)."""
    for prog in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            for line in sh(prog, "-w", "5", "-t", table, "-S", check=False).stdout.split("\n"):
                f = line.split()
                if len(f) > 2 and f[0] == "-A" and (bridge in f or "TANGO-" + bridge in f):
                    sh(prog, "-w", "5", "-t", table, "-D", *f[1:], check=False)
        sh(prog, "-w", "5", "-t", "mangle", "-X", "TANGO-" + bridge, check=False)


def local_oci(svc, fx):
    c = svc.start_consumer(oci.oci_config(svc, oci={
        "network_bridge": OCI_BR, "network_subnet": OCI_NET, "network_uplinks": [NS_IF]}))
    tlib.check("localOCI: consumer up with the jobs' network", tlib.wait_for(
        lambda: "event=jobs_network vmms=localOCI bridge=%s " % OCI_BR in c.logtext() or
        c.proc.poll() is not None, 60) and
        c.proc.poll() is None, c.logtext()[-600:])
    check_rules("localOCI", OCI_BR)
    tlib.check("localOCI: only the uplink lets jobs out, only replies come in",
               rule_ok("iptables", OCI_BR, "-i", OCI_BR, "-o", NS_IF, "-j", "RETURN") and
               rule_ok("iptables", OCI_BR, "-i", OCI_BR, "-j", "DROP") and
               rule_ok("iptables", OCI_BR, "-o", OCI_BR, "-j", "DROP"))
    fwd = sh("iptables", "-w", "5", "-S", "FORWARD").stdout.split("\n")
    ours = [i for i, l in enumerate(fwd) if l.startswith("-A FORWARD -i %s " % OCI_BR) and
            l.endswith("-j ACCEPT")]
    docker = [i for i, l in enumerate(fwd) if "DOCKER" in l] or [len(fwd)]
    tlib.check("localOCI: a filter ACCEPT of the bridge sits above Docker's chains (what "
               "decides is in mangle)", ours and ours[0] < docker[0], fwd[:6])
    host = Listener()
    blocked = blocked_targets(fx, OCI_GW) + [["host-service", OCI_GW, host.port]]
    res = probe(svc, "hnoci", [["internet", NS_ADDR, fx.inet_port]] + blocked)
    host.close()
    check_probe("localOCI", fx, res, blocked)
    tlib.check("localOCI: consumer exits 0", c.stop(60) == 0)
    svc.consumers.clear()


def local_docker(svc, fx):
    c = svc.start_consumer(ldbase.consumer_config(svc, extra={"vmms_config": {"localDocker": {
        "volume_dir": os.path.join(svc.tmp, "volumes"), "network": LD_NET,
        "network_bridge": LD_NET}}}))
    tlib.check("localDocker: consumer up with the jobs' network", tlib.wait_for(
        lambda: "event=jobs_network network=%s " % LD_NET in c.logtext() or
        c.proc.poll() is not None, 60) and
        c.proc.poll() is None, c.logtext()[-600:])
    check_rules("localDocker", LD_NET)
    net = json.loads(sh("docker", "network", "inspect", LD_NET).stdout)[0]
    gw = net["IPAM"]["Config"][0]["Gateway"]
    blocked = blocked_targets(fx, gw)
    res = probe(svc, "hnld", [["internet", NS_ADDR, fx.inet_port]] + blocked)
    check_probe("localDocker", fx, res, blocked)
    tlib.check("localDocker: consumer exits 0", c.stop(60) == 0)
    svc.consumers.clear()


def firewall_refused(svc):
    """A localDocker consumer whose iptables fails (in a mount namespace of
    its own, iptables' binary is /bin/false) does not start, and says why."""
    prog = os.path.realpath("/usr/sbin/iptables-restore")
    cfg = svc.write_config(ldbase.consumer_config(svc, extra={
        "instance_prefix": P + "f-", "vmms_config": {"localDocker": {
            "volume_dir": os.path.join(svc.tmp, "volumes"), "network": LD_NET,
            "network_bridge": LD_NET}}}))
    c = tlib.Proc("consumer-nofw", [
        "unshare", "-m", "--propagation", "private", "sh", "-c",
        'mount --bind /bin/false "$0" && exec "$1" -c "$2"', prog,
        os.path.join(tlib.BUILD, "tango-consumer"), cfg], svc.env(),
        os.path.join(svc.tmp, "consumer-nofw.log")).start()
    rc = tlib.wait_for(lambda: c.proc.poll() is not None, 60)
    log = c.logtext()
    tlib.check("a consumer that cannot install the jobs' firewall does not start, saying why",
               rc and c.proc.returncode != 0 and "jobs' firewall" in log, log[-600:])
    if c.proc.poll() is None:
        c.kill()
    c.stop()


def dist_docker(svc):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "fleet"))
    import fleet
    with fleet.Fleet(1) as f:
        c = svc.start_consumer(dict(ldbase.consumer_config(svc), vmms="distDocker",
                                    vmms_config={"distDocker": f.distdocker_config(
                                        network=LD_NET, network_bridge=LD_NET)}))
        r = submit(svc, "hndd", {"Makefile": makefile("echo ran")}, "dd.out", timeout=30)
        out = wait_output(svc, "hndd", "dd.out", 90) or b""
        tlib.check("distDocker: a job with network ran", r.get("jobId") is not None and
                   b"ran" in out, out[-300:])
        check_rules("distDocker (on the worker host)", LD_NET, ns=f.info["hosts"][0]["netns"])
        tlib.check("distDocker: consumer exits 0", c.stop(60) == 0)
        svc.consumers.clear()


class Listener:
    """A TCP listener of this machine on every address; counts nothing."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


def main():
    fx = Fixtures()
    try:
        fx.up()
        with tlib.Service(producers=1) as svc:
            try:
                local_oci(svc, fx)
                local_docker(svc, fx)
                firewall_refused(svc)
                dist_docker(svc)
            finally:
                for c in svc.consumers:
                    c.kill()
                svc.consumers.clear()
    finally:
        fx.down()
        sh("docker", "network", "rm", LD_NET, check=False)
        sh("ip", "link", "del", OCI_BR, check=False)
        for br in (OCI_BR, LD_NET):
            remove_rules(br)
        oci.remove_run_dir()
    tlib.done()


if __name__ == "__main__":
    main()
