"""localOCI's sandbox, end to end (issue 12), on real runc/crun, overlayfs,
cgroups and network namespaces:
  - security: Docker's default capabilities, a seccomp filter, no user
    namespace, a syscall off the allow list refused;
  - network on: a job reaches a server in the test's own network namespace
    (outbound, NAT), but not a service of the host (through the bridge's
    gateway) nor another job's server (isolated bridge ports);
  - the disk filler: writes end in ENOSPC at the job's limit, the job still
    ends normally, no retry;
  - cancel of a running job ends it within seconds;
  - cpu_limit_s: a spinning job is stopped at its CPU time, its output kept;
  - an OCI image layout directory (a gzip layer on top) imported at start;
  - /build of a `docker save` tarball with whiteouts: a file deleted in the
    upper layer is absent in the job, an opaque directory shows only the
    upper layer's entries; layers with "..", or a write through a symbolic
    link, are refused and write nothing outside the store;
  - a consumer SIGKILLed with warm sandboxes: its successor removes them;
  - takeover: the standby re-attaches to runs the killed leader started
    (test_takeover's check, on localOCI);
  - nothing of ours left after 200 jobs and all of the above."""
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
import time

import test_e2e_localoci as oci
import test_takeover
import tjobs
import tlib
from tjobs import makefile, submit, wait_output

NS = "ttn%d" % os.getpid()
NS_HOST_IF = "tth%d" % (os.getpid() % 100000)
NS_ADDR, NS_GW = "10.232.7.2", "10.232.7.1"
WH_IMAGE = "oci-wh-%d" % os.getpid()
OCI_IMAGE = "oci-layout-%d" % os.getpid()
MANY = 200


def has_line(text, line):
    """line is a whole line of text (make echoes each command, so a bare
    substring would also match the command that prints it)."""
    return line in text.split("\n")


def sh(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), r.stderr))
    return r.stdout


def make_test_netns():
    sh("ip", "netns", "add", NS)
    sh("ip", "link", "add", NS_HOST_IF, "type", "veth", "peer", "name", "eth0", "netns", NS)
    sh("ip", "addr", "add", NS_GW + "/30", "dev", NS_HOST_IF)
    sh("ip", "link", "set", NS_HOST_IF, "up")
    for cmd in (["addr", "add", NS_ADDR + "/30", "dev", "eth0"], ["link", "set", "eth0", "up"],
                ["link", "set", "lo", "up"], ["route", "add", "default", "via", NS_GW]):
        sh("ip", "-n", NS, *cmd)


def drop_test_netns():
    sh("ip", "netns", "del", NS, check=False)
    sh("ip", "link", "del", NS_HOST_IF, check=False)


class Listener:
    """A TCP server answering "pong" on (host, port); in the test's netns
    when ns is set (run there with ip netns exec)."""

    def __init__(self, ns=None, host="0.0.0.0"):
        self.port = tlib.free_port()
        code = ("import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, "
                "socket.SO_REUSEADDR, 1); s.bind((%r, %d)); s.listen(16)\nwhile True:\n"
                "    c, _ = s.accept(); c.sendall(b'pong'); c.close()\n" % (host, self.port))
        cmd = (["ip", "netns", "exec", ns] if ns else []) + ["python3", "-c", code]
        self.proc = subprocess.Popen(cmd)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def probe_script(targets):
    """A grader printing 'NAME rc' for each (name, host, port): rc 0 when a
    TCP connection was made within 3 s."""
    lines = ["import socket"]
    for name, host, port in targets:
        lines.append("s = socket.socket(); s.settimeout(3)\n"
                     "try:\n    rc = s.connect_ex((%r, %d))\nexcept OSError as e:\n"
                     "    rc = 'err:%%s' %% e\nprint(%r, rc, flush=True)" % (host, port, name))
    return "\n".join(lines).encode()


def partial(svc, job_id):
    r = svc.get("/getPartialOutput/%s/%d/" % (svc.key, job_id)).json()
    return r.get("output", "") if r.get("statusId") == 0 else ""


def test_network(svc):
    make_test_netns()
    outside = Listener(ns=NS, host=NS_ADDR)
    host_svc = Listener()
    try:
        tlib.wait_for(lambda: sh("ip", "netns", "exec", NS, "ss", "-ltn", check=False).count(
            ":%d" % outside.port) > 0, 10)
        # A: prints its address, then serves on 8000 for a while
        serve = makefile("python3 -c 'import socket; s=socket.socket(socket.AF_INET, "
                         "socket.SOCK_DGRAM); s.connect((\"%s\", 9)); print(\"myaddr\", "
                         "s.getsockname()[0], flush=True)'\n"
                         "timeout 25 python3 -m http.server 8000 >/dev/null 2>&1 || true"
                         % NS_ADDR)
        ra = submit(svc, "net", {"Makefile": serve}, "serve.out", timeout=40)
        addr = [None]

        def got_addr():
            for l in partial(svc, ra["jobId"]).split("\n"):
                if l.startswith("myaddr "):
                    addr[0] = l.split()[1]
                    return True
            return False
        tlib.check("network on: the serving job reports its address", tlib.wait_for(got_addr, 30),
                   partial(svc, ra["jobId"]))
        time.sleep(1)  # the server's own start-up inside job A (not a synchronisation of ours)
        probe = probe_script([("outbound", NS_ADDR, outside.port),
                              ("host", "10.231.0.1", host_svc.port),
                              ("hostns", NS_GW, host_svc.port),
                              ("peer", addr[0] or "10.231.0.2", 8000)])
        rb = submit(svc, "net", {"probe.py": probe, "Makefile": makefile("python3 probe.py")},
                    "probe.out", timeout=30)
        out = wait_output(svc, "net", "probe.out", 60)
        text = out.decode("utf-8", "replace") if out else ""
        res = dict(l.split(" ", 1) for l in text.split("\n")
                   if l.split(" ")[0] in ("outbound", "host", "hostns", "peer"))
        tlib.check("network on: outbound reachable (the test's own namespace)",
                   res.get("outbound") == "0", text[-800:])
        tlib.check("network on: the host's services not reachable through the bridge",
                   res.get("host") not in (None, "0") and res.get("hostns") not in (None, "0"),
                   res)
        tlib.check("network on: another job not reachable", res.get("peer") not in (None, "0"),
                   res)
        svc.post("/cancel/%s/%d/" % (svc.key, ra["jobId"]))
        wait_output(svc, "net", "serve.out", 30)
        del rb
    finally:
        outside.stop()
        host_svc.stop()
        drop_test_netns()


def test_security(svc):
    """The container's process runs with Docker's default capabilities, a
    seccomp filter, and no way to make namespaces."""
    job = makefile("grep -E '^(CapBnd|CapEff):' /proc/1/status | sed 's/^/pid1 /'\n"
                   "grep -E '^Seccomp:' /proc/self/status | sed 's/^/self /'\n"
                   "unshare -U -r true 2>/dev/null && echo unshare-allowed || echo unshare-refused\n"
                   "python3 -c 'import ctypes; l=ctypes.CDLL(None); "
                   "print(\"keyctl\", l.syscall(250, 0, -3, 1))'")
    submit(svc, "sec", {"Makefile": job}, "sec.out", timeout=20)
    out = wait_output(svc, "sec", "sec.out", 60)
    text = out.decode("utf-8", "replace") if out else ""
    lines = text.split("\n")
    docker_caps = "00000000a80425fb"  # Docker's default set
    tlib.check("security: the container's root has Docker's default capabilities only",
               "pid1 CapBnd:\t" + docker_caps in lines and "pid1 CapEff:\t" + docker_caps in lines,
               [l for l in lines if l.startswith("pid1")])
    tlib.check("security: a seccomp filter is on", "self Seccomp:\t2" in lines,
               [l for l in lines if l.startswith("self")])
    tlib.check("security: no user namespace (unshare refused)", has_line(text, "unshare-refused"),
               text[-400:])
    tlib.check("security: a syscall off the allow list (keyctl) fails", has_line(text, "keyctl -1"),
               text[-400:])


def test_disk(svc):
    fill = makefile("-for i in $$(seq 1 14); do dd if=/dev/zero of=/tmp/f$$i bs=1M count=90 "
                    "2>&1 | grep -v records; done\n"
                    "-for i in $$(seq 1 14); do dd if=/dev/zero of=f$$i bs=1M count=90 "
                    "2>&1 | grep -v records; done\n"
                    "df -m /tmp /home/autograde | tail -2\n"
                    "echo writer finished")
    r = submit(svc, "disk", {"Makefile": fill}, "fill.out", timeout=120)
    out = wait_output(svc, "disk", "fill.out", 180)
    text = out.decode("utf-8", "replace") if out else ""
    tlib.check("disk filler: writes end in ENOSPC", text.count("No space left on device") >= 2,
               text[-1500:])
    tlib.check("disk filler: the job's own normal outcome",
               "Success: Autodriver returned normally" in text and has_line(text, "writer finished"),
               text[:400])
    dead = tjobs.wait_dead(svc, r["jobId"], 10)
    tlib.check("disk filler: no retry", dead is not None and dead.get("retries", 0) == 0, dead)


def test_cancel(svc):
    r = submit(svc, "cx", {"Makefile": makefile("echo started\nsleep 30\necho finished")},
               "long.out", timeout=60)
    tlib.wait_for(lambda: "started" in partial(svc, r["jobId"]), 30)
    t0 = time.time()
    svc.post("/cancel/%s/%d/" % (svc.key, r["jobId"]))
    out = wait_output(svc, "cx", "long.out", 20)
    took = time.time() - t0
    tlib.check("cancel running: ends within seconds, cancelled outcome",
               out is not None and b"Error: Job cancelled by request" in out and took < 8,
               (took, out))


def test_cpu_limit(svc):
    # two busy processes: 2 CPU seconds go by in about 1-2 s of wall time
    spin = makefile("echo spinning\n(while :; do :; done) & while :; do :; done")
    t0 = time.time()
    r = submit(svc, "cpu", {"Makefile": spin}, "spin.out", timeout=60, cpu_limit_s=2)
    out = wait_output(svc, "cpu", "spin.out", 60)
    took = time.time() - t0
    text = out.decode("utf-8", "replace") if out else ""
    tlib.check("cpu_limit_s: the job is stopped at its CPU limit, long before its timeout",
               out is not None and took < 20 and "killed at its CPU time limit (2 s of CPU)" in text,
               (round(took, 1), text[-500:]))
    tlib.check("cpu_limit_s: autodriver still reports the job (output kept)",
               has_line(text, "spinning") and "Autodriver: Job exited with status" in text,
               text[-500:])
    dead = tjobs.wait_dead(svc, r["jobId"], 10)
    used = [t for t in (dead or {}).get("trace", []) if " used cpu_user_ms=" in t]
    tlib.check("cpu_limit_s: the trace shows about the limit's CPU time", used and
               1900 <= sum(int(x.split("=")[1]) for x in used[0].split()[-3:-1]) < 6000, used)
    r = svc.add_job("cpu", {"image": "autograding_image", "jobName": "bad", "output_file": "b.out",
                            "files": [], "cpu_limit_s": 999999})
    tlib.check("cpu_limit_s above max_cpu_limit_s is refused", r.get("statusId") != 0, r)


# ---- images with whiteouts, through /build

def tar_bytes(entries):
    """entries: (name, data | None for a directory | ('symlink', target))."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            elif isinstance(data, tuple):
                ti.type, ti.linkname = tarfile.SYMTYPE, data[1]
                t.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def image_tarball(name, layers, base=None):
    """A `docker save` tarball of name: the layers of base (a saved tarball's
    path, or None) plus the given layer tars on top."""
    out = io.BytesIO()
    cfg = {"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/usr/bin:/bin"]},
           "rootfs": {"type": "layers", "diff_ids": []}}
    lpaths = []
    with tarfile.open(fileobj=out, mode="w") as o:
        if base:
            with tarfile.open(base) as b:
                man = json.load(b.extractfile("manifest.json"))[0]
                cfg = json.load(b.extractfile(man["Config"]))
                lpaths = list(man["Layers"])
                for m in b.getmembers():
                    if m.name in lpaths:
                        o.addfile(m, b.extractfile(m))
        for layer in layers:
            h = hashlib.sha256(layer).hexdigest()
            ti = tarfile.TarInfo("%s/layer.tar" % h)
            ti.size = len(layer)
            o.addfile(ti, io.BytesIO(layer))
            lpaths.append(ti.name)
            cfg["rootfs"]["diff_ids"].append("sha256:" + h)
        cbytes = json.dumps(cfg).encode()
        ch = hashlib.sha256(cbytes).hexdigest()
        for n, d in (("%s.json" % ch, cbytes), ("manifest.json", json.dumps(
                [{"Config": "%s.json" % ch, "RepoTags": [name + ":latest"],
                  "Layers": lpaths}]).encode())):
            ti = tarfile.TarInfo(n)
            ti.size = len(d)
            o.addfile(ti, io.BytesIO(d))
    return out.getvalue()


def build(svc, name, tar):
    r = svc.post("/build/%s/" % svc.key, tar, {"imageName": name}, timeout=300)
    try:
        return r.json()
    except ValueError:
        return {"statusId": None, "statusMsg": r.text}


def save_base(svc):
    base = os.path.join(svc.tmp, "base.tar")
    with open(base, "wb") as f:
        subprocess.run(["docker", "save", "autograding_image"], stdout=f, check=True, timeout=120)
    return base


def oci_layout(base, d):
    """An OCI image layout in d: the base's layers as tar blobs, plus a
    gzip-compressed layer with /opt/oci.txt."""
    import gzip
    os.makedirs(os.path.join(d, "blobs", "sha256"))

    def blob(data):
        h = hashlib.sha256(data).hexdigest()
        with open(os.path.join(d, "blobs", "sha256", h), "wb") as f:
            f.write(data)
        return "sha256:" + h
    layers = []
    with tarfile.open(base) as b:
        man = json.load(b.extractfile("manifest.json"))[0]
        cfg = json.load(b.extractfile(man["Config"]))
        for lp in man["Layers"]:
            data = b.extractfile(lp).read()
            layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                           "digest": blob(data), "size": len(data)})
    top = tar_bytes([("opt/", None), ("opt/oci.txt", b"from an OCI layout\n")])
    gz = gzip.compress(top)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                   "digest": blob(gz), "size": len(gz)})
    cfg["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(top).hexdigest())
    cb = json.dumps(cfg).encode()
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": blob(cb), "size": len(cb)},
                           "layers": layers}).encode()
    with open(os.path.join(d, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": blob(manifest),
             "size": len(manifest),
             "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, f)
    with open(os.path.join(d, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


def published(svc):
    try:
        return json.loads(svc.redis.cli("GET", svc.prefix + "images")).get("images", [])
    except (ValueError, TypeError):
        return []


def test_oci_layout(svc):
    tlib.check("OCI image layout: listed by getImages (published)",
               tlib.wait_for(lambda: OCI_IMAGE in published(svc), 60), published(svc))
    submit(svc, "ocil", {"Makefile": makefile("cat /opt/oci.txt\ntest -x /usr/bin/make && "
                                              "echo base layers there")},
           "ocil.out", timeout=20, image=OCI_IMAGE)
    out = wait_output(svc, "ocil", "ocil.out", 60)
    text = out.decode("utf-8", "replace") if out else ""
    tlib.check("OCI image layout (gzip layer on top): imported at start, a job runs on it",
               has_line(text, "from an OCI layout") and has_line(text, "base layers there"),
               text[-600:])
    shutil.rmtree(os.path.join(svc.tmp, "oci-layout"), ignore_errors=True)


def test_whiteouts(svc):
    base = os.path.join(svc.tmp, "base.tar")
    upper = tar_bytes([("etc/", None), ("etc/.wh.debian_version", b""),
                       ("usr/", None), ("usr/share/", None), ("usr/share/doc/", None),
                       ("usr/share/doc/.wh..wh..opq", b""), ("usr/share/doc/onlyme", b"only me\n"),
                       ("opt/", None), ("opt/added.txt", b"added layer\n"),
                       # a new layer each run: the store unpacks a known digest only once
                       ("opt/run-id", b"%d %f\n" % (os.getpid(), time.time()))])
    r = build(svc, WH_IMAGE, image_tarball(WH_IMAGE, [upper], base))
    os.unlink(base)
    tlib.check("whiteout image: /build imports it", r.get("statusId") == 0, r)
    job = makefile("test -e /etc/debian_version && echo present debian_version || "
                   "echo absent debian_version\n"
                   "echo doc: $$(ls /usr/share/doc)\ncat /opt/added.txt\n"
                   "test -e /etc/passwd && echo lower still there")
    submit(svc, "wh", {"Makefile": job}, "wh.out", timeout=20, image=WH_IMAGE)
    out = wait_output(svc, "wh", "wh.out", 60)
    text = out.decode("utf-8", "replace") if out else ""
    tlib.check("whiteout: a file deleted in the upper layer is absent in the job",
               has_line(text, "absent debian_version") and
               not has_line(text, "present debian_version"), text[-600:])
    tlib.check("whiteout: an opaque directory holds only the upper layer's entries",
               has_line(text, "doc: onlyme"), text[-600:])
    tlib.check("whiteout: the upper layer's file and the lower layers' files are there",
               has_line(text, "added layer") and has_line(text, "lower still there"),
               text[-600:])

    escape = "/tmp/oci-escape-%d" % os.getpid()
    hostile = [
        ("a layer entry with ..", [("../../../..%s" % escape, b"x")]),
        ("a write through a symbolic link", [("lnk", ("symlink", "/tmp")),
                                             ("lnk/%s" % os.path.basename(escape), b"x")]),
        ("a whiteout through a symbolic link", [("lnk", ("symlink", "/tmp")),
                                                ("lnk/.wh.%s" % os.path.basename(escape), b"")]),
    ]
    for label, entries in hostile:
        r = build(svc, "oci-bad-%d" % os.getpid(), image_tarball("oci-bad-%d" % os.getpid(),
                                                                 [tar_bytes(entries)]))
        tlib.check("hostile layer refused: %s" % label, r.get("statusId") == -1, r)
        tlib.check("hostile layer: nothing written outside the store (%s)" % label,
                   not os.path.lexists(escape), escape)


def test_many(svc):
    svc.open("many")
    r = svc.upload("many", "Makefile.many", makefile("echo hello $$(hostname)"))
    assert r["statusId"] == 0, r
    t0 = time.time()
    for i in range(MANY):
        svc.add_job("many", {"image": "autograding_image", "jobName": "many%d" % i,
                             "output_file": "many%d.out" % i, "timeout": 20,
                             "files": [{"localFile": "Makefile.many", "destFile": "Makefile"}]})
    outs = [wait_output(svc, "many", "many%d.out" % i, 120) for i in range(MANY)]
    ok = sum(1 for o in outs if o and b"Success: Autodriver returned normally" in o and
             b"hello " in o)
    tlib.check("%d jobs: all succeed" % MANY, ok == MANY, "%d of %d" % (ok, MANY))
    print("# %d hello jobs in %.1fs" % (MANY, time.time() - t0))


def test_crash_cleanup(svc):
    """A consumer SIGKILLed with warm sandboxes made: its successor's
    startup clean-up removes every piece of them."""
    cfg = oci.oci_config(svc, extra={"auto_pool_max": 0})
    a = len(svc.consumers)
    svc.start_consumer(cfg)
    r = svc.post("/prealloc/%s/autograding_image/2/" % svc.key).json()
    tlib.check("crash clean-up: prealloc accepted", r.get("statusId") == 0, r)
    bundles = os.path.join(oci.run_dir(), "vms")
    made = tlib.wait_for(lambda: os.path.isdir(bundles) and len(
        [n for n in os.listdir(bundles) if n.startswith(oci.PREFIX)]) >= 2, 60)
    tlib.check("crash clean-up: two warm sandboxes made", made, oci.leftovers())
    svc.post("/prealloc/%s/autograding_image/0/" % svc.key)
    svc.consumers[a].kill(signal.SIGKILL)
    left = oci.leftovers()
    tlib.check("crash clean-up: the killed consumer left its sandboxes",
               any(l.startswith("cgroup") for l in left) and any("/vms/" in l for l in left), left)
    svc.start_consumer(cfg)
    gone = tlib.wait_for(lambda: not oci.leftovers(), 60)
    tlib.check("crash clean-up: the successor removes them all (bundles, mounts, runtime "
               "state, cgroups)", gone, oci.leftovers())
    tlib.check("crash clean-up: the successor exits 0", svc.consumers[a + 1].stop(60) == 0)


def main():
    cb = tjobs.CallbackReceiver()
    drop_test_netns()
    # an image the operator provides (oci_images) is listed in "images", or no
    # key may run it (only configured images and a key's own builds: issue 18)
    with tlib.Service(producers=1, config={"build_timeout_s": 300, "max_upload_mb": 1024,
                                           "images": ["autograding_image", OCI_IMAGE]}) as svc:
        base = save_base(svc)
        layout = os.path.join(svc.tmp, "oci-layout")
        oci_layout(base, layout)
        # the test's own namespace stands for the internet: jobs leave by its veth
        svc.start_consumer(oci.oci_config(svc, oci={"oci_images": {OCI_IMAGE: layout},
                                                    "network_uplinks": [NS_HOST_IF]}))
        try:
            for t in (test_oci_layout, test_security, test_network, test_disk, test_cancel, test_cpu_limit,
                      test_whiteouts, test_many):
                t(svc)
        finally:
            rc = svc.consumers[0].stop(60)
            tlib.check("consumer drains and exits 0", rc == 0, rc)
        left = oci.settled_leftovers()
        tlib.check("nothing of ours left after %d jobs and the rest" % MANY, not left, left)
        # takeover: the standby re-attaches to the killed leader's runs
        cfg = test_takeover.config(svc, oci.oci_config(svc))
        standby = test_takeover.takeover_keeps_runs(svc, cb, cfg, "localOCI", "keep")
        tlib.check("takeover: the standby drains and exits 0", svc.consumers[standby].stop(60) == 0)
        left = oci.settled_leftovers()
        tlib.check("nothing of ours left after the takeover", not left, left)
        test_crash_cleanup(svc)
        oci.remove_run_dir()
    for d in ("images",):
        for n in (WH_IMAGE, OCI_IMAGE, "oci-bad-%d" % os.getpid()):
            p = os.path.join(oci.LAYER_STORE, d, n + ".json")
            if os.path.exists(p):
                os.unlink(p)
    cb.close()
    tlib.done()


if __name__ == "__main__":
    main()
