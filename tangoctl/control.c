/*
 * control.c: tangoctl's service controls, all plain Redis keys the
 * consumers read with their heartbeat (dispatch.c, every 500 ms), so they
 * act without being reachable and the state survives a change of leader:
 *   pause / resume   control:paused exists: no consumer leases a new job
 *                    (running jobs go on; cancels still end queued jobs)
 *   drain            control:drain names one consumer's token (the
 *                    leader's unless --consumer): it drains as on SIGTERM
 *                    and exits; a successor's new token is never drained
 *   callbacks retry  callbacks:failed back to callbacks:due, due now
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

/* A drain request that no consumer acted on (it died) lapses after this. */
#define DRAIN_REQUEST_TTL_S 60


/* How many consumers have a live heartbeat (-1: cannot tell). */
static long consumers_alive(struct ctl *x)
{
    json_t *list = NULL;
    if (store_consumers(x->st, &list) != STORE_OK)
        return -1;
    long n = (long)json_array_size(list);
    json_decref(list);
    return n;
}

int cmd_pause(struct ctl *x, int argc, char **argv)
{
    const char *reason = NULL;
    if (argc == 3 && strcmp(argv[1], "--reason") == 0)
        reason = argv[2];
    else if (argc != 1)
        return ctl_fail(x, CTL_USAGE, "usage: pause [--reason TEXT]");
    char who[200];
    ctl_operator(who, sizeof who);
    json_t *info = json_pack("{s:s, s:f, s:s?}", "by", who, "since", ctl_now(), "reason", reason);
    bool was = false;
    int status = store_set_paused(x->st, info, &was);
    json_decref(info);
    if (status != STORE_OK)
        return ctl_store_fail(x, status, "pausing");
    long alive = consumers_alive(x);
    if (!ctl_emit_json(x, json_pack("{s:b, s:b, s:I}", "paused", 1, "wasPaused", was,
                                    "consumers", (json_int_t)alive)))
        printf("Leasing paused%s: no new job is leased; running jobs go on (tangoctl resume)%s\n",
               was ? " (it was paused already)" : "",
               alive == 0 ? ". No consumer is running: it applies when one starts" : "");
    return CTL_OK;
}

int cmd_resume(struct ctl *x, int argc, char **argv)
{
    (void)argv;
    if (argc != 1)
        return ctl_fail(x, CTL_USAGE, "resume takes no arguments");
    bool was = false;
    int status = store_set_paused(x->st, NULL, &was);
    if (status != STORE_OK)
        return ctl_store_fail(x, status, "resuming");
    if (!ctl_emit_json(x, json_pack("{s:b, s:b}", "paused", 0, "wasPaused", was)))
        printf("%s\n", was ? "Leasing resumed" : "Leasing was not paused: nothing to do");
    return CTL_OK;
}

int cmd_drain(struct ctl *x, int argc, char **argv)
{
    const char *want = NULL;
    if (argc == 3 && strcmp(argv[1], "--consumer") == 0 && argv[2][0])
        want = argv[2];
    else if (argc != 1)
        return ctl_fail(x, CTL_USAGE, "usage: drain [--consumer TOKEN] (a token or its prefix, "
                                      "as tangoctl status shows it)");
    char leader[64] = "";
    long long ttl = 0;
    int status = store_leader(x->st, leader, sizeof leader, &ttl);
    if (status != STORE_OK && status != STORE_NOT_FOUND)
        return ctl_store_fail(x, status, "reading the leader lease");
    json_t *list = NULL;
    if ((status = store_consumers(x->st, &list)) != STORE_OK)
        return ctl_store_fail(x, status, "reading the consumers' heartbeats");
    char target[64] = "";
    if (!want) {
        if (!leader[0]) {
            json_decref(list);
            return ctl_fail(x, CTL_REFUSED, "no consumer holds the leader lease: nothing to "
                                            "drain");
        }
        snprintf(target, sizeof target, "%s", leader);
    } else {
        int matches = 0;
        size_t i;
        json_t *c;
        json_array_foreach(list, i, c) {
            const char *t = json_string_value(json_object_get(c, "token"));
            if (t && strncmp(t, want, strlen(want)) == 0) {
                snprintf(target, sizeof target, "%s", t);
                matches++;
            }
        }
        if (matches != 1) {
            json_decref(list);
            return ctl_fail(x, CTL_REFUSED, "%s consumer has a token starting with \"%s\"",
                            matches ? "more than one" : "no running", want);
        }
    }
    bool is_leader = strcmp(target, leader) == 0;
    long others = (long)json_array_size(list) - 1;
    json_decref(list);
    if ((status = store_request_drain(x->st, target, DRAIN_REQUEST_TTL_S)) != STORE_OK)
        return ctl_store_fail(x, status, "requesting the drain");
    if (!ctl_emit_json(x, json_pack("{s:s, s:b, s:I}", "drainRequested", target, "leader",
                                    is_leader, "otherConsumers", (json_int_t)others)))
        printf("Asked consumer %.8s%s to drain: it leases nothing new, lets its running jobs "
               "finish (up to drain_timeout_s), hands the rest off and exits%s\n",
               target, is_leader ? " (the leader)" : "",
               !is_leader ? "" : others > 0 ? "; a standby takes over"
                                            : ". No standby is running: nothing leases jobs "
                                              "until a consumer starts");
    return CTL_OK;
}

int cmd_callbacks(struct ctl *x, int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[1], "retry") != 0)
        return ctl_fail(x, CTL_USAGE, "usage: callbacks retry");
    size_t moved = 0, unreadable = 0;
    int status = store_callbacks_requeue(x->st, &moved, &unreadable);
    if (status != STORE_OK)
        return ctl_store_fail(x, status, "moving the failed callbacks");
    if (!ctl_emit_json(x, json_pack("{s:I, s:I}", "moved", (json_int_t)moved, "unreadable",
                                    (json_int_t)unreadable)))
        printf("Moved %zu callback(s) from callbacks:failed back to callbacks:due (due now, "
               "attempts reset)%s\n", moved,
               unreadable ? "; some entries are not JSON and stay in callbacks:failed" : "");
    return CTL_OK;
}
