"""Producer: shared state. Two producers on different ports against one Redis
and one courselabs directory behave as one service; with Redis down every
legacy route answers HTTP 200 {"statusId":-1,"statusMsg":"Redis unavailable"}
and /health 503, and both recover by themselves when Redis is back on the
same port. Keys never appear in the logs."""
import json
import os
import time

import tlib

UNAVAILABLE = {"statusId": -1, "statusMsg": "Redis unavailable"}


def job(name, files=("Makefile",)):
    return {"image": "autograding_image", "jobName": name, "output_file": name + ".out",
            "files": [{"localFile": f, "destFile": "Makefile" if f == "Makefile" else f}
                      for f in files]}


def jobs_of(svc, port, dead=0):
    return svc.get("/jobs/%s/%d/" % (svc.key, dead), port=port).json()


with tlib.Service(producers=2, key="k-redis-Pw55q") as svc:
    K = svc.key
    A, B = svc.producers
    tlib.check("two producers on different ports", A.port != B.port)

    # --- one service
    d = svc.get("/open/%s/sharedlab/" % K, port=A.port).json()
    tlib.check("open on A: Created directory", d.get("statusMsg") == "Created directory", d)
    d = svc.get("/open/%s/sharedlab/" % K, port=B.port).json()
    tlib.check("open on B: Found directory (the lab A made)",
               d.get("statusMsg") == "Found directory", d)
    r = svc.post("/upload/%s/sharedlab/" % K, b"all:\n", {"Filename": "Makefile"}, port=B.port)
    tlib.check("upload on B", r.json().get("statusMsg") == "Uploaded file", r.body)
    r = svc.post("/upload/%s/sharedlab/" % K, b"int main;", {"Filename": "h.c"}, port=A.port)
    tlib.check("upload on A", r.json().get("statusMsg") == "Uploaded file", r.body)
    fa = svc.get("/open/%s/sharedlab/" % K, port=A.port).json()["files"]
    fb = svc.get("/open/%s/sharedlab/" % K, port=B.port).json()["files"]
    tlib.check("open on A and B list the same files with md5s",
               fa == fb and set(fa) == {"Makefile", "h.c"}, (fa, fb))
    r = svc.post("/upload/%s/sharedlab/" % K, b"all:\n", {"Filename": "Makefile"}, port=A.port)
    tlib.check("A sees B's upload: File exists", r.json().get("statusMsg") == "File exists", r.body)
    ids = []
    for i, p in enumerate([A, B, A, B, B, A]):
        d = svc.post("/addJob/%s/sharedlab/" % K, json.dumps(job("j%d" % i, ["Makefile", "h.c"]))
                     .encode(), port=p.port).json()
        ids.append(d.get("jobId"))
    tlib.check("addJob on either: one sequence of ids", ids == list(range(1, 7)), ids)
    ja, jb = jobs_of(svc, A.port), jobs_of(svc, B.port)
    tlib.check("same /jobs from A and B, FIFO", ja == jb and
               [j["id"] for j in ja["jobs"]] == ids, (ja, jb))
    ia = svc.get("/info/%s/" % K, port=A.port).json()["info"]
    ib = svc.get("/info/%s/" % K, port=B.port).json()["info"]
    ea, eb = ia.pop("elapsed_secs"), ib.pop("elapsed_secs")
    tlib.check("same /info from A and B", ia == ib and ia["job_requests"] == 6 and
               abs(ea - eb) <= 1, (ia, ib))
    svc.post("/prealloc/%s/autograding_image/2/" % K, port=A.port)
    pb = svc.get("/pool/%s/autograding_image/" % K, port=B.port).json()
    tlib.check("prealloc on A, pool on B", pb.get("statusMsg") == "Found pool", pb)
    lab = [n for n in os.listdir(svc.courselabs) if n.endswith("-sharedlab")][0]
    with open(os.path.join(svc.courselabs, lab, "output", "j0.out"), "wb") as f:
        f.write(b"feedback\xff")
    tlib.check("poll from either producer",
               svc.get("/poll/%s/sharedlab/j0.out/" % K, port=A.port).body == b"feedback\xff" and
               svc.get("/poll/%s/sharedlab/j0.out/" % K, port=B.port).body == b"feedback\xff")
    tlib.check("one started time for the service",
               svc.redis.cli("GET", svc.prefix + "started").isdigit())

    # --- Redis down
    svc.redis.stop()
    time.sleep(0.2)
    t0 = time.time()
    checks = [("GET", "/open/%s/sharedlab/" % K, None, {}),
              ("POST", "/upload/%s/sharedlab/" % K, b"new content", {"Filename": "down.txt"}),
              ("POST", "/addJob/%s/sharedlab/" % K, json.dumps(job("down")).encode(), {}),
              ("GET", "/info/%s/" % K, None, {}),
              ("GET", "/jobs/%s/0/" % K, None, {}),
              ("GET", "/jobs/%s/1/" % K, None, {}),
              ("GET", "/pool/%s/" % K, None, {}),
              ("GET", "/pool/%s/autograding_image/" % K, None, {}),
              ("POST", "/prealloc/%s/autograding_image/2/" % K, b"", {}),
              ("GET", "/getPartialOutput/%s/1/" % K, None, {})]
    for p in (A, B):
        for method, path, body, hdrs in checks:
            r = svc.request(method, path, body, hdrs, port=p.port, timeout=10)
            tlib.check("Redis down, %s %s on %s: 200 Redis unavailable" % (method, path, p.name),
                       r.status == 200 and r.json() == UNAVAILABLE and
                       r.header("Content-Type") == "application/json; charset=UTF-8",
                       (r.status, r.body))
        r = svc.get("/health", port=p.port)
        tlib.check("Redis down: /health 503 on %s" % p.name, r.status == 503 and
                   r.json().get("statusId") == -1 and r.json().get("redis") == "down", r.body)
        r = svc.get("/", port=p.port)
        tlib.check("Redis down: / still answers", r.status == 200 and b"RESTful Tango" in r.body)
    tlib.check("Redis down: answers come fast", time.time() - t0 < 10, time.time() - t0)
    tlib.check("Redis down: the failed upload left no file",
               not os.path.exists(os.path.join(svc.courselabs, lab, "down.txt")))
    tlib.check("Redis down: producers alive", A.proc.poll() is None and B.proc.poll() is None)

    # --- Redis back on the same port: recovery without restarting producers
    svc.redis.start()
    for p in (A, B):
        ok = False
        end = time.time() + 10
        while time.time() < end and not ok:
            ok = svc.get("/health", port=p.port).status == 200
            if not ok:
                time.sleep(0.1)
        tlib.check("Redis back: /health 200 on %s" % p.name, ok)
        r = svc.get("/info/%s/" % K, port=p.port)
        tlib.check("Redis back: info works on %s" % p.name,
                   r.json().get("statusMsg") == "Found info successfully", r.body)
    d = svc.get("/open/%s/sharedlab/" % K, port=B.port).json()
    tlib.check("Redis back: open answers", d.get("statusMsg") == "Found directory", d)
    r = svc.post("/upload/%s/sharedlab/" % K, b"all:\n", {"Filename": "Makefile"}, port=A.port)
    tlib.check("Redis back: upload works", r.json().get("statusId") == 0, r.body)
    d = svc.post("/addJob/%s/sharedlab/" % K, json.dumps(job("after")).encode(), port=B.port).json()
    tlib.check("Redis back: addJob works", d.get("statusMsg") == "Job added", d)
    tlib.check("Redis back: the job is listed by both",
               jobs_of(svc, A.port) == jobs_of(svc, B.port) and
               d.get("jobId") in [j["id"] for j in jobs_of(svc, A.port)["jobs"]])

    # --- the same with one Redis restart while a keep-alive connection is open
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", A.port, timeout=10)
    conn.request("GET", "/info/%s/" % K)
    first = conn.getresponse().read()
    svc.redis.stop()
    conn.request("GET", "/info/%s/" % K)
    second = conn.getresponse().read()
    svc.redis.start()
    conn.request("GET", "/info/%s/" % K)
    third = conn.getresponse().read()
    conn.close()
    tlib.check("keep-alive client across a Redis restart: ok, unavailable, ok",
               b"Found info" in first and json.loads(second) == UNAVAILABLE and
               b"Found info" in third, (first, second, third))

    logs = A.logtext() + B.logtext()
    tlib.check("logs record Redis going down and coming back",
               "redis_down" in logs and "redis_up" in logs)
    tlib.check("redis: key never in the logs", K not in logs)

tlib.done()
