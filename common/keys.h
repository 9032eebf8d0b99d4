/*
 * keys.h: every Redis key this service uses, in one table. A name is the
 * suffix after cfg->prefix; a name ending in ':' is a family whose members
 * carry a suffix (an id, a lab directory). The store builds keys only from
 * this table (store_key / store_keyf), the job-state Lua library gets the
 * same names through a generated prelude (jobstate.c), and the integration
 * tests read this file (tlib.KEYS). Columns: enum tag, name, what it holds.
 */
#ifndef TANGO_KEYS_H
#define TANGO_KEYS_H

#define TANGO_KEY_TABLE(X)                                                                   \
    X(JOB_LASTID,      "job:lastid",      "INCR counter for job ids (64-bit, never reused)")   \
    X(JOBS_LIVE,       "jobs:live",       "hash id -> job JSON (queued .. finishing)")         \
    X(JOBS_LIVE_IDS,   "jobs:live:ids",   "zset of live ids (score = id): /jobs order")        \
    X(JOBS_DEAD,       "jobs:dead",       "hash id -> job JSON (done, cancelled, dead-letter)") \
    X(JOBS_DEAD_IDS,   "jobs:dead:ids",   "zset of dead ids, trimmed to dead_jobs_keep")       \
    X(DEADLETTER,      "jobs:deadletter", "hash id -> raw text of records that cannot be read") \
    X(QUEUE_PENDING,   "queue:pending",   "legacy single FIFO of an older version; drained into queue:c: on load") \
    X(QUEUE_CLASS,     "queue:c:",        "queue:c:<class>:<group>: queued ids of one class and share group, FIFO") \
    X(QUEUE_RING,      "queue:ring:",     "queue:ring:<class>: share groups with queued jobs, round-robin order") \
    X(QUEUE_DEFICIT,   "queue:deficit:",  "queue:deficit:<class>: hash group -> deficit (weighted round-robin)") \
    X(QUEUE_SCHED,     "queue:sched",     "hash id -> <class>:<group> of every live job")                 \
    X(QUEUE_SINCE,     "queue:since",     "hash id -> when it was queued in its class (Redis time, ms)") \
    X(QUEUE_WEIGHTS,   "queue:weights",   "hash group -> course_weights weight (written by the leader)") \
    X(QUEUE_PROMOTE_AT, "queue:promote:at", "exists (1 s) after a lease scanned for jobs to promote") \
    X(QUEUE_WAKE,      "queue:wake",      "list (at most one entry) pushed when a job may be leasable (BLPOP)") \
    X(RUNNING_IDS,     "running:ids",     "set of ids counted in running:count (leased .. finishing)") \
    X(RUNNING_COUNT,   "running:count",   "hash <class>:<group> -> jobs leased, running or finishing") \
    X(QUEUE_LEASED,    "queue:leased",    "list of ids taken from the queues (leased .. finishing)")  \
    X(LEASES,          "leases",          "zset id -> lease expiry (Redis time, ms)")          \
    X(LEASE_OWNER,     "lease:owner",     "hash id -> owner token of the lease")               \
    X(LEASE_FENCE,     "lease:fence",     "hash id -> fencing token of the current lease")     \
    X(FENCE_SEQ,       "lease:fence:seq", "INCR counter for fencing tokens")                   \
    X(LEADER,          "consumer:leader", "leader lease: value = owner token, PX expiry")      \
    X(LAB_FILES,       "lab:",            "lab:<labdir>:files hash name -> md5 (at upload)")   \
    X(COUNTERS,        "counters",        "hash of the /info counters")                        \
    X(STARTED,         "started",         "unix seconds when the service first started")       \
    X(IMAGES,          "images",          "JSON {\"images\": [...]} published by the consumer") \
    X(IMAGE_OWNERS,    "images:owners",   "hash image repository (name without tag) -> keyId of the key that built it (/build)") \
    X(POOLS_WANTED,    "pools:wanted",    "hash image -> {size, cores, memory}")               \
    X(POOLS_STATE,     "pools:state",     "hash image -> {total: [..], free: [..]}")           \
    X(PARTIAL,         "partial:",        "partial:<id>: partial output of a running job")     \
    X(PARTIAL_WANT,    "partial:want:",   "partial:want:<id>: someone asked lately (expiring)") \
    X(BUILD_LASTID,    "build:lastid",    "INCR counter for build ids")                        \
    X(BUILDS_QUEUE,    "builds:queue",    "list of build JSON queued by producers")            \
    X(BUILD_RESULT,    "build:result:",   "build:result:<id>: {ok, message}")                  \
    X(IMGBUILDS,       "imgbuilds",       "hash id -> /build_image record JSON {id, keyId, image, state, statusId, message, log, ..}") \
    X(IMGBUILDS_QUEUE, "imgbuilds:queue", "list of /build_image ids approved and waiting for a consumer's builder") \
    X(IMGBUILDS_RUNNING, "imgbuilds:running", "hash /build_image id -> token of the consumer building it") \
    X(IMGBUILDS_DIGESTS, "imgbuilds:digests:", "imgbuilds:digests:<keyId>: set of the sha256 digests that key's /build_image builds pushed (build_push_to)") \
    X(IMGBUILDS_ENDED, "imgbuilds:ended", "zset of ended /build_image ids (score = id); past STORE_BUILDS_KEEP the oldest records go") \
    X(CALLBACKS_DUE,   "callbacks:due",   "zset callback JSON -> due time (Redis time, ms)")   \
    X(CALLBACKS_FAILED, "callbacks:failed", "list of callbacks given up")                      \
    X(CALLBACKS_WAKE,  "callbacks:wake",  "list pushed when a callback is queued (BLPOP)")     \
    X(CANCELS,         "cancels",         "set of job ids whose cancellation was requested") \
    X(CONSUMERS,       "consumers",       "set of consumer tokens with a heartbeat (tangoctl status)") \
    X(CONSUMER_SEEN,   "consumers:seen:", "consumers:seen:<token>: heartbeat JSON, PX expiry")  \
    X(PAUSED,          "control:paused",  "exists while leasing is paused: {by, since} (tangoctl)") \
    X(DRAIN,           "control:drain",   "owner token of the consumer asked to drain and exit") \
    X(REQUEUED,        "jobs:requeued",   "hash dead id -> the id tangoctl requeued it as (0: under way)") \
    X(HEALTH_PROBE,    "health:probe",    "written (PX 10 s) by a producer's /health, at most once a second, to see that Redis takes writes") \
    X(BACKEND_DOWN,    "backend:down:",   "backend:down:<vmms>: {vmms, since, reason, consumer} while a consumer cannot reach that back end (PX expiry, refreshed)")

enum store_key_id {
#define TANGO_KEY_ENUM(tag, name, what) KEY_##tag,
    TANGO_KEY_TABLE(TANGO_KEY_ENUM)
#undef TANGO_KEY_ENUM
    KEY__COUNT
};

/* The name (suffix after the prefix) of key k; never NULL for a valid k. */
const char *store_key_name(enum store_key_id k);

#endif
