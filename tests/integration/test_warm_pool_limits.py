"""Warm pools and job limits, end to end on localDocker and localOCI: a
warm instance serves only a job that asks for exactly the limits it was
made with (consumer/vm_spec.c: one spec per job, one rule for a fit).

Per back end, a pool of 5 warm autograding_image instances made with the
defaults (config default_memory_mb 512, disk_limit_mb 1024, default_cores
1), then five jobs at once, each printing its limits from inside (its
cgroup's memory limit and CPU quota, the sizes of /tmp and /home/output):

  - a job naming no limit takes a warm instance and sees the defaults:
    memory + disk (tmpfs pages count as memory) 1536 MiB, one core,
    /tmp a quarter and /home/output a sixteenth of 1024 MiB;
  - a job with "cpu_limit_s" (a limit of the run, not of the instance)
    also takes a warm one, and on localOCI (the back end that enforces
    it) its spinning is stopped at that CPU time;
  - three jobs each asking for one other limit ("cores": 2, "memory":
    300, "disk": 256) must each get a fresh instance ("new VM" in the
    trace) with their own limit: a warm one would hand them the
    defaults."""
import os
import re

import tjobs
import tlib
import timages
from timages import K1

IMAGE = "autograding_image"
DEFAULT_MEM, DEFAULT_DISK = 512, 1024  # test_e2e_localdocker.consumer_config, config default

# cgroup v1 (this machine: hybrid), else v2's files
PROBE = "\n".join([
    "echo MEM=$$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null"
    " || cat /sys/fs/cgroup/memory.max)",
    "echo CPU=$$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null"
    " || cut -d' ' -f1 /sys/fs/cgroup/cpu.max)",
    "echo TMP=$$(df -m /tmp | tail -1 | awk '{print $$2}')",
    "echo OUT=$$(df -m /home/output | tail -1 | awk '{print $$2}')",
])
SPIN = "(while :; do :; done) & while :; do :; done"

# name: (addJob fields, from the pool?, expected memory MiB, cores, disk MiB)
JOBS = {
    "default": ({}, True, DEFAULT_MEM + DEFAULT_DISK, 1, DEFAULT_DISK),
    "cores": ({"cores": 2}, False, DEFAULT_MEM + DEFAULT_DISK, 2, DEFAULT_DISK),
    "memory": ({"memory": 300}, False, 300 + DEFAULT_DISK, 1, DEFAULT_DISK),
    "disk": ({"disk": 256}, False, DEFAULT_MEM + 256, 1, 256),
    "cpu": ({"cpu_limit_s": 1}, True, DEFAULT_MEM + DEFAULT_DISK, 1, DEFAULT_DISK),
}


def probed(out):
    """The job's printed limits: {"MEM": bytes, "CPU": quota, "TMP": MiB, "OUT": MiB}."""
    text = (out or b"").decode("utf-8", "replace")
    return {k: int(v) for k, v in re.findall(r"^(MEM|CPU|TMP|OUT)=(-?\d+)\s*$", text, re.M)}


def check_limits(backend, name, got, mem, cores, disk):
    cores = min(cores, os.cpu_count() or 1)  # the local back ends cut cores to the host's CPUs
    want = {"MEM": mem << 20, "CPU": cores * 100000, "TMP": disk // 4, "OUT": disk // 16}
    tlib.check("%s: %s job sees its limits (memory+disk, CPU quota, /tmp, /home/output)"
               % (backend, name), got == want, "got %s, want %s" % (got, want))


def served_from(svc, job_id):
    job = tjobs.wait_dead(svc, job_id, 30) or {}
    trace = " ".join(job.get("trace", []))
    if re.search(r"existing VM \S+-p-\d+-", trace):
        return "pool", trace
    return ("fresh" if " new VM " in trace else "?"), trace


def run_backend(svc, backend):
    n = len(JOBS)  # a warm instance for every job: each takes one if it (wrongly) fits
    r = svc.post("/prealloc/%s/%s/%d/" % (K1, IMAGE, n)).json()
    tlib.check("%s: prealloc %d" % (backend, n), r.get("statusId") == 0, r)
    tlib.check("%s: %d warm instances" % (backend, n), timages.wait_pool_free(svc, IMAGE, n, 60),
               timages.pool_state(svc, K1, IMAGE))
    ids = {}
    for name, (fields, _, _, _, _) in JOBS.items():
        # only localOCI enforces cpu_limit_s: elsewhere a spin would run to the timeout
        spin = name == "cpu" and backend == "localOCI"
        recipe = PROBE + ("\necho spinning\n" + SPIN if spin else "")
        r = timages.submit_as(svc, K1, "wl", recipe, name + ".out", image=IMAGE, timeout=30,
                              **fields)
        tlib.check("%s: %s job added" % (backend, name), r.get("statusId") == 0, r)
        ids[name] = r.get("jobId")
    for name, (_, pooled, mem, cores, disk) in JOBS.items():
        out = timages.output_as(svc, K1, "wl", name + ".out", 60)
        where, trace = served_from(svc, ids[name])
        tlib.check("%s: %s job %s" % (backend, name, "takes a warm instance" if pooled
                                      else "gets a fresh instance, not a warm default one"),
                   where == ("pool" if pooled else "fresh"), trace[-500:])
        check_limits(backend, name, probed(out), mem, cores, disk)
        if name == "cpu" and backend == "localOCI":
            text = (out or b"").decode("utf-8", "replace")
            tlib.check("%s: cpu_limit_s job from the pool is stopped at its CPU limit" % backend,
                       "killed at its CPU time limit (1 s of CPU)" in text, text[-400:])


def main():
    for backend in timages.BACKENDS:
        with timages.service(backend) as svc:
            svc.start_consumer(timages.consumer_config(svc, backend, {"max_jobs": 6,
                                                                       "max_jobs_per_image": 6}))
            try:
                run_backend(svc, backend)
            finally:
                timages.stop_consumer(svc)
        timages.after_backend(backend)
    tlib.done()


if __name__ == "__main__":
    main()
