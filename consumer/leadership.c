/*
 * leadership.c: the leader lease's validity as this process can know it
 * (see leadership.h). One atomic deadline in struct consumer, written by
 * the dispatcher, read by every thread that acts as the leader.
 */
#include "leadership.h"

#include <time.h>

#include "consumer.h"

long long leadership_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void leadership_renewed(struct consumer *c, long long sent_ms)
{
    long long lease = c->cfg->lease_ms;
    atomic_store(&c->leader_valid_until_ms, sent_ms + lease - lease / 4);
}

void leadership_dropped(struct consumer *c)
{
    atomic_store(&c->leader_valid_until_ms, 0);
}

bool leader_valid_now(struct consumer *c)
{
    return leadership_clock_ms() < atomic_load(&c->leader_valid_until_ms);
}
