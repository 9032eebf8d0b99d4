"""Producer: hostile and malformed requests. Path traversal in every path
segment and header (.., %2e%2e, %2F, %00, backslash, control characters,
300-byte names), malformed and binary bodies, a 10 MB JSON body, 100 KB of
headers, a garbage request line, slowloris, HTTP/1.0, keep-alive and
pipelining. The process never crashes, answers JSON envelopes, and writes
nothing outside the lab directory."""
import json
import os
import shlex
import socket
import time
import urllib.parse

import tlib

MARK = "pwned%d" % os.getpid()


def parse(resp):
    """(status code, headers dict lower-cased, body) of the first response."""
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        code = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None, {}, b""
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(b":")
        hdrs[k.strip().lower().decode()] = v.strip().decode()
    n = int(hdrs.get("content-length", len(body)))
    return code, hdrs, body[:n]


def fail_env(body):
    try:
        d = json.loads(body)
    except ValueError:
        return False
    return d.get("statusId") == -1 and isinstance(d.get("statusMsg"), str) and d["statusMsg"]


def all_files(root):
    out = set()
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


with tlib.Service(config={"http_timeout_s": 3}, key="k-hostile-Zz09") as svc:
    K = svc.key
    P = svc.producers[0]
    port = P.port
    svc.open("lab")
    svc.upload("lab", "Makefile", b"all:\n")
    LABNAME = [n for n in os.listdir(svc.courselabs) if n.endswith("-lab")][0]
    r = svc.get("/open/%s/%s/" % (K, urllib.parse.quote("a b event=fake level=error")))
    tlib.check("a lab name with spaces and '=' is fine", r.json().get("statusId") == 0, r.body)
    r = svc.get("/open/%s/%%252e%%252e/" % K)
    tlib.check("a URL is decoded once: %252e%252e is the lab '%2e%2e'",
               r.json().get("statusMsg") == "Created directory" and
               any(n.endswith("-%2e%2e") for n in os.listdir(svc.courselabs)), r.body)
    before = all_files(svc.tmp)

    # --- traversal in every path segment
    evil = ["..", "%2e%2e", "%2E%2E", ".%2e", "..%2F" + MARK, "%2e%2e%2f%2e%2e%2f" + MARK,
            "..%5c" + MARK, "a%00b", "%00", "a%0ab", "a%0d%0aX-Injected:%201", "%7f", "a%09b",
            "x" * 300, "%2F" + MARK, "..%2f..%2f..%2ftmp%2f" + MARK, ".",
            "%2e", "a\\b"]
    paths = []
    for e in evil:
        paths += ["/open/%s/%s/" % (K, e), "/open/%s/lab/" % e, "/poll/%s/lab/%s/" % (K, e),
                  "/poll/%s/%s/out.txt/" % (K, e), "/pool/%s/%s/" % (K, e),
                  "/jobs/%s/%s/" % (K, e), "/getPartialOutput/%s/%s/" % (K, e),
                  "/info/%s/" % e]
    for p in paths:
        code, _, body = parse(tlib.raw(port, b"GET " + p.encode() + b" HTTP/1.1\r\nHost: t\r\n"
                                  b"Connection: close\r\n\r\n"))
        ok = code in (200, 400, 404) and (fail_env(body) or body.startswith(b'{"statusId":0'))
        if p.startswith("/open/" + K + "/"):
            ok = ok and code == 200 and fail_env(body)
        tlib.check("traversal GET %s: JSON answer" % p[:80], ok, (code, body[:200]))
    for e in ["..", "%2e%2e", "a%2Fb", "x" * 300, "a%00b", "%0a"]:
        for method, p in [("POST", "/upload/%s/%s/" % (K, e)), ("POST", "/addJob/%s/%s/" % (K, e)),
                          ("POST", "/prealloc/%s/%s/2/" % (K, e)),
                          ("POST", "/prealloc/%s/autograding_image/%s/" % (K, e))]:
            r = svc.request(method, p, b"{}", {"Filename": MARK})
            tlib.check("traversal %s %s: -1" % (method, p[:70]),
                       r.status == 200 and fail_env(r.body), (r.status, r.body))

    # --- traversal in headers and JSON fields
    names = ["../" + MARK, "..", ".", "", "..\\" + MARK, "/tmp/" + MARK, "a/../" + MARK,
             MARK + "\x01", "a\tb" + MARK, "\x7f", "y" * 256, "output/" + MARK]
    for n in names:
        code, _, body = parse(tlib.raw(port, b"POST /upload/%s/lab/ HTTP/1.1\r\nHost: t\r\nFilename: %s\r\n"
                                  b"Content-Length: 3\r\nConnection: close\r\n\r\nabc"
                                  % (K.encode(), n.encode())))
        tlib.check("Filename %r: -1" % n[:40], code == 200 and fail_env(body) and
                   b"Filename" in body, (code, body))
    for n in ["y" * 255, "%2e%2e%2f" + MARK, "..." + MARK, ".hidden"]:
        r = svc.upload("lab", n, b"ok")
        tlib.check("Filename %r is a plain (odd) name: stored in the lab" % n[:20],
                   r.get("statusMsg") == "Uploaded file" and
                   os.path.isfile(os.path.join(svc.courselabs, LABNAME, n)), r)
    base = {"image": "autograding_image", "jobName": "j", "output_file": "o.txt",
            "files": [{"localFile": "Makefile", "destFile": "Makefile"}]}
    for field, value in [("output_file", "../" + MARK), ("output_file", "../../" + MARK),
                         ("output_file", ".."), ("output_file", "a/b"), ("output_file", "x\\y"),
                         ("output_file", "z" * 300), ("output_file", "o\u0000"),
                         ("image", "../" + MARK), ("image", "a/b"), ("image", "Image"),
                         ("localFile", "../" + MARK), ("localFile", "../../../../etc/passwd"),
                         ("localFile", "/etc/passwd"), ("localFile", ".."), ("localFile", "output"),
                         ("destFile", "../Makefile"), ("destFile", "/etc/cron.d/x"),
                         ("destFile", "..")]:
        body = json.loads(json.dumps(base))
        if field in ("localFile", "destFile"):
            body["files"].append({"localFile": "Makefile", "destFile": "x"})
            body["files"][1][field] = value
        else:
            body[field] = value
        r = svc.post("/addJob/%s/lab/" % K, json.dumps(body).encode())
        tlib.check("addJob %s=%r: -1 naming it" % (field, value[:30]),
                   r.status == 200 and fail_env(r.body) and
                   (field in r.json()["statusMsg"] or "files[1]" in r.json()["statusMsg"] or
                    "Malformed JSON" in r.json()["statusMsg"]), r.body)
    for image in ["../" + MARK, "..", "%2e%2e", "a%2Fb", "x" * 300]:
        code, _, body = parse(tlib.raw(port, b"POST /build/%s/ HTTP/1.1\r\nHost: t\r\nimageName: %s\r\n"
                                  b"Content-Length: 3\r\nConnection: close\r\n\r\nabc"
                                  % (K.encode(), image.encode())))
        tlib.check("build imageName %r: -1" % image[:30], code == 200 and fail_env(body), body)

    # --- malformed bodies
    for body in [b"\x00" * 1000, os.urandom(5000), b"{" * 100000, b"[" * 50000 + b"]" * 50000,
                 b'{"image": "\\ud800"}', b'{"files": [' + b'{"localFile":"Makefile","destFile":"a"},' * 300 + b'{}]}']:
        r = svc.post("/addJob/%s/lab/" % K, body)
        tlib.check("addJob malformed body %r...: -1" % body[:16], r.status == 200 and
                   fail_env(r.body), r.body[:200])
    big = json.dumps(dict(base, pad="p" * (10 << 20))).encode()
    r = svc.post("/addJob/%s/lab/" % K, big)
    tlib.check("addJob 10 MB JSON: -1 too large", r.status == 200 and fail_env(r.body) and
               "too large" in r.json()["statusMsg"], r.body)
    code, _, body = parse(tlib.raw(port, b"POST /addJob/%s/lab/ HTTP/1.1\r\nHost: t\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n" % K.encode() +
                              b"".join(b"100000\r\n" + b" " * 0x100000 + b"\r\n" for _ in range(3)) +
                              b"0\r\n\r\n"))
    tlib.check("addJob chunked 3 MB JSON: -1 too large", code == 200 and fail_env(body) and
               b"too large" in body, body)
    r = svc.request("GET", "/info/%s/" % K, b"x" * 2000000)
    tlib.check("GET with a 2 MB body: JSON failure, no crash", fail_env(r.body), r.body)

    # --- malformed HTTP
    for what, data, want in [
            ("garbage request line", b"\x00\x01\x02 garbage\r\n\r\n", 400),
            ("lower-case method", b"get / HTTP/1.1\r\n\r\n", 400),
            ("no version", b"GET /\r\n\r\n", 400),
            ("HTTP/2.0", b"GET / HTTP/2.0\r\n\r\n", 400),
            ("relative URI", b"GET info HTTP/1.1\r\n\r\n", 400),
            ("NUL in header", b"GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n", 400),
            ("header without colon", b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
            ("100 KB of headers", b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n", 431),
            ("1000 headers", b"GET / HTTP/1.1\r\n" + b"X-H: v\r\n" * 1000 + b"\r\n", 431),
            ("100 KB request line", b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\n\r\n", 431),
            ("bad Content-Length", b"POST /addJob/k/l/ HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400),
            ("CL and TE", b"POST /addJob/k/l/ HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\nabc", 400),
            ("TE gzip", b"POST /addJob/k/l/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            ("bad chunk size", b"POST /addJob/%s/lab/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                               b"zz\r\nabc\r\n" % K.encode(), 400),
            ("huge chunk size", b"POST /addJob/%s/lab/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                                b"fffffffffffffffffff\r\nabc\r\n" % K.encode(), 400),
            ("no Host on HTTP/1.1", b"GET /info/%s/ HTTP/1.1\r\n\r\n" % K.encode(), 400),
            ("two Host headers", b"GET /info/%s/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" % K.encode(), 400),
            ("two Content-Length", b"POST /addJob/%s/lab/ HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                                   b"Content-Length: 4\r\n\r\nabcd" % K.encode(), 400)]:
        code, hdrs, body = parse(tlib.raw(port, data + b"trailing junk " * 3000, paced=True))
        tlib.check("%s: %d JSON" % (what, want), code == want and fail_env(body) and
                   hdrs.get("content-type", "").startswith("application/json"), (code, body))

    # --- slowloris: partial heads do not stop others; they time out
    slow = []
    for i in range(30):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /info/%s/ HTTP/1.1\r\nHost: t\r\nX-Slow: " % K.encode())
        slow.append(s)
    t0 = time.time()
    r = svc.get("/info/%s/" % K)
    tlib.check("slowloris: others are still served at once",
               r.status == 200 and time.time() - t0 < 1.0, time.time() - t0)
    slow[0].settimeout(8)
    t0 = time.time()
    try:
        got = slow[0].recv(100)
    except OSError:
        got = b"error"
    tlib.check("slowloris: a stalled head is closed after http_timeout_s",
               got == b"" and 2 <= time.time() - t0 < 7, (got, time.time() - t0))
    for s in slow:
        s.close()

    # --- HTTP/1.0, keep-alive, pipelining
    resp = tlib.raw(port, b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n")
    code, hdrs, body = parse(resp)
    tlib.check("HTTP/1.0: answered, then closed", code == 200 and
               hdrs.get("connection") == "close" and resp.count(b"HTTP/1.1 200") == 1, resp)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    first = s.recv(65536)
    s.sendall(b"GET /info/%s/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % K.encode())
    second = s.recv(65536)
    s.close()
    tlib.check("HTTP/1.0 keep-alive: two requests on one connection",
               b"keep-alive" in first and b"Found info successfully" in second, (first, second))
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    answers = []
    for path in ["/", "/info/%s/" % K, "/open/%s/lab/" % K, "/nope", "/jobs/%s/0/" % K,
                 "/poll/%s/lab/none/" % K]:
        conn.request("GET", path)
        resp = conn.getresponse()
        answers.append((resp.status, resp.getheader("Connection"), resp.read()))
    conn.request("POST", "/upload/%s/lab/" % K, body=b"kept", headers={"Filename": "ka.txt"})
    resp = conn.getresponse()
    answers.append((resp.status, resp.getheader("Connection"), resp.read()))
    conn.close()
    tlib.check("keep-alive: seven requests on one connection",
               [a[0] for a in answers] == [200, 200, 200, 404, 200, 200, 200] and
               all(a[1] == "keep-alive" for a in answers) and b"Uploaded file" in answers[-1][2],
               answers)
    job = json.dumps(dict(base, jobName="piped")).encode()
    pipe = (b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST /addJob/%s/lab/ HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s"
            b"POST /upload/%s/lab/ HTTP/1.1\r\nHost: t\r\nFilename: piped.txt\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\npiped\r\n0\r\n\r\n"
            b"GET /info/%s/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            % (K.encode(), len(job), job, K.encode(), K.encode()))
    resp = tlib.raw(port, pipe)
    parts = resp.split(b"HTTP/1.1 ")[1:]
    tlib.check("pipelining: four answers in order",
               len(parts) == 4 and b"RESTful Tango" in parts[0] and b"Job added" in parts[1] and
               b"Uploaded file" in parts[2] and b"Found info" in parts[3], resp)
    resp = tlib.raw(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nX: " + b"a" * 100000 + b"\r\n\r\n")
    tlib.check("pipelining: a good request, then a hostile one",
               resp.count(b"HTTP/1.1 200") == 1 and b"431" in resp, resp[:400])

    # --- max_connections: extra connections are refused, the held ones still work
    small = svc.start_producer({"max_connections": 4})
    time.sleep(0.3)  # let it reap the connection tlib's wait_port made
    held = [socket.create_connection(("127.0.0.1", small.port), timeout=5) for _ in range(4)]
    time.sleep(0.2)
    extra = socket.create_connection(("127.0.0.1", small.port), timeout=5)
    try:
        extra.sendall(b"GET / HTTP/1.1\r\n\r\n")
        refused = extra.recv(100) == b""
    except OSError:
        refused = True
    extra.close()
    tlib.check("max_connections: a fifth connection is closed at once", refused)
    held[0].sendall(b"GET /info/%s/ HTTP/1.1\r\nHost: t\r\n\r\n" % K.encode())
    tlib.check("max_connections: a held connection is served",
               b"Found info" in held[0].recv(65536))
    for h in held:
        h.close()
    time.sleep(0.2)
    r = svc.get("/info/%s/" % K, port=small.port)
    tlib.check("max_connections: served again once connections close",
               r.json().get("statusMsg") == "Found info successfully", r.body)
    tlib.check("max_connections: refusal logged", "http_conn_refused" in small.logtext())

    # --- afterwards: alive, nothing written outside the lab directory
    r = svc.get("/health")
    tlib.check("hostile: producer alive", P.proc.poll() is None and r.status == 200, r.body)
    after = all_files(svc.tmp)
    lab = os.path.join("courselabs", LABNAME)
    new = {f for f in after - before if not f.startswith(lab + os.sep) and
           not (f.startswith("config-") and f.endswith(".json")) and
           not (f.startswith("producer") and f.endswith(".log"))}
    tlib.check("hostile: no new file outside the lab directory", new == set(), new)
    tlib.check("hostile: nothing named after the attack outside the lab",
               not any(MARK in f for f in after if not f.startswith(lab + os.sep)) and
               not os.path.exists("/tmp/" + MARK) and not os.path.exists("/" + MARK) and
               not os.path.exists(os.path.join(os.path.dirname(svc.tmp), MARK)))
    lab_files = {f[len(lab) + 1:] for f in after if f.startswith(lab + os.sep)}
    expected = {"Makefile", "output", "y" * 255, "%2e%2e%2f" + MARK, "..." + MARK, ".hidden",
                "ka.txt", "piped.txt"}
    tlib.check("hostile: the lab holds exactly the accepted uploads", lab_files == expected,
               lab_files ^ expected)
    logs = P.logtext() + small.logtext()
    tlib.check("hostile: key never in the log", K not in logs)
    bad_lines = []
    for line in logs.splitlines():
        if not line.startswith("ts="):
            continue
        try:
            fields = shlex.split(line)
        except ValueError:
            bad_lines.append(line)
            continue
        keys = [f.split("=", 1)[0] for f in fields]
        if not all("=" in f for f in fields) or keys.count("event") != 1:
            bad_lines.append(line)
    tlib.check("hostile: every log line parses as key=value with one event",
               bad_lines == [] and 'event=lab_created lab_dir="' in logs, bad_lines[:3])
    tlib.check("hostile: injected header text not in the log as a line",
               not any(l.startswith("X-Injected") for l in logs.splitlines()))

tlib.done()
