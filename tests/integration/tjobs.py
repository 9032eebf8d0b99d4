"""tjobs: helpers for end-to-end job tests: a callback receiver (a real HTTP
server on loopback that records every multipart POST), job submission
through the Tango API, and waiting for output files."""
import http.server
import json
import re
import threading
import time

import tlib


class CallbackReceiver:
    """Records POSTs: list of dicts {path, filename_header, part_name,
    part_filename, content (bytes), headers (dict), t (arrival time)}.
    Answers 204 like Autolab, or a failing code while self.fail_first > 0
    (those are recorded in self.seen only, with every other request).
    delay: seconds each request takes to answer (a slow receiver);
    max_active: the most requests it held at once. host: the address it
    listens on (loopback unless a test needs one a default callback_allow
    accepts)."""

    def __init__(self, delay=0.0, host="127.0.0.1"):
        self.calls = []
        self.seen = []
        self.fail_first = 0
        self.delay = delay
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                t = time.time()
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                call = parse_multipart(self.path, self.headers, body)
                call["t"] = t
                with outer.lock:
                    outer.seen.append(call)
                    outer.active += 1
                    outer.max_active = max(outer.max_active, outer.active)
                    failing = outer.fail_first > 0
                    if failing:
                        outer.fail_first -= 1
                if outer.delay:
                    time.sleep(outer.delay)  # the receiver's own work, not synchronisation
                with outer.lock:
                    outer.active -= 1
                    if not failing:
                        outer.calls.append(call)
                self.send_response(500 if failing else 204)
                self.end_headers()

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 256  # many callbacks connect at once

        self.host = host
        self.server = Server((host, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, tag):
        return "http://%s:%d/cb/%s" % (self.host, self.port, tag)

    def for_tag(self, tag):
        with self.lock:
            return [c for c in self.calls if c["path"] == "/cb/%s" % tag]

    def wait(self, tag, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            got = self.for_tag(tag)
            if got:
                return got
            time.sleep(0.05)
        return []

    def close(self):
        self.server.shutdown()


def parse_multipart(path, headers, body):
    ctype = headers.get("Content-Type", "")
    m = re.search(r'boundary="?([^";]+)"?', ctype)
    out = {"path": path, "filename_header": headers.get("Filename"), "content_type": ctype,
           "headers": {k.lower(): v for k, v in headers.items()},
           "part_name": None, "part_filename": None, "content": None}
    if not m:
        return out
    boundary = b"--" + m.group(1).encode()
    for part in body.split(boundary):
        if b"\r\n\r\n" not in part:
            continue
        head, data = part.split(b"\r\n\r\n", 1)
        if data.endswith(b"\r\n"):
            data = data[:-2]
        disp = re.search(rb'name="([^"]*)"(?:; filename="([^"]*)")?', head)
        if disp:
            out["part_name"] = disp.group(1).decode()
            out["part_filename"] = disp.group(2).decode() if disp.group(2) else None
            out["content"] = data
    return out


def makefile(recipe):
    """An autograde Makefile whose default target runs the recipe lines."""
    lines = recipe.strip("\n").split("\n")
    return ("all:\n" + "".join("\t%s\n" % l for l in lines)).encode()


def submit(svc, lab, files, output_file, **job):
    """Opens the lab, uploads files {destName: bytes} (the Makefile included)
    and adds a job. Returns the addJob answer."""
    svc.open(lab)
    entries = []
    for dest, data in files.items():
        local = "%s-%s" % (output_file, dest)
        r = svc.upload(lab, local, data)
        assert r["statusId"] == 0, r
        entries.append({"localFile": local, "destFile": dest})
    body = {"image": "autograding_image", "files": entries, "jobName": "job-" + output_file,
            "output_file": output_file}
    body.update(job)
    return svc.add_job(lab, body)


def wait_output(svc, lab, output_file, timeout=60):
    """Polls until the output file exists; returns its bytes or None."""
    end = time.time() + timeout
    while time.time() < end:
        r = svc.poll(lab, output_file)
        if r.header("Content-Type") == "application/octet-stream":
            return r.body
        time.sleep(0.1)
    return None


def wait_dead(svc, job_id, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        jobs = svc.get("/jobs/%s/1/" % svc.key).json()["jobs"]
        for j in jobs:
            if j["id"] == job_id:
                return j
        time.sleep(0.1)
    return None
