
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * momo_notify: the application learns each final outcome, as a POST of
 * the payment JSON to an internal location, whether the outcome came from
 * a callback, a status query or the reconciler.  The record's notify
 * lease makes it once at a time across workers; a delivery that gets no
 * 2xx is logged, counted and sent again after momo_notify_retry's
 * backoff, by the sweeping worker's timer or the payment's next event.
 *
 * Every delivery carries X-Momo-Event-Id, the same for every retry of the
 * same outcome (derived from the reference id and the final status, so
 * it survives restarts), and, with momo_notify_secret, X-Momo-Signature:
 * "t=UNIX,v1=HEX", HEX the HMAC-SHA256 of "UNIX.body" with that secret.
 */


#include "ngx_http_momo_module.h"


#define NGX_HTTP_MOMO_EVENT_LABEL   "ngx_http_momo event id v1"
#define NGX_HTTP_MOMO_SIG_LEN                                                \
    (sizeof("t=,v1=") - 1 + NGX_TIME_T_LEN + 64)


static ngx_int_t ngx_http_momo_notify_body(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_str_t *out);
static ngx_int_t ngx_http_momo_notify_headers(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_http_momo_call_t *call);
static ngx_int_t ngx_http_momo_notify_event_id(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_str_t *id);
static ngx_int_t ngx_http_momo_notify_signature(ngx_http_request_t *r,
    ngx_str_t *secret, ngx_str_t *body, ngx_str_t *sig);
static ngx_table_elt_t *ngx_http_momo_notify_header(ngx_array_t *a,
    char *name, char *lowcase);
static ngx_int_t ngx_http_momo_notify_done(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);


ngx_int_t
ngx_http_momo_notify(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_step_pt next)
{
    ngx_uint_t             serial;
    ngx_http_momo_call_t  *call;

    if (ctx->mlcf->notify.len == 0
        || !ngx_http_momo_state_final(ctx->rec.state))
    {
        return next(r, ctx);
    }

    serial = ngx_http_momo_lease_serial();

    if (ngx_http_momo_record_notify(ctx->zone, ctx->reference_id.data,
                                    ngx_http_momo_call_time(r, ctx,
                                                    NGX_HTTP_MOMO_LEG_NOTIFY),
                                    serial)
        != NGX_OK)
    {
        return next(r, ctx);
    }

    /* from here on the lease is the request's, whatever becomes of it */

    ctx->notify_lease = serial;

    call = ngx_http_momo_call_create(r, ctx, NGX_HTTP_MOMO_LEG_NOTIFY);
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->method = NGX_HTTP_POST;
    call->reference_id = ctx->reference_id;
    call->lease = serial;

    if (ngx_http_momo_notify_body(r, ctx, &call->body) != NGX_OK
        || ngx_http_momo_notify_headers(r, ctx, call) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->after_notify = next;

    return ngx_http_momo_call(r, ctx, call, ngx_http_momo_notify_done);
}


static ngx_int_t
ngx_http_momo_notify_body(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_str_t *out)
{
    ngx_uint_t                  n;
    ngx_http_momo_json_field_t  f[8];

    n = ngx_http_momo_record_fields(ctx, f);

    /* the application tells a payment from a refund or a payout */

    ngx_str_set(&f[n].key, "kind");
    f[n].value = *ngx_http_momo_kind_name(ctx->kind);
    f[n++].type = NGX_HTTP_MOMO_JSON_STRING;

    return ngx_http_momo_json_render(r->pool, f, n, out);
}


static ngx_int_t
ngx_http_momo_notify_headers(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_call_t *call)
{
    ngx_table_elt_t  *h;

    call->headers = ngx_array_create(r->pool, 2, sizeof(ngx_table_elt_t));
    if (call->headers == NULL) {
        return NGX_ERROR;
    }

    h = ngx_http_momo_notify_header(call->headers, "X-Momo-Event-Id",
                                    "x-momo-event-id");
    if (h == NULL
        || ngx_http_momo_notify_event_id(r, ctx, &h->value) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->mlcf->notify_secret.len == 0) {
        return NGX_OK;
    }

    h = ngx_http_momo_notify_header(call->headers, "X-Momo-Signature",
                                    "x-momo-signature");
    if (h == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_momo_notify_signature(r, &ctx->mlcf->notify_secret,
                                          &call->body, &h->value);
}


static ngx_table_elt_t *
ngx_http_momo_notify_header(ngx_array_t *a, char *name, char *lowcase)
{
    ngx_table_elt_t  *h;

    h = ngx_array_push(a);
    if (h == NULL) {
        return NULL;
    }

    ngx_memzero(h, sizeof(ngx_table_elt_t));

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->lowcase_key = (u_char *) lowcase;

    return h;
}


/* a UUID from the reference id and the outcome: the same on every retry */

static ngx_int_t
ngx_http_momo_notify_event_id(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_str_t *id)
{
    u_char     *p;
    ngx_str_t   label, material, *state;

    ngx_str_set(&label, NGX_HTTP_MOMO_EVENT_LABEL);
    state = ngx_http_momo_state_name(ctx->rec.state);

    material.len = NGX_HTTP_MOMO_UUID_LEN + 1 + state->len;
    material.data = ngx_pnalloc(r->pool, material.len);
    if (material.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(material.data, ctx->reference_id.data,
                   NGX_HTTP_MOMO_UUID_LEN);
    *p++ = ':';
    ngx_memcpy(p, state->data, state->len);

    id->len = NGX_HTTP_MOMO_UUID_LEN;
    id->data = ngx_pnalloc(r->pool, NGX_HTTP_MOMO_UUID_LEN);
    if (id->data == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_momo_uuid_derive(&label, &material, id->data);
}


/* "t=UNIX,v1=HEX": HEX = HMAC-SHA256(secret, "UNIX." + body) */

static ngx_int_t
ngx_http_momo_notify_signature(ngx_http_request_t *r, ngx_str_t *secret,
    ngx_str_t *body, ngx_str_t *sig)
{
    u_char     *p;
    ngx_str_t   stamp;
    u_char      buf[NGX_TIME_T_LEN + 1];

    stamp.data = buf;
    stamp.len = ngx_sprintf(buf, "%T.", ngx_time()) - buf;

    sig->data = ngx_pnalloc(r->pool, NGX_HTTP_MOMO_SIG_LEN);
    if (sig->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(sig->data, "t=%*s,v1=", stamp.len - 1, stamp.data);

    if (ngx_http_momo_hmac_hex(secret, &stamp, body, p) != NGX_OK) {
        return NGX_ERROR;
    }

    sig->len = p + 64 - sig->data;

    return NGX_OK;
}


/*
 * From the call's post-subrequest handler: the outcome is recorded even
 * when the client has gone and the request will not resume.
 */

void
ngx_http_momo_notify_settle(ngx_http_request_t *sr,
    ngx_http_momo_call_t *call)
{
    ngx_uint_t                  ok;
    ngx_http_momo_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(sr, ngx_http_momo_module);

    ok = (call->status >= 200 && call->status < 300);

    ngx_http_momo_record_notified(mmcf->shm_zone, call->reference_id.data,
                                  ok, call->lease);
}


static ngx_int_t
ngx_http_momo_notify_done(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_http_momo_call_t  *call;

    call = ctx->call;

    if (call->status < 200 || call->status >= 300) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "momo: notify \"%V\" of payment \"%V\" failed "
                      "(HTTP %ui, nginx code %i); it is sent again after "
                      "the momo_notify_retry backoff",
                      &call->uri, &ctx->reference_id, call->status,
                      call->rc);
    }

    return ctx->after_notify(r, ctx);
}
