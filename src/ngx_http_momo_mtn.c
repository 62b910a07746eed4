
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * What MTN's answers mean to the client.  MTN reports several client
 * mistakes as HTTP 500 (INVALID_CURRENCY, INVALID_CALLBACK_URL_HOST,
 * NOT_ALLOWED*): those are final, never "retry later"; errors come as
 * {"code","message"}, {"error"}, {"statusCode","message"} or HTML.
 */


#include "ngx_http_momo_module.h"


typedef struct {
    ngx_str_t                   code;
    ngx_uint_t                  status;
    ngx_uint_t                  retryable;
    ngx_uint_t                  result;
    char                       *hint;       /* for the error log */
} ngx_http_momo_mtn_code_t;


static ngx_http_momo_mtn_code_t *ngx_http_momo_mtn_code(ngx_str_t *code);


static ngx_http_momo_mtn_code_t  ngx_http_momo_mtn_codes[] = {

    { ngx_string("INVALID_CURRENCY"), NGX_HTTP_BAD_GATEWAY, 0,
      NGX_HTTP_MOMO_PAY_REJECTED,
      "the account does not take this currency: fix momo_currency" },

    { ngx_string("INVALID_CALLBACK_URL_HOST"), NGX_HTTP_BAD_GATEWAY, 0,
      NGX_HTTP_MOMO_PAY_REJECTED,
      "momo_callback_url's host is not the providerCallbackHost of the "
      "API user" },

    { ngx_string("NOT_ALLOWED_TARGET_ENVIRONMENT"), NGX_HTTP_BAD_GATEWAY, 0,
      NGX_HTTP_MOMO_PAY_REJECTED,
      "momo_target_environment does not match these credentials" },

    { ngx_string("NOT_ALLOWED"), NGX_HTTP_BAD_GATEWAY, 0,
      NGX_HTTP_MOMO_PAY_REJECTED,
      "the API user is not allowed this operation" },

    { ngx_string("PAYER_NOT_FOUND"), NGX_HTTP_MOMO_UNPROCESSABLE, 0,
      NGX_HTTP_MOMO_PAY_REJECTED, NULL },

    { ngx_string("PAYEE_NOT_ALLOWED_TO_RECEIVE"),
      NGX_HTTP_MOMO_UNPROCESSABLE, 0, NGX_HTTP_MOMO_PAY_REJECTED, NULL },

    { ngx_string("NOT_ENOUGH_FUNDS"), NGX_HTTP_MOMO_UNPROCESSABLE, 0,
      NGX_HTTP_MOMO_PAY_REJECTED, NULL },

    { ngx_string("PAYER_LIMIT_REACHED"), NGX_HTTP_MOMO_UNPROCESSABLE, 0,
      NGX_HTTP_MOMO_PAY_REJECTED, NULL },

    { ngx_string("SERVICE_UNAVAILABLE"), NGX_HTTP_SERVICE_UNAVAILABLE, 1,
      NGX_HTTP_MOMO_PAY_REJECTED, NULL },

    { ngx_null_string, 0, 0, 0, NULL }
};


ngx_int_t
ngx_http_momo_mtn_error(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_mtn_body_t *b)
{
    ngx_uint_t                 status;
    ngx_http_momo_error_t      err;
    ngx_http_momo_mtn_code_t  *c;

    status = ctx->call->status;

    ngx_str_set(&err.message, "MTN refused the request");

    if (b->message.len) {
        err.message = b->message;
    }

    if (status == NGX_HTTP_UNAUTHORIZED || status == NGX_HTTP_FORBIDDEN) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "momo: MTN refused the gateway (HTTP %ui, \"%V\"): "
                      "check %s (%V product) and, in production, that "
                      "this IP address is allowed", status, &b->message,
                      ngx_http_momo_product_directive(ctx->product, 2),
                      &ctx->product->name);

        ngx_http_momo_error_set(&err, NGX_HTTP_BAD_GATEWAY,
                                "UPSTREAM_AUTH_FAILED",
                                "MTN refused the gateway's credentials");

        return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_AUTH_FAILED);
    }

    c = ngx_http_momo_mtn_code(&b->code);

    if (c) {
        if (c->hint) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "momo: MTN answered HTTP %ui \"%V\": %s",
                          status, &b->code, c->hint);
        }

        err.status = c->status;
        err.code = b->code;
        err.retryable = c->retryable;

        return ngx_http_momo_fail(r, ctx, &err, c->result);
    }

    if (status == NGX_HTTP_BAD_REQUEST || status == NGX_HTTP_NOT_FOUND) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "momo: MTN answered HTTP %ui \"%V\" \"%V\"",
                      status, &b->code, &b->message);

        err.status = NGX_HTTP_BAD_REQUEST;
        ngx_str_set(&err.code, "MTN_BAD_REQUEST");
        err.retryable = 0;

        return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_REJECTED);
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "momo: MTN answered HTTP %ui \"%V\"", status, &b->code);

    err.status = (status == NGX_HTTP_SERVICE_UNAVAILABLE)
                 ? NGX_HTTP_SERVICE_UNAVAILABLE : NGX_HTTP_BAD_GATEWAY;
    ngx_str_set(&err.code, "UPSTREAM_ERROR");

    if (b->code.len) {
        err.code = b->code;
    }

    err.retryable = 1;

    return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_REJECTED);
}


/* a code MTN answers before doing anything: nothing happened */

ngx_uint_t
ngx_http_momo_mtn_refused(ngx_str_t *code)
{
    ngx_http_momo_mtn_code_t  *c;

    c = ngx_http_momo_mtn_code(code);

    return (c != NULL && !c->retryable);
}


static ngx_http_momo_mtn_code_t *
ngx_http_momo_mtn_code(ngx_str_t *code)
{
    ngx_str_t                  not_allowed = ngx_string("NOT_ALLOWED");
    ngx_http_momo_mtn_code_t  *c;

    for (c = ngx_http_momo_mtn_codes; c->code.len; c++) {
        if (c->code.len == code->len
            && ngx_strncmp(c->code.data, code->data, code->len) == 0)
        {
            return c;
        }
    }

    /* any other NOT_ALLOWED* code is as final as NOT_ALLOWED */

    if (code->len > not_allowed.len
        && ngx_strncmp(code->data, not_allowed.data, not_allowed.len) == 0)
    {
        return ngx_http_momo_mtn_code(&not_allowed);
    }

    return NULL;
}


/* MTN's status JSON into a record: CREATED and unknown ones are pending */

void
ngx_http_momo_record_from_mtn(ngx_http_momo_record_t *rec,
    ngx_http_momo_mtn_body_t *b)
{
    if (b->status.len == 10
        && ngx_strncmp(b->status.data, "SUCCESSFUL", 10) == 0)
    {
        rec->state = NGX_HTTP_MOMO_ST_SUCCESSFUL;

    } else if (b->status.len == 6
               && ngx_strncmp(b->status.data, "FAILED", 6) == 0)
    {
        rec->state = NGX_HTTP_MOMO_ST_FAILED;

    } else if (b->status.len) {
        rec->state = NGX_HTTP_MOMO_ST_PENDING;
    }

#define ngx_http_momo_copy(field, len_field, src)                            \
    if ((src).len && (src).len <= sizeof(rec->field)) {                      \
        rec->len_field = (src).len;                                          \
        ngx_memcpy(rec->field, (src).data, (src).len);                       \
    }

    ngx_http_momo_copy(amount, amount_len, b->amount);
    ngx_http_momo_copy(currency, currency_len, b->currency);
    ngx_http_momo_copy(phone, phone_len, b->payer);
    ngx_http_momo_copy(external_id, external_id_len, b->external_id);
    ngx_http_momo_copy(reason, reason_len, b->reason);
    ngx_http_momo_copy(financial_transaction_id, fin_len,
                       b->financial_transaction_id);

#undef ngx_http_momo_copy
}


ngx_str_t *
ngx_http_momo_state_name(ngx_uint_t state)
{
    static ngx_str_t  names[] = {
        ngx_string("unknown"),
        ngx_string("pending"),
        ngx_string("successful"),
        ngx_string("failed"),
        ngx_string("not_found")
    };

    return &names[state <= NGX_HTTP_MOMO_ST_NOT_FOUND ? state : 0];
}
