
/*
 * momo balance: the available balance of the Collections account (what
 * payments brought in) or of the Disbursement one (what refunds and
 * payouts can still send).
 */


#include <string.h>

#include "momo_cli.h"


int
momo_cmd_balance(momo_opts_t *o)
{
    int                rc;
    char               avail[64], cur[64];
    yajl_gen           g;
    momo_diag_t        d;
    momo_client_t      c;
    momo_config_t      cf;
    momo_product_e     product;
    momo_http_resp_t   rs;

    rc = momo_config_product(o, &product);
    if (rc != 0) {
        return rc;
    }

    rc = momo_config_open(&cf, o, product);
    if (rc != 0) {
        momo_config_free(&cf);
        return rc;
    }

    momo_api_init(&c, &cf, o->http_timeout_ms, product);
    rc = momo_api_balance(&c, &rs, avail, cur, sizeof(avail));

    if (rc != 0) {
        momo_diag(&rs, &cf, &d);
        momo_api_explain(&c, &d);
        rc = momo_fail_diag(o, &d, NULL);

    } else if (o->json) {
        g = momo_json_begin();
        momo_json_kbool(g, "ok", 1);
        momo_json_kint(g, "exit_code", MOMO_EXIT_OK);
        momo_json_kstr(g, "product", momo_products[product].name);
        momo_json_kstr(g, "available_balance", avail);
        momo_json_kstr(g, "currency", cur);
        momo_json_end(g);

    } else {
        momo_printf("%s account: %s %s\n", momo_products[product].title,
                    avail, cur);
    }

    momo_http_free(&rs);
    momo_api_free(&c);
    momo_config_free(&cf);

    return rc;
}
