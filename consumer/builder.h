/*
 * builder.h: the consumer's Dockerfile builder (/build_image): cfg->
 * builds_at_once threads, each taking queued builds from Redis
 * (store_builds.c) and running them through the Docker Engine API's
 * POST /build on cfg->build_docker_socket with the build limits (time,
 * memory, log size). It also takes back builds whose consumer died. The
 * dispatcher, workers and job ends know nothing of it.
 */
#ifndef TANGO_CONSUMER_BUILDER_H
#define TANGO_CONSUMER_BUILDER_H

struct consumer;

/* Starts the builder threads (none when builds_at_once is 0). 0, or -1
 * when a thread cannot start. */
int builder_start(struct consumer *c);
/* Ends a build under way (it stays recorded as running: the next
 * consumer's recovery queues it again) and joins the threads. */
void builder_stop(struct consumer *c);

#endif
