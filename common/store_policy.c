/*
 * store_policy.c: whether a Redis server may keep this service's state, as
 * the connection (store_conn.c) and the command path (store.c) see it: the
 * maxmemory-policy check made on every new connection (an evicting policy
 * would delete job records, leases and queues when Redis is full: refused
 * unless config redis_allow_eviction), and which error replies mean "Redis
 * refuses writes". Uses the connection it is given, nothing else of the
 * store. Declarations and contracts in store_internal.h.
 */
#include "store_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

bool store_is_write_refusal(const char *msg)
{
    return strncmp(msg, "OOM ", 4) == 0 || strncmp(msg, "MISCONF ", 8) == 0;
}

/* The value of "field:" in an INFO text into out (len bytes); false if absent. */
static bool info_field(const char *info, const char *field, char *out, size_t len)
{
    size_t flen = strlen(field);
    for (const char *p = info; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, field, flen) == 0 && p[flen] == ':') {
            size_t n = strcspn(p + flen + 1, "\r\n");
            snprintf(out, len, "%.*s", (int)n, p + flen + 1);
            return true;
        }
    }
    return false;
}

/* Warns once per process (several handles, reconnects). */
static void warn_once(atomic_bool *done, const char *event, const char *detail)
{
    if (!atomic_exchange(done, true))
        log_warn(event, "%s", detail);
}

int store_check_policy(struct store *st, redisContext *c, char *why, size_t len)
{
    static atomic_bool warned_unread, warned_allowed;
    st->policy_refused = false;
    redisReply *r = redisCommand(c, "INFO memory");
    if (!r) {
        snprintf(why, len, "%s", c->errstr[0] ? c->errstr : "INFO failed");
        return -1;
    }
    char policy[64] = "";
    bool read = r->type == REDIS_REPLY_STRING;
    if (read)
        read = info_field(r->str, "maxmemory_policy", policy, sizeof policy);
    freeReplyObject(r);
    if (!read) {
        warn_once(&warned_unread, "redis_policy_unknown",
                  "reason=\"INFO memory gave no maxmemory_policy: cannot check that Redis "
                  "never evicts keys\"");
        return 0;
    }
    bool evicts = strncmp(policy, "allkeys-", 8) == 0 || strncmp(policy, "volatile-", 9) == 0;
    if (!evicts)
        return 0;
    if (st->allow_eviction) {
        char detail[200];
        snprintf(detail, sizeof detail, "maxmemory_policy=%s reason=\"redis_allow_eviction is "
                 "true: a full Redis may delete job records, leases and queues\"", policy);
        warn_once(&warned_allowed, "redis_eviction_allowed", detail);
        return 0;
    }
    snprintf(why, len, "Redis maxmemory-policy is %s: a full Redis would delete job records, "
             "leases and queues; set maxmemory-policy noeviction (or config "
             "redis_allow_eviction true to run anyway)", policy);
    st->policy_refused = true;
    return -1;
}
