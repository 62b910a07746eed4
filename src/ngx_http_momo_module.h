
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * Shared types of the MTN Mobile Money edge gateway.  Pure parts
 * (validation, JSON, crypto, .env) never touch events; the event parts
 * (handlers, calls to MTN) never parse bytes themselves.
 */


#ifndef _NGX_HTTP_MOMO_MODULE_H_INCLUDED_
#define _NGX_HTTP_MOMO_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


#define NGX_HTTP_MOMO_UUID_LEN          36
#define NGX_HTTP_MOMO_CB_TOKEN_LEN      32
#define NGX_HTTP_MOMO_TOKEN_MAX         4096
#define NGX_HTTP_MOMO_KEY_MAX           512
#define NGX_HTTP_MOMO_UNPROCESSABLE     422
#define NGX_HTTP_MOMO_ACCOUNTS          16      /* in one momo zone */
#define NGX_HTTP_MOMO_RECONCILE_MAX     16      /* momo_reconcile ages */


/* wall-clock milliseconds: schedules that survive a restart use them */

#define ngx_http_momo_wall_ms()                                              \
    ((uint64_t) (ngx_timeofday())->sec * 1000 + (ngx_timeofday())->msec)


/* the internal locations a momo handler calls, marked by "momo_leg" */

typedef enum {
    NGX_HTTP_MOMO_LEG_TOKEN = 0,
    NGX_HTTP_MOMO_LEG_REQUESTTOPAY,
    NGX_HTTP_MOMO_LEG_STATUS,
    NGX_HTTP_MOMO_LEG_DISBURSEMENT,         /* refund, transfer: POST */
    NGX_HTTP_MOMO_LEG_DISBURSEMENT_STATUS,  /* their GETs */
    NGX_HTTP_MOMO_LEG_MAX,
    NGX_HTTP_MOMO_LEG_NOTIFY = NGX_HTTP_MOMO_LEG_MAX
} ngx_http_momo_leg_e;


/* MTN's products: each has its own credentials and token */

typedef enum {
    NGX_HTTP_MOMO_COLLECTION = 0,
    NGX_HTTP_MOMO_DISBURSEMENT,
    NGX_HTTP_MOMO_PRODUCTS
} ngx_http_momo_product_e;


/* what an operation is, for records, callbacks and notify */

typedef enum {
    NGX_HTTP_MOMO_KIND_PAYMENT = 0,
    NGX_HTTP_MOMO_KIND_REFUND,
    NGX_HTTP_MOMO_KIND_PAYOUT
} ngx_http_momo_kind_e;


/* payment states, as the client sees them */

typedef enum {
    NGX_HTTP_MOMO_ST_UNKNOWN = 0,    /* sent, MTN's answer not known */
    NGX_HTTP_MOMO_ST_PENDING,
    NGX_HTTP_MOMO_ST_SUCCESSFUL,
    NGX_HTTP_MOMO_ST_FAILED,
    NGX_HTTP_MOMO_ST_NOT_FOUND       /* MTN answered 404 */
} ngx_http_momo_state_e;

#define ngx_http_momo_state_final(s)                                         \
    ((s) == NGX_HTTP_MOMO_ST_SUCCESSFUL || (s) == NGX_HTTP_MOMO_ST_FAILED)


typedef struct {
    ngx_shm_zone_t             *shm_zone;
    ngx_uint_t                  handlers;
    ngx_array_t                 accounts;       /* of ngx_http_momo_use_t */
    ngx_int_t                   var_index[16];  /* NGX_ERROR: unused */
    ngx_uint_t                  vars_used;

    /* momo_reconcile AGE...: ms after acceptance; the last is the limit */
    ngx_msec_t                  reconcile[NGX_HTTP_MOMO_RECONCILE_MAX];
    ngx_uint_t                  nreconcile;     /* 0: off */
    ngx_uint_t                  reconcile_set;

    /* momo_notify_retry FIRST MAX TOTAL */
    ngx_msec_t                  notify_first;
    ngx_msec_t                  notify_max;
    ngx_msec_t                  notify_total;

    ngx_str_t                   state;          /* momo_zone state=PATH */
} ngx_http_momo_main_conf_t;


typedef struct {
    ngx_str_t                   legs[NGX_HTTP_MOMO_LEG_MAX];
    ngx_http_core_loc_conf_t   *leg_clcf[NGX_HTTP_MOMO_LEG_MAX];
    ngx_msec_t                  leg_time[NGX_HTTP_MOMO_LEG_MAX];
    ngx_uint_t                  leg_mapped;     /* bits, per worker */
} ngx_http_momo_srv_conf_t;


/* a call's deadline: its location's proxy timeouts and this margin */
#define NGX_HTTP_MOMO_CALL_MARGIN  1000     /* ms */

/* ... when the location is not known: nginx's default proxy timeouts */
#define NGX_HTTP_MOMO_CALL_TIME    (3 * 60000 + NGX_HTTP_MOMO_CALL_MARGIN)


typedef enum {
    NGX_HTTP_MOMO_ACC_API_USER = 0,
    NGX_HTTP_MOMO_ACC_API_KEY,
    NGX_HTTP_MOMO_ACC_SUBSCRIPTION_KEY,
    NGX_HTTP_MOMO_ACC_TARGET_ENVIRONMENT,
    NGX_HTTP_MOMO_ACC_BASE_URL,
    NGX_HTTP_MOMO_ACC_CALLBACK_URL,
    NGX_HTTP_MOMO_ACC_CALLBACK_SECRET,
    NGX_HTTP_MOMO_ACC_DISB_API_USER,
    NGX_HTTP_MOMO_ACC_DISB_API_KEY,
    NGX_HTTP_MOMO_ACC_DISB_SUBSCRIPTION_KEY,
    NGX_HTTP_MOMO_ACC_MAX
} ngx_http_momo_acc_e;


typedef struct ngx_http_momo_token_copy_s  ngx_http_momo_token_copy_t;


/* one product's account, derived at merge time */

typedef struct {
    ngx_str_t                   name;           /* "collection", ... */
    ngx_str_t                  *api_user;
    ngx_str_t                  *subscription_key;
    ngx_str_t                   basic_auth;     /* "Basic base64(u:k)" */
    ngx_str_t                   token_key;      /* base|user|env|product */
    ngx_uint_t                  index;          /* ngx_http_momo_product_e */
    /* this worker's copy of the token, made at first use */
    ngx_http_momo_token_copy_t *copy;
} ngx_http_momo_product_t;


typedef struct {
    /* explicit directives, then values read by momo_env_file */
    ngx_str_t                   acc[NGX_HTTP_MOMO_ACC_MAX];
    ngx_str_t                   env[NGX_HTTP_MOMO_ACC_MAX];

    ngx_str_t                   currency;
    ngx_flag_t                  callback_verify;
    ngx_str_t                   notify;
    ngx_msec_t                  notify_time;    /* a delivery's deadline */
    ngx_str_t                   notify_secret;
    ngx_msec_t                  token_wait;
    ngx_flag_t                  check_payer;
    ngx_int_t                   status_rate;    /* MTN status calls per s */

    /* derived at merge time */
    ngx_http_momo_product_t     product[NGX_HTTP_MOMO_PRODUCTS];
    ngx_str_t                   secret;         /* the callback secret */

    uint32_t                    account;        /* crc32 of token_key */

    ngx_uint_t                  handler;        /* 0 or a handler type */
    ngx_uint_t                  handler_products;   /* bit per product */
    ngx_uint_t                  handler_kind;   /* ngx_http_momo_kind_e */
    u_char                     *handler_file;
    ngx_uint_t                  handler_line;
    ngx_http_conf_ctx_t        *conf_ctx;       /* the handler's location */
} ngx_http_momo_loc_conf_t;


/* a handler location's account and server, checked once all is parsed */

typedef struct {
    ngx_http_momo_loc_conf_t   *mlcf;
    ngx_http_momo_srv_conf_t   *mscf;
    ngx_http_core_srv_conf_t   *cscf;
} ngx_http_momo_use_t;


/* the client's payment, as validated */

typedef struct {
    ngx_str_t                   amount;
    ngx_str_t                   currency;
    ngx_str_t                   external_id;
    ngx_str_t                   payer_message;
    ngx_str_t                   payee_note;
    ngx_str_t                   phone;          /* digits only */
    ngx_str_t                   reference_id;   /* a refund's payment */
} ngx_http_momo_payment_t;


typedef struct {
    ngx_uint_t                  status;         /* HTTP status to answer */
    ngx_str_t                   code;
    ngx_str_t                   message;
    unsigned                    retryable:1;
} ngx_http_momo_error_t;


/* the fields of any MTN answer the module reads */

typedef struct {
    ngx_str_t                   status;
    ngx_str_t                   reason;         /* string or {code} */
    ngx_str_t                   amount;
    ngx_str_t                   currency;
    ngx_str_t                   external_id;
    ngx_str_t                   financial_transaction_id;
    ngx_str_t                   payer;          /* payer.partyId */
    ngx_str_t                   code;           /* "code" or "error" */
    ngx_str_t                   message;
    ngx_int_t                   status_code;    /* "statusCode", or -1 */
    ngx_str_t                   access_token;
    ngx_int_t                   expires_in;     /* or -1 */
    ngx_str_t                   balance;        /* availableBalance */
    ngx_int_t                   result;         /* accountholder: -1, 0, 1 */
} ngx_http_momo_mtn_body_t;


/* JSON output */

typedef enum {
    NGX_HTTP_MOMO_JSON_STRING = 0,  /* escaped and quoted */
    NGX_HTTP_MOMO_JSON_STRING_OR_NULL,  /* null when empty */
    NGX_HTTP_MOMO_JSON_RAW,         /* number, true, false, null, object */
    NGX_HTTP_MOMO_JSON_PLAIN        /* quoted: the module's own text (ids,
                                       states, messages), never escaped */
} ngx_http_momo_json_type_e;


typedef struct {
    ngx_str_t                   key;
    ngx_str_t                   value;
    ngx_http_momo_json_type_e   type;
} ngx_http_momo_json_field_t;


/* a payment in the shared zone; fixed size, copied in and out under lock */

typedef struct {
    u_char                      reference_id[NGX_HTTP_MOMO_UUID_LEN];
    u_char                      state;          /* ngx_http_momo_state_e */
    u_char                      accepted;       /* MTN took the POST */
    u_char                      notified;       /* 0 no, 1 sending, 2 done */
    u_char                      kind;           /* ngx_http_momo_kind_e */
    uint32_t                    account;        /* 0 or the loc's account */

    u_char                      amount_len;
    u_char                      currency_len;
    u_char                      phone_len;
    u_char                      external_id_len;
    u_char                      reason_len;
    u_char                      fin_len;

    u_char                      amount[32];
    u_char                      currency[8];
    u_char                      phone[16];
    u_char                      external_id[64];
    u_char                      reason[64];
    u_char                      financial_transaction_id[64];

    time_t                      checked_at;     /* MTN's last word on it */
} ngx_http_momo_record_t;


/* a refund or a payout in the ledger of the zone */

typedef enum {
    NGX_HTTP_MOMO_OP_NEW = 0,
    NGX_HTTP_MOMO_OP_SENDING,       /* a request is sending it now */
    NGX_HTTP_MOMO_OP_ACCEPTED,      /* MTN has it */
    NGX_HTTP_MOMO_OP_UNKNOWN,       /* sent, MTN's answer not known */
    NGX_HTTP_MOMO_OP_RELEASED       /* MTN refused it, or it failed */
} ngx_http_momo_op_state_e;


typedef struct {
    u_char                     *ref;
    u_char                     *parent;         /* a refund's payment */
    ngx_uint_t                  kind;
    int64_t                     amount;         /* hundredths */
    int64_t                     total;          /* the payment's amount */
    ngx_str_t                   currency;
    ngx_str_t                   phone;          /* a payout's payee */

    ngx_uint_t                  state;          /* what the ledger had */
    int64_t                     refunded;       /* reserved before it */
    time_t                      sent;           /* its last try */
} ngx_http_momo_op_t;


/* counters in the shared zone, for momo_metrics */

typedef enum {
    NGX_HTTP_MOMO_PAY_ACCEPTED = 0,     /* MTN answered 202 */
    NGX_HTTP_MOMO_PAY_REPLAYED,         /* idempotent retry answered */
    NGX_HTTP_MOMO_PAY_INVALID,          /* refused before MTN */
    NGX_HTTP_MOMO_PAY_CONFLICT,         /* key reused (422) or in flight */
    NGX_HTTP_MOMO_PAY_REJECTED,         /* MTN refused it */
    NGX_HTTP_MOMO_PAY_AUTH_FAILED,
    NGX_HTTP_MOMO_PAY_TIMEOUT,          /* outcome unknown */
    NGX_HTTP_MOMO_PAY_UNAVAILABLE,      /* no token */
    NGX_HTTP_MOMO_PAY_MAX
} ngx_http_momo_pay_result_e;


typedef enum {
    NGX_HTTP_MOMO_CB_ACCEPTED = 0,
    NGX_HTTP_MOMO_CB_DUPLICATE,
    NGX_HTTP_MOMO_CB_FORBIDDEN,
    NGX_HTTP_MOMO_CB_INVALID,
    NGX_HTTP_MOMO_CB_MAX
} ngx_http_momo_cb_result_e;


#define NGX_HTTP_MOMO_LATENCY_BUCKETS  10

typedef struct {
    ngx_atomic_t                payments[NGX_HTTP_MOMO_PAY_MAX];
    ngx_atomic_t                refunds[NGX_HTTP_MOMO_PAY_MAX];
    ngx_atomic_t                payouts[NGX_HTTP_MOMO_PAY_MAX];
    ngx_atomic_t                calls[NGX_HTTP_MOMO_LEG_MAX + 1][600];
    ngx_atomic_t                latency[NGX_HTTP_MOMO_LEG_MAX + 1]
                                       [NGX_HTTP_MOMO_LATENCY_BUCKETS];
    ngx_atomic_t                latency_sum_ms[NGX_HTTP_MOMO_LEG_MAX + 1];
    ngx_atomic_t                latency_count[NGX_HTTP_MOMO_LEG_MAX + 1];
    ngx_atomic_t                token_refresh_ok;
    ngx_atomic_t                token_refresh_failed;
    ngx_atomic_t                token_hits;
    ngx_atomic_t                callbacks[NGX_HTTP_MOMO_CB_MAX];
    ngx_atomic_t                cache_hits;
    ngx_atomic_t                cache_misses;
    ngx_atomic_t                cache_evictions;
    ngx_atomic_t                notify_ok;
    ngx_atomic_t                notify_failed;
    ngx_atomic_t                budget_granted;
    ngx_atomic_t                budget_refused;
} ngx_http_momo_counters_t;


/*
 * The step protocol (ngx_http_momo_request.c).  A step returns
 * NGX_HTTP_MOMO_SUSPENDED when it has started a call (ngx_http_momo_call)
 * or a timer (ngx_http_momo_wait): the request resumes in ctx->next.  Any
 * other value ends the request: the answer's output result (NGX_OK,
 * NGX_AGAIN when buffered, NGX_ERROR), or NGX_ERROR / an HTTP status when
 * no answer was sent.  NGX_AGAIN never means "waiting for MTN".
 */

#define NGX_HTTP_MOMO_SUSPENDED  NGX_DONE

typedef enum {
    NGX_HTTP_MOMO_RUNNING = 0,          /* a step runs */
    NGX_HTTP_MOMO_CALLING,              /* suspended: a call is out */
    NGX_HTTP_MOMO_WAITING,              /* suspended: ctx->wait is set */
    NGX_HTTP_MOMO_FINALIZED
} ngx_http_momo_req_state_e;


/* the reconciler's, the notify schedule's and the state file's counters */

typedef enum {
    NGX_HTTP_MOMO_SWEEP_FINAL = 0,      /* MTN gave the final status */
    NGX_HTTP_MOMO_SWEEP_PENDING,        /* still pending */
    NGX_HTTP_MOMO_SWEEP_ERROR,          /* no usable answer from MTN */
    NGX_HTTP_MOMO_SWEEP_DEFERRED,       /* over the status budget */
    NGX_HTTP_MOMO_SWEEP_GIVEN_UP,       /* past the last momo_reconcile age */
    NGX_HTTP_MOMO_SWEEP_MAX
} ngx_http_momo_sweep_result_e;


typedef enum {
    NGX_HTTP_MOMO_STATE_LOADED = 0,
    NGX_HTTP_MOMO_STATE_NONE,           /* no file yet */
    NGX_HTTP_MOMO_STATE_CORRUPT,        /* truncated or damaged, set aside */
    NGX_HTTP_MOMO_STATE_VERSION,        /* another version's, set aside */
    NGX_HTTP_MOMO_STATE_LOAD_MAX
} ngx_http_momo_state_load_e;


typedef struct {
    ngx_atomic_t                rounds;
    ngx_atomic_t                takeovers;
    ngx_atomic_t                results[NGX_HTTP_MOMO_SWEEP_MAX];
    ngx_atomic_t                budget_used;    /* the sweep's status calls */
    ngx_atomic_t                notify_sent;    /* deliveries it started */
    ngx_atomic_t                notify_given_up;
    ngx_atomic_t                state_writes_ok;
    ngx_atomic_t                state_writes_failed;
    ngx_atomic_t                state_loads[NGX_HTTP_MOMO_STATE_LOAD_MAX];
    ngx_atomic_t                state_records;  /* read by the last load */
} ngx_http_momo_sweep_counters_t;


/* what momo_metrics reads by walking the zone */

#define NGX_HTTP_MOMO_AGE_BUCKETS  6

typedef struct {
    ngx_uint_t                  pending[NGX_HTTP_MOMO_AGE_BUCKETS];
    ngx_uint_t                  notify_pending;
    uint64_t                    oldest_undelivered;     /* age, ms */
} ngx_http_momo_zone_stats_t;


typedef struct ngx_http_momo_ctx_s  ngx_http_momo_ctx_t;

typedef ngx_int_t (*ngx_http_momo_step_pt)(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
typedef void (*ngx_http_momo_finalize_pt)(ngx_http_request_t *r,
    ngx_int_t rc);


/* a refund or a payout in flight (ngx_http_momo_disb.c) */

typedef struct {
    ngx_http_momo_op_t          op;
    ngx_str_t                   ref;            /* the operation's */
    ngx_str_t                   payment_ref;    /* a refund's payment */
    ngx_str_t                   body;           /* the POST's JSON */
    ngx_http_momo_step_pt       start;          /* after the body is read */
    ngx_uint_t                  lease;          /* the ledger entry's stamp */
    unsigned                    posted:1;       /* MTN may have the POST */
} ngx_http_momo_disb_t;


/* one call to an internal location: lives in the main request's pool */

typedef struct {
    ngx_http_momo_leg_e         leg;
    ngx_uint_t                  method;         /* NGX_HTTP_GET/POST */
    ngx_str_t                   uri;            /* internal location */
    ngx_str_t                   url;            /* $momo_leg_url */
    ngx_str_t                   authorization;
    ngx_str_t                   reference_id;
    ngx_str_t                   callback_url;
    ngx_str_t                   body;
    ngx_array_t                *headers;        /* of ngx_table_elt_t */
    ngx_http_momo_loc_conf_t   *mlcf;
    ngx_http_momo_product_t    *product;

    ngx_uint_t                  status;         /* 0: no answer */
    ngx_int_t                   rc;             /* nginx's, on failure */
    ngx_str_t                   response;
    ngx_msec_t                  start;
    ngx_http_momo_mtn_body_t   *parsed;         /* token calls */
    ngx_uint_t                  token_gen;
    ngx_uint_t                  lease;          /* its lease's serial */

    ngx_http_request_t         *sr;
    void                      **loc_conf;       /* entered directly */
    ngx_event_t                 deadline;       /* the call's time limit */
    size_t                      max;            /* of the answer's body */
    unsigned                    limit_known:1;
    unsigned                    too_big:1;
    unsigned                    complete:1;     /* the last buffer came */
    unsigned                    done:1;
} ngx_http_momo_call_t;


struct ngx_http_momo_ctx_s {
    ngx_http_momo_loc_conf_t   *mlcf;
    ngx_shm_zone_t             *zone;
    ngx_uint_t                  state;          /* ngx_http_momo_req_... */
    ngx_http_momo_product_t    *product;        /* the token's, the calls' */
    ngx_uint_t                  kind;           /* ngx_http_momo_kind_e */
    ngx_http_momo_disb_t       *disb;           /* a refund or a payout */
    ngx_http_momo_step_pt       next;           /* after the call, or wait */
    ngx_http_momo_call_t       *call;
    ngx_event_t                 wait;
    ngx_msec_t                  deadline;
    ngx_int_t                   out;            /* the answer's output rc */

    /* leases held in the zone, by their serial; 0: none */
    ngx_uint_t                  query_lease;
    ngx_uint_t                  notify_lease;
    ngx_uint_t                  token_lease;

    /* set for a request without a client (a timer's fake request) */
    ngx_http_momo_finalize_pt   finalize;
    void                       *timer_data;     /* the timer's item */
    ngx_uint_t                  budget_reserve; /* left to others: sweep */

    ngx_str_t                   bearer;         /* "Bearer <token>" */
    ngx_uint_t                  token_gen;
    ngx_http_momo_step_pt       after_token;
    ngx_http_momo_step_pt       after_query;
    ngx_http_momo_step_pt       after_notify;
    ngx_http_momo_step_pt       after_holder;
    ngx_msec_t                  query_interval;
    ngx_uint_t                  rechecks;

    ngx_http_momo_payment_t     payment;
    ngx_http_momo_record_t      rec;
    ngx_str_t                   reference_id;
    ngx_str_t                   idempotency_key;
    ngx_uint_t                  pay_owner;      /* 0: no payment lease */

    /* what the variables show */
    ngx_str_t                   status;         /* pending, ... */
    ngx_str_t                   error;          /* error code */
    ngx_uint_t                  upstream_status;
    ngx_uint_t                  answer_status;  /* the answer's HTTP status */
    ngx_str_t                   token_source;   /* HIT, MISS, REFRESH */

    ngx_event_handler_pt        client_read;    /* while detached */

    unsigned                    pay:1;
    unsigned                    detached:1;
    unsigned                    responded:1;
    unsigned                    headless:1;     /* answers are not sent */
    unsigned                    token_retried:1;
    unsigned                    pay_fresh:1;    /* the payload is ours */
    unsigned                    pay_sent:1;     /* MTN may have our payload */
    unsigned                    stale:1;        /* MTN was not asked */
    unsigned                    over_budget:1;  /* ... for want of budget */
};


/* ngx_http_momo_module.c */
extern ngx_module_t  ngx_http_momo_module;

/* ngx_http_momo_crypto.c: UUIDs, HMAC, Basic credentials */
void ngx_http_momo_hmac_free(void);
ngx_int_t ngx_http_momo_uuid_random(u_char *out);
ngx_int_t ngx_http_momo_uuid_derive(ngx_str_t *secret, ngx_str_t *material,
    u_char *out);
ngx_int_t ngx_http_momo_is_uuid(ngx_str_t *s);
ngx_int_t ngx_http_momo_callback_token(ngx_str_t *secret, ngx_str_t *ref,
    u_char *out);
ngx_int_t ngx_http_momo_token_equal(u_char *a, u_char *b, size_t len);
ngx_int_t ngx_http_momo_basic_auth(ngx_pool_t *pool, ngx_str_t *user,
    ngx_str_t *key, ngx_str_t *out);
ngx_int_t ngx_http_momo_hmac_hex(ngx_str_t *key, ngx_str_t *d1,
    ngx_str_t *d2, u_char *hex);

/* ngx_http_momo_json.c: parsing with yajl, output with ngx_escape_json */
ngx_int_t ngx_http_momo_json_payment(ngx_pool_t *pool, u_char *data,
    size_t len, ngx_http_momo_payment_t *p, ngx_http_momo_error_t *err);
ngx_int_t ngx_http_momo_json_mtn(ngx_pool_t *pool, u_char *data, size_t len,
    ngx_http_momo_mtn_body_t *b);
ngx_int_t ngx_http_momo_json_render(ngx_pool_t *pool,
    ngx_http_momo_json_field_t *fields, ngx_uint_t n, ngx_str_t *out);
ngx_int_t ngx_http_momo_json_render_line(ngx_pool_t *pool,
    ngx_http_momo_json_field_t *fields, ngx_uint_t n, ngx_str_t *out);

/* ngx_http_momo_validate.c */
ngx_int_t ngx_http_momo_validate_payment(ngx_pool_t *pool,
    ngx_http_momo_payment_t *p, ngx_str_t *currency,
    ngx_http_momo_error_t *err);
ngx_int_t ngx_http_momo_validate_idempotency_key(ngx_str_t *key);
ngx_int_t ngx_http_momo_validate_refund(ngx_pool_t *pool,
    ngx_http_momo_payment_t *p, ngx_str_t *currency,
    ngx_http_momo_error_t *err);
int64_t ngx_http_momo_amount_hundredths(ngx_str_t *amount);
void ngx_http_momo_error_set(ngx_http_momo_error_t *err, ngx_uint_t status,
    char *code, char *message);

/*
 * ngx_http_momo_shm*.c: zone, token lease, payment records, counters.
 * A lease is stamped with ngx_pid and the holder's serial
 * (ngx_http_momo_lease_serial); releasing it checks both.
 */
ngx_int_t ngx_http_momo_shm_init_zone(ngx_shm_zone_t *shm_zone, void *data);
void ngx_http_momo_shm_populate(ngx_shm_t *shm, ngx_log_t *log);
ngx_int_t ngx_http_momo_token_acquire(ngx_shm_zone_t *zone,
    ngx_http_momo_product_t *pr, ngx_msec_t lease, ngx_uint_t serial,
    ngx_pool_t *pool, ngx_str_t *token, ngx_uint_t *gen);
ngx_int_t ngx_http_momo_token_store(ngx_shm_zone_t *zone, ngx_str_t *key,
    ngx_str_t *token, time_t ttl, ngx_uint_t *gen);
void ngx_http_momo_token_release(ngx_shm_zone_t *zone, ngx_str_t *key,
    ngx_uint_t serial);
void ngx_http_momo_token_drop(ngx_shm_zone_t *zone, ngx_str_t *key,
    ngx_uint_t gen);
ngx_int_t ngx_http_momo_record_get(ngx_shm_zone_t *zone, u_char *ref,
    ngx_http_momo_record_t *rec);
ngx_int_t ngx_http_momo_record_update(ngx_shm_zone_t *zone,
    ngx_http_momo_record_t *rec, ngx_uint_t query_lease);
ngx_int_t ngx_http_momo_record_claim(ngx_shm_zone_t *zone,
    ngx_http_momo_record_t *rec, ngx_msec_t lease, ngx_uint_t *owner,
    ngx_uint_t *fresh);
void ngx_http_momo_record_release(ngx_shm_zone_t *zone, u_char *ref,
    ngx_uint_t owner, ngx_uint_t forget);
ngx_int_t ngx_http_momo_record_query(ngx_shm_zone_t *zone, u_char *ref,
    ngx_msec_t lease, ngx_uint_t serial, ngx_msec_t interval,
    ngx_http_momo_record_t *rec);
void ngx_http_momo_record_unquery(ngx_shm_zone_t *zone, u_char *ref,
    ngx_uint_t serial);
ngx_int_t ngx_http_momo_record_answer(ngx_shm_zone_t *zone,
    ngx_http_momo_record_t *rec, ngx_uint_t query_lease);
ngx_int_t ngx_http_momo_record_notify(ngx_shm_zone_t *zone, u_char *ref,
    ngx_msec_t lease, ngx_uint_t serial);
void ngx_http_momo_record_notified(ngx_shm_zone_t *zone, u_char *ref,
    ngx_uint_t ok, ngx_uint_t serial);
ngx_http_momo_counters_t *ngx_http_momo_counters(ngx_shm_zone_t *zone);

/* ngx_http_momo_shm_ledger.c: refunds and payouts */
ngx_int_t ngx_http_momo_ledger_begin(ngx_shm_zone_t *zone,
    ngx_http_momo_op_t *op, ngx_msec_t lease, ngx_uint_t serial);
void ngx_http_momo_ledger_end(ngx_shm_zone_t *zone, u_char *ref,
    ngx_uint_t state, ngx_uint_t serial);
ngx_int_t ngx_http_momo_ledger_resend(ngx_shm_zone_t *zone, u_char *ref,
    ngx_msec_t lease, ngx_uint_t serial);
/*
 * ngx_http_momo_shm_budget.c: the status budget of an MTN account, shared
 * by all workers.  "account" is the account's key in the zone (its
 * product's token_key, the key of its token).  NGX_OK: one status query to
 * MTN may be sent now, and is counted; NGX_BUSY: not within this second,
 * do not call MTN (answer from the zone, or a retryable 503).  No window
 * of 1.1 s ever holds more than "rate" grants (MTN counts per second; the
 * margin is for the network).  "reserve" is how many grants of the
 * window must stay for others after this one: 0 for
 * clients (polls, callback verification); a background sweep passes a
 * reserve, so that it uses only what the clients leave.  Never blocks.
 */
ngx_int_t ngx_http_momo_budget_take(ngx_shm_zone_t *zone,
    ngx_str_t *account, ngx_uint_t rate, ngx_uint_t reserve);
ngx_int_t ngx_http_momo_token_info(ngx_shm_zone_t *zone, ngx_uint_t i,
    time_t *expires_in, ngx_uint_t *gen);
void ngx_http_momo_count_call(ngx_shm_zone_t *zone, ngx_uint_t leg,
    ngx_uint_t status, ngx_msec_t elapsed);

/* ngx_http_momo_shm_sweep.c: the sweep lease, what is due, zone stats */
ngx_http_momo_sweep_counters_t *ngx_http_momo_sweep_counters(
    ngx_shm_zone_t *zone);
void ngx_http_momo_zone_stats(ngx_shm_zone_t *zone, uint64_t now,
    ngx_uint_t notify, ngx_http_momo_zone_stats_t *st);

/* ngx_http_momo_reconcile.c: the per-worker timer, sweeps, notifications */
ngx_int_t ngx_http_momo_reconcile_init_process(ngx_cycle_t *cycle);
void ngx_http_momo_reconcile_exit_process(ngx_cycle_t *cycle);

/* ngx_http_momo_state.c: momo_zone state=PATH */
ngx_int_t ngx_http_momo_state_save(ngx_shm_zone_t *zone, ngx_str_t *path,
    void *thread_pool, ngx_log_t *log);
void ngx_http_momo_state_exit(ngx_shm_zone_t *zone, ngx_str_t *path,
    ngx_log_t *log);
ngx_atomic_uint_t ngx_http_momo_state_changes(ngx_shm_zone_t *zone);

/* ngx_http_momo_timer.c: a request without a client, for the sweep */
ngx_http_request_t *ngx_http_momo_fake_request(ngx_http_conf_ctx_t *conf,
    ngx_log_t *log);
void ngx_http_momo_fake_close(ngx_http_request_t *r);

/* a metric family's "# HELP" and "# TYPE" lines (ngx_http_momo_metrics.c) */
u_char *ngx_http_momo_metrics_family(u_char *p, char *name, char *type,
    char *help);

/* ngx_http_momo_metrics_sweep.c */
size_t ngx_http_momo_metrics_sweep_size(void);
u_char *ngx_http_momo_metrics_sweep(u_char *p,
    ngx_http_momo_main_conf_t *mmcf);

/* ngx_http_momo_metrics.c */
ngx_int_t ngx_http_momo_metrics_handler(ngx_http_request_t *r);

/*
 * ngx_http_momo_request.c: the request lifecycle.  Entry points:
 *   - a content handler creates the context (ngx_http_momo_ctx_create,
 *     which also adds the pool cleanup that releases the leases), then
 *     returns ngx_http_momo_start() or ngx_http_momo_start_with_body();
 *   - a request without a client (a timer's fake connection and request,
 *     as lua-nginx-module's ngx.timer makes them) creates the context,
 *     sets ctx->headless (answers are recorded in ctx->answer_status and
 *     ctx->error, never sent) and ctx->finalize (called with the final
 *     rc instead of ngx_http_finalize_request, to free the fake request),
 *     sets r->write_event_handler = ngx_http_momo_resume, and runs a step
 *     with ngx_http_momo_run(), e.g. one that returns
 *     ngx_http_momo_query(r, ctx, next).
 * A step ends the request by returning; nothing else finalizes it.
 */
ngx_http_momo_ctx_t *ngx_http_momo_ctx_create(ngx_http_request_t *r);
ngx_uint_t ngx_http_momo_lease_serial(void);
ngx_msec_t ngx_http_momo_upstream_time(ngx_http_upstream_conf_t *conf);
ngx_msec_t ngx_http_momo_call_time(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_uint_t leg);
ngx_msec_t ngx_http_momo_query_time(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
ngx_msec_t ngx_http_momo_send_time(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
ngx_int_t ngx_http_momo_start(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_step_pt step);
ngx_int_t ngx_http_momo_start_with_body(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_http_momo_step_pt step);
void ngx_http_momo_run(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_step_pt step);
void ngx_http_momo_resume(ngx_http_request_t *r);
ngx_int_t ngx_http_momo_wait(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_msec_t delay, ngx_http_momo_step_pt next);
void ngx_http_momo_detach(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx);
void ngx_http_momo_finalize(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_int_t rc);
void ngx_http_momo_release(ngx_http_momo_ctx_t *ctx);

/* ngx_http_momo_call.c: subrequests to the internal locations */
ngx_int_t ngx_http_momo_call(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_call_t *call, ngx_http_momo_step_pt next);
ngx_http_momo_call_t *ngx_http_momo_call_create(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_http_momo_leg_e leg);
void ngx_http_momo_call_cancel(ngx_http_momo_call_t *call);
ngx_int_t ngx_http_momo_call_init(ngx_conf_t *cf);

/* ngx_http_momo_token.c: the token step in front of every MTN call */
ngx_int_t ngx_http_momo_with_token(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_http_momo_step_pt next);
void ngx_http_momo_token_settle(ngx_http_request_t *sr,
    ngx_http_momo_call_t *call);
ngx_int_t ngx_http_momo_token_rejected(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_http_momo_step_pt retry);
ngx_int_t ngx_http_momo_url(ngx_pool_t *pool, ngx_http_momo_loc_conf_t *mlcf,
    ngx_str_t *path, ngx_str_t *ref, ngx_str_t *url);
ngx_int_t ngx_http_momo_bearer(ngx_pool_t *pool, ngx_str_t *token,
    ngx_str_t *out);
ngx_int_t ngx_http_momo_product_url(ngx_pool_t *pool,
    ngx_http_momo_ctx_t *ctx, ngx_str_t *path, ngx_str_t *ref,
    ngx_str_t *url);
char *ngx_http_momo_product_directive(ngx_http_momo_product_t *product,
    ngx_uint_t what);

/* ngx_http_momo_reply.c: JSON answers */
ngx_int_t ngx_http_momo_reply(ngx_http_request_t *r, ngx_uint_t status,
    ngx_http_momo_json_field_t *fields, ngx_uint_t n);
ngx_int_t ngx_http_momo_reply_error(ngx_http_request_t *r,
    ngx_http_momo_error_t *err);
ngx_uint_t ngx_http_momo_record_fields(ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_json_field_t *f);
ngx_int_t ngx_http_momo_read_body(ngx_http_request_t *r, size_t max,
    ngx_str_t *body);
ngx_int_t ngx_http_momo_reply_payment(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_uint_t status);
ngx_int_t ngx_http_momo_fail(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_error_t *err, ngx_uint_t result);
ngx_int_t ngx_http_momo_header(ngx_http_request_t *r, char *name,
    ngx_str_t *value);
void ngx_http_momo_count_payment(ngx_http_request_t *r, ngx_uint_t result);

/* handlers */
ngx_int_t ngx_http_momo_pay_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_momo_status_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_momo_callback_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_momo_refund_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_momo_payout_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_momo_balance_handler(ngx_http_request_t *r);
void ngx_http_momo_pay_release(ngx_http_momo_ctx_t *ctx, ngx_uint_t forget);

/* ngx_http_momo_status.c: the status query shared by status and callback;
 * ngx_http_momo_mtn.c: what MTN's answers mean */
ngx_int_t ngx_http_momo_query(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_step_pt next);
ngx_int_t ngx_http_momo_status_call(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_http_momo_step_pt next);
ngx_int_t ngx_http_momo_status_recheck(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_http_momo_step_pt next);
ngx_int_t ngx_http_momo_status_rechecked(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_http_momo_mtn_body_t *b);
ngx_int_t ngx_http_momo_mtn_error(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_http_momo_mtn_body_t *b);
ngx_uint_t ngx_http_momo_mtn_refused(ngx_str_t *code);
void ngx_http_momo_record_from_mtn(ngx_http_momo_record_t *rec,
    ngx_http_momo_mtn_body_t *b);
ngx_str_t *ngx_http_momo_state_name(ngx_uint_t state);

/* ngx_http_momo_disb.c: what payments, refunds and payouts share */
ngx_http_momo_leg_e ngx_http_momo_op_leg(ngx_http_momo_ctx_t *ctx,
    ngx_uint_t get);
ngx_str_t *ngx_http_momo_op_path(ngx_uint_t kind, ngx_uint_t status);
ngx_str_t *ngx_http_momo_kind_name(ngx_uint_t kind);
void ngx_http_momo_op_kind(ngx_http_momo_ctx_t *ctx, ngx_uint_t kind);
ngx_int_t ngx_http_momo_disb_handler(ngx_http_request_t *r,
    ngx_http_momo_step_pt start);
ngx_int_t ngx_http_momo_disb_reference(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
ngx_int_t ngx_http_momo_disb_begin(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
ngx_int_t ngx_http_momo_disb_refuse(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_uint_t status, char *code, char *message);
void ngx_http_momo_disb_release(ngx_http_momo_ctx_t *ctx);
ngx_int_t ngx_http_momo_callback_kind(ngx_http_momo_loc_conf_t *mlcf,
    ngx_str_t *ref, u_char *token);
ngx_int_t ngx_http_momo_op_callback_url(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_str_t *out);
void ngx_http_momo_count_op(ngx_http_request_t *r, ngx_uint_t kind,
    ngx_uint_t result);

/* ngx_http_momo_refund.c, ngx_http_momo_payout.c */
ngx_int_t ngx_http_momo_refund_start(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
ngx_int_t ngx_http_momo_payout_start(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);

/* ngx_http_momo_account.c */
ngx_int_t ngx_http_momo_check_holder(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_http_momo_step_pt next);

/* ngx_http_momo_notify.c */
ngx_int_t ngx_http_momo_notify(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_http_momo_step_pt next);
void ngx_http_momo_notify_settle(ngx_http_request_t *sr,
    ngx_http_momo_call_t *call);

/* ngx_http_momo_variables.c */
ngx_int_t ngx_http_momo_add_variables(ngx_conf_t *cf);
ngx_int_t ngx_http_momo_init_variables(ngx_conf_t *cf);
void ngx_http_momo_set_variables(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);


#endif /* _NGX_HTTP_MOMO_MODULE_H_INCLUDED_ */
