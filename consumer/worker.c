/*
 * worker.c: one thread per running job. Walks the job through the VMMS
 * steps (get an instance, wait, copy in, run, copy out, destroy), records
 * each step in the job's trace before acting, and ends the job exactly once:
 * finished with its outcome, or requeued for another try after an
 * infrastructure failure, or finished with the internal-error output when
 * the retry budget is spent.
 */
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "consumer.h"
#include "labs.h"
#include "log.h"
#include "output_file.h"
#include "pool.h"
#include "clock.h"

#define NOT_RUN INT_MIN
#define POOL_CHECK_S 5
#define CANCELLED_OUTCOME "Error: Job cancelled by request"

struct run_state {
    struct consumer *c;
    struct held_job *h;
    struct store *st;
    struct job *job;
    struct vmms_vm vm;
    bool have_vm;
    bool from_pool;
    int waitvm, copyin, runjob, copyout; /* step results for the status line */
    char feedback[PATH_MAX];
    bool lost;                           /* another owner has the job now */
    const char *const *counters;         /* bumped by finish */
    size_t ncounters;
};

/* Store calls from a worker wait out a Redis outage instead of failing the
 * job; NOT_FOUND means the lease is gone (drained or taken over). */
static int persist(struct run_state *rs, int (*fn)(struct run_state *))
{
    for (int delay = 200;; delay = delay < 5000 ? delay * 2 : 5000) {
        int status = fn(rs);
        if (status == STORE_OK)
            return 0;
        if (status == STORE_NOT_FOUND) {
            rs->lost = true;
            log_warn("job_lease_lost", "id=%lld", (long long)rs->job->id);
            return -1;
        }
        if (atomic_load(&rs->c->stopping))
            return -1;
        log_warn("job_store_retry", "id=%lld error=\"%s\"", (long long)rs->job->id,
                 store_error(rs->st));
        usleep((useconds_t)delay * 1000);
    }
}

static int do_save(struct run_state *rs)
{
    return store_job_save(rs->st, rs->c->token, rs->job);
}

static void trace(struct run_state *rs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void trace(struct run_state *rs, const char *fmt, ...)
{
    char event[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(event, sizeof event, fmt, ap);
    va_end(ap);
    job_trace(rs->job, event);
}

static void release_vm(struct run_state *rs)
{
    if (!rs->have_vm)
        return;
    char err[256] = "";
    if (rs->c->ops->safe_destroy_vm(rs->c->vctx, &rs->vm, err, sizeof err) != VMMS_OK)
        log_warn("vm_destroy_failed", "id=%lld vm=%s error=\"%s\"", (long long)rs->job->id,
                 rs->vm.name, err);
    if (rs->from_pool)
        pool_release(rs->c->pool, rs->vm.name);
    rs->have_vm = false;
}

static int do_requeue(struct run_state *rs)
{
    return store_job_requeue(rs->st, rs->c->token, rs->job, true);
}

static int do_requeue_no_retry(struct run_state *rs)
{
    return store_job_requeue(rs->st, rs->c->token, rs->job, false);
}

static int do_finish(struct run_state *rs)
{
    json_t *cb = NULL;
    if (rs->job->callback_url) {
        char path[PATH_MAX];
        output_file_path(rs->c->cfg->courselabs, rs->job, path);
        cb = json_pack("{s:I, s:s, s:s, s:s, s:i}", "job", (json_int_t)rs->job->id, "url", rs->job->callback_url,
                       "path", path, "name", rs->job->output_file, "attempts", 0);
        char idbuf[80];
        snprintf(idbuf, sizeof idbuf, "%lld-%lld", (long long)rs->job->id, (long long)time(NULL));
        json_object_set_new(cb, "id", json_string(idbuf));
    }
    int status = store_job_finish(rs->st, rs->c->token, rs->job, rs->counters, rs->ncounters, cb);
    json_decref(cb);
    return status;
}

/* Ends the job with an outcome: output file, then the atomic move to dead. */
static void finish(struct run_state *rs, const char *outcome, const char *detail,
                   const char *const *counters, size_t ncounters)
{
    struct job *job = rs->job;
    free(job->outcome);
    job->outcome = strdup(outcome);
    job->state = atomic_load(&rs->h->cancel) && strcmp(outcome, CANCELLED_OUTCOME) == 0
                     ? JOB_CANCELLED : JOB_DONE;
    trace(rs, "Job %s:%lld finished: %s", job->name, (long long)job->id, outcome);
    if (output_file_write(rs->c->cfg->courselabs, job, outcome, detail,
                          rs->feedback[0] ? rs->feedback : NULL, job->max_output_bytes)) {
        log_error("output_write_failed", "id=%lld errno=%d", (long long)job->id, errno);
    }
    rs->counters = counters;
    rs->ncounters = ncounters;
    if (persist(rs, do_finish) == 0)
        log_info("job_done", "id=%lld outcome=\"%s\" retries=%d", (long long)job->id, outcome,
                 job->retries);
}

/* Ends the job as cancelled if that was requested; true if it did. */
static bool end_if_cancelled(struct run_state *rs)
{
    if (!atomic_load(&rs->h->cancel))
        return false;
    release_vm(rs);
    rs->job->state = JOB_CANCELLED;
    finish(rs, CANCELLED_OUTCOME, NULL, NULL, 0);
    return true;
}

/* An infrastructure failure: retry within the budget, else internal error. */
static void reschedule(struct run_state *rs, const char *why, const char *counter)
{
    struct job *job = rs->job;
    if (end_if_cancelled(rs))
        return;
    release_vm(rs);
    trace(rs, "Job %s:%lld failed: %s", job->name, (long long)job->id, why);
    log_warn("job_failed", "id=%lld retries=%d reason=\"%s\"", (long long)job->id, job->retries,
             why);
    const char *counters[] = {counter};
    if (job->retries < rs->c->cfg->job_retries) {
        job->retries++;
        job->state = JOB_QUEUED;
        job->assigned = false;
        if (counter) /* the counter is bumped with the requeue's own write */
            store_incr_counter(rs->st, counter, 1);
        persist(rs, do_requeue);
        return;
    }
    char outcome[160], detail[200];
    snprintf(outcome, sizeof outcome,
             "Internal error: Unable to complete job after %d tries. Please resubmit",
             job->retries + 1);
    char s[4][16];
    int vals[4] = {rs->waitvm, rs->copyin, rs->runjob, rs->copyout};
    for (int i = 0; i < 4; i++)
        if (vals[i] == NOT_RUN)
            snprintf(s[i], sizeof s[i], "None");
        else
            snprintf(s[i], sizeof s[i], "%d", vals[i]);
    snprintf(detail, sizeof detail, "Job status: waitVM=%s copyIn=%s runJob=%s copyOut=%s", s[0],
             s[1], s[2], s[3]);
    rs->feedback[0] = '\0';
    finish(rs, outcome, detail, counters, counter ? 1 : 0);
}

static void fill_vm_spec(struct run_state *rs, struct vmms_vm *vm)
{
    const struct tango_config *cfg = rs->c->cfg;
    memset(vm, 0, sizeof *vm);
    snprintf(vm->image, sizeof vm->image, "%s", rs->job->image);
    vm->cores = rs->job->cores ? rs->job->cores : cfg->default_cores;
    vm->memory_mb = rs->job->memory_mb ? rs->job->memory_mb : cfg->default_memory_mb;
    vm->pids_limit = cfg->pids_limit;
    vm->network = !rs->job->disable_network;
}

static void run_steps(struct run_state *rs)
{
    struct consumer *c = rs->c;
    const struct vmms_ops *ops = c->ops;
    struct job *job = rs->job;
    char err[512] = "";
    double t0 = (double)clock_mono_ms();

    struct vmms_vm want;
    fill_vm_spec(rs, &want);
    pool_note_job(c->pool, job->image);
    rs->from_pool = pool_take(c->pool, &want, &rs->vm);
    if (rs->from_pool &&
        ops->wait_vm(c->vctx, &rs->vm, POOL_CHECK_S, err, sizeof err) != VMMS_OK) {
        /* A warm instance that died since (its host went down, someone
         * killed it): drop it and make a fresh one, at no retry's cost. */
        log_warn("pool_vm_stale", "id=%lld vm=%s error=\"%s\"", (long long)job->id,
                 rs->vm.name, err);
        rs->have_vm = true;
        release_vm(rs);
        rs->from_pool = false;
    }
    if (!rs->from_pool) {
        rs->vm = want;
        char tag[32];
        snprintf(tag, sizeof tag, "j%lld", (long long)job->id);
        consumer_vm_name(c, tag, rs->vm.name, sizeof rs->vm.name);
    }
    free(job->vm_name);
    job->vm_name = strdup(rs->vm.name);
    job->assigned = true;
    job->state = JOB_RUNNING;
    trace(rs, "Assigned job %s:%lld %s VM %s", job->name, (long long)job->id,
          rs->from_pool ? "existing" : "new", rs->vm.name);
    if (persist(rs, do_save) || end_if_cancelled(rs))
        return;

    if (!rs->from_pool) {
        int st = ops->initialize_vm(c->vctx, &rs->vm, err, sizeof err);
        if (st == VMMS_BUSY) {
            /* No capacity anywhere: back to the head of the queue, no retry. */
            log_warn("vmms_busy", "id=%lld reason=\"%s\"", (long long)job->id, err);
            job->state = JOB_QUEUED;
            job->assigned = false;
            trace(rs, "No worker host available: waiting in the queue");
            persist(rs, do_requeue_no_retry);
            atomic_store(&c->busy_until_ms, clock_mono_ms() + 1000);
            return;
        }
        rs->have_vm = true; /* even a half-made instance must be destroyed */
        if (st != VMMS_OK) {
            rs->waitvm = -1;
            char why[600];
            snprintf(why, sizeof why, "Internal error: initializeVM failed: %s", err);
            reschedule(rs, why, "waitvm_timeouts");
            return;
        }
        st = ops->wait_vm(c->vctx, &rs->vm, c->cfg->waitvm_timeout_s, err, sizeof err);
        rs->waitvm = st == VMMS_OK ? 0 : -1;
        if (st != VMMS_OK) {
            char why[600];
            snprintf(why, sizeof why, "Internal error: waitVM timeout after %d secs (%s)",
                     c->cfg->waitvm_timeout_s, err);
            reschedule(rs, why, "waitvm_timeouts");
            return;
        }
    } else {
        rs->have_vm = true;
        rs->waitvm = 0;
    }
    free(job->vm_id);
    job->vm_id = strdup(rs->vm.id);
    double t_ready = (double)clock_mono_ms();
    trace(rs, "VM %s ready for job %s:%lld (%.0f ms)", rs->vm.name, job->name, (long long)job->id,
          t_ready - t0);

    /* Copy in: input files from the lab directory. */
    struct vmms_file *files = calloc(job->nfiles + 1, sizeof *files);
    char (*paths)[PATH_MAX] = calloc(job->nfiles + 1, PATH_MAX);
    int bad = 0;
    for (size_t i = 0; i < job->nfiles; i++) {
        bad |= lab_path(c->cfg->courselabs, job->lab_dir, NULL, job->files[i].local_file, paths[i]);
        files[i].local_path = paths[i];
        files[i].dest_name = job->files[i].dest_file;
    }
    int st = bad ? VMMS_ERR
                 : ops->copy_in(c->vctx, &rs->vm, files, job->nfiles, c->cfg->copyin_timeout_s,
                                err, sizeof err);
    free(files);
    free(paths);
    rs->copyin = st == VMMS_OK ? 0 : -1;
    double t_in = (double)clock_mono_ms();
    trace(rs, "Input copied for job %s:%lld [status=%d] (%.0f ms)", job->name, (long long)job->id,
          rs->copyin, t_in - t_ready);
    if (st != VMMS_OK) {
        char why[600];
        snprintf(why, sizeof why, "Error: Copy in to VM failed (status=%d): %s", rs->copyin, err);
        reschedule(rs, why, "copyin_errors");
        return;
    }
    if (persist(rs, do_save) || end_if_cancelled(rs))
        return;

    /* Run. */
    struct vmms_run run = {
        .timeout_s = job->timeout_s,
        .max_output = job->max_output_bytes,
        .nproc = c->cfg->autodriver_nproc,
        .fsize = (long)c->cfg->autodriver_fsize_mb << 20,
    };
    pthread_mutex_lock(&c->lock);
    rs->h->vm = rs->vm;
    pthread_mutex_unlock(&c->lock);
    atomic_store(&rs->h->in_run, true);
    int status = -1;
    st = ops->run_job(c->vctx, &rs->vm, &run, &status, err, sizeof err);
    atomic_store(&rs->h->in_run, false);
    double t_run = (double)clock_mono_ms();
    if (end_if_cancelled(rs))
        return;
    rs->runjob = st == VMMS_OK ? status : -1;
    trace(rs, "Job %s:%lld executed [status=%d] (%.0f ms)", job->name, (long long)job->id,
          rs->runjob, t_run - t_in);
    if (st == VMMS_ERR) {
        char why[600];
        snprintf(why, sizeof why, "Error: OS error while running job on VM: %s", err);
        reschedule(rs, why, "runjob_errors");
        return;
    }

    /* Copy out the autodriver's output (also after a timeout: it may hold
     * what the grader printed before it was stopped). */
    snprintf(rs->feedback, sizeof rs->feedback, "%s/.feedback-%lld-%s", c->cfg->courselabs,
             (long long)job->id, c->token);
    int cst = ops->copy_out(c->vctx, &rs->vm, rs->feedback, c->cfg->copyout_timeout_s, err,
                            sizeof err);
    rs->copyout = cst == VMMS_OK ? 0 : -1;
    trace(rs, "Output copied for job %s:%lld [status=%d] (%.0f ms)", job->name,
          (long long)job->id, rs->copyout, (double)clock_mono_ms() - t_run);
    /* The instance is destroyed after the job has ended (worker_main), so
     * the student's result does not wait for it; its slot is freed now. */
    atomic_store(&rs->h->slot_free, true);

    if (st == VMMS_TIMEOUT || status == 2) {
        if (cst != VMMS_OK)
            rs->feedback[0] = '\0';
        char outcome[96];
        snprintf(outcome, sizeof outcome, "Error: Job timed out after %d seconds", job->timeout_s);
        const char *counters[] = {"runjob_timeouts", "runjob_errors"};
        finish(rs, outcome, NULL, counters, 2);
        return;
    }
    if (cst != VMMS_OK) {
        char why[600];
        snprintf(why, sizeof why, "Error: Copy out from VM failed (status=%d): %s", rs->copyout,
                 err);
        rs->feedback[0] = '\0';
        reschedule(rs, why, "copyout_errors");
        return;
    }
    if (status == 3) {
        /* Autodriver hit an OS error: the instance is suspect (already
         * destroyed, never reused); retry elsewhere within the budget. */
        if (job->retries < c->cfg->job_retries) {
            unlink(rs->feedback);
            rs->feedback[0] = '\0';
            reschedule(rs, "OS error while running job on VM", "runjob_errors");
            return;
        }
        const char *counters[] = {"runjob_errors"};
        finish(rs, "Error: OS error while running job on VM", NULL, counters, 1);
        return;
    }
    if (status != 0) {
        char outcome[96];
        snprintf(outcome, sizeof outcome, status == 1 ? "Error: Autodriver usage error (status=%d)"
                                                      : "Error: Unknown autodriver error (status=%d)",
                 status);
        const char *counters[] = {"runjob_errors"};
        finish(rs, outcome, NULL, counters, 1);
        return;
    }
    finish(rs, "Success: Autodriver returned normally", NULL, NULL, 0);
}

void *worker_main(void *arg)
{
    struct worker_arg *wa = arg;
    struct run_state rs = {.c = wa->c, .h = wa->h, .waitvm = NOT_RUN, .copyin = NOT_RUN,
                           .runjob = NOT_RUN, .copyout = NOT_RUN};
    free(wa);
    rs.st = store_new(rs.c->cfg);
    rs.job = rs.h->job;
    log_info("job_start", "id=%lld image=%s retries=%d", (long long)rs.job->id, rs.job->image,
             rs.job->retries);
    if (end_if_cancelled(&rs)) {
        /* cancelled before it ran */
    } else if (rs.job->retries > rs.c->cfg->job_retries) {
        /* Recovered after its consumer died once too often: end it here. */
        rs.job->retries = rs.c->cfg->job_retries;
        reschedule(&rs, "Retry budget spent (its consumer stopped while it ran)", NULL);
    } else {
        run_steps(&rs);
    }
    release_vm(&rs);
    if (rs.feedback[0])
        unlink(rs.feedback);
    store_free(rs.st);
    atomic_store(&rs.h->finished, true);
    return NULL;
}
