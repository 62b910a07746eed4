
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * momo_notify: the application learns each final outcome once, as a POST
 * of the payment JSON to an internal location, whether the outcome came
 * from a callback or a status query.  The record's notify lease makes it
 * once across workers; a failed delivery is logged, counted and retried
 * on the next event for that payment.
 */


#include "ngx_http_momo_module.h"


#define NGX_HTTP_MOMO_NOTIFY_LEASE  30000


static ngx_int_t ngx_http_momo_notify_body(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_str_t *out);
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
                                    NGX_HTTP_MOMO_NOTIFY_LEASE, serial)
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

    if (ngx_http_momo_notify_body(r, ctx, &call->body) != NGX_OK) {
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
                      "(HTTP %ui, nginx code %i); it is sent again on the "
                      "payment's next callback or status query",
                      &call->uri, &ctx->reference_id, call->status,
                      call->rc);
    }

    return ctx->after_notify(r, ctx);
}
