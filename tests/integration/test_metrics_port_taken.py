"""A consumer whose metrics port is taken (a second consumer on the host, the
hot standby) still grades: the listener's failure is logged once and the
consumer runs without it (consumer/metrics_http.c). A job submitted through
the producer runs on localDocker and its output comes back."""
import os
import socket

import tlib
from tjobs import makefile, submit, wait_output

PREFIX = "tmp%d-" % os.getpid()


def main():
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    taken = holder.getsockname()[1]
    with tlib.Service(producers=1) as svc:
        cfg = {"vmms": "localDocker", "vmms_dir": os.path.join(tlib.BUILD, "vmms"),
               "instance_prefix": PREFIX, "lease_ms": 2000, "metrics_port": taken,
               "vmms_config": {"localDocker": {"volume_dir": os.path.join(svc.tmp, "volumes")}}}
        consumer = svc.start_consumer(cfg)
        files = {"hi.sh": b"echo graded despite the port\n", "Makefile": makefile("sh hi.sh")}
        res = submit(svc, "portlab", files, "hi.out", timeout=20)
        tlib.check("job accepted", res.get("statusMsg") == "Job added", res)
        out = wait_output(svc, "portlab", "hi.out", timeout=60)
        tlib.check("the consumer with a taken metrics port grades the job",
                   out is not None and b"graded despite the port" in out,
                   out if out is not None else consumer.logtext()[-1500:])
        tlib.check("the consumer is still running", consumer.proc.poll() is None,
                   consumer.logtext()[-800:])
        log = consumer.logtext()
        tlib.check("the taken port is logged once",
                   log.count("metrics_listen_failed") == 1 and "port is taken" in log,
                   [l for l in log.splitlines() if "metrics" in l])
    holder.close()


main()
tlib.done()
