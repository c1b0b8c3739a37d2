/*
 * Client side of a session with a device (docs/PROTOCOL.md "Sessions
 * between a client and a device"), shared by np proxy, np ssh and np ping:
 * host-name resolution and the checks on ssh's %h %p %r, the files ssh
 * reads (session key, known_hosts), and the set-up over the control plane
 * and the rendezvous.
 */
#ifndef NP_PROXY_SESSION_H
#define NP_PROXY_SESSION_H

#include <sys/types.h>

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "box.h"
#include "buf.h"
#include "cli.h"
#include "config.h"
#include "cpc.h"
#include "ident.h"
#include "key.h"
#include "msg.h"
#include "relay.h"
#include "spool.h"
#include "srproto.h"
#include "srec.h"
#include "sshkey.h"

#define NP_HOSTNAME_MAX 253
#define NP_NOPORTS_SUFFIX ".noports"
#define NP_SESSION_BOX_TTL 30	    /* seconds, every set-up box */
#define NP_HOSTKEYS_MAX 16	    /* host keys taken from a device */
#define NP_KNOWN_HOSTS_MAX (4 * 1024 * 1024)
#define NP_KH_NAME_MAX (NP_HOSTNAME_MAX + 16)
#define NP_PUSH_BYTES_MAX (2 * 1024 * 1024) /* queued pushed boxes */

/* Where a host name leads. */
struct np_target {
	char host[NP_HOSTNAME_MAX + 1];	 /* the name, lowercased */
	char ident[NP_IDENT_MAX + 1];	 /* "@name" */
	char device[NP_DEVNAME_MAX + 1]; /* "default" unless named */
};

/*
 * Resolve HOST: an alias (ALIAS or ALIAS.noports), DEVICE.NAME.noports
 * (device DEVICE of @NAME: the first label is the device) or NAME.noports
 * (device "default" of @NAME).  ASCII upper case is folded; anything but
 * [a-z0-9_.-] is refused.  Pure; NP_ERR_INVALID with a reason in why.
 */
int np_target_resolve(const char *host, const struct np_alias *aliases,
    size_t naliases, struct np_target *t, char *why, size_t whylen);
/* User names: np_user_valid() of lib/spool.h, the rule np-deviced
 * applies ([a-z_][a-z0-9_.-]{0,30}, optional final '$'). */
/* Decimal 1..65535 with no sign, space or leading zero; 0 on success. */
int np_port_parse(const char *s, uint16_t *port);

/* "HOST" for port 22, else "[HOST]:PORT" (ssh's known_hosts name). */
int np_kh_name(const char *host, uint16_t port, char *out, size_t outlen);
/*
 * Pure: append to out the known_hosts text old[0..len) without the lines
 * whose host field is exactly name (comments, markers such as @revoked,
 * hashed and other hosts' lines are kept byte for byte), then one line
 * "name KEY" for each keys[i] ("TYPE BASE64").  A last line without a
 * newline gets one.
 */
int np_kh_rewrite(const uint8_t *old, size_t len, const char *name,
    char *const *keys, size_t nkeys, struct np_buf *out);
/*
 * Rewrite path that way, atomically (temp + rename, 0600), under an
 * exclusive flock on "path.lock" so concurrent writers keep each other's
 * lines.  The directory is created (0700) when missing.
 */
int np_kh_update(const char *path, const char *name, char *const *keys,
    size_t nkeys);
/*
 * The client's session key for USER@HOST: dir/USER@HOST, the snippet's
 * IdentityFile (docs/ARCHITECTURE.md, "Departures").  dir is created
 * (0700) when missing; the full path goes to path.
 *
 * An existing file is used as it is: it must be a regular file (no
 * symlink) owned by the euid, mode without group/other bits, at most
 * NP_SSHKEY_PRIV_MAX bytes, holding an unencrypted OpenSSH Ed25519
 * private key; otherwise NP_ERR_PERM (unsafe) or NP_ERR_INVALID (not
 * such a key) and the file is left alone.  A missing file is created
 * with a fresh key: written to a temp file, then link()ed into place, so
 * of several processes creating it at once exactly one wins and the
 * others read the winner's key.  The file is never replaced or removed
 * here: ssh may already have read its public half.  *created (may be
 * NULL) tells whether this call made it.  On NP_OK *out holds the key
 * (secret half in secure memory; np_sshkey_free wipes it).
 */
int np_keyfile_get(const char *dir, const char *user, const char *host,
    char *path, size_t pathlen, struct np_sshkey **out, int *created);
/* The same, giving only the public line "ssh-ed25519 BASE64" (no
 * comment, NUL-terminated) in pub; the private key is wiped at once. */
int np_keyfile_publine(const char *dir, const char *user, const char *host,
    char *path, size_t pathlen, char *pub, size_t publen, int *created);

/* The body of an np.session.ok box. */
struct np_session_ok {
	int64_t expires;
	char *hostkeys[NP_HOSTKEYS_MAX]; /* "TYPE BASE64" each */
	size_t nhostkeys;
	uint8_t kx[32];
	int cipher;	/* its "enc": NP_SREC_*, NP_SREC_NONE when absent */
	uint32_t handoff; /* its "enc_handoff", 0 when absent */
};
/*
 * Pure: an np.session.err body for sid: its "reason" (or "(no reason
 * given)") into why, bytes outside printable ASCII replaced with '?' (the
 * device's words go to the user's terminal).  NP_OK; NP_ERR_AGAIN when
 * the body names another sid or none; NP_ERR_PROTO when it is no object.
 */
int np_session_err_parse(struct json_object *body, const char *sid,
    char *why, size_t whylen);
/* Parse and check (host keys, kx, enc) an np.session.ok body for sid. */
int np_session_ok_parse(struct json_object *body, const char *sid,
    struct np_session_ok *ok);
/* The same for a tunnel's answer: "hostkeys" may be absent or empty. */
int np_session_ok_parse_tunnel(struct json_object *body, const char *sid,
    struct np_session_ok *ok);
void np_session_ok_clear(struct np_session_ok *ok);

/* ---- talking to identities over one control-plane connection ---- */

struct np_push {
	struct np_push *next;
	int64_t seq;
	char from[NP_IDENT_MAX + 1];
	char mid[NP_MID_LEN + 1];
	size_t len;
	uint8_t box[];
};

struct np_sctx {
	struct np_cli *cli;
	char tag[NP_TAG_MAX + 1];  /* our reply tag ("rt"), monitored */
	struct np_key *key;
	struct np_cpc *c;
	struct np_replay *rc;
	struct np_cpc_waiter monw; /* the monitor request's answer */
	struct np_push *head, **tail;
	size_t qbytes;
	uint64_t deadline; /* monotonic ms */
	long timeout_s;	   /* for messages */
	/*
	 * Set by the caller of np_sctx_wait: the box session (sid, ping
	 * nonce) of the answer it waits for.  An answer with that session
	 * that is authentic but outside the time window ends the wait with
	 * NP_ERR_STALE and fills stale_*, for a diagnostic only (the answer
	 * itself is never used; np_box_open_stale).
	 */
	const char *want_session;
	int stale;		/* such an answer came */
	int64_t stale_off_ms;	/* its ts - our clock */
	char stale_type[NP_BOX_TYPE_MAX + 1];
	char stale_why[200];	/* its "reason" when it was a refusal */
	/*
	 * After the set-up (np_session_setup), until the device's first
	 * byte: the device and session whose late np.session.err ends the
	 * session (docs/np-deviced.md, step 5).
	 */
	int watching;
	char w_from[NP_IDENT_MAX + 1];
	uint8_t w_pk[NP_PK_LEN];
	char w_sid[NP_SR_SID_LEN + 1];
	int dev_failed;		/* that np.session.err came */
	char dev_why[256];	/* its reason, printable */
	void (*w_cb)(void *);	/* called once when it comes */
	void *w_arg;
};
/*
 * One line for the user after NP_ERR_STALE: "PEER's clock is N s ahead
 * of ours ...".
 */
void np_sctx_stale_msg(const struct np_sctx *x, const char *peer, char *buf,
    size_t len);

/* A box body holding only {"rt": tag} (srd.open, srd.probe); NULL when
 * out of memory. */
struct json_object *np_sctx_rt_body(const char *tag);

/* Load the identity key, make a fresh reply tag (x->tag), connect and
 * authenticate before deadline, keep the pushed boxes.  Prints the
 * error. */
int np_sctx_open(struct np_cli *cli, uint64_t deadline, long timeout_s,
    struct np_sctx **out);
/* Stop the connection (flushing acks) and free everything. */
void np_sctx_free(struct np_sctx *x);
int np_sctx_left_ms(const struct np_sctx *x);
/*
 * Start monitoring (with x->tag: only replies tagged for this process
 * come) and look up ids[0..n) at once, then check (and pin on
 * first use) each key under a lock on KnownIdentities.  Prints the error.
 */
int np_sctx_lookup(struct np_sctx *x, const char *const *ids, size_t n,
    uint8_t (*pks)[NP_PK_LEN]);
/* Seal and send a box; the answer of the server goes to w (rid *rid). */
int np_sctx_send(struct np_sctx *x, const char *to,
    const uint8_t to_pk[NP_PK_LEN], const char *type, const char *session,
    struct json_object *body, struct np_cpc_waiter *w, uint32_t *rid);
/*
 * Decide about one opened box from the peer: NP_ERR_AGAIN: not the
 * answer (dropped); NP_OK: the answer; other: the answer, a failure.
 * Every box that comes on our tag is acked: nobody else will take it.
 */
typedef int np_sctx_match_fn(struct np_sctx *x, const struct np_push *p,
    const struct np_box_msg *m, void *arg);
/*
 * Run the loop until match takes a box from `from` (its result), the
 * deadline (NP_ERR_TIMEOUT), a lost connection (NP_ERR_CLOSED) or a
 * failed send in sendw (*send_failed = 1, its code).
 */
int np_sctx_wait(struct np_sctx *x, const char *from,
    const uint8_t from_pk[NP_PK_LEN], np_sctx_match_fn *match, void *arg,
    struct np_cpc_waiter *sendw, int *send_failed);

/*
 * The same for answers from several peers (from[i], key pks[i]): match
 * sees every box of theirs until it returns other than NP_ERR_AGAIN;
 * until x->deadline (NP_ERR_TIMEOUT) or a lost connection.
 */
int np_sctx_wait_multi(struct np_sctx *x, const char *const *from,
    const uint8_t (*pks)[NP_PK_LEN], size_t n, np_sctx_match_fn *match,
    void *arg);

/*
 * Ask the rendezvous sr for a session as a set-up does (np ping and np
 * doctor use it to try the relay): an srd.open box to sr (sr_pk: its
 * key, looked up and checked; x must be monitoring its tag, which
 * np_sctx_lookup starts) carrying x->tag as "rt", then wait until
 * x->deadline for sr's srd.session for it, which fills *s (its tokens
 * are secret: sodium_memzero *s after use), or its srd.error.  A
 * session nobody joins simply expires at np-srd (its SessionTimeout).
 * Prints ONE line on failure, naming t->host: NP_ERR_AUTH when sr
 * refused, NP_ERR_TIMEOUT when it did not answer in time (np-srd down,
 * or its Allow line does not name us), NP_ERR_CLOSED when the
 * control-plane connection dropped.
 */
int np_session_srd_open(struct np_sctx *x, const struct np_target *t,
    const char *sr, const uint8_t sr_pk[NP_PK_LEN], struct np_sr_session *s);

/* ---- the whole set-up ---- */

struct np_session {
	int fd;			    /* joined to the device at the SR */
	char keyfile[PATH_MAX];	    /* the session key ssh should use */
	char kh_name[NP_KH_NAME_MAX]; /* its known_hosts name */
	int64_t expires;	    /* the key's expiry, Unix seconds */
	/*
	 * The set-up's control-plane connection, kept after the set-up
	 * until the device's first byte (or watch_end) to hear a late
	 * np.session.err for this sid: the device sends one when it cannot
	 * reach its sshd or the rendezvous after its np.session.ok
	 * (docs/np-deviced.md, step 5).  NULL once let go.
	 */
	struct np_sctx *watch;
	uint64_t watch_end;	    /* monotonic ms: let go by then */
	uint64_t watch_timer;	    /* on cli->ev */
	struct np_relay *relay;	    /* its first byte from the device
				       lets the watch go */
	/*
	 * Relay stream encryption (docs/PROTOCOL.md): NULL both when the
	 * session relays plain bytes.  np_session_relay hands them to the
	 * relay; np_session_close frees what is left.
	 */
	struct np_srec *seal;	    /* client -> device */
	struct np_srec *open;	    /* device -> client */
	int cipher;		    /* NP_SREC_* agreed, or NP_SREC_NONE */
	uint32_t handoff;	    /* agreed handoff point, 0: none */
	int tunnel;		    /* np tunnel: the local side is a TCP
				       connection, not ssh */
};

/* What a session is for. */
struct np_want {
	int tunnel;		/* 0: ssh (user, port); 1: a TCP tunnel */
	const char *user;	/* ssh: the remote user */
	const char *host;	/* tunnel: the host the device connects to */
	uint16_t port;		/* ssh: sshd's port; tunnel: host's port */
	uint16_t kh_port;	/* ssh: the known_hosts name's port */
	int enc;		/* relay encryption (a tunnel always has it) */
	uint32_t handoff;	/* ssh with enc: ask for records over ssh's
				   handshake only, this many bytes each way
				   (0: all the way) */
};

#define NP_SESSION_WATCH_POLL_MS 10 /* looks at the relay this often */

/*
 * Everything between "ssh ran us" and "bytes can flow": the session key
 * file (np_keyfile_publine: made when missing, never replaced), control
 * plane, pins, rendezvous, device request carrying the key's public
 * half, known_hosts (under the name for kh_port), data-plane connection.
 * Prints ONE line on failure.  out->fd is non-blocking and close-on-exec.
 * Concurrent set-ups (even to one USER@HOST) need no turns: they share
 * the key, and each gets only its own replies (reply tags).
 */
int np_session_setup(struct np_cli *cli, const struct np_target *t,
    const char *user, uint16_t port, uint16_t kh_port,
    struct np_session *out);
/*
 * The same for what w asks (np_session_setup is an ssh want with
 * RelayEncryption from the config).  A tunnel has no session key and no
 * known_hosts line: the device connects to w->host port w->port when
 * its PermitOpen allows it, and the relay is always encrypted.
 */
int np_session_open(struct np_cli *cli, const struct np_target *t,
    const struct np_want *w, struct np_session *out);

/*
 * The device's late refusal: its reason when an authentic np.session.err
 * for this session's sid came after np.session.ok, else NULL.
 */
const char *np_session_failed(const struct np_session *s);
/* Call cb(arg) (from the loop) when that refusal comes; NULL: nobody. */
void np_session_on_fail(struct np_session *s, void (*cb)(void *),
    void *arg);
/* Let the control-plane connection go now.  Safe to call again. */
void np_session_unwatch(struct np_session *s);
/*
 * The relay of s->fd started (relay, b its device side) or ended
 * (NULL): once it has written a byte from the device, or at watch_end,
 * or when the connection drops, the watch is let go by itself (a timer
 * on cli->ev; s must not move meanwhile).
 */
void np_session_watch_relay(struct np_session *s, struct np_relay *relay);
/* Print the one line for a late refusal ("HOST: the device could not
 * complete the session: REASON"). */
void np_session_fail_msg(const struct np_session *s, const char *host);
/* np_session_unwatch, and close the fd. */
void np_session_close(struct np_session *s);

/*
 * Relay a (ssh's side) <-> b (s->fd, the device's side) on cli->ev until
 * both directions end: 0 when they ended cleanly, -1 (message printed,
 * naming host) otherwise.  Until the first byte from b (or
 * s->watch_end), a late np.session.err of the device ends the relay
 * (-1, its reason printed); then s->watch is let go.
 */
int np_session_relay(struct np_cli *cli, const char *host,
    struct np_session *s, struct np_relay_end a, struct np_relay_end b);

#endif
