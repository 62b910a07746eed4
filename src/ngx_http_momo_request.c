
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * The life of a momo request, from its context to its finalization.
 *
 * A request runs steps (ngx_http_momo_step_pt).  A step either suspends
 * the request on a call to an internal location or on a timer, and
 * returns NGX_HTTP_MOMO_SUSPENDED, or ends it and returns what
 * ngx_http_momo_finalize() is to hand to ngx_http_finalize_request(): the
 * output filter's result of the answer (NGX_OK, NGX_AGAIN when the
 * output is buffered, NGX_ERROR), or an error when no answer was sent.
 * "Suspended" and "output buffered" are never the same code: nginx
 * installs its writer for the second.
 *
 * Whatever the request holds in the shared zone (a status-query lease, a
 * notify lease, a token-refresh lease, a payment's lease, a refund's or a
 * payout's ledger entry) is stamped with this worker's pid
 * and a serial of its own, and released from the request's pool cleanup,
 * the way the file cache pairs lock_time with ngx_http_file_cache_free():
 * a request that is cancelled (HTTP/2 RST_STREAM), fails or is
 * terminated leaves nothing locked.  The shared-zone functions release
 * a lease only when the stamp still matches.
 *
 * Nothing here needs a client socket: a request created by a timer with
 * a fake connection sets ctx->headless and ctx->finalize (see the
 * header) and goes through the same steps, leases and cleanup.
 */


#include "ngx_http_momo_module.h"


static void ngx_http_momo_body_handler(ngx_http_request_t *r);
static void ngx_http_momo_wait_handler(ngx_event_t *ev);
static void ngx_http_momo_flush(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static void ngx_http_momo_client_read(ngx_event_t *rev);
static void ngx_http_momo_cleanup(void *data);


static ngx_uint_t  ngx_http_momo_serial;


ngx_http_momo_ctx_t *
ngx_http_momo_ctx_create(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t         *cln;
    ngx_http_momo_ctx_t        *ctx;
    ngx_http_momo_main_conf_t  *mmcf;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_momo_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);

    ctx->mlcf = ngx_http_get_module_loc_conf(r, ngx_http_momo_module);
    ctx->zone = mmcf->shm_zone;
    ctx->product = &ctx->mlcf->product[NGX_HTTP_MOMO_COLLECTION];
    ctx->kind = ctx->mlcf->handler_kind;
    ctx->query_interval = 1000;

    ctx->wait.handler = ngx_http_momo_wait_handler;
    ctx->wait.data = r;
    ctx->wait.log = r->connection->log;

    cln->handler = ngx_http_momo_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_momo_module);

    return ctx;
}


/* a stamp for one lease: unique in this worker, never 0 */

ngx_uint_t
ngx_http_momo_lease_serial(void)
{
    if (++ngx_http_momo_serial == 0) {
        ngx_http_momo_serial = 1;
    }

    return ngx_http_momo_serial;
}


/*
 * How long a lease lasts: as long as its holder can take, that is the
 * deadlines of the calls it makes while it holds the lease (each its
 * location's proxy timeouts and a margin, as ngx_http_momo_call.c ends
 * them), the way proxy_cache_lock_age bounds a cache lock.  Then another
 * request may take the lease over; the stamp keeps the late holder from
 * releasing it.
 */

ngx_msec_t
ngx_http_momo_call_time(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_uint_t leg)
{
    ngx_msec_t                 t;
    ngx_http_momo_srv_conf_t  *mscf;

    if (leg == NGX_HTTP_MOMO_LEG_NOTIFY) {
        t = ctx->mlcf->notify_time;

    } else {
        mscf = ngx_http_get_module_srv_conf(r, ngx_http_momo_module);
        t = mscf->leg_time[leg];
    }

    return t ? t : NGX_HTTP_MOMO_CALL_TIME;
}


/* a status query: perhaps a token first, then the query */

ngx_msec_t
ngx_http_momo_query_time(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    return ngx_http_momo_call_time(r, ctx, NGX_HTTP_MOMO_LEG_TOKEN)
           + ngx_http_momo_call_time(r, ctx, ngx_http_momo_op_leg(ctx, 1));
}


/*
 * a payment, refund or payout: a token, the payer's check (a status leg),
 * the POST and, after MTN's 409, the status query
 */

ngx_msec_t
ngx_http_momo_send_time(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    return ngx_http_momo_query_time(r, ctx)
           + ngx_http_momo_call_time(r, ctx, ngx_http_momo_op_leg(ctx, 0))
           + ngx_http_momo_call_time(r, ctx, ngx_http_momo_op_leg(ctx, 1));
}


/*
 * From a content handler that has no body to read: the request is held
 * (r->main->count) until ngx_http_momo_finalize(); the handler returns
 * what this returns.
 */

ngx_int_t
ngx_http_momo_start(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_step_pt step)
{
    r->main->count++;
    r->write_event_handler = ngx_http_momo_resume;

    ngx_http_momo_run(r, ctx, step);

    return NGX_DONE;
}


/* from a content handler: the step runs once the whole body is read */

ngx_int_t
ngx_http_momo_start_with_body(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_http_momo_step_pt step)
{
    ngx_int_t  rc;

    ctx->next = step;

    rc = ngx_http_read_client_request_body(r, ngx_http_momo_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_momo_body_handler(ngx_http_request_t *r)
{
    ngx_http_momo_ctx_t   *ctx;
    ngx_http_momo_step_pt  step;

    ctx = ngx_http_get_module_ctx(r, ngx_http_momo_module);

    r->write_event_handler = ngx_http_momo_resume;

    step = ctx->next;
    ctx->next = NULL;

    ngx_http_momo_run(r, ctx, step);
}


void
ngx_http_momo_run(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_step_pt step)
{
    ngx_int_t  rc;

    ctx->state = NGX_HTTP_MOMO_RUNNING;

    rc = step(r, ctx);

    if (rc != NGX_HTTP_MOMO_SUSPENDED) {
        ngx_http_momo_finalize(r, ctx, rc);
        return;
    }

    if (ctx->state == NGX_HTTP_MOMO_RUNNING) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "momo: a step suspended the request without a call "
                      "or a timer");
        ngx_http_momo_finalize(r, ctx, NGX_ERROR);
    }
}


/*
 * The main request's write handler while it is ours: nginx calls it when
 * a call has ended (the parent is woken), and on write events for the
 * client while the request is suspended.  An answer already sent may be
 * waiting for the client (HTTP/2 flow control, a full socket): push it.
 */

void
ngx_http_momo_resume(ngx_http_request_t *r)
{
    ngx_http_momo_ctx_t   *ctx;
    ngx_http_momo_step_pt  step;

    ctx = ngx_http_get_module_ctx(r, ngx_http_momo_module);

    if (ctx == NULL || ctx->state == NGX_HTTP_MOMO_FINALIZED) {
        return;
    }

    ngx_http_momo_flush(r, ctx);

    if (ctx->state != NGX_HTTP_MOMO_CALLING || !ctx->call->done) {
        return;
    }

    step = ctx->next;
    ctx->next = NULL;

    ngx_http_momo_run(r, ctx, step);
}


/* a bounded, non-blocking pause: the worker serves others meanwhile */

ngx_int_t
ngx_http_momo_wait(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_msec_t delay, ngx_http_momo_step_pt next)
{
    ctx->next = next;
    ctx->call = NULL;
    ctx->state = NGX_HTTP_MOMO_WAITING;

    ngx_add_timer(&ctx->wait, delay);

    return NGX_HTTP_MOMO_SUSPENDED;
}


static void
ngx_http_momo_wait_handler(ngx_event_t *ev)
{
    ngx_connection_t      *c;
    ngx_http_request_t    *r;
    ngx_http_momo_ctx_t   *ctx;
    ngx_http_momo_step_pt  step;

    r = ev->data;
    c = r->connection;

    ctx = ngx_http_get_module_ctx(r, ngx_http_momo_module);

    if (ctx->state == NGX_HTTP_MOMO_WAITING) {
        step = ctx->next;
        ctx->next = NULL;

        ngx_http_momo_run(r, ctx, step);
    }

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_momo_flush(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    if (ctx->responded && !ctx->headless
        && r == r->connection->data
        && (r->buffered || r->connection->buffered))
    {
        ctx->out = ngx_http_output_filter(r, NULL);
    }
}


/*
 * The client has its answer and may close the connection, as MTN does
 * after a callback; the work left (a verification, a notify) must not die
 * with it.  nginx would see the close through the upstream module's
 * broken-connection check of whichever subrequest is active, unless its
 * location has proxy_ignore_client_abort on, so the connection's read
 * events are ignored until the request ends.
 */

void
ngx_http_momo_detach(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_connection_t  *c;

    c = r->connection;

    if (ctx->detached || ctx->headless || r != r->main) {
        return;
    }

#if (NGX_HTTP_V2)
    if (r->stream) {
        return;
    }
#endif

    ctx->detached = 1;
    ctx->client_read = c->read->handler;
    c->read->handler = ngx_http_momo_client_read;
}


static void
ngx_http_momo_client_read(ngx_event_t *rev)
{
    if ((ngx_event_flags & NGX_USE_LEVEL_EVENT) && rev->active) {
        (void) ngx_del_event(rev, NGX_READ_EVENT, 0);
    }
}


/*
 * The one end of a momo request.  A step that fails before anything was
 * sent still gets a JSON answer.  The leases go now, not when a slow
 * client has read the answer; the output result goes to nginx, which
 * installs its writer while the answer is buffered.
 */

void
ngx_http_momo_finalize(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_int_t rc)
{
    ngx_http_momo_error_t  err;

    if (ctx->state == NGX_HTTP_MOMO_FINALIZED) {
        return;
    }

    if (!ctx->responded && (rc == NGX_ERROR || rc >= NGX_HTTP_BAD_REQUEST)) {
        ngx_http_momo_error_set(&err, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                "INTERNAL_ERROR",
                                "the gateway failed to process the request; "
                                "see the error log");
        err.retryable = 1;
        rc = ngx_http_momo_reply_error(r, &err);
    }

    ctx->state = NGX_HTTP_MOMO_FINALIZED;

    /* what the access log shows: the outcome after any verification */
    ngx_http_momo_set_variables(r, ctx);

    ngx_http_momo_release(ctx);

    if (ctx->detached) {
        r->connection->read->handler = ctx->client_read;
    }

    /* a write event may have gone to a call while the answer waited */

    if (rc == NGX_OK || rc == NGX_AGAIN) {
        ngx_http_momo_flush(r, ctx);

        if (ctx->responded && ctx->out == NGX_ERROR) {
            rc = NGX_ERROR;
        }
    }

    if (ctx->finalize) {
        ctx->finalize(r, rc);
        return;
    }

    ngx_http_finalize_request(r, rc);
}


/* what the request holds; each release checks the stamp in the zone */

void
ngx_http_momo_release(ngx_http_momo_ctx_t *ctx)
{
    if (ctx->wait.timer_set) {
        ngx_del_timer(&ctx->wait);
    }

    if (ctx->call) {
        ngx_http_momo_call_cancel(ctx->call);
    }

    if (ctx->query_lease) {
        ngx_http_momo_record_unquery(ctx->zone, ctx->reference_id.data,
                                     ctx->query_lease);
        ctx->query_lease = 0;
    }

    if (ctx->notify_lease) {
        /* the delivery's outcome is unknown: it is sent again later */
        ngx_http_momo_record_notified(ctx->zone, ctx->reference_id.data, 0,
                                      ctx->notify_lease);
        ctx->notify_lease = 0;
    }

    if (ctx->token_lease) {
        ngx_http_momo_token_release(ctx->zone, &ctx->product->token_key,
                                    ctx->token_lease);
        ctx->token_lease = 0;
    }

    /* a payload MTN never saw proves nothing for its key */
    ngx_http_momo_pay_release(ctx, !ctx->pay_sent);

    ngx_http_momo_disb_release(ctx);
}


/* the request's pool is destroyed: finalized, terminated or cancelled */

static void
ngx_http_momo_cleanup(void *data)
{
    ngx_http_momo_ctx_t *ctx = data;

    ctx->state = NGX_HTTP_MOMO_FINALIZED;

    ngx_http_momo_release(ctx);
}
