"""Producer: jobs. addJob (Job added + ids that increase and never wrap,
every validation failure named in statusMsg, callback_url / notifyURL, the
record stored in Redis), /jobs (live in FIFO order of id with SPEC's job
fields, dead most recent first, capped by jobs_list_max) and
getPartialOutput (bad id, unknown, queued, running with invalid UTF-8)."""
import json
import subprocess

import tlib

JOB_FIELDS = {"id", "name", "assigned", "retries", "timeout", "outputFile", "notifyURL",
              "maxOutputFileSize", "trace", "vm", "input"}
VM_FIELDS = {"name", "image", "vmms", "cores", "memory", "id", "network", "resume", "disk"}


def job(**kw):
    j = {"image": "autograding_image",
         "files": [{"localFile": "handin.c", "destFile": "handin.c"},
                   {"localFile": "autograde-Makefile", "destFile": "Makefile"}],
         "jobName": "course_lab_1_student", "output_file": "student_1.out"}
    for k, v in kw.items():
        if v is None:
            j.pop(k, None)
        else:
            j[k] = v
    return j


def set_bytes(redis, key, value):
    """SET key to arbitrary bytes (redis-cli -x reads the value from stdin)."""
    subprocess.run(["redis-cli", "-p", str(redis.port), "-x", "SET", key], input=value,
                   capture_output=True, timeout=10, check=True)


with tlib.Service(config={"images": ["autograding_image", "other_image:v2"],
                          "default_timeout_s": 45, "max_timeout_s": 600,
                          "default_max_kb": 512, "max_output_kb": 4096,
                          "max_cores": 4, "max_memory_mb": 2048, "max_disk_limit_mb": 4096},
                  key="k-jobs-Hh71x") as svc:
    K = svc.key
    R = svc.redis
    pre = svc.prefix

    r = svc.post("/addJob/%s/lab/" % K, json.dumps(job()).encode())
    tlib.check("addJob to a lab never opened: -1 Courselab not found",
               r.status == 200 and r.json() == {"statusId": -1, "statusMsg": "Courselab not found"},
               r.body)
    svc.open("lab")
    for name in ["handin.c", "autograde-Makefile", "autograde.tar", "Makefile2"]:
        svc.upload("lab", name, b"content of " + name.encode())

    # --- a valid job, ids
    d = svc.add_job("lab", job())
    tlib.check("addJob: Job added with jobId", d.get("statusId") == 0 and
               d.get("statusMsg") == "Job added" and d.get("jobId") == 1, d)
    ids = [svc.add_job("lab", job(jobName="j%d" % i))["jobId"] for i in range(3)]
    tlib.check("addJob: ids increase by one", ids == [2, 3, 4], ids)
    R.cli("SET", pre + "job:lastid", 999)
    d = svc.add_job("lab", job())
    tlib.check("addJob: id after 999 is 1000 (no wrap at 1000)", d.get("jobId") == 1000, d)
    R.cli("SET", pre + "job:lastid", 2 ** 40)
    d = svc.add_job("lab", job())
    tlib.check("addJob: id after 2**40 is 2**40+1", d.get("jobId") == 2 ** 40 + 1, d)
    R.cli("SET", pre + "job:lastid", 2 ** 63 - 1)
    r = svc.post("/addJob/%s/lab/" % K, json.dumps(job()).encode())
    tlib.check("addJob: at the 64-bit end a clean -1, never a wrapped id",
               r.status == 200 and r.json()["statusId"] == -1 and "jobId" not in r.json(), r.body)
    R.cli("SET", pre + "job:lastid", 2 ** 40 + 1)

    # --- the stored record
    d = svc.add_job("lab", job(timeout=0, max_kb=100, disable_network=True, cores=2, memory=256,
                               disk=2048, callback_url="https://autolab.example/cb?x=1&y=2"))
    rec = json.loads(R.cli("HGET", pre + "jobs:live", d.get("jobId")) or "{}")
    tlib.check("record: timeout 0 -> service default", rec.get("timeout") == 45, rec)
    tlib.check("record: maxOutputFileSize = max_kb * 1024",
               rec.get("maxOutputFileSize") == 100 * 1024, rec)
    tlib.check("record: disableNetwork, network false in vm",
               rec.get("disableNetwork") is True and rec.get("vm", {}).get("network") is False, rec)
    tlib.check("record: cores and memory", rec.get("vm", {}).get("cores") == 2 and
               rec.get("vm", {}).get("memory") == 256, rec)
    tlib.check("record: disk limit (MiB) as vm.disk", rec.get("vm", {}).get("disk") == 2048, rec)
    tlib.check("record: callback_url stored as notifyURL",
               rec.get("notifyURL") == "https://autolab.example/cb?x=1&y=2", rec)
    tlib.check("record: state queued, unassigned, no retries",
               rec.get("state") == "queued" and rec.get("assigned") is False and
               rec.get("retries") == 0, rec)
    tlib.check("record: input files, name, outputFile, image",
               rec.get("input") == job()["files"] and rec.get("name") == "course_lab_1_student"
               and rec.get("outputFile") == "student_1.out" and
               rec.get("vm", {}).get("image") == "autograding_image", rec)
    tlib.check("record: queued in its class and course's queue (normal, lab)",
               R.cli("HGET", pre + "queue:sched", d.get("jobId")) == "normal:lab" and
               str(d.get("jobId")) in R.cli("LRANGE", pre + "queue:c:normal:lab", 0, -1).split(), d)
    d = svc.add_job("lab", job(timeout=30, notifyURL="http://old.client/notify",
                               image="other_image:v2"))
    rec = json.loads(R.cli("HGET", pre + "jobs:live", d.get("jobId")) or "{}")
    tlib.check("record: notifyURL accepted in place of callback_url",
               rec.get("notifyURL") == "http://old.client/notify", (d, rec))
    tlib.check("record: explicit timeout kept; max_kb absent -> default",
               rec.get("timeout") == 30 and rec.get("maxOutputFileSize") == 512 * 1024, rec)
    for body, what in [(job(timeout="20", max_kb="64"), "integers as strings"),
                       (job(callback_url=""), "empty callback_url (Autolab polling mode)"),
                       (job(accessKeyId="", accessKey=""), "empty EC2 credentials"),
                       (job(max_kb=0, timeout=0), "max_kb 0 and timeout 0 (tango-cli defaults)"),
                       (job(disable_network=None, cores=None, memory=None), "no optional fields")]:
        d = svc.add_job("lab", body)
        tlib.check("addJob accepts %s" % what, d.get("statusMsg") == "Job added", d)

    # --- tango-cli's job8: every file whose name holds "Makefile" goes as destFile
    # "Makefile"; accepted as the reference does, kept in the order listed (the
    # copy-in honours it: the last one wins)
    job8_files = [{"localFile": "Makefile2", "destFile": "Makefile"},
                  {"localFile": "handin.c", "destFile": "handin.c"},
                  {"localFile": "autograde-Makefile", "destFile": "Makefile"}]
    d = svc.add_job("lab", job(files=job8_files, jobName="job8"))
    rec = json.loads(R.cli("HGET", pre + "jobs:live", d.get("jobId", 0)) or "{}")
    tlib.check("addJob: two files with destFile Makefile (tango-cli job8) accepted",
               d.get("statusMsg") == "Job added", d)
    tlib.check("addJob job8: both kept, in the order listed", rec.get("input") == job8_files, rec)
    d = svc.add_job("lab", job(files=[{"localFile": "handin.c", "destFile": "x.c"},
                                      {"localFile": "Makefile2", "destFile": "x.c"},
                                      {"localFile": "autograde-Makefile", "destFile": "Makefile"}]))
    tlib.check("addJob: any repeated destFile accepted (last wins)",
               d.get("statusMsg") == "Job added", d)

    # --- every validation failure, named
    cases = [
        (job(image=None), ["image: required"]),
        (job(jobName=None), ["jobName"]),
        (job(output_file=None), ["output_file"]),
        (job(files=None), ["files"]),
        (job(files=[]), ["files"]),
        (job(image="nosuchimage"), ["image", "nosuchimage"]),
        (job(image=""), ["image"]),
        (job(files=[{"localFile": "missing.c", "destFile": "Makefile"}]),
         ["missing.c", "not in the courselab"]),
        (job(files=[{"localFile": "handin.c", "destFile": "handin.c"}]), ["Makefile"]),
        (job(files=[{"localFile": "handin.c"}]), ["destFile"]),
        (job(files=["handin.c"]), ["files[0]"]),
        (job(timeout="abc"), ["timeout", "integer"]),
        (job(timeout=1.5), ["timeout", "integer"]),
        (job(timeout=-1), ["timeout", "between"]),
        (job(timeout=601), ["timeout", "between"]),
        (job(timeout=True), ["timeout"]),
        (job(max_kb="lots"), ["max_kb", "integer"]),
        (job(max_kb=-5), ["max_kb", "between"]),
        (job(max_kb=4097), ["max_kb", "between"]),
        (job(cores=0), ["cores"]),
        (job(cores=5), ["cores"]),
        (job(memory=8), ["memory"]),
        (job(memory=99999), ["memory"]),
        (job(disk=8), ["disk"]),
        (job(disk=4097), ["disk", "between"]),
        (job(disable_network="yes"), ["disable_network"]),
        (job(callback_url="ftp://x/y"), ["callback_url", "http"]),
        (job(callback_url="javascript:alert(1)"), ["callback_url"]),
        (job(callback_url=5), ["callback_url"]),
        (job(notifyURL="file:///etc/passwd"), ["notifyURL"]),
        (job(callback_url="http://a b/"), ["callback_url"]),
        (job(jobName=""), ["jobName"]),
        (job(jobName="a\nb"), ["jobName"]),
        (job(jobName="x" * 300), ["jobName"]),
        ([1, 2], ["Malformed JSON"]),
        ("just a string", ["Malformed JSON"]),
    ]
    for body, words in cases:
        raw_body = json.dumps(body).encode()
        r = svc.post("/addJob/%s/lab/" % K, raw_body)
        d = r.json()
        tlib.check("addJob invalid %s: -1 naming %s" % (raw_body[:70].decode(), words),
                   r.status == 200 and d["statusId"] == -1 and
                   all(w in d["statusMsg"] for w in words) and "jobId" not in d, r.body)
    r = svc.post("/addJob/%s/lab/" % K, json.dumps(job(image=None, jobName=None, timeout="x"))
                 .encode())
    msg = r.json()["statusMsg"]
    tlib.check("addJob: several problems named in one message",
               "image" in msg and "jobName" in msg and "timeout" in msg, msg)
    for body in [b"", b"{", b"{\"image\": \"a\", \"image\": \"b\"}", b"\xff\xfe", b"null"]:
        r = svc.post("/addJob/%s/lab/" % K, body)
        tlib.check("addJob body %r: -1 Malformed JSON" % body, r.status == 200 and
                   r.json()["statusId"] == -1 and "Malformed JSON" in r.json()["statusMsg"],
                   r.body)

    # --- /jobs: live in FIFO order of id, SPEC fields
    r = svc.get("/jobs/%s/0/" % K)
    d = r.json()
    jobs = d.get("jobs", [])
    live_ids = [int(x) for x in R.cli("ZRANGE", pre + "jobs:live:ids", 0, -1).split()]
    tlib.check("jobs 0: Found list of jobs", r.status == 200 and d.get("statusId") == 0 and
               d.get("statusMsg") == "Found list of jobs", r.body[:200])
    tlib.check("jobs 0: every live job, FIFO order of id",
               [j["id"] for j in jobs] == sorted(live_ids) and len(jobs) == len(live_ids) and
               len(jobs) >= 10, [j["id"] for j in jobs])
    tlib.check("jobs 0: job objects carry SPEC's fields",
               all(JOB_FIELDS <= set(j) and VM_FIELDS <= set(j["vm"]) for j in jobs),
               jobs[0] if jobs else None)
    tlib.check("jobs 0: trace entries are '<ctime>|<event>'",
               all(j["trace"] and all("|" in t for t in j["trace"]) for j in jobs),
               jobs[0]["trace"] if jobs else None)
    tlib.check("jobs 0: input as [{localFile, destFile}]",
               jobs and jobs[0]["input"] == job()["files"], jobs[0] if jobs else None)
    p2 = svc.start_producer({"jobs_list_max": 3})
    d = svc.get("/jobs/%s/0/" % K, port=p2.port).json()
    tlib.check("jobs 0: capped by jobs_list_max, oldest first",
               [j["id"] for j in d["jobs"]] == sorted(live_ids)[:3], d)

    # --- /jobs/1: dead jobs, most recent first
    d = svc.get("/jobs/%s/1/" % K).json()
    tlib.check("jobs 1: empty at first", d == {"statusId": 0, "statusMsg": "Found list of jobs",
                                               "jobs": []}, d)
    template = json.loads(R.cli("HGET", pre + "jobs:live", 1))
    for i in [5, 7, 6]:
        dead = dict(template, id=i, state="done", name="dead%d" % i)
        R.cli("HSET", pre + "jobs:dead", i, json.dumps(dead))
        R.cli("ZADD", pre + "jobs:dead:ids", i, i)
    d = svc.get("/jobs/%s/1/" % K).json()
    tlib.check("jobs 1: dead jobs, most recent first",
               [(j["id"], j["name"]) for j in d["jobs"]] == [(7, "dead7"), (6, "dead6"), (5, "dead5")],
               d)
    for bad in ["2", "-1", "abc", "01", "0x", "%20"]:
        r = svc.get("/jobs/%s/%s/" % (K, bad))
        tlib.check("jobs %s: -1" % bad, r.status == 200 and r.json()["statusId"] == -1, r.body)

    # --- getPartialOutput
    for bad in ["abc", "0", "-3", "1.5", "99999999999999999999"]:
        r = svc.get("/getPartialOutput/%s/%s/" % (K, bad))
        tlib.check("getPartialOutput %s: -1 Invalid job id" % bad, r.status == 200 and
                   r.json() == {"statusId": -1, "statusMsg": "Invalid job id"}, r.body)
    r = svc.get("/getPartialOutput/%s/424242/" % K)
    tlib.check("getPartialOutput unknown job: -1", r.status == 200 and
               r.json()["statusId"] == -1 and "not found" in r.json()["statusMsg"], r.body)
    r = svc.get("/getPartialOutput/%s/1/" % K)
    tlib.check("getPartialOutput queued job: -1 Job is not running yet",
               r.json() == {"statusId": -1, "statusMsg": "Job is not running yet"}, r.body)
    r = svc.get("/getPartialOutput/%s/5/" % K)
    tlib.check("getPartialOutput finished job: -1", r.json()["statusId"] == -1, r.body)
    running = dict(template, state="running", assigned=True)
    R.cli("HSET", pre + "jobs:live", 1, json.dumps(running))
    r = svc.get("/getPartialOutput/%s/1/" % K)
    tlib.check("getPartialOutput running, nothing yet: empty output",
               r.json() == {"statusId": 0, "statusMsg": "Partial output obtained", "output": ""},
               r.body)
    set_bytes(R, pre + "partial:1", b"make: ok\n\xff\xfebad\x00nul \xe2\x82\xac\xc3(")
    r = svc.get("/getPartialOutput/%s/1/" % K)
    tlib.check("getPartialOutput running: output, invalid UTF-8 as U+FFFD, valid JSON",
               r.status == 200 and r.header("Content-Type") == "application/json; charset=UTF-8" and
               r.json() == {"statusId": 0, "statusMsg": "Partial output obtained",
                            "output": "make: ok\n\ufffd\ufffdbad\ufffdnul \u20ac\ufffd("},
               r.body)
    tlib.check("getPartialOutput: body is pure ASCII JSON", max(r.body) < 0x80, r.body)

    # --- pipelined on one connection: info, addJob, info sees the job
    import socket
    body = json.dumps(job(jobName="piped")).encode()
    info = b"GET /info/%s/ HTTP/1.1\r\nHost: t\r\n\r\n" % K.encode()
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
    s.sendall(info + b"POST /addJob/%s/lab/ HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
              % (K.encode(), len(body)) + body + info.replace(b"Host: t", b"Host: t\r\nConnection: close"))
    resp = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        resp += chunk
    s.close()
    docs = []
    for part in resp.split(b"HTTP/1.1 ")[1:]:
        try:
            docs.append(json.loads(part[part.find(b"{"):]))
        except ValueError:
            docs.append({})
    tlib.check("pipelined info, addJob, info: job_requests goes up by one",
               len(docs) == 3 and docs[1].get("statusMsg") == "Job added" and
               docs[2]["info"]["job_requests"] == docs[0]["info"]["job_requests"] + 1, resp[-800:])
    live_ids.append(docs[1].get("jobId") if len(docs) == 3 else None)

    # --- info counts addJob
    accepted = len(live_ids)
    info = svc.get("/info/%s/" % K).json()["info"]
    tlib.check("info: job_requests counts accepted addJobs", info["job_requests"] == accepted,
               (info, accepted))
    logs = "".join(p.logtext() for p in svc.producers)
    tlib.check("jobs: key never in the logs", K not in logs)

tlib.done()
