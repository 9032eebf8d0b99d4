"""End-to-end jobs through the HTTP API on the ec2SSH back end, with no AWS:
moto_server (EC2, IAM, STS) on loopback with request authentication on,
the minimum IAM policy of docs/backends/ec2SSH.md on the role the plugin gets its credentials
for through a fake IMDSv2 (temporary credentials with a session token), a
throttling proxy in front of moto, and a boot simulator that starts a "VM"
(a container with sshd, the grading users and the autodriver, its own host
key) at exactly the private IP moto gives each instance, on a Docker
network with the moto subnet's range (tests/ec2/ec2sim.py). The plugin
talks to an EC2 endpoint and to SSH hosts as in production. Needs root and
Docker."""
import json
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "ec2"))

import ec2sim  # noqa: E402
import test_e2e_localdocker as base  # noqa: E402
import tjobs  # noqa: E402
import tlib  # noqa: E402
from tjobs import makefile, submit, wait_output  # noqa: E402

PREFIX = base.PREFIX
wait_for = tlib.wait_for


def lines_of(out):
    return out.decode("utf-8", "replace").split("\n") if out else []


def consumer_config(svc, sim, **plugin):
    cfg = base.consumer_config(svc, vmms="ec2SSH", extra={
        "max_jobs": 6, "max_jobs_per_image": 6, "waitvm_timeout_s": 12, "job_retries": 1,
        "metrics_port": 0})
    cfg["vmms_config"] = {"ec2SSH": sim.plugin_config(PREFIX, **plugin)}
    return cfg


def job_record(svc, job_id):
    r = svc.get("/job/%s/%d/" % (svc.key, job_id)).json()
    return r.get("job") or {}


def instance_of(sim, job_id):
    """The instances launched for a job (its VM names carry the job id)."""
    out = []
    for i in sim.instances([{"Name": "tag:tango-service", "Values": [PREFIX]}]):
        tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
        if tags.get("tango-vm", "").startswith("%sj%d-" % (PREFIX, job_id)):
            out.append((i, tags))
    return out


def wrong_secret(sim):
    import botocore.exceptions
    try:
        sim._client("ec2", sim.tango_key[0], "W" * 40).describe_instances()
        return "accepted"
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    if os.geteuid() != 0:
        tlib.check("ec2SSH e2e needs root (Docker networks)", False)
        tlib.done()
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ.pop(k, None)
    t_start = time.time()
    img = subprocess.run([os.path.join(os.path.dirname(HERE), "ec2", "vmimage.sh")],
                         capture_output=True, text=True)
    if not tlib.check("VM image built (offline, cached)", img.returncode == 0, img.stderr):
        tlib.done()
    cb = tjobs.CallbackReceiver()
    # both AMIs are the operator's: listed in "images", or no key may run them
    # (only configured images and a key's own builds: issue 18)
    with ec2sim.Ec2Sim(img.stdout.strip()) as sim, \
            tlib.Service(producers=1, config={"images": ["autograding_image", "deadimage"]}) as svc:
        print("# fixture up in %.1fs (moto %d, subnet %s.0/24)" % (time.time() - t_start,
                                                                    sim.port, sim.subnet_prefix))
        tlib.check("moto: a wrong secret is refused (authentication on)",
                   wrong_secret(sim) in ("AuthFailure", "SignatureDoesNotMatch"),
                   wrong_secret(sim))
        guide = open(os.path.join(tlib.ROOT, "docs", "backends", "ec2SSH.md")).read()
        policy = json.load(open(ec2sim.POLICY_FILE))
        m = re.search(r"```json\n(\{\n  \"Version\".*?\n\})\n```", guide, re.S)
        tlib.check("docs/backends/ec2SSH.md's IAM policy is the one tested", m is not None and
                   json.loads(m.group(1)) == policy, m and m.group(1)[:200])

        # Config errors stop the consumer with the key named (and no secret echoed).
        for key, value in (("regon", "x"), ("region", "us east"), ("known_hosts", "yes"),
                           ("default_instance_type", "c5.large"), ("private_key", "/nonexistent"),
                           ("max_vms", 0), ("security_groups", "sg-1"), ("tags", {"Name": "x"}),
                           ("secret_access_key", "S3CRETVALUE")):
            c = svc.start_consumer(consumer_config(svc, sim, **{key: value}))
            c.proc.wait(20)
            text = c.logtext()
            tlib.check("config: bad %s refused, named" % key,
                       c.proc.returncode not in (0, None) and key in text and
                       "S3CRETVALUE" not in text, text[-300:])
            c.stop()
            svc.consumers.clear()

        # A consumer whose secret is wrong gets nothing from EC2.
        bad = consumer_config(svc, sim, access_key_id=sim.tango_key[0],
                              secret_access_key="B" * 40)
        c0 = svc.start_consumer(bad)
        got = wait_for(lambda: re.search(r"AuthFailure|SignatureDoesNotMatch", c0.logtext()),
                       20)
        tlib.check("plugin with a wrong secret: EC2 refuses it", got, c0.logtext()[-600:])
        c0.stop(30)
        svc.consumers.clear()

        # An instance of ours that no job owns (a crash's leftover): cleaned up.
        orphan = sim.ec2.run_instances(
            ImageId=sim.amis["autograding_image"], MinCount=1, MaxCount=1,
            InstanceType="t3.micro", SubnetId=sim.subnet, TagSpecifications=[{
                "ResourceType": "instance", "Tags": [
                    {"Key": "tango-service", "Value": PREFIX},
                    {"Key": "tango-vm", "Value": PREFIX + "orphan-x"}]}])["Instances"][0][
            "InstanceId"]
        svc.start_consumer(consumer_config(svc, sim))
        state = lambda iid: sim.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0][
            "Instances"][0]["State"]["Name"]
        tlib.check("startup clean-up terminates our orphan",
                   wait_for(lambda: state(orphan) == "terminated", 30), state(orphan))
        def published():
            raw = svc.redis.cli("GET", svc.prefix + tlib.KEYS["IMAGES"])
            try:
                return sorted(json.loads(raw)["images"])
            except (ValueError, KeyError, TypeError):
                return raw
        tlib.check("images: exactly the AMIs tagged tango-image",
                   wait_for(lambda: published() == ["autograding_image", "deadimage"], 40),
                   published())

        # hello world
        hello = b'print("hello from the grader")\nprint(\'{"scores": {"q1": 10}}\')\n'
        r = submit(svc, "lab1", {"hello.py": hello, "Makefile": makefile("ls\npython3 hello.py")},
                   "hello.out", timeout=20, callback_url=cb.url("hello"))
        tlib.check("hello: job added", r.get("statusMsg") == "Job added", r)
        out = wait_output(svc, "lab1", "hello.out", 60)
        lines = lines_of(out)
        tlib.check("hello: success outcome", len(lines) > 1 and
                   lines[1].endswith("]: Success: Autodriver returned normally"), lines[:3])
        tlib.check("hello: grader output", out is not None and b"hello from the grader" in out
                   and b"hello.py" in out, out)
        tlib.check("hello: callback", len(cb.wait("hello")) == 1)
        inst = instance_of(sim, r["jobId"])
        if tlib.check("hello: one instance launched", len(inst) == 1, inst):
            i, tags = inst[0]
            tlib.check("hello: instance tagged (Name, prefix, VM, config tags)",
                       tags.get("tango-service") == PREFIX and tags.get("Name") ==
                       tags.get("tango-vm") and tags.get("course") == "tango-test", tags)
            tlib.check("hello: subnet, security group, key pair, default type",
                       i["SubnetId"] == sim.subnet and
                       [g["GroupId"] for g in i["SecurityGroups"]] == [sim.sg] and
                       i["KeyName"] == "tango-graders" and i["InstanceType"] == "t3.micro" and
                       i["ImageId"] == sim.amis["autograding_image"], i)
            tlib.check("hello: VM launched without the metadata service (RunInstances' "
                       "MetadataOptions)", i.get("MetadataOptions", {}).get("HttpEndpoint") ==
                       "disabled", i.get("MetadataOptions"))
            tlib.check("hello: instance terminated at the end",
                       wait_for(lambda: state(i["InstanceId"]) == "terminated", 20))

        # instance types: allowed and refused
        ra = submit(svc, "lab1", {"Makefile": makefile("echo big")}, "type.out", timeout=20,
                    instance_type="t3.small")
        rr = submit(svc, "lab1", {"Makefile": makefile("echo never")}, "refused.out",
                    timeout=20, instance_type="c5.large")
        rbad = submit(svc, "lab1", {"Makefile": makefile("echo x")}, "badtype.out", timeout=20,
                      instance_type="C5 LARGE")
        tlib.check("instance_type: malformed name refused at addJob",
                   rbad.get("statusId", 0) != 0 and "instance_type" in json.dumps(rbad), rbad)
        # A producer whose config has the plugin's list refuses at addJob.
        pcfg = svc.start_producer({"vmms_config": consumer_config(svc, sim)["vmms_config"]})
        rdeny = svc.add_job("lab1", {"image": "autograding_image", "files": [],
                                     "jobName": "job-deny", "output_file": "deny.out",
                                     "instance_type": "c5.large"}, port=pcfg.port)
        tlib.check("instance_type c5.large: refused at addJob by a producer with the list",
                   rdeny.get("statusId", 0) != 0 and "not allowed" in json.dumps(rdeny), rdeny)
        out = wait_output(svc, "lab1", "type.out", 60)
        inst = instance_of(sim, ra["jobId"])
        tlib.check("instance_type t3.small: job runs on a t3.small",
                   out is not None and b"big" in out and len(inst) == 1 and
                   inst[0][0]["InstanceType"] == "t3.small", (out, [x[0]["InstanceType"]
                                                                      for x in inst]))
        dead = tjobs.wait_dead(svc, rr["jobId"], 60)
        trace = " ".join(dead["trace"]) if dead else ""
        tlib.check("instance_type c5.large: job fails, trace says it is not allowed",
                   dead is not None and "is not allowed" in trace and "t3.micro" in trace,
                   trace[-400:])
        tlib.check("instance_type c5.large: no instance launched",
                   not instance_of(sim, rr["jobId"]))

        # slow printer (partial output), timeout, failing make, max_kb; all at once
        slow = makefile("for i in $$(seq 1 10); do echo line$$i; sleep 0.5; done")
        rs = submit(svc, "lab1", {"Makefile": slow}, "slow.out", timeout=30)
        t0 = time.time()
        submit(svc, "lab1", {"Makefile": makefile("while true; do :; done")}, "loop.out",
               timeout=4)
        submit(svc, "lab1", {"Makefile": makefile("echo about to fail\nexit 1")}, "fail.out",
               timeout=20)
        partials = []
        end = time.time() + 40
        while time.time() < end and len(partials) < 60:
            p = svc.get("/getPartialOutput/%s/%d/" % (svc.key, rs["jobId"])).json()
            if p["statusId"] == 0 and p["output"]:
                partials.append(p["output"])
            if svc.poll("lab1", "slow.out").header("Content-Type") == "application/octet-stream":
                break
            time.sleep(0.25)
        counts = [p.count("line") for p in partials]
        tlib.check("partial output grows while the job runs",
                   len(counts) >= 2 and counts[-1] > counts[0] and counts == sorted(counts),
                   counts)
        out = wait_output(svc, "lab1", "loop.out", 60)
        tlib.check("timeout: outcome line", out is not None and
                   "Error: Job timed out after 4 seconds" in lines_of(out)[1], lines_of(out)[:3])
        tlib.check("timeout: ends within a few seconds of the limit", time.time() - t0 < 4 + 25,
                   "%.1fs" % (time.time() - t0))
        out = wait_output(svc, "lab1", "fail.out", 60)
        tlib.check("make failure: status 2 and grader output",
                   out is not None and "Autodriver: Job exited with status 2" in lines_of(out)
                   and b"about to fail" in out, lines_of(out))
        out = wait_output(svc, "lab1", "slow.out", 60)
        tlib.check("slow printer: all lines", out is not None and b"line10" in out, out)
        submit(svc, "lab1", {"Makefile": makefile("yes 0123456789abcdef")}, "flood.out",
               timeout=6, max_kb=32)
        out = wait_output(svc, "lab1", "flood.out", 60)
        tlib.check("max_kb: output capped with the elision line", out is not None and
                   len(out) < 32 * 1024 + 4096 and b"...[excess bytes elided]..." in out,
                   len(out or b""))

        # the cap: 6 jobs, max_vms 3: they wait, none fails
        sim.max_live = 0
        logs_before = len(svc.consumers[0].logtext())
        ids = [submit(svc, "labcap", {"Makefile": makefile("sleep 2\necho cap %d" % i)},
                      "cap%d.out" % i, timeout=20)["jobId"] for i in range(6)]
        outs = [wait_output(svc, "labcap", "cap%d.out" % i, 90) for i in range(6)]
        ok = sum(1 for i, o in enumerate(outs) if o and b"cap %d" % i in o and b"Success" in o)
        tlib.check("cap: all 6 jobs succeed", ok == 6, "%d of 6" % ok)
        tlib.check("cap: never more than max_vms instances of ours at once",
                   0 < sim.max_live <= 3, sim.max_live)
        newlog = svc.consumers[0].logtext()[logs_before:]
        retries = [(tjobs.wait_dead(svc, j, 10) or {}).get("retries") for j in ids]
        tlib.check("cap: jobs waited for a slot (VMMS_BUSY, no retry spent)",
                   "event=vmms_busy" in newlog and "max_vms reached" in newlog and
                   retries == [0] * 6, (retries, newlog[-300:]))

        # throttling: the next 4 calls answer RequestLimitExceeded
        sim.proxy.throttle(4)
        submit(svc, "lab1", {"Makefile": makefile("echo throttled fine")}, "thr.out", timeout=20)
        out = wait_output(svc, "lab1", "thr.out", 60)
        tlib.check("throttled API: the job still succeeds", out is not None and
                   b"throttled fine" in out and b"Success" in out, out)
        tlib.check("throttled API: retried with backoff",
                   wait_for(lambda: sim.proxy.throttled == 4 and "event=ec2_retry" in
                            svc.consumers[0].logtext() and "code=RequestLimitExceeded" in
                            svc.consumers[0].logtext(), 30), sim.proxy.throttled)

        # a host key that is not the one the console printed: refused
        sim.proxy.bad_console = True
        rm = submit(svc, "lab1", {"Makefile": makefile("echo x")}, "mitm.out", timeout=20,
                    instance_type="t3.small")  # not the warm pool's type: a new VM
        dead = tjobs.wait_dead(svc, rm["jobId"], 90)
        sim.proxy.bad_console = False
        trace = " ".join(dead["trace"]) if dead else ""
        tlib.check("known_hosts console: a key not on the console is refused, job not run",
                   dead is not None and "host key mismatch" in trace and
                   "Success" not in (dead.get("outcome") or ""), trace[-400:])

        # an instance that never becomes reachable: timeout, retried, terminated
        rd = submit(svc, "lab1", {"Makefile": makefile("echo x")}, "dead.out", timeout=20,
                    image="deadimage")
        dead = tjobs.wait_dead(svc, rd["jobId"], 90)
        trace = " ".join(dead["trace"]) if dead else ""
        tlib.check("unreachable VM: job fails after waitVM timeouts", dead is not None and
                   "waitVM" in trace and "no SSH" in trace, trace[-500:])
        inst = instance_of(sim, rd["jobId"])
        tlib.check("unreachable VM: retried on a new instance", len(inst) == 2,
                   [x[0]["InstanceId"] for x in inst])
        tlib.check("unreachable VM: every instance terminated",
                   wait_for(lambda: all(state(x[0]["InstanceId"]) == "terminated"
                                        for x in instance_of(sim, rd["jobId"])), 20))

        # consumer restart while a job runs: re-attached, nothing leaked
        rk = submit(svc, "lab1", {"Makefile": makefile("sleep 5\necho survived")}, "kill.out",
                    timeout=30)
        # killed once the run is recorded (the trace line is saved with the
        # run's handle): a kill before that sends the job back to be run again
        started = wait_for(lambda: any(" started (run " in t for t in
                                       job_record(svc, rk["jobId"]).get("trace", [])), 60)
        tlib.check("restart: job started before the kill", started)
        svc.consumers[0].kill()
        svc.start_consumer(consumer_config(svc, sim, keep_failed_vms=True,
                                           known_hosts="accept-new", instance_metadata=True))
        out = wait_output(svc, "lab1", "kill.out", 90)
        tlib.check("restart: the run survives and its output arrives",
                   out is not None and b"survived" in out and b"Success" in out, out)
        dead = tjobs.wait_dead(svc, rk["jobId"], 20) or {}
        assigned = [t for t in dead.get("trace", []) if "Assigned job" in t]
        tlib.check("restart: ran once (re-attached, not re-run)",
                   len(assigned) == 1 and dead.get("retries") == 0, dead.get("trace"))

        # keep_failed_vms: a VM that failed stays, renamed, no longer ours
        rf = submit(svc, "lab1", {"Makefile": makefile("echo x")}, "kept.out", timeout=20,
                    image="deadimage")
        dead = tjobs.wait_dead(svc, rf["jobId"], 90)

        def kept_vms():
            return [i for i in sim.instances([{"Name": "instance-state-name",
                                                "Values": ["running"]}])
                    if any(t["Key"] == "Name" and
                           t["Value"].startswith("failed-" + PREFIX + "j%d-" % rf["jobId"])
                           for t in i.get("Tags", []))]

        def kept_and_released():
            k = kept_vms()
            return len(k) == 2 and not any(t["Key"] == "tango-service"
                                           for i in k for t in i["Tags"])
        # the job is recorded dead before its last VM is destroyed (renamed,
        # then our tag dropped): wait for both steps of both VMs
        released = wait_for(kept_and_released, 30)
        kept = kept_vms()
        tlib.check("keep_failed_vms: failed VMs kept running as failed-NAME, not ours any more",
                   dead is not None and released, [i.get("Tags") for i in kept])
        meta = [i.get("MetadataOptions", {}) for i in kept]
        tlib.check("instance_metadata: VMs get IMDSv2 only, hop limit 1",
                   meta and all(m.get("HttpEndpoint") == "enabled" and
                                m.get("HttpTokens") == "required" and
                                m.get("HttpPutResponseHopLimit") == 1 for m in meta), meta)
        # (the warm pool's failed VMs of deadimage were kept too: all go now)
        left = [i["InstanceId"] for i in sim.instances([{"Name": "tag:Name", "Values": [
            "failed-" + PREFIX + "*"]}]) if i["State"]["Name"] != "terminated"]
        if left:
            sim.ec2.terminate_instances(InstanceIds=left)

        rc = svc.consumers[-1].stop(60)
        tlib.check("consumer drains and exits 0", rc == 0, rc)
        live = wait_for(lambda: not sim.ours(PREFIX), 20)
        tlib.check("no instance of ours left (DescribeInstances)", live,
                   [i["InstanceId"] for i in sim.ours(PREFIX)])
        tlib.check("no VM container left", wait_for(lambda: not sim.vm_containers(), 20),
                   sim.vm_containers())
        tlib.check("someone else's instance untouched", state(sim.foreign) == "running")
        tlib.check("boot simulator had no errors", not sim.sim_errors, sim.sim_errors[:3])
        tlib.check("credentials from the instance profile (IMDSv2 token, role)",
                   sim.imds.hits["token"] >= 1 and sim.imds.hits["creds"] >= 1, sim.imds.hits)
        logs = "".join(c.logtext() for c in svc.consumers) + c0.logtext()
        secrets_ = [sim.tango_key[1], sim.role_creds["SecretAccessKey"],
                    sim.role_creds["SessionToken"], sim.imds.token, "B" * 40, svc.key]
        tlib.check("no secret in the consumer logs", not any(s in logs for s in secrets_))
        tlib.check("known_hosts console: keys checked against the console's fingerprints",
                   "event=host_key_matched" in svc.consumers[0].logtext() and
                   "host_key_accepted_new" not in svc.consumers[0].logtext())
        tlib.check("accept-new host keys logged as such",
                   "event=host_key_accepted_new" in logs and "known_hosts=accept-new" in logs)
        svc.consumers.clear()
    cb.close()
    print("# ec2 e2e %.1fs" % (time.time() - t_start))
    tlib.done()


if __name__ == "__main__":
    main()
