"""Callback allowlist end to end (issue 10): with callback_allow naming
127.0.0.1 a callback to the local receiver is delivered (also through the
name localhost, pinned to the address that was judged); with an allowlist
that does not name loopback, a callback to a name that resolves to loopback
passes addJob (no DNS there) but is refused at send time on the resolved
address and given up at once, without a request reaching the receiver.
Real Redis, producer, consumer and Docker."""
import time

import tjobs
import tlib
from test_e2e_localdocker import consumer_config
from tjobs import makefile, submit, wait_output


def wait_log(proc, text, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if text in proc.logtext():
            return True
        time.sleep(0.1)
    return False


def main():
    cb = tjobs.CallbackReceiver()
    name_url = "http://localhost:%d/cb/%s" % (cb.port, "%s")
    with tlib.Service(config={"callback_allow": ["127.0.0.1"]}) as svc:
        svc.start_consumer(consumer_config(svc))
        d = submit(svc, "cba", {"Makefile": makefile("echo allowed")}, "allowed.out",
                   timeout=20, callback_url=cb.url("allowed"))
        tlib.check("allowlisted 127.0.0.1: accepted", d.get("statusId") == 0, d)
        got = cb.wait("allowed", 60)
        tlib.check("allowlisted 127.0.0.1: the callback is delivered",
                   len(got) == 1 and b"allowed" in (got[0]["content"] or b""), got)
        d = submit(svc, "cba", {"Makefile": makefile("echo by-name")}, "byname.out",
                   timeout=20, callback_url=name_url % "byname")
        got = cb.wait("byname", 60)
        tlib.check("allowlisted 127.0.0.1: a callback to localhost goes to 127.0.0.1 (pinned)",
                   d.get("statusId") == 0 and len(got) == 1, (d, got))

    with tlib.Service(config={"callback_allow": ["10.0.0.0/8"]}) as svc:
        c = svc.start_consumer(consumer_config(svc))
        d = submit(svc, "cbr", {"Makefile": makefile("echo refused")}, "refused.out",
                   timeout=20, callback_url=name_url % "refused")
        tlib.check("a name resolving to loopback passes addJob (no DNS there)",
                   d.get("statusId") == 0, d)
        out = wait_output(svc, "cbr", "refused.out", 60)
        tlib.check("the job itself runs and writes its output", out is not None and b"refused" in out)
        tlib.check("at send time the resolved loopback address is refused and the callback given up",
                   wait_log(c, "callback_given_up") and "refused addresses" in c.logtext() and
                   "attempts=1 " in c.logtext().split("callback_given_up", 1)[1][:200],
                   c.logtext()[-600:])
        tlib.check("nothing reached the receiver", cb.for_tag("refused") == [])
    cb.close()


main()
tlib.done()
