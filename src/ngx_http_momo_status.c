
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * momo_status: GET /api/payments/mtn-momo/status/{reference_id}.  Final
 * statuses come from the shared zone; a pending one reaches MTN at most
 * once a second per reference, whatever the number of workers and
 * clients: one query holds the record's lease, the others wait for its
 * answer.  The query is shared with momo_callback's verification.
 *
 * Every query also spends one unit of its account's status budget
 * (momo_status_rate, shared by all workers).  Over budget, MTN is not
 * asked: the answer is the zone's, with its age, or a retryable 503 when
 * the zone knows nothing of the payment yet.
 */


#include "ngx_http_momo_module.h"


#define NGX_HTTP_MOMO_QUERY_INTERVAL  1000
#define NGX_HTTP_MOMO_QUERY_POLL      50
#define NGX_HTTP_MOMO_QUERY_WAIT      5000


static ngx_int_t ngx_http_momo_status_begin(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_status_answer(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_status_finish(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_status_stale(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_query_stale(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_query_step(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_query_send(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_query_done(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_query_record(ngx_http_momo_ctx_t *ctx,
    ngx_uint_t answered);
static ngx_int_t ngx_http_momo_query_failed(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_http_momo_mtn_body_t *b);
static ngx_int_t ngx_http_momo_status_budget(ngx_http_momo_ctx_t *ctx);


ngx_int_t
ngx_http_momo_status_handler(ngx_http_request_t *r)
{
    u_char                 *p, *last;
    ngx_int_t               rc;
    ngx_str_t               allow = ngx_string("GET, HEAD");
    ngx_http_momo_ctx_t    *ctx;
    ngx_http_momo_error_t   err;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx = ngx_http_momo_ctx_create(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* momo_refund_status, momo_payout_status: the same, another kind */
    ngx_http_momo_op_kind(ctx, ctx->mlcf->handler_kind);

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        if (ngx_http_momo_header(r, "Allow", &allow) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_momo_error_set(&err, NGX_HTTP_NOT_ALLOWED,
                                "METHOD_NOT_ALLOWED",
                                "use GET to read a payment's status");
        return ngx_http_momo_reply_error(r, &err);
    }

    /* the reference id is the last path segment */

    last = r->uri.data + r->uri.len;

    for (p = last; p > r->uri.data && p[-1] != '/'; p--) { /* void */ }

    ctx->reference_id.data = p;
    ctx->reference_id.len = last - p;

    if (ngx_http_momo_is_uuid(&ctx->reference_id) != NGX_OK) {
        ngx_str_null(&ctx->reference_id);
        ngx_http_momo_error_set(&err, NGX_HTTP_BAD_REQUEST,
                                "INVALID_REFERENCE_ID",
                                "the reference id must be the UUID returned "
                                "by the payment request");
        return ngx_http_momo_reply_error(r, &err);
    }

    /* MTN's ids are case-insensitive; the zone keys them in lowercase */

    p = ngx_pnalloc(r->pool, NGX_HTTP_MOMO_UUID_LEN);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_strlow(p, ctx->reference_id.data, NGX_HTTP_MOMO_UUID_LEN);
    ctx->reference_id.data = p;

    return ngx_http_momo_start(r, ctx, ngx_http_momo_status_begin);
}


static ngx_int_t
ngx_http_momo_status_begin(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    return ngx_http_momo_query(r, ctx, ngx_http_momo_status_answer);
}


static ngx_int_t
ngx_http_momo_status_answer(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_int_t              rc;
    ngx_http_momo_error_t  err;

    if (ctx->rec.state == NGX_HTTP_MOMO_ST_NOT_FOUND) {
        ngx_http_momo_error_set(&err, NGX_HTTP_NOT_FOUND, "NOT_FOUND",
                                "MTN has no payment with this reference id");
        return ngx_http_momo_reply_error(r, &err);
    }

    if (ctx->rec.state == NGX_HTTP_MOMO_ST_UNKNOWN) {

        /* nothing proves a status: never "success" */

        if (ctx->over_budget) {
            ngx_http_momo_error_set(&err, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "STATUS_RATE_LIMITED",
                                    "the status queries MTN allows for "
                                    "this second are used; ask again");
        } else {
            ngx_http_momo_error_set(&err, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "STATUS_UNKNOWN",
                                    "MTN's status of this payment is not "
                                    "known yet; ask again");
        }

        err.retryable = 1;

        return ngx_http_momo_fail(r, ctx, &err, 0);
    }

    if (ctx->stale) {
        rc = ngx_http_momo_status_stale(r, ctx);

    } else {
        rc = ngx_http_momo_reply_payment(r, ctx, NGX_HTTP_OK);
    }

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    /* the client has its answer; the application learns a final status */

    ngx_http_momo_detach(r, ctx);

    return ngx_http_momo_notify(r, ctx, ngx_http_momo_status_finish);
}


/*
 * The zone's status when MTN could not be asked now: as the usual answer,
 * plus "checked_at" (when MTN last gave it, ISO 8601 UTC) and "age" (in
 * seconds), and an Age header, as a cache would.
 */

static ngx_int_t
ngx_http_momo_status_stale(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    u_char                     *p;
    time_t                      age;
    ngx_tm_t                    tm;
    ngx_str_t                   age_str;
    ngx_uint_t                  n;
    ngx_http_momo_json_field_t  f[10];

    age = ngx_time() - ctx->rec.checked_at;

    if (age < 0) {
        age = 0;
    }

    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN + sizeof("1970-01-01T00:00:00Z"));
    if (p == NULL) {
        return NGX_ERROR;
    }

    age_str.data = p;
    age_str.len = ngx_sprintf(p, "%T", age) - p;

    p += age_str.len;
    ngx_gmtime(ctx->rec.checked_at, &tm);

    ctx->status = *ngx_http_momo_state_name(ctx->rec.state);

    ngx_str_set(&f[0].key, "success");
    ngx_str_set(&f[0].value, "true");
    f[0].type = NGX_HTTP_MOMO_JSON_RAW;

    n = 1 + ngx_http_momo_record_fields(ctx, &f[1]);

    ngx_str_set(&f[n].key, "checked_at");
    f[n].value.data = p;
    f[n].value.len = ngx_sprintf(p, "%4d-%02d-%02dT%02d:%02d:%02dZ",
                                 tm.ngx_tm_year, tm.ngx_tm_mon,
                                 tm.ngx_tm_mday, tm.ngx_tm_hour,
                                 tm.ngx_tm_min, tm.ngx_tm_sec)
                     - p;
    f[n++].type = NGX_HTTP_MOMO_JSON_STRING;

    ngx_str_set(&f[n].key, "age");
    f[n].value = age_str;
    f[n++].type = NGX_HTTP_MOMO_JSON_RAW;

    if (ngx_http_momo_header(r, "Age", &age_str) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_momo_reply(r, NGX_HTTP_OK, f, n);
}


static ngx_int_t
ngx_http_momo_status_finish(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    return NGX_OK;
}


/*
 * The status of ctx->reference_id into ctx->rec: from the zone when it is
 * final or fresh, else from MTN under the record's query lease.  Calls
 * next with ctx->rec set, or answers an error itself.  The lease is the
 * request's (ctx->query_lease) until MTN's answer is recorded; if the
 * request ends first, ngx_http_momo_release() gives it back.
 */

ngx_int_t
ngx_http_momo_query(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_step_pt next)
{
    ctx->after_query = next;
    ctx->deadline = 0;
    ctx->stale = 0;
    ctx->over_budget = 0;

    return ngx_http_momo_query_step(r, ctx);
}


static ngx_int_t
ngx_http_momo_query_step(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_int_t                   rc;
    ngx_uint_t                  serial;
    ngx_http_momo_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);
    serial = ngx_http_momo_lease_serial();

    rc = ngx_http_momo_record_query(mmcf->shm_zone, ctx->reference_id.data,
                                    ngx_http_momo_query_time(r, ctx), serial,
                                    ctx->query_interval, &ctx->rec);

    switch (rc) {

    case NGX_DONE:
        return ctx->after_query(r, ctx);

    case NGX_OK:
        ctx->query_lease = serial;
        return ngx_http_momo_with_token(r, ctx, ngx_http_momo_query_send);

    case NGX_BUSY:
        if (ctx->deadline == 0) {
            ctx->deadline = ngx_current_msec + NGX_HTTP_MOMO_QUERY_WAIT;
        }

        if ((ngx_msec_int_t) (ngx_current_msec - ctx->deadline) < 0) {
            return ngx_http_momo_wait(r, ctx, NGX_HTTP_MOMO_QUERY_POLL,
                                      ngx_http_momo_query_step);
        }

        /* the other query is slow: answer with what the zone knows */

        return ngx_http_momo_query_stale(r, ctx);

    default:
        return NGX_ERROR;
    }
}


static ngx_int_t
ngx_http_momo_query_stale(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    (void) ngx_http_momo_record_get(ctx->zone, ctx->reference_id.data,
                                    &ctx->rec);
    ctx->stale = 1;

    return ctx->after_query(r, ctx);
}


/* the budget is spent when the query leaves, the token in hand */

static ngx_int_t
ngx_http_momo_query_send(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    if (ngx_http_momo_status_budget(ctx) != NGX_OK) {
        ngx_http_momo_record_unquery(ctx->zone, ctx->reference_id.data,
                                     ctx->query_lease);
        ctx->query_lease = 0;
        ctx->over_budget = 1;

        return ngx_http_momo_query_stale(r, ctx);
    }

    return ngx_http_momo_status_call(r, ctx, ngx_http_momo_query_done);
}


static ngx_int_t
ngx_http_momo_status_budget(ngx_http_momo_ctx_t *ctx)
{
    return ngx_http_momo_budget_take(ctx->zone, &ctx->product->token_key,
                                     ctx->mlcf->status_rate,
                                     ctx->budget_reserve);
}


/*
 * After MTN's 409 to a payment, a refund or a payout, only MTN's status of
 * it, with its amount, says what the key stands for.  That query spends a
 * unit of the status budget as any other.  Over budget MTN is not asked:
 * nothing proves the payload, so the answer is a retryable 503 with the
 * reference id, and the request's end (ngx_http_momo_release) writes
 * nothing of this payload.
 */

ngx_int_t
ngx_http_momo_status_recheck(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_step_pt next)
{
    ngx_http_momo_error_t  err;

    if (ngx_http_momo_status_budget(ctx) == NGX_OK) {
        return ngx_http_momo_status_call(r, ctx, next);
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "momo: MTN already has %V \"%V\"; its status is not "
                  "asked: momo_status_rate is used up for this second",
                  ngx_http_momo_kind_name(ctx->kind), &ctx->reference_id);

    ctx->over_budget = 1;
    ngx_str_set(&ctx->status, "unknown");

    ngx_http_momo_error_set(&err, NGX_HTTP_SERVICE_UNAVAILABLE,
                            "STATUS_RATE_LIMITED",
                            "MTN already has an operation for this "
                            "Idempotency-Key and the status queries MTN "
                            "allows for this second are used; retry with "
                            "the same Idempotency-Key");
    err.retryable = 1;

    return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_UNAVAILABLE);
}


/*
 * MTN's answer to that check, in *b: NGX_OK when MTN shows the operation
 * with its status and amount, to compare with the request's payload;
 * NGX_AGAIN when MTN refused the token (the caller may ask again with a
 * new one); NGX_DECLINED when it proves nothing (an error, 404, no or an
 * unreadable answer).
 */

ngx_int_t
ngx_http_momo_status_rechecked(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_http_momo_mtn_body_t *b)
{
    ngx_http_momo_call_t  *call;

    call = ctx->call;
    ctx->upstream_status = call->status;

    if (ngx_http_momo_json_mtn(r->pool, call->response.data,
                               call->response.len, b)
        == NGX_ERROR)
    {
        return NGX_ERROR;
    }

    if (call->status == NGX_HTTP_UNAUTHORIZED && b->status_code == -1) {
        return NGX_AGAIN;
    }

    if (call->status != NGX_HTTP_OK || b->status.len == 0
        || b->amount.len == 0)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* GET requesttopay/{reference id}: the query, and the check after a 409 */

ngx_int_t
ngx_http_momo_status_call(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_step_pt next)
{
    ngx_http_momo_call_t  *call;

    /* a payment's, a refund's or a payout's: see ngx_http_momo_disb.c */

    call = ngx_http_momo_call_create(r, ctx, ngx_http_momo_op_leg(ctx, 1));
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->authorization = ctx->bearer;

    if (ngx_http_momo_product_url(r->pool, ctx,
                                  ngx_http_momo_op_path(ctx->kind, 1),
                                  &ctx->reference_id, &call->url)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_momo_call(r, ctx, call, next);
}


static ngx_int_t
ngx_http_momo_query_done(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_uint_t                 answered;
    ngx_http_momo_call_t      *call;
    ngx_http_momo_mtn_body_t   b;

    call = ctx->call;
    ctx->upstream_status = call->status;

    if (ngx_http_momo_json_mtn(r->pool, call->response.data,
                               call->response.len, &b)
        == NGX_ERROR)
    {
        return NGX_ERROR;
    }

    ctx->rec.kind = (u_char) ctx->kind;

    if (call->status == NGX_HTTP_OK && b.status.len) {
        ngx_http_momo_record_from_mtn(&ctx->rec, &b);
        ctx->rec.accepted = 1;

        if (ngx_http_momo_query_record(ctx, 1) != NGX_OK) {
            return NGX_ERROR;
        }

        return ctx->after_query(r, ctx);
    }

    if (call->status == NGX_HTTP_NOT_FOUND) {
        /* just after a 202, MTN may not show the payment yet */

        answered = !ctx->rec.accepted;

        if (answered) {
            ctx->rec.state = NGX_HTTP_MOMO_ST_NOT_FOUND;
        }

        if (ngx_http_momo_query_record(ctx, answered) != NGX_OK) {
            return NGX_ERROR;
        }

        return ctx->after_query(r, ctx);
    }

    if (call->status == 0) {
        /* no answer: the next poll asks MTN at once */
        ngx_http_momo_record_unquery(ctx->zone, ctx->reference_id.data,
                                     ctx->query_lease);
        ctx->query_lease = 0;

    } else {
        (void) ngx_http_momo_query_record(ctx, 0);
    }

    if (call->status == NGX_HTTP_UNAUTHORIZED && b.status_code == -1) {
        return ngx_http_momo_token_rejected(r, ctx, ngx_http_momo_query_send);
    }

    return ngx_http_momo_query_failed(r, ctx, &b);
}


/*
 * MTN's answer, or its absence, ends the query lease; "answered": MTN
 * gave a status (or said it has none), which dates the record
 */

static ngx_int_t
ngx_http_momo_query_record(ngx_http_momo_ctx_t *ctx, ngx_uint_t answered)
{
    ngx_uint_t  lease;

    lease = ctx->query_lease;
    ctx->query_lease = 0;

    if (answered) {
        return ngx_http_momo_record_answer(ctx->zone, &ctx->rec, lease);
    }

    return ngx_http_momo_record_update(ctx->zone, &ctx->rec, lease);
}


static ngx_int_t
ngx_http_momo_query_failed(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_mtn_body_t *b)
{
    ngx_http_momo_error_t  err;

    if (ctx->call->status == 0) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "momo: no answer from MTN for the status of \"%V\" "
                      "(nginx code %i)", &ctx->reference_id, ctx->call->rc);

        ngx_http_momo_error_set(&err, NGX_HTTP_GATEWAY_TIME_OUT,
                                "UPSTREAM_TIMEOUT",
                                "MTN did not answer in time; ask again");
        err.retryable = 1;

        return ngx_http_momo_fail(r, ctx, &err, 0);
    }

    return ngx_http_momo_mtn_error(r, ctx, b);
}
