
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * The reconciler: a timer in every worker; the worker that holds the
 * zone's sweep lease picks, in rounds, what is due (payments MTN took
 * that are still pending at a momo_reconcile age, outcomes the
 * application has not acknowledged whose momo_notify_retry backoff is
 * over) and works through the list a few at a time.  Each item runs on a
 * request without a client (ngx_http_momo_timer.c) through the module's
 * ordinary steps (ngx_http_momo_request.c's protocol, headless): the
 * status query and the notify, with their leases, token and internal
 * locations.  Other workers only renew nothing and
 * wait: if the sweeper dies, its lease dies with it and the next tick of
 * another worker takes over.
 */


#include "ngx_http_momo_module.h"
#include "ngx_http_momo_shm.h"


#define NGX_HTTP_MOMO_SWEEP_MAX       256   /* items per round */
#define NGX_HTTP_MOMO_SWEEP_PARALLEL  4     /* items in flight */
#define NGX_HTTP_MOMO_SWEEP_TICK_MIN  50
#define NGX_HTTP_MOMO_SWEEP_TICK_MAX  1000
#define NGX_HTTP_MOMO_SWEEP_LEASE     5000
#define NGX_HTTP_MOMO_STATE_PERIOD    1000  /* at most one write per */


typedef struct {
    uint32_t                    id;
    ngx_http_momo_loc_conf_t   *mlcf;
    ngx_http_conf_ctx_t        *conf;
} ngx_http_momo_sweep_account_t;


typedef struct {
    ngx_event_t                 tick;
    ngx_event_t                 more;           /* posted: next items */
    ngx_connection_t            dummy;          /* the events' data */

    ngx_shm_zone_t             *zone;
    ngx_http_momo_main_conf_t  *mmcf;
    ngx_array_t                 accounts;
    ngx_http_momo_sweep_conf_t  conf;
    ngx_msec_t                  interval;

    ngx_http_momo_due_t        *due;
    ngx_uint_t                  ndue;
    ngx_uint_t                  next;
    ngx_uint_t                  running;
    ngx_uint_t                  holder;

    void                       *thread_pool;    /* state file writes */
    ngx_atomic_uint_t           saved;          /* zone changes written */
    ngx_msec_t                  saved_at;
} ngx_http_momo_sweeper_t;


static ngx_int_t ngx_http_momo_sweep_accounts(ngx_http_momo_sweeper_t *sw,
    ngx_cycle_t *cycle);
static void ngx_http_momo_sweep_tick(ngx_event_t *ev);
static void ngx_http_momo_sweep_save(ngx_http_momo_sweeper_t *sw,
    ngx_log_t *log);
static void ngx_http_momo_sweep_more(ngx_event_t *ev);
static void ngx_http_momo_sweep_start(ngx_http_momo_sweeper_t *sw,
    ngx_http_momo_due_t *due);
static void ngx_http_momo_sweep_note(ngx_http_momo_sweeper_t *sw,
    ngx_http_momo_due_t *due);
static ngx_int_t ngx_http_momo_sweep_run(ngx_http_momo_sweeper_t *sw,
    ngx_http_momo_due_t *due);
static ngx_int_t ngx_http_momo_sweep_step_first(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_sweep_queried(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_sweep_notified(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static void ngx_http_momo_sweep_finish(ngx_http_request_t *r, ngx_int_t rc);
static ngx_http_momo_sweep_account_t *ngx_http_momo_sweep_account(
    ngx_http_momo_sweeper_t *sw, uint32_t id);


/* this worker's sweeper: set up in init_process, gone with the process */

static ngx_http_momo_sweeper_t  *ngx_http_momo_sweeper;


ngx_int_t
ngx_http_momo_reconcile_init_process(ngx_cycle_t *cycle)
{
    ngx_msec_t                  t;
    ngx_http_momo_sweeper_t    *sw;
    ngx_http_momo_main_conf_t  *mmcf;

    ngx_http_momo_sweeper = NULL;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_momo_module);

    if (mmcf == NULL || mmcf->shm_zone == NULL) {
        return NGX_OK;
    }

    sw = ngx_pcalloc(cycle->pool, sizeof(ngx_http_momo_sweeper_t));
    if (sw == NULL) {
        return NGX_ERROR;
    }

    sw->zone = mmcf->shm_zone;
    sw->mmcf = mmcf;

    if (ngx_http_momo_sweep_accounts(sw, cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (sw->accounts.nelts == 0
        || (mmcf->nreconcile == 0 && !sw->conf.notify && !mmcf->state.len))
    {
        return NGX_OK;
    }

#if (NGX_THREADS)
    {
        ngx_str_t  name = ngx_string("default");

        sw->thread_pool = ngx_thread_pool_get(cycle, &name);
    }
#endif

    sw->conf.ages = mmcf->reconcile;
    sw->conf.nages = mmcf->nreconcile;
    sw->conf.notify_total = mmcf->notify_total;

    sw->due = ngx_palloc(cycle->pool, NGX_HTTP_MOMO_SWEEP_MAX
                                      * sizeof(ngx_http_momo_due_t));
    if (sw->due == NULL) {
        return NGX_ERROR;
    }

    /* half the shortest delay of the schedules, within bounds */

    t = NGX_HTTP_MOMO_SWEEP_TICK_MAX;

    if (mmcf->nreconcile && mmcf->reconcile[0] / 2 < t) {
        t = mmcf->reconcile[0] / 2;
    }

    if (sw->conf.notify && mmcf->notify_first / 2 < t) {
        t = mmcf->notify_first / 2;
    }

    sw->interval = ngx_max(t, NGX_HTTP_MOMO_SWEEP_TICK_MIN);

    sw->dummy.fd = (ngx_socket_t) -1;

    sw->tick.handler = ngx_http_momo_sweep_tick;
    sw->tick.data = &sw->dummy;
    sw->tick.log = cycle->log;
    sw->tick.cancelable = 1;

    sw->more.handler = ngx_http_momo_sweep_more;
    sw->more.data = &sw->dummy;
    sw->more.log = cycle->log;

    ngx_http_momo_sweeper = sw;

    ngx_add_timer(&sw->tick, sw->interval);

    return NGX_OK;
}


void
ngx_http_momo_reconcile_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_momo_sweeper_t  *sw;

    sw = ngx_http_momo_sweeper;

    if (sw == NULL) {
        return;
    }

    if (sw->holder) {
        ngx_http_momo_sweep_release(sw->zone);
    }

    ngx_http_momo_sweeper = NULL;
}


/*
 * One location per account (crc32 of base URL, user and environment)
 * does the account's sweeping: its configuration gives the credentials,
 * the momo_leg locations of its server and momo_notify.  A location with
 * momo_notify is preferred.
 */

static ngx_int_t
ngx_http_momo_sweep_accounts(ngx_http_momo_sweeper_t *sw, ngx_cycle_t *cycle)
{
    ngx_uint_t                      i;
    ngx_http_momo_use_t            *use;
    ngx_http_momo_sweep_account_t  *a;

    if (ngx_array_init(&sw->accounts, cycle->pool, 2,
                       sizeof(ngx_http_momo_sweep_account_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    use = sw->mmcf->accounts.elts;

    for (i = 0; i < sw->mmcf->accounts.nelts; i++) {

        if (use[i].mlcf->conf_ctx == NULL
            || !(use[i].mlcf->handler_products
                 & (1 << NGX_HTTP_MOMO_COLLECTION)))
        {
            continue;
        }

        if (use[i].mlcf->notify.len) {
            sw->conf.notify = 1;
        }

        a = ngx_http_momo_sweep_account(sw, use[i].mlcf->account);

        if (a == NULL || a->id != use[i].mlcf->account) {
            a = ngx_array_push(&sw->accounts);
            if (a == NULL) {
                return NGX_ERROR;
            }

        } else if (a->mlcf->notify.len || use[i].mlcf->notify.len == 0) {
            continue;
        }

        a->id = use[i].mlcf->account;
        a->mlcf = use[i].mlcf;
        a->conf = use[i].mlcf->conf_ctx;
    }

    return NGX_OK;
}


/* the payment's account, or the first one for a record without any */

static ngx_http_momo_sweep_account_t *
ngx_http_momo_sweep_account(ngx_http_momo_sweeper_t *sw, uint32_t id)
{
    ngx_uint_t                      i;
    ngx_http_momo_sweep_account_t  *a;

    a = sw->accounts.elts;

    if (sw->accounts.nelts == 0) {
        return NULL;
    }

    for (i = 0; i < sw->accounts.nelts; i++) {
        if (a[i].id == id) {
            return &a[i];
        }
    }

    return &a[0];
}


static void
ngx_http_momo_sweep_tick(ngx_event_t *ev)
{
    ngx_uint_t                       takeover;
    ngx_http_momo_sweeper_t         *sw;
    ngx_http_momo_sweep_counters_t  *sc;

    sw = ngx_http_momo_sweeper;

    if (sw == NULL || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (ngx_http_momo_sweep_lease(sw->zone,
                                  ngx_max(NGX_HTTP_MOMO_SWEEP_LEASE,
                                          3 * sw->interval),
                                  &takeover)
        != NGX_OK)
    {
        sw->holder = 0;
        goto done;
    }

    if (takeover) {
        ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                      "momo: worker %P sweeps the momo zone now, taking "
                      "over from worker %P", ngx_pid, (ngx_pid_t) takeover);

    } else if (!sw->holder) {
        ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                      "momo: worker %P sweeps the momo zone", ngx_pid);
    }

    sw->holder = 1;

    if (sw->running == 0 && sw->next >= sw->ndue) {
        sw->ndue = ngx_http_momo_sweep_due(sw->zone, &sw->conf,
                                           ngx_http_momo_wall_ms(),
                                           sw->due,
                                           NGX_HTTP_MOMO_SWEEP_MAX);
        sw->next = 0;

        if (sw->ndue) {
            sc = ngx_http_momo_sweep_counters(sw->zone);
            (void) ngx_atomic_fetch_add(&sc->rounds, 1);

            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                           "momo sweep round: %ui due", sw->ndue);
        }

        ngx_http_momo_sweep_more(&sw->more);
    }

    ngx_http_momo_sweep_save(sw, ev->log);

done:

    ngx_add_timer(&sw->tick, sw->interval);
}


/* momo_zone state=: the sweeper writes the zone when it changed */

static void
ngx_http_momo_sweep_save(ngx_http_momo_sweeper_t *sw, ngx_log_t *log)
{
    ngx_atomic_uint_t  changes;

    if (sw->mmcf->state.len == 0
        || (ngx_msec_int_t) (ngx_current_msec - sw->saved_at)
           < NGX_HTTP_MOMO_STATE_PERIOD)
    {
        return;
    }

    changes = ngx_http_momo_state_changes(sw->zone);

    if (changes == sw->saved && sw->saved_at) {
        return;
    }

    if (ngx_http_momo_state_save(sw->zone, &sw->mmcf->state, sw->thread_pool,
                                 log)
        == NGX_OK)
    {
        sw->saved = changes;
        sw->saved_at = ngx_current_msec;
    }
}


/* start what the round still has, up to NGX_HTTP_MOMO_SWEEP_PARALLEL */

static void
ngx_http_momo_sweep_more(ngx_event_t *ev)
{
    ngx_http_momo_sweeper_t  *sw;

    sw = ngx_http_momo_sweeper;

    if (sw == NULL) {
        return;
    }

    /* another worker took the lease over: the rest of the round is its */

    if (!sw->holder) {
        sw->next = sw->ndue;
        return;
    }

    while (sw->next < sw->ndue
           && sw->running < NGX_HTTP_MOMO_SWEEP_PARALLEL
           && !ngx_exiting && !ngx_quit && !ngx_terminate)
    {
        ngx_http_momo_sweep_start(sw, &sw->due[sw->next++]);
    }
}


static void
ngx_http_momo_sweep_start(ngx_http_momo_sweeper_t *sw,
    ngx_http_momo_due_t *due)
{
    switch (due->what) {

    case NGX_HTTP_MOMO_DUE_QUERY:
    case NGX_HTTP_MOMO_DUE_NOTIFY:
        (void) ngx_http_momo_sweep_run(sw, due);
        return;

    default:
        ngx_http_momo_sweep_note(sw, due);
        return;
    }
}


/* what the sweep stops doing is said once, in the error log and metrics */

static void
ngx_http_momo_sweep_note(ngx_http_momo_sweeper_t *sw, ngx_http_momo_due_t *due)
{
    ngx_http_momo_sweep_counters_t  *sc;

    sc = ngx_http_momo_sweep_counters(sw->zone);

    /* the log line first: whoever reads the counter finds the line */

    if (due->what == NGX_HTTP_MOMO_DUE_GIVEN_UP) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "momo: payment \"%*s\" is still pending %uLs after "
                      "MTN accepted it: the reconciler stops asking "
                      "(the last momo_reconcile age); the application "
                      "must find its outcome",
                      (size_t) NGX_HTTP_MOMO_UUID_LEN, due->ref,
                      due->age / 1000);

        (void) ngx_atomic_fetch_add(
                          &sc->results[NGX_HTTP_MOMO_SWEEP_GIVEN_UP], 1);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "momo: the outcome of payment \"%*s\" was not "
                  "acknowledged by momo_notify in %uLs: no more "
                  "deliveries (momo_notify_retry's total)",
                  (size_t) NGX_HTTP_MOMO_UUID_LEN, due->ref,
                  due->age / 1000);

    (void) ngx_atomic_fetch_add(&sc->notify_given_up, 1);
}


/*
 * One item on its own request without a client: the status query (which
 * notifies when the answer is final) or the delivery.  The request ends
 * in ngx_http_momo_sweep_finish(), through ngx_http_momo_finalize().
 */

static ngx_int_t
ngx_http_momo_sweep_run(ngx_http_momo_sweeper_t *sw, ngx_http_momo_due_t *due)
{
    ngx_connection_t               *c;
    ngx_http_request_t             *r;
    ngx_http_momo_ctx_t            *ctx;
    ngx_http_momo_sweep_account_t  *a;
    ngx_http_momo_sweep_counters_t *sc;

    a = ngx_http_momo_sweep_account(sw, due->account);
    sc = ngx_http_momo_sweep_counters(sw->zone);

    if (due->what == NGX_HTTP_MOMO_DUE_NOTIFY) {
        (void) ngx_atomic_fetch_add(&sc->notify_sent, 1);
    }

    r = ngx_http_momo_fake_request(a->conf, ngx_cycle->log);
    if (r == NULL) {
        return NGX_ERROR;
    }

    c = r->connection;

    ctx = ngx_http_momo_ctx_create(r);
    if (ctx == NULL) {
        ngx_http_momo_fake_close(r);
        return NGX_ERROR;
    }

    /* a refund or a payout: its own product's status, its kind notified */

    ngx_http_momo_op_kind(ctx, due->kind);

    if (due->what == NGX_HTTP_MOMO_DUE_QUERY
        && ctx->product->token_key.len == 0)
    {
        /* no Disbursement account where this account sweeps: not asked */
        ngx_http_momo_sweep_swept(sw->zone, due->ref, due->step);
        ngx_http_momo_fake_close(r);
        return NGX_DECLINED;
    }

    ctx->headless = 1;          /* nobody to answer */
    ctx->finalize = ngx_http_momo_sweep_finish;
    ctx->timer_data = due;

    /* the clients' polls keep a fifth of the status budget to themselves */

    ctx->budget_reserve = (ngx_uint_t) a->mlcf->status_rate / 5;

    ctx->reference_id.len = NGX_HTTP_MOMO_UUID_LEN;
    ctx->reference_id.data = ngx_pnalloc(r->pool, NGX_HTTP_MOMO_UUID_LEN);
    if (ctx->reference_id.data == NULL) {
        ngx_http_momo_fake_close(r);
        return NGX_ERROR;
    }

    ngx_memcpy(ctx->reference_id.data, due->ref, NGX_HTTP_MOMO_UUID_LEN);

    r->write_event_handler = ngx_http_momo_resume;
    sw->running++;

    ngx_http_momo_run(r, ctx, ngx_http_momo_sweep_step_first);

    ngx_http_run_posted_requests(c);

    return NGX_OK;
}


/* the item's first step: the status query, or the delivery */

static ngx_int_t
ngx_http_momo_sweep_step_first(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_http_momo_due_t  *due;

    due = ctx->timer_data;

    if (due->what == NGX_HTTP_MOMO_DUE_QUERY) {
        return ngx_http_momo_query(r, ctx, ngx_http_momo_sweep_queried);
    }

    if (ngx_http_momo_record_get(ctx->zone, due->ref, &ctx->rec) != NGX_OK) {
        return NGX_OK;          /* evicted meanwhile */
    }

    return ngx_http_momo_notify(r, ctx, ngx_http_momo_sweep_notified);
}


/* MTN answered (or the zone knew): a final outcome goes to the app now */

static ngx_int_t
ngx_http_momo_sweep_queried(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ctx->status = *ngx_http_momo_state_name(ctx->rec.state);

    return ngx_http_momo_notify(r, ctx, ngx_http_momo_sweep_notified);
}


static ngx_int_t
ngx_http_momo_sweep_notified(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    return NGX_OK;
}


static void
ngx_http_momo_sweep_finish(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_uint_t                       result;
    ngx_http_momo_ctx_t             *ctx;
    ngx_http_momo_due_t             *due;
    ngx_http_momo_sweeper_t         *sw;
    ngx_http_momo_sweep_counters_t  *sc;

    sw = ngx_http_momo_sweeper;
    ctx = ngx_http_get_module_ctx(r, ngx_http_momo_module);
    due = ctx->timer_data;

    if (sw == NULL) {
        ngx_http_momo_fake_close(r);
        return;
    }

    if (due->what == NGX_HTTP_MOMO_DUE_QUERY && ctx->over_budget) {

        /* MTN was not asked: the age waits for the next round, as does
         * the rest of this round */

        sc = ngx_http_momo_sweep_counters(sw->zone);
        (void) ngx_atomic_fetch_add(
                          &sc->results[NGX_HTTP_MOMO_SWEEP_DEFERRED], 1);
        sw->next = sw->ndue;

    } else if (due->what == NGX_HTTP_MOMO_DUE_QUERY) {
        ngx_http_momo_sweep_swept(sw->zone, due->ref, due->step);

        if (ngx_http_momo_state_final(ctx->rec.state)) {
            result = NGX_HTTP_MOMO_SWEEP_FINAL;

        } else if (rc == NGX_ERROR || ctx->error.len) {
            result = NGX_HTTP_MOMO_SWEEP_ERROR;

        } else {
            result = NGX_HTTP_MOMO_SWEEP_PENDING;
        }

        sc = ngx_http_momo_sweep_counters(sw->zone);
        (void) ngx_atomic_fetch_add(&sc->results[result], 1);

        if (!ctx->stale) {
            (void) ngx_atomic_fetch_add(&sc->budget_used, 1);
        }

        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "momo sweep \"%*s\": %V",
                       (size_t) NGX_HTTP_MOMO_UUID_LEN, due->ref,
                       ngx_http_momo_state_name(ctx->rec.state));
    }

    ngx_http_momo_fake_close(r);

    sw->running--;

    /* not from here: the connection just freed may be in use up the stack */

    if (!sw->more.posted) {
        ngx_post_event(&sw->more, &ngx_posted_events);
    }
}
