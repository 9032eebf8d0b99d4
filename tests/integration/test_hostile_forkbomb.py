"""A student's fork bomb against the real stack (producer, consumer,
localDocker, autograding_image; issue 10 item 5): the bomb fills the
container's pids limit, and the autodriver must still kill it (its kill
helper is forked before the job starts) so that the job ends once, with its
own outcome (timed out), never as an OS error that the consumer retries.
A compile job running beside it still succeeds.

TANGO_FORKBOMB_IMAGE runs the bomb on another image (e.g. one built with an
older autodriver, to see this test fail there)."""
import os
import time

import tjobs
import tlib
from test_e2e_localdocker import consumer_config, our_containers
from tjobs import makefile, submit, wait_output

IMAGE = os.environ.get("TANGO_FORKBOMB_IMAGE", "autograding_image")
TIMEOUT = 6


def run(svc):
    # the bomb never ends by itself: after starting it, bash becomes the
    # waiting process (exec, no fork needed once the limit is full)
    bomb = makefile("bash -c ':(){ :|:& };: ; exec sleep 60'")
    t0 = time.time()
    rb = submit(svc, "bomb", {"Makefile": bomb}, "bomb.out", image=IMAGE, timeout=TIMEOUT)
    tlib.check("fork bomb: job added", rb.get("statusMsg") == "Job added", rb)
    # the compile job starts once the bomb has filled its pids limit (its
    # partial output says so) or has ended
    end = time.time() + 20
    while time.time() < end:
        p = svc.get("/getPartialOutput/%s/%d/" % (svc.key, rb["jobId"])).json()
        if p.get("statusId") == 0 and "Resource temporarily unavailable" in p.get("output", ""):
            break
        if svc.poll("bomb", "bomb.out").header("Content-Type") == "application/octet-stream":
            break
        time.sleep(0.1)
    cprog = b'#include <stdio.h>\nint main(void){puts("compiled ok");return 0;}\n'
    rc = submit(svc, "cc", {"prog.c": cprog, "Makefile": makefile("gcc -O1 -o prog prog.c\n./prog")},
                "cc.out", timeout=60)

    out_b = wait_output(svc, "bomb", "bomb.out", 120)
    took = time.time() - t0
    out_c = wait_output(svc, "cc", "cc.out", 60)
    text = out_b.decode("utf-8", "replace") if out_b else ""
    lines = text.split("\n")
    tlib.check("fork bomb: job ends", out_b is not None)
    tlib.check("fork bomb: fills its pids limit", "Resource temporarily unavailable" in text,
               lines[-3:])
    # its own outcome: the timeout (or make's exit, had make ended first)
    tlib.check("fork bomb: outcome is the job's own, not an OS error",
               len(lines) > 1 and (lines[1].endswith("Error: Job timed out after %d seconds" % TIMEOUT)
                                   or lines[1].endswith("Success: Autodriver returned normally"))
               and "OS error" not in text, lines[:3])
    tlib.check("fork bomb: autodriver reports the timeout or the exit",
               "Autodriver: Job timed out after %d seconds" % TIMEOUT in lines or
               any(l.startswith("Autodriver: Job exited with status") for l in lines),
               [l for l in lines if l.startswith("Autodriver:")][:5])
    tlib.check("fork bomb: the kill needed no fork",
               "Error forking to kill" not in text and "Gave up killing" not in text,
               [l for l in lines if l.startswith("Autodriver:")][:5])
    dead = tjobs.wait_dead(svc, rb["jobId"], 30)
    tlib.check("fork bomb: dead record with retries 0", dead is not None and dead.get("retries") == 0,
               dead and {k: dead.get(k) for k in ("retries", "outcome", "trace")})
    # one run of TIMEOUT seconds (plus container start and teardown), not three
    tlib.check("fork bomb: one timeout of machine time", took < 2 * TIMEOUT + 6, "%.1fs" % took)
    tlib.check("fork bomb: concurrent compile succeeds",
               out_c is not None and b"compiled ok" in out_c and
               b"Success: Autodriver returned normally" in out_c, out_c)
    print("# fork bomb job: %.1fs from submit to output (timeout %ds)" % (took, TIMEOUT))


def main():
    images = sorted({"autograding_image", IMAGE})
    with tlib.Service(producers=1, config={"images": images}) as svc:
        svc.start_consumer(consumer_config(svc))
        try:
            run(svc)
        finally:
            rc = svc.consumers[0].stop(60)
            tlib.check("consumer drains and exits 0", rc == 0, rc)
            svc.consumers.clear()
        left = our_containers()
        tlib.check("no container of our prefix left", not left, left)
    tlib.done()


if __name__ == "__main__":
    main()
