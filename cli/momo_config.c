
/*
 * The .env file: read with the module's own parser (src/momo_env.c),
 * then every key checked the way nginx -t would, so "momo check" and
 * the module never disagree about a file.
 */


#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "momo_env.h"
#include "momo_cli.h"


#define MOMO_ENV_MAX_SIZE  (64 * 1024)


static char *momo_config_read(momo_config_t *cf);
static void momo_config_pair(momo_config_t *cf, const momo_env_pair_t *pair,
    unsigned line);
static void momo_config_check_env(momo_config_t *cf);
static void momo_config_check_base(momo_config_t *cf);
static void momo_config_check_product(momo_config_t *cf,
    momo_product_e product);
static void momo_config_check_user(momo_config_t *cf, int k);
static void momo_config_check_secret(momo_config_t *cf, int k);
static void momo_config_check_callback(momo_config_t *cf);
static void momo_config_check_callback_secret(momo_config_t *cf);
static int momo_config_host_is(const char *url, const char *host);


const char  *momo_key_names[MOMO_KEY_N] = {
    "MTN_MOMO_API_USER_ID",
    "MTN_MOMO_API_KEY",
    "MTN_MOMO_SUBSCRIPTION_KEY",
    "MTN_MOMO_TARGET_ENVIRONMENT",
    "MTN_MOMO_BASE_URL",
    "MTN_MOMO_CALLBACK_URL",
    "MTN_MOMO_CALLBACK_SECRET",
    "MTN_MOMO_DISBURSEMENT_API_USER_ID",
    "MTN_MOMO_DISBURSEMENT_API_KEY",
    "MTN_MOMO_DISBURSEMENT_SUBSCRIPTION_KEY"
};


const momo_product_t  momo_products[MOMO_PRODUCT_N] = {
    { "collection", "Collections", "MTN_MOMO_",
      "Disbursement and Remittance", "payments",
      MOMO_KEY_USER, MOMO_KEY_API_KEY, MOMO_KEY_SUB_KEY },
    { "disbursement", "Disbursement", "MTN_MOMO_DISBURSEMENT_",
      "Collections and Remittance", "refunds and payouts",
      MOMO_KEY_D_USER, MOMO_KEY_D_API_KEY, MOMO_KEY_D_SUB_KEY }
};


/* MTN's documented environments and the one currency each accepts */

static const struct {
    const char  *env;
    const char  *currency;
} momo_currencies[] = {
    { "sandbox",          "EUR" },
    { "mtncameroon",      "XAF" },
    { "mtncongo",         "XAF" },
    { "mtnuganda",        "UGX" },
    { "mtnghana",         "GHS" },
    { "mtnivorycoast",    "XOF" },
    { "mtnbenin",         "XOF" },
    { "mtnzambia",        "ZMW" },
    { "mtnswaziland",     "SZL" },
    { "mtnguineaconakry", "GNF" },
    { "mtnsouthafrica",   "ZAR" },
    { "mtnliberia",       "LRD" },
    { "mtnrwanda",        "RWF" },
    { NULL, NULL }
};


int
momo_config_load(momo_config_t *cf, const char *path)
{
    int                   rc;
    char                 *data;
    unsigned              line;
    const char           *err;
    momo_env_pair_t       pair;
    const unsigned char  *pos, *end;

    memset(cf, 0, sizeof(*cf));
    cf->path = path;

    data = momo_config_read(cf);
    if (data == NULL) {
        return -1;
    }

    pos = (const unsigned char *) data;
    end = pos + strlen(data);
    line = 0;

    while ((rc = momo_env_next(&pos, end, &pair, &line, &err)) != 0) {

        if (rc == 1) {
            momo_config_pair(cf, &pair, line);
            continue;
        }

        if (cf->nsyntax < MOMO_CONFIG_MAX_NOTES) {
            snprintf(cf->syntax[cf->nsyntax++], sizeof(cf->syntax[0]),
                     "%s:%u: %s", path, line, err);
        }
    }

    free(data);

    return 0;
}


static char *
momo_config_read(momo_config_t *cf)
{
    FILE    *f;
    char    *data;
    size_t   n;

    f = fopen(cf->path, "rb");
    if (f == NULL) {
        snprintf(cf->file_error, sizeof(cf->file_error),
                 "cannot read %s: %s%s", cf->path, strerror(errno),
                 errno == ENOENT ? " (create it with \"momo provision\", "
                 "or name it with --env-file)" : "");
        return NULL;
    }

    data = malloc(MOMO_ENV_MAX_SIZE + 1);
    if (data == NULL) {
        fclose(f);
        snprintf(cf->file_error, sizeof(cf->file_error), "out of memory");
        return NULL;
    }

    n = fread(data, 1, MOMO_ENV_MAX_SIZE + 1, f);
    fclose(f);

    if (n > MOMO_ENV_MAX_SIZE) {
        free(data);
        snprintf(cf->file_error, sizeof(cf->file_error),
                 "%s is larger than %d bytes: not an .env file", cf->path,
                 MOMO_ENV_MAX_SIZE);
        return NULL;
    }

    if (memchr(data, '\0', n) != NULL) {
        free(data);
        snprintf(cf->file_error, sizeof(cf->file_error),
                 "%s contains NUL bytes: not an .env file", cf->path);
        return NULL;
    }

    data[n] = '\0';

    return data;
}


static void
momo_config_pair(momo_config_t *cf, const momo_env_pair_t *pair,
    unsigned line)
{
    int    k;
    char  *v;

    for (k = 0; k < MOMO_KEY_N; k++) {
        if (strlen(momo_key_names[k]) == pair->key_len
            && memcmp(momo_key_names[k], pair->key, pair->key_len) == 0)
        {
            break;
        }
    }

    if (k == MOMO_KEY_N) {
        if (cf->nunknown < MOMO_CONFIG_MAX_NOTES) {
            snprintf(cf->unknown[cf->nunknown++], sizeof(cf->unknown[0]),
                     "line %u: %.*s", line,
                     (int) (pair->key_len > 80 ? 80 : pair->key_len),
                     (const char *) pair->key);
        }

        return;
    }

    v = malloc(pair->value_len + 1);
    if (v == NULL) {
        return;
    }

    memcpy(v, pair->value, pair->value_len);
    v[pair->value_len] = '\0';

    /* as in a shell, the last assignment wins */
    free(cf->value[k]);
    cf->value[k] = v;
    cf->line[k] = line;
}


/* 0 when the configuration can be used, -1 otherwise */

int
momo_config_validate(momo_config_t *cf)
{
    int  k;

    for (k = 0; k < MOMO_PRODUCT_N; k++) {
        cf->has[k] = (cf->value[momo_products[k].key_user] != NULL
                      || cf->value[momo_products[k].key_api_key] != NULL
                      || cf->value[momo_products[k].key_sub_key] != NULL);
    }

    momo_config_check_env(cf);
    momo_config_check_base(cf);
    momo_config_check_product(cf, MOMO_COLLECTION);
    momo_config_check_product(cf, MOMO_DISBURSEMENT);
    momo_config_check_callback(cf);
    momo_config_check_callback_secret(cf);

    if (cf->nsyntax > 0) {
        return -1;
    }

    for (k = 0; k < MOMO_KEY_N; k++) {
        if (cf->problem[k] != NULL) {
            return -1;
        }
    }

    return 0;
}


static void
momo_config_check_env(momo_config_t *cf)
{
    const char  *v, *p;

    v = cf->value[MOMO_KEY_ENV];
    cf->target_env = "sandbox";

    if (v == NULL) {
        cf->note[MOMO_KEY_ENV] = "not set: sandbox assumed";
        return;
    }

    if (v[0] == '\0') {
        cf->problem[MOMO_KEY_ENV] = "empty: write sandbox, or mtncameroon "
                                    "for Cameroon production";
        return;
    }

    for (p = v; *p != '\0'; p++) {
        if (!islower((unsigned char) *p) && !isdigit((unsigned char) *p)) {
            cf->problem[MOMO_KEY_ENV] = "not an environment name: MTN's are "
                                        "lowercase, like sandbox or "
                                        "mtncameroon";
            return;
        }
    }

    cf->target_env = v;

    if (momo_config_currency(v) == NULL) {
        cf->note[MOMO_KEY_ENV] = "not one of MTN's documented environments "
                                 "(sandbox, mtncameroon, mtnuganda, ...); "
                                 "check the spelling";
    }
}


static void
momo_config_check_base(momo_config_t *cf)
{
    size_t       len;
    const char  *v, *problem;

    v = cf->value[MOMO_KEY_BASE_URL];

    if (v == NULL || v[0] == '\0') {
        v = (strcmp(cf->target_env, "sandbox") == 0) ? MOMO_SANDBOX_URL
                                                     : MOMO_PRODUCTION_URL;
        cf->note[MOMO_KEY_BASE_URL] = "not set: MTN's default for the "
                                      "target environment";
    }

    cf->base_url = momo_strdup(v);
    if (cf->base_url == NULL) {
        cf->problem[MOMO_KEY_BASE_URL] = "out of memory";
        return;
    }

    len = strlen(cf->base_url);
    while (len > 0 && cf->base_url[len - 1] == '/') {
        cf->base_url[--len] = '\0';
    }

    if (!momo_config_check_url(cf->base_url, &problem)) {
        cf->problem[MOMO_KEY_BASE_URL] = problem;
        return;
    }

    if (momo_config_host_is(cf->base_url, "momodeveloper.mtn.com")
        || momo_config_host_is(cf->base_url, "momoapi.mtn.com"))
    {
        cf->problem[MOMO_KEY_BASE_URL] = "that is MTN's developer portal, "
            "not the API: use https://sandbox.momodeveloper.mtn.com for the "
            "sandbox, https://proxy.momoapi.mtn.com for production";
        return;
    }

    if (strncmp(cf->base_url, "http://", 7) == 0
        && !momo_config_is_loopback(cf->base_url))
    {
        cf->note[MOMO_KEY_BASE_URL] = "plain http: credentials would "
                                      "travel unencrypted; MTN is https";

    } else if (momo_config_host_is(cf->base_url,
                                   "sandbox.momodeveloper.mtn.com")
               && strcmp(cf->target_env, "sandbox") != 0)
    {
        cf->note[MOMO_KEY_BASE_URL] = "MTN's sandbox only knows the target "
                                      "environment sandbox";
    }
}


/*
 * A product's three credentials: all or none.  Collections' are needed
 * unless the file is for Disbursement alone.
 */

static void
momo_config_check_product(momo_config_t *cf, momo_product_e product)
{
    int                    k;
    const momo_product_t  *p;

    p = &momo_products[product];

    if (!cf->has[product]
        && (product == MOMO_DISBURSEMENT || cf->has[MOMO_DISBURSEMENT]))
    {
        for (k = p->key_user; k <= p->key_sub_key; k++) {
            cf->note[k] = (product == MOMO_DISBURSEMENT)
                ? "not set: no refunds or payouts (momo provision "
                  "--product disbursement)"
                : "not set: no payments (momo provision)";
        }

        return;
    }

    cf->has[product] = 1;

    momo_config_check_user(cf, p->key_user);
    momo_config_check_secret(cf, p->key_api_key);
    momo_config_check_secret(cf, p->key_sub_key);

    if (product != MOMO_DISBURSEMENT || !cf->has[MOMO_COLLECTION]) {
        return;
    }

    /* each product has its own subscription, so its own key */
    if (cf->value[MOMO_KEY_D_SUB_KEY] != NULL
        && cf->value[MOMO_KEY_SUB_KEY] != NULL
        && strcmp(cf->value[MOMO_KEY_D_SUB_KEY],
                  cf->value[MOMO_KEY_SUB_KEY]) == 0)
    {
        cf->note[MOMO_KEY_D_SUB_KEY] = "the same as "
            "MTN_MOMO_SUBSCRIPTION_KEY: MTN gives each product its own "
            "key, the Disbursement one is on your Disbursement "
            "subscription";
    }

    if (cf->value[MOMO_KEY_D_USER] != NULL
        && cf->value[MOMO_KEY_USER] != NULL
        && strcasecmp(cf->value[MOMO_KEY_D_USER],
                      cf->value[MOMO_KEY_USER]) == 0)
    {
        cf->note[MOMO_KEY_D_USER] = "the same as MTN_MOMO_API_USER_ID: an "
            "API user belongs to one product; make a Disbursement one with "
            "momo provision --product disbursement";
    }
}


static void
momo_config_check_user(momo_config_t *cf, int k)
{
    const char  *v;

    v = cf->value[k];

    if (v == NULL || v[0] == '\0') {
        cf->problem[k] = (v == NULL) ? "missing" : "empty";
        return;
    }

    /* the 2026 platform's system credentials are base64 user ids */
    if (cf->base_url != NULL
        && momo_config_host_is(cf->base_url, MOMO_NEW_PLATFORM_HOST))
    {
        return;
    }

    if (!momo_is_uuid(v)) {
        cf->problem[k] = "not a UUID (8-4-4-4-12 hex digits, "
                                     "as momo provision or MTN's partner "
                                     "portal gives it)";
    }
}


static void
momo_config_check_secret(momo_config_t *cf, int k)
{
    const char  *v;

    v = cf->value[k];

    if (v == NULL || v[0] == '\0') {
        cf->problem[k] = (v == NULL) ? "missing" : "empty";
        return;
    }

    momo_secret_add(v);

    if ((k == MOMO_KEY_SUB_KEY || k == MOMO_KEY_D_SUB_KEY)
        && strlen(v) != 32)
    {
        cf->note[k] = "MTN's subscription keys are 32 hex digits; check "
                      "it was copied whole";
    }
}


/* the CLI does not use it; nginx -t wants it for momo_pay and callbacks */

static void
momo_config_check_callback_secret(momo_config_t *cf)
{
    const char  *v;

    v = cf->value[MOMO_KEY_CALLBACK_SECRET];

    if (v == NULL) {
        cf->note[MOMO_KEY_CALLBACK_SECRET] = "not set: nginx needs it for "
            "momo_pay and momo_callback; make one with: openssl rand -hex 32";
        return;
    }

    momo_secret_add(v);

    if (strlen(v) < MOMO_SECRET_MIN) {
        cf->problem[MOMO_KEY_CALLBACK_SECRET] = "shorter than 32 characters "
            "(nginx -t refuses it); make one with: openssl rand -hex 32";
    }
}


static void
momo_config_check_callback(momo_config_t *cf)
{
    const char  *v, *problem;

    v = cf->value[MOMO_KEY_CALLBACK_URL];

    if (v == NULL || v[0] == '\0') {
        cf->note[MOMO_KEY_CALLBACK_URL] = "not set: MTN will not call back, "
                                          "payments are known by polling";
        return;
    }

    if (!momo_config_check_url(v, &problem)) {
        cf->problem[MOMO_KEY_CALLBACK_URL] = problem;
        return;
    }

    if (strncmp(v, "http://", 7) == 0 && !momo_config_is_loopback(v)) {
        cf->note[MOMO_KEY_CALLBACK_URL] = "plain http: MTN production "
                                          "calls back over https only";
    }
}


/* http(s)://host[:port][/path], no user info, query or fragment */

int
momo_config_check_url(const char *url, const char **problem)
{
    const char  *p, *host;
    long         port;

    if (strncmp(url, "https://", 8) == 0) {
        p = url + 8;

    } else if (strncmp(url, "http://", 7) == 0) {
        p = url + 7;

    } else {
        *problem = "not a URL: it must start with https:// (or http:// for "
                   "a local emulator)";
        return 0;
    }

    host = p;

    if (*p == '[') {
        while (*p != '\0' && *p != ']') {
            p++;
        }

        if (*p++ != ']') {
            *problem = "not a URL: unclosed \"[\" in the host";
            return 0;
        }

    } else {
        while (isalnum((unsigned char) *p) || *p == '.' || *p == '-') {
            p++;
        }
    }

    if (p == host) {
        *problem = "not a URL: the host name is missing";
        return 0;
    }

    if (*p == ':') {
        port = strtol(p + 1, (char **) &p, 10);

        if (port < 1 || port > 65535) {
            *problem = "not a URL: the port must be 1-65535";
            return 0;
        }
    }

    if (*p != '\0' && *p != '/') {
        *problem = "not a URL: unexpected character after the host (user "
                   "info, spaces and such are not allowed)";
        return 0;
    }

    for ( /* void */ ; *p != '\0'; p++) {
        if (*p == '?' || *p == '#' || (unsigned char) *p <= ' ') {
            *problem = "not a URL for this: no query, fragment or blanks "
                       "allowed";
            return 0;
        }
    }

    return 1;
}


int
momo_config_is_loopback(const char *url)
{
    const char  *host;

    host = strstr(url, "://");

    return momo_config_host_is(url, "localhost")
           || momo_config_host_is(url, "[::1]")
           || (host != NULL && strncmp(host + 3, "127.", 4) == 0);
}


/* host equals name or is a sub-domain of it */

static int
momo_config_host_is(const char *url, const char *name)
{
    size_t       hlen, nlen;
    const char  *host, *end;

    host = strstr(url, "://");
    if (host == NULL) {
        return 0;
    }

    host += 3;
    end = host;

    if (*end == '[') {
        end = strchr(end, ']');
        end = (end != NULL) ? end + 1 : host + strlen(host);

    } else {
        end += strcspn(end, ":/");
    }

    hlen = (size_t) (end - host);
    nlen = strlen(name);

    if (hlen < nlen || strncasecmp(end - nlen, name, nlen) != 0) {
        return 0;
    }

    return hlen == nlen || end[-(long) nlen - 1] == '.';
}


const char *
momo_config_currency(const char *target_env)
{
    int  i;

    for (i = 0; momo_currencies[i].env != NULL; i++) {
        if (strcmp(momo_currencies[i].env, target_env) == 0) {
            return momo_currencies[i].currency;
        }
    }

    return NULL;
}


/*
 * For pay and status: a usable configuration or exit code 3 with the
 * first problem; "momo check" shows all of them.
 */

int
momo_config_open(momo_config_t *cf, const momo_opts_t *o,
    momo_product_e product)
{
    int                    k;
    const momo_product_t  *p;

    if (momo_config_load(cf, o->env_file) != 0) {
        return momo_fail(o, MOMO_EXIT_CONFIG, "CONFIG_UNREADABLE", "%s",
                         cf->file_error);
    }

    if (momo_config_validate(cf) == 0) {

        if (cf->has[product]) {
            return 0;
        }

        p = &momo_products[product];

        return momo_fail(o, MOMO_EXIT_CONFIG, "CONFIG_INVALID",
                         "%s: %s: missing: %s need the %s product's "
                         "credentials (%sAPI_USER_ID, %sAPI_KEY, "
                         "%sSUBSCRIPTION_KEY); sandbox ones come from "
                         "\"momo provision%s\"", cf->path,
                         momo_key_names[p->key_user], p->uses, p->title,
                         p->env_prefix, p->env_prefix, p->env_prefix,
                         product == MOMO_DISBURSEMENT
                         ? " --product disbursement" : "");
    }

    if (cf->nsyntax > 0) {
        return momo_fail(o, MOMO_EXIT_CONFIG, "CONFIG_SYNTAX", "%s",
                         cf->syntax[0]);
    }

    for (k = 0; cf->problem[k] == NULL; k++) {
        /* void */
    }

    return momo_fail(o, MOMO_EXIT_CONFIG, "CONFIG_INVALID",
                     "%s: %s: %s; \"momo check --env-file %s\" lists "
                     "every problem", cf->path, momo_key_names[k],
                     cf->problem[k], cf->path);
}


/* --product collection|disbursement, collection by default */

int
momo_config_product(const momo_opts_t *o, momo_product_e *product)
{
    int  i;

    *product = MOMO_COLLECTION;

    if (o->product == NULL) {
        return 0;
    }

    for (i = 0; i < MOMO_PRODUCT_N; i++) {
        if (strcmp(o->product, momo_products[i].name) == 0) {
            *product = (momo_product_e) i;
            return 0;
        }
    }

    return momo_usage(o, "--product \"%s\" is not collection or "
                      "disbursement", o->product);
}


void
momo_config_free(momo_config_t *cf)
{
    int  k;

    for (k = 0; k < MOMO_KEY_N; k++) {
        free(cf->value[k]);
        cf->value[k] = NULL;
    }

    free(cf->base_url);
    cf->base_url = NULL;
}
