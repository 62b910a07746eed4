
/*
 * momo provision: creates a sandbox API user and key (momo-api.md 6.1)
 * and prints the .env lines.  Its output is the .env file, secrets
 * included, by design; --output writes it to a 0600 file instead and
 * prints them masked.  With --product disbursement the user is made with
 * the Disbursement key, so it belongs to that product, and the output is
 * the three MTN_MOMO_DISBURSEMENT_* lines to add to the .env.
 */


#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "momo_cli.h"


typedef struct {
    const momo_opts_t     *o;
    const momo_product_t  *product;
    char                   base_url[512];
    char                user[MOMO_UUID_LEN + 1];
    char                api_key[128];
    char                secret[MOMO_SECRET_LEN + 1];
    char                target_env[64];
    char                callback_host[256];
    char                callback_url[512];
    long                timeout_ms;
} momo_provision_t;


static int momo_provision_args(momo_provision_t *pv);
static int momo_provision_host_ok(const char *host);
static int momo_provision_send(momo_provision_t *pv, const char *what,
    const char *method, const char *path, const char *body,
    momo_http_resp_t *rs);
static int momo_provision_user(momo_provision_t *pv);
static int momo_provision_key(momo_provision_t *pv);
static int momo_provision_confirm(momo_provision_t *pv);
static int momo_provision_product(momo_provision_t *pv);
static int momo_provision_failed(momo_provision_t *pv,
    momo_http_resp_t *rs, const char *step);
static void momo_provision_env(momo_provision_t *pv, FILE *f);
static int momo_provision_write(momo_provision_t *pv);
static void momo_provision_report(momo_provision_t *pv);


int
momo_cmd_provision(momo_opts_t *o)
{
    int               rc;
    momo_provision_t  pv;

    memset(&pv, 0, sizeof(pv));
    pv.o = o;
    pv.timeout_ms = o->http_timeout_ms;

    rc = momo_provision_args(&pv);
    if (rc != 0) {
        return rc;
    }

    momo_secret_add(o->subscription_key);

    if (momo_uuid_v4(pv.user) != 0
        || momo_random_hex(pv.secret, MOMO_SECRET_LEN) != 0)
    {
        return momo_fail(o, MOMO_EXIT_MTN, "NO_RANDOMNESS",
                         "cannot get random bytes for a UUID and a secret");
    }

    rc = momo_provision_user(&pv);

    if (rc == 0) {
        rc = momo_provision_key(&pv);
    }

    if (rc == 0) {
        rc = momo_provision_confirm(&pv);
    }

    if (rc == 0) {
        rc = momo_provision_product(&pv);
    }

    if (rc != 0) {
        return rc;
    }

    if (o->output != NULL) {
        rc = momo_provision_write(&pv);
        if (rc != 0) {
            return rc;
        }
    }

    momo_provision_report(&pv);

    return MOMO_EXIT_OK;
}


static int
momo_provision_args(momo_provision_t *pv)
{
    int                rc;
    size_t             len;
    const char        *problem, *base;
    momo_product_e     product;
    const momo_opts_t  *o;

    o = pv->o;

    rc = momo_config_product(o, &product);
    if (rc != 0) {
        return rc;
    }

    pv->product = &momo_products[product];

    if (o->subscription_key == NULL || o->callback_host == NULL) {
        return momo_usage(o, "provision needs --subscription-key and "
                          "--callback-host");
    }

    if (o->subscription_key[0] == '\0'
        || strpbrk(o->subscription_key, " \t\"'\\\r\n") != NULL)
    {
        return momo_usage(o, "--subscription-key is empty or holds blanks "
                          "or quotes: paste the %s primary key from your "
                          "momodeveloper.mtn.com profile",
                          pv->product->title);
    }

    if (!momo_provision_host_ok(o->callback_host)) {
        return momo_usage(o, "--callback-host \"%s\" is not a host name: "
                          "give the host alone, like example.com for "
                          "https://example.com/api/payments/mtn-momo/"
                          "callback", o->callback_host);
    }

    base = o->base_url ? o->base_url : MOMO_SANDBOX_URL;
    snprintf(pv->base_url, sizeof(pv->base_url), "%s", base);

    len = strlen(pv->base_url);
    while (len > 0 && pv->base_url[len - 1] == '/') {
        pv->base_url[--len] = '\0';
    }

    if (!momo_config_check_url(pv->base_url, &problem)) {
        return momo_usage(o, "--base-url: %s", problem);
    }

    if (o->output != NULL && !o->force && access(o->output, F_OK) == 0) {
        return momo_usage(o, "%s exists; it may hold credentials still in "
                          "use: choose another --output or add --force",
                          o->output);
    }

    snprintf(pv->callback_host, sizeof(pv->callback_host), "%s",
             o->callback_host);

    return 0;
}


/* providerCallbackHost is a host name, not a URL */

static int
momo_provision_host_ok(const char *host)
{
    const char  *p;

    if (host[0] == '\0' || strlen(host) > 253) {
        return 0;
    }

    for (p = host; *p != '\0'; p++) {
        if (!isalnum((unsigned char) *p) && *p != '.' && *p != '-') {
            return 0;
        }
    }

    return 1;
}


static int
momo_provision_send(momo_provision_t *pv, const char *what,
    const char *method, const char *path, const char *body,
    momo_http_resp_t *rs)
{
    int               n;
    char              url[1024], ref[64], key[256];
    const char       *h[4];
    momo_http_req_t   rq;

    snprintf(url, sizeof(url), "%s%s", pv->base_url, path);
    snprintf(key, sizeof(key), "Ocp-Apim-Subscription-Key: %s",
             pv->o->subscription_key);

    n = 0;
    h[n++] = key;

    if (strcmp(what, "apiuser") == 0) {
        snprintf(ref, sizeof(ref), "X-Reference-Id: %s", pv->user);
        h[n++] = ref;
        h[n++] = "Content-Type: application/json";
    }

    h[n] = NULL;

    memset(&rq, 0, sizeof(rq));
    rq.what = what;
    rq.method = method;
    rq.url = url;
    rq.headers = h;
    rq.body = body;
    rq.timeout_ms = pv->timeout_ms;

    return momo_http_send(&rq, rs);
}


/* POST /v1_0/apiuser {"providerCallbackHost": HOST} -> 201 */

static int
momo_provision_user(momo_provision_t *pv)
{
    int                   rc;
    char                 *body;
    size_t                len;
    yajl_gen              g;
    momo_http_resp_t      rs;
    const unsigned char  *buf;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return momo_fail(pv->o, MOMO_EXIT_MTN, "INTERNAL", "out of memory");
    }

    yajl_gen_map_open(g);
    momo_json_kstr_raw(g, "providerCallbackHost", pv->callback_host);
    yajl_gen_map_close(g);
    yajl_gen_get_buf(g, &buf, &len);

    body = momo_alloc(len + 1);
    memcpy(body, buf, len);
    body[len] = '\0';
    yajl_gen_free(g);

    rc = momo_provision_send(pv, "apiuser", "POST", "/v1_0/apiuser", body,
                             &rs);
    free(body);

    if (rc != 0 || rs.status != 201) {
        return momo_provision_failed(pv, &rs, "create the API user");
    }

    momo_http_free(&rs);

    if (!pv->o->json) {
        momo_eprintf("created API user %s for callback host %s\n",
                     pv->user, pv->callback_host);
    }

    return 0;
}


/* POST /v1_0/apiuser/{id}/apikey, Content-Length: 0 -> 201 {"apiKey"} */

static int
momo_provision_key(momo_provision_t *pv)
{
    int               rc;
    char              path[128];
    yajl_val          json;
    const char       *key;
    momo_http_resp_t  rs;

    snprintf(path, sizeof(path), "/v1_0/apiuser/%s/apikey", pv->user);

    rc = momo_provision_send(pv, "apikey", "POST", path, NULL, &rs);

    if (rc != 0 || rs.status != 201) {
        return momo_provision_failed(pv, &rs, "create the API key");
    }

    json = momo_json_parse(rs.body);
    key = momo_json_str(json, "apiKey");

    if (key == NULL || key[0] == '\0' || strlen(key) >= sizeof(pv->api_key)
        || strpbrk(key, "\"\\\r\n") != NULL)
    {
        yajl_tree_free(json);
        return momo_provision_failed(pv, &rs, "read the API key");
    }

    snprintf(pv->api_key, sizeof(pv->api_key), "%s", key);
    yajl_tree_free(json);

    memset(rs.body, 0, rs.len);
    momo_http_free(&rs);

    if (!pv->o->json) {
        momo_eprintf("created its API key\n");
    }

    return 0;
}


/* GET /v1_0/apiuser/{id} -> {"providerCallbackHost", "targetEnvironment"} */

static int
momo_provision_confirm(momo_provision_t *pv)
{
    int               rc;
    char              path[128];
    yajl_val          json;
    const char       *env, *host;
    momo_http_resp_t  rs;

    snprintf(path, sizeof(path), "/v1_0/apiuser/%s", pv->user);

    rc = momo_provision_send(pv, "apiuser_get", "GET", path, NULL, &rs);

    if (rc != 0 || rs.status != 200) {
        return momo_provision_failed(pv, &rs, "read the API user back");
    }

    json = momo_json_parse(rs.body);
    env = momo_json_str(json, "targetEnvironment");
    host = momo_json_str(json, "providerCallbackHost");

    snprintf(pv->target_env, sizeof(pv->target_env), "%s",
             (env != NULL && env[0] != '\0') ? env : "sandbox");

    if (host != NULL && strcasecmp(host, pv->callback_host) != 0
        && !pv->o->json)
    {
        momo_eprintf("warning: MTN registered callback host \"%s\", not "
                     "\"%s\"\n", host, pv->callback_host);
    }

    yajl_tree_free(json);
    momo_http_free(&rs);

    snprintf(pv->callback_url, sizeof(pv->callback_url), "https://%s%s",
             pv->callback_host, MOMO_CALLBACK_PATH);

    if (!pv->o->json) {
        momo_eprintf("MTN confirms the API user: target environment %s\n",
                     pv->target_env);
    }

    return 0;
}


/*
 * Any product's key makes an API user, which then belongs to the key's
 * product: a Collections key given with --product disbursement makes a
 * Collections user.  A token call on the product tells.
 */

static int
momo_provision_product(momo_provision_t *pv)
{
    int                    rc;
    momo_client_t          c;
    momo_config_t          cf;
    momo_http_resp_t       rs;
    const momo_product_t  *p;

    p = pv->product;

    if (p == &momo_products[MOMO_COLLECTION]) {
        return 0;
    }

    memset(&cf, 0, sizeof(cf));
    cf.path = "(none)";
    cf.value[p->key_user] = pv->user;
    cf.value[p->key_api_key] = pv->api_key;
    cf.value[p->key_sub_key] = (char *) pv->o->subscription_key;
    cf.target_env = pv->target_env;
    cf.base_url = pv->base_url;

    momo_api_init(&c, &cf, pv->timeout_ms,
                  (momo_product_e) (p - momo_products));
    rc = momo_api_token(&c, &rs);
    momo_api_free(&c);

    if (rc != 0) {
        return momo_provision_failed(pv, &rs, "get a token with it");
    }

    momo_http_free(&rs);

    if (!pv->o->json) {
        momo_eprintf("%s gives the new user a token\n", p->title);
    }

    return 0;
}


static int
momo_provision_failed(momo_provision_t *pv, momo_http_resp_t *rs,
    const char *step)
{
    momo_config_t  cf;
    momo_diag_t    d;

    memset(&cf, 0, sizeof(cf));
    cf.path = "(none)";

    momo_diag(rs, &cf, &d);
    momo_http_free(rs);

    if (strcmp(d.code, "SUBSCRIPTION_KEY_REFUSED") == 0) {
        snprintf(d.hint, sizeof(d.hint),
                 "--subscription-key is wrong or for another product: use "
                 "the %s primary (or secondary) key from your profile on "
                 "momodeveloper.mtn.com%s. Provisioning works on the "
                 "sandbox only; production credentials come from MTN's "
                 "partner portal.", pv->product->title,
                 pv->product == &momo_products[MOMO_COLLECTION]
                 ? " (for a Disbursement user: --product disbursement)"
                 : "");
    }

    if (strcmp(rs->what, "apikey") == 0
        || strcmp(rs->what, "apiuser_get") == 0)
    {
        snprintf(d.hint + strlen(d.hint), sizeof(d.hint) - strlen(d.hint),
                 " (API user %s was created, its key was not: run "
                 "momo provision again.)", pv->user);
    }

    snprintf(d.what + strlen(d.what), sizeof(d.what) - strlen(d.what),
             " [could not %s]", step);

    return momo_fail_diag(pv->o, &d, NULL);
}


static void
momo_provision_env(momo_provision_t *pv, FILE *f)
{
    const char  *pre;

    pre = pv->product->env_prefix;

    if (pv->product != &momo_products[MOMO_COLLECTION]) {
        fprintf(f, "# MTN MoMo %s %s credentials made by momo provision "
                "--product %s; add them to the .env\n", pv->target_env,
                pv->product->title, pv->product->name);
        fprintf(f, "%sAPI_USER_ID=\"%s\"\n", pre, pv->user);
        fprintf(f, "%sAPI_KEY=\"%s\"\n", pre, pv->api_key);
        fprintf(f, "%sSUBSCRIPTION_KEY=\"%s\"\n", pre,
                pv->o->subscription_key);
        return;
    }

    fprintf(f, "# MTN MoMo %s credentials made by momo provision; keep this "
            "file private\n", pv->target_env);
    fprintf(f, "MTN_MOMO_API_USER_ID=\"%s\"\n", pv->user);
    fprintf(f, "MTN_MOMO_API_KEY=\"%s\"\n", pv->api_key);
    fprintf(f, "MTN_MOMO_SUBSCRIPTION_KEY=\"%s\"\n",
            pv->o->subscription_key);
    fprintf(f, "MTN_MOMO_TARGET_ENVIRONMENT=\"%s\"\n", pv->target_env);
    fprintf(f, "MTN_MOMO_BASE_URL=\"%s\"\n", pv->base_url);
    fprintf(f, "MTN_MOMO_CALLBACK_URL=\"%s\"\n", pv->callback_url);
    fprintf(f, "# keys reference ids and callback URLs: keep it when the API "
            "key changes\n");
    fprintf(f, "MTN_MOMO_CALLBACK_SECRET=\"%s\"\n", pv->secret);
}


static int
momo_provision_write(momo_provision_t *pv)
{
    int          fd, err;
    FILE        *f;
    const char  *path;

    path = pv->o->output;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    f = (fd != -1) ? fdopen(fd, "w") : NULL;

    if (f == NULL) {
        err = errno;

        if (fd != -1) {
            close(fd);
        }

        return momo_fail(pv->o, MOMO_EXIT_USAGE, "OUTPUT_FAILED",
                         "cannot write %s: %s (API user %s exists; run "
                         "momo provision again)", path, strerror(err),
                         pv->user);
    }

    momo_provision_env(pv, f);

    if (fclose(f) != 0) {
        return momo_fail(pv->o, MOMO_EXIT_USAGE, "OUTPUT_FAILED",
                         "cannot write %s: %s", path, strerror(errno));
    }

    return 0;
}


/*
 * Without --output the .env lines are the output, secrets included;
 * with it, the file holds them and the output masks them.
 */

static void
momo_provision_report(momo_provision_t *pv)
{
    yajl_gen           g;
    const momo_opts_t  *o;

    o = pv->o;

    if (o->output != NULL) {
        momo_secret_add(pv->api_key);
        momo_secret_add(pv->secret);
    }

    if (!o->json) {
        if (o->output == NULL) {
            momo_provision_env(pv, stdout);
        } else {
            momo_printf("wrote %s (mode 0600); check it with: momo check "
                        "--env-file %s\n", o->output, o->output);
        }

        return;
    }

    g = momo_json_begin();
    momo_json_kbool(g, "ok", 1);
    momo_json_kint(g, "exit_code", MOMO_EXIT_OK);
    momo_json_kstr(g, "api_user_id", pv->user);
    momo_json_kstr(g, "target_environment", pv->target_env);
    momo_json_kstr(g, "provider_callback_host", pv->callback_host);
    momo_json_kstr(g, "env_file", o->output);

    momo_json_kstr(g, "product", pv->product->name);

    momo_json_key(g, "env");
    yajl_gen_map_open(g);
    momo_json_kstr(g, momo_key_names[pv->product->key_user], pv->user);

    if (o->output == NULL) {
        momo_json_kstr_raw(g, momo_key_names[pv->product->key_api_key],
                           pv->api_key);
        momo_json_kstr_raw(g, momo_key_names[pv->product->key_sub_key],
                           o->subscription_key);
    } else {
        momo_json_kstr(g, momo_key_names[pv->product->key_api_key],
                       pv->api_key);
        momo_json_kstr(g, momo_key_names[pv->product->key_sub_key],
                       o->subscription_key);
    }

    if (pv->product == &momo_products[MOMO_COLLECTION]) {
        momo_json_kstr(g, "MTN_MOMO_TARGET_ENVIRONMENT", pv->target_env);
        momo_json_kstr(g, "MTN_MOMO_BASE_URL", pv->base_url);
        momo_json_kstr(g, "MTN_MOMO_CALLBACK_URL", pv->callback_url);

        if (o->output == NULL) {
            momo_json_kstr_raw(g, "MTN_MOMO_CALLBACK_SECRET", pv->secret);
        } else {
            momo_json_kstr(g, "MTN_MOMO_CALLBACK_SECRET", pv->secret);
        }
    }

    yajl_gen_map_close(g);

    momo_json_end(g);
}
