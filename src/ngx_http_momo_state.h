
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * The state file's format (momo_zone ... state=PATH): read by
 * ngx_http_momo_state.c, written by ngx_http_momo_state_save.c.
 */


#ifndef _NGX_HTTP_MOMO_STATE_H_INCLUDED_
#define _NGX_HTTP_MOMO_STATE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_momo_shm.h"


#define NGX_HTTP_MOMO_STATE_MAGIC    "MOMOSTAT"
#define NGX_HTTP_MOMO_STATE_FORMAT   2       /* of the file */


typedef struct {
    u_char                      magic[8];
    uint32_t                    version;
    uint32_t                    entry_size;
    uint64_t                    count;
    uint64_t                    written_at;     /* wall-clock ms */
    uint32_t                    crc;            /* of all that follows */
    uint32_t                    ledger_size;    /* a ledger entry's */
    uint64_t                    ledger_count;
} ngx_http_momo_state_header_t;


/* as far as every version's header goes: magic and version */
#define NGX_HTTP_MOMO_STATE_VERSIONED                                        \
    offsetof(ngx_http_momo_state_header_t, entry_size)


typedef struct {
    ngx_http_momo_record_t      rec;
    ngx_http_momo_sched_t       sched;
} ngx_http_momo_state_entry_t;


#endif /* _NGX_HTTP_MOMO_STATE_H_INCLUDED_ */
