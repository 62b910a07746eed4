
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * Variables.  $momo_* describe the payment for log_format; they are also
 * copied into r->variables when the answer is sent, so they survive an
 * internal redirect (the way auth_request keeps its results).
 * $momo_leg_* carry what a call to MTN needs into the internal
 * locations' proxy_set_header lines: they exist only inside the module's
 * own subrequests, so no log line or client location can show them.
 */


#include "ngx_http_momo_module.h"


typedef enum {
    NGX_HTTP_MOMO_VAR_REFERENCE_ID = 0,
    NGX_HTTP_MOMO_VAR_EXTERNAL_ID,
    NGX_HTTP_MOMO_VAR_STATUS,
    NGX_HTTP_MOMO_VAR_AMOUNT,
    NGX_HTTP_MOMO_VAR_CURRENCY,
    NGX_HTTP_MOMO_VAR_FINANCIAL_TRANSACTION_ID,
    NGX_HTTP_MOMO_VAR_ERROR,
    NGX_HTTP_MOMO_VAR_UPSTREAM_STATUS,
    NGX_HTTP_MOMO_VAR_TOKEN,
    NGX_HTTP_MOMO_VAR_KIND,
    NGX_HTTP_MOMO_VAR_MAX
} ngx_http_momo_var_e;


typedef enum {
    NGX_HTTP_MOMO_LEG_VAR_URL = 0,
    NGX_HTTP_MOMO_LEG_VAR_AUTHORIZATION,
    NGX_HTTP_MOMO_LEG_VAR_REFERENCE_ID,
    NGX_HTTP_MOMO_LEG_VAR_CALLBACK_URL,
    NGX_HTTP_MOMO_LEG_VAR_TARGET_ENVIRONMENT,
    NGX_HTTP_MOMO_LEG_VAR_SUBSCRIPTION_KEY,
    NGX_HTTP_MOMO_LEG_VAR_CONTENT_TYPE
} ngx_http_momo_leg_var_e;


static ngx_int_t ngx_http_momo_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static void ngx_http_momo_variable_value(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_uint_t id, ngx_str_t *value);
static ngx_int_t ngx_http_momo_leg_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_str_t *ngx_http_momo_leg_value(ngx_http_momo_call_t *call,
    ngx_uint_t id);


static ngx_http_variable_t  ngx_http_momo_vars[] = {

    { ngx_string("momo_reference_id"), NULL, ngx_http_momo_variable,
      NGX_HTTP_MOMO_VAR_REFERENCE_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("momo_external_id"), NULL, ngx_http_momo_variable,
      NGX_HTTP_MOMO_VAR_EXTERNAL_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("momo_status"), NULL, ngx_http_momo_variable,
      NGX_HTTP_MOMO_VAR_STATUS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("momo_amount"), NULL, ngx_http_momo_variable,
      NGX_HTTP_MOMO_VAR_AMOUNT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("momo_currency"), NULL, ngx_http_momo_variable,
      NGX_HTTP_MOMO_VAR_CURRENCY, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("momo_financial_transaction_id"), NULL,
      ngx_http_momo_variable, NGX_HTTP_MOMO_VAR_FINANCIAL_TRANSACTION_ID,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("momo_error"), NULL, ngx_http_momo_variable,
      NGX_HTTP_MOMO_VAR_ERROR, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("momo_upstream_status"), NULL, ngx_http_momo_variable,
      NGX_HTTP_MOMO_VAR_UPSTREAM_STATUS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("momo_token"), NULL, ngx_http_momo_variable,
      NGX_HTTP_MOMO_VAR_TOKEN, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("momo_kind"), NULL, ngx_http_momo_variable,
      NGX_HTTP_MOMO_VAR_KIND, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("momo_leg_url"), NULL, ngx_http_momo_leg_variable,
      NGX_HTTP_MOMO_LEG_VAR_URL, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("momo_leg_authorization"), NULL, ngx_http_momo_leg_variable,
      NGX_HTTP_MOMO_LEG_VAR_AUTHORIZATION, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("momo_leg_reference_id"), NULL, ngx_http_momo_leg_variable,
      NGX_HTTP_MOMO_LEG_VAR_REFERENCE_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("momo_leg_callback_url"), NULL, ngx_http_momo_leg_variable,
      NGX_HTTP_MOMO_LEG_VAR_CALLBACK_URL, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("momo_leg_target_environment"), NULL,
      ngx_http_momo_leg_variable, NGX_HTTP_MOMO_LEG_VAR_TARGET_ENVIRONMENT,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("momo_leg_subscription_key"), NULL,
      ngx_http_momo_leg_variable, NGX_HTTP_MOMO_LEG_VAR_SUBSCRIPTION_KEY,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("momo_leg_content_type"), NULL, ngx_http_momo_leg_variable,
      NGX_HTTP_MOMO_LEG_VAR_CONTENT_TYPE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_momo_json_type = ngx_string("application/json");


ngx_int_t
ngx_http_momo_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_momo_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/*
 * The $momo_* variables that the configuration uses (a log_format, map,
 * if, add_header...) are indexed by now; only those are kept in
 * r->variables when the answer is sent.  One that nothing indexed is
 * still read by its handler when asked by name (SSI, njs).
 */

ngx_int_t
ngx_http_momo_init_variables(ngx_conf_t *cf)
{
    ngx_str_t                  *name;
    ngx_uint_t                  i, j;
    ngx_http_variable_t        *v;
    ngx_http_core_main_conf_t  *cmcf;
    ngx_http_momo_main_conf_t  *mmcf;

    mmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_momo_module);
    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    v = cmcf->variables.elts;

    for (i = 0; i < NGX_HTTP_MOMO_VAR_MAX; i++) {
        name = &ngx_http_momo_vars[i].name;
        mmcf->var_index[i] = NGX_ERROR;

        for (j = 0; j < cmcf->variables.nelts; j++) {
            if (v[j].name.len == name->len
                && ngx_strncasecmp(v[j].name.data, name->data, name->len)
                   == 0)
            {
                mmcf->var_index[i] = j;
                mmcf->vars_used++;
                break;
            }
        }
    }

    return NGX_OK;
}


/* keeps the values for the access log, past any internal redirect */

void
ngx_http_momo_set_variables(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_str_t                   value;
    ngx_uint_t                  i;
    ngx_http_variable_value_t  *v;
    ngx_http_momo_main_conf_t  *mmcf;

    if (r != r->main) {
        return;
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);

    if (mmcf->vars_used == 0) {
        return;
    }

    for (i = 0; i < NGX_HTTP_MOMO_VAR_MAX; i++) {
        if (mmcf->var_index[i] == NGX_ERROR) {
            continue;
        }

        ngx_http_momo_variable_value(r, ctx, i, &value);

        v = &r->variables[mmcf->var_index[i]];

        v->len = value.len;
        v->data = value.data;
        v->valid = value.len ? 1 : 0;
        v->no_cacheable = 0;
        v->not_found = value.len ? 0 : 1;
    }
}


static ngx_int_t
ngx_http_momo_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_str_t             value;
    ngx_http_momo_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_momo_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_momo_variable_value(r, ctx, data, &value);

    if (value.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = value.len;
    v->data = value.data;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static void
ngx_http_momo_variable_value(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_uint_t id, ngx_str_t *value)
{
    u_char                  *p;
    ngx_http_momo_record_t  *rec;

    rec = &ctx->rec;
    ngx_str_null(value);

    switch (id) {

    case NGX_HTTP_MOMO_VAR_REFERENCE_ID:
        *value = ctx->reference_id;
        break;

    case NGX_HTTP_MOMO_VAR_EXTERNAL_ID:
        *value = ctx->payment.external_id;

        if (value->len == 0) {
            value->data = rec->external_id;
            value->len = rec->external_id_len;
        }

        break;

    case NGX_HTTP_MOMO_VAR_STATUS:
        *value = ctx->status;
        break;

    case NGX_HTTP_MOMO_VAR_AMOUNT:
        *value = ctx->payment.amount;

        if (value->len == 0) {
            value->data = rec->amount;
            value->len = rec->amount_len;
        }

        break;

    case NGX_HTTP_MOMO_VAR_CURRENCY:
        *value = ctx->payment.currency;

        if (value->len == 0) {
            value->data = rec->currency;
            value->len = rec->currency_len;
        }

        break;

    case NGX_HTTP_MOMO_VAR_FINANCIAL_TRANSACTION_ID:
        value->data = rec->financial_transaction_id;
        value->len = rec->fin_len;
        break;

    case NGX_HTTP_MOMO_VAR_ERROR:
        *value = ctx->error;
        break;

    case NGX_HTTP_MOMO_VAR_UPSTREAM_STATUS:
        if (ctx->upstream_status == 0) {
            break;
        }

        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            break;
        }

        value->data = p;
        value->len = ngx_sprintf(p, "%ui", ctx->upstream_status) - p;
        break;

    case NGX_HTTP_MOMO_VAR_KIND:
        /* payment, refund, payout: the operation the request was about */
        *value = *ngx_http_momo_kind_name(ctx->disb ? ctx->mlcf->handler_kind
                                                    : ctx->kind);
        break;

    default: /* NGX_HTTP_MOMO_VAR_TOKEN */
        *value = ctx->token_source;
        break;
    }
}


static ngx_int_t
ngx_http_momo_leg_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t             *value;
    ngx_http_momo_call_t  *call;

    call = (r != r->main) ? ngx_http_get_module_ctx(r, ngx_http_momo_module)
                          : NULL;

    value = call ? ngx_http_momo_leg_value(call, data) : NULL;

    if (value == NULL || value->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = value->len;
    v->data = value->data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_str_t *
ngx_http_momo_leg_value(ngx_http_momo_call_t *call, ngx_uint_t id)
{
    if (id == NGX_HTTP_MOMO_LEG_VAR_CONTENT_TYPE) {
        return call->body.len ? &ngx_http_momo_json_type : NULL;
    }

    if (call->leg == NGX_HTTP_MOMO_LEG_NOTIFY) {
        /* the application never sees MTN's credentials */
        return NULL;
    }

    switch (id) {

    case NGX_HTTP_MOMO_LEG_VAR_URL:
        return &call->url;

    case NGX_HTTP_MOMO_LEG_VAR_AUTHORIZATION:
        return &call->authorization;

    case NGX_HTTP_MOMO_LEG_VAR_REFERENCE_ID:
        return &call->reference_id;

    case NGX_HTTP_MOMO_LEG_VAR_CALLBACK_URL:
        return &call->callback_url;

    case NGX_HTTP_MOMO_LEG_VAR_TARGET_ENVIRONMENT:
        return &call->mlcf->acc[NGX_HTTP_MOMO_ACC_TARGET_ENVIRONMENT];

    default: /* NGX_HTTP_MOMO_LEG_VAR_SUBSCRIPTION_KEY */
        return call->product->subscription_key;
    }
}
