
/*
 * momo check: reads the .env, then for each product it has credentials
 * for (Collections, Disbursement) gets a token, asks for the balance and
 * an account holder, one line per step, and says what to fix when a step
 * fails.  Exit 0 only when every step works.
 */


#include <stdarg.h>
#include <string.h>

#include "momo_cli.h"


#define MOMO_DEFAULT_MSISDN  "46733123450"


typedef struct {
    const momo_opts_t  *o;
    momo_config_t       cf;
    momo_client_t       client;
    const char         *product;         /* of the steps after config */
    yajl_gen            g;               /* --json: the one object */
    int                 exit_code;
    int                 steps;
    int                 failed;
    int                 skipped;
} momo_check_t;


static int momo_check_config(momo_check_t *cx);
static void momo_check_product(momo_check_t *cx, momo_product_e product,
    const char *msisdn);
static void momo_check_keys(momo_check_t *cx);
static void momo_check_key_json(momo_check_t *cx, int k, const char *shown);
static void momo_check_notes_json(momo_check_t *cx);
static int momo_check_token(momo_check_t *cx);
static void momo_check_balance(momo_check_t *cx);
static void momo_check_account(momo_check_t *cx, const char *msisdn);
static void momo_check_step(momo_check_t *cx, const char *step,
    const char *status, int exit_code, const momo_diag_t *d,
    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void momo_check_step_end(momo_check_t *cx);
static void momo_check_skip(momo_check_t *cx, const char *step,
    const char *why);
static int momo_check_finish(momo_check_t *cx);


int
momo_cmd_check(momo_opts_t *o)
{
    int            rc;
    const char    *msisdn;
    momo_check_t   cx;

    msisdn = o->msisdn ? o->msisdn : MOMO_DEFAULT_MSISDN;

    if (!momo_is_digits(msisdn, 8, 15)) {
        return momo_usage(o, "--msisdn \"%s\" is not 8-15 digits in "
                          "international form", msisdn);
    }

    memset(&cx, 0, sizeof(cx));
    cx.o = o;

    if (o->json) {
        cx.g = momo_json_begin();
        momo_json_kstr(cx.g, "env_file", o->env_file);
        momo_json_key(cx.g, "steps");
        yajl_gen_array_open(cx.g);

    } else {
        momo_printf("momo check %s\n", o->env_file);
    }

    if (momo_check_config(&cx) != 0) {
        momo_check_skip(&cx, "token", "the configuration is not usable");
        momo_check_skip(&cx, "balance", "the configuration is not usable");
        momo_check_skip(&cx, "account", "the configuration is not usable");

    } else {
        momo_check_product(&cx, MOMO_COLLECTION, msisdn);
        momo_check_product(&cx, MOMO_DISBURSEMENT, msisdn);
    }

    rc = momo_check_finish(&cx);
    momo_config_free(&cx.cf);

    return rc;
}


/* the steps of one product the .env has credentials for */

static void
momo_check_product(momo_check_t *cx, momo_product_e product,
    const char *msisdn)
{
    const momo_product_t  *p;

    if (!cx->cf.has[product]) {
        return;
    }

    p = &momo_products[product];
    cx->product = p->name;

    if (cx->g == NULL && cx->cf.has[MOMO_COLLECTION]
        && cx->cf.has[MOMO_DISBURSEMENT])
    {
        momo_printf("%s (%s, %s*):\n", p->title, p->uses, p->env_prefix);
    }

    momo_api_init(&cx->client, &cx->cf, cx->o->http_timeout_ms, product);

    if (momo_check_token(cx) != 0) {
        momo_check_skip(cx, "balance", "no access token");
        momo_check_skip(cx, "account", "no access token");

    } else {
        momo_check_balance(cx);
        momo_check_account(cx, msisdn);
    }

    momo_api_free(&cx->client);
}


static int
momo_check_config(momo_check_t *cx)
{
    int             usable;
    momo_config_t  *cf;

    cf = &cx->cf;

    if (momo_config_load(cf, cx->o->env_file) != 0) {
        momo_check_step(cx, "config", "fail", MOMO_EXIT_CONFIG, NULL, "%s",
                        cf->file_error);
        momo_check_step_end(cx);
        return -1;
    }

    usable = (momo_config_validate(cf) == 0);

    if (usable) {
        momo_check_step(cx, "config", "ok", 0, NULL,
                        "target environment %s, base URL %s",
                        cf->target_env, cf->base_url);
    } else {
        momo_check_step(cx, "config", "fail", MOMO_EXIT_CONFIG, NULL,
                        "%s cannot be used as it is; fix the lines marked "
                        "below", cf->path);
    }

    momo_check_keys(cx);
    momo_check_step_end(cx);

    return usable ? 0 : -1;
}


/* one line per key; secrets masked, problems and notes beside them */

static void
momo_check_keys(momo_check_t *cx)
{
    int             k, i;
    char            shown[96];
    const char     *v;
    momo_config_t  *cf;

    cf = &cx->cf;

    if (cx->g != NULL) {
        momo_json_key(cx->g, "keys");
        yajl_gen_array_open(cx->g);
    }

    for (k = 0; k < MOMO_KEY_N; k++) {
        v = cf->value[k];

        if (v == NULL) {
            snprintf(shown, sizeof(shown), "(not set)");

        } else if (k == MOMO_KEY_API_KEY || k == MOMO_KEY_SUB_KEY
                   || k == MOMO_KEY_D_API_KEY || k == MOMO_KEY_D_SUB_KEY
                   || k == MOMO_KEY_CALLBACK_SECRET)
        {
            momo_mask(v, shown, sizeof(shown));

        } else {
            snprintf(shown, sizeof(shown), "%.80s", v);
        }

        if (cx->g != NULL) {
            momo_check_key_json(cx, k, v != NULL ? shown : NULL);
            continue;
        }

        if (cf->problem[k] != NULL) {
            momo_printf("      %-38s %s  <- %s\n", momo_key_names[k], shown,
                        cf->problem[k]);

        } else if (cf->note[k] != NULL && v == NULL) {
            momo_printf("      %-38s (%s)\n", momo_key_names[k],
                        cf->note[k]);

        } else if (cf->note[k] != NULL) {
            momo_printf("      %-38s %s  (%s)\n", momo_key_names[k], shown,
                        cf->note[k]);

        } else {
            momo_printf("      %-38s %s\n", momo_key_names[k], shown);
        }
    }

    if (cx->g != NULL) {
        yajl_gen_array_close(cx->g);
        momo_check_notes_json(cx);
        return;
    }

    for (i = 0; i < cf->nsyntax; i++) {
        momo_printf("      syntax: %s\n", cf->syntax[i]);
    }

    for (i = 0; i < cf->nunknown; i++) {
        momo_printf("      ignored unknown key (%s)\n", cf->unknown[i]);
    }
}


static void
momo_check_key_json(momo_check_t *cx, int k, const char *shown)
{
    yajl_gen        g;
    const char     *status;
    momo_config_t  *cf;

    g = cx->g;
    cf = &cx->cf;

    if (cf->problem[k] != NULL) {
        status = (cf->value[k] == NULL) ? "missing" : "invalid";

    } else {
        status = (cf->value[k] != NULL) ? "ok" : "default";
    }

    yajl_gen_map_open(g);
    momo_json_kstr(g, "key", momo_key_names[k]);
    momo_json_kstr(g, "value", shown);
    momo_json_kstr(g, "status", status);

    momo_json_key(g, "line");

    if (cf->line[k] > 0) {
        yajl_gen_integer(g, cf->line[k]);
    } else {
        yajl_gen_null(g);
    }

    momo_json_kstr(g, "problem", cf->problem[k]);
    momo_json_kstr(g, "note", cf->note[k]);
    yajl_gen_map_close(g);
}


static void
momo_check_notes_json(momo_check_t *cx)
{
    int             i;
    momo_config_t  *cf;

    cf = &cx->cf;

    momo_json_key(cx->g, "syntax_errors");
    yajl_gen_array_open(cx->g);

    for (i = 0; i < cf->nsyntax; i++) {
        momo_json_str_value(cx->g, cf->syntax[i]);
    }

    yajl_gen_array_close(cx->g);

    momo_json_key(cx->g, "unknown_keys");
    yajl_gen_array_open(cx->g);

    for (i = 0; i < cf->nunknown; i++) {
        momo_json_str_value(cx->g, cf->unknown[i]);
    }

    yajl_gen_array_close(cx->g);
}


static int
momo_check_token(momo_check_t *cx)
{
    momo_diag_t       d;
    momo_http_resp_t  rs;

    if (momo_api_token(&cx->client, &rs) == 0) {
        momo_check_step(cx, "token", "ok", 0, NULL,
                        "access token for %s, valid %ld s (%ld ms)",
                        cx->cf.target_env, cx->client.expires_in,
                        rs.elapsed_ms);

        if (cx->g != NULL) {
            momo_json_kint(cx->g, "expires_in", cx->client.expires_in);
            momo_json_kint(cx->g, "elapsed_ms", rs.elapsed_ms);
        }

        momo_check_step_end(cx);
        momo_http_free(&rs);

        return 0;
    }

    momo_diag(&rs, &cx->cf, &d);
    momo_http_free(&rs);

    /* may get a token without X-Target-Environment to prove its point */
    momo_api_explain(&cx->client, &d);

    momo_check_step(cx, "token", "fail", d.exit_code, &d, "%s", d.code);
    momo_check_step_end(cx);

    return (cx->client.token != NULL) ? 0 : -1;
}


static void
momo_check_balance(momo_check_t *cx)
{
    int               rc;
    char              avail[64], cur[64];
    const char       *want;
    momo_diag_t       d;
    momo_http_resp_t  rs;

    rc = momo_api_balance(&cx->client, &rs, avail, cur, sizeof(avail));
    want = momo_config_currency(cx->cf.target_env);

    if (rc != 0) {
        momo_diag(&rs, &cx->cf, &d);
        momo_check_step(cx, "balance", "fail",
                        rc == -1 ? d.exit_code : MOMO_EXIT_MTN, &d, "%s",
                        rc == -1 ? d.code : "UNEXPECTED_ANSWER");

    } else if (want != NULL && strcmp(cur, want) != 0) {
        momo_check_step(cx, "balance", "warn", MOMO_EXIT_CONFIG, NULL,
            "%s %s, but target environment %s pays in %s: the credentials "
            "belong to another environment than MTN_MOMO_TARGET_ENVIRONMENT "
            "says, or the base URL is another platform's; payments in %s "
            "will fail with INVALID_CURRENCY",
            avail, cur, cx->cf.target_env, want, want);

    } else {
        momo_check_step(cx, "balance", "ok", 0, NULL, "%s %s (%ld ms)",
                        avail, cur, rs.elapsed_ms);
    }

    if (cx->g != NULL && rc == 0) {
        momo_json_kstr(cx->g, "available_balance", avail);
        momo_json_kstr(cx->g, "currency", cur);
        momo_json_kstr(cx->g, "expected_currency", want);
    }

    momo_check_step_end(cx);
    momo_http_free(&rs);
}


static void
momo_check_account(momo_check_t *cx, const char *msisdn)
{
    char              path[128];
    yajl_val          json, result;
    momo_diag_t       d;
    momo_http_resp_t  rs;

    snprintf(path, sizeof(path), "/%s/v1_0/accountholder/msisdn/%s/active",
             cx->client.product->name, msisdn);

    if (momo_api_call(&cx->client, "account", "GET", path, NULL, NULL, &rs)
        != 0)
    {
        momo_diag(&rs, &cx->cf, &d);
        momo_check_step(cx, "account", "fail", d.exit_code, &d, "%s",
                        d.code);
        momo_check_step_end(cx);
        momo_http_free(&rs);
        return;
    }

    json = momo_json_parse(rs.body);
    result = momo_json_get(json, "result");

    if (result == NULL || !(YAJL_IS_TRUE(result) || YAJL_IS_FALSE(result))) {
        momo_diag(&rs, &cx->cf, &d);
        momo_check_step(cx, "account", "fail", MOMO_EXIT_MTN, &d,
                        "UNEXPECTED_ANSWER");

    } else if (YAJL_IS_TRUE(result)) {
        momo_check_step(cx, "account", "ok", 0, NULL,
                        "%s is an active MoMo account (%ld ms)", msisdn,
                        rs.elapsed_ms);

    } else {
        /* the API works; the number is just not a customer */
        momo_check_step(cx, "account", "warn", 0, NULL,
                        "%s is not an active MoMo account (the API works; "
                        "try another --msisdn)", msisdn);
    }

    if (cx->g != NULL) {
        momo_json_kstr(cx->g, "msisdn", msisdn);

        if (result != NULL && (YAJL_IS_TRUE(result) || YAJL_IS_FALSE(result)))
        {
            momo_json_kbool(cx->g, "active", YAJL_IS_TRUE(result));
        }
    }

    momo_check_step_end(cx);
    yajl_tree_free(json);
    momo_http_free(&rs);
}


/*
 * Prints a step's line, or opens its JSON object; the caller may add
 * members, then calls momo_check_step_end().  The first failing step
 * decides the exit code.
 */

static void
momo_check_step(momo_check_t *cx, const char *step, const char *status,
    int exit_code, const momo_diag_t *d, const char *fmt, ...)
{
    char     msg[1024];
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    cx->steps++;

    if (exit_code != 0) {
        cx->failed++;

        if (cx->exit_code == 0) {
            cx->exit_code = exit_code;
        }
    }

    if (cx->g == NULL) {
        momo_printf("%-5s %-8s %s\n", strcmp(status, "fail") == 0 ? "FAIL"
                    : status, step, d != NULL ? d->what : msg);

        if (d != NULL && d->hint[0] != '\0') {
            momo_printf("      %s\n", d->hint);
        }

        return;
    }

    yajl_gen_map_open(cx->g);
    momo_json_kstr(cx->g, "step", step);

    if (cx->product != NULL) {
        momo_json_kstr(cx->g, "product", cx->product);
    }

    momo_json_kstr(cx->g, "status", status);
    momo_json_kstr(cx->g, "message", d != NULL ? d->what : msg);

    if (d != NULL) {
        momo_json_diag(cx->g, d);
    }
}


static void
momo_check_step_end(momo_check_t *cx)
{
    if (cx->g != NULL) {
        yajl_gen_map_close(cx->g);
    }
}


static void
momo_check_skip(momo_check_t *cx, const char *step, const char *why)
{
    cx->skipped++;

    if (cx->g == NULL) {
        momo_printf("%-5s %-8s %s\n", "skip", step, why);
        return;
    }

    yajl_gen_map_open(cx->g);
    momo_json_kstr(cx->g, "step", step);

    if (cx->product != NULL) {
        momo_json_kstr(cx->g, "product", cx->product);
    }

    momo_json_kstr(cx->g, "status", "skip");
    momo_json_kstr(cx->g, "message", why);
    yajl_gen_map_close(cx->g);
}


static int
momo_check_finish(momo_check_t *cx)
{
    if (cx->g != NULL) {
        yajl_gen_array_close(cx->g);
        momo_json_kbool(cx->g, "ok", cx->exit_code == 0);
        momo_json_kint(cx->g, "exit_code", cx->exit_code);
        momo_json_end(cx->g);
        return cx->exit_code;
    }

    if (cx->exit_code == 0) {
        momo_printf("all %d steps passed\n", cx->steps);
    } else {
        momo_printf("%d failed, %d passed, %d skipped (exit %d)\n",
                    cx->failed, cx->steps - cx->failed, cx->skipped,
                    cx->exit_code);
    }

    return cx->exit_code;
}
