"""End-to-end jobs on the localOCI back end (issue 12): the very job set
localDocker passes (test_e2e_localdocker.run_suite: hello, partial output,
timeout, failing make, endless output capped, memory hog, fork bomb next to
a compile, disable_network, same output name in two labs, 20 jobs at once),
run through a real producer and consumer on real crun and runc (the
runtime `auto` picks, then the other one), overlayfs and
cgroups, with the image imported from the local Docker engine into a layer
store; then nothing of ours is left: mounts, bundles, runtime state,
cgroups, network namespaces, veths.

The layer store is shared by the localOCI tests (LAYER_STORE): a layer is
unpacked once per content, whichever test asks first."""
import os
import re
import shutil

import test_e2e_localdocker
import tjobs
import tlib

PREFIX = "to%d-" % os.getpid()
LAYER_STORE = "/var/lib/tango/oci-test-store"
BRIDGE = "tango-oci0"


def run_dir():
    return "/run/tto%d" % os.getpid()


def oci_config(svc, extra=None, oci=None):
    o = {"store_dir": LAYER_STORE, "run_dir": run_dir()}
    o.update(oci or {})
    cfg = test_e2e_localdocker.consumer_config(svc, vmms="localOCI", extra={
        "instance_prefix": PREFIX, "metrics_port": 0,
        "vmms_config": {"localOCI": o}})
    cfg.update(extra or {})
    return cfg


def settled_leftovers(prefix=PREFIX, rdir=None, timeout=15):
    """leftovers() once the kernel has had up to timeout s to finish what
    it does after the plugin's calls return: a deleted network namespace
    takes its veth with it in the kernel's own cleanup work, later."""
    tlib.wait_for(lambda: not leftovers(prefix, rdir), timeout, 0.2)
    return leftovers(prefix, rdir)


def leftovers(prefix=PREFIX, rdir=None):
    """Every piece of a sandbox of ours still on the host."""
    rdir = rdir or run_dir()
    left = []
    with open("/proc/self/mountinfo") as f:
        left += ["mount " + l.split()[4] for l in f if rdir + "/" in l.split()[4]]
    for d in (os.path.join(rdir, "vms"), os.path.join(rdir, "runc"), os.path.join(rdir, "crun"),
              "/run/netns"):
        if os.path.isdir(d):
            left += ["%s/%s" % (d, n) for n in os.listdir(d) if n.startswith(prefix)]
    for ctl in os.listdir("/sys/fs/cgroup"):
        d = os.path.join("/sys/fs/cgroup", ctl, "tango-oci")
        if os.path.isdir(d):
            left += ["cgroup %s/%s" % (ctl, n) for n in os.listdir(d) if n.startswith(prefix)]
    brif = "/sys/class/net/%s/brif" % BRIDGE
    if os.path.isdir(brif):
        left += ["veth " + n for n in os.listdir(brif)]
    return left


def remove_run_dir(rdir=None):
    """The test's own run_dir, once nothing is mounted under it."""
    rdir = rdir or run_dir()
    with open("/proc/self/mountinfo") as f:
        if any(rdir + "/" in l for l in f):
            return
    shutil.rmtree(rdir, ignore_errors=True)


def check_trace_usage(svc, job_id, label):
    dead = tjobs.wait_dead(svc, job_id, 10)
    used = [t for t in (dead or {}).get("trace", []) if " used cpu_user_ms=" in t]
    m = re.search(r"cpu_user_ms=(\d+) cpu_sys_ms=(\d+) peak_memory_kb=(\d+)", used[0]) if used else None
    tlib.check("%s: the trace has the job's CPU time and peak memory" % label,
               m is not None and int(m.group(1)) + int(m.group(2)) > 0 and int(m.group(3)) > 0,
               dead and dead.get("trace"))


def one_pass(runtime):
    """localDocker's job set on localOCI with this runtime setting; returns
    the runtime the plugin says it took."""
    cb = tjobs.CallbackReceiver()  # its own: the job set's callbacks start afresh
    with tlib.Service(producers=1) as svc:
        svc.start_consumer(oci_config(svc, oci={"runtime": runtime}))
        try:
            test_e2e_localdocker.run_suite(svc, cb)
            jobs = svc.get("/jobs/%s/1/" % svc.key).json()["jobs"]
            hello = [j for j in jobs if j.get("name") == "job-hello.out"]
            if tlib.check("hello: dead record found", hello, [j.get("name") for j in jobs]):
                check_trace_usage(svc, hello[0]["id"], "hello")
            out = svc.poll("lab1", "hello.out").body.decode("utf-8", "replace")
            tlib.check("hello: our autodriver reports the sandbox's cgroup usage",
                       re.search(r"^Autodriver: cgroup cpu_user_ms=\d+ cpu_sys_ms=\d+ "
                                 r"peak_memory_kb=[1-9]\d*$", out, re.M), out[:600])
        finally:
            rc = svc.consumers[0].stop(60)
            tlib.check("consumer drains and exits 0", rc == 0, rc)
            svc.consumers.clear()
        log = open(os.path.join(svc.tmp, "consumer0.log")).read()
        took = re.search(r"event=vmms_init vmms=localOCI .*runtime=(runc|crun) .*reason=", log)
        tlib.check("the runtime chosen for this host's cgroups is logged", took, log[:2000])
        left = settled_leftovers()
        tlib.check("nothing of ours left (mounts, bundles, runtime state, cgroups, netns, veths)",
                   not left, left)
        tlib.check("key never in consumer log", svc.key not in log)
        remove_run_dir()
    cb.close()
    return took.group(1) if took else None


def unified_controllers():
    """The unified cgroup hierarchy's controllers on a hybrid host (None if
    the host has no separate unified hierarchy)."""
    try:
        with open("/sys/fs/cgroup/unified/cgroup.controllers") as f:
            return f.read().split()
    except OSError:
        return None


def main():
    took = one_pass("auto")
    ctrls = unified_controllers()
    if ctrls is not None:
        # deploy/setup-host.sh moves what is left in cgroup v2 to v1 mounts
        tlib.check("auto takes crun on a hybrid host with no cgroup v2 controllers, runc with some",
                   took == ("runc" if ctrls else "crun"), (took, ctrls))
    print("# auto took %s (unified hierarchy controllers: %s)" % (took, ctrls))
    other = {"crun": "runc", "runc": "crun"}.get(took)
    if other == "runc" or (other == "crun" and not ctrls):
        print("# the same job set on %s" % other)
        tlib.check("the job set on the other runtime (%s)" % other, one_pass(other) == other)
    else:
        print("# crun does not run on this host's cgroups: the job set ran on runc only")
    tlib.done()


if __name__ == "__main__":
    main()
