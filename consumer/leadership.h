/*
 * leadership.h: whether this consumer may act as the leader right now.
 *
 * The leader lease is Redis's (consumer:leader, PX lease_ms), renewed by the
 * dispatcher every lease_ms / 3. Its holder only knows it held the lease
 * from the moment it SENT the last renewal that succeeded: Redis may have
 * applied it later, never earlier. A process that stalls (a paused VM, a
 * SIGSTOP, a swap storm) wakes up with c->leader still true while another
 * consumer may have led for a while, so every destructive act of the leader
 * (destroying an instance, removing a file no live job owns) asks
 * leader_valid_now() right before it acts. Leadership is valid only while
 *     now < sent + lease_ms - margin,   margin = lease_ms / 4
 * on CLOCK_BOOTTIME (a monotonic clock that also counts time the machine
 * was suspended; a stopped process's clock runs on too). The margin covers
 * the time one destroy takes once it has been allowed to start.
 */
#ifndef TANGO_CONSUMER_LEADERSHIP_H
#define TANGO_CONSUMER_LEADERSHIP_H

#include <stdbool.h>

struct consumer;

/* Milliseconds on the leadership clock (CLOCK_BOOTTIME). */
long long leadership_clock_ms(void);

/* The dispatcher's renewal that was sent at sent_ms (leadership_clock_ms
 * taken just before sending it) succeeded: leadership is valid until
 * sent_ms + lease_ms - margin. */
void leadership_renewed(struct consumer *c, long long sent_ms);

/* Leadership ended (lost, lapsed, released): invalid from now on. */
void leadership_dropped(struct consumer *c);

/* Whether this consumer certainly still holds the leader lease now (see
 * the top of the file). Thread-safe; call it right before each act. */
bool leader_valid_now(struct consumer *c);

#endif
