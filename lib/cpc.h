/*
 * Control-plane client: one TLS connection to np-server (docs/PROTOCOL.md),
 * driven by lib/ev.h.  Daemons keep it open for days (reconnect with
 * exponential backoff and full jitter, automatic re-issue of monitor);
 * CLI tools use the synchronous helpers at the end, which run the event
 * loop until one thing is done or a deadline passes.
 *
 * Life of a connection: resolve (getaddrinfo), non-blocking connect to each
 * address in turn, TLS 1.3 handshake, pinned server fingerprint checked
 * before a byte is sent, hello, auth (or enroll with a token) signed over
 * the nonce and the TLS channel binding, welcome.  Then requests (each
 * with a rid and its own callback) and pushed boxes (msg callback, acked
 * with np_cpc_ack() whenever the caller is done with one).
 *
 * Every frame from the server passes np_msg_validate(); a bad frame
 * closes the connection (and a reconnect follows when enabled).  Requests
 * still pending when a connection drops fail with NP_ERR_CLOSED.  A
 * fingerprint mismatch is never retried; refused auth (auth, revoked,
 * token) is not retried in a loop: the client stops (token, or reconnect
 * off) or waits the maximum backoff.
 *
 * Callbacks may call any np_cpc_* function, np_cpc_free() included.
 */
#ifndef NP_CPC_H
#define NP_CPC_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "conf.h"
#include "ev.h"
#include "ident.h"
#include "key.h"
#include "pin.h"

#define NP_CPC_DEFAULT_PORT "6464"
#define NP_CPC_BACKOFF_MIN_MS 250
#define NP_CPC_BACKOFF_MAX_MS 30000
#define NP_CPC_STABLE_MS 30000	      /* up this long: backoff resets */
#define NP_CPC_OUT_MAX (4 * 1024 * 1024) /* output buffer hard cap */
#define NP_CPC_OUT_HIGH (256 * 1024)    /* requests refused above this */
#define NP_CPC_MAX_PENDING 4096	      /* requests in flight */
#define NP_CPC_ROT_MAX 16	      /* rotation chain entries */
#define NP_CPC_DETAIL_MAX 256
#define NP_CPC_SERVERS_MAX 16	      /* np_cpc_conf.servers entries */
#define NP_CPC_EARLY_RETRIES 6	      /* closed before auth: tries again */
#define NP_CPC_EARLY_RETRY_MS 50      /* pauses: [50, 100], [50, 200] ... ms */

struct np_cpc;

struct np_cpc_conf {
	const char *host;	 /* required unless servers */
	const char *port;	 /* NULL: NP_CPC_DEFAULT_PORT */
	/* Instead of host/port: several np-server instances sharing one
	 * database (chained through next, at most NP_CPC_SERVERS_MAX).
	 * An attempt tries them in turn from the current one, moving on
	 * when one cannot be reached or fails before authentication; a
	 * connection that drops makes the next attempt start at the next
	 * one.  Every instance must present the pinned fingerprint. */
	const struct np_hostport *servers;
	const char *fingerprint; /* required: "SHA256:..." */
	const char *id;		 /* NULL: np_key_name(key) */
	struct np_key *key;	 /* borrowed, must outlive the client */
	const char *token;	 /* non-NULL: enroll instead of auth */
	int connect_timeout_ms;	 /* per phase; 0: 10000 */
	int reconnect;		 /* nonzero: reconnect after a drop */
	int backoff_min_ms;	 /* 0: NP_CPC_BACKOFF_MIN_MS */
	int backoff_max_ms;	 /* 0: NP_CPC_BACKOFF_MAX_MS */
	int keepalive_ms;	 /* >0: ping this often, drop if unanswered */
	const char *monitor_tag; /* NULL: monitor untagged; else the tag
				  * (np_tag_valid) sent on every monitor */
};

/* Connection state changes: up = 1 after welcome; up = 0 with the reason
 * (err) when the connection drops or an attempt fails.  stopped is 1 when
 * no further attempt will be made (fatal error or reconnect off). */
typedef void np_cpc_state_cb(struct np_cpc *c, int up, int err, int stopped,
    void *arg);

/* A box pushed by the server (valid during the callback only). */
struct np_cpc_push {
	int64_t seq;
	const char *from; /* "@name", recorded by the server */
	const char *mid;  /* 32 hex digits */
	int64_t ts;	  /* server's receive time, ms */
	const uint8_t *box;
	size_t box_len;
	const char *tag;  /* the box's tag, NULL when it had none */
};
typedef void np_cpc_msg_cb(struct np_cpc *c, const struct np_cpc_push *m,
    void *arg);

/* The answer to one request.  r is NP_OK for a result; otherwise the
 * server's error code mapped to an np_err (code/msg then hold the server's
 * words) or a local error (NP_ERR_CLOSED when the connection dropped,
 * code and msg NULL).  obj is the whole frame, borrowed, or NULL. */
struct np_cpc_result {
	int r;
	const char *code;
	const char *msg;
	struct json_object *obj;
};
typedef void np_cpc_req_cb(struct np_cpc *c, const struct np_cpc_result *res,
    void *arg);

/* Copies conf's strings; the key stays borrowed. */
int np_cpc_new(struct np_ev *ev, const struct np_cpc_conf *conf,
    struct np_cpc **out);
void np_cpc_free(struct np_cpc *c);
void np_cpc_set_state_cb(struct np_cpc *c, np_cpc_state_cb *cb, void *arg);
void np_cpc_set_msg_cb(struct np_cpc *c, np_cpc_msg_cb *cb, void *arg);

/* Begin connecting (and reconnecting, when enabled). */
int np_cpc_start(struct np_cpc *c);
/* Close the connection, fail pending requests, no more reconnects. */
void np_cpc_stop(struct np_cpc *c);
int np_cpc_is_up(const struct np_cpc *c);
/* Human-readable detail of the last failure ("" when none), e.g.
 * "expected SHA256:x, got SHA256:y" or "server: token: ...". */
const char *np_cpc_detail(const struct np_cpc *c);
/* Why the last connection or attempt ended (NP_OK: none yet). */
int np_cpc_last_error(const struct np_cpc *c);
/* Bytes waiting to be written; requests fail with NP_ERR_AGAIN while
 * this is above NP_CPC_OUT_HIGH. */
size_t np_cpc_out_pending(const struct np_cpc *c);

/*
 * Requests.  NP_ERR_CLOSED when not connected, NP_ERR_AGAIN when the
 * output buffer is over its high-water mark, NP_ERR_LIMIT with too many
 * in flight.  On NP_OK the callback runs exactly once (unless cancelled)
 * and *rid (may be NULL) names the request.
 */
int np_cpc_lookup(struct np_cpc *c, const char *id, np_cpc_req_cb *cb,
    void *arg, uint32_t *rid);
int np_cpc_send(struct np_cpc *c, const char *to, const char *mid,
    long ttl, const uint8_t *box, size_t len, np_cpc_req_cb *cb, void *arg,
    uint32_t *rid);
/* np_cpc_send with a tag (NULL: untagged; else np_tag_valid or
 * NP_ERR_INVALID): the server pushes the box only to the recipient's
 * connections monitoring with that tag. */
int np_cpc_send_tag(struct np_cpc *c, const char *to, const char *mid,
    long ttl, const char *tag, const uint8_t *box, size_t len,
    np_cpc_req_cb *cb, void *arg, uint32_t *rid);
int np_cpc_ping(struct np_cpc *c, np_cpc_req_cb *cb, void *arg,
    uint32_t *rid);
int np_cpc_rotate(struct np_cpc *c, const uint8_t new_pk[NP_PK_LEN],
    const uint8_t sig[NP_SIG_LEN], const uint8_t nsig[NP_SIG_LEN],
    np_cpc_req_cb *cb, void *arg, uint32_t *rid);
/* Start monitoring (with conf->monitor_tag, if any); re-issued after
 * every reconnect.  cb (may be NULL)
 * gets the answer to this first monitor request only.  If not connected
 * yet, monitoring begins on the next welcome and cb is not called. */
int np_cpc_monitor(struct np_cpc *c, np_cpc_req_cb *cb, void *arg);
/* Generic request: obj holds "t" and its members; rid is added. */
int np_cpc_request(struct np_cpc *c, struct json_object *obj,
    np_cpc_req_cb *cb, void *arg, uint32_t *rid);
/* Forget a pending request: its callback will not run. */
void np_cpc_cancel(struct np_cpc *c, uint32_t rid);
/* Acknowledge a pushed box.  NP_ERR_CLOSED when the connection that
 * carried it is gone (the server will push it again). */
int np_cpc_ack(struct np_cpc *c, int64_t seq);

/* A lookup result: the key and its rotation chain (oldest first). */
struct np_cpc_lookup_res {
	char id[NP_IDENT_MAX + 1];
	uint8_t pk[NP_PK_LEN];
	struct np_rot rot[NP_CPC_ROT_MAX];
	size_t nrot;
};
/* Parse a validated lookup result frame; NP_ERR_PROTO when malformed. */
int np_cpc_parse_lookup(struct json_object *obj,
    struct np_cpc_lookup_res *out);

/* The server the client is connected to, or trying now. */
void np_cpc_server(const struct np_cpc *c, const char **host,
    const char **port);

/* Map a server error code ("auth", "token", ...) to an np_err. */
int np_cpc_code_err(const char *code);

/* Backoff for attempt n (0-based): uniform in [min, min(max,
 * min*2^(n+1))] (full jitter above the floor). */
uint32_t np_cpc_backoff(uint32_t min_ms, uint32_t max_ms, unsigned attempt);

/* --- Synchronous helpers (CLI tools) --- */

/* Run the loop until the client is up or fails; NP_OK or the error
 * (NP_ERR_TIMEOUT after timeout_ms).  NP_OK also when the welcome came
 * and the connection dropped right after it (the enrollment stands; the
 * next request fails with NP_ERR_CLOSED).  Does not enable reconnects. */
int np_cpc_connect_wait(struct np_cpc *c, int timeout_ms);

/* Collects one answer for np_cpc_wait(). */
struct np_cpc_waiter {
	int done;
	int r;
	struct json_object *obj; /* own reference, or NULL */
	char detail[NP_CPC_DETAIL_MAX];
};
void np_cpc_waiter_cb(struct np_cpc *c, const struct np_cpc_result *res,
    void *arg);
void np_cpc_waiter_clear(struct np_cpc_waiter *w);
/* Run the loop until w is done (its r), the connection drops
 * (NP_ERR_CLOSED) or timeout_ms passes (NP_ERR_TIMEOUT, rid cancelled). */
int np_cpc_wait(struct np_cpc *c, struct np_cpc_waiter *w, uint32_t rid,
    int timeout_ms);

int np_cpc_lookup_sync(struct np_cpc *c, const char *id, int timeout_ms,
    struct np_cpc_lookup_res *out);
int np_cpc_send_sync(struct np_cpc *c, const char *to, const char *mid,
    long ttl, const uint8_t *box, size_t len, int timeout_ms);
int np_cpc_send_tag_sync(struct np_cpc *c, const char *to, const char *mid,
    long ttl, const char *tag, const uint8_t *box, size_t len,
    int timeout_ms);
int np_cpc_rotate_sync(struct np_cpc *c, const uint8_t new_pk[NP_PK_LEN],
    const uint8_t sig[NP_SIG_LEN], const uint8_t nsig[NP_SIG_LEN],
    int timeout_ms);
/* *ts: the server's clock (ms). */
int np_cpc_ping_sync(struct np_cpc *c, int timeout_ms, int64_t *ts);
int np_cpc_monitor_sync(struct np_cpc *c, int timeout_ms);

#endif
