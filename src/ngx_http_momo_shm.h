
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
#define NGX_HTTP_MOMO_SHM_VERSION  6     /* the state file's walk */

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
    ngx_atomic_t                version;        /* by each store and drop */

    ngx_pid_t                   lease_pid;      /* 0: nobody refreshes */
    ngx_uint_t                  lease_serial;   /* the holder's stamp */
    ngx_msec_t                  lease_until;
    ngx_msec_t                  next_try;       /* when backoff is set */
    ngx_uint_t                  backoff;

    size_t                      key_len;
    u_char                      key[NGX_HTTP_MOMO_KEY_MAX];
} ngx_http_momo_token_t;


/*
 * A worker's copy of a fresh token it read from the zone: good, without
 * the zone's lock, while the zone's token keeps its version and the
 * token's refresh time has not come.
 */

struct ngx_http_momo_token_copy_s {
    ngx_http_momo_token_t      *token;          /* NULL: no copy */
    ngx_atomic_uint_t           version;
    ngx_uint_t                  gen;
    time_t                      refresh_at;
    size_t                      len;            /* "Bearer <token>" */
    u_char                      data[sizeof("Bearer ") - 1
                                     + NGX_HTTP_MOMO_TOKEN_MAX];
};


/*
 * A payment's reconcile and notify schedule, in wall-clock ms so that it
 * means the same after a restart (ngx_http_momo_state.c writes it).
 */

typedef struct {
    uint64_t                    accepted_at;    /* 0: MTN has not taken it */
    uint64_t                    final_at;       /* outcome known since */
    uint64_t                    notify_next;    /* no delivery before */
    uint32_t                    sweep_step;     /* momo_reconcile ages done */
    uint32_t                    notify_attempts;
    uint32_t                    given_up;       /* reconcile gave up */
    uint32_t                    notify_dead;    /* notify gave up */
} ngx_http_momo_sched_t;


typedef struct ngx_http_momo_node_s  ngx_http_momo_node_t;

struct ngx_http_momo_node_s {
    ngx_http_momo_node_t       *next;           /* in its hash bucket */
    uint32_t                    hash;           /* crc32 of the ref */
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

    ngx_http_momo_sched_t       sched;          /* kept in the state file */
    ngx_http_momo_record_t      rec;
};


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


/*
 * A ledger entry as the state file keeps it: no tree node, no lease (the
 * process that held it is gone when the file is read).
 */

typedef struct {
    u_char                      ref[NGX_HTTP_MOMO_UUID_LEN];
    u_char                      parent[NGX_HTTP_MOMO_UUID_LEN];
    u_char                      kind;
    u_char                      state;
    u_char                      currency_len;
    u_char                      phone_len;
    u_char                      currency[8];
    u_char                      phone[16];
    int64_t                     amount;
    int64_t                     reserved;
    int64_t                     sent;
} ngx_http_momo_ledger_saved_t;


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

    /* the records by reference id: hash & mask, chained by next */
    ngx_http_momo_node_t      **buckets;
    ngx_uint_t                  mask;
    ngx_queue_t                 lru[NGX_HTTP_MOMO_LRU_MAX];
    /* where the sweep goes on in each queue; NULL: at its oldest record */
    ngx_queue_t                *sweep_at[NGX_HTTP_MOMO_LRU_MAX];

    /*
     * The state file's walk (ngx_http_momo_state_save.c): its number, the
     * queue it copies, its next record there (the queue's sentinel: that
     * queue is done; NULL: no walk).
     */
    ngx_uint_t                  snap_walk;
    ngx_uint_t                  snap_lru;
    ngx_queue_t                *snap_at;

    ngx_http_momo_probe_t       probes[NGX_HTTP_MOMO_PROBES];
    ngx_uint_t                  probe_next;

    /* refunds and payouts, and payments' refund totals: never evicted */
    ngx_rbtree_t                ledger;
    ngx_rbtree_node_t           ledger_sentinel;

    /* filled in order and never freed: the first NULL ends the table */
    ngx_http_momo_token_t      *tokens[NGX_HTTP_MOMO_TOKENS];
    ngx_http_momo_budget_t     *budgets[NGX_HTTP_MOMO_TOKENS];

    ngx_http_momo_counters_t    counters;

    /* one worker sweeps at a time (ngx_http_momo_shm_sweep.c) */
    ngx_pid_t                   sweep_pid;
    ngx_msec_t                  sweep_until;
    ngx_atomic_t                changes;        /* bumped by each update */
    ngx_msec_t                  notify_first;   /* momo_notify_retry */
    ngx_msec_t                  notify_max;
    uint64_t                    state_written_at;   /* last state file */
    ngx_http_momo_sweep_counters_t  sweep;
} ngx_http_momo_shctx_t;


#define ngx_http_momo_shm_layout()                                           \
    (sizeof(ngx_http_momo_shctx_t) * 1000003                                 \
     + sizeof(ngx_http_momo_node_t) * 1009                                   \
     + sizeof(ngx_http_momo_token_t))


/* what is due in a sweep: a status query, a delivery, or a note */

typedef enum {
    NGX_HTTP_MOMO_DUE_QUERY = 0,
    NGX_HTTP_MOMO_DUE_NOTIFY,
    NGX_HTTP_MOMO_DUE_GIVEN_UP,         /* log it: reconcile gave up */
    NGX_HTTP_MOMO_DUE_NOTIFY_DEAD       /* log it: notify gave up */
} ngx_http_momo_due_e;


typedef struct {
    u_char                      ref[NGX_HTTP_MOMO_UUID_LEN];
    uint32_t                    account;
    ngx_uint_t                  kind;           /* ngx_http_momo_kind_e */
    ngx_http_momo_due_e         what;
    ngx_uint_t                  step;           /* QUERY: the age's index */
    uint64_t                    age;            /* ms since accepted/final */
} ngx_http_momo_due_t;


typedef struct {
    ngx_msec_t                 *ages;
    ngx_uint_t                  nages;
    ngx_msec_t                  notify_total;
    ngx_uint_t                  notify;         /* a momo_notify is set */
} ngx_http_momo_sweep_conf_t;


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
void ngx_http_momo_ledger_init(ngx_http_momo_shctx_t *sh);
void ngx_http_momo_ledger_failed_locked(ngx_http_momo_shctx_t *sh,
    u_char *ref);
ngx_uint_t ngx_http_momo_ledger_save_locked(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_ledger_saved_t *out, ngx_uint_t max);
ngx_uint_t ngx_http_momo_ledger_load(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_momo_ledger_saved_t *in,
    ngx_uint_t n);

/*
 * The hash of a reference id: its CRC32, read a byte at a time from the
 * 256-entry table (the 16-entry one of ngx_crc32_short takes two lookups
 * a byte and gives the same value).
 */
#define ngx_http_momo_ref_hash(ref)                                          \
    ngx_crc32_long(ref, NGX_HTTP_MOMO_UUID_LEN)

ngx_http_momo_node_t *ngx_http_momo_record_lookup(ngx_http_momo_shctx_t *sh,
    u_char *ref, uint32_t hash);
ngx_http_momo_node_t *ngx_http_momo_record_create(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool, u_char *ref, uint32_t hash);
void ngx_http_momo_sweep_unlink(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_node_t *mn);
void ngx_http_momo_record_touch(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_node_t *mn);

void ngx_http_momo_sched_stamp(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_node_t *mn, ngx_http_momo_record_t *src);
ngx_uint_t ngx_http_momo_sched_notify_due(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_node_t *mn);
void ngx_http_momo_sched_notified(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_node_t *mn, ngx_uint_t ok);
ngx_int_t ngx_http_momo_sweep_lease(ngx_shm_zone_t *zone, ngx_msec_t lease,
    ngx_uint_t *takeover);
void ngx_http_momo_sweep_release(ngx_shm_zone_t *zone);
ngx_uint_t ngx_http_momo_sweep_due(ngx_shm_zone_t *zone,
    ngx_http_momo_sweep_conf_t *conf, uint64_t now, ngx_http_momo_due_t *due,
    ngx_uint_t max);
void ngx_http_momo_sweep_swept(ngx_shm_zone_t *zone, u_char *ref,
    ngx_uint_t step);
ngx_int_t ngx_http_momo_state_load(ngx_shm_zone_t *zone,
    ngx_http_momo_shctx_t *sh, ngx_slab_pool_t *shpool);



#endif /* _NGX_HTTP_MOMO_SHM_H_INCLUDED_ */
