"""End-to-end jobs through the HTTP API on the localDocker back end: real
redis-server, producer, consumer, Docker engine and autograding_image, with a
callback receiver. Covers issue #3's job set."""
import json
import os
import re
import subprocess
import threading
import time

import tjobs
import tlib
from tjobs import makefile, submit, wait_output

PREFIX = "tt%d-" % os.getpid()


def consumer_config(svc, vmms="localDocker", extra=None):
    cfg = {"vmms": vmms, "vmms_dir": os.path.join(tlib.BUILD, "vmms"),
           "instance_prefix": PREFIX, "max_jobs": 4, "max_jobs_per_image": 4,
           "lease_ms": 3000, "default_memory_mb": 512, "pids_limit": 256,
           "partial_output_interval_ms": 200, "callback_backoff_ms": 100,
           "vmms_config": {"localDocker": {"volume_dir": os.path.join(svc.tmp, "volumes")}}}
    cfg.update(extra or {})
    return cfg


def our_containers():
    out = subprocess.run(["docker", "ps", "-a", "--filter", "name=" + PREFIX, "--format",
                          "{{.Names}}"], capture_output=True, text=True).stdout.split()
    return [n for n in out if n.startswith(PREFIX)]


def lines_of(out):
    return out.decode("utf-8", "replace").split("\n") if out else []


def run_suite(svc, cb):
    # hello world: files listed, success line, callback carries the file
    hello = b'print("hello from the grader")\nprint(\'{"scores": {"q1": 10}}\')\n'
    r = submit(svc, "lab1", {"hello.py": hello, "Makefile": makefile("ls\npython3 hello.py")},
               "hello.out", timeout=20, callback_url=cb.url("hello"))
    tlib.check("hello: job added", r.get("statusMsg") == "Job added", r)
    out = wait_output(svc, "lab1", "hello.out")
    lines = lines_of(out)
    tlib.check("hello: output file written", out is not None)
    tlib.check("hello: received line", len(lines) > 0 and
               lines[0].startswith("Autograder [") and "Received job job-hello.out:%d" % r["jobId"] in lines[0], lines[:1])
    tlib.check("hello: success outcome", len(lines) > 1 and
               lines[1].endswith("]: Success: Autodriver returned normally"), lines[:3])
    tlib.check("hello: output header", "---" in lines and
               any(l.endswith("Here is the output from the autograder:") for l in lines), lines[:5])
    tlib.check("hello: autodriver status line", "Autodriver: Job exited with status 0" in lines, lines)
    tlib.check("hello: files listed in the job dir", "hello.py" in out.decode() and "Makefile" in out.decode(), out)
    tlib.check("hello: grader output and score last", lines[-2:] == ['{"scores": {"q1": 10}}', ""] or
               lines[-1] == '{"scores": {"q1": 10}}', lines[-3:])
    calls = cb.wait("hello")
    tlib.check("hello: one callback", len(calls) == 1, calls)
    if calls:
        c = calls[0]
        tlib.check("hello: callback multipart part 'file' with the output",
                   c["part_name"] == "file" and c["content"] == out and
                   c["part_filename"] == "hello.out", {k: c[k] for k in ("part_name", "part_filename")})
        tlib.check("hello: callback Filename header", c["filename_header"] == "hello.out", c["filename_header"])
        tlib.check("hello: callback is multipart/form-data", c["content_type"].startswith("multipart/form-data"), c["content_type"])
    dead = tjobs.wait_dead(svc, r["jobId"], 10)
    tlib.check("hello: job is dead with trace", dead is not None and
               any("executed [status=0]" in t for t in dead["trace"]), dead)

    # slow printer (started early: partial output while it runs)
    slow = makefile("for i in $$(seq 1 12); do echo line$$i; sleep 0.5; done")
    rs = submit(svc, "lab1", {"Makefile": slow}, "slow.out", timeout=30)
    # timeout: a loop that never ends, timeout 5
    t0 = time.time()
    rt = submit(svc, "lab1", {"Makefile": makefile("while true; do :; done")}, "loop.out", timeout=5)
    # non-zero exit from make
    rf = submit(svc, "lab1", {"Makefile": makefile("echo about to fail\nexit 1")}, "fail.out", timeout=20)

    partials = []
    end = time.time() + 20
    while time.time() < end and len(partials) < 40:
        p = svc.get("/getPartialOutput/%s/%d/" % (svc.key, rs["jobId"])).json()
        if p["statusId"] == 0:
            partials.append(p["output"])
        if tlib.request(svc.port, "GET", "/poll/%s/lab1/slow.out/" % svc.key).header("Content-Type") == "application/octet-stream":
            break
        time.sleep(0.25)
    counts = [p.count("line") for p in partials]
    tlib.check("partial output grows while the job runs",
               len(counts) >= 2 and counts[-1] > counts[0] and counts == sorted(counts), counts)

    out = wait_output(svc, "lab1", "loop.out", 40)
    took = time.time() - t0
    tlib.check("timeout: outcome line", out is not None and
               "Error: Job timed out after 5 seconds" in lines_of(out)[1], lines_of(out)[:3])
    tlib.check("timeout: ends within a few seconds of the limit", took < 5 + 12, "%.1fs" % took)
    out = wait_output(svc, "lab1", "fail.out")
    tlib.check("make failure: status 2 reported",
               out is not None and "Autodriver: Job exited with status 2" in lines_of(out), lines_of(out))
    tlib.check("make failure: grader output kept", out is not None and b"about to fail" in out, out)
    out = wait_output(svc, "lab1", "slow.out")
    tlib.check("slow printer: all lines in the output", out is not None and b"line12" in out, out)

    # endless output capped at max_kb
    r = submit(svc, "lab1", {"Makefile": makefile("yes 0123456789abcdef")}, "flood.out",
               timeout=8, max_kb=64)
    out = wait_output(svc, "lab1", "flood.out", 40)
    tlib.check("endless output: job ends", out is not None)
    if out is not None:
        tlib.check("endless output: capped near max_kb", len(out) < 64 * 1024 + 4096, len(out))
        tlib.check("endless output: elision line", b"...[excess bytes elided]..." in out, out[:200])

    # memory hog with memory 256: killed, reported, host fine
    hog = b"x = bytearray(1024 * 1024 * 1024)\nprint('allocated', len(x))\n"
    r = submit(svc, "lab1", {"hog.py": hog, "Makefile": makefile("python3 hog.py")}, "hog.out",
               timeout=30, memory=256)
    out = wait_output(svc, "lab1", "hog.out", 60)
    tlib.check("memory hog: job ends", out is not None)
    if out is not None:
        text = out.decode("utf-8", "replace")
        tlib.check("memory hog: not allocated, reported as failure",
                   "allocated" not in text and ("status 2" in text or "Killed" in text or "MemoryError" in text), text[-600:])

    # fork bomb contained by the pids limit while another job compiles C
    bomb = makefile("bash -c ':(){ :|:& };:' ; sleep 4")
    cprog = b'#include <stdio.h>\nint main(void){puts("compiled ok");return 0;}\n'
    rb = submit(svc, "lab2", {"Makefile": bomb}, "bomb.out", timeout=10)
    end = time.time() + 30  # the bomb is running before the compile starts
    while time.time() < end and not any(
            "Input copied" in t for t in
            (svc.get("/job/%s/%d/" % (svc.key, rb["jobId"])).json().get("job") or {}).get("trace", [])):
        time.sleep(0.1)
    rc = submit(svc, "lab2", {"prog.c": cprog, "Makefile": makefile("gcc -O1 -o prog prog.c\n./prog")},
                "cc.out", timeout=30)
    out_c = wait_output(svc, "lab2", "cc.out", 60)
    out_b = wait_output(svc, "lab2", "bomb.out", 60)
    tlib.check("fork bomb: concurrent compile succeeds", out_c is not None and b"compiled ok" in out_c and
               b"Success: Autodriver returned normally" in out_c, out_c)
    tlib.check("fork bomb: job ends", out_b is not None, out_b)
    tlib.check("fork bomb: host still forks", subprocess.run(["true"]).returncode == 0)

    # network disabled: only the loopback interface
    net = makefile("ls /sys/class/net | tr '\\n' ' '; echo\npython3 -c 'import socket; s=socket.socket(); s.settimeout(2); print(\"connect\", s.connect_ex((\"192.0.2.1\", 80)))'")
    r = submit(svc, "lab1", {"Makefile": net}, "nonet.out", timeout=20, disable_network=True)
    out = wait_output(svc, "lab1", "nonet.out")
    text = out.decode() if out else ""
    iface_line = [l for l in text.split("\n") if l.strip().startswith("lo")]
    tlib.check("disable_network: only lo inside", iface_line and iface_line[0].split() == ["lo"], text)
    tlib.check("disable_network: no route out", "connect 0" not in text and "connect" in text, text)

    # same output name in two labs
    ra = submit(svc, "labA", {"Makefile": makefile("echo from A")}, "same.out", timeout=20)
    rb2 = submit(svc, "labB", {"Makefile": makefile("echo from B")}, "same.out", timeout=20)
    oa = wait_output(svc, "labA", "same.out")
    ob = wait_output(svc, "labB", "same.out")
    tlib.check("same output name, two labs: no collision",
               oa is not None and ob is not None and b"from A" in oa and b"from B" in ob and
               b"from B" not in oa and b"from A" not in ob, (oa, ob))

    # 20 jobs at once all complete
    t0 = time.time()
    ids = []
    for i in range(20):
        r = submit(svc, "lab20", {"Makefile": makefile("echo job %d" % i)}, "many%d.out" % i,
                   timeout=20, callback_url=cb.url("many%d" % i))
        ids.append(r.get("jobId"))
    outs = [wait_output(svc, "lab20", "many%d.out" % i, 120) for i in range(20)]
    ok = sum(1 for i, o in enumerate(outs) if o and (b"job %d\n" % i) in o and b"Success" in o)
    tlib.check("20 jobs at once: all complete", ok == 20, "%d of 20 (%.1fs)" % (ok, time.time() - t0))
    cbs = sum(1 for i in range(20) if len(cb.wait("many%d" % i, 20)) == 1)
    tlib.check("20 jobs at once: one callback each", cbs == 20, cbs)
    print("# 20 hello jobs makespan %.2fs" % (time.time() - t0))

    info = svc.get("/info/%s/" % svc.key).json()["info"]
    tlib.check("info: the loop's timeout counted", info["runjob_timeouts"] >= 1, info)
    dead = tjobs.wait_dead(svc, rt["jobId"], 5)
    tlib.check("timeout: dead record carries the outcome", dead is not None and
               dead.get("outcome") == "Error: Job timed out after 5 seconds", dead and dead.get("outcome"))


def leak_own_instance(svc):
    """An instance of the consumer's own (its name ends with its token) that
    no live job records, as a destroy that failed or was skipped leaves: the
    consumer removes it before it exits, not only at the next period."""
    log = open(os.path.join(svc.tmp, "consumer0.log")).read()
    m = re.search(r"event=started token=([0-9a-f]{8})", log)
    tlib.check("consumer logged its token", m, log[:300])
    if m:
        name = "%sj999999-1-%s" % (PREFIX, m.group(1))
        r = subprocess.run(["docker", "run", "-d", "--name", name, "--label", "tango.prefix=" + PREFIX,
                            "--label", "tango.vm=" + name, "autograding_image", "sleep", "600"],
                           capture_output=True, text=True)
        tlib.check("a leaked instance of the consumer's own made", r.returncode == 0, r.stderr)


def main():
    cb = tjobs.CallbackReceiver()
    with tlib.Service(producers=1) as svc:
        svc.start_consumer(consumer_config(svc))
        try:
            run_suite(svc, cb)
            leak_own_instance(svc)
        finally:
            rc = svc.consumers[0].stop(60)
            tlib.check("consumer drains and exits 0", rc == 0, rc)
            svc.consumers.clear()
        left = our_containers()
        tlib.check("no container of our prefix left", not left, left)
        logs = open(os.path.join(svc.tmp, "consumer0.log")).read()
        tlib.check("key never in consumer log", svc.key not in logs)
    cb.close()
    tlib.done()


if __name__ == "__main__":
    main()
