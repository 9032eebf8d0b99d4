/*
 * jobstate.c: the job state machine's table and the Redis Functions library
 * built from it (see jobstate.h). The table below is the one source: the
 * Lua functions read it through the generated prelude, the state
 * table of docs/design.md is checked against it, and tests/unit/test_jobstate.c drives every
 * (from, to) pair through real Redis against it.
 */
#include "jobstate.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"

static const char *const state_names[JOB_NSTATES] = {
    [JOB_QUEUED] = "queued",       [JOB_LEASED] = "leased", [JOB_RUNNING] = "running",
    [JOB_FINISHING] = "finishing", [JOB_DONE] = "done",     [JOB_CANCELLED] = "cancelled",
    [JOB_DEAD_LETTER] = "dead-letter",
};

#define Q JS_BIT(JOB_QUEUED)
#define L JS_BIT(JOB_LEASED)
#define R JS_BIT(JOB_RUNNING)
#define FIN JS_BIT(JOB_FINISHING)

/* Every transition of a job. Keys are keys.h names (a family by its
 * prefix, e.g. "partial:"); test_jobstate.c checks each one exists. */
static const struct jobstate_transition transitions[] = {
    {"add", JS_NONE, JOB_QUEUED, JS_PRODUCER,
     "job:lastid jobs:live jobs:live:ids queue:c: queue:ring: queue:sched queue:since queue:wake "
     "counters",
     "a producer accepts a job: new id, record, end of its class and share group's queue"},
    {"lease", Q, JOB_LEASED, JS_LEADER,
     "control:paused queue:c: queue:ring: queue:deficit: queue:weights queue:since queue:sched "
     "queue:promote:at "
     "queue:leased leases lease:owner lease:fence lease:fence:seq running:ids running:count "
     "jobs:live counters",
     "the leader takes the next job under the scheduling rule; new lease and fence"},
    {"take", Q, JOB_LEASED, JS_LEADER,
     "queue:c: queue:ring: queue:since queue:sched queue:pending queue:leased leases lease:owner "
     "lease:fence lease:fence:seq running:ids running:count jobs:live",
     "the leader takes a given queued job out of the queue (to cancel it)"},
    {"start", L, JOB_RUNNING, JS_OWNER, "jobs:live",
     "the owner names the instance it runs the job in"},
    {"save", R, JS_SAME, JS_OWNER, "jobs:live",
     "the owner records progress: trace, instance, run handle and deadline"},
    {"adopt", L | R | FIN, JS_SAME, JS_LEADER,
     "leases lease:owner lease:fence lease:fence:seq running:ids running:count queue:sched "
     "jobs:live",
     "the leader takes over a job whose lease lapsed; new lease and fence"},
    {"requeue", L | R | FIN, JOB_QUEUED, JS_OWNER,
     "jobs:live queue:leased leases lease:owner lease:fence running:ids running:count queue:c: "
     "queue:ring: queue:sched queue:since queue:wake partial: counters",
     "back to the head of its group's queue (a retry, no capacity, a drain, an accepted output "
     "file found gone)"},
    {"restore", Q, JS_SAME, JS_LEADER,
     "jobs:live queue:leased leases lease:owner lease:fence running:ids running:count "
     "queue:sched queue:c: queue:ring: queue:since queue:wake queue:pending",
     "a queued job whose id is in queue:leased with no valid lease (tango_adopt) goes back to "
     "the head of its group's queue (queue:pending without a group) unless already queued"},
    {"finish", L | R | FIN, JOB_FINISHING, JS_OWNER, "jobs:live",
     "the owner's output file is written (under a temp name) and accepted"},
    {"done", FIN, JOB_DONE, JS_OWNER,
     "jobs:live jobs:live:ids jobs:dead jobs:dead:ids queue:leased leases lease:owner "
     "lease:fence running:ids running:count queue:sched partial: cancels "
     "counters callbacks:due callbacks:wake",
     "the output file is in place: the job ends, its callback is queued"},
    {"cancelled", FIN, JOB_CANCELLED, JS_OWNER,
     "jobs:live jobs:live:ids jobs:dead jobs:dead:ids queue:leased leases lease:owner "
     "lease:fence running:ids running:count queue:sched partial: cancels "
     "counters callbacks:due callbacks:wake",
     "as done, for a job ended by a cancellation request"},
    {"deadletter", JS_ANY, JOB_DEAD_LETTER, JS_LEADER,
     "jobs:live jobs:live:ids jobs:deadletter jobs:dead jobs:dead:ids queue:c: queue:ring: "
     "queue:sched queue:pending queue:leased leases lease:owner lease:fence running:ids "
     "running:count",
     "a record that cannot be read is set aside, visible in /jobs/KEY/1/"},
};
#define NTRANSITIONS (sizeof transitions / sizeof *transitions)

const char *job_state_name(enum job_state s)
{
    return (unsigned)s < JOB_NSTATES ? state_names[s] : "unknown";
}

int job_state_parse(const char *name, enum job_state *out)
{
    for (unsigned i = 0; i < JOB_NSTATES; i++)
        if (name && strcmp(name, state_names[i]) == 0) {
            *out = (enum job_state)i;
            return 0;
        }
    return -1;
}

const struct jobstate_transition *jobstate_transitions(size_t *n)
{
    *n = NTRANSITIONS;
    return transitions;
}

const struct jobstate_transition *jobstate_find(const char *name)
{
    for (size_t i = 0; i < NTRANSITIONS; i++)
        if (strcmp(transitions[i].name, name) == 0)
            return &transitions[i];
    return NULL;
}

int jobstate_allowed(unsigned from_bit, int to)
{
    for (size_t i = 0; i < NTRANSITIONS; i++) {
        const struct jobstate_transition *t = &transitions[i];
        if (!(t->from & from_bit))
            continue;
        if (t->to == to)
            return 1;
        if (t->to == JS_SAME && from_bit != JS_NONE && JS_BIT(to) == from_bit)
            return 1;
    }
    return 0;
}

const char *jobstate_actor_name(enum jobstate_actor who)
{
    switch (who) {
    case JS_PRODUCER: return "producer";
    case JS_LEADER: return "leader";
    case JS_OWNER: return "owner";
    }
    return "?";
}

/* jobstate.lua, linked in as bytes (NUL-terminated). */
__asm__(".section .rodata\n"
        ".global tango_jobstate_lua\n"
        "tango_jobstate_lua:\n"
        ".incbin \"common/jobstate.lua\"\n"
        ".byte 0\n"
        ".previous\n");
extern const char tango_jobstate_lua[];

static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static char *library_text;
static size_t library_len;
static char library_version[17];

/* The library's text as it is built (grows; an allocation failure aborts,
 * as there is no library without it). */
struct text {
    char *buf;
    size_t len, cap;
};

static void append(struct text *t, const char *s)
{
    size_t n = strlen(s);
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->buf = realloc(t->buf, t->cap);
        if (!t->buf)
            abort();
    }
    memcpy(t->buf + t->len, s, n + 1);
    t->len += n;
}

static void appendf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void appendf(struct text *t, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    append(t, line);
}

/* Lower-case a KEY tag for Lua: JOBS_LIVE -> jobs_live. */
static void lua_ident(const char *tag, char *out, size_t outlen)
{
    size_t i = 0;
    for (; tag[i] && i + 1 < outlen; i++)
        out[i] = (char)(tag[i] >= 'A' && tag[i] <= 'Z' ? tag[i] - 'A' + 'a' : tag[i]);
    out[i] = '\0';
}

/* K: every key name of keys.h, by its tag in lower case. */
static void prelude_keys(struct text *t)
{
    append(t, "local K = {\n");
#define TANGO_KEY_LUA(tag, name, what)                                      \
    {                                                                       \
        char id_[64];                                                       \
        lua_ident(#tag, id_, sizeof id_);                                   \
        appendf(t, "  %s = '%s',\n", id_, name);                            \
    }
    TANGO_KEY_TABLE(TANGO_KEY_LUA)
#undef TANGO_KEY_LUA
    append(t, "}\n");
}

/* STATES (in enum order), then the class table fairshare.c owns (CLASSES,
 * CLASS_OK, DEFAULT_CLASS). */
static void prelude_names(struct text *t)
{
    append(t, "local STATES = {");
    for (unsigned s = 0; s < JOB_NSTATES; s++)
        appendf(t, "%s'%s'", s ? ", " : "", state_names[s]);
    append(t, "}\n");
    char classes[512];
    if (fairshare_lua_prelude(classes, sizeof classes) >= sizeof classes)
        abort(); /* the class table outgrew the buffer: no library without it */
    append(t, classes);
}

/* T: each transition's actor, end state (false: unchanged) and the set of
 * states it starts from ('none': a new job, '*': any). */
static void prelude_transitions(struct text *t)
{
    append(t, "local T = {\n");
    for (size_t i = 0; i < NTRANSITIONS; i++) {
        const struct jobstate_transition *tr = &transitions[i];
        if (tr->to == JS_SAME)
            appendf(t, "  %s = {who = '%s', to = false, from = {", tr->name,
                    jobstate_actor_name(tr->who));
        else
            appendf(t, "  %s = {who = '%s', to = '%s', from = {", tr->name,
                    jobstate_actor_name(tr->who), state_names[tr->to]);
        for (unsigned s = 0; s < JOB_NSTATES; s++)
            if (tr->from & JS_BIT(s))
                appendf(t, "['%s'] = true, ", state_names[s]);
        if (tr->from & JS_NONE)
            append(t, "['none'] = true, ");
        append(t, tr->from == JS_ANY ? "['*'] = true}},\n" : "}},\n");
    }
    append(t, "}\n");
}

/* library_version: the first 8 bytes of the SHA-256 of the text, in hex. */
static void set_version(const struct text *t)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_Digest(t->buf, t->len, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 8; i++)
        snprintf(library_version + 2 * i, 3, "%02x", md[i]);
}

static void build_library(void)
{
    struct text t = {NULL, 0, 0};
    append(&t, "#!lua name=tango\n-- generated from common/jobstate.c and keys.h\n");
    prelude_keys(&t);
    prelude_names(&t);
    prelude_transitions(&t);
    append(&t, tango_jobstate_lua);
    /* The version is a digest of everything above, and the library returns
     * it from tango_version. */
    set_version(&t);
    appendf(&t,
            "\nredis.register_function{function_name = 'tango_version', "
            "callback = function() return '%s' end, flags = {'no-writes'}}\n",
            library_version);
    library_text = t.buf;
    library_len = t.len;
}

const char *jobstate_library(size_t *len)
{
    pthread_once(&library_once, build_library);
    if (len)
        *len = library_len;
    return library_text;
}

const char *jobstate_library_version(void)
{
    pthread_once(&library_once, build_library);
    return library_version;
}
