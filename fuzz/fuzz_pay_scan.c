
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * libFuzzer target for the plain-form scan of a client's payment
 * (ngx_http_momo_pay_scan): whatever the input, ngx_http_momo_json_payment
 * must answer as yajl alone does, with the same return code, the same
 * error (status, code, message) and the same fields.  The file includes
 * ngx_http_momo_json.c to reach its yajl path.  See README.md beside this
 * file.
 */


#include "ngx_http_momo_json.c"
#include "fuzz_ngx.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/* ngx_http_momo_json_payment with yajl only */

static ngx_int_t
ngx_fuzz_yajl_payment(ngx_pool_t *pool, u_char *data, size_t len,
    ngx_http_momo_payment_t *p, ngx_http_momo_error_t *err)
{
    yajl_status               rc;
    ngx_http_momo_pay_ctx_t   ctx;

    ngx_http_momo_pay_init(&ctx, pool, p, err);

    rc = ngx_http_momo_pay_yajl(&ctx, data, len);

    return ngx_http_momo_pay_result(&ctx, rc);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                   *buf;
    ngx_int_t                 rc1, rc2;
    ngx_pool_t               *pool;
    ngx_http_momo_error_t     e1, e2;
    ngx_http_momo_payment_t   p1, p2;

    if (ngx_fuzz_input(data, size, &pool, &buf) != NGX_OK) {
        return 0;
    }

    ngx_memzero(&e1, sizeof(ngx_http_momo_error_t));
    ngx_memzero(&e2, sizeof(ngx_http_momo_error_t));

    rc1 = ngx_http_momo_json_payment(pool, buf, size, &p1, &e1);
    rc2 = ngx_fuzz_yajl_payment(pool, buf, size, &p2, &e2);

    if (rc1 != rc2) {
        abort();
    }

    if (rc1 == NGX_DECLINED
        && (e1.status != e2.status
            || !ngx_fuzz_same(&e1.code, &e2.code)
            || !ngx_fuzz_same(&e1.message, &e2.message)))
    {
        abort();
    }

    if (rc1 == NGX_OK
        && (!ngx_fuzz_same(&p1.amount, &p2.amount)
            || !ngx_fuzz_same(&p1.currency, &p2.currency)
            || !ngx_fuzz_same(&p1.external_id, &p2.external_id)
            || !ngx_fuzz_same(&p1.payer_message, &p2.payer_message)
            || !ngx_fuzz_same(&p1.payee_note, &p2.payee_note)
            || !ngx_fuzz_same(&p1.phone, &p2.phone)
            || !ngx_fuzz_same(&p1.reference_id, &p2.reference_id)))
    {
        abort();
    }

    free(buf);
    ngx_destroy_pool(pool);

    return 0;
}
