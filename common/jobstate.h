/*
 * jobstate.h: the job's life, in one table. jobstate.c owns the list of
 * states, every allowed transition (its name, the states it may start from,
 * the state it ends in, who may make it and the Redis keys it touches) and
 * the Redis Functions library that carries the transitions out
 * (jobstate.lua, compiled into the binary, with the state, transition,
 * priority class (fairshare.h) and key tables prepended from C so the two
 * can never disagree). The `state` field of a
 * job record is written only by these functions, in the same atomic step
 * that moves the job between keys; a transition not in the table is refused
 * with an error naming both states.
 *
 *   state        where the job's id is                    record in
 *   queued       queue:c:<class>:<group> (its class, group) jobs:live
 *   leased       queue:leased + leases (an owner, fence)  jobs:live
 *   running      queue:leased + leases; vm and run set    jobs:live
 *   finishing    queue:leased + leases; output temp set   jobs:live
 *   done         -                                        jobs:dead
 *   cancelled    -                                        jobs:dead
 *   dead-letter  -   (raw text kept in jobs:deadletter)   jobs:dead
 *
 * Fencing: every lease grant takes a new fencing token (INCR
 * lease:fence:seq). Every write a consumer makes for a leased job names its
 * owner token and fence and is refused (STORE_STALE) when either is no
 * longer the lease's. Lease expiries and callback due times are Redis time
 * (TIME inside the functions), never a host's clock.
 */
#ifndef TANGO_JOBSTATE_H
#define TANGO_JOBSTATE_H

#include <stddef.h>
#include <jansson.h>

#include "fairshare.h" /* the priority classes and share groups (the scheduler's rules) */

/* A job's state (the table above). */
enum job_state {
    JOB_QUEUED = 0,
    JOB_LEASED,
    JOB_RUNNING,
    JOB_FINISHING,
    JOB_DONE,
    JOB_CANCELLED,
    JOB_DEAD_LETTER,  /* the record could not be read */
};
#define JOB_NSTATES (JOB_DEAD_LETTER + 1)

/* "queued", "leased", ... "dead-letter"; "unknown" out of range. */
const char *job_state_name(enum job_state s);
/* 0 and *out set when name is a state's exact name, else -1 (*out untouched). */
int job_state_parse(const char *name, enum job_state *out);

/* Bit of state s in a transition's `from` mask; JS_NONE: the job did not
 * exist yet (add), JS_ANY: any state, readable or not (dead-letter). */
#define JS_BIT(s) (1u << (s))
#define JS_NONE (1u << 30)
#define JS_ANY 0x3fffffffu
/* `to` of a transition that leaves the state as it was (save, adopt). */
#define JS_SAME (-1)

/* Who may make a transition: a producer, the consumer holding the leader
 * lease, or the consumer owning the job's lease (token + fence). */
enum jobstate_actor { JS_PRODUCER, JS_LEADER, JS_OWNER };

struct jobstate_transition {
    const char *name;   /* the Lua function is tango_<name> */
    unsigned from;      /* JS_BIT mask of the states it may start from */
    int to;             /* enum job_state, or JS_SAME */
    enum jobstate_actor who;
    const char *keys;   /* the keys it reads or writes, space-separated (keys.h names),
                         * besides those that check the caller (the leader lease,
                         * the job's lease owner and fence) */
    const char *what;   /* one line for the docs' table */
};

/* The table; n gets its length. Static storage. */
const struct jobstate_transition *jobstate_transitions(size_t *n);
/* The row named name, or NULL. */
const struct jobstate_transition *jobstate_find(const char *name);
/* Whether the table allows going from state `from` (JS_NONE for a new job)
 * to `to` through some transition. */
int jobstate_allowed(unsigned from_bit, int to);
const char *jobstate_actor_name(enum jobstate_actor who);

/* The Functions library to FUNCTION LOAD: "#!lua name=tango", the prelude
 * generated from the key, state, priority class and transition tables,
 * then jobstate.lua.
 * Static storage, built once (thread-safe). */
const char *jobstate_library(size_t *len);
/* A short hex digest of the library text; tango_version returns it, so a
 * store can tell whether Redis holds this build's library. */
const char *jobstate_library_version(void);

#endif
