/*
 * registries.h: config key "registries", the registries jobs' images may
 * come from: {"host[:port]": {"credentials": FILE, "ca_file": FILE,
 * "stall_timeout_s": N}}, every field optional. A credentials file holds one
 * line "USER:PASSWORD", belongs to the service's user and is readable by it
 * alone (mode 0600 or 0400): both services refuse to start otherwise. Its
 * content is read when a pull needs it, never logged, never put in a
 * record. registries.c owns the checks and the reading.
 */
#ifndef TANGO_REGISTRIES_H
#define TANGO_REGISTRIES_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define REGISTRY_USER_MAX 256
#define REGISTRY_PASS_MAX 1024

/* Checks the whole "registries" object (keys image_ref_host_ok, values
 * objects of the known keys, every credentials file as above). 0, or -1
 * with err naming the registry and what is wrong. */
int registries_check(const json_t *regs, char *err, size_t errlen);

/* The entry of registry host ("host[:port]", lower case) or NULL: not listed. */
const json_t *registries_find(const json_t *regs, const char *host);

/* Reads credentials file path (the same checks) into user and pass, NUL
 * ended. 0, or -1 with err (which never holds the file's content). */
int registries_read_creds(const char *path, char user[REGISTRY_USER_MAX],
                          char pass[REGISTRY_PASS_MAX], char *err, size_t errlen);

#endif
