"""End-to-end jobs through the HTTP API on the distDocker back end: the full
job set of test_e2e_localdocker.py (its run_suite, unchanged), run by a
consumer whose jobs go over SSH to a fleet of three worker hosts (network
namespaces with their own sshd, built by tests/fleet/fleet.sh, sharing the
local Docker engine). Needs root."""
import collections
import os
import re
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fleet"))

import fleet  # noqa: E402
import test_e2e_localdocker as base  # noqa: E402
import tjobs  # noqa: E402
import tlib  # noqa: E402


def consumer_config(svc, f):
    cfg = base.consumer_config(svc, vmms="distDocker")
    cfg["vmms_config"] = {"distDocker": f.distdocker_config(max_jobs=2)}
    return cfg


def main():
    # Killed from outside: unwind, so the fleet, services and containers go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    if os.geteuid() != 0:
        tlib.check("distDocker e2e needs root (network namespaces, sshd)", False)
        tlib.done()
    cb = tjobs.CallbackReceiver()
    with fleet.Fleet(3) as f, tlib.Service(producers=1) as svc:
        svc.start_consumer(consumer_config(svc, f))
        try:
            base.run_suite(svc, cb)
        finally:
            rc = svc.consumers[0].stop(60)
            tlib.check("consumer drains and exits 0", rc == 0, rc)
            svc.consumers.clear()
        left = base.our_containers()
        tlib.check("no container of our prefix left", not left, left)
        tlib.check("no volume directory left on the hosts", not f.leftovers(), f.leftovers())
        logs = open(os.path.join(svc.tmp, "consumer0.log")).read()
        tlib.check("key never in consumer log", svc.key not in logs)
        per_host = collections.Counter(re.findall(r"event=vm_created name=\S+ host=(\S+)", logs))
        print("# per-host " + " ".join("%s=%d" % (f.label(i), per_host.get(f.label(i), 0))
                                       for i in range(1, 4)))
        tlib.check("jobs ran on every host", all(per_host.get(f.label(i), 0) > 0
                                                 for i in range(1, 4)), per_host)
        tlib.check("no host went down", "event=host_down" not in logs,
                   [l for l in logs.splitlines() if "host_down" in l][:3])
    cb.close()
    tlib.done()


if __name__ == "__main__":
    main()
