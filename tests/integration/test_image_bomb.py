"""Decompression bombs (issue 18 point 8), end to end on localDocker and
localOCI. The consumer runs with image_max_unpacked_mb 64 and
image_max_entries 2000; each tarball is a real `docker save` (of an image
made with `docker import`, no registry), gzip-compressed:
  - a layer holding one 160 MiB file of zeros (the upload is under 1 MiB):
    refused, naming image_max_unpacked_mb; the image is not created and
    nothing of it is left (localOCI: no layer directory, nothing in the
    store's tmp/);
  - a layer of 3000 empty files: refused, naming image_max_entries;
  - a small image still builds under the caps.
localOCI, free space: a consumer whose layer store is a 48 MiB tmpfs
(default caps) is sent the 160 MiB bomb: refused before unpacking, saying
how much it needs and how much is free, and the store is left empty."""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time

import test_e2e_localoci
import timages
import tlib
from timages import K1

CAPS = {"image_max_unpacked_mb": 64, "image_max_entries": 2000}
BOMB_MB = 160


class Zeros(io.RawIOBase):
    def __init__(self, n):
        self.left = n

    def readinto(self, b):
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


def imported(name, add):
    """A `docker import` of a root file system made by add(tarfile), then
    saved by id (gzip-compressed) and the image removed; returns (bytes, layer
    digest hex)."""
    with tempfile.NamedTemporaryFile(suffix=".tar") as f:
        with tarfile.open(fileobj=f, mode="w") as t:
            add(t)
        f.flush()
        timages.docker("import", f.name, name)
    raw = timages.saved(timages.image_id(name))  # by id: no tag, loaded as imageName
    timages.docker("rmi", name)
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        man = json.loads(t.extractfile("manifest.json").read())
        layer = man[0]["Layers"][0]
        data = t.extractfile(layer).read()
    return gzip.compress(raw, 1), hashlib.sha256(data).hexdigest()


def zeros_rootfs(t):
    info = tarfile.TarInfo("zeros")
    info.size = BOMB_MB << 20
    t.addfile(info, Zeros(info.size))


def many_rootfs(t):
    for i in range(3000):
        t.addfile(tarfile.TarInfo("f%05d" % i), io.BytesIO(b""))


def small_rootfs(t):
    info = tarfile.TarInfo("hello")
    info.size = 5
    t.addfile(info, io.BytesIO(b"hello"))


def store_leftovers(store, digest):
    left = []
    if os.path.exists(os.path.join(store, "layers", digest)):
        left.append("layers/" + digest)
    tmp = os.path.join(store, "tmp")
    if os.path.isdir(tmp):
        left += ["tmp/" + n for n in os.listdir(tmp)]
    return left


def refused(svc, backend, label, name, tar, digest, words, store):
    t0 = time.time()
    r = timages.build(svc, K1, name, tar)
    took = time.time() - t0
    msg = r.get("statusMsg", "")
    tlib.check("%s: %s (%d KiB upload) refused, naming %s" % (backend, label, len(tar) >> 10,
                                                              words),
               r.get("statusId") == -1 and all(w in msg for w in words), r)
    print("# %s: %s answered in %.1f s" % (backend, label, took))
    tlib.check("%s: %s: no image made" % (backend, label),
               timages.image_id(name) is None and name not in timages.published(svc),
               timages.image_id(name))
    if backend == "localOCI":
        left = store_leftovers(store, digest)
        tlib.check("%s: %s: nothing half-imported in the store" % (backend, label), not left, left)


def caps(backend, tars):
    name = "%s-bomb-%s" % (timages.TAG, backend.lower())
    with timages.service(backend) as svc:
        svc.start_consumer(timages.consumer_config(svc, backend, CAPS))
        try:
            store = test_e2e_localoci.LAYER_STORE
            refused(svc, backend, "160 MiB of zeros", name, tars["zeros"][0], tars["zeros"][1],
                    ["image_max_unpacked_mb"], store)
            refused(svc, backend, "3000 files", name, tars["many"][0], tars["many"][1],
                    ["image_max_entries"], store)
            r = timages.build(svc, K1, name, tars["small"][0])
            tlib.check("%s: a small image still builds under the caps" % backend,
                       r.get("statusId") == 0, r)
        finally:
            timages.stop_consumer(svc)
            timages.forget_image(backend, name)
            forget_layers(tars)
    timages.after_backend(backend)


def forget_layers(tars):
    """The test's own layers out of the shared localOCI store (a run of a
    build without the caps stores them)."""
    for _, digest in tars.values():
        shutil.rmtree(os.path.join(test_e2e_localoci.LAYER_STORE, "layers", digest),
                      ignore_errors=True)


def free_space(tars):
    """localOCI with its layer store on a 48 MiB tmpfs."""
    store = tempfile.mkdtemp(prefix="tango-bomb-store-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tango-bomb", store], check=True)
    name = "%s-space" % timages.TAG
    try:
        with timages.service("localOCI") as svc:
            cfg = test_e2e_localoci.oci_config(svc, oci={"store_dir": store, "import_images": []})
            svc.start_consumer(dict(cfg, auto_pool_max=0))
            try:
                refused(svc, "localOCI", "160 MiB of zeros on a 48 MiB store", name,
                        tars["zeros"][0], tars["zeros"][1], ["free", "MiB"], store)
                layers = os.listdir(os.path.join(store, "layers"))
                tlib.check("localOCI: the small store holds no layer", not layers, layers)
            finally:
                timages.stop_consumer(svc)
        timages.after_backend("localOCI")
    finally:
        subprocess.run(["umount", store])
        os.rmdir(store)


def main():
    tars = {"zeros": imported(timages.TAG + "-zeros", zeros_rootfs),
            "many": imported(timages.TAG + "-many", many_rootfs),
            "small": imported(timages.TAG + "-small", small_rootfs)}
    forget_layers(tars)
    for backend in timages.BACKENDS:
        caps(backend, tars)
    if "localOCI" in timages.BACKENDS:
        free_space(tars)
    tlib.done()


if __name__ == "__main__":
    main()
