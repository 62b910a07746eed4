
/*
 * momo pay, momo status: RequestToPay straight to MTN (not through
 * nginx), for manual tests of the credentials and the test numbers.
 * The input checks, the request and the wait serve refund and payout
 * too (momo_cmd_payout.c).
 */


#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "momo_cli.h"


static int momo_pay_phone(const char *arg, char *out, size_t size);
static int momo_pay_amount(const char *amount, const char *currency);
static const char *momo_pay_text(const char *s);
static void momo_pay_next_step(const momo_payment_t *pm,
    const char *what);


int
momo_cmd_pay(momo_opts_t *o)
{
    int                rc;
    momo_client_t      c;
    momo_config_t      cf;
    momo_payment_t     pm;
    momo_pay_input_t   in;

    if (o->phone == NULL || o->amount == NULL) {
        return momo_usage(o, "pay needs --phone and --amount");
    }

    rc = momo_config_open(&cf, o, MOMO_COLLECTION);
    if (rc != 0) {
        momo_config_free(&cf);
        return rc;
    }

    rc = momo_pay_validate(o, &cf, &in, "momo-cli test payment");

    if (rc == 0) {
        memset(&pm, 0, sizeof(pm));
        momo_api_init(&c, &cf, o->http_timeout_ms, MOMO_COLLECTION);

        if (momo_uuid_v4(pm.reference_id) != 0) {
            rc = momo_fail(o, MOMO_EXIT_MTN, "NO_RANDOMNESS",
                           "cannot get random bytes for a reference id");
        } else {
            rc = momo_pay_request(o, &c, &in, &pm);
        }

        if (rc == 0) {
            rc = momo_pay_finish(o, &c, &pm, 1);
        }

        momo_api_free(&c);
    }

    momo_config_free(&cf);

    return rc;
}


int
momo_cmd_status(momo_opts_t *o)
{
    int              rc;
    momo_client_t    c;
    momo_config_t    cf;
    momo_payment_t   pm;
    momo_product_e   product;

    if (o->nargs != 1) {
        return momo_usage(o, "status needs one reference id");
    }

    if (!momo_is_uuid(o->args[0])) {
        return momo_usage(o, "\"%s\" is not a reference id (a UUID like "
                          "\"momo pay\" prints)", o->args[0]);
    }

    if (o->refund && o->payout) {
        return momo_usage(o, "--refund or --payout, not both");
    }

    memset(&pm, 0, sizeof(pm));
    snprintf(pm.reference_id, sizeof(pm.reference_id), "%s", o->args[0]);

    pm.op = o->refund ? MOMO_OP_REFUND
                      : (o->payout ? MOMO_OP_PAYOUT : MOMO_OP_PAYMENT);
    product = (pm.op == MOMO_OP_PAYMENT) ? MOMO_COLLECTION
                                         : MOMO_DISBURSEMENT;

    rc = momo_config_open(&cf, o, product);
    if (rc != 0) {
        momo_config_free(&cf);
        return rc;
    }

    momo_api_init(&c, &cf, o->http_timeout_ms, product);
    rc = momo_pay_finish(o, &c, &pm, 0);
    momo_api_free(&c);
    momo_config_free(&cf);

    return rc;
}


/* the options common to pay, refund and payout; no phone for a refund */

int
momo_pay_validate(const momo_opts_t *o, const momo_config_t *cf,
    momo_pay_input_t *in, const char *text)
{
    const char  *problem;

    memset(in, 0, sizeof(*in));

    if (o->phone != NULL
        && !momo_pay_phone(o->phone, in->phone, sizeof(in->phone)))
    {
        return momo_usage(o, "--phone \"%s\" is not a phone number: 8-15 "
                          "digits in international form, like "
                          "46733123450 or +237 6xx xx xx xx", o->phone);
    }

    in->currency = o->currency;

    if (in->currency == NULL) {
        in->currency = momo_config_currency(cf->target_env);

        if (in->currency == NULL) {
            return momo_usage(o, "no default currency for target "
                              "environment \"%s\": give --currency",
                              cf->target_env);
        }
    }

    if (!momo_pay_amount(o->amount, in->currency)) {
        return momo_usage(o, "--amount \"%s\" is not a positive amount of "
                          "%s (digits, at most 2 decimals, none for XAF)",
                          o->amount, in->currency);
    }

    in->amount = o->amount;
    in->message = o->message ? o->message : text;
    in->note = o->note ? o->note : text;

    problem = momo_pay_text(in->message);
    if (problem != NULL) {
        return momo_usage(o, "--message %s", problem);
    }

    problem = momo_pay_text(in->note);
    if (problem != NULL) {
        return momo_usage(o, "--note %s", problem);
    }

    in->external_id = o->external_id;

    if (in->external_id == NULL) {
        snprintf(in->external_buf, sizeof(in->external_buf), "momo-cli-%ld",
                 (long) time(NULL));
        in->external_id = in->external_buf;

    } else if (in->external_id[0] == '\0' || strlen(in->external_id) > 64) {
        return momo_usage(o, "--external-id must be 1-64 characters");
    }

    return 0;
}


/* "+237 6-77 ..." -> "2376 77..."; 8-15 digits */

static int
momo_pay_phone(const char *arg, char *out, size_t size)
{
    size_t  n;

    n = 0;

    if (*arg == '+') {
        arg++;
    }

    for ( /* void */ ; *arg != '\0'; arg++) {
        if (*arg == ' ' || *arg == '-') {
            continue;
        }

        if (!isdigit((unsigned char) *arg) || n + 1 >= size) {
            return 0;
        }

        out[n++] = *arg;
    }

    out[n] = '\0';

    return n >= 8 && n <= 15;
}


static int
momo_pay_amount(const char *amount, const char *currency)
{
    int          digits, decimals, nonzero, max_decimals;
    const char  *p;

    /* currencies without a minor unit */
    max_decimals = (strstr("XAF XOF UGX GNF RWF", currency) != NULL
                    && strlen(currency) == 3) ? 0 : 2;

    digits = 0;
    decimals = -1;
    nonzero = 0;

    for (p = amount; *p != '\0'; p++) {

        if (*p == '.' && decimals == -1 && digits > 0) {
            decimals = 0;
            continue;
        }

        if (!isdigit((unsigned char) *p)) {
            return 0;
        }

        nonzero |= (*p != '0');

        if (decimals >= 0) {
            decimals++;
        } else {
            digits++;
        }
    }

    return digits > 0 && digits <= 12 && decimals != 0
           && decimals <= max_decimals && nonzero;
}


/* MTN refuses these in payerMessage and payeeNote */

static const char *
momo_pay_text(const char *s)
{
    if (s[0] == '\0') {
        return "must not be empty (MTN production answers 500)";
    }

    if (strlen(s) > 160) {
        return "is longer than 160 characters (MTN answers 400)";
    }

    if (strpbrk(s, "'&<>\"") != NULL) {
        return "must not contain ' & < > or \" (MTN answers 400)";
    }

    return NULL;
}


char *
momo_pay_body(const momo_pay_input_t *in, momo_op_e op)
{
    char                 *body;
    size_t                len;
    yajl_gen              g;
    const unsigned char  *buf;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NULL;
    }

    yajl_gen_map_open(g);
    momo_json_kstr_raw(g, "amount", in->amount);
    momo_json_kstr_raw(g, "currency", in->currency);
    momo_json_kstr_raw(g, "externalId", in->external_id);

    if (op != MOMO_OP_REFUND) {
        momo_json_key(g, op == MOMO_OP_PAYMENT ? "payer" : "payee");
        yajl_gen_map_open(g);
        momo_json_kstr_raw(g, "partyIdType", "MSISDN");
        momo_json_kstr_raw(g, "partyId", in->phone);
        yajl_gen_map_close(g);
    }

    momo_json_kstr_raw(g, "payerMessage", in->message);
    momo_json_kstr_raw(g, "payeeNote", in->note);

    if (op == MOMO_OP_REFUND) {
        momo_json_kstr_raw(g, "referenceIdToRefund", in->refund_of);
    }

    yajl_gen_map_close(g);

    body = NULL;

    if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok) {
        body = momo_alloc(len + 1);
        memcpy(body, buf, len);
        body[len] = '\0';
    }

    yajl_gen_free(g);

    return body;
}


/*
 * POST /collection/v1_0/requesttopay, /disbursement/v1_0/refund or
 * /disbursement/v1_0/transfer with pm->reference_id: 0 on 202, -1 on
 * MTN's 409 for a refund or payout (the caller looks at what MTN has),
 * else the exit code.
 */

int
momo_pay_request(const momo_opts_t *o, momo_client_t *c,
    const momo_pay_input_t *in, momo_payment_t *pm)
{
    int                rc;
    char              *body, ref_header[64], cb_header[1024];
    const char        *extra[3], *call;
    momo_diag_t        d;
    momo_http_resp_t   rs;

    snprintf(ref_header, sizeof(ref_header), "X-Reference-Id: %s",
             pm->reference_id);
    extra[0] = ref_header;
    extra[1] = NULL;
    extra[2] = NULL;

    if (o->callback_url != NULL) {
        snprintf(cb_header, sizeof(cb_header), "X-Callback-Url: %s",
                 o->callback_url);
        extra[1] = cb_header;
    }

    body = momo_pay_body(in, pm->op);
    if (body == NULL) {
        return momo_fail(o, MOMO_EXIT_MTN, "INTERNAL", "out of memory");
    }

    call = strrchr(momo_payment_path(pm->op), '/') + 1;

    rc = momo_api_call(c, call, "POST", momo_payment_path(pm->op), extra,
                       body, &rs);
    free(body);

    if (rc == 0) {
        momo_http_free(&rs);

        pm->status = "pending";
        snprintf(pm->amount, sizeof(pm->amount), "%s", in->amount);
        snprintf(pm->currency, sizeof(pm->currency), "%s", in->currency);
        snprintf(pm->payer, sizeof(pm->payer), "%s", in->phone);
        snprintf(pm->external_id, sizeof(pm->external_id), "%s",
                 in->external_id);

        return 0;
    }

    momo_diag(&rs, c->cf, &d);
    momo_http_free(&rs);

    if (d.http_status == 409 && pm->op != MOMO_OP_PAYMENT
        && strcmp(d.call, call) == 0)
    {
        return -1;
    }

    momo_api_explain(c, &d);

    /* an unanswered POST may still have reached MTN */
    if (d.http_status == 0 && strcmp(d.call, call) == 0) {
        if (pm->op == MOMO_OP_PAYMENT) {
            snprintf(d.hint + strlen(d.hint),
                     sizeof(d.hint) - strlen(d.hint),
                     " MTN may have accepted the payment all the same: ask "
                     "\"momo status %s\" before paying again.",
                     pm->reference_id);
        } else {
            snprintf(d.hint + strlen(d.hint),
                     sizeof(d.hint) - strlen(d.hint),
                     " MTN may have accepted it all the same: run the same "
                     "command again with the same --idempotency-key; it "
                     "reaches MTN with the same reference id, so the money "
                     "cannot go twice.");
        }
    }

    return momo_fail_diag(o, &d, strcmp(d.call, call) == 0
                                 ? pm->reference_id : NULL);
}


/*
 * After a 202 (pay) or for a given id (status): one look, or --wait
 * until the payment is final.
 */

int
momo_pay_finish(const momo_opts_t *o, momo_client_t *c, momo_payment_t *pm,
    int tolerate_404)
{
    int                rc;
    momo_diag_t        d;
    momo_http_resp_t   rs;

    if (!o->wait) {

        if (tolerate_404) {
            /* pay: MTN's 202 is all there is to tell */
            return momo_pay_report(o, pm, MOMO_EXIT_OK, NULL);
        }

        if (momo_payment_fetch(c, pm, &rs) != 0) {
            momo_diag(&rs, c->cf, &d);
            momo_http_free(&rs);
            momo_api_explain(c, &d);
            return momo_fail_diag(o, &d, pm->reference_id);
        }

        momo_http_free(&rs);

        return momo_pay_report(o, pm, momo_payment_exit(pm), NULL);
    }

    /* pay: the id first, in case the wait is interrupted */
    if (!o->json && tolerate_404) {
        momo_printf("reference id: %s\n", pm->reference_id);
        pm->ref_printed = 1;
    }

    memset(&d, 0, sizeof(d));
    rc = momo_payment_wait(c, o, pm, tolerate_404, &d);

    if (rc == -1) {
        momo_api_explain(c, &d);
        return momo_fail_diag(o, &d, pm->reference_id);
    }

    if (rc == 1) {
        if (pm->status == NULL) {
            pm->status = "pending";
        }

        return momo_pay_report(o, pm, MOMO_EXIT_PENDING,
                               d.code != NULL ? &d : NULL);
    }

    return momo_pay_report(o, pm, momo_payment_exit(pm), NULL);
}


int
momo_pay_report(const momo_opts_t *o, const momo_payment_t *pm,
    int exit_code, const momo_diag_t *d)
{
    yajl_gen  g;

    if (o->json) {
        g = momo_json_begin();
        momo_json_kbool(g, "ok", exit_code == MOMO_EXIT_OK);
        momo_json_kint(g, "exit_code", exit_code);
        momo_payment_json(g, pm);

        if (d != NULL) {
            momo_json_diag(g, d);
        }

        momo_json_end(g);

        return exit_code;
    }

    momo_payment_print(pm);

    if (d != NULL) {
        momo_print_diag(d, "last error: ");
    }

    if (exit_code == MOMO_EXIT_PENDING) {
        momo_printf("still pending after %.0f s; ", o->wait_timeout_ms
                    / 1000.0);
        momo_pay_next_step(pm, "ask again with");

    } else if (!o->wait && strcmp(pm->status, "pending") == 0) {
        momo_pay_next_step(pm, "see how it ends with");
    }

    return exit_code;
}


static void
momo_pay_next_step(const momo_payment_t *pm, const char *what)
{
    if (pm->op == MOMO_OP_PAYMENT) {
        momo_printf("%s: momo status %s --wait\n", what, pm->reference_id);
        return;
    }

    momo_printf("%s: momo status %s --%s --wait (or the same command with "
                "--wait)\n", what, pm->reference_id,
                pm->op == MOMO_OP_REFUND ? "refund" : "payout");
}
