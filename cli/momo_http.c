
/*
 * One blocking HTTP exchange with libcurl's easy API (fine in a CLI).
 *
 * Only the headers the caller built are sent, plus User-Agent and
 * Accept; redirects are not followed, so credentials never go to a
 * host that was not configured.
 */


#include <stdlib.h>
#include <string.h>

#include "momo_cli.h"


#define MOMO_HTTP_MAX_BODY      (1024 * 1024)
#define MOMO_CONNECT_TIMEOUT_MS 10000


static size_t momo_http_write(char *data, size_t size, size_t nmemb,
    void *user);
static struct curl_slist *momo_http_headers(const momo_http_req_t *rq);
static void momo_http_setup(CURL *curl, const momo_http_req_t *rq,
    momo_http_resp_t *rs);
static momo_net_e momo_http_classify(CURLcode rc);


int
momo_http_send(const momo_http_req_t *rq, momo_http_resp_t *rs)
{
    CURL               *curl;
    char               *ct;
    double              total;
    CURLcode            rc;
    struct curl_slist  *headers;

    memset(rs, 0, sizeof(*rs));
    rs->what = rq->what;
    rs->timeout_ms = rq->timeout_ms;
    snprintf(rs->method, sizeof(rs->method), "%s", rq->method);
    snprintf(rs->url, sizeof(rs->url), "%s", rq->url);

    curl = curl_easy_init();
    headers = momo_http_headers(rq);

    if (curl == NULL || headers == NULL) {
        rs->net = MOMO_NET_OTHER;
        snprintf(rs->error, sizeof(rs->error), "cannot set up libcurl");
        curl_slist_free_all(headers);
        curl_easy_cleanup(curl);
        return -1;
    }

    momo_http_setup(curl, rq, rs);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);

    rc = curl_easy_perform(curl);

    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &rs->status);

    total = 0;
    curl_easy_getinfo(curl, CURLINFO_TOTAL_TIME, &total);
    rs->elapsed_ms = (long) (total * 1000);

    ct = NULL;
    if (curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK
        && ct != NULL)
    {
        snprintf(rs->content_type, sizeof(rs->content_type), "%s", ct);
    }

    if (rc != CURLE_OK) {
        rs->net = momo_http_classify(rc);
        rs->status = 0;
        curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &rs->os_errno);

        if (rs->error[0] == '\0') {
            snprintf(rs->error, sizeof(rs->error), "%s",
                     curl_easy_strerror(rc));
        }
    }

    if (rs->body == NULL) {
        rs->body = calloc(1, 1);
    }

    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);

    return (rc == CURLE_OK) ? 0 : -1;
}


static void
momo_http_setup(CURL *curl, const momo_http_req_t *rq, momo_http_resp_t *rs)
{
    long  connect_ms;

    connect_ms = rq->timeout_ms < MOMO_CONNECT_TIMEOUT_MS
                 ? rq->timeout_ms : MOMO_CONNECT_TIMEOUT_MS;

    curl_easy_setopt(curl, CURLOPT_URL, rq->url);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, MOMO_USER_AGENT);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, rq->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, rs->error);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, momo_http_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, rs);

#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS,
                     (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif

    if (strcmp(rq->method, "GET") == 0) {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
        return;
    }

    /*
     * POSTFIELDS "" makes libcurl send "Content-Length: 0": MTN answers
     * 411 to a bodyless POST without it.
     */
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS,
                     rq->body != NULL ? rq->body : "");
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE,
                     (long) (rq->body != NULL ? strlen(rq->body) : 0));

    if (strcmp(rq->method, "POST") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, rq->method);
    }
}


static struct curl_slist *
momo_http_headers(const momo_http_req_t *rq)
{
    const char         **h;
    struct curl_slist   *list, *next;

    /* no "Expect: 100-continue" round trip, JSON answers wanted */
    list = curl_slist_append(NULL, "Expect:");
    if (list == NULL) {
        return NULL;
    }

    next = curl_slist_append(list, "Accept: application/json");
    if (next == NULL) {
        curl_slist_free_all(list);
        return NULL;
    }

    list = next;

    /* a bodyless POST has no type: libcurl would claim a form */
    if (rq->body == NULL && strcmp(rq->method, "GET") != 0) {
        next = curl_slist_append(list, "Content-Type:");
        if (next == NULL) {
            curl_slist_free_all(list);
            return NULL;
        }

        list = next;
    }

    for (h = rq->headers; h != NULL && *h != NULL; h++) {
        next = curl_slist_append(list, *h);
        if (next == NULL) {
            curl_slist_free_all(list);
            return NULL;
        }

        list = next;
    }

    return list;
}


static size_t
momo_http_write(char *data, size_t size, size_t nmemb, void *user)
{
    size_t             n;
    char              *p;
    momo_http_resp_t  *rs;

    rs = user;
    n = size * nmemb;

    if (rs->len + n > MOMO_HTTP_MAX_BODY) {
        return 0;
    }

    p = realloc(rs->body, rs->len + n + 1);
    if (p == NULL) {
        return 0;
    }

    memcpy(p + rs->len, data, n);
    rs->body = p;
    rs->len += n;
    rs->body[rs->len] = '\0';

    return n;
}


static momo_net_e
momo_http_classify(CURLcode rc)
{
    switch (rc) {

    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return MOMO_NET_DNS;

    case CURLE_COULDNT_CONNECT:
        return MOMO_NET_CONNECT;

    case CURLE_OPERATION_TIMEDOUT:
        return MOMO_NET_TIMEOUT;

    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        return MOMO_NET_CERT;

    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        return MOMO_NET_TLS;

    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
        return MOMO_NET_RESET;

    default:
        return MOMO_NET_OTHER;
    }
}


void
momo_http_free(momo_http_resp_t *rs)
{
    free(rs->body);
    rs->body = NULL;
    rs->len = 0;
}


/* the URL without scheme and host, for short messages */

const char *
momo_http_path(const momo_http_resp_t *rs)
{
    const char  *p;

    p = strstr(rs->url, "://");
    if (p == NULL) {
        return rs->url;
    }

    p = strchr(p + 3, '/');

    return (p != NULL) ? p : "/";
}
