"""Records and queues have bounds (issue 18.9), with the shipped defaults:
- a maximal addJob (256 files with 255-byte names: a 143 KB record) is
  refused with -1 naming max_job_record_kb, and nothing is queued; a job of
  normal size (and a large but reasonable one) is still added;
- /jobs answers at most jobs_list_max_kb (2048 KB): past it the list is cut
  (the first jobs in order), with "truncated": true and a message naming the
  limit and how many were left out; an answer that fits has no marker;
- max_queued_per_course has a finite default (5000): with 5000 jobs of one
  group queued, the next addJob answers -1 naming the limit.
The trace's bound (last lines, "Trace cut" note) is tests/unit/test_job.c's."""
import json
import os

import tlib

K = tlib.KEYS


def job(name, files):
    return {"image": "autograding_image", "jobName": name, "output_file": name + ".out",
            "files": [{"localFile": f, "destFile": f} for f in files]}


def lab_dir(svc, lab):
    return os.path.join(svc.courselabs,
                        [n for n in os.listdir(svc.courselabs) if n.endswith("-" + lab)][0])


def plant(svc, lab, names):
    """Files straight into the lab directory (as many uploads would)."""
    d = lab_dir(svc, lab)
    for n in names:
        with open(os.path.join(d, n), "w") as f:
            f.write("x")


with tlib.Service() as svc:
    pre = svc.prefix
    for lab in ("lab", "big"):
        svc.open(lab)
        svc.upload(lab, "Makefile", b"all:\n\techo ok\n")

    # --- a record's size
    d = svc.add_job("lab", job("normal", ["Makefile"]))
    tlib.check("normal addJob (tango-cli's shape) is added", d.get("statusMsg") == "Job added", d)
    normal_id = d.get("jobId")
    huge = ["f%03d" % i + "x" * 251 for i in range(255)]
    plant(svc, "lab", huge)
    before = svc.redis.cli("HLEN", pre + K["JOBS_LIVE"])
    r = svc.post("/addJob/%s/lab/" % svc.key, json.dumps(job("huge", ["Makefile"] + huge)).encode())
    d = r.json()
    tlib.check("maximal addJob (256 files, 255-byte names) refused: -1 naming max_job_record_kb",
               r.status == 200 and d.get("statusId") == -1 and
               "max_job_record_kb (32 KB)" in d.get("statusMsg", "") and
               "too large" in d.get("statusMsg", ""), d)
    tlib.check("maximal addJob: nothing stored or queued",
               svc.redis.cli("HLEN", pre + K["JOBS_LIVE"]) == before and
               svc.redis.cli("LLEN", pre + K["QUEUE_CLASS"] + "normal:lab") == "1",
               svc.redis.cli("HLEN", pre + K["JOBS_LIVE"]))
    d = svc.add_job("lab", job("forty", ["Makefile"] + huge[:40]))
    rec = svc.redis.cli("HGET", pre + K["JOBS_LIVE"], d.get("jobId"))
    tlib.check("a large but reasonable addJob (41 files, 255-byte names) is added",
               d.get("statusMsg") == "Job added" and 20000 < len(rec) <= 32 * 1024,
               (d, len(rec)))
    d = svc.get("/jobs/%s/0/" % svc.key).json()
    tlib.check("/jobs that fits: no truncated marker",
               d.get("statusId") == 0 and "truncated" not in d and
               [j["id"] for j in d["jobs"]][:1] == [normal_id], d)

    # --- /jobs in bytes: about 2.3 MB of records against the 2048 KB default
    names = ["b%03d" % i + "y" * 46 for i in range(199)]
    plant(svc, "big", names)
    ids = []
    for i in range(85):
        d = svc.add_job("big", job("big%02d" % i, ["Makefile"] + names))
        ids.append(d.get("jobId"))
    tlib.check("85 jobs of about 28 KB each added", all(isinstance(i, int) for i in ids), ids[-3:])
    r = svc.get("/jobs/%s/0/" % svc.key)
    d = r.json()
    shown = [j["id"] for j in d.get("jobs", [])]
    total = 2 + len(ids)
    tlib.check("/jobs answer bounded by jobs_list_max_kb (2048 KB)",
               len(r.body) <= 2048 * 1024, len(r.body))
    tlib.check("/jobs cut: truncated true, message names the limit and what was left out",
               d.get("statusId") == 0 and d.get("truncated") is True and
               "jobs_list_max_kb (2048 KB)" in d.get("truncatedMsg", "") and
               ("%d left out" % (total - len(shown))) in d.get("truncatedMsg", ""),
               {k: v for k, v in d.items() if k != "jobs"})
    tlib.check("/jobs cut: the first jobs in FIFO order, most of them",
               len(shown) > 60 and shown == sorted(shown) and shown[0] == normal_id,
               shown[:5])

    # --- max_queued_per_course: finite by default
    qkey = pre + K["QUEUE_CLASS"] + "low:lab"
    queued = int(svc.redis.cli("LLEN", pre + K["QUEUE_CLASS"] + "normal:lab"))  # 2 so far
    svc.redis.cli("EVAL", "for i = 1, tonumber(ARGV[1]) do redis.call('RPUSH', KEYS[1], "
                  "1000000 + i) end return 1", 1, qkey, 4999 - queued)
    d = svc.add_job("lab", job("last", ["Makefile"]))
    tlib.check("queue cap: the 5000th queued job of a group is added",
               d.get("statusMsg") == "Job added", d)
    d = svc.add_job("lab", job("over", ["Makefile"]))
    tlib.check("queue cap: the 5001st answers -1 naming max_queued_per_course (5000)",
               d.get("statusId") == -1 and
               "max_queued_per_course (5000)" in d.get("statusMsg", ""), d)
    d = svc.add_job("big", job("other", ["Makefile"]))
    tlib.check("queue cap: another group still adds", d.get("statusMsg") == "Job added", d)
    svc.redis.cli("DEL", qkey)

tlib.done()
