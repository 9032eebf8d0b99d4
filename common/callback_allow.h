/*
 * callback_allow.h: which hosts a job's callback may reach (config
 * "callback_allow"), checked where a callback URL enters (addJob, without
 * DNS) and again where it is sent (the consumer, on the addresses the name
 * resolves to, which are then pinned for the connection so a second,
 * different answer from DNS cannot redirect it).
 *
 * Entries: a host name ("autolab.example.edu"), a domain (".example.edu":
 * every name under it), an IP address ("127.0.0.1", "::1") or a CIDR
 * network ("10.1.0.0/16", "fd00::/8").
 * - No entries: every host is allowed except the service's own
 *   neighbourhood: loopback (127.0.0.0/8, ::1), link-local (169.254.0.0/16,
 *   fe80::/10) and unspecified addresses (0.0.0.0/8, ::), and the name
 *   "localhost" (and *.localhost).
 * - Entries: only what they name is allowed (loopback and link-local too,
 *   when an entry names them, e.g. "127.0.0.1" for a local setup).
 * IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
 * A policy is read-only once made: share it between threads freely.
 */
#ifndef TANGO_CALLBACK_ALLOW_H
#define TANGO_CALLBACK_ALLOW_H

#include <stddef.h>

struct callback_policy;

/* Parses the entries into *out (caller frees with callback_policy_free).
 * Returns 0, or -1 with the bad entry named in err. */
int callback_policy_new(char *const *entries, size_t n, struct callback_policy **out, char *err,
                        size_t errlen);
void callback_policy_free(struct callback_policy *p);

/* For addJob: judges url (http or https) without any DNS lookup. Returns 0
 * if its host is allowed or only a lookup can tell (a name, with address
 * entries in the policy), -1 with the reason in why if it is refused (an
 * address or name the policy refuses, or no host at all). */
int callback_check_url(const struct callback_policy *p, const char *url, char *why,
                       size_t whylen);

/* For sending: resolves url's host (blocking getaddrinfo) and picks the
 * first address the policy allows. Fills pin with a CURLOPT_RESOLVE entry
 * "host:port:address" for it (empty when the host is an IP literal, which
 * needs no lookup). Returns 0; 1 if the lookup failed (try again later);
 * -1 if the policy refuses every address (why says which). */
#define CALLBACK_PIN_MAX 600
int callback_resolve(const struct callback_policy *p, const char *url, char pin[CALLBACK_PIN_MAX],
                     char *why, size_t whylen);

#endif
