/*
 * np-deviced, the device daemon (docs/np-deviced.md, docs/PROTOCOL.md
 * "Sessions between a client and a device").  Internal interfaces of
 * device/:
 *   dev_conf.c   deviced.conf: keyword table, defaults, Allow lines
 *   dev_req.c    pure: np.session.req parsing and checks, reply bodies
 *   dev_sess.c   sessions: client key authorized, rendezvous + sshd, relay
 *   dev_ctl.c    the control plane: boxes in, replies out
 *   dev_run.c    the daemon: set-up, host keys, timers, signals
 *   dev_mem.c    memory at rest: OpenSSL initialisation, trims when idle
 */
#ifndef NP_DEV_H
#define NP_DEV_H

#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include <json-c/json.h>

#include "conf.h"
#include "ident.h"
#include "key.h"
#include "msg.h"
#include "spool.h"
#include "sshkey.h"
#include "srproto.h"

#define DEV_VERSION "0.1.0"
#define DEV_DEFAULT_CONF "/etc/noports/deviced.conf"
#define DEV_DEFAULT_DEVICE "default"
#define DEV_DEFAULT_SSHD_HOST "127.0.0.1"
#define DEV_DEFAULT_SSHD_PORT "22"
#define DEV_DEFAULT_STATE_DIR "/var/lib/noports/device"
#define DEV_SEEN_FILE "deviced.seen"
#define DEV_DEFAULT_KEY_TTL 30
#define DEV_DEFAULT_MAX_SESSIONS 64
#define DEV_DEFAULT_GRACE_TIME 10
#define DEV_DEFAULT_KEEPALIVE 30
#define DEV_DEFAULT_CONNECT_TIMEOUT 10
#define DEV_REPLY_TTL 30	/* seconds: np.session.ok/err, np.pong */
#define DEV_DEVNAME_MAX 32	/* [a-z0-9_][a-z0-9_-]{0,31} */
#define DEV_DEVICES_MAX 64	/* DeviceName entries */
#define DEV_ALLOW_MAX 4096	/* Allow lines */
#define DEV_USERS_MAX 256	/* users on one Allow line */
#define DEV_HOSTKEYS_MAX 16
#define DEV_RVHOSTS_MAX 64
#define DEV_KX_LEN 32		/* crypto_kx public / secret key */
#define DEV_REASON_MAX 128
#define DEV_TAG_MAX NP_TAG_MAX /* reply tag "rt": [a-z0-9]{1,32} */
#define DEV_TUNNEL_HOST_MAX NP_TUNNEL_HOST_MAX /* a tunnel's host */
#define DEV_PERMIT_MAX 256	/* PermitOpen entries */
#define DEV_ENC_MAX 8		/* ciphers a request may offer */

/* ---- deviced.conf ---- */

enum dev_keymode {
	DEV_KEYMODE_SPOOL = 0,
	DEV_KEYMODE_AUTHKEYS = 1,
};

/* One Allow line: Allow @ident users=u1,u2 (or users=*). */
struct dev_allow {
	char id[NP_IDENT_MAX + 1];
	int any_user;
	char **users;
	size_t nusers;
};

struct dev_conf {
	char *identity;			/* Identity */
	char *identity_file;		/* IdentityFile (required) */
	struct np_hostport server;	/* Server (required) */
	char *server_fingerprint;	/* ServerFingerprint (required) */
	char *known_identities;		/* KnownIdentities */
	struct np_strlist device_name;	/* DeviceName */
	struct np_strlines allow_lines; /* Allow */
	struct np_hostport sshd;	/* Sshd HOST:PORT */
	struct np_strlist host_key;	/* HostKey */
	long key_ttl;			/* KeyTTL, s */
	char *key_mode;			/* KeyMode spool|authorized_keys */
	char *spool_dir;		/* SpoolDir */
	char *state_dir;		/* StateDir */
	long max_sessions;		/* MaxSessions */
	struct np_strlist rv_host;	/* RendezvousHost */
	struct np_strlist permit_open;	/* PermitOpen */
	int permit_plain_tunnel;	/* PermitPlainTunnel */
	long grace_time;		/* GraceTime, s */
	long keepalive;			/* KeepAlive, s (0: off) */
	long connect_timeout;		/* ConnectTimeout, s */
	char *log_level;		/* LogLevel */

	/* Derived by dev_conf_check(). */
	struct dev_allow *allow;
	size_t nallow;
	int keymode;
	int level;
	long sshd_port;
	struct dev_permit *permit;	/* PermitOpen, or its default */
	size_t npermit;
	int permit_any;			/* PermitOpen any */
};

/* One PermitOpen entry: HOST:PORT, [V6]:PORT or HOST:* (port 0). */
struct dev_permit {
	char host[DEV_TUNNEL_HOST_MAX + 1];
	long port;
};

extern const struct np_conf_kw dev_conf_table[];

/* Defaults (owned values malloc'ed).  NP_OK or NP_ERR_ALLOC. */
int dev_conf_init(struct dev_conf *c);
/* Parse text after dev_conf_init(), then dev_conf_check().  Pure. */
int dev_conf_parse(struct dev_conf *c, const char *text, size_t len,
    const char *fname, char *err, size_t errlen);
/* dev_conf_init + np_conf_load + dev_conf_check. */
int dev_conf_load(struct dev_conf *c, const char *path, char *err,
    size_t errlen);
/* Check values together, fill the derived fields and the defaults that
 * depend on other values (KnownIdentities, HostKey). */
int dev_conf_check(struct dev_conf *c, const char *fname, char *err,
    size_t errlen);
void dev_conf_free(struct dev_conf *c);
/* The Allow line of id, or NULL (fail closed). */
const struct dev_allow *dev_conf_allow(const struct dev_conf *c,
    const char *id);
/* The distinct user names of the Allow lines (users=* names none), in
 * file order, at most max of them, into out (pointers into c); returns
 * how many.  Pure. */
size_t dev_conf_users(const struct dev_conf *c, const char **out,
    size_t max);
/* 1 if this daemon serves device name. */
int dev_conf_serves(const struct dev_conf *c, const char *name);
/* 1 if s is a device name: [a-z0-9_][a-z0-9_-]{0,31}. */
int dev_devname_valid(const char *s);
/* 1 when PermitOpen allows a tunnel to host (as the client named it,
 * compared without case) port port.  Fail closed.  Pure. */
int dev_conf_permits(const struct dev_conf *c, const char *host, long port);
/* "error" / "warn" / "info" / "debug" -> NP_LOG_*. */
int dev_log_level_parse(const char *s, int *level);

/* ---- requests (pure) ---- */

/* A parsed np.session.req body.  sr.token is secret: wipe the struct. */
struct dev_req {
	char sid[NP_SR_SID_LEN + 1];
	char device[DEV_DEVNAME_MAX + 1];
	char user[NP_USER_MAX + 1];
	long port;
	struct np_sr_endpoint sr;
	uint8_t pubkey[NP_SSHKEY_PK_LEN]; /* the client's session key */
	uint8_t kx[DEV_KX_LEN];
	char rt[DEV_TAG_MAX + 1];	  /* reply tag; "" = untagged */
	int tunnel;			  /* "mode":"tunnel" */
	char host[DEV_TUNNEL_HOST_MAX + 1]; /* tunnel: where to connect */
	int enc;			  /* "enc" offered */
	int cipher;			  /* our pick of it, NP_SREC_* */
	uint32_t handoff;		  /* "enc_handoff" of an ssh session,
					     within NP_SREC_HANDOFF_MIN..MAX;
					     0: none (or one out of range) */
};

/*
 * Parse an np.session.req body (docs/PROTOCOL.md).  Members are checked
 * for type and form (sid 32 hex, device name, user a string of at most
 * NP_USER_MAX bytes, port 1..65535, sr endpoint with a 43-character
 * base64url token, pubkey exactly "ssh-ed25519 BASE64" of a canonical
 * Ed25519 blob, kx base64 of 32 bytes); rt is optional (an invalid one
 * counts as absent: the reply goes untagged); unknown members are
 * ignored.  The user name's POSIX form is checked by dev_req_check() so
 * that the client hears "bad user name".  NP_OK or NP_ERR_INVALID.
 */
int dev_req_parse(struct json_object *body, struct dev_req *q);
/* The sid of a body when it has a valid one (for error replies). */
int dev_req_sid(struct json_object *body, char sid[NP_SR_SID_LEN + 1]);
/*
 * The reply tag of a request or ping body: its "rt" when that is a valid
 * tag ([a-z0-9]{1,32}), else "" (no tag).  Never fails.  Pure.
 */
void dev_body_rt(struct json_object *body, char rt[DEV_TAG_MAX + 1]);

/*
 * Decide on a parsed request from identity from, with nsessions sessions
 * open: NULL when it may go ahead, else the reason for the client, in
 * this order: not allowed, unknown device, bad user name, user not
 * allowed, port not permitted, rendezvous host not permitted, too many
 * sessions.  Pure.
 */
const char *dev_req_check(const struct dev_conf *c, const char *from,
    const struct dev_req *q, size_t nsessions);

/*
 * Reply bodies.  ok: {"sid","expires","hostkeys","kx"[,"enc"
 * [,"enc_handoff"]]} (nothing secret); a tunnel's has no "hostkeys"
 * (nhostkeys 0).  cipher NP_SREC_NONE: no "enc"; handoff 0 (or no
 * cipher): no "enc_handoff".
 */
int dev_body_ok(const char *sid, int64_t expires,
    char *const *hostkeys, size_t nhostkeys, const uint8_t kx[DEV_KX_LEN],
    int cipher, uint32_t handoff, struct json_object **out);
/*
 * Our pick from the ciphers a client offers (names, preferred first):
 * its first one we know, except that a CPU without AES instructions
 * takes ChaCha20-Poly1305 when offered.  NP_SREC_NONE: none known.
 */
int dev_cipher_pick(const char *const *names, size_t n, int have_aes);
int dev_body_err(const char *sid, const char *reason,
    struct json_object **out);
/*
 * np.pong for an np.ping body {"device":NAME} (may be empty or missing):
 * {"device": NAME when served, the first DeviceName when empty, "" when
 * not served; "devices":[...], "version", "features":["ssh","spool"]}.
 * NP_ERR_INVALID for a malformed ping body.
 */
int dev_body_pong(const struct dev_conf *c, struct json_object *ping,
    struct json_object **out);

/*
 * Probes for a client with several rendezvous (docs/PROTOCOL.md,
 * "Probes"): an np.ping may carry "probe", the client's probe tickets;
 * np-deviced probes each rendezvous and its np.pong reports the round
 * trips in "rtt".
 */
#define DEV_PROBE_MAX 16	/* rendezvous of one np.ping */
#define DEV_PROBE_JOBS_MAX 8	/* pings probing at once */
#define DEV_PROBE_MS 2000	/* for all the probes of one ping */

struct dev_probe_tgt {
	char sr[NP_IDENT_MAX + 1];
	char host[256];
	uint16_t port;
	char ticket[NP_SR_TICKET_B64_LEN + 1];
};
/*
 * The "probe" member of an np.ping body: an array of at most
 * DEV_PROBE_MAX objects {"sr":IDENT,"host":STR,"port":N,"ticket":T}
 * (exactly these; each sr once; host printable, at most 255 bytes;
 * ticket NP_SR_TICKET_B64_LEN base64url characters).  Targets whose host
 * RendezvousHost does not allow, or that is not an address literal (a
 * name would be looked up inside the loop), are left out.  *n is 0 when
 * the member is absent.  NP_ERR_INVALID when it is malformed.  Pure.
 */
int dev_ping_probes(const struct dev_conf *c, struct json_object *ping,
    struct dev_probe_tgt *out, size_t *n);

/* ---- the daemon ---- */

struct np_ev;
struct np_key;
struct np_pins;
struct np_replay;
struct np_cpc;
struct dev_cp;
struct dev_sess;
struct dev_probe_job;

struct dev {
	struct dev_conf *conf;
	struct np_ev *ev;
	struct np_key *key;
	struct np_pins *pins;
	struct np_replay *replay;
	struct np_cpc *cpc;
	struct dev_cp *cp;
	char **hostkeys;	/* "TYPE BASE64" lines */
	size_t nhostkeys;
	struct sockaddr_storage sshd_addr;
	socklen_t sshd_addrlen;
	struct dev_sess *sessions; /* all open sessions */
	size_t nsessions;
	struct np_strlist ak_users; /* authorized_keys mode: users touched */
	uint64_t sweep_timer;
	uint64_t grace_timer;
	uint64_t trim_timer;	/* dev_mem_idle() */
	struct dev_probe_job *probes; /* pings being probed (dev_probe.c) */
	size_t nprobes;
	int stopping;
	int exit_code;
};

struct dev_opts {
	const char *conf_path;
	int foreground; /* -D */
	int verbose;	/* -v */
};

/* Memory at rest (dev_mem.c).  dev_mem_init() first, before any other
 * OpenSSL call: NP_OK or NP_ERR_TLS.  dev_mem_idle() when the daemon may
 * have become idle (control plane up, no session): dev_mem_trim() runs
 * once it has stayed so for a while.  dev_mem_trim() gives back what
 * the process holds and does not use at rest. */
int dev_mem_init(void);
void dev_mem_idle(struct dev *d);
void dev_mem_trim(void);

/* Run np-deviced until a signal ends it; the process exit code. */
int dev_main(const struct dev_opts *o);

/* Host keys: load HostKey files (NP_ERR_NOT_FOUND when none loads). */
int dev_hostkeys_load(const struct dev_conf *c, char ***out, size_t *n);
void dev_hostkeys_free(char **v, size_t n);

/*
 * Sessions (dev_sess.c).  dev_sess_start() does everything for a request
 * that passed dev_req_check(): spool entry (or authorized_keys line) for
 * the client's key q->pubkey, connections to sshd and the rendezvous, and
 * the np.session.ok reply to from (whose box key is pk), tagged q->rt.  On a refusal it
 * returns non-NP_OK with *why set; the caller replies np.session.err.  A
 * session that fails after its ok sends np.session.err itself.
 */
int dev_sess_start(struct dev *d, const char *from,
    const uint8_t pk[NP_PK_LEN], const struct dev_req *q, const char **why);
/* Shutdown: end connecting sessions; stop relays too when stop_relays. */
void dev_sess_shutdown(struct dev *d, int stop_relays);
size_t dev_sess_relaying(const struct dev *d);
/* After the loop: end and free every session (logged, keys removed). */
void dev_sess_free_all(struct dev *d);
/* Remove expired session keys (spool entries or authorized_keys lines). */
void dev_keys_sweep(struct dev *d);
/* At start (authorized_keys mode): the sweep covers every user named on
 * an Allow line, so lines written before a restart are swept too. */
void dev_keys_init(struct dev *d);

/*
 * Probe t[0..n) (non-blocking, at most DEV_PROBE_MS in all), then send
 * pong (taking its reference) to (to, pk) as np.pong, box session
 * session, tagged rt, with "rtt":{"@sr":MS,...} for those that answered
 * NPSR1 PONG.  NP_ERR_LIMIT with DEV_PROBE_JOBS_MAX pings at it already
 * (pong is then left to the caller).
 */
int dev_probe_start(struct dev *d, const char *to,
    const uint8_t pk[NP_PK_LEN], const char *rt, const char *session,
    const struct dev_probe_tgt *t, size_t n, struct json_object *pong);
/* Drop every probe in flight (no pong sent). */
void dev_probe_free_all(struct dev *d);

/* Control plane (dev_ctl.c). */
int dev_ctl_start(struct dev *d);
/* Seal body as type for (to, pk), box session sid, and send it with the
 * reply tag rt (NULL or "": untagged). */
int dev_ctl_send(struct dev *d, const char *to, const uint8_t pk[NP_PK_LEN],
    const char *rt, const char *type, const char *sid,
    struct json_object *body);
/* Send np.session.err {sid, reason} tagged rt; failures are logged. */
void dev_ctl_send_err(struct dev *d, const char *to,
    const uint8_t pk[NP_PK_LEN], const char *rt, const char *sid,
    const char *reason);
void dev_ctl_stop(struct dev *d);
void dev_ctl_free(struct dev *d);

/* Called when a session ends (shutdown completes). */
void dev_check_done(struct dev *d);

#endif
