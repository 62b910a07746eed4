
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * libFuzzer target for the pure parts that read untrusted bytes: the
 * client's payment body (parse, then validate), MTN's answers (parse,
 * render back, parse again) and the Idempotency-Key and reference id
 * checks.  See README.md beside this file.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_momo_module.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/* what nginx's core would provide; the pure files need only these */

static ngx_log_t      ngx_fuzz_log;
static ngx_cycle_t    ngx_fuzz_cycle;
volatile ngx_cycle_t  *ngx_cycle = &ngx_fuzz_cycle;
ngx_pid_t              ngx_pid;


void
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
}


static ngx_uint_t
ngx_fuzz_same(ngx_str_t *a, ngx_str_t *b)
{
    return a->len == b->len
           && (a->len == 0 || ngx_memcmp(a->data, b->data, a->len) == 0);
}


static void
ngx_fuzz_check_payment(ngx_http_momo_payment_t *p, ngx_str_t *currency)
{
    u_char      *c, *last;
    ngx_uint_t   dot, digits, decimals;

    /* what validation promises to the code that builds MTN's request */

    if (p->phone.len < 8 || p->phone.len > 15 || p->phone.data[0] == '0') {
        abort();
    }

    for (c = p->phone.data, last = c + p->phone.len; c < last; c++) {
        if (*c < '0' || *c > '9') {
            abort();
        }
    }

    if (p->amount.len == 0 || p->amount.len > 32
        || p->amount.data[0] < '0' || p->amount.data[0] > '9'
        || (p->amount.data[0] == '0' && p->amount.len > 1
            && p->amount.data[1] != '.'))
    {
        abort();
    }

    dot = 0;
    digits = 0;
    decimals = 0;

    for (c = p->amount.data, last = c + p->amount.len; c < last; c++) {
        if (*c == '.') {
            if (dot++) {
                abort();
            }

        } else if (*c < '0' || *c > '9') {
            abort();

        } else if (dot) {
            decimals++;

        } else {
            digits++;
        }
    }

    if (digits > 15 || decimals > 2 || (dot && decimals == 0)) {
        abort();
    }

    if (dot && currency->len == 3
        && ngx_strncmp(currency->data, "XAF", 3) == 0)
    {
        abort();
    }

    if (p->currency.len != currency->len
        || ngx_strncmp(p->currency.data, currency->data, currency->len) != 0)
    {
        abort();
    }

    if (p->external_id.len == 0 || p->external_id.len > 64
        || p->payer_message.len == 0 || p->payee_note.len == 0)
    {
        abort();
    }

    for (c = p->payer_message.data, last = c + p->payer_message.len;
         c < last;
         c++)
    {
        if (*c < 0x20 || *c == '\'' || *c == '&' || *c == '<' || *c == '>'
            || *c == '"' || *c == 0x7f)
        {
            abort();
        }
    }
}


static void
ngx_fuzz_mtn(ngx_pool_t *pool, u_char *buf, size_t size)
{
    ngx_int_t                    rc;
    ngx_str_t                    out;
    ngx_http_momo_mtn_body_t     b, b2;
    ngx_http_momo_json_field_t   f[8];

    rc = ngx_http_momo_json_mtn(pool, buf, size, &b);

    if (rc == NGX_ERROR) {
        abort();
    }

    if (rc == NGX_DECLINED) {
        if (b.status.len || b.reason.len || b.code.len || b.message.len
            || b.access_token.len || b.status_code != -1 || b.expires_in != -1)
        {
            abort();
        }

        return;
    }

    /* what is read can be rendered, and what is rendered reads back */

    ngx_memzero(f, sizeof(f));

    ngx_str_set(&f[0].key, "status");
    f[0].value = b.status;
    ngx_str_set(&f[1].key, "reason");
    f[1].value = b.reason;
    f[1].type = NGX_HTTP_MOMO_JSON_STRING_OR_NULL;
    ngx_str_set(&f[2].key, "amount");
    f[2].value = b.amount;
    ngx_str_set(&f[3].key, "code");
    f[3].value = b.code;
    ngx_str_set(&f[4].key, "message");
    f[4].value = b.message;
    ngx_str_set(&f[5].key, "access_token");
    f[5].value = b.access_token;
    ngx_str_set(&f[6].key, "financialTransactionId");
    f[6].value = b.financial_transaction_id;
    f[6].type = NGX_HTTP_MOMO_JSON_STRING_OR_NULL;
    ngx_str_set(&f[7].key, "externalId");
    f[7].value = b.external_id;

    if (ngx_http_momo_json_render(pool, f, 8, &out) != NGX_OK) {
        abort();
    }

    if (ngx_http_momo_json_mtn(pool, out.data, out.len, &b2) != NGX_OK) {
        abort();
    }

    /* null stands for empty in "reason" and "financialTransactionId" */

    if (!ngx_fuzz_same(&b.status, &b2.status)
        || !ngx_fuzz_same(&b.reason, &b2.reason)
        || !ngx_fuzz_same(&b.amount, &b2.amount)
        || !ngx_fuzz_same(&b.code, &b2.code)
        || !ngx_fuzz_same(&b.message, &b2.message)
        || !ngx_fuzz_same(&b.access_token, &b2.access_token)
        || !ngx_fuzz_same(&b.financial_transaction_id,
                          &b2.financial_transaction_id)
        || !ngx_fuzz_same(&b.external_id, &b2.external_id))
    {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                   *buf;
    ngx_int_t                 rc;
    ngx_str_t                 s, eur, xaf;
    ngx_pool_t               *pool;
    ngx_http_momo_error_t     err;
    ngx_http_momo_payment_t   p, v;

    ngx_fuzz_log.log_level = NGX_LOG_ERR;
    ngx_fuzz_cycle.log = &ngx_fuzz_log;

    /*
     * a pool with no room of its own: every allocation becomes a separate
     * malloc(), so AddressSanitizer sees any overflow of one
     */

    pool = ngx_create_pool(sizeof(ngx_pool_t), &ngx_fuzz_log);
    if (pool == NULL) {
        return 0;
    }

    /* an exact copy: parsers must not read past the end */

    buf = malloc(size ? size : 1);
    if (buf == NULL) {
        ngx_destroy_pool(pool);
        return 0;
    }

    ngx_memcpy(buf, data, size);

    ngx_str_set(&eur, "EUR");
    ngx_str_set(&xaf, "XAF");

    rc = ngx_http_momo_json_payment(pool, buf, size, &p, &err);

    if (rc == NGX_DECLINED) {
        if (err.status != NGX_HTTP_BAD_REQUEST || err.code.len == 0
            || err.message.len == 0)
        {
            abort();
        }

    } else if (rc != NGX_OK) {
        abort();

    } else {
        v = p;

        rc = ngx_http_momo_validate_payment(pool, &v, &eur, &err);
        if (rc == NGX_OK) {
            ngx_fuzz_check_payment(&v, &eur);

        } else if (rc != NGX_DECLINED || err.status != NGX_HTTP_BAD_REQUEST) {
            abort();
        }

        v = p;

        rc = ngx_http_momo_validate_payment(pool, &v, &xaf, &err);
        if (rc == NGX_OK) {
            ngx_fuzz_check_payment(&v, &xaf);

        } else if (rc != NGX_DECLINED || err.status != NGX_HTTP_BAD_REQUEST) {
            abort();
        }
    }

    ngx_fuzz_mtn(pool, buf, size);

    s.data = buf;
    s.len = size;

    (void) ngx_http_momo_validate_idempotency_key(&s);
    (void) ngx_http_momo_is_uuid(&s);

    free(buf);
    ngx_destroy_pool(pool);

    return 0;
}
