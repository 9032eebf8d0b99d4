"""localOCI benchmark (issue 12), side by side in one run with raw `docker
run --rm`, with the localDocker back end and with localOCI on runc (the
runtime `auto` falls back to where crun cannot run), on the same image and
client:
hello job addJob -> callback p50/p90 (new sandbox, and from a warm pool),
makespan and jobs/s of 20 and 100 hello jobs at PAR in parallel, consumer
RSS under load, the load average, and the back end's own cost step by step
(tests/bench/oci_steps.c: initialize..destroy minus the grading command).
Prints tables; asserts nothing about time."""
import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import jobs as jb  # noqa: E402
import tjobs  # noqa: E402
import tlib  # noqa: E402

PAR = jb.PAR
N_LAT = jb.N_LAT
STORE = os.environ.get("BENCH_OCI_STORE", "/var/lib/tango/oci-test-store")
PREFIX = "tbo%d-" % os.getpid()


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def service_run(vmms, vmms_cfg):
    """Latency (new instance, warm pool), 20 and 100 bursts, RSS. A dict."""
    cb = tjobs.CallbackReceiver()  # its own: job tags restart at b1
    cfg = {"vmms": vmms, "vmms_dir": os.path.join(tlib.BUILD, "vmms"),
           "default_disable_network": True, "instance_prefix": PREFIX, "max_jobs": PAR,
           "max_jobs_per_image": PAR, "log_level": "warn", "callback_backoff_ms": 100,
           "auto_pool_max": 0, "metrics_port": 0, "vmms_config": {vmms: vmms_cfg}}
    res = {}
    with tlib.Service(producers=1, config={"log_level": "warn"}) as svc:
        svc.start_consumer(cfg)
        b = jb.Bench(svc, cb)
        b.sequential(2)  # warm up (and, for localOCI, the image import)
        res["cold"] = b.sequential(N_LAT)
        r = svc.post("/prealloc/%s/%s/%d/" % (svc.key, jb.IMAGE, PAR)).json()
        assert r["statusId"] == 0, r
        jb.wait_pool(svc, PAR)
        res["warm"] = b.sequential(N_LAT, before_each=lambda: jb.wait_pool(svc, PAR))
        res["idle_rss"] = jb.rss_mb(svc.consumers[0])
        res["m20"], res["l20"] = b.burst(20)
        jb.wait_pool(svc, PAR)
        sampler = jb.RssSampler([svc.consumers[0]])
        res["m100"], res["l100"] = b.burst(100)
        res["rss"] = sampler.done()[svc.consumers[0].name]
        res["load"] = loadavg()
        svc.post("/prealloc/%s/%s/0/" % (svc.key, jb.IMAGE))
        svc.consumers[0].stop(120)
        svc.consumers.clear()
    cb.close()
    return res


def main():
    load0 = loadavg()
    jb.raw_run_once()
    raw_seq = [jb.raw_run_once() for _ in range(8)]
    raw20, _ = jb.raw_parallel(20)
    raw100, _ = jb.raw_parallel(100)
    jb.stamp_callbacks()
    ld = service_run("localDocker", {})
    oci = service_run("localOCI", {"store_dir": STORE, "run_dir": "/run/tbo%d" % os.getpid()})
    # the same back end on runc, the runtime `auto` falls back to
    ocr = service_run("localOCI", {"store_dir": STORE, "run_dir": "/run/tbo%d" % os.getpid(),
                                   "runtime": "runc"})

    def lat(v):
        return "%.3f / %.3f s" % (statistics.median(v), jb.pct(v, 90))
    rows = [
        ("hello addJob->callback p50 / p90, warm pool", lat(oci["warm"]), lat(ocr["warm"]),
         lat(ld["warm"]), lat(raw_seq) + " (run --rm)", "p50 <= 0.050, p90 <= 0.080"),
        ("hello addJob->callback p50 / p90, new sandbox", lat(oci["cold"]), lat(ocr["cold"]),
         lat(ld["cold"]), "", ""),
        ("20 hello jobs, jobs/s (parallel %d)" % PAR, "%.2f" % (20 / oci["m20"]),
         "%.2f" % (20 / ocr["m20"]), "%.2f" % (20 / ld["m20"]), "%.2f" % (20 / raw20),
         ">= 25 and >= 5x raw"),
        ("100 hello jobs, jobs/s (parallel %d)" % PAR, "%.2f" % (100 / oci["m100"]),
         "%.2f" % (100 / ocr["m100"]), "%.2f" % (100 / ld["m100"]), "%.2f" % (100 / raw100),
         ">= 25 and >= 5x raw"),
        ("100 jobs latency p50 / p90", lat(oci["l100"]), lat(ocr["l100"]), lat(ld["l100"]), "", ""),
        ("consumer RSS idle / max during 100 jobs", "%.1f / %.1f MiB" % (oci["idle_rss"], oci["rss"]),
         "%.1f / %.1f MiB" % (ocr["idle_rss"], ocr["rss"]),
         "%.1f / %.1f MiB" % (ld["idle_rss"], ld["rss"]), "", "< 32 MiB"),
        ("load average after the 100 jobs", oci["load"], ocr["load"], ld["load"], "", ""),
    ]
    w = max(len(r[0]) for r in rows)
    print("%-*s | %-22s | %-22s | %-22s | %-22s | %s" % (w, "figure", "localOCI (auto)",
                                                         "localOCI on runc", "localDocker",
                                                         "raw Docker", "target"))
    print("-" * (w + 125))
    for r in rows:
        print("%-*s | %-22s | %-22s | %-22s | %-22s | %s" % (w, *r))
    print("ratio localOCI / raw `docker run --rm`, 20 jobs: %.1fx; 100 jobs: %.1fx"
          % (raw20 / oci["m20"], raw100 / oci["m100"]))
    print("load average at start: %s (2 cores; other work on the machine counts)" % load0)
    print()
    steps = os.path.join(tlib.BUILD, "bench", "oci_steps")
    subprocess.run([steps, os.path.join(tlib.BUILD, "vmms", "localOCI.so"),
                    "/run/tbs%d" % os.getpid(), STORE, os.environ.get("BENCH_OCI_STEPS", "30")],
                   stderr=subprocess.DEVNULL, check=False)
    print("load average at the end: %s" % loadavg())
    for d in ("/run/tbo%d" % os.getpid(), "/run/tbs%d" % os.getpid()):
        with open("/proc/self/mountinfo") as f:
            if not any(d + "/" in l for l in f):
                shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
