"""Issue #10, attack 10: the consumer never follows a planted link when it
writes results. Job ids and fencing tokens are predictable, so an attacker
who can write into a lab's output folder or the courselabs root plants
symlinks at every name the consumer might create for the next job (the old
".<id>.tmp", the writer-unique ".<id>.<fence>.tmp", the feedback file
".feedback-<id>-<fence>") pointing at a victim file. The job must still
produce its own output, the victim must be unchanged, and the links must not
have been written through. Real Redis, producer, consumer and Docker."""
import os
import signal

import tlib
from test_e2e_localdocker import consumer_config
from tjobs import makefile, submit, wait_output

K = tlib.KEYS


def lab_output_dir(svc, lab):
    for d in os.listdir(svc.courselabs):
        if d.endswith("-" + lab) and os.path.isdir(os.path.join(svc.courselabs, d)):
            out = os.path.join(svc.courselabs, d, "output")
            os.makedirs(out, exist_ok=True)
            return out
    return None


def main():
    with tlib.Service(producers=1) as svc:
        svc.start_consumer(consumer_config(svc))
        victim = os.path.join(svc.tmp, "victim")
        with open(victim, "wb") as f:
            f.write(b"precious\n")
        svc.open("plant")
        out_dir = lab_output_dir(svc, "plant")
        tlib.check("planted: the lab's output folder exists", out_dir is not None, svc.courselabs)
        next_id = int(svc.redis.cli("GET", svc.prefix + K["JOB_LASTID"]) or 0) + 1
        next_fence = int(svc.redis.cli("GET", svc.prefix + K["FENCE_SEQ"]) or 0)
        planted = []
        for fence in range(next_fence, next_fence + 40):
            for name, where in ((".%d.tmp" % next_id, out_dir),
                                (".%d.%d.tmp" % (next_id, fence), out_dir),
                                (".feedback-%d-%d" % (next_id, fence), svc.courselabs)):
                path = os.path.join(where, name)
                if not os.path.lexists(path):
                    os.symlink(victim, path)
                    planted.append(path)
        r = submit(svc, "plant", {"Makefile": makefile("echo the-real-output")}, "planted.out",
                   timeout=20)
        tlib.check("planted: job added with the predicted id", r.get("jobId") == next_id, r)
        out = wait_output(svc, "plant", "planted.out", 60)
        tlib.check("planted: the job's own output arrives", out is not None and
                   b"the-real-output" in out and b"Success" in out, out)
        with open(victim, "rb") as f:
            tlib.check("planted: the victim file is unchanged", f.read() == b"precious\n")
        final = os.path.join(out_dir, "planted.out")
        tlib.check("planted: the output file is a regular file, not a link",
                   os.path.isfile(final) and not os.path.islink(final))
        # A symlink planted at the output file's own name is replaced, not
        # followed.
        os.symlink(victim, os.path.join(out_dir, "planted2.out"))
        r = submit(svc, "plant", {"Makefile": makefile("echo second")}, "planted2.out", timeout=20)
        out = wait_output(svc, "plant", "planted2.out", 60)
        with open(victim, "rb") as f:
            tlib.check("planted: a link at the output name is replaced, the victim unchanged",
                       f.read() == b"precious\n" and out is not None and b"second" in out, out)
        svc.consumers[0].kill(signal.SIGKILL)
    tlib.done()


if __name__ == "__main__":
    main()
