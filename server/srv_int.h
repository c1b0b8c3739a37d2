/*
 * Internals of the server loop, shared by srv_run.c (listeners, timers,
 * signals), srv_conn.c (connection I/O and lifetime) and srv_proto.c
 * (authentication, requests, pushes).  Not a public interface.
 */
#ifndef NP_SRV_INT_H
#define NP_SRV_INT_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "buf.h"
#include "srv_cli.h"
#include "ev.h"
#include "srv_htab.h"
#include "ident.h"
#include "store.h"
#include "tls.h"

#define SRV_PREAUTH_MAX 8192	      /* input bytes before welcome */
#define SRV_OUT_HWM (256 * 1024)      /* stop reading above this */
#define SRV_OUT_MAX (4 * 1024 * 1024) /* hard cap on queued output */
#define SRV_READ_CHUNK 16384
#define SRV_READ_BUDGET (256 * 1024) /* per wake-up, for fairness */
#define SRV_INFLIGHT_MAX 32	     /* un-acked pushes per connection */
#define SRV_FETCH_BATCH 8
#define SRV_CLOSE_FLUSH_MS 2000 /* flush before close, at most */
#define SRV_TICK_MS 1000
#define SRV_EXPIRE_TICKS 60
#define SRV_ACCEPT_BACKOFF_MS 250
#define SRV_ACCEPT_BURST 1024
#define SRV_SRCKEY_LEN 17 /* family byte + 16 address bytes */
#define SRV_PEER_MAX 64

enum conn_state {
	C_HANDSHAKE = 1, /* TLS handshake running */
	C_AUTH,		 /* hello sent, waiting for auth / enroll */
	C_READY,	 /* welcome sent */
	C_CLOSING,	 /* flushing a last error, then close */
};

struct srv;
struct ident;

struct conn {
	struct srv *srv;
	int fd;
	enum conn_state state;
	unsigned dead : 1;   /* closed; freed by the reaper */
	unsigned unauth : 1; /* counted in its source's unauth */
	unsigned monitoring : 1;
	unsigned more : 1;	 /* the queue may hold unpushed boxes */
	unsigned paused : 1;	 /* output above the high-water mark */
	unsigned want_write : 1; /* TLS needs the socket writable */
	unsigned held : 1;	 /* output waits for the batch's commit */
	struct np_tls *tls;
	struct np_buf *in;     /* allocated while it holds bytes */
	struct np_buf *out;    /* allocated while it holds bytes */
	uint64_t timer;	       /* auth deadline or close deadline */
	uint64_t resume_timer; /* continue reading buffered input */
	size_t preauth_bytes;
	uint8_t srckey[SRV_SRCKEY_LEN];
	char peer[SRV_PEER_MAX];
	char id[NP_IDENT_MAX + 1];   /* "" until authenticated */
	uint8_t pk[NP_STORE_PK_LEN]; /* key it authenticated with */
	uint8_t nonce[32];
	uint8_t cb[NP_TLS_CB_LEN];
	char tag[NP_STORE_TAG_MAX + 1]; /* monitor's tag, "" if none */
	int64_t push_after; /* highest seq pushed (of its tag) */
	int64_t *inflight;  /* SRV_INFLIGHT_MAX, when monitoring */
	size_t ninflight;
	struct ident *ident;
	struct conn *inext, *iprev; /* connections of one identity */
	struct conn *next, *prev;   /* all live connections */
	struct conn *dnext;	    /* the dead list */
	struct conn *snext, *sprev; /* unauthenticated, of one source */
	struct conn *hnext, *hprev; /* held for the batch (srv->held) */
};

/* One authenticated identity with its live connections. */
struct ident {
	char name[NP_IDENT_MAX + 1];
	struct conn *conns;
	struct ident *next, *prev;
};

/* Unauthenticated connections from one source address, oldest first. */
struct src {
	unsigned n;
	struct conn *head, *tail;
};

/* At most one line a second for a noisy event; the rest are counted. */
struct ratelog {
	uint64_t last_ms;
	unsigned suppressed;
};

struct srv {
	struct np_ev *ev;
	struct np_store *store;
	struct np_tls_ctx *tls;
	const struct srv_conf *conf;
	int lfds[16];
	size_t nlfd;
	int accept_paused;
	uint64_t accept_timer;
	uint64_t tick_timer;
	unsigned ticks;
	uint64_t reap_timer;
	uint64_t stop_timer;
	int stopping;
	size_t nconns;
	struct conn *conns;
	struct conn *dead;
	struct srv_htab *idents; /* name -> struct ident */
	struct ident *ident_list;
	struct srv_htab *srcs; /* srckey -> struct src */
	/*
	 * Group commit: the store writes of one pass of the event loop share
	 * one transaction (np_store_batch_begin), committed by a 0 ms timer
	 * at the start of the next pass.  Until then no connection writes
	 * application data: the output of the pass (results, pushes of the
	 * new boxes, welcomes) is held, so nobody hears of a write before it
	 * is durable.  A failed commit closes every held connection.
	 */
	uint64_t commit_timer;
	struct conn *held;
	int watch_fd; /* np_store_watch_fd in the loop, -1 when none */
	int watch_down; /* the last np_store_watch_read failed */
	uint8_t *boxbuf; /* NP_STORE_BOX_MAX: a send's box, decoded */
	struct ratelog rl_full, rl_src, rl_accept, rl_evict;
};

/* srv_conn.c */
int srv_conn_new(struct srv *s, int fd, const void *sa, size_t salen);
void srv_conn_close(struct conn *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Send an error without rid, then close once it is flushed. */
void srv_conn_fail(struct conn *c, const char *code, const char *msg);
/* Queue one frame.  A failure closes the connection (check c->dead). */
int srv_conn_send(struct conn *c, struct json_object *obj);
/* Queue a frame of len bytes that the caller writes at *dst (they must be
 * one JSON object).  A failure closes the connection. */
int srv_conn_frame(struct conn *c, size_t len, uint8_t **dst);
void srv_conn_flush(struct conn *c);
void srv_conn_update(struct conn *c);
size_t srv_conn_outlen(const struct conn *c);
void srv_conn_ident_add(struct conn *c);
/* Stop counting c against its source's unauthenticated limit. */
void srv_conn_unauth_release(struct conn *c);
int srv_ratelog_ok(struct ratelog *rl, unsigned *suppressed);
/* Before a store write on behalf of c: opens the pass's batch if need be
 * and holds c's output until it commits.  NP_OK or the store's error. */
int srv_batch_write(struct conn *c);
/* Commit the open batch (if any) and release what was held for it. */
void srv_batch_commit(struct srv *s);
/* srv_run.c: take what other instances committed (np_store_watch_read)
 * and keep the watched fd current; after each commit and each tick. */
void srv_watch_poll(struct srv *s);

/* srv_proto.c */
int srv_proto_hello(struct conn *c);
int srv_proto_frame(struct conn *c, struct json_object *obj);
void srv_proto_pump(struct conn *c);
/*
 * A box for name with tag arrived: push it to name's monitoring
 * connections with that tag.  name NULL: every monitoring connection
 * (tag ignored).  rescan: the box may have been committed by another
 * instance, with a seq below what was pushed already.
 */
void srv_proto_route(struct srv *s, const char *name, const char *tag,
		     int rescan);
void srv_proto_check_revoked(struct srv *s);

#endif
