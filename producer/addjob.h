/*
 * addjob.h: validation of an addJob body (docs/api.md "addJob body") into a job
 * record. Every problem found is reported, in one message naming each field.
 */
#ifndef TANGO_PRODUCER_ADDJOB_H
#define TANGO_PRODUCER_ADDJOB_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "callback_allow.h"
#include "config.h"
#include "job.h"

/* What the caller's key may run. */
struct addjob_rights {
    const json_t *images;  /* local image names (app_usable_images) */
    const json_t *repos;   /* build repositories it owns (app_owned_repos; NULL: none):
                            * a build_push_to reference by tag */
    const json_t *digests; /* digests its builds pushed (store_pushed_digests; NULL:
                            * none): a build_push_to reference with a digest */
};

/* body: the request JSON; rights: what the caller's key may run;
 * courselabs/lab_dir: where localFiles must be; callbacks: which hosts a
 * callback URL may name (checked without DNS; the consumer checks the
 * resolved address again). Returns a new job, or NULL with the reasons in
 * err. */
struct job *addjob_parse(const char *body, size_t len, const struct tango_config *cfg,
                         const struct addjob_rights *rights,
                         const struct callback_policy *callbacks,
                         const char *courselab, const char *lab_dir, char *err, size_t errlen);
/* Sets a parsed job's class (its "priority" field, else the first matching
 * priority_rules entry, else normal), its share group (fair_share rule on
 * its courselab or job->key_id, which must be set) and its queue cap
 * (max_queued_per_course). */
void addjob_schedule(struct job *job, const struct tango_config *cfg);
/* Whether the job's record, as store_add_job writes it, fits
 * max_job_record_kb (every record is kept in Redis until dead_jobs_keep
 * newer ones push it out, and /jobs answers it); if not, false with err
 * naming its size and the limit. */
bool addjob_fits(const struct job *job, const struct tango_config *cfg, char *err,
                 size_t errlen);

#endif
