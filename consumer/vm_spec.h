/*
 * vm_spec.h: what instance a job needs. The one place a job (a new one, or
 * one read back from its Redis record) becomes a struct vmms_vm, each limit
 * the job leaves unset taken from the config, and the one rule for whether
 * a ready instance (a warm pool's) can serve such a spec. A warm pool's own
 * spec is the spec of a job that asks for nothing but its cores and memory
 * (pool.c). Calls nothing else in consumer/.
 */
#ifndef TANGO_CONSUMER_VM_SPEC_H
#define TANGO_CONSUMER_VM_SPEC_H

#include <stdbool.h>

#include "config.h"
#include "job.h"
#include "vmms.h"

/* The instance job needs, into *vm (zeroed first): job's image; its cores,
 * memory_mb and disk_mb, each 0 replaced by cfg's default_cores,
 * default_memory_mb and disk_limit_mb; cfg's pids_limit; the network
 * unless job->disable_network; job's instance_type ("" when none). No
 * name, id or host: the instance is not named yet. */
void vm_spec_of_job(const struct tango_config *cfg, const struct job *job, struct vmms_vm *vm);

/* The instance an adopted job's record names: vm_spec_of_job's spec with
 * the record's vm_name, vm_id and vm_host ("" for each it lacks). */
void vm_spec_of_record(const struct tango_config *cfg, const struct job *job,
                       struct vmms_vm *vm);

/* Whether the instance have can serve a job whose spec is want: the same
 * image and every limit equal (cores, memory_mb, disk_mb, pids_limit,
 * network, instance_type). Names, ids and hosts are not compared; neither
 * is the image's id (pool.c checks that). */
bool vm_spec_fits(const struct vmms_vm *have, const struct vmms_vm *want);

#endif
