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
#include "relay.h"
#include "spool.h"

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
 * Write a session private key to dir/USER@HOST (0600, temp + rename),
 * creating dir (0700) when missing; the full path goes to path.
 *
 * The file must not outlive its use: ssh loads the public half of every
 * IdentityFile that exists when it starts, offers that key first and then
 * insists that the private key it reads at authentication matches it.  A
 * key left from an earlier session would make the next ssh fail; with no
 * file at its start, ssh reads the private key only when it authenticates
 * (after the proxy has written it).  So np proxy removes the file as soon
 * as ssh has read it, and at exit (np_keyfile_forget).  Writes and
 * removals in dir are serialised by a lock (dir/.keys.lock) and a removal
 * touches only the file this process wrote (same inode).
 */
struct np_keyfile_id {
	dev_t dev;
	ino_t ino;   /* 0: nothing written */
	int lock_fd; /* the USER@HOST claim (see np_session_setup), or -1 */
};
int np_keyfile_write(const char *dir, const char *user, const char *host,
    const uint8_t *pem, size_t len, char *path, size_t pathlen);
int np_keyfile_write_id(const char *dir, const char *user, const char *host,
    const uint8_t *pem, size_t len, char *path, size_t pathlen,
    struct np_keyfile_id *id);
/* Remove path if it is still the file described by id; give up the
 * claim on USER@HOST (id->lock_fd).  Idempotent. */
int np_keyfile_forget(const char *dir, const char *path,
    struct np_keyfile_id *id);

/* The body of an np.session.ok box. */
struct np_session_ok {
	struct np_buf *key; /* OpenSSH private key text, secure memory */
	int64_t expires;
	char *hostkeys[NP_HOSTKEYS_MAX]; /* "TYPE BASE64" each */
	size_t nhostkeys;
	uint8_t kx[32];
};
/* Parse and check (key, host keys) an np.session.ok body for sid. */
int np_session_ok_parse(struct json_object *body, const char *sid,
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
	struct np_key *key;
	struct np_cpc *c;
	struct np_replay *rc;
	struct np_cpc_waiter monw; /* the monitor request's answer */
	struct np_push *head, **tail;
	size_t qbytes;
	uint64_t deadline; /* monotonic ms */
	long timeout_s;	   /* for messages */
};

/* Load the identity key, connect and authenticate before deadline, keep
 * the pushed boxes.  Prints the error. */
int np_sctx_open(struct np_cli *cli, uint64_t deadline, long timeout_s,
    struct np_sctx **out);
/* Stop the connection (flushing acks) and free everything. */
void np_sctx_free(struct np_sctx *x);
int np_sctx_left_ms(const struct np_sctx *x);
/*
 * Start monitoring and look up ids[0..n) at once, then check (and pin on
 * first use) each key under a lock on KnownIdentities.  Prints the error.
 */
int np_sctx_lookup(struct np_sctx *x, const char *const *ids, size_t n,
    uint8_t (*pks)[NP_PK_LEN]);
/* Seal and send a box; the answer of the server goes to w (rid *rid). */
int np_sctx_send(struct np_sctx *x, const char *to,
    const uint8_t to_pk[NP_PK_LEN], const char *type, const char *session,
    struct json_object *body, struct np_cpc_waiter *w, uint32_t *rid);
/*
 * Decide about one opened box from the peer: NP_ERR_AGAIN: not ours
 * (left un-acked); NP_OK: ours, done; other: ours, a failure.  Ours are
 * acked.
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

/* ---- the whole set-up ---- */

struct np_session {
	int fd;			    /* joined to the device at the SR */
	char keyfile[PATH_MAX];	    /* the session key ssh should use */
	struct np_keyfile_id key_id; /* the file as written */
	char kh_name[NP_KH_NAME_MAX]; /* its known_hosts name */
	int64_t expires;	    /* the key's expiry, Unix seconds */
};

/*
 * Everything between "ssh ran us" and "bytes can flow": control plane,
 * pins, rendezvous, device request, key file, known_hosts (under the name
 * for kh_port), data-plane connection.  Prints ONE line on failure.
 * out->fd is non-blocking and close-on-exec.
 *
 * Sessions for one USER@HOST share one key path, so the key file is
 * claimed (an exclusive flock on KeyDir/USER@HOST.lock) from before it is
 * written until ssh has read it or the session ends
 * (np_keyfile_forget): an ssh cannot authenticate before its own proxy
 * has joined the relay, which comes after the write, so each ssh reads its
 * own key.  Concurrent set-ups wait for the claim within SessionTimeout.
 */
int np_session_setup(struct np_cli *cli, const struct np_target *t,
    const char *user, uint16_t port, uint16_t kh_port,
    struct np_session *out);

/*
 * Relay a <-> b on cli->ev until both directions end: 0 when they ended
 * cleanly, -1 (message printed, naming host) otherwise.
 */
int np_session_relay(struct np_cli *cli, const char *host,
    struct np_relay_end a, struct np_relay_end b);

#endif
