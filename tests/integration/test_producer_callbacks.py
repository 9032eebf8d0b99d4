"""Callback URLs at addJob (issue 10): http and https only, and by default
no callbacks to loopback, link-local or unspecified addresses (or the name
localhost) unless config callback_allow names them; with an allowlist only
what it names. The refusal is a clear statusMsg naming the field and the
config key. A bad callback_allow entry stops the producer at start."""
import json
import os
import subprocess

import tlib

K = "k-callbacks-Ww28"


def job(url):
    return {"image": "autograding_image", "jobName": "cb", "output_file": "cb.out",
            "files": [{"localFile": "Makefile", "destFile": "Makefile"}], "callback_url": url}


def add(svc, url, field="callback_url"):
    body = job(None)
    del body["callback_url"]
    body[field] = url
    return svc.post("/addJob/%s/lab/" % K, json.dumps(body).encode()).json()


def setup(svc):
    svc.get("/open/%s/lab/" % K)
    svc.post("/upload/%s/lab/" % K, b"all:\n", {"Filename": "Makefile"})


REFUSED_BY_DEFAULT = ["http://127.0.0.1:%d/cb" % 8000, "http://127.0.0.1/", "http://127.1/",
                      "http://localhost:3000/cb", "http://[::1]/cb", "http://[::ffff:127.0.0.1]/",
                      "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/",
                      "http://0.0.0.0:3000/"]

with tlib.Service(config={"callback_allow": []}, key=K) as svc:
    setup(svc)
    for url in REFUSED_BY_DEFAULT:
        d = add(svc, url)
        tlib.check("no allowlist: %s refused at addJob, saying why" % url,
                   d["statusId"] == -1 and "callback_url" in d["statusMsg"] and
                   "callback_allow" in d["statusMsg"] and "jobId" not in d, d)
    d = add(svc, "http://127.0.0.1:9/old", field="notifyURL")
    tlib.check("no allowlist: notifyURL to 127.0.0.1 refused too",
               d["statusId"] == -1 and "notifyURL" in d["statusMsg"], d)
    for url in ["https://autolab.example.edu/courses/c/jobs/cb?key=x", "http://10.20.30.40/cb",
                "http://[2001:db8::1]:8443/cb"]:
        d = add(svc, url)
        tlib.check("no allowlist: %s accepted" % url, d.get("statusMsg") == "Job added", d)
    tlib.check("no allowlist: the live list holds only the accepted jobs",
               len(svc.get("/jobs/%s/0/" % K).json()["jobs"]) == 3)

with tlib.Service(config={"callback_allow": ["127.0.0.1", ".example.edu"]}, key=K) as svc:
    setup(svc)
    d = add(svc, "http://127.0.0.1:8000/cb")
    tlib.check("callback_allow 127.0.0.1: a callback to it is accepted",
               d.get("statusMsg") == "Job added", d)
    rec = json.loads(svc.redis.cli("HGET", svc.prefix + "jobs:live", d.get("jobId", 0)) or "{}")
    tlib.check("callback_allow 127.0.0.1: stored as notifyURL",
               rec.get("notifyURL") == "http://127.0.0.1:8000/cb", rec)
    for url in ["http://127.0.0.2/", "http://169.254.169.254/", "http://10.1.1.1/"]:
        d = add(svc, url)
        tlib.check("callback_allow: %s (not named) refused" % url,
                   d["statusId"] == -1 and "not in callback_allow" in d["statusMsg"], d)
    d = add(svc, "https://autolab.example.edu/cb")
    tlib.check("callback_allow .example.edu: a name under it accepted",
               d.get("statusMsg") == "Job added", d)

with tlib.Service(key=K) as svc:
    setup(svc)
    d = add(svc, "http://127.0.0.1:8000/cb")
    tlib.check("tests' default config allows callbacks to 127.0.0.1",
               d.get("statusMsg") == "Job added", d)
    for bad in (["not a host!"], ["10.0.0.0/33"]):
        path = svc.write_config({"callback_allow": bad, "port": tlib.free_port()})
        p = subprocess.run([os.path.join(tlib.BUILD, "tango-producer"), "-c", path],
                           env=svc.env(), capture_output=True, timeout=20)
        tlib.check("callback_allow %s: the producer refuses to start, naming the entry" % bad,
                   p.returncode == 2 and b"callback_allow" in p.stderr, (p.returncode, p.stderr))

tlib.done()
