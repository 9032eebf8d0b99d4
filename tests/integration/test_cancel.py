"""Cancel and a job's own record (our extensions): POST /cancel/KEY/ID/ on a
queued and on a running job, GET /job/KEY/ID/ with state and queue position.
Real Redis, producer, consumer and Docker."""
import time

import tjobs
import tlib
from test_e2e_localdocker import consumer_config, our_containers
from tjobs import makefile, submit, wait_output


def job(svc, jid):
    return svc.get("/job/%s/%d/" % (svc.key, jid)).json()


def cancel(svc, jid):
    return svc.post("/cancel/%s/%d/" % (svc.key, jid)).json()


def main():
    cb = tjobs.CallbackReceiver()
    with tlib.Service(producers=1) as svc:
        svc.start_consumer(consumer_config(svc, extra={"max_jobs": 1, "max_jobs_per_image": 1}))
        long = submit(svc, "cx", {"Makefile": makefile("echo started\nsleep 20\necho finished")},
                      "long.out", timeout=60, callback_url=cb.url("long"))
        queued = submit(svc, "cx", {"Makefile": makefile("echo should-not-run")}, "queued.out",
                        timeout=60, callback_url=cb.url("queued"))
        third = submit(svc, "cx", {"Makefile": makefile("echo third")}, "third.out", timeout=60)
        end = time.time() + 20
        while time.time() < end and job(svc, long["jobId"]).get("state") != "running":
            time.sleep(0.1)
        j = job(svc, queued["jobId"])
        tlib.check("/job: queued job has its state and queue position",
                   j["statusId"] == 0 and j["state"] == "queued" and j["queuePosition"] == 1 and
                   j["job"]["id"] == queued["jobId"], j)
        tlib.check("/job: third job is second in the queue", job(svc, third["jobId"]).get("queuePosition") == 2)
        tlib.check("/job: running job", job(svc, long["jobId"]).get("state") == "running")

        r = cancel(svc, queued["jobId"])
        tlib.check("cancel queued: accepted", r.get("statusId") == 0 and
                   r.get("statusMsg") == "Job cancellation requested", r)
        out = wait_output(svc, "cx", "queued.out", 20)
        tlib.check("cancel queued: output file says cancelled, job never ran",
                   out is not None and b"Error: Job cancelled by request" in out and b"should-not-run" not in out, out)
        tlib.check("cancel queued: callback fired", len(cb.wait("queued", 20)) == 1)
        j = job(svc, queued["jobId"])
        tlib.check("cancel queued: state cancelled", j.get("state") == "cancelled", j.get("state"))
        tlib.check("cancel queued: third job moved up", job(svc, third["jobId"]).get("queuePosition") == 1)

        t0 = time.time()
        r = cancel(svc, long["jobId"])
        tlib.check("cancel running: accepted", r.get("statusId") == 0, r)
        out = wait_output(svc, "cx", "long.out", 20)
        took = time.time() - t0
        tlib.check("cancel running: ends quickly, cancelled outcome",
                   out is not None and b"Error: Job cancelled by request" in out and took < 8, (took, out))
        tlib.check("cancel running: job never finished its work", out is not None and b"finished" not in out.split(b"---")[-1], out)
        tlib.check("cancel running: callback fired", len(cb.wait("long", 20)) == 1)
        tlib.check("the next queued job still runs", wait_output(svc, "cx", "third.out", 30) is not None)

        r = cancel(svc, long["jobId"])
        tlib.check("cancel finished job: -1 already finished", r.get("statusId") == -1 and
                   r.get("statusMsg") == "Job already finished", r)
        r = cancel(svc, 999999)
        tlib.check("cancel unknown job: -1 not found", r == {"statusId": -1, "statusMsg": "Job not found"}, r)
        r = svc.post("/cancel/%s/abc/" % svc.key)
        tlib.check("cancel bad id: 400 JSON", r.status == 400 and r.json()["statusMsg"] == "Invalid job id", r.body)
        r = svc.post("/cancel/wrongkey/1/")
        tlib.check("cancel with a bad key: Key not recognized", r.json().get("statusMsg") == "Key not recognized", r.body)
        r = svc.get("/job/%s/999999/" % svc.key)
        tlib.check("/job unknown: 404 JSON", r.status == 404 and r.json()["statusId"] == -1, r.body)
        rc = svc.consumers[0].stop(60)
        tlib.check("consumer exits 0", rc == 0, rc)
        svc.consumers.clear()
        tlib.check("no container left", not our_containers(), our_containers())
    cb.close()
    tlib.done()


if __name__ == "__main__":
    main()
