/*
 * seccomp.h: the one seccomp profile every back end that runs jobs in
 * containers puts on them (localOCI in its config.json, localDocker and
 * distDocker through the engine's seccomp security option). seccomp.c
 * owns the table it is made from and its two renderings:
 *   - an allow list: whatever is not listed fails with EPERM;
 *   - socket only for AF_UNIX, AF_INET, AF_INET6, AF_NETLINK and AF_PACKET
 *     (AF_PACKET as Docker's default allows it: its raw sockets need
 *     CAP_NET_RAW, which the job's root has and the grading user has not);
 *     AF_ALG, AF_VSOCK and every other family are refused;
 *   - none of io_uring, userfaultfd, perf_event_open, bpf, keyrings
 *     (keyctl, add_key, request_key), namespaces (unshare, setns, clone with
 *     a CLONE_NEW* flag; clone3 is ENOSYS so libc falls back to clone),
 *     mounts, modules, reboot, swap, clock setting, kexec;
 *   - personality only for the values Docker's default allows.
 * No wider than Docker's or containerd's default profile on any point, and
 * narrower on socket families, pidfd_getfd, statmount, listmount,
 * uretprobe, clock_adjtime and the 32-bit-only calls
 * (docs/sandbox-syscalls.md).
 */
#ifndef TANGO_VMMS_SECCOMP_H
#define TANGO_VMMS_SECCOMP_H

#include <jansson.h>

#pragma GCC visibility push(hidden)

/* The profile as a JSON object in the form both the OCI runtime spec's
 * linux.seccomp and Docker's seccomp profile files use (defaultAction,
 * defaultErrnoRet, architectures, syscalls: names, action, args, errnoRet).
 * A new reference; NULL when out of memory. */
json_t *vmms_seccomp_profile(void);

/* The profile as compact JSON text, malloc'd (the caller frees it): what
 * Docker's HostConfig.SecurityOpt takes after "seccomp=", and what the
 * docker CLI's --security-opt seccomp=FILE reads. NULL when out of memory. */
char *vmms_seccomp_profile_text(void);

/* What the profile does with syscall name called with first argument arg0
 * (used by rules on socket, clone and personality; ignored elsewhere):
 * 0 if allowed, else the errno it fails with. For tests and docs; the
 * kernel never asks it. */
int vmms_seccomp_verdict(const char *name, unsigned long long arg0);

#pragma GCC visibility pop

#endif
