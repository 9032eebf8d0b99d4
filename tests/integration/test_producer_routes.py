"""Producer: the service routes of docs/api.md's table and our extensions, with
exact statusMsg strings and content types: / (hello), /health, unknown
route (404), wrong method (405), "Key not recognized" on every keyed route,
info, pool, prealloc and build (with a simulated consumer)."""
import json
import os
import threading
import time

import tlib

JSON_TYPE = "application/json; charset=UTF-8"
HELLO = b"Hello, world! RESTful Tango here!\n"


def envelope(r, status_id, msg):
    """True if r is a JSON envelope with statusId/statusMsg as given."""
    try:
        d = r.json()
    except ValueError:
        return False
    return (r.header("Content-Type") == JSON_TYPE and d.get("statusId") == status_id
            and d.get("statusMsg") == msg)


def legacy_fail(r, msg):
    """A legacy-route failure: HTTP 200, statusId -1, the exact message."""
    return r.status == 200 and envelope(r, -1, msg)


with tlib.Service(config={"build_timeout_s": 1, "max_pool_size": 10}, key="k-7Qx93vTz") as svc:
    K = svc.key
    R = svc.redis

    # --- liveness and our extensions
    r = svc.get("/")
    tlib.check("hello: exact body", r.status == 200 and r.body == HELLO, r.body)
    tlib.check("hello: text/html", (r.header("Content-Type") or "").startswith("text/html"),
               r.headers)
    r = svc.get("/health")
    tlib.check("health: 200 without a key", r.status == 200 and envelope(r, 0, "OK"), r.body)
    tlib.check("health: says redis up", r.json().get("redis") == "up", r.body)
    for path in ["/nope", "/nope/%s/" % K, "/info/%s/extra/" % K, "/open/%s/" % K,
                 "/Info/%s/" % K, "/open/%s/lab/x/y/z/" % K]:
        r = svc.get(path)
        tlib.check("unknown route %s: 404 JSON" % path,
                   r.status == 404 and envelope(r, -1, "Unknown route"), (r.status, r.body))
    for method, path in [("POST", "/open/%s/lab/" % K), ("GET", "/upload/%s/lab/" % K),
                         ("GET", "/addJob/%s/lab/" % K), ("DELETE", "/info/%s/" % K),
                         ("POST", "/"), ("PUT", "/health"), ("GET", "/build/%s/" % K)]:
        r = svc.request(method, path, body=b"" if method != "GET" else None)
        tlib.check("wrong method %s %s: 405 JSON" % (method, path),
                   r.status == 405 and envelope(r, -1, "Method not allowed for this route"),
                   (r.status, r.body))

    # --- a wrong key on every keyed route: HTTP 200, -1 "Key not recognized"
    for bad in ["wrongkey", K[:-1], K + "y", K.upper()]:
        keyed = [("GET", "/open/%s/lab/"), ("POST", "/upload/%s/lab/"),
                 ("POST", "/addJob/%s/lab/"), ("GET", "/poll/%s/lab/out.txt/"),
                 ("GET", "/getPartialOutput/%s/1/"), ("GET", "/info/%s/"),
                 ("GET", "/jobs/%s/0/"), ("GET", "/jobs/%s/1/"), ("GET", "/pool/%s/"),
                 ("GET", "/pool/%s/autograding_image/"),
                 ("POST", "/prealloc/%s/autograding_image/2/"), ("POST", "/build/%s/")]
        for method, tmpl in keyed:
            path = tmpl % bad
            r = svc.request(method, path, body=b"x" if method == "POST" else None,
                            headers={"Filename": "f.txt", "imageName": "img"})
            tlib.check("bad key %s %s" % (method, path), legacy_fail(r, "Key not recognized"),
                       (r.status, r.body))
    tlib.check("bad key: no lab directory was created",
               not os.path.exists(svc.courselabs) or
               [n for n in os.listdir(svc.courselabs) if n != ".tango-secret"] == [],
               os.listdir(svc.courselabs) if os.path.exists(svc.courselabs) else None)

    # --- info
    r = svc.get("/info/%s/" % K)
    tlib.check("info: Found info successfully", r.status == 200 and
               envelope(r, 0, "Found info successfully"), r.body)
    info = r.json().get("info", {})
    counters = ["elapsed_secs", "job_requests", "job_retries", "waitvm_timeouts",
                "runjob_timeouts", "copyin_errors", "runjob_errors", "copyout_errors",
                "num_threads"]
    tlib.check("info: every SPEC counter present as an integer",
               all(isinstance(info.get(c), int) for c in counters), info)
    tlib.check("info: no job requests yet", info.get("job_requests") == 0, info)
    R.cli("HINCRBY", svc.prefix + "counters", "runjob_timeouts", 3)
    info2 = svc.get("/info/%s/" % K).json()["info"]
    tlib.check("info: counters come from Redis", info2.get("runjob_timeouts") == 3, info2)
    R.cli("SET", svc.prefix + "started", int(time.time()) - 100)
    info3 = svc.get("/info/%s/" % K).json()["info"]
    tlib.check("info: elapsed_secs from the service start in Redis",
               100 <= info3["elapsed_secs"] <= 105, info3)

    # --- pools and prealloc
    r = svc.get("/pool/%s/" % K)
    tlib.check("pool: none yet -> Found all pools {}", envelope(r, 0, "Found all pools") and
               r.json().get("pools") == {}, r.body)
    r = svc.get("/pool/%s/autograding_image/" % K)
    tlib.check("pool: unknown image -> Pool not found", legacy_fail(r, "Pool not found"), r.body)
    r = svc.post("/prealloc/%s/autograding_image/3/" % K)
    tlib.check("prealloc: VMs preallocated", envelope(r, 0, "VMs preallocated"), r.body)
    wanted = R.cli("HGET", svc.prefix + "pools:wanted", "autograding_image")
    tlib.check("prealloc: wanted size recorded in Redis",
               json.loads(wanted or "{}").get("size") == 3, wanted)
    r = svc.post("/prealloc/%s/autograding_image/4/" % K,
                 json.dumps({"vmms": "localDocker", "cores": 2, "memory": 512}).encode())
    wanted = json.loads(R.cli("HGET", svc.prefix + "pools:wanted", "autograding_image") or "{}")
    tlib.check("prealloc: body's cores and memory recorded",
               envelope(r, 0, "VMs preallocated") and
               wanted == {"size": 4, "cores": 2, "memory": 512}, (r.body, wanted))
    # Autolab's TangoClient.prealloc sends GET with the JSON body
    r = svc.request("GET", "/prealloc/%s/autograding_image/5/" % K,
                    body=json.dumps({"vmms": "localDocker", "cores": 1, "memory": 256}).encode())
    wanted = json.loads(R.cli("HGET", svc.prefix + "pools:wanted", "autograding_image") or "{}")
    tlib.check("prealloc: GET with a body as Autolab sends it",
               envelope(r, 0, "VMs preallocated") and
               wanted == {"size": 5, "cores": 1, "memory": 256}, (r.status, r.body, wanted))
    r = svc.request("GET", "/prealloc/%s/autograding_image/4/" % K)
    tlib.check("prealloc: GET without a body", envelope(r, 0, "VMs preallocated"), r.body)
    r = svc.post("/prealloc/%s/autograding_image/4/" % K,
                 json.dumps({"vmms": "localDocker", "cores": 2, "memory": 512}).encode())
    r = svc.get("/pool/%s/" % K)
    pools = r.json().get("pools", {})
    tlib.check("pool: lists the wanted image", envelope(r, 0, "Found all pools") and
               pools.get("autograding_image") == {"total": [], "free": []}, r.body)
    r = svc.get("/pool/%s/autograding_image/" % K)
    tlib.check("pool: Found pool with just that image", envelope(r, 0, "Found pool") and
               list(r.json().get("pools", {})) == ["autograding_image"], r.body)
    R.cli("HSET", svc.prefix + "pools:state", "autograding_image",
          json.dumps({"total": [1, 2], "free": [2]}))
    r = svc.get("/pool/%s/autograding_image/" % K)
    tlib.check("pool: shows what the consumer published",
               r.json().get("pools") == {"autograding_image": {"total": [1, 2], "free": [2]}},
               r.body)
    r = svc.get("/pool/%s/otherimage/" % K)
    tlib.check("pool: other image -> Pool not found", legacy_fail(r, "Pool not found"), r.body)
    for image in ["otherimage", "Bad!", "..", "a%2Fb", "UPPER"]:
        r = svc.post("/prealloc/%s/%s/2/" % (K, image))
        tlib.check("prealloc %s: Invalid image name" % image,
                   legacy_fail(r, "Invalid image name"), r.body)
    for num in ["-1", "abc", "11", "1e3", "99999999999", "%20"]:
        r = svc.post("/prealloc/%s/autograding_image/%s/" % (K, num))
        tlib.check("prealloc size %s: Invalid prealloc size" % num,
                   legacy_fail(r, "Invalid prealloc size"), r.body)
    for body in [b"{\"cores\": 0}", b"{\"memory\": \"lots\"}", b"[1]", b"\xff\x00garbage"]:
        r = svc.post("/prealloc/%s/autograding_image/2/" % K, body)
        d = r.json()
        tlib.check("prealloc bad body %r: -1 Preallocate VM failed" % body[:12],
                   r.status == 200 and d["statusId"] == -1 and
                   d["statusMsg"].startswith("Preallocate VM failed"), r.body)
    r = svc.post("/prealloc/%s/autograding_image/0/" % K)
    R.cli("HDEL", svc.prefix + "pools:state", "autograding_image")
    r2 = svc.get("/pool/%s/autograding_image/" % K)
    tlib.check("prealloc 0 then the pool is gone", envelope(r, 0, "VMs preallocated") and
               legacy_fail(r2, "Pool not found"), (r.body, r2.body))

    # --- build
    r = svc.post("/build/%s/" % K, b"tarball")
    d = r.json()
    tlib.check("build: no imageName header -> -1", r.status == 200 and d["statusId"] == -1 and
               "image name" in d["statusMsg"].lower(), r.body)
    for image in ["../x", "Bad", "a/b", "a b", ""]:
        r = svc.post("/build/%s/" % K, b"tarball", {"imageName": image})
        tlib.check("build: imageName %r -> -1" % image,
                   r.status == 200 and r.json()["statusId"] == -1, r.body)
    tlib.check("build: nothing queued for bad requests",
               R.cli("LLEN", svc.prefix + "builds:queue") == "0",
               R.cli("LLEN", svc.prefix + "builds:queue"))
    tar = os.urandom(200000)
    t0 = time.time()
    r = svc.post("/build/%s/" % K, tar, {"imageName": "myimage:v1"})
    took = time.time() - t0
    d = r.json()
    tlib.check("build: no consumer -> -1 Image build failed, mentioning the consumer",
               r.status == 200 and d["statusId"] == -1 and
               d["statusMsg"].startswith("Image build failed") and "consumer" in d["statusMsg"],
               r.body)
    tlib.check("build: waited about build_timeout_s (1 s)", 0.8 <= took < 5, took)
    queued = R.cli("LRANGE", svc.prefix + "builds:queue", 0, -1).splitlines()
    entry = json.loads(queued[0]) if len(queued) == 1 else {}
    tlib.check("build: the tarball was queued in Redis",
               entry.get("image") == "myimage:v1" and isinstance(entry.get("id"), int), queued)
    path = entry.get("path", "")
    tlib.check("build: the queued tarball holds the uploaded bytes",
               os.path.isfile(path) and open(path, "rb").read() == tar, path)
    tlib.check("build: tarball kept out of every lab directory",
               os.path.realpath(path).startswith(os.path.realpath(svc.courselabs) + "/.builds/"),
               path)

    # a simulated consumer answers while the request waits
    p2 = svc.start_producer({"build_timeout_s": 10})

    def consumer(result, out):
        end = time.time() + 8
        while time.time() < end:
            items = R.cli("LRANGE", svc.prefix + "builds:queue", 0, -1).splitlines()
            fresh = [json.loads(i) for i in items if json.loads(i)["id"] not in out["seen"]]
            if fresh:
                R.cli("SET", svc.prefix + "build:result:%d" % fresh[0]["id"], json.dumps(result))
                out["seen"].add(fresh[0]["id"])
                return
            time.sleep(0.05)

    seen = {"seen": {entry.get("id")}}
    for result, want_id, want_msg in [({"ok": True}, 0, "Docker image built"),
                                      ({"ok": False, "message": "not a docker save tarball"},
                                       -1, "Image build failed: not a docker save tarball")]:
        th = threading.Thread(target=consumer, args=(result, seen))
        th.start()
        r = svc.post("/build/%s/" % K, tar, {"imageName": "myimage"}, port=p2.port)
        th.join()
        tlib.check("build with consumer result %s -> %s" % (result.get("ok"), want_msg),
                   r.status == 200 and envelope(r, want_id, want_msg), r.body)

    tlib.check("routes: producers alive at the end",
               all(p.proc.poll() is None for p in svc.producers))
    logs = "".join(p.logtext() for p in svc.producers)
    tlib.check("routes: key never in the logs", K not in logs)

tlib.done()
