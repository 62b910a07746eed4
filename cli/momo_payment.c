
/*
 * A payment's status as MTN reports it, and waiting for the end of it;
 * the same for a refund or a payout (Disbursement), whose status names
 * a "payee" where a payment's names the "payer".
 *
 * SUCCESSFUL and FAILED are final; CREATED, PENDING and anything MTN may
 * invent later are pending.  "reason" comes as a string or, following
 * MTN's swagger, as {code, message}: both are read.
 */


#include <ctype.h>
#include <string.h>

#include "momo_cli.h"


#define MOMO_POLL_INTERVAL_MS  1000
#define MOMO_MIN_CALL_MS       1000


static void momo_payment_reason(yajl_val json, momo_payment_t *pm);
static void momo_payment_copy(char *dst, size_t size, const char *src);
static int momo_payment_poll(momo_client_t *c, momo_payment_t *pm,
    int tolerate_404, momo_diag_t *d);


int
momo_payment_parse(const momo_http_resp_t *rs, momo_payment_t *pm)
{
    yajl_val     json, payer;
    const char  *status;

    json = momo_json_parse(rs->body);
    status = momo_json_str(json, "status");

    if (status == NULL) {
        yajl_tree_free(json);
        return -1;
    }

    momo_payment_copy(pm->mtn_status, sizeof(pm->mtn_status), status);

    if (strcmp(status, "SUCCESSFUL") == 0) {
        pm->status = "successful";

    } else if (strcmp(status, "FAILED") == 0) {
        pm->status = "failed";

    } else {
        pm->status = "pending";
    }

    momo_payment_copy(pm->amount, sizeof(pm->amount),
                      momo_json_str(json, "amount"));
    momo_payment_copy(pm->currency, sizeof(pm->currency),
                      momo_json_str(json, "currency"));
    momo_payment_copy(pm->external_id, sizeof(pm->external_id),
                      momo_json_str(json, "externalId"));
    momo_payment_copy(pm->financial_id, sizeof(pm->financial_id),
                      momo_json_str(json, "financialTransactionId"));

    payer = momo_json_get(json, pm->op == MOMO_OP_PAYMENT ? "payer"
                                                          : "payee");
    momo_payment_copy(pm->payer, sizeof(pm->payer),
                      momo_json_str(payer, "partyId"));

    momo_payment_reason(json, pm);

    yajl_tree_free(json);

    return 0;
}


static void
momo_payment_reason(yajl_val json, momo_payment_t *pm)
{
    yajl_val  reason;

    reason = momo_json_get(json, "reason");

    if (reason != NULL && YAJL_IS_OBJECT(reason)) {
        momo_payment_copy(pm->reason, sizeof(pm->reason),
                          momo_json_str(reason, "code"));
        momo_payment_copy(pm->reason_message, sizeof(pm->reason_message),
                          momo_json_str(reason, "message"));
        return;
    }

    momo_payment_copy(pm->reason, sizeof(pm->reason),
                      momo_json_str(json, "reason"));
    pm->reason_message[0] = '\0';
}


static void
momo_payment_copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src != NULL ? src : "");
}


int
momo_payment_final(const momo_payment_t *pm)
{
    return pm->status != NULL && strcmp(pm->status, "pending") != 0;
}


/* where MTN takes the operation, and answers its status below it */

const char *
momo_payment_path(momo_op_e op)
{
    switch (op) {

    case MOMO_OP_REFUND:
        return "/disbursement/v1_0/refund";

    case MOMO_OP_PAYOUT:
        return "/disbursement/v1_0/transfer";

    default:
        return "/collection/v1_0/requesttopay";
    }
}


/* "30" and "30.00" are the same amount */

int
momo_payment_same_amount(const char *a, const char *b)
{
    long long  ca;

    if (a == NULL || b == NULL) {
        return 0;
    }

    ca = momo_payment_cents(a);

    return ca >= 0 && ca == momo_payment_cents(b);
}


/* an amount in hundredths, -1 when it is not digits with 0-2 decimals */

long long
momo_payment_cents(const char *s)
{
    int        decimals;
    long long  v;

    v = 0;
    decimals = -1;

    for ( /* void */ ; *s != '\0'; s++) {
        if (*s == '.' && decimals == -1) {
            decimals = 0;
            continue;
        }

        if (!isdigit((unsigned char) *s) || decimals == 2
            || v > 1000000000000LL)
        {
            return -1;
        }

        v = v * 10 + (*s - '0');
        decimals += (decimals >= 0);
    }

    for (decimals = (decimals < 0) ? 0 : decimals; decimals < 2; decimals++) {
        v *= 10;
    }

    return v;
}


/* GET {path}/{id}: 0 with *pm set, or -1 */

int
momo_payment_fetch(momo_client_t *c, momo_payment_t *pm,
    momo_http_resp_t *rs)
{
    char  path[128];

    snprintf(path, sizeof(path), "%s/%s", momo_payment_path(pm->op),
             pm->reference_id);

    if (momo_api_call(c, "status", "GET", path, NULL, NULL, rs) != 0) {
        return -1;
    }

    return momo_payment_parse(rs, pm);
}


/*
 * Polls at most once a second until the payment is final or the wait
 * times out.  Returns 0 when final, 1 when still pending at the end,
 * -1 on an error worth stopping for (*d says which).  Passing errors
 * (network, MTN 5xx) and, right after a 202, a 404 are waited out.
 */

int
momo_payment_wait(momo_client_t *c, const momo_opts_t *o,
    momo_payment_t *pm, int tolerate_404, momo_diag_t *d)
{
    int           rc;
    long          start, deadline, now, t, next;
    momo_diag_t   last;

    start = momo_now_ms();
    deadline = start + o->wait_timeout_ms;

    for ( ;; ) {
        t = momo_now_ms();

        c->timeout_ms = deadline - t;
        if (c->timeout_ms > o->http_timeout_ms) {
            c->timeout_ms = o->http_timeout_ms;
        }

        if (c->timeout_ms < MOMO_MIN_CALL_MS) {
            c->timeout_ms = MOMO_MIN_CALL_MS;
        }

        rc = momo_payment_poll(c, pm, tolerate_404, &last);

        if (rc == 0 && momo_payment_final(pm)) {
            return 0;
        }

        if (rc == -1) {
            *d = last;
            return -1;
        }

        if (!o->json) {
            momo_payment_progress(pm, momo_now_ms() - start,
                                  rc == 1 ? &last : NULL);
        }

        now = momo_now_ms();

        if (now >= deadline) {
            if (rc == 1) {
                *d = last;
            }

            return 1;
        }

        next = t + MOMO_POLL_INTERVAL_MS;
        momo_sleep_ms((next < deadline ? next : deadline) - now);
    }
}


/* 0: a status, 1: a passing error, -1: a lasting error; *d for errors */

static int
momo_payment_poll(momo_client_t *c, momo_payment_t *pm, int tolerate_404,
    momo_diag_t *d)
{
    int               rc;
    momo_http_resp_t  rs;

    rc = momo_payment_fetch(c, pm, &rs);

    if (rc == 0) {
        momo_http_free(&rs);
        return 0;
    }

    momo_diag(&rs, c->cf, d);
    momo_http_free(&rs);

    if (d->transient || (tolerate_404 && d->http_status == 404
                         && strcmp(d->code, "NOT_FOUND") == 0))
    {
        return 1;
    }

    return -1;
}


/*
 * On a terminal one line rewrites itself each second; in a log a line
 * is written when something changes, or every 10 s as a sign of life.
 */

void
momo_payment_progress(const momo_payment_t *pm, long elapsed_ms,
    const momo_diag_t *last_error)
{
    char         line[160];
    static char  last_line[160];
    static long  last_ms = -1;

    if (last_error != NULL) {
        snprintf(line, sizeof(line), "%s (retrying)", last_error->code);
    } else {
        snprintf(line, sizeof(line), "status %s",
                 pm->mtn_status[0] ? pm->mtn_status : "unknown");
    }

    if (!momo_stdout_is_tty()) {
        if (strcmp(line, last_line) == 0 && last_ms >= 0
            && elapsed_ms - last_ms < 10000)
        {
            return;
        }

        snprintf(last_line, sizeof(last_line), "%s", line);
        last_ms = elapsed_ms;
    }

    momo_progress("waiting %3lds  %s", elapsed_ms / 1000, line);
}


void
momo_payment_print(const momo_payment_t *pm)
{
    if (!pm->ref_printed) {
        momo_printf("reference id: %s\n", pm->reference_id);
    }

    if (pm->mtn_status[0] != '\0') {
        momo_printf("status:       %s (MTN: %s)\n", pm->status,
                    pm->mtn_status);
    } else {
        momo_printf("status:       %s (MTN answered 202 Accepted)\n",
                    pm->status);
    }

    if (pm->amount[0] != '\0') {
        momo_printf("amount:       %s %s\n", pm->amount, pm->currency);
    }

    if (pm->payer[0] != '\0') {
        momo_printf("%s        %s\n",
                    pm->op == MOMO_OP_PAYMENT ? "payer:" : "payee:",
                    pm->payer);
    }

    if (pm->external_id[0] != '\0') {
        momo_printf("external id:  %s\n", pm->external_id);
    }

    if (pm->financial_id[0] != '\0') {
        momo_printf("financial transaction id: %s\n", pm->financial_id);
    }

    if (pm->reason[0] != '\0') {
        momo_printf("reason:       %s%s%s\n", pm->reason,
                    pm->reason_message[0] ? " - " : "", pm->reason_message);
    }
}


void
momo_payment_json(yajl_gen g, const momo_payment_t *pm)
{
#define momo_or_null(s)  ((s)[0] != '\0' ? (s) : NULL)

    momo_json_kstr(g, "reference_id", pm->reference_id);
    momo_json_kstr(g, "status", pm->status);
    momo_json_kstr(g, "mtn_status", momo_or_null(pm->mtn_status));
    momo_json_kstr(g, "amount", momo_or_null(pm->amount));
    momo_json_kstr(g, "currency", momo_or_null(pm->currency));
    momo_json_kstr(g, pm->op == MOMO_OP_PAYMENT ? "payer" : "payee",
                   momo_or_null(pm->payer));
    momo_json_kstr(g, "external_id", momo_or_null(pm->external_id));
    momo_json_kstr(g, "financial_transaction_id",
                   momo_or_null(pm->financial_id));
    momo_json_kstr(g, "reason", momo_or_null(pm->reason));
    momo_json_kstr(g, "reason_message", momo_or_null(pm->reason_message));

    if (pm->op != MOMO_OP_PAYMENT) {
        momo_json_kstr(g, "operation",
                       pm->op == MOMO_OP_REFUND ? "refund" : "payout");
        momo_json_kbool(g, "accepted_before", pm->accepted_before);
    }

#undef momo_or_null
}


int
momo_payment_exit(const momo_payment_t *pm)
{
    if (pm->status != NULL && strcmp(pm->status, "failed") == 0) {
        return MOMO_EXIT_FAILED;
    }

    return MOMO_EXIT_OK;
}
