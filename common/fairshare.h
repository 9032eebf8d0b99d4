/*
 * fairshare.h: the fair-share scheduler's rules, in one place
 * (docs/design.md "Fair share and priorities"). fairshare.c owns the
 * scheduling parameters: the priority classes and their serving order, the
 * default class, the share-group modes (fair_share), the priority_rules
 * and course_weights shapes and bounds, and how one job is classified
 * (class and share group). The Redis Functions library (jobstate.lua)
 * carries the schedule out: it serves classes in order and the groups of
 * a class by weighted round-robin, FIFO within a group, and reads the
 * class table from the prelude this module writes, so the C and Lua sides
 * can never disagree. Everything here is pure: no Redis, no I/O.
 *
 * The functions keep their jobstate_ names (config.c and producer/addjob.c
 * call them; jobstate.h includes this header for them).
 */
#ifndef TANGO_FAIRSHARE_H
#define TANGO_FAIRSHARE_H

#include <stddef.h>
#include <jansson.h>

struct job;
struct tango_config;

/* The priority classes, in serving order. */
enum job_class { JOB_CLASS_HIGH, JOB_CLASS_NORMAL, JOB_CLASS_LOW };
#define JOB_NCLASSES 3
/* The class of a job that names none and matches no priority rule. */
#define JOB_CLASS_DEFAULT JOB_CLASS_NORMAL
#define JOB_GROUP_MAX 128 /* a share group's name fits in this many bytes (NUL included) */
#define JOB_CLASS_NAME_MAX 8 /* a class's name fits in this many bytes (NUL included) */
/* The share group of a job whose mode gives none (fair_share "off" too). */
#define JOB_GROUP_ALL "all"
/* course_weights' bounds; a group not listed weighs 1 (jobstate.lua). */
#define FAIRSHARE_WEIGHT_MIN 1
#define FAIRSHARE_WEIGHT_MAX 1000000

/* "high", "normal", "low"; NULL out of range. */
const char *jobstate_class_name(enum job_class k);
/* The class named exactly name, or -1 (NULL: -1). */
int jobstate_class_parse(const char *name);
/* The share group of a job under fair_share mode: "course" the courselab
 * before its last '-' (the whole name if it has none, or only a leading
 * one), "lab" the courselab, "key" the owner's key id (an HMAC, never the
 * key), "off" one group "all". Writes it into out (JOB_GROUP_MAX bytes;
 * a longer name is cut); returns -1 for an unknown mode or an empty input. */
int jobstate_share_group(const char *mode, const char *courselab, const char *key_id, char *out,
                         size_t len);
/* The class the first matching priority_rules entry gives ({"lab": glob or
 * exact courselab, "class"} or {"key": key id, "class"}), or -1 if none. */
int jobstate_rule_class(const json_t *rules, const char *courselab, const char *key_id);
/* Checks fair_share, priority_rules and course_weights (weights are numbers
 * from FAIRSHARE_WEIGHT_MIN to _MAX); -1 with a message naming the key in
 * err. */
int jobstate_sched_check(const char *fair_share, const json_t *rules, const json_t *weights,
                         char *err, size_t errlen);
/* Where a stored job queues under cfg: its class (its priority field when
 * that names a class, else the first matching priority rule, else
 * JOB_CLASS_DEFAULT) into cls (JOB_CLASS_NAME_MAX bytes) and its share
 * group (its shareGroup field when set, else cfg's fair_share mode, else
 * JOB_GROUP_ALL) into grp (JOB_GROUP_MAX bytes). */
void fairshare_classify(const struct tango_config *cfg, const struct job *job, char *cls,
                        char *grp);
/* Writes the Lua prelude of the class table into out (len bytes, cut if
 * short): CLASSES (in serving order), CLASS_OK (the names as a set) and
 * DEFAULT_CLASS. Returns the length it needed, as snprintf. */
size_t fairshare_lua_prelude(char *out, size_t len);

#endif
