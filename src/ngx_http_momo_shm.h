
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * The layout of the momo shared zone, shared by the files that work
 * under its lock: ngx_http_momo_shm.c (the zone, counters, leases),
 * ngx_http_momo_shm_token.c (access tokens),
 * ngx_http_momo_shm_record.c (payment records) and
 * ngx_http_momo_shm_budget.c (the status budget of each account).
 */


#ifndef _NGX_HTTP_MOMO_SHM_H_INCLUDED_
#define _NGX_HTTP_MOMO_SHM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_momo_module.h"


#define NGX_HTTP_MOMO_SHM_MAGIC    0x6f6d6f6d    /* "momo" */
#define NGX_HTTP_MOMO_SHM_VERSION  2

#define NGX_HTTP_MOMO_TOKENS       NGX_HTTP_MOMO_ACCOUNTS
#define NGX_HTTP_MOMO_BACKOFF      1000  /* ms after a failed refresh */
#define NGX_HTTP_MOMO_EVICT        4     /* records freed per attempt */
#define NGX_HTTP_MOMO_PROBES       64    /* references nobody issued */


/*
 * The order in which records leave a full zone: first those nothing waits
 * for, last the payments whose outcome is still to come.  Each has its
 * own LRU queue.
 */

typedef enum {
    NGX_HTTP_MOMO_LRU_DONE = 0,         /* final and notified, or void */
    NGX_HTTP_MOMO_LRU_UNNOTIFIED,       /* final, the application not told */
    NGX_HTTP_MOMO_LRU_PENDING,          /* issued, no final status yet */
    NGX_HTTP_MOMO_LRU_MAX
} ngx_http_momo_lru_e;


typedef struct {
    time_t                      refresh_at;
    time_t                      expires_at;
    size_t                      len;            /* 0: no token */
    u_char                      data[NGX_HTTP_MOMO_TOKEN_MAX];
} ngx_http_momo_token_slot_t;


typedef struct {
    ngx_http_momo_token_slot_t  slot[2];
    ngx_uint_t                  active;         /* the slot readers use */
    ngx_uint_t                  gen;            /* bumped by each store */

    ngx_pid_t                   lease_pid;      /* 0: nobody refreshes */
    ngx_uint_t                  lease_serial;   /* the holder's stamp */
    ngx_msec_t                  lease_until;
    ngx_msec_t                  next_try;       /* when backoff is set */
    ngx_uint_t                  backoff;

    size_t                      key_len;
    u_char                      key[NGX_HTTP_MOMO_KEY_MAX];
} ngx_http_momo_token_t;


typedef struct {
    ngx_rbtree_node_t           node;           /* key: crc32 of the ref */
    ngx_queue_t                 queue;          /* in its lru[], newest first */

    ngx_msec_t                  query_until;
    ngx_msec_t                  last_query;
    ngx_msec_t                  notify_until;
    ngx_msec_t                  pay_until;
    ngx_uint_t                  pay_owner;      /* the pay lease's holder */
    ngx_pid_t                   query_pid;      /* 0: no query lease */
    ngx_pid_t                   pay_pid;        /* 0: no payment in flight */
    ngx_uint_t                  query_serial;
    ngx_pid_t                   notify_pid;
    ngx_uint_t                  notify_serial;
    unsigned                    queried:1;      /* last_query is set */
    unsigned                    notifying:1;    /* notify_until is set */

    ngx_http_momo_record_t      rec;
} ngx_http_momo_node_t;


/*
 * A status query for a reference the zone has no record of: MTN's answer
 * (404, or none) is kept here, in a small ring, so that such references
 * get the once-a-second limit without taking a payment's room.
 */

typedef struct {
    u_char                      ref[NGX_HTTP_MOMO_UUID_LEN];
    u_char                      state;          /* ngx_http_momo_state_e */
    u_char                      queried;        /* last_query is set */
    ngx_pid_t                   query_pid;
    ngx_uint_t                  query_serial;
    ngx_msec_t                  query_until;
    ngx_msec_t                  last_query;
    time_t                      checked_at;
} ngx_http_momo_probe_t;


/* the times of an account's last status grants, a ring of "size" */

typedef struct {
    ngx_uint_t                  size;
    ngx_uint_t                  n;              /* grants held, <= size */
    ngx_uint_t                  next;           /* where the next one goes */
    size_t                      key_len;
    u_char                      key[NGX_HTTP_MOMO_KEY_MAX];
    ngx_msec_t                  grant[1];
} ngx_http_momo_budget_t;


typedef struct {
    ngx_uint_t                  magic;
    ngx_uint_t                  version;
    size_t                      layout;         /* sizes of the structs */

    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 lru[NGX_HTTP_MOMO_LRU_MAX];

    ngx_http_momo_probe_t       probes[NGX_HTTP_MOMO_PROBES];
    ngx_uint_t                  probe_next;

    /* refunds and payouts, and payments' refund totals: never evicted */
    ngx_rbtree_t                ledger;
    ngx_rbtree_node_t           ledger_sentinel;

    /* filled in order and never freed: the first NULL ends the table */
    ngx_http_momo_token_t      *tokens[NGX_HTTP_MOMO_TOKENS];
    ngx_http_momo_budget_t     *budgets[NGX_HTTP_MOMO_TOKENS];

    ngx_http_momo_counters_t    counters;
} ngx_http_momo_shctx_t;


#define ngx_http_momo_shm_layout()                                           \
    (sizeof(ngx_http_momo_shctx_t) * 1000003                                 \
     + sizeof(ngx_http_momo_node_t) * 1009                                   \
     + sizeof(ngx_http_momo_token_t))


ngx_http_momo_shctx_t *ngx_http_momo_shm_ctx(ngx_shm_zone_t *zone,
    ngx_slab_pool_t **shpool);
void *ngx_http_momo_shm_alloc(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool, size_t size);
ngx_uint_t ngx_http_momo_lease_live(ngx_pid_t pid, ngx_msec_t until,
    ngx_msec_t now);

/* a lease stamped (pid, serial) is held by this worker's holder "serial" */
#define ngx_http_momo_lease_owned(pid, stamp, serial)                        \
    ((serial) != 0 && (pid) == ngx_pid && (stamp) == (serial))
ngx_uint_t ngx_http_momo_record_expire(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool);
void ngx_http_momo_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
void ngx_http_momo_ledger_init(ngx_http_momo_shctx_t *sh);
void ngx_http_momo_ledger_failed_locked(ngx_http_momo_shctx_t *sh,
    u_char *ref);


#endif /* _NGX_HTTP_MOMO_SHM_H_INCLUDED_ */
