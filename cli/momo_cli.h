
/*
 * momo: command-line companion of ngx_http_momo_module.
 *
 * One header for the types every file shares.  Output goes through
 * momo_out.c, which masks every registered secret, so a secret that
 * reaches a printf by mistake is still not shown.
 */

#ifndef _MOMO_CLI_H_INCLUDED_
#define _MOMO_CLI_H_INCLUDED_


#include <stddef.h>
#include <stdio.h>

#include <curl/curl.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>


#define MOMO_CLI_VERSION         "0.1"
#define MOMO_USER_AGENT          "momo-cli/" MOMO_CLI_VERSION

#define MOMO_SANDBOX_URL         "https://sandbox.momodeveloper.mtn.com"
#define MOMO_PRODUCTION_URL      "https://proxy.momoapi.mtn.com"
#define MOMO_NEW_PLATFORM_HOST   "momoapi.momo.africa"
#define MOMO_CALLBACK_PATH       "/api/payments/mtn-momo/callback"

#define MOMO_HTTP_TIMEOUT_MS     30000
#define MOMO_WAIT_TIMEOUT_MS     120000

#define MOMO_EXIT_OK             0
#define MOMO_EXIT_USAGE          2
#define MOMO_EXIT_CONFIG         3
#define MOMO_EXIT_MTN            4
#define MOMO_EXIT_FAILED         5
#define MOMO_EXIT_PENDING        6

#define MOMO_UUID_LEN            36
#define MOMO_SECRET_LEN          64       /* hex digits of a new secret */
#define MOMO_SECRET_MIN          32       /* what nginx -t accepts */


/* command line */

typedef struct {
    const char   *env_file;
    const char   *base_url;
    const char   *subscription_key;
    const char   *callback_host;
    const char   *callback_url;
    const char   *output;
    const char   *phone;
    const char   *amount;
    const char   *currency;
    const char   *external_id;
    const char   *message;
    const char   *note;
    const char   *msisdn;
    const char   *timeout;
    const char   *product;
    const char   *idempotency_key;
    const char   *args[2];
    int           nargs;
    int           json;
    int           wait;
    int           help;
    int           force;
    int           refund;            /* status of a refund */
    int           payout;            /* status of a payout */
    long          http_timeout_ms;
    long          wait_timeout_ms;
} momo_opts_t;


/* .env configuration */

enum {
    MOMO_KEY_USER = 0,
    MOMO_KEY_API_KEY,
    MOMO_KEY_SUB_KEY,
    MOMO_KEY_ENV,
    MOMO_KEY_BASE_URL,
    MOMO_KEY_CALLBACK_URL,
    MOMO_KEY_CALLBACK_SECRET,
    MOMO_KEY_D_USER,
    MOMO_KEY_D_API_KEY,
    MOMO_KEY_D_SUB_KEY,
    MOMO_KEY_N
};


/* MTN products: each has its own subscription key and API users */

typedef enum {
    MOMO_COLLECTION = 0,
    MOMO_DISBURSEMENT,
    MOMO_PRODUCT_N
} momo_product_e;

typedef struct {
    const char   *name;              /* the path segment: "collection" */
    const char   *title;             /* "Collections" */
    const char   *env_prefix;        /* "MTN_MOMO_" */
    const char   *others;            /* the products whose keys fail */
    const char   *uses;              /* what needs it */
    int           key_user;
    int           key_api_key;
    int           key_sub_key;
} momo_product_t;

extern const momo_product_t  momo_products[MOMO_PRODUCT_N];

#define MOMO_CONFIG_MAX_NOTES    8

typedef struct {
    const char   *path;
    char         *value[MOMO_KEY_N];         /* NULL when absent */
    unsigned      line[MOMO_KEY_N];
    const char   *problem[MOMO_KEY_N];       /* NULL when valid */
    const char   *note[MOMO_KEY_N];
    const char   *target_env;                /* effective values */
    char         *base_url;
    char          file_error[512];
    char          syntax[MOMO_CONFIG_MAX_NOTES][256];
    int           nsyntax;
    char          unknown[MOMO_CONFIG_MAX_NOTES][128];
    int           nunknown;
    int           has[MOMO_PRODUCT_N];       /* its credentials are set */
} momo_config_t;

extern const char  *momo_key_names[MOMO_KEY_N];


/* HTTP */

typedef enum {
    MOMO_NET_OK = 0,
    MOMO_NET_DNS,
    MOMO_NET_CONNECT,
    MOMO_NET_TIMEOUT,
    MOMO_NET_TLS,
    MOMO_NET_CERT,
    MOMO_NET_RESET,
    MOMO_NET_OTHER
} momo_net_e;

typedef struct {
    const char   *what;              /* "token", "balance", ... */
    const char   *method;
    const char   *url;
    const char  **headers;           /* NULL-terminated "Name: value" */
    const char   *body;              /* NULL: no body (Content-Length: 0
                                        on POST) */
    long          timeout_ms;
} momo_http_req_t;

typedef struct {
    const char   *what;
    char          method[8];
    char          url[512];
    momo_net_e    net;
    long          status;            /* 0 when no HTTP answer */
    long          os_errno;          /* of a failed connect */
    char         *body;              /* always NUL-terminated */
    size_t        len;
    char          content_type[128];
    long          elapsed_ms;
    long          timeout_ms;
    char          error[CURL_ERROR_SIZE];
} momo_http_resp_t;


/* MTN client */

typedef struct {
    momo_config_t          *cf;
    const momo_product_t   *product;
    long                    timeout_ms;
    char           *token;
    long            expires_in;
} momo_client_t;


/* what a failed call means and what to do about it */

typedef struct {
    const char   *code;              /* "LOGIN_FAILED", ... */
    const char   *call;              /* "token", "balance", ... */
    long          http_status;       /* 0 when MTN did not answer */
    int           exit_code;
    int           transient;         /* worth asking again later */
    char          what[640];         /* what happened */
    char          hint[640];         /* what the user can do */
} momo_diag_t;


/* one payment as MTN reports it */

typedef enum {
    MOMO_OP_PAYMENT = 0,             /* requesttopay: Collections */
    MOMO_OP_REFUND,                  /* refund: Disbursement */
    MOMO_OP_PAYOUT                   /* transfer: Disbursement */
} momo_op_e;

typedef struct {
    char          reference_id[MOMO_UUID_LEN + 1];
    momo_op_e     op;
    const char   *status;            /* "pending", "successful", "failed" */
    char          mtn_status[32];
    char          amount[32];
    char          currency[8];
    char          external_id[72];
    char          payer[32];         /* the payee of a refund or payout */
    char          financial_id[64];
    char          reason[64];
    char          reason_message[160];
    int           ref_printed;       /* pay --wait shows it up front */
    int           accepted_before;   /* MTN's 409 for a refund or payout */
} momo_payment_t;


/* momo.c */
int momo_usage(const momo_opts_t *o, const char *fmt, ...);

/* momo_cmd_*.c */
int momo_cmd_provision(momo_opts_t *o);
int momo_cmd_check(momo_opts_t *o);
int momo_cmd_pay(momo_opts_t *o);
int momo_cmd_status(momo_opts_t *o);
int momo_cmd_refund(momo_opts_t *o);
int momo_cmd_payout(momo_opts_t *o);
int momo_cmd_balance(momo_opts_t *o);

/* momo_cmd_pay.c: what pay, refund and payout share */

typedef struct {
    char          phone[24];         /* payer or payee; none for a refund */
    const char   *amount;
    const char   *currency;
    const char   *external_id;
    const char   *message;
    const char   *note;
    const char   *refund_of;         /* referenceIdToRefund */
    char          external_buf[48];
} momo_pay_input_t;

int momo_pay_validate(const momo_opts_t *o, const momo_config_t *cf,
    momo_pay_input_t *in, const char *text);
int momo_pay_request(const momo_opts_t *o, momo_client_t *c,
    const momo_pay_input_t *in, momo_payment_t *pm);
char *momo_pay_body(const momo_pay_input_t *in, momo_op_e op);
int momo_pay_finish(const momo_opts_t *o, momo_client_t *c,
    momo_payment_t *pm, int tolerate_404);
int momo_pay_report(const momo_opts_t *o, const momo_payment_t *pm,
    int exit_code, const momo_diag_t *d);

/* momo_config.c */
int momo_config_load(momo_config_t *cf, const char *path);
int momo_config_validate(momo_config_t *cf);
int momo_config_open(momo_config_t *cf, const momo_opts_t *o,
    momo_product_e product);
int momo_config_product(const momo_opts_t *o, momo_product_e *product);
void momo_config_free(momo_config_t *cf);
const char *momo_config_currency(const char *target_env);
int momo_config_check_url(const char *url, const char **problem);
int momo_config_is_loopback(const char *url);

/* momo_http.c */
int momo_http_send(const momo_http_req_t *rq, momo_http_resp_t *rs);
void momo_http_free(momo_http_resp_t *rs);
const char *momo_http_path(const momo_http_resp_t *rs);

/* momo_api.c */
void momo_api_init(momo_client_t *c, momo_config_t *cf, long timeout_ms,
    momo_product_e product);
int momo_api_token(momo_client_t *c, momo_http_resp_t *rs);
int momo_api_call(momo_client_t *c, const char *what, const char *method,
    const char *path, const char **extra, const char *body,
    momo_http_resp_t *rs);
int momo_api_balance(momo_client_t *c, momo_http_resp_t *rs, char *avail,
    char *cur, size_t size);
void momo_api_explain(momo_client_t *c, momo_diag_t *d);
void momo_api_free(momo_client_t *c);
int momo_api_is_apim_error(const momo_http_resp_t *rs);

/* momo_diag.c */
void momo_diag(const momo_http_resp_t *rs, const momo_config_t *cf,
    momo_diag_t *d);

/* momo_payment.c */
int momo_payment_parse(const momo_http_resp_t *rs, momo_payment_t *pm);
const char *momo_payment_path(momo_op_e op);
int momo_payment_same_amount(const char *a, const char *b);
long long momo_payment_cents(const char *s);
int momo_payment_final(const momo_payment_t *pm);
int momo_payment_fetch(momo_client_t *c, momo_payment_t *pm,
    momo_http_resp_t *rs);
int momo_payment_wait(momo_client_t *c, const momo_opts_t *o,
    momo_payment_t *pm, int tolerate_404, momo_diag_t *d);
void momo_payment_print(const momo_payment_t *pm);
void momo_payment_progress(const momo_payment_t *pm, long elapsed_ms,
    const momo_diag_t *last_error);
void momo_payment_json(yajl_gen g, const momo_payment_t *pm);
int momo_payment_exit(const momo_payment_t *pm);

/* momo_json.c */
yajl_val momo_json_parse(const char *text);
yajl_val momo_json_get(yajl_val obj, const char *key);
const char *momo_json_str(yajl_val obj, const char *key);
yajl_gen momo_json_begin(void);
void momo_json_key(yajl_gen g, const char *key);
void momo_json_kstr(yajl_gen g, const char *key, const char *value);
void momo_json_kint(yajl_gen g, const char *key, long value);
void momo_json_kbool(yajl_gen g, const char *key, int value);
void momo_json_str_value(yajl_gen g, const char *value);
void momo_json_end(yajl_gen g);
void momo_json_kstr_raw(yajl_gen g, const char *key, const char *value);
void momo_json_diag(yajl_gen g, const momo_diag_t *d);

/* momo_out.c */
void momo_secret_add(const char *secret);
char *momo_redact(const char *s);
void momo_mask(const char *secret, char *buf, size_t size);
void momo_printf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
void momo_eprintf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
void momo_progress(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
void momo_progress_done(void);
int momo_stdout_is_tty(void);
int momo_fail(const momo_opts_t *o, int exit_code, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int momo_fail_diag(const momo_opts_t *o, const momo_diag_t *d,
    const char *reference_id);
void momo_print_diag(const momo_diag_t *d, const char *indent);

/* momo_util.c */
int momo_uuid_v4(char *out);
int momo_uuid_derive(const char *material, char *out);
int momo_random_hex(char *out, size_t len);
int momo_is_uuid(const char *s);
char *momo_base64(const char *in, size_t len);
long momo_now_ms(void);
void momo_sleep_ms(long ms);
void *momo_alloc(size_t size);
char *momo_strdup(const char *s);
void momo_excerpt(const char *body, size_t len, char *out, size_t size);
int momo_is_digits(const char *s, size_t min, size_t max);


#endif /* _MOMO_CLI_H_INCLUDED_ */
