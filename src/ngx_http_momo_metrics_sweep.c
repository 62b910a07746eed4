
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * momo_metrics, the reconciler's part: payments still pending by age,
 * sweeps and their results, the status calls the sweep made, outcomes
 * the application has not acknowledged, and the state file.  Counts and
 * ages only, never a reference id.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_momo_module.h"


#define NGX_HTTP_MOMO_METRICS_SWEEP_SIZE  4096


static char  *ngx_http_momo_metrics_ages[] = {
    "0-1m", "1m-5m", "5m-15m", "15m-1h", "1h-24h", "24h+"
};


static char  *ngx_http_momo_metrics_sweep_results[] = {
    "final", "pending", "error", "deferred", "given_up"
};


static char  *ngx_http_momo_metrics_loads[] = {
    "loaded", "none", "corrupt", "version"
};


size_t
ngx_http_momo_metrics_sweep_size(void)
{
    return NGX_HTTP_MOMO_METRICS_SWEEP_SIZE;
}


u_char *
ngx_http_momo_metrics_sweep(u_char *p, ngx_http_momo_main_conf_t *mmcf)
{
    ngx_uint_t                       i, notify;
    ngx_http_momo_use_t             *use;
    ngx_http_momo_zone_stats_t       st;
    ngx_http_momo_sweep_counters_t  *c;

    c = ngx_http_momo_sweep_counters(mmcf->shm_zone);
    if (c == NULL) {
        return p;
    }

    notify = 0;
    use = mmcf->accounts.elts;

    for (i = 0; i < mmcf->accounts.nelts; i++) {
        if (use[i].mlcf->notify.len) {
            notify = 1;
        }
    }

    /* without momo_notify, the notify gauges stay 0 */
    ngx_http_momo_zone_stats(mmcf->shm_zone, ngx_http_momo_wall_ms(), notify,
                             &st);

    p = ngx_http_momo_metrics_family(p, "momo_pending_payments", "gauge",
                                     "Payments MTN accepted without a final "
                                     "status yet, by time since acceptance.");

    for (i = 0; i < NGX_HTTP_MOMO_AGE_BUCKETS; i++) {
        p = ngx_sprintf(p, "momo_pending_payments{age=\"%s\"} %ui\n",
                        ngx_http_momo_metrics_ages[i], st.pending[i]);
    }

    p = ngx_http_momo_metrics_family(p, "momo_reconcile_sweeps_total",
                                     "counter",
                                     "Reconciler rounds that found work.");

    p = ngx_sprintf(p, "momo_reconcile_sweeps_total %uA\n", c->rounds);

    p = ngx_http_momo_metrics_family(p, "momo_reconcile_queries_total",
                                     "counter",
                                     "Status queries of the reconciler by "
                                     "result; given_up: pending past the "
                                     "last momo_reconcile age.");

    for (i = 0; i < NGX_HTTP_MOMO_SWEEP_MAX; i++) {
        p = ngx_sprintf(p, "momo_reconcile_queries_total{result=\"%s\"} "
                           "%uA\n",
                        ngx_http_momo_metrics_sweep_results[i],
                        c->results[i]);
    }

    p = ngx_http_momo_metrics_family(p, "momo_reconcile_takeovers_total",
                                     "counter",
                                     "Sweeps taken over from a worker that "
                                     "died or stopped.");

    p = ngx_sprintf(p, "momo_reconcile_takeovers_total %uA\n", c->takeovers);

    p = ngx_http_momo_metrics_family(p, "momo_status_budget_used_total",
                                     "counter",
                                     "Status calls drawn from the status "
                                     "budget, by who drew them.");

    p = ngx_sprintf(p, "momo_status_budget_used_total{by=\"sweep\"} %uA\n",
                    c->budget_used);

    p = ngx_http_momo_metrics_family(p, "momo_notify_pending", "gauge",
                                     "Final outcomes the application has not "
                                     "acknowledged yet.");

    p = ngx_sprintf(p, "momo_notify_pending %ui\n",
                    st.notify_pending);

    p = ngx_http_momo_metrics_family(p,
                                     "momo_notify_oldest_undelivered_seconds",
                                     "gauge",
                                     "Age of the oldest final outcome the "
                                     "application has not acknowledged.");

    p = ngx_sprintf(p, "momo_notify_oldest_undelivered_seconds %uL\n",
                    st.oldest_undelivered / 1000);

    p = ngx_http_momo_metrics_family(p, "momo_notify_retries_total", "counter",
                                     "Deliveries started by the reconciler, "
                                     "and outcomes given up after "
                                     "momo_notify_retry's total.");

    p = ngx_sprintf(p, "momo_notify_retries_total{result=\"sent\"} %uA\n"
                       "momo_notify_retries_total{result=\"given_up\"} "
                       "%uA\n",
                    c->notify_sent, c->notify_given_up);

    p = ngx_http_momo_metrics_family(p, "momo_state_writes_total", "counter",
                                     "Writes of the momo_zone state file.");

    p = ngx_sprintf(p, "momo_state_writes_total{result=\"ok\"} %uA\n"
                       "momo_state_writes_total{result=\"failed\"} %uA\n",
                    c->state_writes_ok, c->state_writes_failed);

    p = ngx_http_momo_metrics_family(p, "momo_state_loads_total", "counter",
                                     "Reads of the momo_zone state file at "
                                     "start, by result.");

    for (i = 0; i < NGX_HTTP_MOMO_STATE_LOAD_MAX; i++) {
        p = ngx_sprintf(p, "momo_state_loads_total{result=\"%s\"} %uA\n",
                        ngx_http_momo_metrics_loads[i], c->state_loads[i]);
    }

    p = ngx_http_momo_metrics_family(p, "momo_state_records_loaded", "gauge",
                                     "Payments read from the state file at "
                                     "start.");

    return ngx_sprintf(p, "momo_state_records_loaded %uA\n",
                       c->state_records);
}
