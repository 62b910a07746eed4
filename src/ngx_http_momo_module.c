
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * Directives, configuration and its checks.  Everything a request needs
 * from MTN's account is resolved here, at configuration time, so that
 * "nginx -t" refuses what could only fail later.
 */


#include "ngx_http_momo_module.h"
#include "momo_env.h"


/* the timeouts of the internal locations are the proxy module's */
extern ngx_module_t  ngx_http_proxy_module;


#define NGX_HTTP_MOMO_H_PAY       1
#define NGX_HTTP_MOMO_H_STATUS    2
#define NGX_HTTP_MOMO_H_CALLBACK  3
#define NGX_HTTP_MOMO_H_METRICS   4
#define NGX_HTTP_MOMO_H_REFUND    5
#define NGX_HTTP_MOMO_H_PAYOUT    6
#define NGX_HTTP_MOMO_H_OP_STATUS 7
#define NGX_HTTP_MOMO_H_BALANCE   8

#define NGX_HTTP_MOMO_SECRET_MIN  32


typedef struct {
    ngx_str_t                   environment;
    ngx_str_t                   currency;
} ngx_http_momo_env_currency_t;


static ngx_int_t ngx_http_momo_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_momo_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_momo_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_momo_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_momo_create_srv_conf(ngx_conf_t *cf);
static void *ngx_http_momo_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_momo_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_momo_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_momo_add_zone(ngx_conf_t *cf,
    ngx_http_momo_main_conf_t *mmcf, size_t size);
static char *ngx_http_momo_zone_state(ngx_conf_t *cf,
    ngx_http_momo_main_conf_t *mmcf, ngx_str_t *value);
static char *ngx_http_momo_reconcile(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_momo_notify_retry(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_momo_init_process(ngx_cycle_t *cycle);
static void ngx_http_momo_exit_process(ngx_cycle_t *cycle);
static void ngx_http_momo_exit_master(ngx_cycle_t *cycle);
static char *ngx_http_momo_env_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_momo_env_parse(ngx_conf_t *cf,
    ngx_http_momo_loc_conf_t *mlcf, ngx_str_t *file, ngx_str_t *text);
static char *ngx_http_momo_handler_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_momo_leg(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_momo_check_account(ngx_conf_t *cf,
    ngx_http_momo_loc_conf_t *conf);
static char *ngx_http_momo_check_user(ngx_conf_t *cf,
    ngx_http_momo_loc_conf_t *conf, ngx_uint_t product);
static char *ngx_http_momo_check_currency(ngx_conf_t *cf,
    ngx_http_momo_loc_conf_t *conf);
static char *ngx_http_momo_check_url(ngx_conf_t *cf, char *name,
    ngx_str_t *url);
static char *ngx_http_momo_derive(ngx_conf_t *cf,
    ngx_http_momo_loc_conf_t *conf);
static char *ngx_http_momo_check_secret(ngx_conf_t *cf,
    ngx_http_momo_loc_conf_t *conf);
static char *ngx_http_momo_derive_product(ngx_conf_t *cf,
    ngx_http_momo_loc_conf_t *conf, ngx_uint_t n);
static ngx_int_t ngx_http_momo_check_legs(ngx_conf_t *cf,
    ngx_http_momo_use_t *use);
static ngx_int_t ngx_http_momo_check_routes(ngx_conf_t *cf,
    ngx_http_momo_main_conf_t *mmcf);
static ngx_int_t ngx_http_momo_routable(ngx_conf_t *cf, ngx_str_t *base,
    ngx_http_core_loc_conf_t *clcf);
static ngx_int_t ngx_http_momo_check_accounts(ngx_conf_t *cf,
    ngx_http_momo_main_conf_t *mmcf);
static ngx_int_t ngx_http_momo_check_notify(ngx_conf_t *cf,
    ngx_http_momo_main_conf_t *mmcf);
static ngx_msec_t ngx_http_momo_location_time(
    ngx_http_core_loc_conf_t *clcf);
static ngx_http_core_loc_conf_t *ngx_http_momo_find_location(
    ngx_http_core_srv_conf_t *cscf, ngx_str_t *uri);
static ngx_str_t *ngx_http_momo_default_currency(ngx_str_t *environment);


static ngx_str_t  ngx_http_momo_acc_directives[] = {
    ngx_string("momo_api_user"),
    ngx_string("momo_api_key"),
    ngx_string("momo_subscription_key"),
    ngx_string("momo_target_environment"),
    ngx_string("momo_base_url"),
    ngx_string("momo_callback_url"),
    ngx_string("momo_callback_secret"),
    ngx_string("momo_disbursement_api_user"),
    ngx_string("momo_disbursement_api_key"),
    ngx_string("momo_disbursement_subscription_key")
};


static ngx_str_t  ngx_http_momo_env_keys[] = {
    ngx_string("MTN_MOMO_API_USER_ID"),
    ngx_string("MTN_MOMO_API_KEY"),
    ngx_string("MTN_MOMO_SUBSCRIPTION_KEY"),
    ngx_string("MTN_MOMO_TARGET_ENVIRONMENT"),
    ngx_string("MTN_MOMO_BASE_URL"),
    ngx_string("MTN_MOMO_CALLBACK_URL"),
    ngx_string("MTN_MOMO_CALLBACK_SECRET"),
    ngx_string("MTN_MOMO_DISBURSEMENT_API_USER_ID"),
    ngx_string("MTN_MOMO_DISBURSEMENT_API_KEY"),
    ngx_string("MTN_MOMO_DISBURSEMENT_SUBSCRIPTION_KEY")
};


static ngx_str_t  ngx_http_momo_leg_names[] = {
    ngx_string("token"),
    ngx_string("requesttopay"),
    ngx_string("status"),
    ngx_string("disbursement"),
    ngx_string("disbursement_status")
};


/* the legs a handler of each product calls */

static ngx_uint_t  ngx_http_momo_product_legs[] = {
    (1 << NGX_HTTP_MOMO_LEG_TOKEN) | (1 << NGX_HTTP_MOMO_LEG_REQUESTTOPAY)
    | (1 << NGX_HTTP_MOMO_LEG_STATUS),
    (1 << NGX_HTTP_MOMO_LEG_TOKEN) | (1 << NGX_HTTP_MOMO_LEG_DISBURSEMENT)
    | (1 << NGX_HTTP_MOMO_LEG_DISBURSEMENT_STATUS)
};


static ngx_str_t  ngx_http_momo_product_names[] = {
    ngx_string("collection"),
    ngx_string("disbursement")
};


/* the credentials of each product: API user, API key, subscription key */

static ngx_uint_t  ngx_http_momo_product_acc[][3] = {
    { NGX_HTTP_MOMO_ACC_API_USER, NGX_HTTP_MOMO_ACC_API_KEY,
      NGX_HTTP_MOMO_ACC_SUBSCRIPTION_KEY },
    { NGX_HTTP_MOMO_ACC_DISB_API_USER, NGX_HTTP_MOMO_ACC_DISB_API_KEY,
      NGX_HTTP_MOMO_ACC_DISB_SUBSCRIPTION_KEY }
};


static ngx_http_momo_env_currency_t  ngx_http_momo_currencies[] = {
    { ngx_string("sandbox"), ngx_string("EUR") },
    { ngx_string("mtncameroon"), ngx_string("XAF") },
    { ngx_string("mtncongo"), ngx_string("XAF") },
    { ngx_string("mtnuganda"), ngx_string("UGX") },
    { ngx_string("mtnghana"), ngx_string("GHS") },
    { ngx_string("mtnivorycoast"), ngx_string("XOF") },
    { ngx_string("mtnbenin"), ngx_string("XOF") },
    { ngx_string("mtnzambia"), ngx_string("ZMW") },
    { ngx_string("mtnswaziland"), ngx_string("SZL") },
    { ngx_string("mtnguineaconakry"), ngx_string("GNF") },
    { ngx_string("mtnsouthafrica"), ngx_string("ZAR") },
    { ngx_string("mtnliberia"), ngx_string("LRD") },
    { ngx_null_string, ngx_null_string }
};


static ngx_conf_num_bounds_t  ngx_http_momo_status_rate_bounds = {
    ngx_conf_check_num_bounds, 1, 1000
};


static ngx_str_t  ngx_http_momo_sandbox = ngx_string("sandbox");
static ngx_str_t  ngx_http_momo_sandbox_url =
    ngx_string("https://sandbox.momodeveloper.mtn.com");
static ngx_str_t  ngx_http_momo_production_url =
    ngx_string("https://proxy.momoapi.mtn.com");


#define ngx_http_momo_acc_slot(i)                                            \
    offsetof(ngx_http_momo_loc_conf_t, acc) + (i) * sizeof(ngx_str_t)


static ngx_command_t  ngx_http_momo_commands[] = {

    { ngx_string("momo_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_momo_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("momo_env_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_momo_env_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("momo_api_user"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      ngx_http_momo_acc_slot(NGX_HTTP_MOMO_ACC_API_USER),
      NULL },

    { ngx_string("momo_api_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      ngx_http_momo_acc_slot(NGX_HTTP_MOMO_ACC_API_KEY),
      NULL },

    { ngx_string("momo_subscription_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      ngx_http_momo_acc_slot(NGX_HTTP_MOMO_ACC_SUBSCRIPTION_KEY),
      NULL },

    { ngx_string("momo_target_environment"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      ngx_http_momo_acc_slot(NGX_HTTP_MOMO_ACC_TARGET_ENVIRONMENT),
      NULL },

    { ngx_string("momo_base_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      ngx_http_momo_acc_slot(NGX_HTTP_MOMO_ACC_BASE_URL),
      NULL },

    { ngx_string("momo_callback_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      ngx_http_momo_acc_slot(NGX_HTTP_MOMO_ACC_CALLBACK_URL),
      NULL },

    { ngx_string("momo_disbursement_api_user"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      ngx_http_momo_acc_slot(NGX_HTTP_MOMO_ACC_DISB_API_USER),
      NULL },

    { ngx_string("momo_disbursement_api_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      ngx_http_momo_acc_slot(NGX_HTTP_MOMO_ACC_DISB_API_KEY),
      NULL },

    { ngx_string("momo_disbursement_subscription_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      ngx_http_momo_acc_slot(NGX_HTTP_MOMO_ACC_DISB_SUBSCRIPTION_KEY),
      NULL },

    { ngx_string("momo_check_payer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_momo_loc_conf_t, check_payer),
      NULL },

    { ngx_string("momo_currency"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_momo_loc_conf_t, currency),
      NULL },

    { ngx_string("momo_callback_secret"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      ngx_http_momo_acc_slot(NGX_HTTP_MOMO_ACC_CALLBACK_SECRET),
      NULL },

    { ngx_string("momo_callback_verify"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_momo_loc_conf_t, callback_verify),
      NULL },

    { ngx_string("momo_notify"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_momo_loc_conf_t, notify),
      NULL },

    { ngx_string("momo_notify_secret"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_momo_loc_conf_t, notify_secret),
      NULL },

    { ngx_string("momo_notify_retry"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE3,
      ngx_http_momo_notify_retry,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("momo_reconcile"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_momo_reconcile,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("momo_token_wait"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_momo_loc_conf_t, token_wait),
      NULL },

    { ngx_string("momo_status_rate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_momo_loc_conf_t, status_rate),
      &ngx_http_momo_status_rate_bounds },

    { ngx_string("momo_pay"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_momo_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_MOMO_H_PAY,
      NULL },

    { ngx_string("momo_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_momo_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_MOMO_H_STATUS,
      NULL },

    { ngx_string("momo_callback"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_momo_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_MOMO_H_CALLBACK,
      NULL },

    { ngx_string("momo_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_momo_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_MOMO_H_METRICS,
      NULL },

    { ngx_string("momo_refund"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_momo_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_MOMO_H_REFUND,
      NULL },

    { ngx_string("momo_payout"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_momo_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_MOMO_H_PAYOUT,
      NULL },

    { ngx_string("momo_refund_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_momo_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_MOMO_H_OP_STATUS,
      NULL },

    { ngx_string("momo_payout_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_momo_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_MOMO_H_OP_STATUS,
      NULL },

    { ngx_string("momo_balance"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_momo_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_MOMO_H_BALANCE,
      NULL },

    { ngx_string("momo_leg"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_momo_leg,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_momo_module_ctx = {
    ngx_http_momo_preconfiguration,        /* preconfiguration */
    ngx_http_momo_postconfiguration,       /* postconfiguration */

    ngx_http_momo_create_main_conf,        /* create main configuration */
    ngx_http_momo_init_main_conf,          /* init main configuration */

    ngx_http_momo_create_srv_conf,         /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_momo_create_loc_conf,         /* create location configuration */
    ngx_http_momo_merge_loc_conf           /* merge location configuration */
};


ngx_module_t  ngx_http_momo_module = {
    NGX_MODULE_V1,
    &ngx_http_momo_module_ctx,             /* module context */
    ngx_http_momo_commands,                /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_momo_init_process,            /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_momo_exit_process,            /* exit process */
    ngx_http_momo_exit_master,             /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_momo_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_momo_add_variables(cf);
}


static ngx_int_t
ngx_http_momo_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_momo_main_conf_t  *mmcf;

    mmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_momo_module);

    if (mmcf->shm_zone == NULL && mmcf->handlers) {
        /* a momo handler is configured without momo_zone: 1m */

        if (ngx_http_momo_add_zone(cf, mmcf, 1024 * 1024) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_momo_check_routes(cf, mmcf) != NGX_OK
        || ngx_http_momo_check_accounts(cf, mmcf) != NGX_OK
        || ngx_http_momo_check_notify(cf, mmcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_momo_call_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_momo_init_variables(cf);
}


static void *
ngx_http_momo_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_momo_main_conf_t  *mmcf;

    mmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_momo_main_conf_t));
    if (mmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mmcf->shm_zone = NULL;
     *     mmcf->handlers = 0;
     */

    if (ngx_array_init(&mmcf->accounts, cf->pool, 4,
                       sizeof(ngx_http_momo_use_t))
        != NGX_OK)
    {
        return NULL;
    }

    mmcf->notify_first = NGX_CONF_UNSET_MSEC;
    mmcf->notify_max = NGX_CONF_UNSET_MSEC;
    mmcf->notify_total = NGX_CONF_UNSET_MSEC;

    return mmcf;
}


/*
 * The defaults follow MTN's advice (a status query for a payment without
 * a callback after a few minutes) and the payment providers' webhooks
 * (retries with backoff for about three days).
 */

static ngx_msec_t  ngx_http_momo_reconcile_default[] = {
    60000, 120000, 300000, 600000, 1200000, 1800000,
    3600000, 7200000, 21600000, 86400000
};


static char *
ngx_http_momo_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_momo_main_conf_t *mmcf = conf;

    if (!mmcf->reconcile_set) {
        mmcf->nreconcile = sizeof(ngx_http_momo_reconcile_default)
                           / sizeof(ngx_msec_t);
        ngx_memcpy(mmcf->reconcile, ngx_http_momo_reconcile_default,
                   sizeof(ngx_http_momo_reconcile_default));
    }

    ngx_conf_init_msec_value(mmcf->notify_first, 10000);
    ngx_conf_init_msec_value(mmcf->notify_max, 3600000);
    ngx_conf_init_msec_value(mmcf->notify_total, 3 * 86400000);

    return NGX_CONF_OK;
}


/* momo_reconcile AGE... | off: increasing ages, the last is the limit */

static char *
ngx_http_momo_reconcile(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_momo_main_conf_t *mmcf = conf;

    ngx_int_t    age;
    ngx_str_t   *value;
    ngx_uint_t   i;

    if (mmcf->reconcile_set) {
        return "is duplicate";
    }

    mmcf->reconcile_set = 1;
    value = cf->args->elts;

    if (cf->args->nelts == 2
        && ngx_strcmp(value[1].data, "off") == 0)
    {
        return NGX_CONF_OK;
    }

    if (cf->args->nelts - 1 > NGX_HTTP_MOMO_RECONCILE_MAX) {
        return "has more than 16 ages";
    }

    for (i = 1; i < cf->args->nelts; i++) {
        age = ngx_parse_time(&value[i], 0);

        if (age == NGX_ERROR || age == 0
            || (i > 1 && (ngx_msec_t) age <= mmcf->reconcile[i - 2]))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "momo_reconcile age \"%V\" is invalid: give "
                               "increasing times after acceptance, e.g. "
                               "\"momo_reconcile 1m 5m 15m 1h 24h;\", "
                               "or \"off\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        mmcf->reconcile[i - 1] = age;
    }

    mmcf->nreconcile = cf->args->nelts - 1;

    return NGX_CONF_OK;
}


/* momo_notify_retry FIRST MAX TOTAL */

static char *
ngx_http_momo_notify_retry(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_momo_main_conf_t *mmcf = conf;

    ngx_int_t   t[3];
    ngx_str_t  *value;
    ngx_uint_t  i;

    if (mmcf->notify_first != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 0; i < 3; i++) {
        t[i] = ngx_parse_time(&value[i + 1], 0);

        if (t[i] == NGX_ERROR || t[i] == 0) {
            goto invalid;
        }
    }

    if (t[1] < t[0] || t[2] < t[0]) {
        goto invalid;
    }

    mmcf->notify_first = t[0];
    mmcf->notify_max = t[1];
    mmcf->notify_total = t[2];

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "momo_notify_retry \"%V %V %V\" is invalid: give the "
                       "first delay, the longest delay and how long to keep "
                       "trying, e.g. \"momo_notify_retry 10s 1h 3d;\"",
                       &value[1], &value[2], &value[3]);
    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_momo_init_process(ngx_cycle_t *cycle)
{
    ngx_http_momo_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_momo_module);

    if (mmcf && mmcf->shm_zone && ngx_process == NGX_PROCESS_WORKER) {
        ngx_http_momo_shm_populate(&mmcf->shm_zone->shm, cycle->log);
    }

    return ngx_http_momo_reconcile_init_process(cycle);
}


static void
ngx_http_momo_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_momo_reconcile_exit_process(cycle);
    ngx_http_momo_hmac_free();

    if (ngx_process == NGX_PROCESS_SINGLE) {
        ngx_http_momo_exit_master(cycle);
    }
}


/* the workers are gone: the zone as it is goes to the state file */

static void
ngx_http_momo_exit_master(ngx_cycle_t *cycle)
{
    ngx_http_momo_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_momo_module);

    if (mmcf && mmcf->shm_zone && mmcf->state.len) {
        ngx_http_momo_state_exit(mmcf->shm_zone, &mmcf->state, cycle->log);
    }
}


static char *
ngx_http_momo_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_momo_main_conf_t *mmcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (mmcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR || size < (ssize_t) (64 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "momo_zone \"%V\" is invalid: give a size of "
                           "at least %uzk, e.g. \"momo_zone 1m;\"",
                           &value[1], 64 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_momo_add_zone(cf, mmcf, size) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {
        return ngx_http_momo_zone_state(cf, mmcf, &value[2]);
    }

    return NGX_CONF_OK;
}


/* state=PATH: the file that keeps the zone across restarts */

static char *
ngx_http_momo_zone_state(ngx_conf_t *cf, ngx_http_momo_main_conf_t *mmcf,
    ngx_str_t *value)
{
    if (value->len <= sizeof("state=") - 1
        || ngx_strncmp(value->data, "state=", sizeof("state=") - 1) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "momo_zone parameter \"%V\" is invalid: use "
                           "\"state=PATH\", e.g. \"momo_zone 1m "
                           "state=/var/lib/nginx/momo.state;\"", value);
        return NGX_CONF_ERROR;
    }

    mmcf->state.data = value->data + sizeof("state=") - 1;
    mmcf->state.len = value->len - (sizeof("state=") - 1);

    if (ngx_conf_full_name(cf->cycle, &mmcf->state, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

#if (NGX_THREADS)

    /* the state file is written by a thread of the default pool */

    if (ngx_thread_pool_add(cf, NULL) == NULL) {
        return NGX_CONF_ERROR;
    }

#endif

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_momo_add_zone(ngx_conf_t *cf, ngx_http_momo_main_conf_t *mmcf,
    size_t size)
{
    ngx_str_t  name = ngx_string("momo");

    mmcf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                           &ngx_http_momo_module);
    if (mmcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    mmcf->shm_zone->init = ngx_http_momo_shm_init_zone;
    mmcf->shm_zone->data = mmcf;

    return NGX_OK;
}


static void *
ngx_http_momo_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_momo_srv_conf_t  *mscf;

    mscf = ngx_pcalloc(cf->pool, sizeof(ngx_http_momo_srv_conf_t));
    if (mscf == NULL) {
        return NULL;
    }

    return mscf;
}


static void *
ngx_http_momo_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_momo_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_momo_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->acc[] = { 0, NULL };
     *     conf->env[] = { 0, NULL };
     *     conf->currency = { 0, NULL };
     *     conf->notify = { 0, NULL };
     *     conf->basic_auth = { 0, NULL };
     *     conf->token_key = { 0, NULL };
     *     conf->secret = { 0, NULL };
     *     conf->handler = 0;
     */

    conf->callback_verify = NGX_CONF_UNSET;
    conf->check_payer = NGX_CONF_UNSET;
    conf->token_wait = NGX_CONF_UNSET_MSEC;
    conf->status_rate = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_momo_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_momo_loc_conf_t *prev = parent;
    ngx_http_momo_loc_conf_t *conf = child;

    ngx_uint_t                  i;
    ngx_http_momo_use_t        *use;
    ngx_http_momo_main_conf_t  *mmcf;

    /*
     * explicit directives win over the .env file of the same level; the
     * http level is never merged itself, so its .env is read here too
     */

    for (i = 0; i < NGX_HTTP_MOMO_ACC_MAX; i++) {
        if (conf->acc[i].data) {
            continue;
        }

        if (conf->env[i].data) {
            conf->acc[i] = conf->env[i];

        } else {
            conf->acc[i] = prev->acc[i].data ? prev->acc[i] : prev->env[i];
        }
    }

    ngx_conf_merge_str_value(conf->currency, prev->currency, "");
    ngx_conf_merge_value(conf->callback_verify, prev->callback_verify, 1);
    ngx_conf_merge_str_value(conf->notify, prev->notify, "");
    ngx_conf_merge_str_value(conf->notify_secret, prev->notify_secret, "");
    ngx_conf_merge_msec_value(conf->token_wait, prev->token_wait, 5000);
    ngx_conf_merge_value(conf->check_payer, prev->check_payer, 0);
    ngx_conf_merge_value(conf->status_rate, prev->status_rate, 10);

    if (conf->handler == 0 || conf->handler == NGX_HTTP_MOMO_H_METRICS) {
        return NGX_CONF_OK;
    }

    /* a callback location verifies refunds and payouts when it can */

    if (conf->handler == NGX_HTTP_MOMO_H_CALLBACK
        && conf->acc[NGX_HTTP_MOMO_ACC_DISB_API_USER].len)
    {
        conf->handler_products |= 1 << NGX_HTTP_MOMO_DISBURSEMENT;
    }

    if (ngx_http_momo_check_account(cf, conf) != NGX_CONF_OK
        || ngx_http_momo_check_secret(cf, conf) != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    mmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_momo_module);

    use = ngx_array_push(&mmcf->accounts);
    if (use == NULL) {
        return NGX_CONF_ERROR;
    }

    use->mlcf = conf;
    use->mscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_momo_module);
    use->cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);

    return ngx_http_momo_derive(cf, conf);
}


static char *
ngx_http_momo_check_account(ngx_conf_t *cf, ngx_http_momo_loc_conf_t *conf)
{
    ngx_uint_t   i, n, acc;
    ngx_str_t   *v, *env;

    for (n = 0; n < NGX_HTTP_MOMO_PRODUCTS; n++) {

        if (!(conf->handler_products & (1 << n))) {
            continue;
        }

        for (i = 0; i < 3; i++) {
            acc = ngx_http_momo_product_acc[n][i];

            if (conf->acc[acc].len) {
                continue;
            }

            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "the momo handler at %s:%ui needs \"%V\" "
                               "(or %V in a momo_env_file)",
                               conf->handler_file, conf->handler_line,
                               &ngx_http_momo_acc_directives[acc],
                               &ngx_http_momo_env_keys[acc]);
            return NGX_CONF_ERROR;
        }
    }

    env = &conf->acc[NGX_HTTP_MOMO_ACC_TARGET_ENVIRONMENT];

    if (env->len == 0) {
        *env = ngx_http_momo_sandbox;
    }

    if (ngx_strlchr(env->data, env->data + env->len, ' ') != NULL
        || ngx_strlchr(env->data, env->data + env->len, '/') != NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "momo_target_environment \"%V\" is invalid: use "
                           "\"sandbox\", \"mtncameroon\" or another MTN "
                           "environment name", env);
        return NGX_CONF_ERROR;
    }

    v = &conf->acc[NGX_HTTP_MOMO_ACC_BASE_URL];

    if (v->len == 0) {
        *v = (env->len == ngx_http_momo_sandbox.len
              && ngx_strncmp(env->data, "sandbox", 7) == 0)
             ? ngx_http_momo_sandbox_url : ngx_http_momo_production_url;
    }

    if (ngx_http_momo_check_url(cf, "momo_base_url", v) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    for (n = 0; n < NGX_HTTP_MOMO_PRODUCTS; n++) {
        if ((conf->handler_products & (1 << n))
            && ngx_http_momo_check_user(cf, conf, n) != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    v = &conf->acc[NGX_HTTP_MOMO_ACC_CALLBACK_URL];

    if (v->len
        && ngx_http_momo_check_url(cf, "momo_callback_url", v) != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    return ngx_http_momo_check_currency(cf, conf);
}


/*
 * API users are UUIDs, except on MTN's platform of 2026 (momo.africa),
 * whose "User IDs" are base64 strings: there any printable value goes.
 */

static char *
ngx_http_momo_check_user(ngx_conf_t *cf, ngx_http_momo_loc_conf_t *conf,
    ngx_uint_t product)
{
    u_char     *p;
    ngx_str_t  *user, *base, *name;

    name = &ngx_http_momo_acc_directives[ngx_http_momo_product_acc[product][0]];
    user = &conf->acc[ngx_http_momo_product_acc[product][0]];
    base = &conf->acc[NGX_HTTP_MOMO_ACC_BASE_URL];

    if (ngx_http_momo_is_uuid(user) == NGX_OK) {
        return NGX_CONF_OK;
    }

    if (ngx_strlcasestrn(base->data, base->data + base->len,
                         (u_char *) ".momo.africa", 12 - 1)
        != NULL)
    {
        for (p = user->data; p < user->data + user->len; p++) {
            if (*p <= ' ' || *p >= 0x7f || *p == ':') {
                goto invalid;
            }
        }

        return NGX_CONF_OK;
    }

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "%V \"%V\" is not a UUID: use the API "
                       "user id MTN gave (e.g. from \"momo provision\")",
                       name, user);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_momo_check_currency(ngx_conf_t *cf, ngx_http_momo_loc_conf_t *conf)
{
    ngx_str_t  *env, *currency;

    env = &conf->acc[NGX_HTTP_MOMO_ACC_TARGET_ENVIRONMENT];

    if (conf->currency.len == 0) {
        currency = ngx_http_momo_default_currency(env);

        if (currency == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "momo_currency is needed for the target "
                               "environment \"%V\": add e.g. "
                               "\"momo_currency XAF;\"", env);
            return NGX_CONF_ERROR;
        }

        conf->currency = *currency;
    }

    if (conf->currency.len != 3) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "momo_currency \"%V\" is invalid: use a three "
                           "letter ISO 4217 code such as XAF or EUR",
                           &conf->currency);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_momo_check_url(ngx_conf_t *cf, char *name, ngx_str_t *url)
{
    u_char     *p, *host;
    ngx_uint_t  n;

    if (url->len > 8 && ngx_strncasecmp(url->data, (u_char *) "https://", 8)
                        == 0)
    {
        n = 8;

    } else if (url->len > 7
               && ngx_strncasecmp(url->data, (u_char *) "http://", 7) == 0)
    {
        n = 7;

    } else {
        goto invalid;
    }

    host = url->data + n;

    for (p = host; p < url->data + url->len; p++) {
        if (*p <= ' ' || *p == '"' || *p == '\'' || *p == '\\'
            || *p == '?' || *p == '#' || *p >= 0x7f)
        {
            goto invalid;
        }

        if (*p == '/' && p == host) {
            goto invalid;
        }
    }

    while (url->len > n + 1 && url->data[url->len - 1] == '/') {
        url->len--;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "%s \"%V\" is not a valid URL: use "
                       "\"https://host[:port][/path]\"", name, url);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_momo_derive(ngx_conf_t *cf, ngx_http_momo_loc_conf_t *conf)
{
    ngx_uint_t  n;

    for (n = 0; n < NGX_HTTP_MOMO_PRODUCTS; n++) {
        if ((conf->handler_products & (1 << n))
            && ngx_http_momo_derive_product(cf, conf, n) != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (conf->handler_products & (1 << NGX_HTTP_MOMO_COLLECTION)) {
        conf->account = ngx_crc32_short(
                    conf->product[NGX_HTTP_MOMO_COLLECTION].token_key.data,
                    conf->product[NGX_HTTP_MOMO_COLLECTION].token_key.len);
    }

    conf->secret = conf->acc[NGX_HTTP_MOMO_ACC_CALLBACK_SECRET];

    return NGX_CONF_OK;
}


/*
 * Reference ids of Idempotency-Keys and callback URL tokens are HMACs
 * keyed with the callback secret: it must be the same on every gateway
 * and outlive a rotation of the API key, so it is never derived from
 * anything else; a secret a client could guess would let it forge
 * callbacks.
 */

static char *
ngx_http_momo_check_secret(ngx_conf_t *cf, ngx_http_momo_loc_conf_t *conf)
{
    ngx_str_t  *secret;

    secret = &conf->acc[NGX_HTTP_MOMO_ACC_CALLBACK_SECRET];

    if (conf->handler != NGX_HTTP_MOMO_H_PAY
        && conf->handler != NGX_HTTP_MOMO_H_CALLBACK
        && conf->handler != NGX_HTTP_MOMO_H_REFUND
        && conf->handler != NGX_HTTP_MOMO_H_PAYOUT)
    {
        return NGX_CONF_OK;
    }

    if (secret->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the momo handler at %s:%ui needs "
                           "\"momo_callback_secret\" (or "
                           "MTN_MOMO_CALLBACK_SECRET in a momo_env_file): "
                           "it keys reference ids and callback URLs and "
                           "must stay the same when the API key is "
                           "rotated; make one with \"openssl rand -hex 32\"",
                           conf->handler_file, conf->handler_line);
        return NGX_CONF_ERROR;
    }

    if (secret->len < NGX_HTTP_MOMO_SECRET_MIN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "momo_callback_secret is too short: give at "
                           "least %d characters, e.g. the output of "
                           "\"openssl rand -hex 32\"",
                           NGX_HTTP_MOMO_SECRET_MIN);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * A product's Basic credentials and the key of its token in the zone:
 * the product is part of the key, since one API user may hold both.
 */

static char *
ngx_http_momo_derive_product(ngx_conf_t *cf, ngx_http_momo_loc_conf_t *conf,
    ngx_uint_t n)
{
    u_char                   *p;
    ngx_str_t                *user, *key, *base, *env;
    ngx_http_momo_product_t  *pr;

    pr = &conf->product[n];

    pr->index = n;
    pr->name = ngx_http_momo_product_names[n];
    pr->api_user = &conf->acc[ngx_http_momo_product_acc[n][0]];
    pr->subscription_key = &conf->acc[ngx_http_momo_product_acc[n][2]];

    user = pr->api_user;
    key = &conf->acc[ngx_http_momo_product_acc[n][1]];
    base = &conf->acc[NGX_HTTP_MOMO_ACC_BASE_URL];
    env = &conf->acc[NGX_HTTP_MOMO_ACC_TARGET_ENVIRONMENT];

    if (ngx_http_momo_basic_auth(cf->pool, user, key, &pr->basic_auth)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    pr->token_key.len = base->len + user->len + env->len + pr->name.len + 3;

    if (pr->token_key.len > NGX_HTTP_MOMO_KEY_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "momo_base_url \"%V\" is too long", base);
        return NGX_CONF_ERROR;
    }

    p = ngx_pnalloc(cf->pool, pr->token_key.len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    pr->token_key.data = p;
    p = ngx_cpymem(p, base->data, base->len);
    *p++ = '|';
    p = ngx_cpymem(p, user->data, user->len);
    *p++ = '|';
    p = ngx_cpymem(p, env->data, env->len);
    *p++ = '|';
    ngx_memcpy(p, pr->name.data, pr->name.len);

    return NGX_CONF_OK;
}


/*
 * The internal locations proxy_pass to $momo_leg_url: its host must be an
 * address, the name of an upstream group (momo_upstreams.conf), or
 * resolvable by a resolver of the location.  Otherwise every call would
 * fail at run time with "no resolver defined": refuse it now.
 */

static ngx_int_t
ngx_http_momo_check_routes(ngx_conf_t *cf, ngx_http_momo_main_conf_t *mmcf)
{
    ngx_str_t            *base;
    ngx_uint_t            i, leg;
    ngx_http_momo_use_t  *use;

    use = mmcf->accounts.elts;

    for (i = 0; i < mmcf->accounts.nelts; i++) {
        if (ngx_http_momo_check_legs(cf, &use[i]) != NGX_OK) {
            return NGX_ERROR;
        }

        base = &use[i].mlcf->acc[NGX_HTTP_MOMO_ACC_BASE_URL];

        for (leg = 0; leg < NGX_HTTP_MOMO_LEG_MAX; leg++) {
            if (use[i].mscf->leg_clcf[leg] == NULL) {
                continue;
            }

            use[i].mscf->leg_time[leg] =
                ngx_http_momo_location_time(use[i].mscf->leg_clcf[leg]);

            if (ngx_http_momo_routable(cf, base, use[i].mscf->leg_clcf[leg])
                != NGX_OK)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "momo_base_url \"%V\" of the momo "
                                   "handler at %s:%ui names a host that "
                                   "is neither an upstream group nor "
                                   "resolvable: add \"include "
                                   "/etc/nginx/momo/momo_upstreams.conf;\" "
                                   "to http{}, or a \"resolver\"",
                                   base, use[i].mlcf->handler_file,
                                   use[i].mlcf->handler_line);
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_momo_check_legs(ngx_conf_t *cf, ngx_http_momo_use_t *use)
{
    ngx_uint_t  n, leg, legs;

    legs = 0;

    for (n = 0; n < NGX_HTTP_MOMO_PRODUCTS; n++) {
        if (use->mlcf->handler_products & (1 << n)) {
            legs |= ngx_http_momo_product_legs[n];
        }
    }

    for (leg = 0; leg < NGX_HTTP_MOMO_LEG_MAX; leg++) {
        if (!(legs & (1 << leg)) || use->mscf->legs[leg].len) {
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a momo handler is used in a server that has no "
                           "internal location with \"momo_leg %V\": add "
                           "\"include /etc/nginx/momo/momo_locations.conf;\" "
                           "(or the file shipped in conf/) inside that "
                           "server block (the handler at %s:%ui)",
                           &ngx_http_momo_leg_names[leg],
                           use->mlcf->handler_file, use->mlcf->handler_line);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_momo_routable(ngx_conf_t *cf, ngx_str_t *base,
    ngx_http_core_loc_conf_t *clcf)
{
    ngx_url_t                       u;
    ngx_uint_t                      i, tls;
    ngx_http_upstream_srv_conf_t  **uscf;
    ngx_http_upstream_main_conf_t  *umcf;

    ngx_memzero(&u, sizeof(ngx_url_t));

    tls = ((base->data[4] | 0x20) == 's');

    u.url.data = base->data + (tls ? 8 : 7);
    u.url.len = base->len - (u.url.data - base->data);
    u.default_port = tls ? 443 : 80;
    u.uri_part = 1;
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        return NGX_ERROR;
    }

    if (u.host.len == 0
        || u.host.data[0] == '['
        || ngx_inet_addr(u.host.data, u.host.len) != INADDR_NONE)
    {
        return NGX_OK;          /* an address: no name to look up */
    }

    umcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_upstream_module);
    uscf = umcf->upstreams.elts;

    for (i = 0; i < umcf->upstreams.nelts; i++) {
        if (uscf[i]->host.len == u.host.len
            && ((uscf[i]->port == 0 && u.no_port)
                || uscf[i]->port == u.port)
            && ngx_strncasecmp(uscf[i]->host.data, u.host.data, u.host.len)
               == 0)
        {
            return NGX_OK;
        }
    }

    if (clcf->resolver && clcf->resolver->connections.nelts) {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/*
 * each account (API user, environment, base URL, product) takes one of the
 * zone's token slots, for good
 */

static ngx_int_t
ngx_http_momo_check_accounts(ngx_conf_t *cf, ngx_http_momo_main_conf_t *mmcf)
{
    ngx_str_t            *key, **seen;
    ngx_uint_t            i, j, p, n;
    ngx_http_momo_use_t  *use;

    seen = ngx_palloc(cf->temp_pool, (NGX_HTTP_MOMO_ACCOUNTS + 1)
                                     * sizeof(ngx_str_t *));
    if (seen == NULL) {
        return NGX_ERROR;
    }

    use = mmcf->accounts.elts;
    n = 0;

    for (i = 0; i < mmcf->accounts.nelts; i++) {
        for (p = 0; p < NGX_HTTP_MOMO_PRODUCTS; p++) {
            key = &use[i].mlcf->product[p].token_key;

            if (key->len == 0) {
                continue;
            }

            for (j = 0; j < n; j++) {
                if (seen[j]->len == key->len
                    && ngx_memcmp(seen[j]->data, key->data, key->len) == 0)
                {
                    break;
                }
            }

            if (j < n) {
                continue;
            }

            if (n == NGX_HTTP_MOMO_ACCOUNTS) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "the momo handler at %s:%ui uses MTN "
                                   "account number %ui (API user, "
                                   "environment, base URL and product); one "
                                   "momo zone holds at most %d: use fewer "
                                   "accounts in this configuration",
                                   use[i].mlcf->handler_file,
                                   use[i].mlcf->handler_line, n + 1,
                                   NGX_HTTP_MOMO_ACCOUNTS);
                return NGX_ERROR;
            }

            seen[n++] = key;
        }
    }

    return NGX_OK;
}


/*
 * momo_notify posts payment outcomes the application trusts: a location
 * a client could reach would let anyone post fake ones.
 */

static ngx_int_t
ngx_http_momo_check_notify(ngx_conf_t *cf, ngx_http_momo_main_conf_t *mmcf)
{
    ngx_str_t                 *uri;
    ngx_uint_t                 i;
    ngx_http_momo_use_t       *use;
    ngx_http_core_loc_conf_t  *clcf;

    use = mmcf->accounts.elts;

    for (i = 0; i < mmcf->accounts.nelts; i++) {
        uri = &use[i].mlcf->notify;

        if (uri->len == 0) {
            continue;
        }

        clcf = ngx_http_momo_find_location(use[i].cscf, uri);

        if (clcf != NULL && clcf->internal) {
            use[i].mlcf->notify_time = ngx_http_momo_location_time(clcf);
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "momo_notify \"%V\" of the momo handler at "
                           "%s:%ui %s: add an exact-match location with "
                           "\"internal;\" for it, e.g. \"location = %V "
                           "{ internal; proxy_pass ...; }\"",
                           uri, use[i].mlcf->handler_file,
                           use[i].mlcf->handler_line,
                           clcf ? "is not an internal location"
                                : "matches no location of its server",
                           uri);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * How long a call through this location may take: the deadline
 * ngx_http_momo_call.c gives it at run time, from the same proxy
 * timeouts, known here for the leases (ngx_http_momo_call_time).  The
 * proxy module's location configuration begins with its
 * ngx_http_upstream_conf_t, as in every nginx version.
 */

static ngx_msec_t
ngx_http_momo_location_time(ngx_http_core_loc_conf_t *clcf)
{
    ngx_http_upstream_conf_t  *ucf;

    ucf = clcf->loc_conf[ngx_http_proxy_module.ctx_index];

    if (ucf == NULL) {
        return NGX_HTTP_MOMO_CALL_TIME;
    }

    return ngx_http_momo_upstream_time(ucf);
}


/*
 * The location of a server that a URI selects, as
 * ngx_http_core_find_static_location() then the server's regular
 * expressions would select it; nested locations are not searched.
 */

static ngx_http_core_loc_conf_t *
ngx_http_momo_find_location(ngx_http_core_srv_conf_t *cscf, ngx_str_t *uri)
{
    u_char                         *s;
    size_t                          len, n;
    ngx_int_t                       rc;
    ngx_http_core_loc_conf_t       *clcf, *found;
    ngx_http_location_tree_node_t  *node;
#if (NGX_PCRE)
    ngx_http_core_loc_conf_t      **re;
#endif

    clcf = cscf->ctx->loc_conf[ngx_http_core_module.ctx_index];

    s = uri->data;
    len = uri->len;
    found = NULL;
    node = clcf->static_locations;

    while (node != NULL) {
        n = (len <= (size_t) node->len) ? len : node->len;

        rc = ngx_filename_cmp(s, node->name, n);

        if (rc != 0) {
            node = (rc < 0) ? node->left : node->right;
            continue;
        }

        if (len > (size_t) node->len) {
            if (node->inclusive) {
                found = node->inclusive;
                node = node->tree;
                s += n;
                len -= n;
                continue;
            }

            node = node->right;
            continue;
        }

        if (len == (size_t) node->len) {
            if (node->exact) {
                return node->exact;
            }

            found = node->inclusive;
            break;
        }

        node = node->left;
    }

#if (NGX_PCRE)

    if ((found == NULL || !found->noregex) && clcf->regex_locations) {
        for (re = clcf->regex_locations; *re; re++) {
            if (ngx_regex_exec((*re)->regex->regex, uri, NULL, 0) >= 0) {
                return *re;
            }
        }
    }

#endif

    return found;
}


static ngx_str_t *
ngx_http_momo_default_currency(ngx_str_t *environment)
{
    ngx_http_momo_env_currency_t  *c;

    for (c = ngx_http_momo_currencies; c->environment.len; c++) {
        if (c->environment.len == environment->len
            && ngx_strncmp(c->environment.data, environment->data,
                           environment->len) == 0)
        {
            return &c->currency;
        }
    }

    return NULL;
}


static char *
ngx_http_momo_env_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_momo_loc_conf_t *mlcf = conf;

    ssize_t          n;
    ngx_fd_t         fd;
    ngx_str_t       *value, text;
    ngx_file_info_t  fi;

    value = cf->args->elts;

    if (ngx_conf_full_name(cf->cycle, &value[1], 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(value[1].data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "momo_env_file \"%V\" cannot be opened: create it "
                           "with \"momo provision\" or point to your .env",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > 65536)
    {
        ngx_close_file(fd);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "momo_env_file \"%V\" is not a small regular "
                           "file", &value[1]);
        return NGX_CONF_ERROR;
    }

    text.len = ngx_file_size(&fi);
    text.data = ngx_pnalloc(cf->pool, text.len + 1);
    if (text.data == NULL) {
        ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    n = ngx_read_fd(fd, text.data, text.len);
    ngx_close_file(fd);

    if (n != (ssize_t) text.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "momo_env_file \"%V\" could not be read",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    return ngx_http_momo_env_parse(cf, mlcf, &value[1], &text);
}


static char *
ngx_http_momo_env_parse(ngx_conf_t *cf, ngx_http_momo_loc_conf_t *mlcf,
    ngx_str_t *file, ngx_str_t *text)
{
    int               rc;
    unsigned          line;
    ngx_uint_t        i;
    const char       *err;
    const u_char     *pos;
    momo_env_pair_t   pair;

    pos = text->data;
    line = 0;

    for ( ;; ) {
        rc = momo_env_next(&pos, text->data + text->len, &pair, &line, &err);

        if (rc == 0) {
            return NGX_CONF_OK;
        }

        if (rc < 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "momo_env_file \"%V\", line %ud: %s",
                               file, line, err);
            return NGX_CONF_ERROR;
        }

        for (i = 0; i < NGX_HTTP_MOMO_ACC_MAX; i++) {
            if (pair.key_len == ngx_http_momo_env_keys[i].len
                && ngx_strncmp(pair.key, ngx_http_momo_env_keys[i].data,
                               pair.key_len) == 0)
            {
                mlcf->env[i].data = (u_char *) pair.value;
                mlcf->env[i].len = pair.value_len;
            }
        }
    }
}


static char *
ngx_http_momo_handler_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_momo_loc_conf_t *mlcf = conf;

    ngx_str_t                  *value;
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_momo_main_conf_t  *mmcf;

    static ngx_uint_t  collection = 1 << NGX_HTTP_MOMO_COLLECTION;
    static ngx_uint_t  disbursement = 1 << NGX_HTTP_MOMO_DISBURSEMENT;

    if (mlcf->handler) {
        return "is duplicate: one momo handler per location";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    value = cf->args->elts;

    mlcf->handler = cmd->offset;
    mlcf->conf_ctx = cf->ctx;               /* for the reconciler's requests */
    mlcf->handler_file = cf->conf_file->file.name.data;
    mlcf->handler_line = cf->conf_file->line;

    switch (cmd->offset) {

    case NGX_HTTP_MOMO_H_PAY:
        clcf->handler = ngx_http_momo_pay_handler;
        mlcf->handler_products = collection;
        break;

    case NGX_HTTP_MOMO_H_STATUS:
        clcf->handler = ngx_http_momo_status_handler;
        mlcf->handler_products = collection;
        break;

    case NGX_HTTP_MOMO_H_CALLBACK:
        clcf->handler = ngx_http_momo_callback_handler;
        mlcf->handler_products = collection;
        break;

    case NGX_HTTP_MOMO_H_REFUND:
        clcf->handler = ngx_http_momo_refund_handler;
        mlcf->handler_products = collection | disbursement;
        mlcf->handler_kind = NGX_HTTP_MOMO_KIND_REFUND;
        break;

    case NGX_HTTP_MOMO_H_PAYOUT:
        clcf->handler = ngx_http_momo_payout_handler;
        mlcf->handler_products = disbursement;
        mlcf->handler_kind = NGX_HTTP_MOMO_KIND_PAYOUT;
        break;

    case NGX_HTTP_MOMO_H_OP_STATUS:
        clcf->handler = ngx_http_momo_status_handler;
        mlcf->handler_products = disbursement;
        mlcf->handler_kind = (cmd->name.data[5] == 'r')
                             ? NGX_HTTP_MOMO_KIND_REFUND
                             : NGX_HTTP_MOMO_KIND_PAYOUT;
        break;

    case NGX_HTTP_MOMO_H_BALANCE:
        clcf->handler = ngx_http_momo_balance_handler;

        if (value[1].len == 10
            && ngx_strncmp(value[1].data, "collection", 10) == 0)
        {
            mlcf->handler_products = collection;

        } else if (value[1].len == 12
                   && ngx_strncmp(value[1].data, "disbursement", 12) == 0)
        {
            mlcf->handler_products = disbursement;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "momo_balance \"%V\" is unknown: use "
                               "\"collection\" or \"disbursement\"",
                               &value[1]);
            return NGX_CONF_ERROR;
        }

        break;

    default: /* NGX_HTTP_MOMO_H_METRICS */
        clcf->handler = ngx_http_momo_metrics_handler;
        break;
    }

    mmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_momo_module);

    mmcf->handlers = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_momo_leg(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t                 *value;
    ngx_uint_t                 i;
    ngx_http_core_loc_conf_t  *clcf;
    ngx_http_momo_srv_conf_t  *mscf;

    value = cf->args->elts;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    mscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_momo_module);

    for (i = 0; i < NGX_HTTP_MOMO_LEG_MAX; i++) {
        if (value[1].len == ngx_http_momo_leg_names[i].len
            && ngx_strncmp(value[1].data, ngx_http_momo_leg_names[i].data,
                           value[1].len) == 0)
        {
            break;
        }
    }

    if (i == NGX_HTTP_MOMO_LEG_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "momo_leg \"%V\" is unknown: use \"token\", "
                           "\"requesttopay\", \"status\", "
                           "\"disbursement\" or \"disbursement_status\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (mscf->legs[i].len) {
        return "is duplicate in this server";
    }

    if (clcf->exact_match == 0 && clcf->name.len
        && clcf->name.data[clcf->name.len - 1] == '/')
    {
        return "must be in an exact-match location, e.g. "
               "\"location = /_momo/token\"";
    }

    mscf->legs[i] = clcf->name;
    mscf->leg_clcf[i] = clcf;

    return NGX_CONF_OK;
}
