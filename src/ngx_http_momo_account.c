
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * The account side of a product: momo_balance (GET, the balance of the
 * Collections or the Disbursement account) and the account holder check
 * that momo_check_payer puts in front of a payment or a payout, so that
 * a number MTN does not know is refused before any money is asked for.
 */


#include "ngx_http_momo_module.h"


static ngx_int_t ngx_http_momo_balance_token(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_balance_send(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_balance_done(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_holder_send(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_holder_done(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_account_get(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_str_t *path, ngx_str_t *ref,
    ngx_http_momo_step_pt next);
static ngx_int_t ngx_http_momo_account_failed(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_http_momo_mtn_body_t *b,
    ngx_http_momo_step_pt retry);


static ngx_str_t  ngx_http_momo_balance_path =
    ngx_string("/v1_0/account/balance");
static ngx_str_t  ngx_http_momo_holder_path =
    ngx_string("/v1_0/accountholder/msisdn/");


ngx_int_t
ngx_http_momo_balance_handler(ngx_http_request_t *r)
{
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

    if (ctx->mlcf->handler_products & (1 << NGX_HTTP_MOMO_DISBURSEMENT)) {
        ctx->product = &ctx->mlcf->product[NGX_HTTP_MOMO_DISBURSEMENT];
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        if (ngx_http_momo_header(r, "Allow", &allow) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_momo_error_set(&err, NGX_HTTP_NOT_ALLOWED,
                                "METHOD_NOT_ALLOWED",
                                "use GET to read the account balance");
        return ngx_http_momo_reply_error(r, &err);
    }

    return ngx_http_momo_start(r, ctx, ngx_http_momo_balance_token);
}


static ngx_int_t
ngx_http_momo_balance_token(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    return ngx_http_momo_with_token(r, ctx, ngx_http_momo_balance_send);
}


static ngx_int_t
ngx_http_momo_balance_send(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    return ngx_http_momo_account_get(r, ctx, &ngx_http_momo_balance_path,
                                     NULL, ngx_http_momo_balance_done);
}


static ngx_int_t
ngx_http_momo_balance_done(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_http_momo_call_t        *call;
    ngx_http_momo_mtn_body_t     b;
    ngx_http_momo_json_field_t   f[4];

    call = ctx->call;
    ctx->upstream_status = call->status;

    if (ngx_http_momo_json_mtn(r->pool, call->response.data,
                               call->response.len, &b)
        == NGX_ERROR)
    {
        return NGX_ERROR;
    }

    if (call->status != NGX_HTTP_OK || b.balance.len == 0) {
        return ngx_http_momo_account_failed(r, ctx, &b,
                                            ngx_http_momo_balance_send);
    }

    ngx_str_set(&f[0].key, "success");
    ngx_str_set(&f[0].value, "true");
    f[0].type = NGX_HTTP_MOMO_JSON_RAW;
    ngx_str_set(&f[1].key, "product");
    f[1].value = ctx->product->name;
    f[1].type = NGX_HTTP_MOMO_JSON_STRING;
    ngx_str_set(&f[2].key, "available_balance");
    f[2].value = b.balance;
    f[2].type = NGX_HTTP_MOMO_JSON_STRING;
    ngx_str_set(&f[3].key, "currency");
    f[3].value = b.currency;
    f[3].type = NGX_HTTP_MOMO_JSON_STRING_OR_NULL;

    return ngx_http_momo_reply(r, NGX_HTTP_OK, f, 4);
}


/*
 * The token step of a payment or a payout, and with momo_check_payer on,
 * GET accountholder/msisdn/{phone}/active of the operation's product
 * after it: {"result": false} refuses the operation before it is sent.
 * Calls next with ctx->bearer set.
 */

ngx_int_t
ngx_http_momo_check_holder(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_step_pt next)
{
    if (!ctx->mlcf->check_payer) {
        return ngx_http_momo_with_token(r, ctx, next);
    }

    ctx->after_holder = next;

    return ngx_http_momo_with_token(r, ctx, ngx_http_momo_holder_send);
}


static ngx_int_t
ngx_http_momo_holder_send(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_str_t  ref;

    ref.len = ctx->payment.phone.len + sizeof("/active") - 1;
    ref.data = ngx_pnalloc(r->pool, ref.len);
    if (ref.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ngx_cpymem(ref.data, ctx->payment.phone.data,
                          ctx->payment.phone.len),
               "/active", sizeof("/active") - 1);

    return ngx_http_momo_account_get(r, ctx, &ngx_http_momo_holder_path,
                                     &ref, ngx_http_momo_holder_done);
}


static ngx_int_t
ngx_http_momo_holder_done(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_http_momo_call_t      *call;
    ngx_http_momo_error_t      err;
    ngx_http_momo_mtn_body_t   b;

    call = ctx->call;
    ctx->upstream_status = call->status;

    if (ngx_http_momo_json_mtn(r->pool, call->response.data,
                               call->response.len, &b)
        == NGX_ERROR)
    {
        return NGX_ERROR;
    }

    if (call->status != NGX_HTTP_OK || b.result == -1) {
        return ngx_http_momo_account_failed(r, ctx, &b,
                                            ngx_http_momo_holder_send);
    }

    if (b.result == 1) {
        return ctx->after_holder(r, ctx);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "momo: MTN says the account holder of the %s is not "
                  "active", ctx->kind == NGX_HTTP_MOMO_KIND_PAYOUT
                            ? "payee" : "payer");

    ngx_http_momo_error_set(&err, NGX_HTTP_MOMO_UNPROCESSABLE,
                            "ACCOUNT_HOLDER_NOT_ACTIVE",
                            "MTN has no active Mobile Money account for "
                            "this phone number; nothing was sent");

    return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_INVALID);
}


/* GET {base}/{product}{path}[{ref}] on the product's GET leg */

static ngx_int_t
ngx_http_momo_account_get(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_str_t *path, ngx_str_t *ref, ngx_http_momo_step_pt next)
{
    ngx_http_momo_call_t  *call;

    call = ngx_http_momo_call_create(r, ctx, ngx_http_momo_op_leg(ctx, 1));
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->authorization = ctx->bearer;

    if (ngx_http_momo_product_url(r->pool, ctx, path, ref, &call->url)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_momo_call(r, ctx, call, next);
}


static ngx_int_t
ngx_http_momo_account_failed(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_mtn_body_t *b, ngx_http_momo_step_pt retry)
{
    ngx_http_momo_error_t  err;

    if (ctx->call->status == 0) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "momo: no answer from MTN's %V account (nginx "
                      "code %i)", &ctx->product->name, ctx->call->rc);

        ngx_http_momo_error_set(&err, NGX_HTTP_GATEWAY_TIME_OUT,
                                "UPSTREAM_TIMEOUT",
                                "MTN did not answer in time; nothing was "
                                "sent, ask again");
        err.retryable = 1;

        return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_UNAVAILABLE);
    }

    if (ctx->call->status == NGX_HTTP_UNAUTHORIZED && b->status_code == -1) {
        return ngx_http_momo_token_rejected(r, ctx, retry);
    }

    if (ctx->call->status == NGX_HTTP_OK) {
        /* 200 without the field: not an answer the module understands */
        ctx->call->status = NGX_HTTP_BAD_GATEWAY;
    }

    return ngx_http_momo_mtn_error(r, ctx, b);
}
