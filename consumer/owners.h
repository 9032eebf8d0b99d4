/*
 * owners.h: who owns an instance, as one clean-up pass of the reaper reads
 * it from the store: the consumers that still heartbeat, and the instance
 * names live job records hold. Each part is read once per pass, when first
 * asked; a part that cannot be read (Redis down, too many live jobs to
 * list) answers "owned", so in doubt nothing is destroyed. One pass, one
 * thread: not shared.
 */
#ifndef TANGO_CONSUMER_OWNERS_H
#define TANGO_CONSUMER_OWNERS_H

#include <stdbool.h>
#include <jansson.h>

#include "store.h"

struct owners {
    bool tokens_loaded, tokens_ok;
    json_t *tokens; /* object: 8-char token prefix of each live consumer -> true */
    bool names_loaded, names_ok;
    json_t *names;  /* object: instance name a live record names -> true */
};

/* Whether the consumer whose token prefix ends the instance name
 * (<...>-<token8>) still heartbeats (consumers:seen:<token>). */
bool owners_heartbeats(struct owners *o, struct store *st, const char *name);

/* Whether a live job's record (queued .. finishing) names the instance. */
bool owners_record_names(struct owners *o, struct store *st, const char *name);

/* Frees what the pass read; o may be reused as a fresh {0}. */
void owners_free(struct owners *o);

#endif
