/*
 * np-srd, the socket rendezvous (docs/np-srd.md, docs/PROTOCOL.md
 * "Rendezvous").  Internal interfaces of rendezvous/:
 *   srd_conf.c   srd.conf: keyword table, defaults, validation
 *   srd_slab.c   token secrets: one slab of sodium_malloc memory
 *   srd_table.c  the session table: mint, lookup, authenticate, expire
 *   srd_data.c   the data plane: listeners, pre-auth connections, relays
 *   srd_ctl.c    the control plane: srd.open boxes in, replies out
 *   srd_run.c    the daemon: set-up, signals, shutdown
 */
#ifndef NP_SRD_H
#define NP_SRD_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "ident.h"
#include "msg.h"
#include "srproto.h"

#define SRD_VERSION "0.1.0"
#define SRD_DEFAULT_CONF "/etc/noports/srd.conf"

#define SRD_DEFAULT_PUBLIC_HOST "127.0.0.1"
#define SRD_DEFAULT_MAX_PER_IDENT 32
#define SRD_DEFAULT_MAX_SESSIONS 20000
#define SRD_DEFAULT_AUTH_TIMEOUT 5
#define SRD_DEFAULT_SESSION_TIMEOUT 30
#define SRD_DEFAULT_IDLE_TIMEOUT 0
#define SRD_DEFAULT_KEEPALIVE 30
#define SRD_DEFAULT_GRACE_TIME 30
#define SRD_DEFAULT_MAX_PENDING 4096
#define SRD_DEFAULT_MAX_PENDING_SRC 64
#define SRD_REPLY_TTL 30 /* seconds, srd.session / srd.error boxes */
#define SRD_TAG_MAX NP_TAG_MAX /* reply tag "rt": [a-z0-9]{1,32} */

/* ---- srd.conf ---- */

struct srd_conf {
	char *identity;		   /* Identity @name (optional) */
	char *identity_file;	   /* IdentityFile (required) */
	struct np_hostport server; /* Server HOST:PORT (required) */
	char *server_fingerprint;  /* ServerFingerprint (required) */
	char *known_identities;	   /* KnownIdentities */
	char *public_host;	   /* PublicHost */
	char *listen_address;	   /* ListenAddress */
	long single_port;	   /* SinglePort: 0 = ephemeral mode */
	char *port_range;	   /* PortRange lo-hi */
	struct np_strlist allow;   /* Allow */
	long max_per_ident;	   /* MaxSessionsPerIdentity */
	long max_sessions;	   /* MaxSessions */
	long auth_timeout;	   /* AuthTimeout, s */
	long session_timeout;	   /* SessionTimeout, s */
	long idle_timeout;	   /* IdleTimeout, s, 0 none */
	long keepalive;		   /* KeepAlive, s, 0 off */
	long grace_time;	   /* GraceTime, s */
	long max_pending;	   /* MaxPending */
	long max_pending_src;	   /* MaxPendingPerSource */
	char *log_level;	   /* LogLevel */

	/* Derived by srd_conf_check(). */
	int port_lo, port_hi;	   /* 0, 0: any free port */
	int allow_all;		   /* Allow * */
	int level;		   /* NP_LOG_* */
};

extern const struct np_conf_kw srd_conf_table[];

/* Defaults (all owned values malloc'ed). */
int srd_conf_init(struct srd_conf *c);
/* Parse text after srd_conf_init(), then srd_conf_check().  Pure. */
int srd_conf_parse(struct srd_conf *c, const char *text, size_t len,
    const char *fname, char *err, size_t errlen);
/* srd_conf_init + np_conf_load + srd_conf_check. */
int srd_conf_load(struct srd_conf *c, const char *path, char *err,
    size_t errlen);
/* Check the values together and fill the derived fields. */
int srd_conf_check(struct srd_conf *c, const char *fname, char *err,
    size_t errlen);
void srd_conf_free(struct srd_conf *c);
/* 1 when id ("@name") may open sessions. */
int srd_conf_allowed(const struct srd_conf *c, const char *id);
/* "error" / "warn" / "info" / "debug" -> NP_LOG_*. */
int srd_log_level_parse(const char *s, int *level);
/* 1 if s is an IPv4 or IPv6 address literal. */
int srd_ip_literal(const char *s);

/* ---- token slab ---- */

#define SRD_SLOT_LEN (2 * NP_SR_TOKEN_LEN) /* both sides' tokens */
#define SRD_SLAB_CHUNK 1024		   /* slots per sodium_malloc */

struct srd_slab;

struct srd_slab *srd_slab_new(size_t max_slots);
void srd_slab_free(struct srd_slab *sl);
/* A fresh slot (zeroed); NP_ERR_LIMIT past max_slots. */
int srd_slab_get(struct srd_slab *sl, uint32_t *idx);
/* Wipe the slot and give it back. */
void srd_slab_put(struct srd_slab *sl, uint32_t idx);
/* SRD_SLOT_LEN bytes of slot idx. */
uint8_t *srd_slab_ptr(const struct srd_slab *sl, uint32_t idx);
size_t srd_slab_used(const struct srd_slab *sl);

/* ---- sessions ---- */

/* A socket address, compact (for the session log line). */
struct srd_addr {
	uint16_t family; /* 0: none */
	uint16_t port;
	uint8_t a[16];
};

struct srd;
struct srd_sess;
struct np_relay;

/* A listening socket: the single port, or one side of one session. */
struct srd_lst {
	struct srd *d;
	struct srd_sess *s; /* NULL: the single port */
	int fd;
	uint16_t port;
	uint8_t side;
	uint8_t paused;
	uint8_t probe_only; /* the probe port (ephemeral mode) */
	struct srd_lst *pnext; /* paused list */
};

/* Per-identity count of unfinished sessions. */
struct srd_owner {
	struct srd_owner *next;
	unsigned n;
	char id[NP_IDENT_MAX + 1];
};

enum srd_state {
	SRD_WAITING = 0, /* fewer than two sides in */
	SRD_RELAYING = 1,
};

struct srd_sess {
	char sid[NP_SR_SID_LEN + 1];
	uint8_t state;
	uint8_t used[2];      /* side authenticated (token spent) */
	uint32_t slot;	      /* token slab slot */
	struct srd_owner *owner;
	char *peer;	      /* "peer" of srd.open, or NULL */
	int64_t deadline_real; /* wall clock ms */
	uint64_t deadline;    /* monotonic ms */
	uint64_t created;     /* monotonic ms */
	int fd[2];	      /* authenticated sockets, -1 */
	struct srd_addr addr[2];
	struct srd_lst lst[2]; /* ephemeral listeners (fd -1: none) */
	struct np_relay *relay;
	struct srd_sess *hnext;	       /* hash chain */
	struct srd_sess *prev, *next;  /* waiting or relaying list */
};

struct srd_table;

struct srd_table *srd_table_new(size_t max_sessions, size_t max_per_ident);
/* Frees the remaining sessions (their fds are not closed). */
void srd_table_free(struct srd_table *t);
/*
 * A new waiting session for owner: fresh sid and tokens, deadline =
 * now + timeout.  NP_ERR_LIMIT: owner has max_per_ident unfinished
 * sessions (*why "too many sessions"); NP_ERR_TOO_BIG: the table is full
 * (*why "busy").
 */
int srd_table_mint(struct srd_table *t, const char *owner, const char *peer,
    uint64_t now, uint64_t timeout_ms, int64_t now_real,
    struct srd_sess **out, const char **why);
struct srd_sess *srd_table_find(const struct srd_table *t, const char *sid);
/* The token of side (NP_SR_TOKEN_LEN bytes, secret). */
const uint8_t *srd_table_token(const struct srd_table *t,
    const struct srd_sess *s, int side);
/*
 * Authenticate one side: the session exists, is waiting, not past its
 * deadline, side not used yet, side/sid match the endpoint (lsid NULL:
 * any, the single port), token equal (constant time).  On NP_OK the side
 * is marked used and its token wiped.  NP_ERR_AUTH otherwise.
 */
int srd_table_auth(struct srd_table *t, const char *sid, int side,
    const uint8_t token[NP_SR_TOKEN_LEN], const char *lsid, int lside,
    uint64_t now, struct srd_sess **out);
/* Move a session with both sides in to the relaying list. */
void srd_table_relaying(struct srd_table *t, struct srd_sess *s);
/* The first waiting session whose deadline is <= now, or NULL. */
struct srd_sess *srd_table_expired(const struct srd_table *t, uint64_t now);
/* Unlink, wipe the tokens, release the owner's count, free s. */
void srd_table_remove(struct srd_table *t, struct srd_sess *s);
size_t srd_table_count(const struct srd_table *t);
size_t srd_table_waiting(const struct srd_table *t);
size_t srd_table_relaying_count(const struct srd_table *t);
/* Unfinished sessions of owner. */
unsigned srd_table_owner_count(const struct srd_table *t, const char *owner);
struct srd_sess *srd_table_first_waiting(const struct srd_table *t);
struct srd_sess *srd_table_first_relaying(const struct srd_table *t);
/* Earliest waiting deadline (monotonic), 0 when none. */
uint64_t srd_table_next_deadline(const struct srd_table *t);

/* ---- the daemon ---- */

struct np_ev;
struct np_key;
struct np_pins;
struct np_replay;
struct np_cpc;
struct srd_dp; /* srd_data.c */
struct srd_cp; /* srd_ctl.c */

struct srd {
	struct srd_conf *conf;
	struct np_ev *ev;
	struct np_key *key;
	struct np_pins *pins;
	struct np_replay *replay;
	struct np_cpc *cpc;
	struct srd_table *table;
	struct srd_dp *dp;
	struct srd_cp *cp;
	int stopping;	      /* SIGTERM seen: no new sessions */
	int exit_code;
	uint64_t grace_timer;
};

struct srd_opts {
	const char *conf_path;
	int foreground; /* -D */
	int verbose;	/* -v */
};

/* Run np-srd until a signal ends it; the process exit code. */
int srd_main(const struct srd_opts *o);

/* Data plane (srd_data.c). */
int srd_data_start(struct srd *d);
/*
 * Mint a session for owner and open its endpoints; fills sr (the reply
 * body, holds the tokens: wipe it).  NP_ERR_LIMIT / NP_ERR_TOO_BIG with
 * *why on a refusal.
 */
int srd_data_open(struct srd *d, const char *owner, const char *peer,
    struct np_sr_session *sr, const char **why);
/*
 * Where and with what a client probes this np-srd (docs/PROTOCOL.md,
 * "Probes"): PublicHost, the single port or the probe port, and a fresh
 * ticket (base64url) good until *expires (wall clock ms).
 */
int srd_data_probeinfo(struct srd *d, const char **host, uint16_t *port,
    char ticket[NP_SR_TICKET_B64_LEN + 1], int64_t *expires);
/* End a session just opened whose reply could not be sent. */
void srd_data_cancel(struct srd *d, const char *sid);
/* Stop listening, drop pre-auth connections and waiting sessions. */
void srd_data_shutdown(struct srd *d);
/* Stop the relaying sessions now (end of the grace time). */
void srd_data_stop_relays(struct srd *d);
void srd_data_free(struct srd *d);

/* Control plane (srd_ctl.c). */

/* A parsed srd.open body. */
struct srd_open {
	char rt[SRD_TAG_MAX + 1];    /* reply tag; "" = untagged reply */
	char peer[NP_IDENT_MAX + 1]; /* "" when not given */
};

/*
 * Parse an srd.open body (docs/PROTOCOL.md, "Rendezvous"): an object with
 * at most the members "rt" (a tag, [a-z0-9]{1,32}) and "peer" (an
 * identity), both optional; NULL counts as {}.  Strict: any other member,
 * or a member of the wrong type or form, is NP_ERR_INVALID.  Even then
 * o->rt holds the rt when that member itself is valid, so the refusal can
 * be tagged.  Pure.
 */
int srd_open_parse(struct json_object *body, struct srd_open *o);
int srd_ctl_start(struct srd *d);
void srd_ctl_stop(struct srd *d);
void srd_ctl_free(struct srd *d);

/* Called when the number of sessions changes (shutdown completes). */
void srd_check_done(struct srd *d);
/* SIGTERM: no new sessions, end waiting ones, grace for relaying ones. */
void srd_begin_shutdown(struct srd *d);

#endif
