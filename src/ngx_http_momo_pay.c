
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * momo_pay: POST /api/payments/mtn-momo.  Validate, fix the reference id
 * (derived from the Idempotency-Key, so a retry reaches MTN with the same
 * X-Reference-Id and cannot charge twice), claim the key's record in the
 * zone before MTN sees it, then token -> requesttopay, and on MTN's 409 a
 * status query that tells an honest retry from a reused key.  When nothing
 * proves the payload a key stands for, the answer is a retryable error,
 * never "already sent".
 */


#include "ngx_http_momo_module.h"


#define NGX_HTTP_MOMO_BODY_MAX   16384

/* MTN's payer object up to the phone, as ngx_http_momo_json_render writes */
#define NGX_HTTP_MOMO_PAYER  "{\"partyIdType\": \"MSISDN\", \"partyId\": \""


static ngx_int_t ngx_http_momo_pay_start(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_pay_reference(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_pay_claim(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_pay_same(ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_mtn_body_t *b);
static void ngx_http_momo_pay_record(ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_pay_send(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_pay_body_json(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_str_t *out);
static ngx_int_t ngx_http_momo_pay_done(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_pay_replay(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_pay_replay_done(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_pay_known(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_pay_replayed(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_pay_answer(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_uint_t result);
static ngx_int_t ngx_http_momo_pay_conflict(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_pay_in_flight(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_pay_unverified(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_pay_unknown(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_pay_unsure(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_http_momo_error_t *err, ngx_uint_t forget,
    ngx_uint_t result);
static ngx_table_elt_t *ngx_http_momo_find_header(ngx_http_request_t *r,
    char *name);


static ngx_str_t  ngx_http_momo_rtp_path =
    ngx_string("/collection/v1_0/requesttopay");
static ngx_str_t  ngx_http_momo_json_type = ngx_string("application/json");


ngx_int_t
ngx_http_momo_pay_handler(ngx_http_request_t *r)
{
    ngx_str_t               allow = ngx_string("POST");
    ngx_table_elt_t        *h;
    ngx_http_momo_ctx_t    *ctx;
    ngx_http_momo_error_t   err;

    ctx = ngx_http_momo_ctx_create(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->pay = 1;

    if (r->method != NGX_HTTP_POST) {
        ngx_http_momo_error_set(&err, NGX_HTTP_NOT_ALLOWED,
                                "METHOD_NOT_ALLOWED",
                                "use POST to request a payment");
        goto refuse;
    }

    /* "application/json" alone or with parameters, not "application/jsonp" */

    h = r->headers_in.content_type;

    if (h == NULL
        || h->value.len < ngx_http_momo_json_type.len
        || (ngx_strncmp(h->value.data, ngx_http_momo_json_type.data,
                        ngx_http_momo_json_type.len) != 0
            && ngx_strncasecmp(h->value.data, ngx_http_momo_json_type.data,
                               ngx_http_momo_json_type.len) != 0)
        || (h->value.len > ngx_http_momo_json_type.len
            && h->value.data[ngx_http_momo_json_type.len] != ';'
            && h->value.data[ngx_http_momo_json_type.len] != ' '
            && h->value.data[ngx_http_momo_json_type.len] != '\t'))
    {
        ngx_http_momo_error_set(&err, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                "UNSUPPORTED_MEDIA_TYPE",
                                "send the payment as Content-Type: "
                                "application/json");
        goto refuse;
    }

    if (r->headers_in.content_length_n > NGX_HTTP_MOMO_BODY_MAX) {
        ngx_http_momo_error_set(&err, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                "BODY_TOO_LARGE",
                                "the payment body is larger than 16k");
        goto refuse;
    }

    h = ngx_http_momo_find_header(r, "Idempotency-Key");

    if (h) {
        if (ngx_http_momo_validate_idempotency_key(&h->value) != NGX_OK) {
            ngx_http_momo_error_set(&err, NGX_HTTP_BAD_REQUEST,
                                    "INVALID_IDEMPOTENCY_KEY",
                                    "Idempotency-Key must be 1 to 255 "
                                    "printable characters without spaces");
            goto refuse;
        }

        ctx->idempotency_key = h->value;
    }

    return ngx_http_momo_start_with_body(r, ctx, ngx_http_momo_pay_start);

refuse:

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (err.status == NGX_HTTP_NOT_ALLOWED
        && ngx_http_momo_header(r, "Allow", &allow) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_momo_count_payment(r, NGX_HTTP_MOMO_PAY_INVALID);
    ctx->error = err.code;

    return ngx_http_momo_reply_error(r, &err);
}


static ngx_int_t
ngx_http_momo_pay_start(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_int_t               rc;
    ngx_str_t               body;
    ngx_http_momo_error_t   err;

    rc = ngx_http_momo_read_body(r, NGX_HTTP_MOMO_BODY_MAX, &body);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ngx_http_momo_error_set(&err, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                "BODY_TOO_LARGE",
                                "the payment body is larger than 16k");
        return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_INVALID);
    }

    rc = ngx_http_momo_json_payment(r->pool, body.data, body.len,
                                    &ctx->payment, &err);

    if (rc == NGX_OK) {
        rc = ngx_http_momo_validate_payment(r->pool, &ctx->payment,
                                            &ctx->mlcf->currency, &err);
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_INVALID);
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_momo_pay_reference(r, ctx);
}


/*
 * With an Idempotency-Key the reference id is HMAC(secret, user|key), the
 * same on every gateway sharing the configuration.
 */

static ngx_int_t
ngx_http_momo_pay_reference(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    u_char     *p;
    ngx_str_t   material, *user;

    p = ngx_pnalloc(r->pool, NGX_HTTP_MOMO_UUID_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->reference_id.data = p;
    ctx->reference_id.len = NGX_HTTP_MOMO_UUID_LEN;

    if (ctx->idempotency_key.len == 0) {
        if (ngx_http_momo_uuid_random(p) != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_http_momo_pay_record(ctx);
        return ngx_http_momo_check_holder(r, ctx, ngx_http_momo_pay_send);
    }

    user = &ctx->mlcf->acc[NGX_HTTP_MOMO_ACC_API_USER];

    material.len = user->len + 1 + ctx->idempotency_key.len;
    material.data = ngx_pnalloc(r->pool, material.len);
    if (material.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(material.data, user->data, user->len);
    *p++ = '|';
    ngx_memcpy(p, ctx->idempotency_key.data, ctx->idempotency_key.len);

    if (ngx_http_momo_uuid_derive(&ctx->mlcf->secret, &material,
                                  ctx->reference_id.data)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_momo_pay_claim(r, ctx);
}


/*
 * The key's record decides, in one step under the zone lock: a payment in
 * flight (409), another payload (422), a payment MTN accepted (its current
 * status), or this request sends it, holding the key until it ends.
 */

static ngx_int_t
ngx_http_momo_pay_claim(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_int_t                   rc;
    ngx_uint_t                  fresh;
    ngx_http_momo_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);

    ngx_http_momo_pay_record(ctx);

    /* the lease dies with the request: see ngx_http_momo_release() */

    rc = ngx_http_momo_record_claim(mmcf->shm_zone, &ctx->rec,
                                    ngx_http_momo_send_time(r, ctx),
                                    &ctx->pay_owner,
                                    &fresh);

    switch (rc) {

    case NGX_OK:
        ctx->pay_fresh = fresh;

        return ngx_http_momo_check_holder(r, ctx, ngx_http_momo_pay_send);

    case NGX_BUSY:
        return ngx_http_momo_pay_in_flight(r, ctx);

    case NGX_DECLINED:
        return ngx_http_momo_pay_conflict(r, ctx);

    case NGX_DONE:
        return ngx_http_momo_pay_known(r, ctx);

    default:
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "momo: payment \"%V\" could not be recorded in the "
                      "zone", &ctx->reference_id);
        return NGX_ERROR;
    }
}


/*
 * Ends the payment lease this request holds, if any.  "forget": MTN may
 * not have this payload, which then proves nothing for the key.
 */

void
ngx_http_momo_pay_release(ngx_http_momo_ctx_t *ctx, ngx_uint_t forget)
{
    if (ctx->pay_owner == 0) {
        return;
    }

    ngx_http_momo_record_release(ctx->zone, ctx->reference_id.data,
                                 ctx->pay_owner, forget && ctx->pay_fresh);
    ctx->pay_owner = 0;
}


/* MTN's payment for this reference id has the retry's payload */

static ngx_int_t
ngx_http_momo_pay_same(ngx_http_momo_ctx_t *ctx, ngx_http_momo_mtn_body_t *b)
{
    ngx_http_momo_payment_t  *p;

    p = &ctx->payment;

    if (b->amount.len != p->amount.len
        || ngx_strncmp(b->amount.data, p->amount.data, b->amount.len) != 0
        || (b->currency.len
            && (b->currency.len != p->currency.len
                || ngx_strncmp(b->currency.data, p->currency.data,
                               b->currency.len) != 0))
        || (b->payer.len
            && (b->payer.len != p->phone.len
                || ngx_strncmp(b->payer.data, p->phone.data, b->payer.len)
                   != 0)))
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* the payment is in the zone before MTN sees it: a retry finds it */

static void
ngx_http_momo_pay_record(ngx_http_momo_ctx_t *ctx)
{
    ngx_http_momo_record_t   *rec;
    ngx_http_momo_payment_t  *p;

    rec = &ctx->rec;
    p = &ctx->payment;

    ngx_memzero(rec, sizeof(ngx_http_momo_record_t));
    ngx_memcpy(rec->reference_id, ctx->reference_id.data,
               NGX_HTTP_MOMO_UUID_LEN);

    rec->state = NGX_HTTP_MOMO_ST_UNKNOWN;
    rec->account = ctx->mlcf->account;      /* the reconciler's account */

    rec->amount_len = ngx_min(p->amount.len, sizeof(rec->amount));
    ngx_memcpy(rec->amount, p->amount.data, rec->amount_len);
    rec->currency_len = ngx_min(p->currency.len, sizeof(rec->currency));
    ngx_memcpy(rec->currency, p->currency.data, rec->currency_len);
    rec->phone_len = ngx_min(p->phone.len, sizeof(rec->phone));
    ngx_memcpy(rec->phone, p->phone.data, rec->phone_len);
    rec->external_id_len = ngx_min(p->external_id.len,
                                   sizeof(rec->external_id));
    ngx_memcpy(rec->external_id, p->external_id.data, rec->external_id_len);
}


static ngx_int_t
ngx_http_momo_pay_send(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_http_momo_call_t       *call;
    ngx_http_momo_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);

    if (ngx_http_momo_record_update(mmcf->shm_zone, &ctx->rec, 0) != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "momo: payment \"%V\" could not be recorded in the "
                      "zone", &ctx->reference_id);
    }

    call = ngx_http_momo_call_create(r, ctx, NGX_HTTP_MOMO_LEG_REQUESTTOPAY);
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->method = NGX_HTTP_POST;
    call->reference_id = ctx->reference_id;
    ctx->pay_sent = 1;

    call->authorization = ctx->bearer;

    if (ngx_http_momo_url(r->pool, ctx->mlcf, &ngx_http_momo_rtp_path,
                          NULL, &call->url)
        != NGX_OK
        || ngx_http_momo_pay_body_json(r, ctx, &call->body) != NGX_OK
        || ngx_http_momo_op_callback_url(r, ctx, &call->callback_url)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_momo_call(r, ctx, call, ngx_http_momo_pay_done);
}


static ngx_int_t
ngx_http_momo_pay_body_json(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_str_t *out)
{
    u_char                     *q;
    ngx_str_t                   payer;
    ngx_http_momo_payment_t    *p;
    ngx_http_momo_json_field_t  f[6];

    p = &ctx->payment;

    /*
     * the phone and the amount are digits after validation: the payer is
     * the phone between fixed text, with nothing to escape
     */

    payer.len = sizeof(NGX_HTTP_MOMO_PAYER) - 1 + p->phone.len + 2;
    payer.data = ngx_pnalloc(r->pool, payer.len);
    if (payer.data == NULL) {
        return NGX_ERROR;
    }

    q = ngx_cpymem(payer.data, NGX_HTTP_MOMO_PAYER,
                   sizeof(NGX_HTTP_MOMO_PAYER) - 1);
    q = ngx_cpymem(q, p->phone.data, p->phone.len);
    *q++ = '"';
    *q = '}';

    ngx_str_set(&f[0].key, "amount");
    f[0].value = p->amount;
    f[0].type = NGX_HTTP_MOMO_JSON_PLAIN;
    ngx_str_set(&f[1].key, "currency");
    f[1].value = p->currency;
    f[1].type = NGX_HTTP_MOMO_JSON_STRING;
    ngx_str_set(&f[2].key, "externalId");
    f[2].value = p->external_id;
    f[2].type = NGX_HTTP_MOMO_JSON_STRING;
    ngx_str_set(&f[3].key, "payer");
    f[3].value = payer;
    f[3].type = NGX_HTTP_MOMO_JSON_RAW;
    ngx_str_set(&f[4].key, "payerMessage");
    f[4].value = p->payer_message;
    f[4].type = NGX_HTTP_MOMO_JSON_STRING;
    ngx_str_set(&f[5].key, "payeeNote");
    f[5].value = p->payee_note;
    f[5].type = NGX_HTTP_MOMO_JSON_STRING;

    return ngx_http_momo_json_render(r->pool, f, 6, out);
}


static ngx_int_t
ngx_http_momo_pay_done(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_http_momo_call_t       *call;
    ngx_http_momo_mtn_body_t    b;
    ngx_http_momo_main_conf_t  *mmcf;

    call = ctx->call;
    ctx->upstream_status = call->status;

    if (call->status == 0 || call->status == NGX_HTTP_BAD_GATEWAY
        || call->status == NGX_HTTP_GATEWAY_TIME_OUT)
    {
        return ngx_http_momo_pay_unknown(r, ctx);
    }

    if (call->status == NGX_HTTP_ACCEPTED) {
        mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);

        ctx->rec.state = NGX_HTTP_MOMO_ST_PENDING;
        ctx->rec.accepted = 1;

        (void) ngx_http_momo_record_update(mmcf->shm_zone, &ctx->rec, 0);
        ngx_http_momo_pay_release(ctx, 0);

        return ngx_http_momo_pay_answer(r, ctx, NGX_HTTP_MOMO_PAY_ACCEPTED);
    }

    if (ngx_http_momo_json_mtn(r->pool, call->response.data,
                               call->response.len, &b)
        == NGX_ERROR)
    {
        return NGX_ERROR;
    }

    if (call->status == NGX_HTTP_CONFLICT) {
        /*
         * RESOURCE_ALREADY_EXIST: MTN has this reference id already, not
         * necessarily with this payload
         */
        ctx->pay_sent = 0;
        return ngx_http_momo_pay_replay(r, ctx);
    }

    if (call->status == NGX_HTTP_UNAUTHORIZED && b.status_code == -1) {
        return ngx_http_momo_token_rejected(r, ctx, ngx_http_momo_pay_send);
    }

    return ngx_http_momo_mtn_error(r, ctx, &b);
}


static ngx_int_t
ngx_http_momo_pay_replay(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    return ngx_http_momo_status_recheck(r, ctx,
                                        ngx_http_momo_pay_replay_done);
}


/*
 * After MTN's 409 only MTN's own status of the payment, with its amount,
 * proves what the key stands for: the same payload is answered as a
 * replay, another one is 422 and MTN's payment goes into the record.
 * Anything else (an error, 404, no answer) proves nothing: a retryable
 * error, and the record keeps nothing of this request.
 */

static ngx_int_t
ngx_http_momo_pay_replay_done(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx)
{
    ngx_int_t                   rc;
    ngx_uint_t                  same;
    ngx_http_momo_mtn_body_t    b;
    ngx_http_momo_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);

    rc = ngx_http_momo_status_rechecked(r, ctx, &b);

    switch (rc) {

    case NGX_OK:
        break;

    case NGX_AGAIN:
        return ngx_http_momo_token_rejected(r, ctx, ngx_http_momo_pay_replay);

    case NGX_DECLINED:
        return ngx_http_momo_pay_unverified(r, ctx);

    default:
        return NGX_ERROR;
    }

    same = (ngx_http_momo_pay_same(ctx, &b) == NGX_OK);

    ngx_http_momo_record_from_mtn(&ctx->rec, &b);
    ctx->rec.accepted = 1;

    (void) ngx_http_momo_record_update(mmcf->shm_zone, &ctx->rec, 0);
    ngx_http_momo_pay_release(ctx, 0);

    if (!same) {
        return ngx_http_momo_pay_conflict(r, ctx);
    }

    return ngx_http_momo_pay_answer(r, ctx, NGX_HTTP_MOMO_PAY_REPLAYED);
}


/*
 * A retry of a payment MTN accepted: its current status, final from the
 * zone, else from MTN within the once-a-second limit per reference.
 */

static ngx_int_t
ngx_http_momo_pay_known(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    if (ngx_http_momo_state_final(ctx->rec.state)) {
        return ngx_http_momo_pay_replayed(r, ctx);
    }

    return ngx_http_momo_query(r, ctx, ngx_http_momo_pay_replayed);
}


static ngx_int_t
ngx_http_momo_pay_replayed(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    return ngx_http_momo_pay_answer(r, ctx, NGX_HTTP_MOMO_PAY_REPLAYED);
}


static ngx_int_t
ngx_http_momo_pay_answer(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_uint_t result)
{
    ngx_http_momo_json_field_t  f[5];

    ngx_http_momo_count_payment(r, result);

    ctx->status = *ngx_http_momo_state_name(ctx->rec.state);

    ngx_str_set(&f[0].key, "success");
    ngx_str_set(&f[0].value, "true");
    f[0].type = NGX_HTTP_MOMO_JSON_RAW;

    /* a reference id this module made, a state name, its own message */

    ngx_str_set(&f[1].key, "payment_id");
    f[1].value = ctx->reference_id;
    f[1].type = NGX_HTTP_MOMO_JSON_PLAIN;
    ngx_str_set(&f[2].key, "reference_id");
    f[2].value = ctx->reference_id;
    f[2].type = NGX_HTTP_MOMO_JSON_PLAIN;
    ngx_str_set(&f[3].key, "status");
    f[3].value = ctx->status;
    f[3].type = NGX_HTTP_MOMO_JSON_PLAIN;
    ngx_str_set(&f[4].key, "message");
    f[4].type = NGX_HTTP_MOMO_JSON_PLAIN;

    if (result == NGX_HTTP_MOMO_PAY_ACCEPTED) {
        ngx_str_set(&f[4].value,
                    "Payment request sent to customer's mobile phone");

    } else {
        ngx_str_set(&f[4].value,
                    "Payment request was already sent for this "
                    "Idempotency-Key");
    }

    return ngx_http_momo_reply(r, NGX_HTTP_OK, f, 5);
}


static ngx_int_t
ngx_http_momo_pay_conflict(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_http_momo_error_t  err;

    ngx_http_momo_error_set(&err, NGX_HTTP_MOMO_UNPROCESSABLE,
                            "IDEMPOTENCY_KEY_REUSED",
                            "this Idempotency-Key was used for a payment "
                            "with another amount, currency or phone");

    return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_CONFLICT);
}


static ngx_int_t
ngx_http_momo_pay_in_flight(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_str_t              retry = ngx_string("1");
    ngx_http_momo_error_t  err;

    if (ngx_http_momo_header(r, "Retry-After", &retry) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_momo_error_set(&err, NGX_HTTP_CONFLICT,
                            "IDEMPOTENCY_KEY_IN_FLIGHT",
                            "the first request with this Idempotency-Key "
                            "is still being processed; retry in a second");
    err.retryable = 1;

    return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_CONFLICT);
}


/*
 * MTN has a payment with this reference id and nothing says with which
 * amount, currency and phone: neither "already sent" (it may be another
 * payload) nor 422 (it may be this one).
 */

static ngx_int_t
ngx_http_momo_pay_unverified(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_http_momo_error_t  err;

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "momo: MTN has payment \"%V\" already but its status "
                  "could not be read (HTTP %ui, nginx code %i)",
                  &ctx->reference_id, ctx->call->status, ctx->call->rc);

    ngx_http_momo_error_set(&err, NGX_HTTP_SERVICE_UNAVAILABLE,
                            "IDEMPOTENCY_KEY_UNVERIFIED",
                            "MTN already has a payment for this "
                            "Idempotency-Key and its details could not be "
                            "read; retry with the same Idempotency-Key");

    return ngx_http_momo_pay_unsure(r, ctx, &err, 1,
                                    NGX_HTTP_MOMO_PAY_UNAVAILABLE);
}


/*
 * No answer from MTN (timeout, reset, 502/504 from its front end): the
 * payment may or may not exist.  The client gets its reference id to ask
 * the status endpoint, or to retry with the same Idempotency-Key.
 */

static ngx_int_t
ngx_http_momo_pay_unknown(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_http_momo_error_t  err;

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "momo: no answer from MTN for payment \"%V\" "
                  "(HTTP %ui, nginx code %i), outcome unknown",
                  &ctx->reference_id, ctx->call->status, ctx->call->rc);

    ngx_http_momo_error_set(&err, NGX_HTTP_GATEWAY_TIME_OUT,
                            "UPSTREAM_TIMEOUT",
                            "MTN did not answer in time; the payment may "
                            "exist: ask its status, or retry with the "
                            "same Idempotency-Key");

    return ngx_http_momo_pay_unsure(r, ctx, &err, 0,
                                    NGX_HTTP_MOMO_PAY_TIMEOUT);
}


/* the outcome is not known: the key is free again for the client's retry */

static ngx_int_t
ngx_http_momo_pay_unsure(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_error_t *err, ngx_uint_t forget, ngx_uint_t result)
{
    ngx_http_momo_pay_release(ctx, forget);

    ngx_str_set(&ctx->status, "unknown");
    err->retryable = 1;

    return ngx_http_momo_fail(r, ctx, err, result);
}


static ngx_table_elt_t *
ngx_http_momo_find_header(ngx_http_request_t *r, char *name)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}
