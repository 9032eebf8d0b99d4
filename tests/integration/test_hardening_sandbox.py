"""Issue 18, points 3 to 5, end to end (real Redis, producer, consumer,
Docker, runc/crun):
  3. one seccomp profile on every back end (localOCI, localDocker,
     distDocker on a one-host fleet): a C program compiled in the job tries
     socket(AF_ALG), socket(AF_VSOCK), io_uring_setup, userfaultfd,
     perf_event_open, bpf, keyctl, unshare(CLONE_NEWUSER) and mount; each
     must be refused by the filter (EPERM: a kernel without AF_ALG says
     EAFNOSUPPORT, which is no proof), while fork and AF_INET, AF_INET6 and
     AF_UNIX sockets work;
  4. localOCI: no host user reads a sandbox (as nobody: the grader in its
     mount/, the setuid autodriver in its root, the layer store), run_dir
     and store_dir are 0700 (an existing store of wider mode too);
  5. localOCI with a hostile image whose /etc/passwd is an absolute link
     that is, on the host, /dev/zero: a job with cpu_limit_s is still
     stopped at its CPU limit, a job past its timeout ends, a cancelled one
     ends, and the consumer does not spin."""
import json
import os
import stat
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fleet"))

import fleet  # noqa: E402
import test_e2e_distdocker as dd  # noqa: E402
import test_e2e_localdocker as ld  # noqa: E402
import test_e2e_localoci as oci  # noqa: E402
import tjobs  # noqa: E402
import tlib  # noqa: E402
from tjobs import makefile, submit, wait_output  # noqa: E402

HOSTILE = "tango-hostile-passwd-%d" % os.getpid()
# In the image: a regular copy of /etc/passwd; on the host: a link to /dev/zero.
HOST_PASSWD = "/tmp/tango-hp%d-passwd" % os.getpid()
NOBODY = 65534

PROBE = rb"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *what, long rc)
{
    if (rc < 0)
        printf("probe %s refused %s\n", what, strerror(errno));
    else
        printf("probe %s allowed\n", what);
}

int main(void)
{
    char params[120] = {0}, attr[128] = {0};
    struct perf_event_attr pe = {.type = PERF_TYPE_SOFTWARE, .size = sizeof pe,
                                 .config = PERF_COUNT_SW_CPU_CLOCK, .exclude_kernel = 1,
                                 .exclude_hv = 1};
    say("socket-alg", socket(38 /* AF_ALG */, SOCK_SEQPACKET, 0));
    say("socket-vsock", socket(40 /* AF_VSOCK */, SOCK_STREAM, 0));
    say("io_uring_setup", syscall(SYS_io_uring_setup, 1, params));
    say("userfaultfd", syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */));
    say("perf_event_open", syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0));
    say("bpf", syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, attr, sizeof attr));
    say("keyctl", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* SESSION */, 1));
    say("unshare-user", unshare(CLONE_NEWUSER));
    say("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
    pid_t p = fork();
    if (p == 0)
        _exit(7);
    int st = 0;
    say("fork", p > 0 && waitpid(p, &st, 0) == p && WEXITSTATUS(st) == 7 ? 0 : -1);
    say("socket-inet", socket(AF_INET, SOCK_STREAM, 0));
    say("socket-inet6", socket(AF_INET6, SOCK_DGRAM, 0));
    say("socket-unix", socket(AF_UNIX, SOCK_STREAM, 0));
    return 0;
}
"""
REFUSED = ["socket-alg", "socket-vsock", "io_uring_setup", "userfaultfd", "perf_event_open",
           "bpf", "keyctl", "unshare-user", "mount"]
ALLOWED = ["fork", "socket-inet", "socket-inet6", "socket-unix"]


def check_seccomp(svc, backend):
    """The probe job on the consumer running now (backend names it)."""
    lab = "sc" + backend.lower()
    submit(svc, lab, {"probe.c": PROBE, "Makefile": makefile("gcc -o probe probe.c\n./probe")},
           "probe.out", timeout=60)
    out = wait_output(svc, lab, "probe.out", 120)
    lines = out.decode("utf-8", "replace").split("\n") if out else []
    got = {l.split()[1]: " ".join(l.split()[2:]) for l in lines
           if l.startswith("probe ") and len(l.split()) > 2}
    for name in REFUSED:
        tlib.check("%s seccomp: %s refused by the filter (EPERM)" % (backend, name),
                   got.get(name) == "refused Operation not permitted", got.get(name) or lines[-20:])
    for name in ALLOWED:
        tlib.check("%s seccomp: %s works" % (backend, name), got.get(name) == "allowed",
                   got.get(name) or lines[-20:])


def as_nobody(*argv):
    """argv's exit status when run as nobody with no groups."""
    return subprocess.run(list(argv), user=NOBODY, group=NOBODY, extra_groups=[],
                          capture_output=True, timeout=30).returncode


def partial(svc, job_id):
    r = svc.get("/getPartialOutput/%s/%d/" % (svc.key, job_id)).json()
    return r.get("output", "") if r.get("statusId") == 0 else ""


def running_bundle():
    """A bundle of ours whose mount/ holds a Makefile (a job is in it)."""
    vms = os.path.join(oci.run_dir(), "vms")
    for n in os.listdir(vms) if os.path.isdir(vms) else []:
        if n.startswith(oci.PREFIX) and os.path.exists(os.path.join(vms, n, "mount", "Makefile")):
            return os.path.join(vms, n)
    return None


def check_host_users(svc, job_id):
    """Point 4, while job_id runs in a sandbox."""
    tlib.wait_for(lambda: "started" in partial(svc, job_id), 180)
    bundle = tlib.wait_for(running_bundle, 10)
    if not tlib.check("host users: a running job's bundle found", bundle, oci.leftovers()):
        return
    makefile_path = os.path.join(bundle, "mount", "Makefile")
    autodriver = os.path.join(bundle, "rootfs", "usr", "bin", "autodriver")
    tlib.check("host users: the autodriver is in the sandbox's root (as root)",
               os.stat(autodriver).st_mode & stat.S_ISUID, autodriver)
    tlib.check("host users: nobody cannot read the job's grader (%s)" % makefile_path,
               as_nobody("cat", makefile_path) != 0)
    tlib.check("host users: nobody cannot reach the setuid autodriver in the sandbox's root",
               as_nobody("test", "-x", autodriver) != 0)
    tlib.check("host users: nobody cannot list the layer store",
               as_nobody("ls", os.path.join(oci.LAYER_STORE, "layers")) != 0)
    for d in (oci.run_dir(), oci.LAYER_STORE):
        mode = stat.S_IMODE(os.stat(d).st_mode)
        tlib.check("host users: %s is 0700" % d, mode == 0o700, oct(mode))


def build_hostile_image():
    """HOSTILE: autograding_image with /etc/passwd a link to HOST_PASSWD,
    which holds the image's passwd."""
    df = ("FROM autograding_image\nRUN cp /etc/passwd %s && ln -sf %s /etc/passwd\n"
          % (HOST_PASSWD, HOST_PASSWD))
    r = subprocess.run(["docker", "build", "--network", "none", "-q", "-t", HOSTILE, "-"],
                       input=df.encode(), capture_output=True, timeout=300)
    if r.returncode != 0:
        print("# docker build: %s" % r.stderr.decode("utf-8", "replace")[-600:])
    return r.returncode == 0


def consumer_cpu_s(proc):
    with open("/proc/%d/stat" % proc.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check_hostile_passwd(svc):
    """Point 5; the jobs run on the hostile image."""
    submit(svc, "hp", {"Makefile": makefile("echo started\nwhile :; do :; done")},
           "spin.out", timeout=40, cpu_limit_s=2, image=HOSTILE)
    late = submit(svc, "hp", {"Makefile": makefile("echo started\nsleep 100")},
                  "late.out", timeout=4, cpu_limit_s=30, image=HOSTILE)
    gone = submit(svc, "hp", {"Makefile": makefile("echo started\nsleep 100")},
                  "gone.out", timeout=90, cpu_limit_s=30, image=HOSTILE)
    if not tlib.check("jobs on the hostile image are accepted",
                      all("jobId" in r for r in (late, gone)), (late, gone)):
        return
    check_host_users(svc, gone["jobId"])
    svc.post("/cancel/%s/%d/" % (svc.key, gone["jobId"]))
    t0 = time.time()
    out = wait_output(svc, "hp", "gone.out", 30)
    tlib.check("hostile passwd: a cancelled job ends (%.1fs)" % (time.time() - t0),
               out is not None and tjobs.wait_dead(svc, gone["jobId"], 10) is not None)
    out = wait_output(svc, "hp", "spin.out", 60)
    text = out.decode("utf-8", "replace") if out else ""
    tlib.check("hostile passwd: a job is still stopped at its CPU limit",
               "killed at its CPU time limit" in text, text[-400:])
    out = wait_output(svc, "hp", "late.out", 60)
    text = out.decode("utf-8", "replace") if out else ""
    tlib.check("hostile passwd: a job past its timeout ends", out is not None and
               tjobs.wait_dead(svc, late["jobId"], 10) is not None, text[-400:])
    before = consumer_cpu_s(svc.consumers[-1])
    time.sleep(3)  # a measurement window, not a synchronisation
    used = consumer_cpu_s(svc.consumers[-1]) - before
    tlib.check("hostile passwd: the consumer does not spin (%.2f s of CPU in 3 s)" % used,
               used < 1.0)


def published(svc):
    """The images the consumer publishes."""
    raw = svc.redis.cli("GET", svc.prefix + "images")
    return json.loads(raw).get("images", []) if raw else []


def stop_consumer(svc, label):
    rc = svc.consumers[-1].stop(60)
    tlib.check("%s: consumer drains and exits 0" % label, rc == 0, rc)
    svc.consumers.pop()


def localoci_pass(svc):
    if os.path.isdir(oci.LAYER_STORE):
        os.chmod(oci.LAYER_STORE, 0o711)  # as an older version or an operator left it
    built = tlib.check("hostile image built", build_hostile_image())
    svc.start_consumer(oci.oci_config(svc, oci={"import_images": [HOSTILE]}))
    try:
        check_seccomp(svc, "localOCI")
        if built and tlib.check("hostile image imported into the layer store",
                                tlib.wait_for(lambda: HOSTILE in published(svc), 120)):
            check_hostile_passwd(svc)
    finally:
        stop_consumer(svc, "localOCI")
    left = oci.settled_leftovers()
    tlib.check("localOCI: nothing of ours left", not left, left)
    oci.remove_run_dir()


def main():
    if os.geteuid() != 0:
        tlib.check("needs root (runtimes, network namespaces, sshd)", False)
        tlib.done()
    os.symlink("/dev/zero", HOST_PASSWD)
    try:
        # the hostile image is the operator's (docker build), so it is listed in
        # "images": only configured images and a key's own builds may run
        with tlib.Service(producers=1,
                          config={"images": ["autograding_image", HOSTILE]}) as svc:
            localoci_pass(svc)
            svc.start_consumer(ld.consumer_config(svc))
            try:
                check_seccomp(svc, "localDocker")
            finally:
                stop_consumer(svc, "localDocker")
            with fleet.Fleet(1) as f:
                svc.start_consumer(dd.consumer_config(svc, f))
                try:
                    check_seccomp(svc, "distDocker")
                finally:
                    stop_consumer(svc, "distDocker")
    finally:
        os.unlink(HOST_PASSWD)
        subprocess.run(["docker", "rmi", "-f", HOSTILE], capture_output=True)
        rec = os.path.join(oci.LAYER_STORE, "images", HOSTILE + ".json")
        if os.path.exists(rec):
            os.unlink(rec)
    tlib.done()


if __name__ == "__main__":
    main()
