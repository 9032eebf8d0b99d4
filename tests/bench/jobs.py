"""Job benchmark: latency from addJob to callback for one hello-world job
(new container, and from a warm pool), makespan and throughput of 20 and
100 concurrent hello jobs, each next to raw Docker measured in the same run
(`docker run --rm` of the same command at the same parallelism, and
`docker exec` into a running container). Prints a table: figure | this
project | raw Docker | ratio. Only loopback traffic; bounded in time."""
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import tjobs  # noqa: E402
import tlib  # noqa: E402
from tjobs import makefile  # noqa: E402

PAR = int(os.environ.get("BENCH_PARALLEL", "4"))
N_LAT = int(os.environ.get("BENCH_LATENCY_RUNS", "15"))
IMAGE = "autograding_image"
HELLO = "echo hello"
PREFIX = "tb%d-" % os.getpid()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def raw_run_once():
    t = time.time()
    subprocess.run(["docker", "run", "--rm", "--network", "none", IMAGE, "sh", "-c", HELLO],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.time() - t


def raw_parallel(n):
    t = time.time()
    with ThreadPoolExecutor(PAR) as ex:
        lat = list(ex.map(lambda _: raw_run_once(), range(n)))
    return time.time() - t, lat


def raw_exec_latency(runs=10):
    name = PREFIX + "exec"
    subprocess.run(["docker", "run", "-d", "--name", name, IMAGE, "sleep", "infinity"],
                   stdout=subprocess.DEVNULL, check=True)
    try:
        lat = []
        for _ in range(runs):
            t = time.time()
            subprocess.run(["docker", "exec", name, "sh", "-c", HELLO], stdout=subprocess.DEVNULL, check=True)
            lat.append(time.time() - t)
        return lat
    finally:
        subprocess.run(["docker", "rm", "-f", name], stdout=subprocess.DEVNULL)


class Bench:
    def __init__(self, svc, cb):
        self.svc = svc
        self.cb = cb
        self.n = 0
        svc.open("bench")
        r = svc.upload("bench", "bench-Makefile", makefile(HELLO))
        assert r["statusId"] == 0, r

    def job(self):
        """Submits one hello job; returns (tag, t_submit)."""
        self.n += 1
        tag = "b%d" % self.n
        body = {"image": IMAGE, "jobName": tag, "output_file": tag + ".out", "timeout": 30,
                "disable_network": True,  # like the raw loop's --network none
                "files": [{"localFile": "bench-Makefile", "destFile": "Makefile"}],
                "callback_url": self.cb.url(tag)}
        t = time.time()
        r = self.svc.add_job("bench", body)
        assert r["statusId"] == 0, r
        return tag, t

    def latency(self, tag, t0, timeout=60):
        calls = self.cb.wait(tag, timeout)
        assert calls, "no callback for %s" % tag
        return calls[0]["t"] - t0

    def sequential(self, runs, before_each=None):
        lat = []
        for _ in range(runs):
            if before_each:
                before_each()
            tag, t0 = self.job()
            lat.append(self.latency(tag, t0))
        return lat

    def burst(self, n):
        t0 = time.time()
        jobs = [self.job() for _ in range(n)]
        lat = [self.latency(tag, ts, 300) for tag, ts in jobs]
        last = max(ts + l for (tag, ts), l in zip(jobs, lat))
        return last - t0, lat


def rss_mb(proc):
    """Resident set size of a running service process, in MiB."""
    try:
        with open("/proc/%d/status" % proc.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, AttributeError):
        pass
    return 0.0


class RssSampler:
    """Samples the max RSS of some processes every 100 ms while running."""

    def __init__(self, procs):
        self.procs = procs
        self.max = {p.name: 0.0 for p in procs}
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop.is_set():
            for p in self.procs:
                self.max[p.name] = max(self.max[p.name], rss_mb(p))
            time.sleep(0.1)

    def done(self):
        self.stop.set()
        self.t.join()
        return self.max


def pool_free(svc):
    r = svc.get("/pool/%s/%s/" % (svc.key, IMAGE)).json()
    if r["statusId"] != 0:
        return 0
    return len(r["pools"][IMAGE]["free"])


def wait_pool(svc, n, timeout=30):
    end = time.time() + timeout
    while time.time() < end and pool_free(svc) < n:
        time.sleep(0.02)


def stamp_callbacks():
    """Makes every callback receiver record each arrival's time (key "t");
    call once, before the receivers get callbacks."""
    orig = tjobs.parse_multipart

    def stamped(*a):
        d = orig(*a)
        d["t"] = time.time()
        return d
    tjobs.parse_multipart = stamped


def main():
    rows = []

    def row(figure, ours, raw=None, unit="s", better="lower"):
        ratio = ""
        if raw:
            ratio = "%.2fx" % (ours / raw)
        fmt = (lambda v: "%.3f %s" % (v, unit)) if unit else (lambda v: "%.2f" % v)
        rows.append((figure, fmt(ours), fmt(raw) if raw else "", ratio))

    # Raw Docker first, same machine, same run.
    raw_run_once()  # warm caches
    raw_seq = [raw_run_once() for _ in range(8)]
    raw_exec = raw_exec_latency()
    raw20_t, _ = raw_parallel(20)
    raw100_t, _ = raw_parallel(100)

    cb = tjobs.CallbackReceiver()
    stamp_callbacks()
    cfg = {"vmms": "localDocker", "vmms_dir": os.path.join(tlib.BUILD, "vmms"),
           "default_disable_network": True,  # warm pool instances match the jobs
           "instance_prefix": PREFIX, "max_jobs": PAR, "max_jobs_per_image": PAR,
           "log_level": "warn", "callback_backoff_ms": 100, "auto_pool_max": 0,
           "vmms_config": {"localDocker": {}}}
    with tlib.Service(producers=1, config={"log_level": "warn"}) as svc:
        svc.start_consumer(cfg)
        b = Bench(svc, cb)
        time.sleep(1.0)
        idle = {p.name: rss_mb(p) for p in (svc.producers[0], svc.consumers[0])}
        b.sequential(2)  # warm up
        cold = b.sequential(N_LAT)
        r = svc.post("/prealloc/%s/%s/%d/" % (svc.key, IMAGE, PAR)).json()
        assert r["statusId"] == 0, r
        wait_pool(svc, PAR)
        warm = b.sequential(N_LAT, before_each=lambda: wait_pool(svc, PAR))
        svc.post("/prealloc/%s/%s/0/" % (svc.key, IMAGE))
        time.sleep(1.5)
        m20, l20 = b.burst(20)
        sampler = RssSampler([svc.producers[0], svc.consumers[0]])
        m100, l100 = b.burst(100)
        loaded = sampler.done()
        svc.consumers[0].stop(120)
        svc.consumers.clear()
    cb.close()

    raw_p50 = statistics.median(raw_seq)
    row("hello latency p50, new container (addJob->callback)", statistics.median(cold), raw_p50)
    row("hello latency p90, new container", pct(cold, 90), pct(raw_seq, 90))
    row("hello latency p50, warm pool", statistics.median(warm), statistics.median(raw_exec))
    row("hello latency p90, warm pool", pct(warm, 90), pct(raw_exec, 90))
    row("20 jobs makespan (parallel %d)" % PAR, m20, raw20_t)
    row("20 jobs throughput (jobs/s)", 20 / m20, 20 / raw20_t, unit="", better="higher")
    row("20 jobs latency p50 / p90", statistics.median(l20), None)
    rows[-1] = (rows[-1][0], "%.2f / %.2f s" % (statistics.median(l20), pct(l20, 90)), "", "")
    row("100 jobs makespan (parallel %d)" % PAR, m100, raw100_t)
    row("100 jobs throughput (jobs/s)", 100 / m100, 100 / raw100_t, unit="", better="higher")
    rows.append(("100 jobs latency p50 / p90", "%.2f / %.2f s" % (statistics.median(l100), pct(l100, 90)), "", ""))
    for name in sorted(idle):
        rows.append(("%s RSS idle / max during 100 jobs" % name.rstrip("0"),
                     "%.1f / %.1f MiB" % (idle[name], loaded[name]), "", ""))
    w = max(len(r[0]) for r in rows)
    print("%-*s | %-16s | %-16s | %s" % (w, "figure", "this project", "raw Docker", "ratio"))
    print("-" * (w + 50))
    for r in rows:
        print("%-*s | %-16s | %-16s | %s" % (w, r[0], r[1], r[2], r[3]))
    print("(both sides without network: jobs send disable_network, raw runs use --network none; "
          "a bridge network adds ~0.1 s and much daemon CPU to every container start)")
    print("(raw Docker: `docker run --rm` of the same command; warm-pool rows compare with "
          "`docker exec` into a running container; original Python Tango on this machine: "
          "hello 2.24 s, 20 jobs 22.5 s = 0.89 jobs/s)")


if __name__ == "__main__":
    main()
