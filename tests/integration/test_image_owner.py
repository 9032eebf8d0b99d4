"""An image belongs to the key that built it (issue 18 point 6), end to end
on localDocker and localOCI: key K1 builds an image (autograding_image plus
a marker file saying "k1"); key K2's /build of the same name (a marker
saying "k2") is refused with a message naming the reason, and so is its
/build of autograding_image (a name the config provides; the tarball is
autograding_image itself, so a wrongly accepted build changes nothing);
nor may K2 build K1's name or autograding_image with ":latest" added, nor
another tag of K1's name (a key owns a repository, every tag of it);
K2's addJob naming K1's image is refused, its /prealloc of it too, and its
/pool neither shows nor finds K1's pool; K1's next job runs K1's image
(reads "k1"), and K1's /prealloc and /pool of it work."""
import timages
import tlib
from timages import K1, K2


def names(backend):
    name = "%s-own-%s" % (timages.TAG, backend.lower())
    return name, name + "-k1src", name + "-k2src"


def run(svc, backend):
    name, mine, theirs = names(backend)
    timages.marker_image(mine, "k1")
    timages.marker_image(theirs, "k2")
    timages.docker("tag", mine, name)
    t1 = timages.saved(name)
    timages.docker("tag", theirs, name)
    t2 = timages.saved(name)
    timages.docker("rmi", name)

    r = timages.build(svc, K1, name, t1)
    tlib.check("%s: K1 builds %s" % (backend, name), r.get("statusId") == 0, r)
    tlib.check("%s: K1's image published" % backend, timages.wait_published(svc, name),
               timages.published(svc))
    r = timages.build(svc, K2, name, t2)
    tlib.check("%s: K2's /build of K1's name is refused, saying why" % backend,
               r.get("statusId") == -1 and "another key" in r.get("statusMsg", ""), r)
    r = timages.build(svc, K2, "autograding_image", timages.saved("autograding_image"))
    tlib.check("%s: K2's /build of autograding_image (a configured name) is refused" % backend,
               r.get("statusId") == -1 and "config" in r.get("statusMsg", ""), r)
    r = timages.build(svc, K2, name + ":latest", t2)
    tlib.check("%s: K2's /build of K1's name with :latest added is refused" % backend,
               r.get("statusId") == -1 and "another key" in r.get("statusMsg", ""), r)
    timages.docker("tag", theirs, name + ":k2tag")
    t3 = timages.saved(name + ":k2tag")
    timages.docker("rmi", name + ":k2tag")
    r = timages.build(svc, K2, name + ":k2tag", t3)
    tlib.check("%s: K2's /build of another tag of K1's name is refused" % backend,
               r.get("statusId") == -1 and "another key" in r.get("statusMsg", ""), r)
    r = timages.build(svc, K2, "autograding_image:latest", timages.saved("autograding_image"))
    tlib.check("%s: K2's /build of autograding_image:latest (a configured name) is refused"
               % backend, r.get("statusId") == -1 and "config" in r.get("statusMsg", ""), r)

    r = timages.submit_as(svc, K2, "lab2", "cat /marker", "k2.out", image=name)
    tlib.check("%s: K2's job naming K1's image is refused" % backend,
               r.get("statusId") == -1 and name in r.get("statusMsg", ""), r)
    r = svc.post("/prealloc/%s/%s/1/" % (K2, name)).json()
    tlib.check("%s: K2's /prealloc of K1's image is refused" % backend,
               r.get("statusId") == -1, r)
    r = svc.post("/prealloc/%s/%s/1/" % (K1, name)).json()
    tlib.check("%s: K1's /prealloc of its image works" % backend, r.get("statusId") == 0, r)
    tlib.check("%s: K1's /pool finds its pool" % backend,
               timages.pool_state(svc, K1, name) is not None)
    r = svc.get("/pool/%s/%s/" % (K2, name)).json()
    tlib.check("%s: K2's /pool/IMAGE does not find K1's pool" % backend,
               r.get("statusId") == -1, r)
    pools = svc.get("/pool/%s/" % K2).json().get("pools", {})
    tlib.check("%s: K2's /pool list leaves K1's pool out" % backend,
               name not in pools, sorted(pools))

    r = timages.submit_as(svc, K1, "lab1", "cat /marker", "k1.out", image=name)
    tlib.check("%s: K1's job added" % backend, r.get("statusId") == 0, r)
    out = timages.output_as(svc, K1, "lab1", "k1.out")
    tlib.check("%s: K1's job ran K1's image (marker k1)" % backend,
               out is not None and b"\nk1\n" in out and b"k2" not in out, out and out[-400:])
    r = timages.submit_as(svc, K1, "lab1", "cat /etc/hostname", "k1b.out")
    tlib.check("%s: a configured image is still every key's" % backend,
               r.get("statusId") == 0, r)


def main():
    for backend in timages.BACKENDS:
        with timages.service(backend) as svc:
            svc.start_consumer(timages.consumer_config(svc, backend))
            try:
                run(svc, backend)
            finally:
                timages.stop_consumer(svc)
                for n in names(backend) + (names(backend)[0] + ":k2tag",):
                    timages.forget_image(backend, n)
        timages.after_backend(backend)
    tlib.done()


if __name__ == "__main__":
    main()
