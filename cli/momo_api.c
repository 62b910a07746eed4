
/*
 * Calls to one MTN product's API (Collections or Disbursement, each with
 * its own credentials): the token, then Bearer calls that
 * get one fresh token and one retry on a 401 without "statusCode" (the
 * APIM gateway's own 401s carry it and mean the subscription key).
 */


#include <stdlib.h>
#include <string.h>

#include "momo_cli.h"


#define MOMO_MAX_HEADERS  12


static int momo_api_token_call(momo_client_t *c, int with_env,
    momo_http_resp_t *rs);
static char *momo_api_header(const char *name, const char *value);
static char *momo_api_url(momo_client_t *c, const char *path);
static void momo_api_free_headers(char **h);


void
momo_api_init(momo_client_t *c, momo_config_t *cf, long timeout_ms,
    momo_product_e product)
{
    memset(c, 0, sizeof(*c));
    c->cf = cf;
    c->product = &momo_products[product];
    c->timeout_ms = timeout_ms;
}


int
momo_api_token(momo_client_t *c, momo_http_resp_t *rs)
{
    return momo_api_token_call(c, 1, rs);
}


/*
 * POST /{product}/token/: raw Basic credentials (never URL-encoded),
 * Content-Length: 0 and no body, X-Target-Environment as the module
 * sends it.
 */

static int
momo_api_token_call(momo_client_t *c, int with_env, momo_http_resp_t *rs)
{
    int                    rc, n;
    char                  *h[MOMO_MAX_HEADERS], *cred, *b64, *url,
                           path[64];
    size_t                 len;
    yajl_val               json;
    const char            *token, *expires, *user, *key;
    momo_config_t         *cf;
    momo_http_req_t        rq;
    const momo_product_t  *p;

    cf = c->cf;
    p = c->product;
    memset(h, 0, sizeof(h));

    user = cf->value[p->key_user];
    key = cf->value[p->key_api_key];

    len = strlen(user) + strlen(key) + 2;
    cred = momo_alloc(len);
    snprintf(cred, len, "%s:%s", user, key);
    b64 = momo_base64(cred, strlen(cred));
    memset(cred, 0, len);
    free(cred);

    /* as good as the key itself */
    momo_secret_add(b64);

    n = 0;
    h[n++] = momo_api_header("Authorization: Basic", b64);
    h[n++] = momo_api_header("Ocp-Apim-Subscription-Key",
                             cf->value[p->key_sub_key]);

    if (with_env) {
        h[n++] = momo_api_header("X-Target-Environment", cf->target_env);
    }

    free(b64);

    snprintf(path, sizeof(path), "/%s/token/", p->name);
    url = momo_api_url(c, path);

    memset(&rq, 0, sizeof(rq));
    rq.what = "token";
    rq.method = "POST";
    rq.url = url;
    rq.headers = (const char **) h;
    rq.timeout_ms = c->timeout_ms;

    rc = momo_http_send(&rq, rs);

    momo_api_free_headers(h);
    free(url);

    if (rc != 0 || rs->status != 200) {
        return -1;
    }

    json = momo_json_parse(rs->body);
    token = momo_json_str(json, "access_token");
    expires = momo_json_str(json, "expires_in");

    if (token == NULL || token[0] == '\0') {
        yajl_tree_free(json);
        return -1;
    }

    free(c->token);
    c->token = momo_strdup(token);
    c->expires_in = (expires != NULL) ? atol(expires) : 0;
    momo_secret_add(c->token);

    yajl_tree_free(json);

    /* the body holds the token: nobody needs to see it again */
    memset(rs->body, 0, rs->len);
    rs->len = 0;

    return 0;
}


/*
 * A Bearer call; extra is a NULL-terminated list of more headers.
 * Returns 0 on a 2xx answer, -1 otherwise with rs holding what MTN
 * (or the network) said, the token call's answer when that failed.
 */

int
momo_api_call(momo_client_t *c, const char *what, const char *method,
    const char *path, const char **extra, const char *body,
    momo_http_resp_t *rs)
{
    int               attempt, rc, n;
    char             *h[MOMO_MAX_HEADERS], *url;
    const char      **e;
    momo_http_req_t   rq;

    rc = -1;

    for (attempt = 0; attempt < 2; attempt++) {

        if (c->token == NULL) {
            if (momo_api_token(c, rs) != 0) {
                return -1;
            }

            momo_http_free(rs);
        }

        memset(h, 0, sizeof(h));
        n = 0;
        h[n++] = momo_api_header("Authorization: Bearer", c->token);
        h[n++] = momo_api_header("Ocp-Apim-Subscription-Key",
                                 c->cf->value[c->product->key_sub_key]);
        h[n++] = momo_api_header("X-Target-Environment", c->cf->target_env);

        if (body != NULL) {
            h[n++] = momo_api_header("Content-Type", "application/json");
        }

        for (e = extra; e != NULL && *e != NULL && n < MOMO_MAX_HEADERS - 1;
             e++)
        {
            h[n++] = momo_strdup(*e);
        }

        url = momo_api_url(c, path);

        memset(&rq, 0, sizeof(rq));
        rq.what = what;
        rq.method = method;
        rq.url = url;
        rq.headers = (const char **) h;
        rq.body = body;
        rq.timeout_ms = c->timeout_ms;

        rc = momo_http_send(&rq, rs);

        momo_api_free_headers(h);
        free(url);

        if (rc != 0) {
            return -1;
        }

        /* an expired or revoked token: one fresh token, one retry */
        if (rs->status == 401 && !momo_api_is_apim_error(rs)
            && attempt == 0)
        {
            free(c->token);
            c->token = NULL;
            momo_http_free(rs);
            continue;
        }

        break;
    }

    return (rs->status >= 200 && rs->status < 300) ? 0 : -1;
}


/*
 * GET /{product}/v1_0/account/balance: 0 with avail and cur set, -1 when
 * the call failed, -2 when the answer is not a balance (rs holds it).
 */

int
momo_api_balance(momo_client_t *c, momo_http_resp_t *rs, char *avail,
    char *cur, size_t size)
{
    int          rc;
    char         path[64];
    yajl_val     json;
    const char  *a, *k;

    snprintf(path, sizeof(path), "/%s/v1_0/account/balance",
             c->product->name);

    if (momo_api_call(c, "balance", "GET", path, NULL, NULL, rs) != 0) {
        return -1;
    }

    json = momo_json_parse(rs->body);
    a = momo_json_str(json, "availableBalance");
    k = momo_json_str(json, "currency");
    rc = (a != NULL && k != NULL) ? 0 : -2;

    if (rc == 0) {
        snprintf(avail, size, "%s", a);
        snprintf(cur, size, "%s", k);
    }

    yajl_tree_free(json);

    return rc;
}


/* APIM, the gateway in front of MTN, answers {"statusCode":..} */

int
momo_api_is_apim_error(const momo_http_resp_t *rs)
{
    int       apim;
    yajl_val  json;

    json = momo_json_parse(rs->body);
    apim = (momo_json_get(json, "statusCode") != NULL);
    yajl_tree_free(json);

    return apim;
}


/*
 * login_failed does not say which half is wrong.  MTN's legacy token
 * endpoint takes a call without X-Target-Environment: when that one
 * works, the API user and key are right and the environment is not
 * theirs.  The token so obtained lets later steps show MTN's own
 * NOT_ALLOWED_TARGET_ENVIRONMENT.
 */

void
momo_api_explain(momo_client_t *c, momo_diag_t *d)
{
    momo_http_resp_t  rs;

    if (strcmp(d->code, "LOGIN_FAILED") != 0) {
        return;
    }

    if (momo_api_token_call(c, 0, &rs) == 0) {
        d->code = "NOT_ALLOWED_TARGET_ENVIRONMENT";
        snprintf(d->what, sizeof(d->what),
                 "MTN refuses target environment \"%s\" for this API user: "
                 "the token call failed with X-Target-Environment: %s "
                 "(500 login_failed) and worked without it, so the API user "
                 "and key are right", c->cf->target_env, c->cf->target_env);
        snprintf(d->hint, sizeof(d->hint),
                 "Set MTN_MOMO_TARGET_ENVIRONMENT in %s to the environment "
                 "these credentials were created for: sandbox for sandbox "
                 "credentials (momo provision), mtncameroon or your "
                 "country's for production ones, with the matching "
                 "MTN_MOMO_BASE_URL.", c->cf->path);
    }

    momo_http_free(&rs);
}


void
momo_api_free(momo_client_t *c)
{
    free(c->token);
    c->token = NULL;
}


/* "Name: value"; a name with a colon already holds the value's start */

static char *
momo_api_header(const char *name, const char *value)
{
    char    *h;
    size_t   n;

    n = strlen(name) + strlen(value) + 3;
    h = momo_alloc(n);
    snprintf(h, n, "%s%s%s", name, strchr(name, ':') ? " " : ": ", value);

    return h;
}


static char *
momo_api_url(momo_client_t *c, const char *path)
{
    char    *url;
    size_t   n;

    n = strlen(c->cf->base_url) + strlen(path) + 1;
    url = momo_alloc(n);
    snprintf(url, n, "%s%s", c->cf->base_url, path);

    return url;
}


static void
momo_api_free_headers(char **h)
{
    int  i;

    for (i = 0; i < MOMO_MAX_HEADERS; i++) {
        free(h[i]);
    }
}
