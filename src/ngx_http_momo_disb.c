
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * What payments, refunds and payouts share (which MTN product and which
 * internal location an operation's calls use, the paths of its POST and
 * status GET, its callback URL), and the life of a refund or a payout
 * once its kind-specific checks passed (ngx_http_momo_refund.c,
 * ngx_http_momo_payout.c): an Idempotency-Key is required, the ledger
 * in the zone decides whether this try may send it, and it is never sent
 * while the outcome of an earlier try is unknown.  momo_refund_status
 * and momo_payout_status are momo_status with the kind of their location.
 */


#include "ngx_http_momo_module.h"


#define NGX_HTTP_MOMO_DISB_BODY_MAX  16384
#define NGX_HTTP_MOMO_DISB_RESEND    60      /* s without MTN knowing it */


static ngx_int_t ngx_http_momo_disb_json(ngx_http_request_t *r);
static ngx_int_t ngx_http_momo_disb_body(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_disb_token(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_disb_settle(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_uint_t state);
static ngx_int_t ngx_http_momo_disb_send(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_disb_done(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_disb_replay_done(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_disb_replay(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_disb_unknown(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_disb_pending(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_disb_timeout(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_disb_answer(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_uint_t result);
static ngx_int_t ngx_http_momo_disb_conflict(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_disb_exceeds(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);


static ngx_str_t  ngx_http_momo_op_paths[][2] = {
    { ngx_string("/v1_0/requesttopay"), ngx_string("/v1_0/requesttopay/") },
    { ngx_string("/v1_0/refund"), ngx_string("/v1_0/refund/") },
    { ngx_string("/v1_0/transfer"), ngx_string("/v1_0/transfer/") }
};


static ngx_str_t  ngx_http_momo_kind_names[] = {
    ngx_string("payment"),
    ngx_string("refund"),
    ngx_string("payout")
};


/* the internal location of a POST (get 0) or a GET (get 1) */

ngx_http_momo_leg_e
ngx_http_momo_op_leg(ngx_http_momo_ctx_t *ctx, ngx_uint_t get)
{
    if (ctx->product->index == NGX_HTTP_MOMO_COLLECTION) {
        return get ? NGX_HTTP_MOMO_LEG_STATUS : NGX_HTTP_MOMO_LEG_REQUESTTOPAY;
    }

    return get ? NGX_HTTP_MOMO_LEG_DISBURSEMENT_STATUS
               : NGX_HTTP_MOMO_LEG_DISBURSEMENT;
}


/* the path after the product: the POST (status 0) or the status GET */

ngx_str_t *
ngx_http_momo_op_path(ngx_uint_t kind, ngx_uint_t status)
{
    return &ngx_http_momo_op_paths[kind <= NGX_HTTP_MOMO_KIND_PAYOUT
                                   ? kind : 0][status ? 1 : 0];
}


ngx_str_t *
ngx_http_momo_kind_name(ngx_uint_t kind)
{
    return &ngx_http_momo_kind_names[kind <= NGX_HTTP_MOMO_KIND_PAYOUT
                                     ? kind : 0];
}


/* an operation's calls go to its product: refunds and payouts pay out */

void
ngx_http_momo_op_kind(ngx_http_momo_ctx_t *ctx, ngx_uint_t kind)
{
    ngx_uint_t  product;

    product = (kind == NGX_HTTP_MOMO_KIND_PAYMENT)
              ? NGX_HTTP_MOMO_COLLECTION : NGX_HTTP_MOMO_DISBURSEMENT;

    if (ctx->product != &ctx->mlcf->product[product]) {
        /* another product, another token */
        ctx->bearer.len = 0;
        ctx->token_retried = 0;
    }

    ctx->kind = kind;
    ctx->product = &ctx->mlcf->product[product];
}


/*
 * The front of momo_refund and momo_payout: POST, JSON, and an
 * Idempotency-Key, required here: money going out is never sent twice,
 * so every try must name the operation it repeats.
 */

ngx_int_t
ngx_http_momo_disb_handler(ngx_http_request_t *r, ngx_http_momo_step_pt start)
{
    ngx_str_t                   allow = ngx_string("POST");
    ngx_str_t                   name = ngx_string("http_idempotency_key");
    ngx_http_momo_ctx_t        *ctx;
    ngx_http_momo_error_t       err;
    ngx_http_variable_value_t  *key;

    ctx = ngx_http_momo_ctx_create(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->disb = ngx_pcalloc(r->pool, sizeof(ngx_http_momo_disb_t));
    if (ctx->disb == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->disb->start = start;
    ngx_http_momo_op_kind(ctx, ctx->mlcf->handler_kind);

    if (r->method != NGX_HTTP_POST) {
        if (ngx_http_momo_header(r, "Allow", &allow) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_momo_error_set(&err, NGX_HTTP_NOT_ALLOWED,
                                "METHOD_NOT_ALLOWED", "use POST");
        goto refuse;
    }

    if (ngx_http_momo_disb_json(r) != NGX_OK) {
        ngx_http_momo_error_set(&err, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                "UNSUPPORTED_MEDIA_TYPE",
                                "send the body as Content-Type: "
                                "application/json");
        goto refuse;
    }

    key = ngx_http_get_variable(r, &name, ngx_hash_key(name.data, name.len));

    if (key == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (key->not_found || key->len == 0) {
        ngx_http_momo_error_set(&err, NGX_HTTP_BAD_REQUEST,
                                "IDEMPOTENCY_KEY_REQUIRED",
                                "refunds and payouts need an Idempotency-Key "
                                "header: retry with the same key, never "
                                "without");
        goto refuse;
    }

    ctx->idempotency_key.data = key->data;
    ctx->idempotency_key.len = key->len;

    if (ngx_http_momo_validate_idempotency_key(&ctx->idempotency_key)
        != NGX_OK)
    {
        ngx_http_momo_error_set(&err, NGX_HTTP_BAD_REQUEST,
                                "INVALID_IDEMPOTENCY_KEY",
                                "Idempotency-Key must be 1 to 255 "
                                "printable characters without spaces");
        goto refuse;
    }

    r->request_body_in_single_buf = 1;

    return ngx_http_momo_start_with_body(r, ctx, ngx_http_momo_disb_body);

refuse:

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_INVALID);
}


static ngx_int_t
ngx_http_momo_disb_body(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_int_t               rc;
    ngx_str_t               body;
    ngx_http_momo_error_t   err;

    rc = ngx_http_momo_read_body(r, NGX_HTTP_MOMO_DISB_BODY_MAX, &body);

    if (rc == NGX_OK) {
        rc = ngx_http_momo_json_payment(r->pool, body.data, body.len,
                                        &ctx->payment, &err);

    } else if (rc == NGX_DECLINED) {
        ngx_http_momo_error_set(&err, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                "BODY_TOO_LARGE",
                                "the body is larger than 16k");
    }

    if (rc == NGX_OK) {
        return ctx->disb->start(r, ctx);
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_INVALID);
    }

    return rc;
}


/* "application/json", alone or with parameters; not "application/jsonp" */

static ngx_int_t
ngx_http_momo_disb_json(ngx_http_request_t *r)
{
    ngx_str_t  *v;

    if (r->headers_in.content_type == NULL) {
        return NGX_DECLINED;
    }

    v = &r->headers_in.content_type->value;

    if (v->len < 16
        || ngx_strncasecmp(v->data, (u_char *) "application/json", 16) != 0
        || (v->len > 16 && v->data[16] != ';' && v->data[16] != ' '
            && v->data[16] != '\t'))
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * The operation's reference id: HMAC(secret, kind|user|key), so that
 * every try with one key reaches MTN with one X-Reference-Id.
 */

ngx_int_t
ngx_http_momo_disb_reference(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    u_char                *p;
    ngx_str_t              material, *kind, *user;
    ngx_http_momo_disb_t  *d;

    d = ctx->disb;
    kind = ngx_http_momo_kind_name(ctx->kind);
    user = ctx->product->api_user;

    material.len = kind->len + 1 + user->len + 1 + ctx->idempotency_key.len;
    material.data = ngx_pnalloc(r->pool, material.len);
    if (material.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(material.data, kind->data, kind->len);
    *p++ = '|';
    p = ngx_cpymem(p, user->data, user->len);
    *p++ = '|';
    ngx_memcpy(p, ctx->idempotency_key.data, ctx->idempotency_key.len);

    d->ref.data = ngx_pnalloc(r->pool, NGX_HTTP_MOMO_UUID_LEN);
    if (d->ref.data == NULL) {
        return NGX_ERROR;
    }

    d->ref.len = NGX_HTTP_MOMO_UUID_LEN;
    d->op.ref = d->ref.data;
    d->op.kind = ctx->kind;

    return ngx_http_momo_uuid_derive(&ctx->mlcf->secret, &material,
                                     d->ref.data);
}


/*
 * The ledger decides what this try may do; the caller has filled
 * d->op, d->body and ctx->rec (the operation as the zone should show it).
 */

ngx_int_t
ngx_http_momo_disb_begin(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_int_t                   rc;
    ngx_uint_t                  serial;
    ngx_http_momo_disb_t       *d;
    ngx_http_momo_main_conf_t  *mmcf;

    d = ctx->disb;
    mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);

    ctx->reference_id = d->ref;
    ngx_http_momo_op_kind(ctx, d->op.kind);

    serial = ngx_http_momo_lease_serial();

    rc = ngx_http_momo_ledger_begin(mmcf->shm_zone, &d->op,
                                    ngx_http_momo_send_time(r, ctx), serial);

    switch (rc) {

    case NGX_OK:
        /* the entry is the request's until its answer or its end */
        d->lease = serial;
        break;

    case NGX_DONE:
        /* MTN has it: answer with what it says */
        ctx->query_interval = 0;
        return ngx_http_momo_query(r, ctx, ngx_http_momo_disb_replay);

    case NGX_AGAIN:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "momo: %V \"%V\" was tried before without an answer "
                      "from MTN: asking its status before anything else",
                      ngx_http_momo_kind_name(ctx->kind), &d->ref);

        ctx->query_interval = 0;
        return ngx_http_momo_query(r, ctx, ngx_http_momo_disb_unknown);

    case NGX_BUSY:
        return ngx_http_momo_disb_refuse(r, ctx, NGX_HTTP_CONFLICT,
                                         "IDEMPOTENCY_KEY_IN_FLIGHT",
                                         "the first request with this "
                                         "Idempotency-Key is still being "
                                         "sent; retry in a second");

    case NGX_ABORT:
        return ngx_http_momo_disb_conflict(r, ctx);

    case NGX_DECLINED:
        return ngx_http_momo_disb_exceeds(r, ctx);

    default:
        return ngx_http_momo_disb_refuse(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "ZONE_FULL",
                                         "the momo zone has no room for "
                                         "this operation; nothing was "
                                         "sent");
    }

    ctx->rec.kind = (u_char) ctx->kind;

    return ngx_http_momo_disb_token(r, ctx);
}


/*
 * This request holds the operation now (ctx->disb->lease): its answer
 * settles it, else its end does (ngx_http_momo_release), whatever that
 * end is.
 */

static ngx_int_t
ngx_http_momo_disb_token(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_http_momo_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);

    /* in the zone before MTN sees it: a status query finds it */

    if (ngx_http_momo_record_update(mmcf->shm_zone, &ctx->rec, 0) != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "momo: %V \"%V\" could not be recorded in the zone",
                      ngx_http_momo_kind_name(ctx->kind), &ctx->disb->ref);
    }

    if (ctx->kind == NGX_HTTP_MOMO_KIND_PAYOUT) {
        return ngx_http_momo_check_holder(r, ctx, ngx_http_momo_disb_send);
    }

    return ngx_http_momo_with_token(r, ctx, ngx_http_momo_disb_send);
}


/* an answer that is not MTN's on the operation: the lease is given back */

static ngx_int_t
ngx_http_momo_disb_settle(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_uint_t state)
{
    ngx_uint_t  lease;

    lease = ctx->disb->lease;

    if (lease == 0) {
        return NGX_OK;
    }

    ctx->disb->lease = 0;
    ngx_http_momo_ledger_end(ctx->zone, ctx->disb->ref.data, state, lease);

    return NGX_OK;
}


/*
 * The request ends (client gone, worker exiting, an error) while it was
 * sending: once the POST went out, MTN may have the operation, also while
 * its status is asked after MTN's 409.
 */

void
ngx_http_momo_disb_release(ngx_http_momo_ctx_t *ctx)
{
    ngx_uint_t  lease;

    if (ctx->disb == NULL || ctx->disb->lease == 0) {
        return;
    }

    lease = ctx->disb->lease;
    ctx->disb->lease = 0;

    ngx_http_momo_ledger_end(ctx->zone, ctx->disb->ref.data,
                             ctx->disb->posted ? NGX_HTTP_MOMO_OP_UNKNOWN
                                               : NGX_HTTP_MOMO_OP_RELEASED,
                             lease);
}


static ngx_int_t
ngx_http_momo_disb_send(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_http_momo_call_t  *call;
    ngx_http_momo_disb_t  *d;

    d = ctx->disb;

    call = ngx_http_momo_call_create(r, ctx, ngx_http_momo_op_leg(ctx, 0));
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->method = NGX_HTTP_POST;
    call->reference_id = d->ref;
    call->body = d->body;

    call->authorization = ctx->bearer;

    if (ngx_http_momo_product_url(r->pool, ctx,
                                  ngx_http_momo_op_path(ctx->kind, 0),
                                  NULL, &call->url)
        != NGX_OK
        || ngx_http_momo_op_callback_url(r, ctx, &call->callback_url)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    d->posted = 1;

    return ngx_http_momo_call(r, ctx, call, ngx_http_momo_disb_done);
}


/*
 * MTN's answer to the POST.  Only a refusal MTN is known to make before
 * doing anything (a 4xx, or a code such as INVALID_CURRENCY) gives the
 * reservation back; no answer, or an answer the module cannot read,
 * leaves the operation unknown until MTN's status says otherwise.
 */

static ngx_int_t
ngx_http_momo_disb_done(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_uint_t                  status, refused;
    ngx_http_momo_mtn_body_t    b;
    ngx_http_momo_main_conf_t  *mmcf;

    status = ctx->call->status;
    ctx->upstream_status = status;

    if (status == 0 || status == NGX_HTTP_BAD_GATEWAY
        || status == NGX_HTTP_GATEWAY_TIME_OUT)
    {
        (void) ngx_http_momo_disb_settle(r, ctx, NGX_HTTP_MOMO_OP_UNKNOWN);
        return ngx_http_momo_disb_timeout(r, ctx);
    }

    if (status == NGX_HTTP_ACCEPTED) {
        mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);

        (void) ngx_http_momo_disb_settle(r, ctx, NGX_HTTP_MOMO_OP_ACCEPTED);

        ctx->rec.state = NGX_HTTP_MOMO_ST_PENDING;
        ctx->rec.accepted = 1;
        (void) ngx_http_momo_record_update(mmcf->shm_zone, &ctx->rec, 0);

        return ngx_http_momo_disb_answer(r, ctx, NGX_HTTP_MOMO_PAY_ACCEPTED);
    }

    if (ngx_http_momo_json_mtn(r->pool, ctx->call->response.data,
                               ctx->call->response.len, &b)
        == NGX_ERROR)
    {
        return NGX_ERROR;
    }

    if (status == NGX_HTTP_CONFLICT) {
        /* RESOURCE_ALREADY_EXIST: an earlier try reached MTN */
        return ngx_http_momo_status_recheck(r, ctx,
                                            ngx_http_momo_disb_replay_done);
    }

    if (status == NGX_HTTP_UNAUTHORIZED && b.status_code == -1) {
        return ngx_http_momo_token_rejected(r, ctx, ngx_http_momo_disb_send);
    }

    refused = (status == NGX_HTTP_BAD_REQUEST
               || status == NGX_HTTP_UNAUTHORIZED
               || status == NGX_HTTP_FORBIDDEN
               || status == NGX_HTTP_NOT_FOUND
               || ngx_http_momo_mtn_refused(&b.code));

    (void) ngx_http_momo_disb_settle(r, ctx, refused
                                             ? NGX_HTTP_MOMO_OP_RELEASED
                                             : NGX_HTTP_MOMO_OP_UNKNOWN);

    return ngx_http_momo_mtn_error(r, ctx, &b);
}


/* after MTN's 409: the operation MTN has under this id must be this one */

static ngx_int_t
ngx_http_momo_disb_replay_done(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx)
{
    ngx_int_t                   rc;
    ngx_http_momo_disb_t       *d;
    ngx_http_momo_mtn_body_t    b;
    ngx_http_momo_main_conf_t  *mmcf;

    d = ctx->disb;

    rc = ngx_http_momo_status_rechecked(r, ctx, &b);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc != NGX_OK) {
        /* MTN has it (its 409), with what nobody can tell now */
        (void) ngx_http_momo_disb_settle(r, ctx, NGX_HTTP_MOMO_OP_UNKNOWN);
        return ngx_http_momo_disb_pending(r, ctx);
    }

    if (ngx_http_momo_amount_hundredths(&b.amount) != d->op.amount
        || b.currency.len != d->op.currency.len
        || ngx_strncmp(b.currency.data, d->op.currency.data,
                       b.currency.len) != 0
        || (d->op.phone.len
            && (b.payer.len != d->op.phone.len
                || ngx_strncmp(b.payer.data, d->op.phone.data,
                               b.payer.len) != 0)))
    {
        (void) ngx_http_momo_disb_settle(r, ctx, NGX_HTTP_MOMO_OP_RELEASED);
        return ngx_http_momo_disb_conflict(r, ctx);
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);

    (void) ngx_http_momo_disb_settle(r, ctx, NGX_HTTP_MOMO_OP_ACCEPTED);

    ngx_http_momo_record_from_mtn(&ctx->rec, &b);
    ctx->rec.accepted = 1;
    (void) ngx_http_momo_record_update(mmcf->shm_zone, &ctx->rec, 0);

    return ngx_http_momo_disb_answer(r, ctx, NGX_HTTP_MOMO_PAY_REPLAYED);
}


/* the ledger says MTN has it: the zone or MTN's status says how it is */

static ngx_int_t
ngx_http_momo_disb_replay(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    if (!ngx_http_momo_state_final(ctx->rec.state)) {
        /* just after its 202, MTN may not show it yet */
        ctx->rec.state = NGX_HTTP_MOMO_ST_PENDING;
    }

    return ngx_http_momo_disb_answer(r, ctx, NGX_HTTP_MOMO_PAY_REPLAYED);
}


/*
 * An earlier try ended without MTN's answer, and MTN's status was just
 * asked: MTN has it, or it does not (yet).  Sent again only when MTN
 * still does not know it long after that try, with the same reference id.
 */

static ngx_int_t
ngx_http_momo_disb_unknown(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_uint_t                  serial;
    ngx_http_momo_disb_t       *d;
    ngx_http_momo_main_conf_t  *mmcf;

    d = ctx->disb;
    mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);

    if (ctx->rec.accepted) {
        /* MTN's status proves it: no lease is needed to say so */
        ngx_http_momo_ledger_end(mmcf->shm_zone, d->ref.data,
                                 NGX_HTTP_MOMO_OP_ACCEPTED, 0);
        return ngx_http_momo_disb_replay(r, ctx);
    }

    if (ctx->rec.state != NGX_HTTP_MOMO_ST_NOT_FOUND
        || ngx_time() - d->op.sent < NGX_HTTP_MOMO_DISB_RESEND)
    {
        return ngx_http_momo_disb_pending(r, ctx);
    }

    serial = ngx_http_momo_lease_serial();

    if (ngx_http_momo_ledger_resend(mmcf->shm_zone, d->ref.data,
                                    ngx_http_momo_send_time(r, ctx), serial)
        != NGX_OK)
    {
        return ngx_http_momo_disb_pending(r, ctx);
    }

    d->lease = serial;

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "momo: MTN does not know %V \"%V\" %T s after a try "
                  "without an answer: sending it again with the same "
                  "reference id", ngx_http_momo_kind_name(ctx->kind),
                  &d->ref, ngx_time() - d->op.sent);

    ctx->rec.state = NGX_HTTP_MOMO_ST_UNKNOWN;

    return ngx_http_momo_disb_token(r, ctx);
}


static ngx_int_t
ngx_http_momo_disb_pending(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_str_set(&ctx->status, "unknown");

    return ngx_http_momo_disb_refuse(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "OUTCOME_UNKNOWN",
                                     "an earlier try with this "
                                     "Idempotency-Key got no answer from "
                                     "MTN, and MTN does not show it yet; "
                                     "nothing was sent again: retry later "
                                     "with the same key");
}


static ngx_int_t
ngx_http_momo_disb_timeout(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_http_momo_error_t  err;

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "momo: no answer from MTN for %V \"%V\" (HTTP %ui, "
                  "nginx code %i), outcome unknown",
                  ngx_http_momo_kind_name(ctx->kind), &ctx->disb->ref,
                  ctx->call->status, ctx->call->rc);

    ngx_str_set(&ctx->status, "unknown");

    ngx_http_momo_error_set(&err, NGX_HTTP_GATEWAY_TIME_OUT,
                            "UPSTREAM_TIMEOUT",
                            "MTN did not answer in time; the operation may "
                            "exist: retry with the same Idempotency-Key, "
                            "which asks MTN before sending anything");
    err.retryable = 1;

    return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_TIMEOUT);
}


static ngx_int_t
ngx_http_momo_disb_answer(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_uint_t result)
{
    ngx_uint_t                  n;
    ngx_http_momo_disb_t       *d;
    ngx_http_momo_json_field_t  f[8];

    static ngx_str_t  messages[][2] = {
        { ngx_string("Refund request sent to MTN"),
          ngx_string("Refund request was already sent for this "
                     "Idempotency-Key") },
        { ngx_string("Payout request sent to MTN"),
          ngx_string("Payout request was already sent for this "
                     "Idempotency-Key") }
    };

    d = ctx->disb;

    ngx_http_momo_count_op(r, ctx->kind, result);

    ctx->status = *ngx_http_momo_state_name(ctx->rec.state);

    ngx_str_set(&f[0].key, "success");
    ngx_str_set(&f[0].value, "true");
    f[0].type = NGX_HTTP_MOMO_JSON_RAW;

    if (ctx->kind == NGX_HTTP_MOMO_KIND_REFUND) {
        ngx_str_set(&f[1].key, "refund_id");
    } else {
        ngx_str_set(&f[1].key, "payout_id");
    }

    f[1].value = d->ref;
    f[1].type = NGX_HTTP_MOMO_JSON_STRING;
    ngx_str_set(&f[2].key, "reference_id");
    f[2].value = d->ref;
    f[2].type = NGX_HTTP_MOMO_JSON_STRING;

    n = 3;

    if (ctx->kind == NGX_HTTP_MOMO_KIND_REFUND) {
        ngx_str_set(&f[n].key, "payment_reference_id");
        f[n].value = d->payment_ref;
        f[n++].type = NGX_HTTP_MOMO_JSON_STRING;
    }

    ngx_str_set(&f[n].key, "status");
    f[n].value = ctx->status;
    f[n++].type = NGX_HTTP_MOMO_JSON_STRING;
    ngx_str_set(&f[n].key, "amount");
    f[n].value = ctx->payment.amount;
    f[n++].type = NGX_HTTP_MOMO_JSON_STRING;
    ngx_str_set(&f[n].key, "currency");
    f[n].value = ctx->payment.currency;
    f[n++].type = NGX_HTTP_MOMO_JSON_STRING;
    ngx_str_set(&f[n].key, "message");
    f[n].value = messages[ctx->kind == NGX_HTTP_MOMO_KIND_PAYOUT]
                         [result != NGX_HTTP_MOMO_PAY_ACCEPTED];
    f[n++].type = NGX_HTTP_MOMO_JSON_STRING;

    return ngx_http_momo_reply(r, NGX_HTTP_OK, f, n);
}


static ngx_int_t
ngx_http_momo_disb_conflict(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    return ngx_http_momo_disb_refuse(r, ctx, NGX_HTTP_MOMO_UNPROCESSABLE,
                                     "IDEMPOTENCY_KEY_REUSED",
                                     "this Idempotency-Key was used for "
                                     "another operation (another payment, "
                                     "amount, currency or phone)");
}


static ngx_int_t
ngx_http_momo_disb_exceeds(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    u_char                 *p;
    int64_t                 left;
    ngx_http_momo_op_t     *op;
    ngx_http_momo_error_t   err;

    op = &ctx->disb->op;
    left = op->total - op->refunded;

    ngx_http_momo_error_set(&err, NGX_HTTP_MOMO_UNPROCESSABLE,
                            "REFUND_EXCEEDS_PAYMENT", "");

    p = ngx_pnalloc(r->pool, 160);
    if (p == NULL) {
        return NGX_ERROR;
    }

    err.message.data = p;
    err.message.len = ngx_snprintf(p, 160, "the refunds of this payment "
                                   "would exceed it: %L.%02L %V at most "
                                   "can still be refunded", left / 100,
                                   left % 100, &op->currency)
                      - p;

    return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_INVALID);
}


ngx_int_t
ngx_http_momo_disb_refuse(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_uint_t status, char *code, char *message)
{
    ngx_uint_t             result;
    ngx_http_momo_error_t  err;

    ngx_http_momo_error_set(&err, status, code, message);

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        err.retryable = 1;
        result = NGX_HTTP_MOMO_PAY_UNAVAILABLE;

    } else if (ngx_strncmp(code, "IDEMPOTENCY", 11) == 0) {
        err.retryable = (status == NGX_HTTP_CONFLICT);
        result = NGX_HTTP_MOMO_PAY_CONFLICT;

    } else {
        result = NGX_HTTP_MOMO_PAY_INVALID;
    }

    return ngx_http_momo_fail(r, ctx, &err, result);
}


void
ngx_http_momo_count_op(ngx_http_request_t *r, ngx_uint_t kind,
    ngx_uint_t result)
{
    ngx_http_momo_counters_t   *counters;
    ngx_http_momo_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);
    counters = ngx_http_momo_counters(mmcf->shm_zone);

    if (counters == NULL || result >= NGX_HTTP_MOMO_PAY_MAX) {
        return;
    }

    if (kind == NGX_HTTP_MOMO_KIND_REFUND) {
        ngx_atomic_fetch_add(&counters->refunds[result], 1);

    } else if (kind == NGX_HTTP_MOMO_KIND_PAYOUT) {
        ngx_atomic_fetch_add(&counters->payouts[result], 1);
    }
}


/*
 * momo_callback_url/{ref}/{token}: a payment's token is HMAC(ref), a
 * refund's or a payout's HMAC(kind|ref), so the callback tells which
 * MTN product to verify it with.
 */

ngx_int_t
ngx_http_momo_op_callback_url(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_str_t *out)
{
    u_char     *p;
    ngx_str_t  *base, material, *kind;

    base = &ctx->mlcf->acc[NGX_HTTP_MOMO_ACC_CALLBACK_URL];

    if (base->len == 0) {
        ngx_str_null(out);
        return NGX_OK;
    }

    if (ctx->kind == NGX_HTTP_MOMO_KIND_PAYMENT) {
        material = ctx->reference_id;

    } else {
        kind = ngx_http_momo_kind_name(ctx->kind);

        material.len = kind->len + 1 + NGX_HTTP_MOMO_UUID_LEN;
        material.data = ngx_pnalloc(r->pool, material.len);
        if (material.data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(material.data, kind->data, kind->len);
        *p++ = '|';
        ngx_memcpy(p, ctx->reference_id.data, NGX_HTTP_MOMO_UUID_LEN);
    }

    out->len = base->len + 1 + NGX_HTTP_MOMO_UUID_LEN + 1
               + NGX_HTTP_MOMO_CB_TOKEN_LEN;

    p = ngx_pnalloc(r->pool, out->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;
    p = ngx_cpymem(p, base->data, base->len);
    *p++ = '/';
    p = ngx_cpymem(p, ctx->reference_id.data, NGX_HTTP_MOMO_UUID_LEN);
    *p++ = '/';

    return ngx_http_momo_callback_token(&ctx->mlcf->secret, &material, p);
}


/* the kind whose callback token this is, or NGX_DECLINED */

ngx_int_t
ngx_http_momo_callback_kind(ngx_http_momo_loc_conf_t *mlcf, ngx_str_t *ref,
    u_char *token)
{
    u_char      *p;
    ngx_str_t    material, *kind;
    ngx_uint_t   k;
    u_char       buf[sizeof("payment|") - 1 + NGX_HTTP_MOMO_UUID_LEN];
    u_char       expected[NGX_HTTP_MOMO_CB_TOKEN_LEN];

    for (k = NGX_HTTP_MOMO_KIND_PAYMENT; k <= NGX_HTTP_MOMO_KIND_PAYOUT; k++)
    {
        if (k == NGX_HTTP_MOMO_KIND_PAYMENT) {
            material = *ref;

        } else if (mlcf->handler_products & (1 << NGX_HTTP_MOMO_DISBURSEMENT))
        {
            kind = ngx_http_momo_kind_name(k);
            p = ngx_cpymem(buf, kind->data, kind->len);
            *p++ = '|';
            p = ngx_cpymem(p, ref->data, NGX_HTTP_MOMO_UUID_LEN);

            material.data = buf;
            material.len = p - buf;

        } else {
            break;
        }

        if (ngx_http_momo_callback_token(&mlcf->secret, &material, expected)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ngx_http_momo_token_equal(expected, token,
                                      NGX_HTTP_MOMO_CB_TOKEN_LEN)
            == NGX_OK)
        {
            return k;
        }
    }

    return NGX_DECLINED;
}
