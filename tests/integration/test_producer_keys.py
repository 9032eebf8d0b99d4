"""Keys own their jobs, and lab directories are named with the installation
secret (issue 10, item 7): with two keys, K2 sees none of K1's jobs (live or
dead), callback URLs or partial output and cannot cancel them; another key's
job answers exactly as an unknown one. Records made before jobs carried a
keyId stay visible to the key whose lab they name. Lab directories: an HMAC
of the key with <courselabs>/.tango-secret (created 0600 at first start),
and a lab made under the old naming (SHA-256 of the key) is still found."""
import hashlib
import hmac
import json
import os
import stat

import tlib

K1 = "k-owner-one-Qm41"
K2 = "k-owner-two-Zr77"
SECRET_URL = "https://autolab.example/jobs/cb?key=AUTOLAB-SECRET-5521"


def job(**kw):
    d = {"image": "autograding_image", "jobName": "keyjob", "output_file": "o.out",
         "files": [{"localFile": "handin.c", "destFile": "handin.c"},
                   {"localFile": "Makefile", "destFile": "Makefile"}]}
    d.update(kw)
    return {k: v for k, v in d.items() if v is not None}


with tlib.Service(config={"keys": [K1, K2]}, key=K1) as svc:
    R = svc.redis
    pre = svc.prefix

    def get(key, path):
        r = svc.get(path.replace("KEY", key))
        return r.status, r.json()

    def add(key, lab, **kw):
        return svc.post("/addJob/%s/%s/" % (key, lab), json.dumps(job(**kw)).encode()).json()

    for key in (K1, K2):
        svc.get("/open/%s/lab/" % key)
        for name in ("handin.c", "Makefile"):
            svc.post("/upload/%s/lab/" % key, b"x", {"Filename": name})
    j1 = add(K1, "lab", jobName="k1job", callback_url=SECRET_URL)["jobId"]
    j2 = add(K2, "lab", jobName="k2job")["jobId"]
    rec1 = json.loads(R.cli("HGET", pre + "jobs:live", j1))

    # --- the installation secret and the names it gives
    secret_path = os.path.join(svc.courselabs, ".tango-secret")
    st = os.lstat(secret_path) if os.path.lexists(secret_path) else None
    tlib.check("secret: <courselabs>/.tango-secret made at first start, regular, 0600, 32 bytes",
               st and stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and
               st.st_size == 32, st)
    secret = b""
    if st:
        with open(secret_path, "rb") as f:
            secret = f.read()
    hid = {k: hmac.new(secret, k.encode(), hashlib.sha256).hexdigest()[:16] for k in (K1, K2)}
    old = {k: hashlib.sha256(k.encode()).hexdigest()[:16] for k in (K1, K2)}
    labs = sorted(n for n in os.listdir(svc.courselabs) if n != ".tango-secret")
    tlib.check("labs: named HMAC(secret, key), not SHA-256(key)",
               labs == sorted(["%s-lab" % hid[K1], "%s-lab" % hid[K2]]), labs)
    tlib.check("jobs: keyId recorded, the HMAC id (never the key)",
               rec1.get("keyId") == hid[K1] and K1 not in json.dumps(rec1), rec1.get("keyId"))

    # --- /jobs: each key lists only its own
    _, d1 = get(K1, "/jobs/KEY/0/")
    _, d2 = get(K2, "/jobs/KEY/0/")
    tlib.check("jobs 0: K1 lists its job only", [j["id"] for j in d1["jobs"]] == [j1], d1)
    tlib.check("jobs 0: K2 lists its job only", [j["id"] for j in d2["jobs"]] == [j2], d2)
    tlib.check("jobs 0: K2 never sees K1's callback URL",
               "AUTOLAB-SECRET" not in json.dumps(d2), d2)

    # --- one job's routes: another key's job answers as an unknown one
    unknown = 987654
    for route in ("/job/KEY/%d/", "/getPartialOutput/KEY/%d/"):
        theirs = get(K2, route % j1)
        none = get(K2, route % unknown)
        tlib.check("%s: K1's job to K2 answers exactly as an unknown job" % route.split("/")[1],
                   theirs == none and theirs[1]["statusId"] == -1, (theirs, none))
    status, mine = get(K1, "/job/KEY/%d/" % j1)
    tlib.check("job: K1 sees its own job with its callback URL",
               mine.get("statusId") == 0 and mine["job"]["notifyURL"] == SECRET_URL, mine)

    # partial output of a running job
    running = dict(rec1, state="running")
    R.cli("HSET", pre + "jobs:live", j1, json.dumps(running))
    R.cli("SET", pre + "partial:%d" % j1, "K1 PRIVATE OUTPUT")
    _, p2 = get(K2, "/getPartialOutput/KEY/%d/" % j1)
    _, pn = get(K2, "/getPartialOutput/KEY/%d/" % unknown)
    tlib.check("partial: K2 gets K1's output no more than an unknown job's",
               p2 == pn and "PRIVATE" not in json.dumps(p2), (p2, pn))
    tlib.check("partial: K2's try marks no interest in K1's job",
               R.cli("EXISTS", pre + "partial:want:%d" % j1).strip() == "0")
    _, p1 = get(K1, "/getPartialOutput/KEY/%d/" % j1)
    tlib.check("partial: K1 reads its running job's output",
               p1.get("output") == "K1 PRIVATE OUTPUT", p1)

    # cancel
    r_theirs = svc.post("/cancel/%s/%d/" % (K2, j1))
    r_none = svc.post("/cancel/%s/%d/" % (K2, unknown))
    tlib.check("cancel: K2 cancelling K1's job answers as an unknown job",
               (r_theirs.status, r_theirs.json()) == (r_none.status, r_none.json()) and
               r_theirs.status == 404, (r_theirs.status, r_theirs.body, r_none.body))
    _, after = get(K1, "/job/KEY/%d/" % j1)
    tlib.check("cancel: K1's job not cancelled by K2",
               after.get("cancelRequested") is False and
               str(j1) not in R.cli("SMEMBERS", pre + "cancels").split(), after)
    r = svc.post("/cancel/%s/%d/" % (K1, j1))
    tlib.check("cancel: K1 can cancel its own job", r.status == 200 and r.json()["statusId"] == 0,
               r.body)

    # --- dead jobs
    dead = dict(rec1, id=900, state="done")
    R.cli("HSET", pre + "jobs:dead", 900, json.dumps(dead))
    R.cli("ZADD", pre + "jobs:dead:ids", 900, 900)
    _, dd1 = get(K1, "/jobs/KEY/1/")
    _, dd2 = get(K2, "/jobs/KEY/1/")
    tlib.check("jobs 1: K1 lists its finished job, K2 does not",
               [j["id"] for j in dd1["jobs"]] == [900] and dd2["jobs"] == [], (dd1, dd2))
    tlib.check("job: K2 reading K1's finished job answers as unknown",
               get(K2, "/job/KEY/900/") == get(K2, "/job/KEY/%d/" % unknown))

    # --- records from before keyId: visible to the key whose (old) lab they name
    legacy = {k: v for k, v in rec1.items() if k != "keyId"}
    legacy.update(id=901, labDir="%s-lab" % old[K1])
    R.cli("HSET", pre + "jobs:live", 901, json.dumps(legacy))
    R.cli("ZADD", pre + "jobs:live:ids", 901, 901)
    nobody = dict(legacy, id=902, labDir="elsewhere-lab")
    R.cli("HSET", pre + "jobs:live", 902, json.dumps(nobody))
    R.cli("ZADD", pre + "jobs:live:ids", 902, 902)
    _, d1 = get(K1, "/jobs/KEY/0/")
    _, d2 = get(K2, "/jobs/KEY/0/")
    tlib.check("old records: a job without keyId in K1's old lab is K1's",
               901 in [j["id"] for j in d1["jobs"]] and get(K1, "/job/KEY/901/")[1]["statusId"] == 0,
               d1)
    tlib.check("old records: K2 sees neither it nor one whose lab names no key",
               [j["id"] for j in d2["jobs"]] == [j2] and
               get(K2, "/job/KEY/901/") == get(K2, "/job/KEY/%d/" % unknown), d2)
    tlib.check("old records: a job without keyId and a lab of no key is no one's",
               902 not in [j["id"] for j in d1["jobs"]], d1)

    # --- a lab made under the old naming is still found, in place
    old_dir = os.path.join(svc.courselabs, "%s-oldlab" % old[K1])
    os.makedirs(os.path.join(old_dir, "output"))
    with open(os.path.join(old_dir, "Makefile"), "wb") as f:
        f.write(b"all:\n")
    d = svc.get("/open/%s/oldlab/" % K1).json()
    tlib.check("old lab: open finds it (Found directory)",
               d.get("statusMsg") == "Found directory", d)
    d = svc.post("/upload/%s/oldlab/" % K1, b"y", {"Filename": "handin.c"}).json()
    tlib.check("old lab: upload lands in it", d.get("statusMsg") == "Uploaded file" and
               os.path.exists(os.path.join(old_dir, "handin.c")), d)
    d = add(K1, "oldlab")
    rec = json.loads(R.cli("HGET", pre + "jobs:live", d.get("jobId", 0)) or "{}")
    tlib.check("old lab: addJob finds its files; the job names the old directory",
               d.get("statusMsg") == "Job added" and rec.get("labDir") == "%s-oldlab" % old[K1], d)
    tlib.check("old lab: no second directory was made for it",
               not os.path.exists(os.path.join(svc.courselabs, "%s-oldlab" % hid[K1])))
    d = svc.get("/open/%s/oldlab/" % K2).json()
    tlib.check("old lab: another key opening the same lab name gets its own",
               d.get("statusMsg") == "Created directory", d)

    # --- no key in any path or log
    paths = []
    for top, dirs, files in os.walk(svc.courselabs):
        paths += [os.path.join(top, n) for n in dirs + files]
    tlib.check("no key in any path", not any(K1 in p or K2 in p for p in paths))
    log = svc.producers[0].logtext()
    tlib.check("no key in the log", K1 not in log and K2 not in log)

# --- a second start reads the same secret (same names); a bad secret file stops the start
with tlib.Service(key=K1) as svc:
    svc.get("/open/%s/lab/" % K1)
    first = sorted(n for n in os.listdir(svc.courselabs) if n != ".tango-secret")
    svc.restart(svc.producers[0], sig=15)
    d = svc.get("/open/%s/lab/" % K1).json()
    tlib.check("restart: same secret, the lab is found again", d.get("statusMsg") == "Found directory"
               and sorted(n for n in os.listdir(svc.courselabs) if n != ".tango-secret") == first, d)
    loose = os.path.join(svc.tmp, "loose-secret")
    with open(loose, "wb") as f:
        f.write(b"0123456789abcdef0123456789abcdef")
    os.chmod(loose, 0o644)
    path = svc.write_config({"secret_file": loose, "port": tlib.free_port()})
    import subprocess
    p = subprocess.run([os.path.join(tlib.BUILD, "tango-producer"), "-c", path], env=svc.env(),
                       capture_output=True, timeout=20)
    tlib.check("secret_file readable by others: the producer refuses to start, saying why",
               p.returncode == 2 and b"chmod 600" in p.stderr and b"0123456789abcdef" not in p.stderr,
               (p.returncode, p.stderr[-300:]))

tlib.done()
