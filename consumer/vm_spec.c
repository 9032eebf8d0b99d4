/*
 * vm_spec.c: a job's instance spec and the rule for whether an instance
 * fits it (see vm_spec.h).
 */
#include "vm_spec.h"

#include <stdio.h>
#include <string.h>

void vm_spec_of_job(const struct tango_config *cfg, const struct job *job, struct vmms_vm *vm)
{
    memset(vm, 0, sizeof *vm);
    snprintf(vm->image, sizeof vm->image, "%s", job->image ? job->image : "");
    vm->cores = job->cores ? job->cores : cfg->default_cores;
    vm->memory_mb = job->memory_mb ? job->memory_mb : cfg->default_memory_mb;
    vm->disk_mb = job->disk_mb ? job->disk_mb : cfg->disk_limit_mb;
    vm->pids_limit = cfg->pids_limit;
    vm->network = !job->disable_network;
    snprintf(vm->instance_type, sizeof vm->instance_type, "%s",
             job->instance_type ? job->instance_type : "");
}

void vm_spec_of_record(const struct tango_config *cfg, const struct job *job,
                       struct vmms_vm *vm)
{
    vm_spec_of_job(cfg, job, vm);
    snprintf(vm->name, sizeof vm->name, "%s", job->vm_name ? job->vm_name : "");
    snprintf(vm->id, sizeof vm->id, "%s", job->vm_id ? job->vm_id : "");
    snprintf(vm->host, sizeof vm->host, "%s", job->vm_host ? job->vm_host : "");
}

bool vm_spec_fits(const struct vmms_vm *have, const struct vmms_vm *want)
{
    return strcmp(have->image, want->image) == 0 && have->cores == want->cores &&
           have->memory_mb == want->memory_mb && have->disk_mb == want->disk_mb &&
           have->pids_limit == want->pids_limit && have->network == want->network &&
           strcmp(have->instance_type, want->instance_type) == 0;
}
