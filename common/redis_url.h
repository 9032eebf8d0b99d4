/*
 * redis_url.h: the one parser of config key redis_url. Two forms:
 *
 *   redis://[user:password@ | :password@]host[:port][/db]
 *       one Redis server (port 6379 by default);
 *   redis-sentinel://[user:password@ | :password@]host[:port][,host[:port]...]/master[/db]
 *       Redis Sentinel: the sentinels (port 26379 by default, at most
 *       REDIS_SENTINELS_MAX; a host is a name, an IPv4 address or an IPv6
 *       address in brackets) are asked for the address of master `master`.
 *
 * The password (it may hold ':' and '@'; the last '@' ends it) is for the
 * Redis servers, and for a sentinel only if it asks for one (NOAUTH). db is
 * 0..1000. Error messages name the key and never include the password.
 */
#ifndef TANGO_REDIS_URL_H
#define TANGO_REDIS_URL_H

#include <stdbool.h>
#include <stddef.h>

#define REDIS_SENTINELS_MAX 8
#define REDIS_MASTER_NAME_MAX 64
#define REDIS_HOST_MAX 255

struct redis_addr {
    char host[REDIS_HOST_MAX + 1]; /* an IPv6 address without its brackets */
    int port;
};

struct redis_target {
    /* redis://: the server. */
    char host[REDIS_HOST_MAX + 1];
    int port;
    int db;
    char password[256];
    /* redis-sentinel://: the sentinels and the master's name. */
    bool sentinel;
    int nsentinels;
    struct redis_addr sentinels[REDIS_SENTINELS_MAX];
    char master[REDIS_MASTER_NAME_MAX + 1];
};

/* Parses url into *out (zeroed first). Returns 0, or -1 with a message
 * naming config key "redis_url" (and what is wrong) in err. */
int redis_url_parse(const char *url, struct redis_target *out, char *err, size_t errlen);

#endif
