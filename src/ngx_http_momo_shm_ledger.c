
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * The ledger of money going out, in the momo zone: one entry per refund
 * or payout (its parameters and whether MTN has it), and one per
 * refunded payment (its amount and the refunds reserved against it).
 * Unlike payment records, ledger entries are never evicted: losing one
 * would let a refund exceed its payment or a payout go out twice.
 *
 * A refund's amount is reserved under the zone lock before MTN sees it,
 * so two refunds sent at once by two workers cannot exceed the payment;
 * the reservation is released only when MTN refuses the refund or
 * reports it failed, never when its outcome is unknown.
 *
 * The request sending an entry holds it as a lease stamped (pid, serial),
 * like every lease in the zone (ngx_http_momo_lease_owned): once the
 * lease has expired and another request has taken the entry over, the
 * late holder's outcome changes nothing, and its reservation stays.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_momo_shm.h"


typedef struct {
    ngx_rbtree_node_t           node;           /* key: crc32 of the ref */
    u_char                      ref[NGX_HTTP_MOMO_UUID_LEN];
    u_char                      parent[NGX_HTTP_MOMO_UUID_LEN];
    u_char                      kind;           /* payment: a total */
    u_char                      state;          /* ngx_http_momo_op_state_e */
    u_char                      currency_len;
    u_char                      phone_len;
    u_char                      currency[8];
    u_char                      phone[16];
    int64_t                     amount;         /* hundredths */
    int64_t                     reserved;       /* payment: its refunds */
    ngx_pid_t                   pid;            /* sending */
    ngx_uint_t                  serial;         /* the sender's stamp */
    ngx_msec_t                  until;
    time_t                      sent;
} ngx_http_momo_ledger_t;


static ngx_int_t ngx_http_momo_ledger_reserve(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_momo_ledger_t *e,
    ngx_http_momo_op_t *op);
static ngx_uint_t ngx_http_momo_ledger_same(ngx_http_momo_ledger_t *e,
    ngx_http_momo_op_t *op);
static ngx_http_momo_ledger_t *ngx_http_momo_ledger_lookup(
    ngx_http_momo_shctx_t *sh, u_char *ref);
static ngx_http_momo_ledger_t *ngx_http_momo_ledger_create(
    ngx_http_momo_shctx_t *sh, ngx_slab_pool_t *shpool, u_char *ref,
    ngx_uint_t kind);
static void ngx_http_momo_ledger_release(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_ledger_t *e);
static void ngx_http_momo_ledger_stamp(ngx_http_momo_ledger_t *e,
    ngx_msec_t lease, ngx_uint_t serial);
static void ngx_http_momo_ledger_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);


void
ngx_http_momo_ledger_init(ngx_http_momo_shctx_t *sh)
{
    ngx_rbtree_init(&sh->ledger, &sh->ledger_sentinel,
                    ngx_http_momo_ledger_insert_value);
}


/*
 * Before a refund or payout is sent.  NGX_OK: it is this request's to
 * send (a refund's amount is reserved).  NGX_DONE: MTN has it already.
 * NGX_AGAIN: an earlier try's outcome is unknown, ask MTN first.
 * NGX_BUSY: another request is sending it now.  NGX_ABORT: its key was
 * used with other parameters.  NGX_DECLINED: the payment's refunds would
 * exceed it (op->refunded says how much is taken).  NGX_OK stamps the
 * entry with this worker's pid and "serial" for "lease" ms.
 */

ngx_int_t
ngx_http_momo_ledger_begin(ngx_shm_zone_t *zone, ngx_http_momo_op_t *op,
    ngx_msec_t lease, ngx_uint_t serial)
{
    ngx_int_t                rc;
    ngx_slab_pool_t         *shpool;
    ngx_http_momo_shctx_t   *sh;
    ngx_http_momo_ledger_t  *e;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&shpool->mutex);

    e = ngx_http_momo_ledger_lookup(sh, op->ref);

    if (e == NULL) {
        e = ngx_http_momo_ledger_create(sh, shpool, op->ref, op->kind);
        if (e == NULL) {
            rc = NGX_ERROR;
            goto done;
        }

        e->amount = op->amount;
        e->currency_len = (u_char) ngx_min(op->currency.len, 8);
        ngx_memcpy(e->currency, op->currency.data, e->currency_len);
        e->phone_len = (u_char) ngx_min(op->phone.len, 16);
        ngx_memcpy(e->phone, op->phone.data, e->phone_len);

        if (op->parent) {
            ngx_memcpy(e->parent, op->parent, NGX_HTTP_MOMO_UUID_LEN);
        }

        e->state = NGX_HTTP_MOMO_OP_RELEASED;

    } else if (!ngx_http_momo_ledger_same(e, op)) {
        rc = NGX_ABORT;
        goto done;
    }

    op->state = e->state;
    op->sent = e->sent;

    switch (e->state) {

    case NGX_HTTP_MOMO_OP_SENDING:

        if (ngx_http_momo_lease_live(e->pid, e->until, ngx_current_msec)) {
            rc = NGX_BUSY;
            break;
        }

        /* its sender died, or outlived its lease: the answer is unknown */

        e->state = NGX_HTTP_MOMO_OP_UNKNOWN;
        e->pid = 0;
        e->serial = 0;
        op->state = e->state;

        /* fall through */

    case NGX_HTTP_MOMO_OP_UNKNOWN:
        rc = NGX_AGAIN;
        break;

    case NGX_HTTP_MOMO_OP_ACCEPTED:
        rc = NGX_DONE;
        break;

    default: /* NGX_HTTP_MOMO_OP_RELEASED: new, or refused before */
        rc = ngx_http_momo_ledger_reserve(sh, shpool, e, op);
        break;
    }

    if (rc == NGX_OK) {
        ngx_http_momo_ledger_stamp(e, lease, serial);
    }

done:

    ngx_shmtx_unlock(&shpool->mutex);

    if (rc != NGX_ERROR) {
        (void) ngx_atomic_fetch_add(&sh->changes, 1);     /* state file */
    }

    return rc;
}


static ngx_int_t
ngx_http_momo_ledger_reserve(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_momo_ledger_t *e,
    ngx_http_momo_op_t *op)
{
    ngx_http_momo_ledger_t  *p;

    if (op->kind != NGX_HTTP_MOMO_KIND_REFUND) {
        return NGX_OK;
    }

    p = ngx_http_momo_ledger_lookup(sh, op->parent);

    if (p == NULL) {
        p = ngx_http_momo_ledger_create(sh, shpool, op->parent,
                                        NGX_HTTP_MOMO_KIND_PAYMENT);
        if (p == NULL) {
            return NGX_ERROR;
        }

        p->amount = op->total;
    }

    op->refunded = p->reserved;

    if (p->reserved + op->amount > p->amount) {
        return NGX_DECLINED;
    }

    p->reserved += op->amount;

    return NGX_OK;
}


/* the same operation: a retry, not a reused key */

static ngx_uint_t
ngx_http_momo_ledger_same(ngx_http_momo_ledger_t *e, ngx_http_momo_op_t *op)
{
    if (e->kind != op->kind
        || e->amount != op->amount
        || e->currency_len != op->currency.len
        || ngx_memcmp(e->currency, op->currency.data, e->currency_len) != 0
        || e->phone_len != ngx_min(op->phone.len, 16)
        || ngx_memcmp(e->phone, op->phone.data, e->phone_len) != 0)
    {
        return 0;
    }

    if (op->parent
        && ngx_memcmp(e->parent, op->parent, NGX_HTTP_MOMO_UUID_LEN) != 0)
    {
        return 0;
    }

    return 1;
}


/*
 * After a try, by the request holding the entry (its "serial"):
 * NGX_HTTP_MOMO_OP_ACCEPTED (MTN has it), _UNKNOWN (no answer: the
 * reservation stays) or _RELEASED (MTN refused it).  A holder whose lease
 * was taken over changes nothing.  With serial 0, from a request that
 * holds nothing and read MTN's status: an unknown outcome is accepted.
 * A refund already released by its FAILED status stays released.
 */

void
ngx_http_momo_ledger_end(ngx_shm_zone_t *zone, u_char *ref, ngx_uint_t state,
    ngx_uint_t serial)
{
    ngx_slab_pool_t         *shpool;
    ngx_http_momo_shctx_t   *sh;
    ngx_http_momo_ledger_t  *e;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&shpool->mutex);

    e = ngx_http_momo_ledger_lookup(sh, ref);

    if (e != NULL && serial == 0) {

        if (e->state == NGX_HTTP_MOMO_OP_UNKNOWN
            && state == NGX_HTTP_MOMO_OP_ACCEPTED)
        {
            e->state = NGX_HTTP_MOMO_OP_ACCEPTED;
        }

    } else if (e != NULL && e->state == NGX_HTTP_MOMO_OP_SENDING
               && ngx_http_momo_lease_owned(e->pid, e->serial, serial))
    {
        if (state == NGX_HTTP_MOMO_OP_RELEASED) {
            ngx_http_momo_ledger_release(sh, e);

        } else {
            e->state = (u_char) state;
        }

        e->pid = 0;
        e->serial = 0;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    (void) ngx_atomic_fetch_add(&sh->changes, 1);
}


/*
 * An operation whose earlier try is unknown, and MTN still does not know
 * it after a while: it never arrived.  Sent again with the same
 * reference id (MTN's 409 guards it) by the one request that wins this.
 */

ngx_int_t
ngx_http_momo_ledger_resend(ngx_shm_zone_t *zone, u_char *ref,
    ngx_msec_t lease, ngx_uint_t serial)
{
    ngx_int_t                rc;
    ngx_slab_pool_t         *shpool;
    ngx_http_momo_shctx_t   *sh;
    ngx_http_momo_ledger_t  *e;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_BUSY;

    ngx_shmtx_lock(&shpool->mutex);

    e = ngx_http_momo_ledger_lookup(sh, ref);

    if (e != NULL && e->state == NGX_HTTP_MOMO_OP_UNKNOWN) {
        ngx_http_momo_ledger_stamp(e, lease, serial);
        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    (void) ngx_atomic_fetch_add(&sh->changes, 1);

    return rc;
}


/* called under the lock when a refund's record turns FAILED */

void
ngx_http_momo_ledger_failed_locked(ngx_http_momo_shctx_t *sh, u_char *ref)
{
    ngx_http_momo_ledger_t  *e;

    e = ngx_http_momo_ledger_lookup(sh, ref);

    if (e != NULL && e->state != NGX_HTTP_MOMO_OP_RELEASED) {
        ngx_http_momo_ledger_release(sh, e);
        e->pid = 0;
        e->serial = 0;
        (void) ngx_atomic_fetch_add(&sh->changes, 1);
    }
}


/* the entry is this request's to send: no other may for "lease" ms */

static void
ngx_http_momo_ledger_stamp(ngx_http_momo_ledger_t *e, ngx_msec_t lease,
    ngx_uint_t serial)
{
    e->state = NGX_HTTP_MOMO_OP_SENDING;
    e->pid = ngx_pid;
    e->serial = serial;
    e->until = ngx_current_msec + lease;
    e->sent = ngx_time();
}


static void
ngx_http_momo_ledger_release(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_ledger_t *e)
{
    ngx_http_momo_ledger_t  *p;

    e->state = NGX_HTTP_MOMO_OP_RELEASED;

    if (e->kind != NGX_HTTP_MOMO_KIND_REFUND) {
        return;
    }

    p = ngx_http_momo_ledger_lookup(sh, e->parent);

    if (p != NULL) {
        p->reserved -= ngx_min(e->amount, p->reserved);
    }
}


/*
 * For the state file (ngx_http_momo_state.c), under the lock: every
 * entry, at most max.  Payments' totals and their refunds' reservations
 * go with them, so a restart neither forgets what was refunded nor
 * frees what is reserved.
 */

ngx_uint_t
ngx_http_momo_ledger_save_locked(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_ledger_saved_t *out, ngx_uint_t max)
{
    ngx_uint_t               n;
    ngx_rbtree_node_t       *node;
    ngx_http_momo_ledger_t  *e;

    if (sh->ledger.root == sh->ledger.sentinel) {
        return 0;
    }

    n = 0;

    for (node = ngx_rbtree_min(sh->ledger.root, sh->ledger.sentinel);
         node != NULL && n < max;
         node = ngx_rbtree_next(&sh->ledger, node))
    {
        e = (ngx_http_momo_ledger_t *) node;

        ngx_memzero(&out[n], sizeof(ngx_http_momo_ledger_saved_t));

        ngx_memcpy(out[n].ref, e->ref, NGX_HTTP_MOMO_UUID_LEN);
        ngx_memcpy(out[n].parent, e->parent, NGX_HTTP_MOMO_UUID_LEN);
        out[n].kind = e->kind;
        out[n].state = e->state;
        out[n].currency_len = e->currency_len;
        out[n].phone_len = e->phone_len;
        ngx_memcpy(out[n].currency, e->currency, sizeof(e->currency));
        ngx_memcpy(out[n].phone, e->phone, sizeof(e->phone));
        out[n].amount = e->amount;
        out[n].reserved = e->reserved;
        out[n].sent = e->sent;

        n++;
    }

    return n;
}


/*
 * In the master, before any worker, from the state file: the entries the
 * zone has room for, in the file's order.  A refund or payout that was
 * being sent when the file was written has an unknown outcome now.
 */

ngx_uint_t
ngx_http_momo_ledger_load(ngx_http_momo_shctx_t *sh, ngx_slab_pool_t *shpool,
    ngx_http_momo_ledger_saved_t *in, ngx_uint_t n)
{
    ngx_uint_t               i, loaded;
    ngx_http_momo_ledger_t  *e;

    loaded = 0;

    for (i = 0; i < n; i++) {

        if (ngx_http_momo_ledger_lookup(sh, in[i].ref) != NULL) {
            continue;
        }

        e = ngx_http_momo_ledger_create(sh, shpool, in[i].ref, in[i].kind);
        if (e == NULL) {
            break;
        }

        ngx_memcpy(e->parent, in[i].parent, NGX_HTTP_MOMO_UUID_LEN);
        e->state = in[i].state;
        e->currency_len = ngx_min(in[i].currency_len, sizeof(e->currency));
        e->phone_len = ngx_min(in[i].phone_len, sizeof(e->phone));
        ngx_memcpy(e->currency, in[i].currency, sizeof(e->currency));
        ngx_memcpy(e->phone, in[i].phone, sizeof(e->phone));
        e->amount = in[i].amount;
        e->reserved = in[i].reserved;
        e->sent = (time_t) in[i].sent;

        if (e->state == NGX_HTTP_MOMO_OP_SENDING) {
            e->state = NGX_HTTP_MOMO_OP_UNKNOWN;
        }

        loaded++;
    }

    return loaded;
}


static ngx_http_momo_ledger_t *
ngx_http_momo_ledger_lookup(ngx_http_momo_shctx_t *sh, u_char *ref)
{
    uint32_t                 hash;
    ngx_int_t                rc;
    ngx_rbtree_node_t       *node, *sentinel;
    ngx_http_momo_ledger_t  *e;

    hash = ngx_http_momo_ref_hash(ref);

    node = sh->ledger.root;
    sentinel = sh->ledger.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        e = (ngx_http_momo_ledger_t *) node;

        rc = ngx_memcmp(ref, e->ref, NGX_HTTP_MOMO_UUID_LEN);

        if (rc == 0) {
            return e;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static ngx_http_momo_ledger_t *
ngx_http_momo_ledger_create(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool, u_char *ref, ngx_uint_t kind)
{
    ngx_http_momo_ledger_t  *e;

    /* payment records make room if the zone is full; ledgers never do */

    e = ngx_http_momo_shm_alloc(sh, shpool, sizeof(ngx_http_momo_ledger_t));
    if (e == NULL) {
        return NULL;
    }

    ngx_memzero(e, sizeof(ngx_http_momo_ledger_t));

    e->node.key = ngx_http_momo_ref_hash(ref);
    ngx_memcpy(e->ref, ref, NGX_HTTP_MOMO_UUID_LEN);
    e->kind = (u_char) kind;

    ngx_rbtree_insert(&sh->ledger, &e->node);

    return e;
}


static void
ngx_http_momo_ledger_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t       **p;
    ngx_http_momo_ledger_t   *e, *et;

    for ( ;; ) {

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            e = (ngx_http_momo_ledger_t *) node;
            et = (ngx_http_momo_ledger_t *) temp;

            p = (ngx_memcmp(e->ref, et->ref, NGX_HTTP_MOMO_UUID_LEN) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}
