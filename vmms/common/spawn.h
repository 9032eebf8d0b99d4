/*
 * spawn.h: running a helper program (an OCI runtime, ip, iptables) from a
 * VMMS back end with a fixed argv: absolute path, no shell, no PATH lookup,
 * a minimal environment, its own session, a deadline. One implementation
 * for every plugin (localOCI, localDocker); spawn.c owns it.
 */
#ifndef TANGO_VMMS_SPAWN_H
#define TANGO_VMMS_SPAWN_H

#include <stddef.h>

#pragma GCC visibility push(hidden)

/* Runs argv[0] (an absolute path) with argv, stdin from /dev/null (or the
 * bytes of input when not NULL), stdout+stderr collected into out (its
 * start, newlines as spaces; out may be NULL). *status gets the exit code
 * (-1 if killed by a signal). VMMS_OK when it ran to its end,
 * VMMS_TIMEOUT after timeout_ms (it is killed), VMMS_ERR. */
int vmms_spawn(const char *const *argv, const char *input, long timeout_ms, int *status,
               char *out, size_t outsz, char *err, size_t errlen);
/* vmms_spawn with the program's stdout and stderr on out_fd (a log file), for
 * programs whose children inherit them (`runc create`): only its exit is
 * waited for. */
int vmms_spawn_fd(const char *const *argv, int out_fd, long timeout_ms, int *status, char *err,
                  size_t errlen);
/* vmms_spawn, and VMMS_ERR with "what: output (exit n)" unless it exited 0. */
int vmms_spawn_ok(const char *what, const char *const *argv, const char *input,
                  long timeout_ms, char *err, size_t errlen);
/* The first of paths that is executable, or NULL. */
const char *vmms_find_prog(const char *const *paths);

#pragma GCC visibility pop

#endif
