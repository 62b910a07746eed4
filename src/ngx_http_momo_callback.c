
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * momo_callback: MTN's POST or PUT to momo_callback_url/{ref}/{token}.
 * MTN signs nothing and leaves the reference id out of the body, so the
 * module put both into the URL it gave MTN: a token that does not match
 * is refused and changes nothing.  MTN gets its 200 at once; with
 * momo_callback_verify on, the outcome then comes from a status query to
 * MTN, never from the body, and the application is notified once.
 *
 * The URL token is a credential (with momo_callback_verify off it is all
 * a forger needs): once read, it is masked in the request line and URIs
 * nginx's logs print: the token becomes three stars.  Debug-level lines
 * written while nginx parses the request, before any handler, show it.
 */


#include "ngx_http_momo_module.h"


#define NGX_HTTP_MOMO_CALLBACK_MAX       16384
#define NGX_HTTP_MOMO_CALLBACK_RECHECKS  3
#define NGX_HTTP_MOMO_CALLBACK_RECHECK   2000


static ngx_int_t ngx_http_momo_callback_start(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_callback_path(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_callback_mask(ngx_http_request_t *r);
static ngx_int_t ngx_http_momo_mask(ngx_pool_t *pool, ngx_str_t *s,
    ngx_str_t *token);
static ngx_int_t ngx_http_momo_callback_verified(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_callback_recheck(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_callback_finish(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_callback_refuse(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_uint_t status, char *code, char *message,
    ngx_uint_t result);
static void ngx_http_momo_callback_count(ngx_http_request_t *r,
    ngx_uint_t result);


ngx_int_t
ngx_http_momo_callback_handler(ngx_http_request_t *r)
{
    ngx_int_t             rc;
    ngx_str_t             allow = ngx_string("POST, PUT");
    ngx_http_momo_ctx_t  *ctx;

    ctx = ngx_http_momo_ctx_create(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_momo_callback_path(r, ctx);

    if (ngx_http_momo_callback_mask(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!(r->method & (NGX_HTTP_POST|NGX_HTTP_PUT))) {
        if (ngx_http_discard_request_body(r) != NGX_OK
            || ngx_http_momo_header(r, "Allow", &allow) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_momo_callback_refuse(r, ctx, NGX_HTTP_NOT_ALLOWED,
                                             "METHOD_NOT_ALLOWED",
                                             "callbacks come by POST or PUT",
                                             NGX_HTTP_MOMO_CB_INVALID);
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "momo: callback refused: its URL token does not "
                      "match \"%V\"", &r->uri);

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_str_null(&ctx->reference_id);

        return ngx_http_momo_callback_refuse(r, ctx, NGX_HTTP_FORBIDDEN,
                                             "FORBIDDEN",
                                             "unknown callback URL",
                                             NGX_HTTP_MOMO_CB_FORBIDDEN);
    }

    return ngx_http_momo_start_with_body(r, ctx,
                                         ngx_http_momo_callback_start);
}


/* .../{reference id}/{token}: the last two segments of the URI */

static ngx_int_t
ngx_http_momo_callback_path(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    u_char     *p, *last, *token;
    ngx_int_t   kind;
    ngx_str_t   ref;

    last = r->uri.data + r->uri.len;

    for (p = last; p > r->uri.data && p[-1] != '/'; p--) { /* void */ }

    if (last - p != NGX_HTTP_MOMO_CB_TOKEN_LEN
        || p - r->uri.data < NGX_HTTP_MOMO_UUID_LEN + 2)
    {
        return NGX_DECLINED;
    }

    token = p;

    ref.data = p - 1 - NGX_HTTP_MOMO_UUID_LEN;
    ref.len = NGX_HTTP_MOMO_UUID_LEN;

    if (ref.data[-1] != '/' || ngx_http_momo_is_uuid(&ref) != NGX_OK) {
        return NGX_DECLINED;
    }

    /* a payment's, or a refund's or payout's (ngx_http_momo_disb.c) */

    kind = ngx_http_momo_callback_kind(ctx->mlcf, &ref, token);

    if (kind < 0) {
        return NGX_DECLINED;
    }

    ngx_http_momo_op_kind(ctx, kind);

    ctx->reference_id = ref;

    return NGX_OK;
}


/*
 * The last segment of the URI, the token, becomes "***" in what the
 * error log ("request: ...") and the access log ($request, $request_uri,
 * $uri) print.  The reference id, read before, keeps pointing at the
 * original URI.
 */

static ngx_int_t
ngx_http_momo_callback_mask(ngx_http_request_t *r)
{
    u_char     *p, *last;
    ngx_str_t   token;

    last = r->uri.data + r->uri.len;

    for (p = last; p > r->uri.data && p[-1] != '/'; p--) { /* void */ }

    token.len = last - p;

    if (token.len == 0) {
        return NGX_OK;
    }

    /* lowercase, for ngx_strlcasestrn() */

    token.data = ngx_pnalloc(r->pool, token.len);
    if (token.data == NULL) {
        return NGX_ERROR;
    }

    ngx_strlow(token.data, p, token.len);

    if (ngx_http_momo_mask(r->pool, &r->request_line, &token) != NGX_OK
        || ngx_http_momo_mask(r->pool, &r->unparsed_uri, &token) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* last: the other two searched for the token in it */

    return ngx_http_momo_mask(r->pool, &r->uri, &token);
}


static ngx_int_t
ngx_http_momo_mask(ngx_pool_t *pool, ngx_str_t *s, ngx_str_t *token)
{
    u_char  *p, *at, *last;

    if (s->len < token->len) {
        return NGX_OK;
    }

    last = s->data + s->len;

    at = ngx_strlcasestrn(s->data, last, token->data, token->len - 1);

    if (at == NULL) {
        return NGX_OK;
    }

    p = ngx_pnalloc(pool, s->len - token->len + 3);
    if (p == NULL) {
        return NGX_ERROR;
    }

    s->len = ngx_cpymem(ngx_cpymem(ngx_cpymem(p, s->data, at - s->data),
                                   "***", 3),
                        at + token->len, last - at - token->len)
             - p;
    s->data = p;

    return NGX_OK;
}


static ngx_int_t
ngx_http_momo_callback_start(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_int_t                   rc;
    ngx_str_t                   body;
    ngx_http_momo_mtn_body_t    b;
    ngx_http_momo_json_field_t  f[1];
    ngx_http_momo_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);

    rc = ngx_http_momo_read_body(r, NGX_HTTP_MOMO_CALLBACK_MAX, &body);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_OK) {
        rc = ngx_http_momo_json_mtn(r->pool, body.data, body.len, &b);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_momo_callback_refuse(r, ctx, NGX_HTTP_BAD_REQUEST,
                                             "INVALID_JSON",
                                             "the callback body is not "
                                             "a JSON object",
                                             NGX_HTTP_MOMO_CB_INVALID);
    }

    if (ngx_http_momo_record_get(mmcf->shm_zone, ctx->reference_id.data,
                                 &ctx->rec)
        == NGX_OK
        && ngx_http_momo_state_final(ctx->rec.state)
        && ctx->rec.notified == 2)
    {
        ngx_http_momo_callback_count(r, NGX_HTTP_MOMO_CB_DUPLICATE);

    } else {
        ngx_http_momo_callback_count(r, NGX_HTTP_MOMO_CB_ACCEPTED);
    }

    /* MTN waits 2 s at most: answer now, go on after */

    ngx_str_set(&f[0].key, "success");
    ngx_str_set(&f[0].value, "true");
    f[0].type = NGX_HTTP_MOMO_JSON_RAW;

    rc = ngx_http_momo_reply(r, NGX_HTTP_OK, f, 1);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    ngx_http_momo_detach(r, ctx);

    /*
     * a callback is verified within the same limits as a poll: once a
     * second per reference, and within the account's status budget, so
     * that replaying a valid callback URL cannot flood MTN
     */

    if (ctx->mlcf->callback_verify) {
        return ngx_http_momo_query(r, ctx, ngx_http_momo_callback_verified);
    }

    ngx_memzero(&ctx->rec, sizeof(ngx_http_momo_record_t));
    ngx_memcpy(ctx->rec.reference_id, ctx->reference_id.data,
               NGX_HTTP_MOMO_UUID_LEN);

    ngx_http_momo_record_from_mtn(&ctx->rec, &b);
    ctx->rec.accepted = 1;
    ctx->rec.kind = (u_char) ctx->kind;

    if (ngx_http_momo_record_update(mmcf->shm_zone, &ctx->rec, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_momo_callback_verified(r, ctx);
}


/*
 * MTN calls back once the payment is final, yet its status query has been
 * seen to say PENDING for a while after: ask again a few times, within
 * the per-reference rate limit, before leaving it to the next poll.
 */

static ngx_int_t
ngx_http_momo_callback_verified(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx)
{
    ctx->status = *ngx_http_momo_state_name(ctx->rec.state);

    if (ctx->mlcf->callback_verify
        && !ngx_http_momo_state_final(ctx->rec.state)
        && ctx->rec.state != NGX_HTTP_MOMO_ST_NOT_FOUND
        && ctx->rechecks < NGX_HTTP_MOMO_CALLBACK_RECHECKS)
    {
        ctx->rechecks++;

        return ngx_http_momo_wait(r, ctx, NGX_HTTP_MOMO_CALLBACK_RECHECK,
                                  ngx_http_momo_callback_recheck);
    }

    return ngx_http_momo_notify(r, ctx, ngx_http_momo_callback_finish);
}


static ngx_int_t
ngx_http_momo_callback_recheck(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx)
{
    return ngx_http_momo_query(r, ctx, ngx_http_momo_callback_verified);
}


static ngx_int_t
ngx_http_momo_callback_finish(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    return NGX_OK;
}


static ngx_int_t
ngx_http_momo_callback_refuse(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_uint_t status, char *code, char *message, ngx_uint_t result)
{
    ngx_http_momo_error_t  err;

    ngx_http_momo_callback_count(r, result);

    ngx_http_momo_error_set(&err, status, code, message);

    return ngx_http_momo_fail(r, ctx, &err, 0);
}


static void
ngx_http_momo_callback_count(ngx_http_request_t *r, ngx_uint_t result)
{
    ngx_http_momo_counters_t   *counters;
    ngx_http_momo_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);
    counters = ngx_http_momo_counters(mmcf->shm_zone);

    if (counters) {
        ngx_atomic_fetch_add(&counters->callbacks[result], 1);
    }
}
