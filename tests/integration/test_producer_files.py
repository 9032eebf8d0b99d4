"""Producer: courselab files. open (created, then found with {name: md5} as
recorded at upload), upload (Filename header case-insensitive, File exists
leaves the old file untouched, replacement, size cap with nothing left on
disk, chunked bodies, Expect: 100-continue, client gone mid-upload, producer
SIGKILLed mid-upload) and poll (exact bytes, URL-encoded names)."""
import hashlib
import json
import os
import socket
import subprocess
import time
import urllib.parse

import tlib

JSON_TYPE = "application/json; charset=UTF-8"


def body_of(resp):
    return resp[resp.find(b"\r\n\r\n") + 4:] if b"\r\n\r\n" in resp else b""


def md5(b):
    return hashlib.md5(b).hexdigest()


def lab_dir(svc, lab):
    """The lab's directory: <courselabs>/<keyid>-<lab>, found by listing."""
    names = [n for n in os.listdir(svc.courselabs) if n.endswith("-" + lab)]
    return os.path.join(svc.courselabs, names[0]) if len(names) == 1 else None


def deleted_fds(pid):
    """Open files of pid that are unlinked (an O_TMPFILE upload in progress)."""
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.endswith("(deleted)"):
            out.append(target)
    return out


def upload_head(svc, lab, name, length, extra=b""):
    return (b"POST /upload/%s/%s/ HTTP/1.1\r\nHost: t\r\nFilename: %s\r\n"
            b"Content-Length: %d\r\n%s\r\n" % (svc.key.encode(), lab.encode(), name.encode(),
                                              length, extra))


with tlib.Service(config={"max_upload_mb": 1}, key="k-files-5Tq2") as svc:
    K = svc.key
    P = svc.producers[0]

    # --- open
    r = svc.get("/open/%s/lab1/" % K)
    d = r.json()
    tlib.check("open: Created directory, files {}", r.status == 200 and
               r.header("Content-Type") == JSON_TYPE and
               d == {"statusId": 0, "statusMsg": "Created directory", "files": {}}, r.body)
    LAB = lab_dir(svc, "lab1")
    tlib.check("open: lab dir and its output folder exist",
               LAB and os.path.isdir(os.path.join(LAB, "output")), os.listdir(svc.courselabs))
    tlib.check("open: key not in the directory name", K not in os.path.basename(LAB or K))
    d = svc.open("lab1")
    tlib.check("open again: Found directory, files {}",
               d == {"statusId": 0, "statusMsg": "Found directory", "files": {}}, d)

    # --- upload and the md5s open reports
    files = {"Makefile": b"all:\n\techo hi\n", "handin.py": os.urandom(5000),
             "name with spaces.txt": b"spaces", "\u00e9t\u00e9.c": b"utf8 name"}
    for name, data in files.items():
        # header values as UTF-8 bytes (http.client would send str as Latin-1)
        d = svc.post("/upload/%s/lab1/" % K, data, {"Filename": name.encode()}).json()
        tlib.check("upload %r: Uploaded file" % name,
                   d == {"statusId": 0, "statusMsg": "Uploaded file"}, d)
    d = svc.open("lab1")
    tlib.check("open: files = {name: md5} of what was uploaded",
               d.get("statusMsg") == "Found directory" and
               d.get("files") == {n: md5(b) for n, b in files.items()}, d)
    tlib.check("upload: stored bytes are exact",
               all(open(os.path.join(LAB, n), "rb").read() == b for n, b in files.items()))
    tlib.check("upload: no temporary file left",
               sorted(os.listdir(LAB)) == sorted(list(files) + ["output"]), os.listdir(LAB))

    for hdr in ["filename", "FILENAME", "fIlEnAmE"]:
        r = svc.post("/upload/%s/lab1/" % K, b"case " + hdr.encode(), {hdr: "case.txt"})
        tlib.check("upload: header %r accepted" % hdr,
                   r.json() == {"statusId": 0, "statusMsg": "Uploaded file"} and
                   open(os.path.join(LAB, "case.txt"), "rb").read() == b"case " + hdr.encode(),
                   r.body)

    path = os.path.join(LAB, "handin.py")
    st = os.stat(path)
    time.sleep(0.02)
    d = svc.upload("lab1", "handin.py", files["handin.py"])
    st2 = os.stat(path)
    tlib.check("upload same name+md5: File exists",
               d == {"statusId": 0, "statusMsg": "File exists"}, d)
    tlib.check("File exists: old file untouched (inode, mtime)",
               (st.st_ino, st.st_mtime_ns) == (st2.st_ino, st2.st_mtime_ns))
    new = b"print('v2')\n"
    d = svc.upload("lab1", "handin.py", new)
    tlib.check("upload changed content: Uploaded file, replaced",
               d.get("statusMsg") == "Uploaded file" and open(path, "rb").read() == new, d)
    tlib.check("open: md5 follows the replacement",
               svc.open("lab1")["files"].get("handin.py") == md5(new))
    d = svc.upload("lab1", "empty.txt", b"")
    tlib.check("upload: an empty file is fine", d.get("statusMsg") == "Uploaded file" and
               os.path.getsize(os.path.join(LAB, "empty.txt")) == 0, d)

    r = svc.post("/upload/%s/nolab/" % K, b"x", {"Filename": "a.txt"})
    tlib.check("upload to a lab never opened: -1 Courselab not found",
               r.status == 200 and r.json() == {"statusId": -1, "statusMsg": "Courselab not found"},
               r.body)
    tlib.check("upload to a lab never opened: no directory made", lab_dir(svc, "nolab") is None)
    r = svc.post("/upload/%s/lab1/" % K, b"x", {"Filename": "\u00e9t\u00e9.c".encode("latin-1")})
    tlib.check("upload with a Filename that is not UTF-8: -1 saying so",
               r.status == 200 and r.json()["statusId"] == -1 and
               "UTF-8" in r.json()["statusMsg"], r.body)
    r = svc.post("/upload/%s/lab1/" % K, b"x")
    tlib.check("upload without Filename: -1", r.status == 200 and r.json()["statusId"] == -1 and
               "Filename" in r.json()["statusMsg"], r.body)

    # --- the size cap (max_upload_mb = 1)
    before = sorted(os.listdir(LAB))
    ok_size = b"a" * (1 << 20)
    d = svc.upload("lab1", "exactly1mib.bin", ok_size)
    tlib.check("upload of exactly the cap is accepted", d.get("statusMsg") == "Uploaded file", d)
    before.append("exactly1mib.bin")
    r = svc.post("/upload/%s/lab1/" % K, b"b" * ((1 << 20) + 1), {"Filename": "big.bin"})
    d = r.json()
    tlib.check("upload over the cap (Content-Length): -1 naming the limit",
               r.status == 200 and d["statusId"] == -1 and "too large" in d["statusMsg"] and
               "1 MiB" in d["statusMsg"], r.body)
    tlib.check("upload over the cap: no file, not even a temp file",
               sorted(os.listdir(LAB)) == sorted(before), os.listdir(LAB))
    chunks = b"".join(b"10000\r\n" + b"c" * 0x10000 + b"\r\n" for _ in range(20)) + b"0\r\n\r\n"
    resp = tlib.raw(P.port, b"POST /upload/%s/lab1/ HTTP/1.1\r\nHost: t\r\nFilename: big2.bin\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" % K.encode() + chunks)
    tlib.check("chunked upload over the cap: -1 too large",
               resp.startswith(b"HTTP/1.1 200") and b'"statusId":-1' in resp and
               b"too large" in resp, resp[:300])
    tlib.check("chunked upload over the cap: nothing left", sorted(os.listdir(LAB)) == sorted(before)
               and deleted_fds(P.proc.pid) == [], (os.listdir(LAB), deleted_fds(P.proc.pid)))

    # --- chunked Transfer-Encoding within the cap
    data = os.urandom(300000)
    enc = b""
    for i in range(0, len(data), 70000):
        part = data[i:i + 70000]
        enc += b"%x;ext=1\r\n" % len(part) + part + b"\r\n"
    enc += b"0\r\nX-Trailer: t\r\n\r\n"
    resp = tlib.raw(P.port, b"POST /upload/%s/lab1/ HTTP/1.1\r\nHost: t\r\nFilename: chunked.bin\r\n"
               b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % K.encode() + enc)
    tlib.check("chunked upload: Uploaded file", b'"statusMsg":"Uploaded file"' in resp, resp[:300])
    tlib.check("chunked upload: exact bytes and md5",
               open(os.path.join(LAB, "chunked.bin"), "rb").read() == data and
               svc.open("lab1")["files"].get("chunked.bin") == md5(data))

    # --- Expect: 100-continue, by hand and by curl
    s = socket.create_connection(("127.0.0.1", P.port), timeout=5)
    s.sendall(upload_head(svc, "lab1", "expect.bin", len(data), b"Expect: 100-continue\r\n"))
    first = s.recv(100)
    tlib.check("Expect: 100-continue answered before the body is sent",
               first == b"HTTP/1.1 100 Continue\r\n\r\n", first)
    s.sendall(data)
    resp = s.recv(65536)
    s.close()
    tlib.check("Expect: 100-continue upload stored", b"Uploaded file" in resp and
               open(os.path.join(LAB, "expect.bin"), "rb").read() == data, resp)
    t0 = time.time()
    resp = tlib.raw(P.port, upload_head(svc, "nolab", "x.bin", 500, b"Expect: 100-continue\r\n"))
    tlib.check("Expect: refused upload answers at once without 100 Continue",
               b"100 Continue" not in resp and b"Courselab not found" in resp, resp)
    tlib.check("Expect: refused upload does not wait for a body that will not come",
               time.time() - t0 < 2, time.time() - t0)
    fpath = os.path.join(svc.tmp, "curl-upload.bin")
    cdata = os.urandom(900000)
    with open(fpath, "wb") as f:
        f.write(cdata)
    url = "http://127.0.0.1:%d/upload/%s/lab1/" % (P.port, K)
    for name, extra in [("curl-expect.bin", ["-H", "Expect: 100-continue"]),
                        ("curl-chunked.bin", ["-H", "Transfer-Encoding: chunked"])]:
        out = subprocess.run(["curl", "-sS", "-v", "--max-time", "10", "--data-binary", "@" + fpath,
                              "-H", "Filename: " + name] + extra + [url],
                             capture_output=True, timeout=20)
        tlib.check("curl upload %s: Uploaded file, exact bytes" % name,
                   b"Uploaded file" in out.stdout and
                   open(os.path.join(LAB, name), "rb").read() == cdata, out.stdout + out.stderr[-300:])
    os.unlink(fpath)

    # --- the client goes away mid-upload
    lab_before = sorted(os.listdir(LAB))
    s = socket.create_connection(("127.0.0.1", P.port), timeout=5)
    s.sendall(upload_head(svc, "lab1", "half.bin", 800000) + os.urandom(400000))
    time.sleep(0.3)
    mid = deleted_fds(P.proc.pid)
    s.close()
    time.sleep(0.3)
    tlib.check("mid-upload: data goes to an unnamed (O_TMPFILE) file", len(mid) == 1, mid)
    tlib.check("client gone mid-upload: no file left, temp file closed",
               sorted(os.listdir(LAB)) == lab_before and deleted_fds(P.proc.pid) == [],
               (os.listdir(LAB), deleted_fds(P.proc.pid)))
    tlib.check("client gone mid-upload: producer still serves",
               svc.get("/health").status == 200 and svc.upload("lab1", "after.txt", b"a")
               .get("statusMsg") == "Uploaded file")

    # --- poll
    out_dir = os.path.join(LAB, "output")
    r = svc.poll("lab1", "result.out")
    tlib.check("poll missing: -1 Output file not found (JSON)",
               r.status == 200 and r.header("Content-Type") == JSON_TYPE and
               r.json() == {"statusId": -1, "statusMsg": "Output file not found"}, r.body)
    feedback = (b"Autograder [Sat Nov 21 21:19:04 2026]: Received job x:1\n"
                b"bad utf8 \xff\xfe\xc3( nul \x00 end\n" + bytes(range(256)) + b'\n{"scores": {"a": 1}}\n')
    for name in ["result.out", "my result (1).txt", "a+b%c&d=e?.out", "\u00fcml\u00e4ut.txt",
                 "#hash;semi.txt"]:
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(feedback)
        r = svc.get("/poll/%s/lab1/%s/" % (K, urllib.parse.quote(name, safe="")))
        tlib.check("poll %r: exact bytes, octet-stream" % name,
                   r.status == 200 and r.body == feedback and
                   r.header("Content-Type") == "application/octet-stream", (r.status, r.body[:200]))
    r = svc.get("/poll/%s/lab1/%s/" % (K, urllib.parse.quote("my result (1).txt")))
    tlib.check("poll: name quoted as tango-cli does (spaces as %20)", r.body == feedback)
    r = svc.get("/poll/%s/lab1/result.out" % K)
    tlib.check("poll without the trailing slash (as Autolab sends)", r.body == feedback)
    with open(os.path.join(out_dir, "empty.out"), "wb"):
        pass
    r = svc.poll("lab1", "empty.out")
    tlib.check("poll an empty output file: 200, empty body",
               r.status == 200 and r.body == b"" and
               r.header("Content-Type") == "application/octet-stream", r.headers)
    os.mkdir(os.path.join(out_dir, "adir"))
    os.symlink("/etc/passwd", os.path.join(out_dir, "link.out"))
    for name in ["adir", "link.out", "Makefile"]:
        r = svc.poll("lab1", name)
        tlib.check("poll %s (not a regular output file): Output file not found" % name,
                   r.json() == {"statusId": -1, "statusMsg": "Output file not found"}, r.body)
    big = os.urandom(3 << 20)
    with open(os.path.join(out_dir, "big.out"), "wb") as f:
        f.write(big)
    r = svc.poll("lab1", "big.out")
    tlib.check("poll a 3 MiB output: exact bytes", r.body == big, len(r.body))

    # --- one keep-alive connection: a big reply written over several turns, then more
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", P.port, timeout=10)
    got = []
    for path in ["/poll/%s/lab1/big.out/" % K, "/poll/%s/lab1/big.out/" % K, "/info/%s/" % K]:
        conn.request("GET", path)
        resp = conn.getresponse()
        got.append(resp.read())
    conn.close()
    tlib.check("keep-alive: two 3 MiB replies then a small one on one connection",
               got[0] == big and got[1] == big and b"Found info" in got[2], [len(g) for g in got])

    # --- pipelined on one connection: open, upload, open sees the upload
    opn = b"GET /open/%s/lab1/ HTTP/1.1\r\nHost: t\r\n\r\n" % K.encode()
    resp = tlib.raw(P.port, opn + b"POST /upload/%s/lab1/ HTTP/1.1\r\nHost: t\r\nFilename: piped.txt\r\n"
               b"Content-Length: 5\r\n\r\npiped" % K.encode() + opn.replace(b"Host: t", b"Host: t\r\nConnection: close"))
    bodies = [p[p.find(b"{"):] for p in resp.split(b"HTTP/1.1 ")[1:]]
    try:
        listed = [json.loads(b)["files"] for b in (bodies[0], bodies[2])]
    except (ValueError, KeyError, IndexError):
        listed = [{}, {}]
    tlib.check("pipelined open, upload, open: the second open lists the upload",
               len(bodies) == 3 and "piped.txt" not in listed[0] and
               listed[1].get("piped.txt") == md5(b"piped"), resp[-600:])

    # --- SIGKILL mid-upload: no partial file; a restarted producer serves
    lab_before = sorted(os.listdir(LAB))
    s = socket.create_connection(("127.0.0.1", P.port), timeout=5)
    s.sendall(upload_head(svc, "lab1", "killed.bin", 900000) + os.urandom(450000))
    time.sleep(0.3)
    tlib.check("before SIGKILL: upload in progress in an unnamed file",
               len(deleted_fds(P.proc.pid)) == 1, deleted_fds(P.proc.pid))
    P.kill()
    P.stop()   # reap it; it was killed on purpose, so no clean-exit check
    s.close()
    tlib.check("SIGKILL mid-upload: no partial or temp file in the lab",
               sorted(os.listdir(LAB)) == lab_before, os.listdir(LAB))
    P2 = svc.start_producer({"max_upload_mb": 1})
    r = svc.post("/upload/%s/lab1/" % K, b"after restart", {"Filename": "killed.bin"}, port=P2.port)
    tlib.check("restarted producer: upload works", r.json().get("statusMsg") == "Uploaded file",
               r.body)
    tlib.check("restarted producer: open lists the same files",
               set(svc.get("/open/%s/lab1/" % K, port=P2.port).json()["files"]) ==
               set(lab_before + ["killed.bin"]) - {"output"})
    logs = "".join(p.logtext() for p in svc.producers)
    tlib.check("files: key never in the logs", K not in logs)

tlib.done()
