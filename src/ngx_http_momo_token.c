
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * The access token in front of every MTN call.  The token lives in the
 * shared zone; one worker at a time refreshes it under a lease while the
 * others keep using the valid one; a request that finds no usable token
 * and another refresher at work waits on a timer, never blocking the
 * worker, and gives up with 503 after momo_token_wait.
 */


#include "ngx_http_momo_module.h"


#define NGX_HTTP_MOMO_TOKEN_POLL    50
#define NGX_HTTP_MOMO_TTL_MAX       86400
#define NGX_HTTP_MOMO_TTL_DEFAULT   3600


static ngx_int_t ngx_http_momo_token_step(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_token_fetch(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_token_done(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_token_failed(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_http_momo_mtn_body_t *b);
static ngx_int_t ngx_http_momo_token_usable(ngx_http_request_t *sr,
    ngx_str_t *token);
static time_t ngx_http_momo_token_ttl(ngx_int_t expires_in);


static ngx_str_t  ngx_http_momo_token_path = ngx_string("/token/");


ngx_int_t
ngx_http_momo_with_token(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_step_pt next)
{
    ctx->after_token = next;
    ctx->deadline = 0;

    return ngx_http_momo_token_step(r, ctx);
}


static ngx_int_t
ngx_http_momo_token_step(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_int_t                   rc;
    ngx_uint_t                  serial;
    ngx_http_momo_error_t       err;
    ngx_http_momo_main_conf_t  *mmcf;
    ngx_http_momo_counters_t   *counters;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);
    serial = ngx_http_momo_lease_serial();

    rc = ngx_http_momo_token_acquire(mmcf->shm_zone, ctx->product,
                                     ngx_http_momo_call_time(r, ctx,
                                                      NGX_HTTP_MOMO_LEG_TOKEN),
                                     serial,
                                     r->pool, &ctx->bearer, &ctx->token_gen);

    switch (rc) {

    case NGX_OK:
        if (ctx->token_source.len == 0) {
            ngx_str_set(&ctx->token_source, "HIT");
        }

        counters = ngx_http_momo_counters(mmcf->shm_zone);
        ngx_atomic_fetch_add(&counters->token_hits, 1);

        return ctx->after_token(r, ctx);

    case NGX_DECLINED:
        /* the refresh lease is the request's until the call settles it */
        ctx->token_lease = serial;
        return ngx_http_momo_token_fetch(r, ctx);

    case NGX_BUSY:
        if (ctx->deadline == 0) {
            ctx->deadline = ngx_current_msec + ctx->mlcf->token_wait;
        }

        if ((ngx_msec_int_t) (ngx_current_msec - ctx->deadline) < 0) {
            return ngx_http_momo_wait(r, ctx, NGX_HTTP_MOMO_TOKEN_POLL,
                                      ngx_http_momo_token_step);
        }

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "momo: no access token after waiting %Mms for "
                      "another worker's refresh", ctx->mlcf->token_wait);

        ngx_http_momo_error_set(&err, NGX_HTTP_SERVICE_UNAVAILABLE,
                                "TOKEN_UNAVAILABLE",
                                "no MTN access token is available yet; "
                                "retry in a second");
        err.retryable = 1;

        return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_UNAVAILABLE);

    default:
        return NGX_ERROR;
    }
}


static ngx_int_t
ngx_http_momo_token_fetch(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_http_momo_call_t  *call;

    if (ctx->bearer.len) {
        ngx_str_set(&ctx->token_source, "REFRESH");

    } else {
        ngx_str_set(&ctx->token_source, "MISS");
    }

    call = ngx_http_momo_call_create(r, ctx, NGX_HTTP_MOMO_LEG_TOKEN);
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->method = NGX_HTTP_POST;
    call->authorization = ctx->product->basic_auth;
    call->lease = ctx->token_lease;

    if (ngx_http_momo_product_url(r->pool, ctx, &ngx_http_momo_token_path,
                                  NULL, &call->url)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_momo_call(r, ctx, call, ngx_http_momo_token_done);
}


/*
 * Called from the token call's post-subrequest handler: the token, or the
 * lease, is settled in the zone even when the client has gone and its
 * request will not resume; other workers must not wait for a lost lease.
 * A token that could not go into a header as it is, or into the zone, is
 * refused here for every request alike, never used by this one only.
 */

void
ngx_http_momo_token_settle(ngx_http_request_t *sr, ngx_http_momo_call_t *call)
{
    time_t                      ttl;
    ngx_http_momo_mtn_body_t   *b;
    ngx_http_momo_counters_t   *counters;
    ngx_http_momo_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(sr, ngx_http_momo_module);
    counters = ngx_http_momo_counters(mmcf->shm_zone);

    b = ngx_palloc(sr->pool, sizeof(ngx_http_momo_mtn_body_t));

    if (b == NULL
        || ngx_http_momo_json_mtn(sr->pool, call->response.data,
                                  call->response.len, b)
           == NGX_ERROR
        || call->status != NGX_HTTP_OK
        || b->access_token.len == 0
        || ngx_http_momo_token_usable(sr, &b->access_token) != NGX_OK)
    {
        if (b) {
            b->access_token.len = 0;
        }

        ngx_atomic_fetch_add(&counters->token_refresh_failed, 1);
        ngx_http_momo_token_release(mmcf->shm_zone, &call->product->token_key,
                                    call->lease);
        call->parsed = b;
        return;
    }

    call->parsed = b;
    ttl = ngx_http_momo_token_ttl(b->expires_in);

    if (ngx_http_momo_token_store(mmcf->shm_zone, &call->product->token_key,
                                  &b->access_token, ttl, &call->token_gen)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                      "momo: MTN's access token (%uz bytes) does not fit "
                      "the shared zone", b->access_token.len);
        ngx_http_momo_token_release(mmcf->shm_zone, &call->product->token_key,
                                    call->lease);
        b->access_token.len = 0;
        ngx_atomic_fetch_add(&counters->token_refresh_failed, 1);
        return;
    }

    ngx_atomic_fetch_add(&counters->token_refresh_ok, 1);
}


/*
 * The token goes into "Authorization: Bearer ..." as it is: any byte a
 * header value cannot carry (CR, LF, controls, non-ASCII) would forge
 * headers, so the token is refused whole.  RFC 6750's b64token needs
 * visible ASCII only.
 */

static ngx_int_t
ngx_http_momo_token_usable(ngx_http_request_t *sr, ngx_str_t *token)
{
    u_char  *p, *last;

    if (token->len > NGX_HTTP_MOMO_TOKEN_MAX) {
        ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                      "momo: MTN's access token of %uz bytes is refused: "
                      "the gateway keeps tokens of at most %d bytes",
                      token->len, NGX_HTTP_MOMO_TOKEN_MAX);
        return NGX_DECLINED;
    }

    last = token->data + token->len;

    for (p = token->data; p < last; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                          "momo: MTN's access token is refused: byte %ui "
                          "(0x%02xui) cannot be sent in a header",
                          (ngx_uint_t) (p - token->data), (ngx_uint_t) *p);
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/*
 * MTN says 3600.  None or a nonsense value is taken as 3600; more than a
 * day is clamped to a day, so that the expiry never overflows time_t.
 */

static time_t
ngx_http_momo_token_ttl(ngx_int_t expires_in)
{
    if (expires_in <= 0) {
        return NGX_HTTP_MOMO_TTL_DEFAULT;
    }

    if (expires_in > NGX_HTTP_MOMO_TTL_MAX) {
        return NGX_HTTP_MOMO_TTL_MAX;
    }

    return (time_t) expires_in;
}


static ngx_int_t
ngx_http_momo_token_done(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_http_momo_call_t      *call;
    ngx_http_momo_mtn_body_t  *b;

    call = ctx->call;
    b = call->parsed;

    ctx->upstream_status = call->status;

    if (b == NULL) {
        return NGX_ERROR;
    }

    if (call->status != NGX_HTTP_OK || b->access_token.len == 0) {
        return ngx_http_momo_token_failed(r, ctx, b);
    }

    if (ngx_http_momo_bearer(r->pool, &b->access_token, &ctx->bearer)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->token_gen = call->token_gen;

    return ctx->after_token(r, ctx);
}


static ngx_int_t
ngx_http_momo_token_failed(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_mtn_body_t *b)
{
    ngx_str_t              *user, *env;
    ngx_http_momo_call_t   *call;
    ngx_http_momo_error_t   err;

    call = ctx->call;
    user = ctx->product->api_user;
    env = &ctx->mlcf->acc[NGX_HTTP_MOMO_ACC_TARGET_ENVIRONMENT];

    if (ctx->bearer.len) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "momo: token refresh failed (HTTP %ui), "
                      "the current token is still valid", call->status);
        return ctx->after_token(r, ctx);
    }

    if (call->status == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "momo: MTN's token endpoint did not answer "
                      "(nginx code %i); see the \"momo_leg token\" "
                      "location's proxy settings", call->rc);

        ngx_http_momo_error_set(&err, NGX_HTTP_SERVICE_UNAVAILABLE,
                                "UPSTREAM_UNAVAILABLE",
                                "MTN could not be reached for an access "
                                "token; nothing was charged");
        err.retryable = 1;

        return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_UNAVAILABLE);
    }

    if (b->status_code == NGX_HTTP_UNAUTHORIZED) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "momo: MTN refused the subscription key (HTTP %ui "
                      "with statusCode 401): check %s, it must be the "
                      "%V product key", call->status,
                      ngx_http_momo_product_directive(ctx->product, 2),
                      &ctx->product->name);

    } else if (call->status == NGX_HTTP_UNAUTHORIZED
               || call->status == NGX_HTTP_INTERNAL_SERVER_ERROR
               || call->status == NGX_HTTP_FORBIDDEN
               || call->status == NGX_HTTP_BAD_REQUEST)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "momo: MTN refused the credentials of API user "
                      "\"%V\" for environment \"%V\" (HTTP %ui, error "
                      "\"%V\"): check %s, %s and momo_target_environment "
                      "(%V product)", user, env, call->status,
                      b->code.len ? &b->code : &b->message,
                      ngx_http_momo_product_directive(ctx->product, 0),
                      ngx_http_momo_product_directive(ctx->product, 1),
                      &ctx->product->name);

    } else {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "momo: MTN's token endpoint answered HTTP %ui",
                      call->status);

        ngx_http_momo_error_set(&err, NGX_HTTP_BAD_GATEWAY, "UPSTREAM_ERROR",
                                "MTN did not issue an access token; "
                                "nothing was charged");
        err.retryable = 1;

        return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_REJECTED);
    }

    ngx_http_momo_error_set(&err, NGX_HTTP_BAD_GATEWAY,
                            "UPSTREAM_AUTH_FAILED",
                            "MTN refused the gateway's credentials; "
                            "nothing was charged");

    return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_AUTH_FAILED);
}


/*
 * MTN answered 401 without "statusCode": the token was refused (expired
 * early, or revoked).  Drop it, unless a newer one replaced it already,
 * and get another once; a second refusal is an authentication failure.
 */

ngx_int_t
ngx_http_momo_token_rejected(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_step_pt retry)
{
    ngx_http_momo_error_t       err;
    ngx_http_momo_main_conf_t  *mmcf;

    if (ctx->token_retried) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "momo: MTN refused a fresh access token");

        ngx_http_momo_error_set(&err, NGX_HTTP_BAD_GATEWAY,
                                "UPSTREAM_AUTH_FAILED",
                                "MTN refused the gateway's access token");

        return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_AUTH_FAILED);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "momo: MTN refused the access token, refreshing it");

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);

    ngx_http_momo_token_drop(mmcf->shm_zone, &ctx->product->token_key,
                             ctx->token_gen);

    ctx->token_retried = 1;
    ctx->bearer.len = 0;
    ctx->token_source.len = 0;

    return ngx_http_momo_with_token(r, ctx, retry);
}


/* base URL + "/" + the product + path [+ reference id] */

ngx_int_t
ngx_http_momo_product_url(ngx_pool_t *pool, ngx_http_momo_ctx_t *ctx,
    ngx_str_t *path, ngx_str_t *ref, ngx_str_t *url)
{
    u_char     *p;
    ngx_str_t   full;

    full.len = 1 + ctx->product->name.len + path->len;

    p = ngx_pnalloc(pool, full.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    full.data = p;
    *p++ = '/';
    p = ngx_cpymem(p, ctx->product->name.data, ctx->product->name.len);
    ngx_memcpy(p, path->data, path->len);

    return ngx_http_momo_url(pool, ctx->mlcf, &full, ref, url);
}


/* the directive of a product's API user (0), API key (1), key (2) */

char *
ngx_http_momo_product_directive(ngx_http_momo_product_t *product,
    ngx_uint_t what)
{
    static char  *names[][3] = {
        { "momo_api_user", "momo_api_key", "momo_subscription_key" },
        { "momo_disbursement_api_user", "momo_disbursement_api_key",
          "momo_disbursement_subscription_key" }
    };

    return names[product->index][what];
}


/* base URL + path [+ reference id], for $momo_leg_url */

ngx_int_t
ngx_http_momo_url(ngx_pool_t *pool, ngx_http_momo_loc_conf_t *mlcf,
    ngx_str_t *path, ngx_str_t *ref, ngx_str_t *url)
{
    u_char     *p;
    ngx_str_t  *base;

    base = &mlcf->acc[NGX_HTTP_MOMO_ACC_BASE_URL];

    url->len = base->len + path->len + (ref ? ref->len : 0);

    p = ngx_pnalloc(pool, url->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    url->data = p;
    p = ngx_cpymem(p, base->data, base->len);
    p = ngx_cpymem(p, path->data, path->len);

    if (ref) {
        ngx_memcpy(p, ref->data, ref->len);
    }

    return NGX_OK;
}


/* "Bearer <token>", the MTN calls' Authorization */

ngx_int_t
ngx_http_momo_bearer(ngx_pool_t *pool, ngx_str_t *token, ngx_str_t *out)
{
    u_char  *p;

    out->len = sizeof("Bearer ") - 1 + token->len;

    p = ngx_pnalloc(pool, out->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;
    p = ngx_cpymem(p, "Bearer ", sizeof("Bearer ") - 1);
    ngx_memcpy(p, token->data, token->len);

    return NGX_OK;
}
