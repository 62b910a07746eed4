
/*
 * From a failed call to a sentence a person can act on.  MTN reports
 * most client mistakes as 500s with a "code", the gateway in front of it
 * as {"statusCode","message"}, and the token endpoint as {"error"}; the
 * mapping follows momo-api.md section 9.
 */


#include <errno.h>
#include <string.h>

#include "momo_cli.h"


typedef struct {
    const momo_http_resp_t  *rs;
    const momo_config_t     *cf;
    momo_diag_t             *d;
    const char              *code;       /* MTN's "code" */
    const char              *error;      /* the token endpoint's "error" */
    int                      apim;       /* {"statusCode": ...} */
    int                      html;
    char                     answer[256];
} momo_diag_ctx_t;


static void momo_diag_net(momo_diag_ctx_t *x);
static void momo_diag_http(momo_diag_ctx_t *x);
static int momo_diag_auth(momo_diag_ctx_t *x);
static int momo_diag_credentials(momo_diag_ctx_t *x);
static int momo_diag_mtn_code(momo_diag_ctx_t *x);
static void momo_diag_other(momo_diag_ctx_t *x);
static void momo_diag_set(momo_diag_ctx_t *x, const char *code,
    const char *meaning, const char *hint);
static void momo_diag_host(const char *url, char *buf, size_t size);


void
momo_diag(const momo_http_resp_t *rs, const momo_config_t *cf,
    momo_diag_t *d)
{
    yajl_val          json;
    momo_diag_ctx_t   x;

    memset(d, 0, sizeof(*d));
    d->exit_code = MOMO_EXIT_MTN;
    d->call = rs->what;
    d->http_status = rs->status;

    memset(&x, 0, sizeof(x));
    x.rs = rs;
    x.cf = cf;
    x.d = d;

    if (rs->net != MOMO_NET_OK) {
        momo_diag_net(&x);
        return;
    }

    json = momo_json_parse(rs->body);
    x.code = momo_json_str(json, "code");
    x.error = momo_json_str(json, "error");
    x.apim = (momo_json_get(json, "statusCode") != NULL);
    x.html = (strstr(rs->content_type, "html") != NULL
              || (rs->body != NULL && rs->body[0] == '<'));
    momo_excerpt(rs->body, rs->len, x.answer, sizeof(x.answer));

    momo_diag_http(&x);

    yajl_tree_free(json);
}


static void
momo_diag_net(momo_diag_ctx_t *x)
{
    char                     host[256];
    momo_diag_t             *d;
    const momo_http_resp_t  *rs;

    rs = x->rs;
    d = x->d;
    momo_diag_host(rs->url, host, sizeof(host));

    switch (rs->net) {

    case MOMO_NET_DNS:
        d->code = "DNS_FAILURE";
        snprintf(d->what, sizeof(d->what), "cannot resolve %s (%s %s): %s",
                 host, rs->method, momo_http_path(rs), rs->error);
        snprintf(d->hint, sizeof(d->hint),
                 "Check the host name in MTN_MOMO_BASE_URL for typos, then "
                 "this machine's DNS and network (/etc/resolv.conf, "
                 "\"getent hosts %s\").", host);
        d->transient = 1;
        return;

    case MOMO_NET_CONNECT:
        d->code = (rs->os_errno == ECONNREFUSED) ? "CONNECTION_REFUSED"
                                                 : "CONNECTION_FAILED";
        snprintf(d->what, sizeof(d->what),
                 "cannot connect to %s (%s %s): %s%s%s", host, rs->method,
                 momo_http_path(rs), rs->error,
                 rs->os_errno ? ": " : "",
                 rs->os_errno ? strerror((int) rs->os_errno) : "");
        snprintf(d->hint, sizeof(d->hint),
                 "Nothing accepts connections there: check the host and "
                 "port in MTN_MOMO_BASE_URL (MTN listens on 443 with "
                 "https), a firewall or an outbound proxy; for a local "
                 "emulator, check that it runs on that port.");
        d->transient = 1;
        return;

    case MOMO_NET_TIMEOUT:
        d->code = "TIMEOUT";
        snprintf(d->what, sizeof(d->what),
                 "no answer from %s within %.1f s (%s %s): %s", host,
                 rs->timeout_ms / 1000.0, rs->method, momo_http_path(rs),
                 rs->error);
        snprintf(d->hint, sizeof(d->hint),
                 "MTN or the network is slow, or a firewall drops the "
                 "packets; MTN production also ignores servers whose IP "
                 "address it has not allow-listed. Try a longer --timeout "
                 "to tell them apart.");
        d->transient = 1;
        return;

    case MOMO_NET_CERT:
        d->code = "TLS_CERTIFICATE";
        snprintf(d->what, sizeof(d->what),
                 "the certificate of %s did not verify (%s %s): %s", host,
                 rs->method, momo_http_path(rs), rs->error);
        snprintf(d->hint, sizeof(d->hint),
                 "This machine's CA bundle is missing or old (install or "
                 "update the ca-certificates package), its clock is wrong, "
                 "a proxy intercepts TLS, or MTN_MOMO_BASE_URL names a host "
                 "the certificate is not for. Do not turn verification "
                 "off: the credentials would go to whoever answers.");
        return;

    case MOMO_NET_TLS:
        d->code = "TLS_FAILURE";
        snprintf(d->what, sizeof(d->what),
                 "the TLS handshake with %s failed (%s %s): %s", host,
                 rs->method, momo_http_path(rs), rs->error);
        snprintf(d->hint, sizeof(d->hint),
                 "Check the scheme and port of MTN_MOMO_BASE_URL: an "
                 "https:// URL pointing at a plain-http port ends here "
                 "(MTN is https on 443). Otherwise a proxy or firewall "
                 "interferes with TLS, or this machine's OpenSSL is too "
                 "old for MTN's TLS versions.");
        return;

    case MOMO_NET_RESET:
        d->code = "CONNECTION_RESET";
        snprintf(d->what, sizeof(d->what),
                 "the connection to %s broke before a complete answer "
                 "(%s %s): %s", host, rs->method, momo_http_path(rs),
                 rs->error);
        snprintf(d->hint, sizeof(d->hint),
                 "Usually a passing network or MTN problem: try again. If "
                 "it persists, a proxy or firewall may be closing the "
                 "connection.");
        d->transient = 1;
        return;

    default:
        d->code = "NETWORK_ERROR";
        snprintf(d->what, sizeof(d->what), "%s %s to %s failed: %s",
                 rs->method, momo_http_path(rs), host, rs->error);
        snprintf(d->hint, sizeof(d->hint),
                 "Check MTN_MOMO_BASE_URL and this machine's network.");
        d->transient = 1;
        return;
    }
}


static void
momo_diag_http(momo_diag_ctx_t *x)
{
    if (x->rs->status == 411) {
        momo_diag_set(x, "LENGTH_REQUIRED",
            "MTN received a POST without Content-Length and refused it",
            "This is a client bug, not a configuration problem: momo "
            "sends \"Content-Length: 0\" on every bodyless POST, so "
            "something between here and MTN (an HTTP proxy from "
            "HTTPS_PROXY or http_proxy, a middlebox) rewrote the request. "
            "Report it with this output.");
        return;
    }

    if (momo_diag_auth(x) || momo_diag_mtn_code(x)) {
        return;
    }

    momo_diag_other(x);
}


/* credentials: subscription key, API user and key, token */

static int
momo_diag_auth(momo_diag_ctx_t *x)
{
    long  status;

    status = x->rs->status;

    if (momo_diag_credentials(x)) {
        return 1;
    }

    if (x->error != NULL && strstr(x->error, "X-Target-Environment")) {
        momo_diag_set(x, "TARGET_ENVIRONMENT_REFUSED",
            "MTN wants a valid X-Target-Environment",
            "Set MTN_MOMO_TARGET_ENVIRONMENT to your environment "
            "(sandbox, mtncameroon, ...); the new platform requires it on "
            "the token call.");
        return 1;
    }

    if (status == 401) {
        momo_diag_set(x, "TOKEN_REFUSED",
            "MTN refused the access token, a fresh one included",
            "The API user may have lost access to this product or "
            "environment: check MTN_MOMO_TARGET_ENVIRONMENT and "
            "MTN_MOMO_BASE_URL match the credentials.");
        return 1;
    }

    return 0;
}


/*
 * The subscription key, the API user and key, named by the product the
 * call was for (its path says which): each has its own.
 */

static int
momo_diag_credentials(momo_diag_ctx_t *x)
{
    int                    token_call, disb;
    char                   meaning[128], hint[640];
    const momo_product_t  *p;

    disb = (strncmp(momo_http_path(x->rs), "/disbursement/", 14) == 0);
    p = &momo_products[disb ? MOMO_DISBURSEMENT : MOMO_COLLECTION];
    token_call = (strcmp(x->rs->what, "token") == 0);

    if (x->rs->status == 401 && x->apim) {
        snprintf(meaning, sizeof(meaning), "MTN's gateway refused the "
                 "subscription key of %s", p->title);
        snprintf(hint, sizeof(hint),
            "%sSUBSCRIPTION_KEY is wrong or belongs to another product: "
            "the %s product's key is needed (%s keys fail here). If the "
            "primary key does not work, try the secondary key. Sandbox keys "
            "are in your profile on momodeveloper.mtn.com, production keys "
            "on momoapi.mtn.com.", p->env_prefix, p->title, p->others);
        momo_diag_set(x, "SUBSCRIPTION_KEY_REFUSED", meaning, hint);
        return 1;
    }

    if ((x->error != NULL && (strcmp(x->error, "login_failed") == 0
                              || strcmp(x->error, "invalid_client") == 0))
        || (token_call && (x->rs->status == 401 || x->rs->status == 403)
            && !x->html))
    {
        snprintf(meaning, sizeof(meaning), "MTN refused the API user or the "
                 "API key of %s", p->title);
        snprintf(hint, sizeof(hint),
            "Check %sAPI_USER_ID and %sAPI_KEY.%s They may also be right but "
            "made for another environment or base URL: sandbox credentials "
            "(momo provision) work only on sandbox.momodeveloper.mtn.com "
            "with target environment sandbox; production ones come from "
            "MTN's partner portal. A lost or doubtful sandbox key: run momo "
            "provision%s again.", p->env_prefix, p->env_prefix,
            disb ? " An API user belongs to the product whose key made it: "
                   "a Collections API user is refused here." : "",
            disb ? " --product disbursement" : "");
        momo_diag_set(x, "LOGIN_FAILED", meaning, hint);
        return 1;
    }

    return 0;
}


/*
 * MTN's own codes.  The code strings here are static: MTN's answer is
 * freed before anyone reads the diagnosis.
 */

static const struct {
    const char  *mtn;
    const char  *code;
    const char  *meaning;
    const char  *hint;
} momo_diag_codes[] = {

    { "NOT_ALLOWED_TARGET_ENVIRONMENT", "NOT_ALLOWED_TARGET_ENVIRONMENT",
      "MTN does not allow this X-Target-Environment for these credentials",
      "Set MTN_MOMO_TARGET_ENVIRONMENT to the environment the API user was "
      "created for: sandbox for sandbox credentials, mtncameroon (or your "
      "country's) for production ones, with the matching "
      "MTN_MOMO_BASE_URL." },

    { "NOT_ALLOWED", "NOT_ALLOWED",
      "MTN says this account may not do that",
      "The account behind the API user is restricted for this operation: "
      "ask your MTN account manager to enable it." },

    { "INVALID_CURRENCY", "INVALID_CURRENCY",
      "MTN does not accept this currency here",
      "Each environment takes one currency: EUR in the sandbox, XAF for "
      "mtncameroon. Use --currency accordingly." },

    { "INVALID_CALLBACK_URL_HOST", "INVALID_CALLBACK_URL_HOST",
      "the callback URL's host is not the API user's providerCallbackHost",
      "Use a callback URL on the host the API user was created with "
      "(momo provision --callback-host), or create a new API user for the "
      "new host; MTN refuses the whole payment otherwise." },

    { "RESOURCE_NOT_FOUND", "NOT_FOUND",
      "MTN does not know this reference id",
      "Check the reference id. A payment is only visible on the platform "
      "(base URL, environment) that accepted it, and only once its POST "
      "was answered 202." },

    { "RESOURCE_ALREADY_EXIST", "RESOURCE_ALREADY_EXIST",
      "MTN already has a resource with this reference id",
      "For a payment this means it was accepted before: ask momo status "
      "for it instead of paying again." },

    { "SERVICE_UNAVAILABLE", "MTN_UNAVAILABLE",
      "MTN is unavailable for now",
      "Try again in a while; the sandbox has such outages." },

    { NULL, NULL, NULL, NULL }
};


static int
momo_diag_mtn_code(momo_diag_ctx_t *x)
{
    int  i;

    if (x->code == NULL) {
        return 0;
    }

    for (i = 0; momo_diag_codes[i].mtn != NULL; i++) {
        if (strcmp(x->code, momo_diag_codes[i].mtn) == 0) {
            momo_diag_set(x, momo_diag_codes[i].code,
                          momo_diag_codes[i].meaning,
                          momo_diag_codes[i].hint);
            x->d->transient = (strcmp(momo_diag_codes[i].code,
                                      "MTN_UNAVAILABLE") == 0);
            return 1;
        }
    }

    return 0;
}


static void
momo_diag_other(momo_diag_ctx_t *x)
{
    long  status;

    status = x->rs->status;

    if (status == 403) {
        momo_diag_set(x, "FORBIDDEN",
            "MTN refused this machine",
            "MTN production only serves IP addresses registered with it: "
            "ask your MTN account manager to allow-list this server's "
            "public address.");
        return;
    }

    if (status == 404) {
        momo_diag_set(x, "NO_SUCH_API",
            "there is no such MTN API at this base URL",
            "Check MTN_MOMO_BASE_URL: scheme and host only, like "
            "https://sandbox.momodeveloper.mtn.com, no path.");
        return;
    }

    if (status == 502 || status == 503 || status == 504) {
        momo_diag_set(x, "MTN_UNAVAILABLE",
            "MTN is unavailable for now",
            "Try again in a while; the sandbox has such outages.");
        x->d->transient = 1;
        return;
    }

    if (status == 400) {
        momo_diag_set(x, "BAD_REQUEST",
            "MTN refused the request as malformed",
            "Check the values given (no ' & < > \" in messages, at most 160 "
            "characters, digits only in phone numbers).");
        return;
    }

    if (status >= 200 && status < 300) {
        momo_diag_set(x, "UNEXPECTED_ANSWER",
            "MTN answered, but not what its API describes",
            "Check MTN_MOMO_BASE_URL points at MTN's API (or the emulator), "
            "not at another web server.");
        return;
    }

    momo_diag_set(x, "MTN_ERROR",
        status >= 500 ? "MTN failed to process the request"
                      : "MTN refused the request",
        status >= 500 ? "Often passing: try again. If it persists, quote "
                        "the answer to MTN support."
                      : "");

    x->d->transient = (status >= 500 || status == 429);
}


static void
momo_diag_set(momo_diag_ctx_t *x, const char *code, const char *meaning,
    const char *hint)
{
    const momo_http_resp_t  *rs;

    rs = x->rs;

    x->d->code = code;

    snprintf(x->d->what, sizeof(x->d->what), "%s: %s %s answered %ld %s",
             meaning, rs->method, momo_http_path(rs), rs->status, x->answer);
    snprintf(x->d->hint, sizeof(x->d->hint), "%s", hint);
}


static void
momo_diag_host(const char *url, char *buf, size_t size)
{
    const char  *p;

    p = strstr(url, "://");
    p = (p != NULL) ? p + 3 : url;

    snprintf(buf, size, "%.*s", (int) strcspn(p, "/"), p);
}
