"""Producer: requests sent exactly the way Tango's own clients send them.

tango-cli.py (autolab/Tango clients/tango-cli.py) uses python-requests:
GET / first (raise_for_status), then one call per action with its default
arguments: --image "" (so /pool/KEY// for all pools), --maxsize 0 sent as
"max_kb": 0, --timeout 0, accessKeyId/accessKey "" always sent, notifyURL
only when given, the output file quoted with urllib.parse.quote, prealloc's
body {"vmms","cores","memory"}, uploads with a "Filename" header holding the
basename. Autolab (lib/tango_client.rb, HTTParty) sends a lower-case
"filename" header, addJob bodies as form-encoded JSON text with
"callback_url": "" when it polls, and polls without the trailing slash."""
import hashlib
import json
import os
import socket
import urllib.parse

import tlib

REQUESTS_HEADERS = {"User-Agent": "python-requests/2.31.0", "Accept-Encoding": "gzip, deflate",
                    "Accept": "*/*", "Connection": "keep-alive"}
HTTPARTY_HEADERS = {"User-Agent": "Ruby", "Accept": "*/*",
                    "Accept-Encoding": "gzip;q=1.0,deflate;q=0.6,identity;q=0.3",
                    "Connection": "close"}


def send(port, method, path, body=None, headers=None):
    """One request written the way requests/Net::HTTP write it (Host with the
    port, Content-Length for bodies, no Content-Type unless given)."""
    hdrs = {"Host": "127.0.0.1:%d" % port}
    hdrs.update(headers or {})
    if body is not None:
        body = body.encode("utf-8") if isinstance(body, str) else body
        hdrs["Content-Length"] = str(len(body))
    elif method == "POST":
        hdrs["Content-Length"] = "0"
    head = "%s %s HTTP/1.1\r\n" % (method, path) + "".join(
        "%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n"
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(head.encode("latin-1") + (body or b""))
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
        h, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            n = [int(l.split(b":")[1]) for l in h.split(b"\r\n")
                 if l.lower().startswith(b"content-length:")]
            if n and len(rest) >= n[0]:
                break
    s.close()
    h, _, rest = data.partition(b"\r\n\r\n")
    lines = h.split(b"\r\n")
    hd = {l.split(b":")[0].decode().lower(): l.split(b":", 1)[1].strip().decode() for l in lines[1:]}
    return int(lines[0].split()[1]), hd, rest


def js(resp):
    return json.loads(resp[2])


with tlib.Service(key="k-clients-3vR8") as svc:
    K, port = svc.key, svc.port
    lab = "15213-f26-datalab"

    # ---------------- tango-cli.py ----------------
    def cli(method, path, body=None, headers=None):
        h = dict(REQUESTS_HEADERS)
        h.update(headers or {})
        return send(port, method, path, body, h)

    r = cli("GET", "/")
    tlib.check("tango-cli: reachability GET / is 200", r[0] == 200 and b"RESTful Tango" in r[2])
    r = cli("GET", "/open/%s/%s/" % (K, lab))
    tlib.check("tango-cli --open", js(r) == {"statusId": 0, "statusMsg": "Created directory",
                                             "files": {}}, r)
    contents = {"autograde-Makefile": "all:\n\tpython3 hello.py\n", "hello.py": "print('hi')\n"}
    for fname, text in contents.items():
        # tango-cli: data=f.read() (text), headers={"Filename": basename}
        r = cli("POST", "/upload/%s/%s/" % (K, lab), text,
                {"Filename": os.path.basename("job9/" + fname)})
        tlib.check("tango-cli --upload %s" % fname, js(r)["statusMsg"] == "Uploaded file", r)
    r = cli("GET", "/open/%s/%s/" % (K, lab))
    tlib.check("tango-cli --open again: Found directory with md5s",
               js(r)["files"] == {n: hashlib.md5(t.encode()).hexdigest()
                                  for n, t in contents.items()}, r)
    infiles = [{"localFile": "autograde-Makefile", "destFile": "Makefile"},
               {"localFile": "hello.py", "destFile": "hello.py"}]
    req = {"image": "", "files": infiles, "timeout": 0, "max_kb": 0,
           "output_file": "result.out", "jobName": "test_job", "accessKeyId": "", "accessKey": ""}
    r = cli("POST", "/addJob/%s/%s/" % (K, lab), json.dumps(req))
    tlib.check("tango-cli --addJob with its default --image '': clear -1 about the image",
               r[0] == 200 and js(r)["statusId"] == -1 and "image" in js(r)["statusMsg"], r)
    req["image"] = "autograding_image"
    r = cli("POST", "/addJob/%s/%s/" % (K, lab), json.dumps(req))
    tlib.check("tango-cli --addJob --image autograding_image (max_kb 0, timeout 0)",
               js(r)["statusMsg"] == "Job added" and isinstance(js(r).get("jobId"), int), r)
    first_id = js(r).get("jobId")
    req.update(notifyURL="http://autolab.local/cb", jobName="test_job-1", output_file="result.out-1")
    r = cli("POST", "/addJob/%s/%s/" % (K, lab), json.dumps(req))
    tlib.check("tango-cli --addJob --notifyURL", js(r)["statusMsg"] == "Job added", r)
    rec = json.loads(svc.redis.cli("HGET", svc.prefix + "jobs:live", js(r).get("jobId")) or "{}")
    tlib.check("tango-cli: notifyURL and default limits stored",
               rec.get("notifyURL") == "http://autolab.local/cb" and rec.get("timeout") == 60 and
               rec.get("maxOutputFileSize") == 1000 * 1024, rec)
    r = cli("GET", "/poll/%s/%s/%s/" % (K, lab, urllib.parse.quote("result.out")))
    tlib.check("tango-cli --poll before the output exists",
               js(r) == {"statusId": -1, "statusMsg": "Output file not found"}, r)
    labdir = [n for n in os.listdir(svc.courselabs) if n.endswith("-" + lab)][0]
    out = b"Autograder [Sat Nov 21 21:19:04 2026]: Received job test_job:1\n{\"scores\": {}}\n"
    with open(os.path.join(svc.courselabs, labdir, "output", "result out 1.txt"), "wb") as f:
        f.write(out)
    r = cli("GET", "/poll/%s/%s/%s/" % (K, lab, urllib.parse.quote("result out 1.txt")))
    tlib.check("tango-cli --poll --outputFile 'result out 1.txt'", r[0] == 200 and r[2] == out and
               r[1].get("content-type") == "application/octet-stream", r)
    r = cli("GET", "/info/%s/" % K)
    tlib.check("tango-cli --info", js(r)["statusMsg"] == "Found info successfully" and
               js(r)["info"]["job_requests"] == 2, r)
    for dead in (0, 1):
        r = cli("GET", "/jobs/%s/%d/" % (K, dead))
        tlib.check("tango-cli --jobs --deadJobs %d" % dead,
                   js(r)["statusMsg"] == "Found list of jobs" and
                   len(js(r)["jobs"]) == (2 if dead == 0 else 0), r)
    vm = {"vmms": "localDocker", "cores": 1, "memory": 512}
    r = cli("POST", "/prealloc/%s/%s/%s/" % (K, "autograding_image", 2), json.dumps(vm))
    tlib.check("tango-cli --prealloc --image autograding_image", js(r)["statusMsg"] ==
               "VMs preallocated", r)
    r = cli("POST", "/prealloc/%s/%s/%s/" % (K, "", 2), json.dumps(vm))
    tlib.check("tango-cli --prealloc with its default --image '': JSON -1 (Tango: 404)",
               js(r)["statusId"] == -1, r)
    r = cli("GET", "/pool/%s/%s/" % (K, ""))
    tlib.check("tango-cli --pool with its default --image '' (/pool/KEY//): Found all pools",
               r[0] == 200 and js(r)["statusMsg"] == "Found all pools" and
               "autograding_image" in js(r)["pools"], r)
    r = cli("GET", "/pool/%s/%s/" % (K, "autograding_image"))
    tlib.check("tango-cli --pool --image autograding_image", js(r)["statusMsg"] == "Found pool", r)

    # ---------------- Autolab (HTTParty) ----------------
    def autolab(method, path, body=None, headers=None):
        h = dict(HTTPARTY_HEADERS)
        h.update(headers or {})
        return send(port, method, path, body, h)

    alab = "15122-s26-lab1"
    r = autolab("GET", "/open/%s/%s/" % (K, alab))
    tlib.check("Autolab open", r[0] == 200 and js(r)["files"] == {}, r)
    handin = b"user@cmu.edu_1_handin.c contents \x00\xff"
    r = autolab("POST", "/upload/%s/%s/" % (K, alab), handin,
                {"filename": "user@cmu.edu_1_handin.c"})
    tlib.check("Autolab upload (lower-case filename header, binary body)",
               js(r)["statusMsg"] == "Uploaded file", r)
    r = autolab("POST", "/upload/%s/%s/" % (K, alab), b"all:\n\tmake -f x\n",
                {"filename": "autograde-Makefile"})
    files = js(autolab("GET", "/open/%s/%s/" % (K, alab)))["files"]
    tlib.check("Autolab open: md5 it compares before re-uploading",
               files.get("user@cmu.edu_1_handin.c") == hashlib.md5(handin).hexdigest(), files)
    props = {"image": "autograding_image",
             "files": [{"localFile": "user@cmu.edu_1_handin.c", "destFile": "handin.c"},
                       {"localFile": "autograde-Makefile", "destFile": "Makefile"}],
             "output_file": "15122-s26_lab1_1_user@cmu.edu_autograde.txt", "timeout": 180,
             "callback_url": "", "jobName": "15122-s26_lab1_1_user@cmu.edu",
             "disable_network": False}
    r = autolab("POST", "/addJob/%s/%s/" % (K, alab), json.dumps(props),
                {"Content-Type": "application/x-www-form-urlencoded"})
    tlib.check("Autolab addJob (form content type, callback_url '' for polling)",
               js(r)["statusMsg"] == "Job added", r)
    job_id = js(r).get("jobId")
    props["callback_url"] = ("https://autolab.example/courses/15122-s26/assessments/lab1/"
                             "autograde_done?dave=abc&submission_id=9")
    r = autolab("POST", "/addJob/%s/%s/" % (K, alab), json.dumps(props),
                {"Content-Type": "application/x-www-form-urlencoded"})
    tlib.check("Autolab addJob with its callback_url", js(r)["statusMsg"] == "Job added", r)
    live = js(autolab("GET", "/jobs/%s/0/" % K))["jobs"]
    unassigned = sorted([j for j in live if not j["assigned"]], key=lambda j: j["id"])
    tlib.check("Autolab queue position: job found among unassigned jobs by id",
               [j["id"] for j in unassigned].index(job_id) == 2, [j["id"] for j in unassigned])
    outname = props["output_file"]
    r = autolab("GET", "/poll/%s/%s/%s" % (K, alab, urllib.parse.quote(outname)))
    tlib.check("Autolab poll (no trailing slash) before done: JSON -1",
               r[1].get("content-type", "").split(";")[0] == "application/json" and
               js(r)["statusId"] == -1, r)
    alabdir = [n for n in os.listdir(svc.courselabs) if n.endswith("-" + alab)][0]
    feedback = b"Autodriver: Job exited with status 0\n\xe2\x9c\x93 \xff\n{\"scores\": {\"q\": 1}}\n"
    with open(os.path.join(svc.courselabs, alabdir, "output", outname), "wb") as f:
        f.write(feedback)
    r = autolab("GET", "/poll/%s/%s/%s" % (K, alab, urllib.parse.quote(outname)))
    tlib.check("Autolab poll when done: not JSON, the exact feedback bytes",
               r[1].get("content-type") == "application/octet-stream" and r[2] == feedback, r)
    r = autolab("GET", "/getPartialOutput/%s/%d/" % (K, job_id))
    tlib.check("Autolab getPartialOutput of a queued job: JSON -1", js(r)["statusId"] == -1, r)
    r = autolab("GET", "/info/%s/" % K)
    tlib.check("Autolab info", "info" in js(r), r)
    r = autolab("GET", "/pool/%s/" % K)
    tlib.check("Autolab pool (no image)", js(r)["statusMsg"] == "Found all pools", r)
    r = autolab("POST", "/build/%s/" % K, b"not really a tarball",
                {"Content-Type": "application/octet-stream"})
    tlib.check("Autolab build without imageName: HTTP 200, JSON -1 about the image name",
               r[0] == 200 and js(r)["statusId"] == -1 and "imageName" in js(r)["statusMsg"], r)
    first = svc.get("/jobs/%s/0/" % K).json()["jobs"][0]
    tlib.check("the first tango-cli job is still first in the queue", first["id"] == first_id)
    tlib.check("clients: key never in the logs", K not in svc.producers[0].logtext())

tlib.done()
