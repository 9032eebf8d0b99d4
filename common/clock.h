/*
 * clock.h: the one source of time for the services and plugins.
 * Monotonic time for timeouts and durations; wall time only where several
 * processes must agree (lease expiries, callback due times in Redis).
 */
#ifndef TANGO_CLOCK_H
#define TANGO_CLOCK_H

#include <time.h>

/* Milliseconds on the monotonic clock (never jumps). */
long long clock_mono_ms(void);
/* Milliseconds since the epoch (shared across processes and hosts). */
long long clock_wall_ms(void);
/* The time ms milliseconds from now on clock clk (CLOCK_MONOTONIC or
 * CLOCK_REALTIME), as the deadline pthread_cond_timedwait takes on a
 * condition variable that uses clk. */
struct timespec clock_after_ms(clockid_t clk, long ms);
/* Sleeps ms milliseconds, resuming after signals. */
void clock_sleep_ms(long ms);

#endif
