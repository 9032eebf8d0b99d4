"""timages: helpers for the image tests of issue 18 (test_image_*.py): one
Service per back end (localDocker, localOCI) with two keys, images derived
from autograding_image with a marker file (docker create + cp + commit, no
registry), `docker save` tarballs, /build and jobs as either key, and the
clean-up of what a test made (Docker tags, localOCI store records, the
localOCI run directory)."""
import json
import os
import socket
import subprocess
import tempfile
import urllib.parse

import test_e2e_localoci
import tjobs
import tlib

K1 = "k1-owner-Q7x2"
K2 = "k2-other-Z9p4"
BACKENDS = tuple(os.environ.get("TI_BACKENDS", "localDocker,localOCI").split(","))
TAG = "ti%d" % os.getpid()


docker = tlib.docker
image_id = tlib.image_id


def marker_image(name, text):
    """name: autograding_image plus /marker holding text."""
    cid = docker("create", "autograding_image", "true")
    try:
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write(text + "\n")
        os.chmod(f.name, 0o644)
        docker("cp", f.name, cid + ":/marker")
        os.unlink(f.name)
        docker("commit", cid, name)
    finally:
        docker("rm", "-f", cid, check=False)
    return image_id(name)


def saved(ref):
    return subprocess.run(["docker", "save", ref], capture_output=True, check=True,
                          timeout=300).stdout


def consumer_config(svc, backend, extra=None):
    if backend == "localOCI":
        cfg = test_e2e_localoci.oci_config(svc)
    else:
        import test_e2e_localdocker
        cfg = test_e2e_localdocker.consumer_config(svc)
    cfg.update({"auto_pool_max": 0})
    cfg.update(extra or {})
    return cfg


def service(backend, config=None):
    """A Service with keys K1 (svc.key) and K2; the consumer not started."""
    cfg = {"keys": [K1, K2], "build_timeout_s": 300, "max_upload_mb": 2048}
    cfg.update(config or {})
    return tlib.Service(producers=1, key=K1, config=cfg)


def _read_until(s, buf, mark):
    while mark not in buf:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    return buf


def build(svc, key, name, tar):
    """POST /build as key with "Expect: 100-continue", as curl sends a big
    body: a refusal answers before the tarball is sent (a client that
    sent it anyway would be cut off once the producer stops reading)."""
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=400)
    try:
        s.sendall(("POST /build/%s/ HTTP/1.1\r\nHost: t\r\nimageName: %s\r\n"
                   "Content-Length: %d\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
                   % (key, name, len(tar))).encode())
        buf = _read_until(s, b"", b"\r\n\r\n")
        if buf.startswith(b"HTTP/1.1 100"):
            s.sendall(tar)
            buf = buf[buf.index(b"\r\n\r\n") + 4:]
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    finally:
        s.close()
    body = buf.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in buf else b""
    try:
        return json.loads(body)
    except ValueError:
        return {"statusId": None, "statusMsg": buf[:300].decode("utf-8", "replace")}


def published(svc):
    raw = svc.redis.cli("GET", svc.prefix + "images")
    try:
        return json.loads(raw).get("images", [])
    except ValueError:
        return []


def wait_published(svc, name, timeout=40):
    return tlib.wait_for(lambda: name in published(svc), timeout, 0.2)


def submit_as(svc, key, lab, recipe, output_file, **job):
    """tjobs.submit as key (svc.key swapped for the call)."""
    was = svc.key
    svc.key = key
    try:
        return tjobs.submit(svc, lab, {"Makefile": tjobs.makefile(recipe)}, output_file, **job)
    finally:
        svc.key = was


def output_as(svc, key, lab, output_file, timeout=120):
    was = svc.key
    svc.key = key
    try:
        return tjobs.wait_output(svc, lab, output_file, timeout)
    finally:
        svc.key = was


def pool_state(svc, key, image):
    r = svc.get("/pool/%s/%s/" % (key, urllib.parse.quote(image, safe=""))).json()
    return (r.get("pools") or {}).get(image)


def wait_pool_free(svc, image, n, timeout=90):
    """Waits until the pool of image has n free instances (as K1 sees it)."""
    def ok():
        st = pool_state(svc, K1, image)
        return st is not None and len(st.get("free", [])) >= n
    return tlib.wait_for(ok, timeout, 0.2)


def stop_consumer(svc):
    rc = svc.consumers[0].stop(60)
    tlib.check("consumer exits 0", rc == 0, rc)
    svc.consumers.clear()


def forget_image(backend, name):
    """Removes what a test made of image name: the Docker tag, and the
    localOCI store's record (layers are shared content and stay)."""
    subprocess.run(["docker", "rmi", "-f", name], capture_output=True)
    n = name[:-7] if name.endswith(":latest") else name
    rec = os.path.join(test_e2e_localoci.LAYER_STORE, "images", n + ".json")
    if backend == "localOCI" and os.path.exists(rec):
        os.unlink(rec)


def after_backend(backend):
    if backend == "localOCI":
        left = test_e2e_localoci.settled_leftovers()
        tlib.check("localOCI: nothing of ours left", not left, left)
        test_e2e_localoci.remove_run_dir()


def log_of(svc, i=0):
    with open(os.path.join(svc.tmp, "consumer%d.log" % i)) as f:
        return f.read()
