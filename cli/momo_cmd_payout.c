
/*
 * momo refund, momo payout: money out through MTN's Disbursement
 * product (/disbursement/v1_0/refund and /transfer), straight to MTN.
 *
 * Money that leaves must not leave twice: --idempotency-key is required
 * and the reference id is derived from it, so running the same command
 * again (after a timeout, say) reaches MTN with the same id; MTN's 409
 * then means "accepted before", shown with the status MTN has, or refused
 * when that earlier one was for another amount, currency or payee.
 */


#include <string.h>

#include "momo_cli.h"


#define MOMO_IDEMPOTENCY_MAX  255


typedef struct {
    const momo_opts_t   *o;
    momo_config_t        cf;
    momo_client_t        c;
    momo_pay_input_t     in;
    momo_payment_t       pm;
} momo_payout_t;


static int momo_payout_run(momo_opts_t *o, momo_op_e op);
static int momo_payout_send(momo_payout_t *po);
static int momo_payout_reference(momo_payout_t *po);
static int momo_payout_refundable(momo_payout_t *po);
static int momo_payout_refusal(momo_payout_t *po, const momo_payment_t *pay);
static int momo_payout_again(momo_payout_t *po);


int
momo_cmd_refund(momo_opts_t *o)
{
    if (o->nargs != 1 || o->amount == NULL) {
        return momo_usage(o, "refund needs the payment's reference id and "
                          "--amount");
    }

    if (!momo_is_uuid(o->args[0])) {
        return momo_usage(o, "\"%s\" is not a payment's reference id (a "
                          "UUID like \"momo pay\" prints)", o->args[0]);
    }

    return momo_payout_run(o, MOMO_OP_REFUND);
}


int
momo_cmd_payout(momo_opts_t *o)
{
    if (o->phone == NULL || o->amount == NULL) {
        return momo_usage(o, "payout needs --phone and --amount");
    }

    return momo_payout_run(o, MOMO_OP_PAYOUT);
}


static int
momo_payout_run(momo_opts_t *o, momo_op_e op)
{
    int                rc;
    const char        *k;
    momo_payout_t      po;

    k = o->idempotency_key;

    if (k == NULL) {
        return momo_usage(o, "%s needs --idempotency-key KEY: a name of "
                          "your own for this %s (an order or booking "
                          "number), so that running the command again "
                          "cannot send the money twice",
                          op == MOMO_OP_REFUND ? "refund" : "payout",
                          op == MOMO_OP_REFUND ? "refund" : "payout");
    }

    if (k[0] == '\0' || strlen(k) > MOMO_IDEMPOTENCY_MAX
        || strpbrk(k, " \t\r\n") != NULL)
    {
        return momo_usage(o, "--idempotency-key must be 1 to %d characters "
                          "without blanks", MOMO_IDEMPOTENCY_MAX);
    }

    memset(&po, 0, sizeof(po));
    po.o = o;
    po.pm.op = op;

    rc = momo_config_open(&po.cf, o, MOMO_DISBURSEMENT);

    if (rc == 0) {
        rc = momo_pay_validate(o, &po.cf, &po.in, op == MOMO_OP_REFUND
                               ? "momo-cli refund" : "momo-cli payout");
    }

    if (rc == 0) {
        rc = momo_payout_reference(&po);
    }

    if (rc == 0 && op == MOMO_OP_REFUND) {
        rc = momo_payout_refundable(&po);
    }

    if (rc == 0) {
        momo_api_init(&po.c, &po.cf, o->http_timeout_ms, MOMO_DISBURSEMENT);
        rc = momo_payout_send(&po);
        momo_api_free(&po.c);
    }

    momo_config_free(&po.cf);

    return rc;
}


/*
 * The reference id from the Disbursement API user and the key, and the
 * key as the default externalId, so that a retry sends the same body.
 */

static int
momo_payout_reference(momo_payout_t *po)
{
    char          material[512];
    const char   *op;

    op = (po->pm.op == MOMO_OP_REFUND) ? "refund" : "payout";

    snprintf(material, sizeof(material), "momo-cli|%s|%s|%s", op,
             po->cf.value[MOMO_KEY_D_USER], po->o->idempotency_key);

    if (momo_uuid_derive(material, po->pm.reference_id) != 0) {
        return momo_fail(po->o, MOMO_EXIT_MTN, "INTERNAL",
                         "cannot derive a reference id");
    }

    if (po->o->external_id == NULL) {
        if (strlen(po->o->idempotency_key) <= 64) {
            po->in.external_id = po->o->idempotency_key;

        } else {
            snprintf(po->in.external_buf, sizeof(po->in.external_buf),
                     "momo-cli-%.8s", po->pm.reference_id);
            po->in.external_id = po->in.external_buf;
        }
    }

    if (po->pm.op == MOMO_OP_REFUND) {
        po->in.refund_of = po->o->args[0];
    }

    return 0;
}


/*
 * With Collections credentials too, the payment is looked at first: a
 * payment that is not SUCCESSFUL, or smaller than the refund, is refused
 * before MTN sees the refund.  Without them MTN alone decides.
 */

static int
momo_payout_refundable(momo_payout_t *po)
{
    int                rc;
    momo_diag_t        d;
    momo_client_t      c;
    momo_payment_t     pay;
    momo_http_resp_t   rs;

    if (!po->cf.has[MOMO_COLLECTION]) {
        if (!po->o->json) {
            momo_eprintf("no Collections credentials in %s: the payment is "
                         "not checked first, MTN decides\n", po->cf.path);
        }

        return 0;
    }

    memset(&pay, 0, sizeof(pay));
    pay.op = MOMO_OP_PAYMENT;
    snprintf(pay.reference_id, sizeof(pay.reference_id), "%s",
             po->in.refund_of);

    momo_api_init(&c, &po->cf, po->o->http_timeout_ms, MOMO_COLLECTION);
    rc = momo_payment_fetch(&c, &pay, &rs);

    if (rc != 0) {
        momo_diag(&rs, &po->cf, &d);
        momo_api_explain(&c, &d);
        momo_api_free(&c);
        momo_http_free(&rs);

        snprintf(d.hint + strlen(d.hint), sizeof(d.hint) - strlen(d.hint),
                 " Nothing was refunded: the payment could not be checked "
                 "first.");

        return momo_fail_diag(po->o, &d, NULL);
    }

    momo_api_free(&c);
    momo_http_free(&rs);

    return momo_payout_refusal(po, &pay);
}


static int
momo_payout_refusal(momo_payout_t *po, const momo_payment_t *pay)
{
    if (strcmp(pay->status, "successful") != 0) {
        return momo_fail(po->o, MOMO_EXIT_USAGE, "PAYMENT_NOT_SUCCESSFUL",
                         "payment %s is %s (MTN: %s): only a SUCCESSFUL "
                         "payment can be refunded; nothing was sent",
                         pay->reference_id, pay->status, pay->mtn_status);
    }

    if (strcmp(pay->currency, po->in.currency) != 0) {
        return momo_fail(po->o, MOMO_EXIT_USAGE, "CURRENCY_MISMATCH",
                         "payment %s was in %s, the refund is in %s; "
                         "nothing was sent", pay->reference_id,
                         pay->currency, po->in.currency);
    }

    if (momo_payment_cents(po->in.amount) > momo_payment_cents(pay->amount))
    {
        return momo_fail(po->o, MOMO_EXIT_USAGE, "AMOUNT_TOO_LARGE",
                         "payment %s was %s %s: a refund of %s is more; "
                         "nothing was sent", pay->reference_id, pay->amount,
                         pay->currency, po->in.amount);
    }

    return 0;
}


/* POST, then one look or --wait; a 409 is an earlier try of this key */

static int
momo_payout_send(momo_payout_t *po)
{
    int  rc;

    rc = momo_pay_request(po->o, &po->c, &po->in, &po->pm);

    if (rc == -1) {
        return momo_payout_again(po);
    }

    if (rc != 0) {
        return rc;
    }

    return momo_pay_finish(po->o, &po->c, &po->pm, 1);
}


static int
momo_payout_again(momo_payout_t *po)
{
    int                rc;
    momo_diag_t        d;
    momo_payment_t    *pm;
    momo_http_resp_t   rs;

    pm = &po->pm;
    pm->accepted_before = 1;

    if (!po->o->json) {
        momo_eprintf("MTN already has reference id %s (409): this "
                     "--idempotency-key was used before, nothing new was "
                     "sent\n", pm->reference_id);
    }

    rc = momo_payment_fetch(&po->c, pm, &rs);

    if (rc != 0) {
        momo_diag(&rs, &po->cf, &d);
        momo_http_free(&rs);

        if (d.http_status == 404) {
            /* accepted, not visible yet */
            pm->status = "pending";
            return momo_pay_finish(po->o, &po->c, pm, 1);
        }

        return momo_fail_diag(po->o, &d, pm->reference_id);
    }

    momo_http_free(&rs);

    if (!momo_payment_same_amount(pm->amount, po->in.amount)
        || strcmp(pm->currency, po->in.currency) != 0
        || (pm->op == MOMO_OP_PAYOUT && pm->payer[0] != '\0'
            && strcmp(pm->payer, po->in.phone) != 0)
        || (pm->external_id[0] != '\0'
            && strcmp(pm->external_id, po->in.external_id) != 0))
    {
        return momo_fail(po->o, MOMO_EXIT_USAGE, "IDEMPOTENCY_KEY_REUSED",
                         "--idempotency-key %s was used for another %s: "
                         "MTN has %s %s%s%s (external id %s) under reference "
                         "id %s. Nothing was sent; use a new key for a new "
                         "one", po->o->idempotency_key,
                         pm->op == MOMO_OP_REFUND ? "refund" : "payout",
                         pm->amount, pm->currency,
                         pm->payer[0] ? " to " : "", pm->payer,
                         pm->external_id, pm->reference_id);
    }

    if (!po->o->wait) {
        return momo_pay_report(po->o, pm, momo_payment_exit(pm), NULL);
    }

    return momo_pay_finish(po->o, &po->c, pm, 1);
}
