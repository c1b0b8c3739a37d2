/*
 * np doctor [--ssh-config FILE] [DEVICE]: checks the set-up in order and
 * prints one line per check on stdout (docs/CLI.md, "np doctor"):
 *     OK   what
 *     FAIL what: why -- fix: what to do
 *     SKIP what: why (an earlier check it needs failed)
 * The config file, the identity key, KeyDir and KnownHosts, the server
 * (TCP, then its certificate against ServerFingerprint), our
 * enrollment, KnownIdentities, the rendezvous (a session granted and
 * its client endpoint tried); with DEVICE also the device's identity,
 * its np.pong, and what `ssh -G DEVICE` says about ProxyCommand,
 * IdentityFile and UserKnownHostsFile.  Exit 0 when every check that ran
 * is OK, 1 otherwise.  Pins are only read here: an identity not pinned
 * yet is reported, and pinned at the first real session as usual.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "cpc.h"
#include "diag.h"
#include "err.h"
#include "ev.h"
#include "key.h"
#include "pin.h"
#include "session.h"
#include "sshcfg.h"
#include "tls.h"

#define DOCTOR_USAGE "np [-F CONFIG] [-v] doctor [--ssh-config FILE] " \
	"[DEVICE]"
#define DOC_LINE_MAX 2048
#define SSH_WAIT_MS 10000	  /* ssh -G gets this long */

enum doc_pin {
	DOC_PIN_MATCH,
	DOC_PIN_NEW,
	DOC_PIN_ROTATED,
};

struct doc {
	struct np_cli *cli;
	const char *ssh_config;	   /* --ssh-config FILE, or NULL */
	const struct np_target *t; /* DEVICE, or NULL */
	struct np_target self;	   /* names the relay's messages without
				      DEVICE */
	struct np_sctx *x;	   /* authenticated, once enrollment is OK */
	int monitoring;		   /* x monitors its tag */
	int nfail;
	int conf_ok;		   /* cfg usable: the file, or defaults */
	int key_ok;
	int srv_fd;		   /* connected to the server, or -1 */
	int reached;		   /* that connect worked */
	int cert_ok;
	int dev_ok;		   /* the device's identity looked up */
	uint8_t dev_pk[NP_PK_LEN];
};

/* ---------------- output ---------------- */

static void
doc_put(const char *tag, const char *text, const char *fix)
{
	char line[DOC_LINE_MAX];

	snprintf(line, sizeof(line), "%-4s %s%s%s", tag, text,
	    fix != NULL ? " -- fix: " : "", fix != NULL ? fix : "");
	cli_sanitize_inplace(line);
	printf("%s\n", line);
	fflush(stdout);
}

static void __attribute__((format(printf, 2, 3)))
doc_ok(struct doc *d, const char *fmt, ...)
{
	char text[DOC_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	doc_put("OK", text, NULL);
}

/* "FAIL what: why -- fix: fix"; fmt gives "what: why". */
static void __attribute__((format(printf, 3, 4)))
doc_fail(struct doc *d, const char *fix, const char *fmt, ...)
{
	char text[DOC_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	doc_put("FAIL", text, fix);
	d->nfail++;
}

static void
doc_skip(struct doc *d, const char *what, const char *why)
{
	char text[DOC_LINE_MAX];

	snprintf(text, sizeof(text), "%s: %s", what, why);
	doc_put("SKIP", text, NULL);
}

static const char *
conf_name(const struct doc *d)
{
	return d->cli->config_path != NULL ? d->cli->config_path :
	    "the config";
}

static long
session_timeout(const struct doc *d)
{
	return d->cli->cfg.session_timeout > 0 ? d->cli->cfg.session_timeout
	    : NP_CONFIG_DEFAULT_SESSION_TIMEOUT;
}

/* A fresh SessionTimeout for the next network step on d->x. */
static void
doc_rearm(struct doc *d)
{
	d->x->deadline = np_now_mono_ms() +
	    (uint64_t)session_timeout(d) * 1000;
}

/* ---------------- local files ---------------- */

/* The config's "file:line: message" as "line N: message" (or the
 * message alone) into out. */
static void
conf_msg(const char *path, const char *err, char *out, size_t outlen)
{
	size_t n = strlen(path);
	const char *m = err;

	if (strncmp(err, path, n) == 0 && err[n] == ':') {
		m = err + n + 1 + (err[n + 1] == ' ');
	}
	if (*m >= '0' && *m <= '9' && strchr(m, ':') != NULL) {
		snprintf(out, outlen, "line %s", m);
	} else {
		snprintf(out, outlen, "%s", m);
	}
}

static void
check_config(struct doc *d)
{
	const char *p = d->cli->config_path;
	struct np_config tmp;
	struct stat st;
	char err[1024], msg[1100], fix[600];
	int r;

	if (p == NULL) {
		doc_fail(d, "give one with -F CONFIG or NP_CONFIG",
		    "config: no config file (HOME is not set)");
		return;
	}
	if (stat(p, &st) != 0) {
		if (errno != ENOENT) {
			doc_fail(d, "make it readable", "config %s: %s", p,
			    strerror(errno));
			return;
		}
		doc_fail(d, "np enroll @NAME --token TOKEN --server HOST:PORT "
		    "--fingerprint SHA256:... writes it (or give the right "
		    "file with -F)", "config %s: not found", p);
		d->conf_ok = 1; /* the defaults: the checks below go on */
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		doc_fail(d, "make it a regular file", "config %s: not a "
		    "regular file", p);
		return;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		snprintf(fix, sizeof(fix), "chown %u %s", (unsigned)geteuid(),
		    p);
		doc_fail(d, fix, "config %s: owned by uid %u, neither you nor "
		    "root (np refuses it)", p, (unsigned)st.st_uid);
		return;
	}
	if ((st.st_mode & 022) != 0) {
		snprintf(fix, sizeof(fix), "chmod go-w %s", p);
		doc_fail(d, fix, "config %s: writable by group or other (mode "
		    "%04o; np refuses it)", p, (unsigned)(st.st_mode & 07777));
		return;
	}
	memset(&tmp, 0, sizeof(tmp));
	err[0] = '\0';
	r = np_config_load(&tmp, p, 1, err, sizeof(err));
	np_config_free(&tmp);
	if (r != NP_OK) {
		conf_msg(p, err[0] != '\0' ? err : np_strerror(r), msg,
		    sizeof(msg));
		doc_fail(d, "correct that line (the keywords: docs/CLI.md)",
		    "config %s: %s", p, msg);
		return;
	}
	doc_ok(d, "config %s", p);
	d->conf_ok = 1;
}

static void
check_key(struct doc *d)
{
	const char *p = d->cli->cfg.identity_file, *id = d->cli->cfg.identity;
	struct np_key *k = NULL;
	struct stat st;
	char fix[800];
	int r;

	if (!d->conf_ok) {
		doc_skip(d, "identity key", "the config did not load");
		return;
	}
	if (id == NULL) {
		id = "@NAME";
	}
	if (p == NULL) {
		doc_fail(d, "set IdentityFile in the config", "identity key: "
		    "no IdentityFile (HOME is not set)");
		return;
	}
	if (lstat(p, &st) != 0) {
		snprintf(fix, sizeof(fix), "np keygen %s, then np enroll %s "
		    "--token TOKEN (a token from the server's operator)", id,
		    id);
		doc_fail(d, errno == ENOENT ? fix : "make it readable",
		    "identity key %s: %s", p, errno == ENOENT ? "not found" :
		    strerror(errno));
		return;
	}
	if (S_ISLNK(st.st_mode) || !S_ISREG(st.st_mode)) {
		snprintf(fix, sizeof(fix), "put the key file itself at %s", p);
		doc_fail(d, fix, "identity key %s: %s (np refuses it)", p,
		    S_ISLNK(st.st_mode) ? "a symlink" : "not a regular file");
		return;
	}
	if (st.st_uid != geteuid()) {
		snprintf(fix, sizeof(fix), "chown %u %s", (unsigned)geteuid(),
		    p);
		doc_fail(d, fix, "identity key %s: owned by uid %u, not by you "
		    "(uid %u)", p, (unsigned)st.st_uid, (unsigned)geteuid());
		return;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(fix, sizeof(fix), "chmod 600 %s (if others could read "
		    "it, the key may have leaked: np rotate)", p);
		doc_fail(d, fix, "identity key %s: mode %04o, group or other "
		    "may read or write it (np refuses it)", p,
		    (unsigned)(st.st_mode & 07777));
		return;
	}
	if ((r = np_key_load(p, &k)) != NP_OK) {
		snprintf(fix, sizeof(fix), "restore it from a backup, or np "
		    "keygen %s --force and enroll again with a new token", id);
		doc_fail(d, fix, "identity key %s: cannot load it: %s", p,
		    np_strerror(r));
		return;
	}
	if (d->cli->cfg.identity != NULL &&
	    strcmp(d->cli->cfg.identity, np_key_name(k)) != 0) {
		snprintf(fix, sizeof(fix), "set Identity %s in %s, or "
		    "IdentityFile to the key of %s", np_key_name(k),
		    conf_name(d), d->cli->cfg.identity);
		doc_fail(d, fix, "identity key %s: holds the key of %s, but "
		    "Identity is %s", p, np_key_name(k), d->cli->cfg.identity);
	} else {
		doc_ok(d, "identity key %s (%s, mode %04o)", p, np_key_name(k),
		    (unsigned)(st.st_mode & 07777));
		d->key_ok = 1;
	}
	np_key_free(k);
}

static void
check_keydir(struct doc *d)
{
	const char *p = d->cli->cfg.key_dir;
	struct stat st;
	char fix[600];

	if (!d->conf_ok) {
		doc_skip(d, "KeyDir", "the config did not load");
		return;
	}
	if (p == NULL) {
		doc_fail(d, "set KeyDir in the config", "KeyDir: not set (HOME "
		    "is not set)");
		return;
	}
	if (lstat(p, &st) != 0) {
		if (errno == ENOENT) {
			doc_ok(d, "KeyDir %s (not there yet: np makes it, "
			    "0700, at the first session)", p);
		} else {
			doc_fail(d, "make it reachable", "KeyDir %s: %s", p,
			    strerror(errno));
		}
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(fix, sizeof(fix), "remove %s (np makes the directory) "
		    "or point KeyDir at a directory", p);
		doc_fail(d, fix, "KeyDir %s: %s (np refuses it)", p,
		    S_ISLNK(st.st_mode) ? "a symlink" : "not a directory");
	} else if (st.st_uid != geteuid()) {
		doc_fail(d, "point KeyDir at a directory of yours",
		    "KeyDir %s: owned by uid %u, not by you (uid %u)", p,
		    (unsigned)st.st_uid, (unsigned)geteuid());
	} else if ((st.st_mode & 077) != 0) {
		snprintf(fix, sizeof(fix), "chmod 700 %s", p);
		doc_fail(d, fix, "KeyDir %s: mode %04o, not 0700 (it holds the "
		    "session keys)", p, (unsigned)(st.st_mode & 07777));
	} else {
		doc_ok(d, "KeyDir %s (0700)", p);
	}
}

/*
 * KnownHosts holds public host keys: what matters is that nobody else
 * can change it or replace it (its directory not writable by others).
 */
static int
check_kh_dir(struct doc *d, const char *p)
{
	char dir[PATH_MAX], fix[PATH_MAX + 64], *slash;
	struct stat st;

	snprintf(dir, sizeof(dir), "%s", p);
	if ((slash = strrchr(dir, '/')) == NULL) {
		snprintf(dir, sizeof(dir), ".");
	} else if (slash == dir) {
		dir[1] = '\0';
	} else {
		*slash = '\0';
	}
	if (stat(dir, &st) != 0) {
		if (errno == ENOENT) {
			doc_ok(d, "KnownHosts %s (not there yet: np makes it "
			    "at the first session)", p);
		} else {
			doc_fail(d, "make it reachable", "KnownHosts %s: its "
			    "directory: %s", p, strerror(errno));
		}
		return -1;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 022) != 0 || access(dir, W_OK) != 0) {
		snprintf(fix, sizeof(fix), "chmod go-w %s, or point KnownHosts "
		    "into a directory of yours", dir);
		doc_fail(d, fix, "KnownHosts %s: its directory %s is %s", p,
		    dir, !S_ISDIR(st.st_mode) ? "not a directory" :
		    st.st_uid != geteuid() ? "not yours (np writes a temp "
		    "file there)" : (st.st_mode & 022) != 0 ? "writable by "
		    "group or other (they could replace the host keys)" :
		    "not writable by you");
		return -1;
	}
	return 0;
}

static void
check_known_hosts(struct doc *d)
{
	const char *p = d->cli->cfg.known_hosts;
	struct stat st;
	char fix[600];

	if (!d->conf_ok) {
		doc_skip(d, "KnownHosts", "the config did not load");
		return;
	}
	if (p == NULL) {
		doc_fail(d, "set KnownHosts in the config", "KnownHosts: not "
		    "set (HOME is not set)");
		return;
	}
	if (check_kh_dir(d, p) != 0) {
		return;
	}
	if (lstat(p, &st) != 0) {
		if (errno == ENOENT) {
			doc_ok(d, "KnownHosts %s (no host keys yet: np writes "
			    "them at the first session)", p);
		} else {
			doc_fail(d, "make it readable", "KnownHosts %s: %s", p,
			    strerror(errno));
		}
		return;
	}
	snprintf(fix, sizeof(fix), "rm %s (np writes it again at the next "
	    "session)", p);
	if (!S_ISREG(st.st_mode)) {
		doc_fail(d, fix, "KnownHosts %s: %s (np refuses it)", p,
		    S_ISLNK(st.st_mode) ? "a symlink" : "not a regular file");
	} else if (st.st_uid != geteuid() && st.st_uid != 0) {
		doc_fail(d, fix, "KnownHosts %s: owned by uid %u (np refuses "
		    "it)", p, (unsigned)st.st_uid);
	} else if ((st.st_mode & 022) != 0) {
		snprintf(fix, sizeof(fix), "chmod 600 %s", p);
		doc_fail(d, fix, "KnownHosts %s: writable by group or other "
		    "(mode %04o; np refuses it)", p,
		    (unsigned)(st.st_mode & 07777));
	} else {
		doc_ok(d, "KnownHosts %s", p);
	}
}

static void
check_pins(struct doc *d)
{
	const char *p = d->cli->cfg.known_identities;
	struct np_pins *pins = NULL;
	struct stat st;
	char fix[600];
	int r;

	if (!d->conf_ok) {
		doc_skip(d, "KnownIdentities", "the config did not load");
		return;
	}
	if (p == NULL) {
		doc_fail(d, "set KnownIdentities in the config",
		    "KnownIdentities: not set (HOME is not set)");
		return;
	}
	if (stat(p, &st) != 0) {
		if (errno == ENOENT) {
			doc_ok(d, "KnownIdentities %s (nothing pinned yet: np "
			    "pins identities at first use)", p);
		} else {
			doc_fail(d, "make it readable", "KnownIdentities %s: "
			    "%s", p, strerror(errno));
		}
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		doc_fail(d, "make it a regular file", "KnownIdentities %s: not "
		    "a regular file", p);
		return;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		snprintf(fix, sizeof(fix), "chown %u %s", (unsigned)geteuid(),
		    p);
		doc_fail(d, fix, "KnownIdentities %s: owned by uid %u, not by "
		    "you", p, (unsigned)st.st_uid);
		return;
	}
	if ((st.st_mode & 022) != 0) {
		snprintf(fix, sizeof(fix), "chmod 600 %s", p);
		doc_fail(d, fix, "KnownIdentities %s: writable by group or "
		    "other (mode %04o): others could change whom you trust",
		    p, (unsigned)(st.st_mode & 07777));
		return;
	}
	if ((r = np_pins_load(p, &pins)) != NP_OK) {
		doc_fail(d, "correct or remove the bad line (one '@name "
		    "BASE64' a line); a removed pin is trusted again on first "
		    "use", "KnownIdentities %s: cannot read it: %s", p,
		    np_strerror(r));
		return;
	}
	doc_ok(d, "KnownIdentities %s (%zu pinned)", p, np_pins_count(pins));
	np_pins_free(pins);
}

/* ---------------- the server ---------------- */

/* Wait for ev on fd until deadline: 0, or -1 with errno. */
static int
wait_fd(int fd, short ev, uint64_t deadline)
{
	struct pollfd pfd;
	uint64_t now;
	int n;

	for (;;) {
		if ((now = np_now_mono_ms()) >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		pfd.fd = fd;
		pfd.events = ev;
		pfd.revents = 0;
		n = poll(&pfd, 1, (int)(deadline - now));
		if (n > 0) {
			return 0;
		}
		if (n < 0 && errno != EINTR) {
			return -1;
		}
	}
}

/* One non-blocking connect within the deadline: the fd, or -1 (errno). */
static int
connect_ai(const struct addrinfo *ai, uint64_t deadline)
{
	int fd, soerr = 0, e;
	socklen_t sl = sizeof(soerr);

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0) {
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
		return fd;
	}
	if (errno == EINPROGRESS || errno == EINTR) {
		if (wait_fd(fd, POLLOUT, deadline) == 0 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0) {
			if (soerr == 0) {
				return fd;
			}
			errno = soerr;
		}
	}
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

/* TCP connect to host port: the fd, or -1 with a reason in why. */
static int
tcp_connect(const char *host, const char *port, int timeout_ms, char *why,
    size_t whylen)
{
	struct addrinfo hints, *res = NULL, *ai;
	uint64_t deadline = np_now_mono_ms() + (uint64_t)timeout_ms;
	int fd = -1, g, e = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((g = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(why, whylen, "cannot resolve %s: %s", host,
		    gai_strerror(g));
		return -1;
	}
	for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
		if ((fd = connect_ai(ai, deadline)) < 0) {
			e = errno;
		}
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(why, whylen, "%s",
		    strerror(e != 0 ? e : EHOSTUNREACH));
	}
	return fd;
}

static void
check_server(struct doc *d)
{
	const struct np_hostport *s = &d->cli->cfg.server;
	char why[256], fix[800];
	uint64_t t0;

	if (!d->conf_ok) {
		doc_skip(d, "server", "the config did not load");
		return;
	}
	if (s->host == NULL) {
		snprintf(fix, sizeof(fix), "np enroll @NAME --token TOKEN "
		    "--server HOST:PORT --fingerprint SHA256:... writes it, or "
		    "set Server HOST:PORT in %s", conf_name(d));
		doc_fail(d, fix, "server: no Server configured");
		return;
	}
	t0 = np_now_mono_ms();
	d->srv_fd = tcp_connect(s->host, s->port, cli_timeout_ms(d->cli), why,
	    sizeof(why));
	if (d->srv_fd < 0) {
		snprintf(fix, sizeof(fix), "is np-server running there, and "
		    "can this host reach that port (firewall)? Server is set "
		    "in %s", conf_name(d));
		doc_fail(d, fix, "server %s port %s: cannot connect: %s",
		    s->host, s->port, why);
		return;
	}
	d->reached = 1;
	doc_ok(d, "server %s port %s reachable (TCP connect %llu ms)",
	    s->host, s->port, (unsigned long long)(np_now_mono_ms() - t0));
}

/* The TLS handshake on d->srv_fd until the deadline. */
static int
tls_handshake(struct np_tls *tls, int fd, uint64_t deadline)
{
	uint32_t want;
	int r;

	while ((r = np_tls_handshake(tls)) == NP_ERR_AGAIN) {
		want = np_tls_want(tls);
		if (wait_fd(fd, (want & NP_EV_WRITE) ? POLLOUT : POLLIN,
		    deadline) != 0) {
			return NP_ERR_TIMEOUT;
		}
	}
	return r;
}

static void
check_cert(struct doc *d)
{
	const char *fp = d->cli->cfg.server_fingerprint;
	struct np_tls_ctx *ctx = NULL;
	struct np_tls *tls = NULL;
	char got[NP_FP_MAX], fix[800];
	int r;

	if (d->srv_fd < 0) {
		doc_skip(d, "server certificate", "the server was not "
		    "reached");
		return;
	}
	if (fp == NULL) {
		doc_fail(d, "np enroll writes it; the server's operator prints "
		    "it with np-server fingerprint -d DIR", "server "
		    "certificate: no ServerFingerprint configured");
		return;
	}
	if ((r = np_tls_client_ctx(&ctx)) != NP_OK ||
	    (r = np_tls_new(ctx, d->srv_fd, 0, &tls)) != NP_OK ||
	    (r = tls_handshake(tls, d->srv_fd, np_now_mono_ms() +
	    (uint64_t)cli_timeout_ms(d->cli))) != NP_OK) {
		snprintf(fix, sizeof(fix), "is %s port %s an np-server (TLS "
		    "1.3), not another service?", d->cli->cfg.server.host,
		    d->cli->cfg.server.port);
		doc_fail(d, fix, "server certificate: TLS handshake failed: %s",
		    np_strerror(r));
		goto out;
	}
	if (np_tls_check_fingerprint(tls, fp) != NP_OK) {
		if (np_tls_peer_fingerprint(tls, got, sizeof(got)) != NP_OK) {
			snprintf(got, sizeof(got), "(unknown)");
		}
		doc_fail(d, "if the server was set up again on purpose, set "
		    "ServerFingerprint to its new one (its operator: np-server "
		    "fingerprint -d DIR); otherwise something is in the way: "
		    "do not use this connection", "server certificate: "
		    "fingerprint mismatch: the server has %s, "
		    "ServerFingerprint is %s", got, fp);
		goto out;
	}
	doc_ok(d, "server certificate %s matches ServerFingerprint", fp);
	d->cert_ok = 1;
 out:
	if (tls != NULL) {
		np_tls_shutdown(tls);
	}
	np_tls_free(tls);
	np_tls_ctx_free(ctx);
	close(d->srv_fd);
	d->srv_fd = -1;
}

static void
check_auth(struct doc *d)
{
	const char *id = d->cli->cfg.identity;
	long to = session_timeout(d);
	char fix[800];
	int r;

	if (!d->key_ok || !d->cert_ok) {
		doc_skip(d, "enrollment", !d->key_ok ? "no usable identity "
		    "key" : !d->reached ? "the server was not reached" :
		    "the server's certificate is not the pinned one");
		return;
	}
	r = np_sctx_open(d->cli, np_now_mono_ms() + (uint64_t)to * 1000, to,
	    &d->x);
	if (r == NP_OK) {
		id = np_key_name(d->x->key);
		doc_ok(d, "enrollment: authenticated as %s at %s port %s", id,
		    d->cli->cfg.server.host, d->cli->cfg.server.port);
		return;
	}
	if (id == NULL) {
		id = "@NAME";
	}
	if (r == NP_ERR_REVOKED) {
		snprintf(fix, sizeof(fix), "ask the server's operator for a "
		    "new token (np-server token -d DIR %s) and run np enroll "
		    "%s --token TOKEN; peers must then np pin --forget %s", id,
		    id, id);
		doc_fail(d, fix, "enrollment: %s is revoked at the server", id);
	} else if (r == NP_ERR_AUTH) {
		snprintf(fix, sizeof(fix), "ask the server's operator for a "
		    "token (np-server token -d DIR %s) and run np enroll %s "
		    "--token TOKEN", id, id);
		doc_fail(d, fix, "enrollment: the server refused %s (not "
		    "enrolled, or enrolled with another key)", id);
	} else {
		doc_fail(d, "see the np: line above", "enrollment: cannot "
		    "authenticate as %s: %s", id, np_strerror(r));
	}
}

/* ---------------- identities, rendezvous, device ---------------- */

/* Start monitoring our tag once (np_sctx_lookup with nothing to look
 * up): answers from the rendezvous and the device come on it. */
static int
doc_monitor(struct doc *d)
{
	int r;

	if (d->monitoring) {
		return NP_OK;
	}
	doc_rearm(d);
	if ((r = np_sctx_lookup(d->x, NULL, 0, NULL)) == NP_OK) {
		d->monitoring = 1;
	}
	return r;
}

/*
 * Look id up at the server and check it against KnownIdentities without
 * changing the file (tofu off): *pin says how it stands.  why on error.
 */
static int
doc_lookup(struct doc *d, const char *id, uint8_t pk[NP_PK_LEN],
    enum doc_pin *pin, char *why, size_t whylen)
{
	const char *path = d->cli->cfg.known_identities;
	struct np_cpc_lookup_res res;
	struct np_pins *pins = NULL;
	uint8_t old[NP_PK_LEN];
	char fa[NP_FP_MAX], fb[NP_FP_MAX];
	int r, changed = 0;

	if ((r = doc_monitor(d)) != NP_OK) {
		snprintf(why, whylen, "cannot monitor replies: %s",
		    np_strerror(r));
		return r;
	}
	if ((r = np_cpc_lookup_sync(d->x->c, id, np_sctx_left_ms(d->x),
	    &res)) != NP_OK) {
		snprintf(why, whylen, "%s", r == NP_ERR_NOT_FOUND ? "the "
		    "server knows no such identity" : r == NP_ERR_REVOKED ?
		    "revoked at the server" : np_strerror(r));
		return r;
	}
	if (path == NULL || (r = np_pins_load(path, &pins)) != NP_OK) {
		snprintf(why, whylen, "cannot read KnownIdentities: %s",
		    np_strerror(path == NULL ? NP_ERR_CONF : r));
		return path == NULL ? NP_ERR_CONF : r;
	}
	(void)np_pins_get(pins, id, old);
	r = np_pins_check(pins, id, res.pk, res.rot, res.nrot, 0, &changed);
	if (r == NP_ERR_NOT_FOUND || r == NP_OK) {
		*pin = r == NP_ERR_NOT_FOUND ? DOC_PIN_NEW : changed ?
		    DOC_PIN_ROTATED : DOC_PIN_MATCH;
		memcpy(pk, res.pk, NP_PK_LEN);
		r = NP_OK;
	} else if (r == NP_ERR_KEY_CHANGED &&
	    np_fingerprint(old, NP_PK_LEN, fa, sizeof(fa)) == NP_OK &&
	    np_fingerprint(res.pk, NP_PK_LEN, fb, sizeof(fb)) == NP_OK) {
		snprintf(why, whylen, "KEY CHANGED: the server has %s, the "
		    "pinned key is %s, and no rotation signed by the pinned "
		    "key leads there", fb, fa);
	} else {
		snprintf(why, whylen, "pin check failed: %s", np_strerror(r));
	}
	np_pins_free(pins);
	return r;
}

/* " (not pinned yet: SHA256:...; ...)" and the like, for an OK line. */
static void
pin_note(enum doc_pin pin, const uint8_t pk[NP_PK_LEN], char *out,
    size_t outlen)
{
	char fp[NP_FP_MAX];

	out[0] = '\0';
	if (pin == DOC_PIN_NEW && np_fingerprint(pk, NP_PK_LEN, fp,
	    sizeof(fp)) == NP_OK) {
		snprintf(out, outlen, " (key %s not pinned yet: np pins it at "
		    "the first session)", fp);
	} else if (pin == DOC_PIN_ROTATED) {
		snprintf(out, outlen, " (its key rotated, signed by the pinned "
		    "one: re-pinned at the next session)");
	}
}

/* The fix for a failed lookup of id (the rendezvous or the device). */
static void
lookup_fix(int r, const char *id, int device, char *fix, size_t fixlen)
{
	if (r == NP_ERR_KEY_CHANGED) {
		snprintf(fix, fixlen, "if %s was enrolled again on purpose, "
		    "check its new fingerprint with its owner, then np pin "
		    "--forget %s", id, id);
	} else if (r == NP_ERR_NOT_FOUND && device) {
		snprintf(fix, fixlen, "check the name (NAME.noports is device "
		    "default of @NAME, DEVICE.NAME.noports device DEVICE) or "
		    "its DeviceAlias");
	} else if (r == NP_ERR_NOT_FOUND || r == NP_ERR_REVOKED) {
		snprintf(fix, fixlen, "%s", device ? "the device's owner must "
		    "enroll it (again)" : "check Rendezvous in the config: "
		    "the identity of the np-srd your operator runs");
	} else {
		snprintf(fix, fixlen, "see the np: line above; is the server "
		    "still reachable?");
	}
}

static void check_relay_one(struct doc *, const char *);

/* Every Rendezvous of the line, each with its two checks. */
static void
check_relay(struct doc *d)
{
	const struct np_strlist *l = &d->cli->cfg.rendezvous_list;
	size_t i;

	check_relay_one(d, d->cli->cfg.rendezvous);
	for (i = 1; i < l->n && d->x != NULL; i++) {
		check_relay_one(d, l->v[i]);
	}
}

static void
check_relay_one(struct doc *d, const char *sr)
{
	const struct np_target *t = d->t != NULL ? d->t : &d->self;
	struct np_relay_try rt;
	uint8_t pk[NP_PK_LEN];
	enum doc_pin pin = DOC_PIN_MATCH;
	char why[512], fix[800], note[160];
	int r;

	if (d->x == NULL) {
		doc_skip(d, "rendezvous", "not authenticated to the server");
		return;
	}
	if (sr == NULL) {
		snprintf(fix, sizeof(fix), "add 'Rendezvous @sr' (the "
		    "rendezvous identity your server's operator runs) to %s",
		    conf_name(d));
		doc_fail(d, fix, "rendezvous: no Rendezvous configured");
		return;
	}
	doc_rearm(d);
	if ((r = doc_lookup(d, sr, pk, &pin, why, sizeof(why))) != NP_OK) {
		lookup_fix(r, sr, 0, fix, sizeof(fix));
		doc_fail(d, fix, "rendezvous %s: %s", sr, why);
		doc_skip(d, "relay endpoint", "no rendezvous to ask");
		return;
	}
	doc_rearm(d);
	r = np_diag_relay(d->x, t, sr, pk, &rt, why, sizeof(why));
	if (!rt.granted) {
		snprintf(fix, sizeof(fix), "is np-srd running and connected to "
		    "the server (its log), and does its Allow line name %s?",
		    np_key_name(d->x->key));
		doc_fail(d, fix, "rendezvous %s: %s", sr, why);
		doc_skip(d, "relay endpoint", "no session granted");
		return;
	}
	pin_note(pin, pk, note, sizeof(note));
	doc_ok(d, "rendezvous %s answers: granted %s in %llu ms%s", sr,
	    rt.endpoint, (unsigned long long)rt.grant_ms, note);
	if (r != NP_OK) {
		doc_fail(d, "np-srd's PublicHost and session ports (PortRange, "
		    "SinglePort) must be reachable from here: check the "
		    "firewall and np-srd's config", "relay endpoint %s: %s",
		    rt.endpoint, why);
		return;
	}
	doc_ok(d, "relay endpoint %s: connect+token round trip %llu ms",
	    rt.endpoint, (unsigned long long)rt.rtt_ms);
}

static void
check_device_ident(struct doc *d)
{
	const struct np_target *t = d->t;
	enum doc_pin pin = DOC_PIN_MATCH;
	char what[NP_IDENT_MAX + 32], why[512], fix[800], fp[NP_FP_MAX];
	int r;

	snprintf(what, sizeof(what), "device identity %s", t->ident);
	if (d->x == NULL) {
		doc_skip(d, what, "not authenticated to the server");
		return;
	}
	doc_rearm(d);
	if ((r = doc_lookup(d, t->ident, d->dev_pk, &pin, why,
	    sizeof(why))) != NP_OK) {
		lookup_fix(r, t->ident, 1, fix, sizeof(fix));
		doc_fail(d, fix, "%s: %s", what, why);
		return;
	}
	d->dev_ok = 1;
	if (pin == DOC_PIN_MATCH) {
		doc_ok(d, "%s: known, pinned key matches", what);
	} else if (pin == DOC_PIN_ROTATED) {
		doc_ok(d, "%s: known, its key rotated (signed by the pinned "
		    "one): re-pinned at the next session", what);
	} else {
		if (np_fingerprint(d->dev_pk, NP_PK_LEN, fp, sizeof(fp)) !=
		    NP_OK) {
			snprintf(fp, sizeof(fp), "?");
		}
		doc_ok(d, "%s: known, not pinned yet (%s): np pins it at the "
		    "first session", what, fp);
	}
}

static void
check_device_ping(struct doc *d)
{
	const struct np_target *t = d->t;
	struct np_pong pong;
	char what[NP_HOSTNAME_MAX + 16], why[512], fix[800];

	snprintf(what, sizeof(what), "device %s", t->host);
	if (!d->dev_ok) {
		doc_skip(d, what, "its identity check did not pass");
		return;
	}
	doc_rearm(d);
	if (np_diag_ping(d->x, t, d->dev_pk, &pong, why, sizeof(why)) !=
	    NP_OK) {
		snprintf(fix, sizeof(fix), "is np-deviced running on the "
		    "device and connected to the server (its log), does its "
		    "Allow line name %s, and are both clocks right (NTP)?",
		    np_key_name(d->x->key));
		doc_fail(d, fix, "%s: %s", what, why);
		return;
	}
	if (strcmp(pong.devices, "-") != 0 && !pong.has_device) {
		doc_fail(d, "use one of its names (DEVICE.NAME.noports) or a "
		    "DeviceAlias", "%s: np-deviced of %s has no device '%s' "
		    "(it has: %s)", what, t->ident, t->device, pong.devices);
		return;
	}
	doc_ok(d, "%s answers: np-deviced %s, devices: %s, features: %s, rtt "
	    "%llu ms", what, pong.version, pong.devices, pong.features,
	    (unsigned long long)pong.rtt_ms);
}

/* ---------------- ssh's view: ssh -G DEVICE ---------------- */

/* The home ssh expands "~" and %d with: the passwd entry's. */
static void
ssh_env(const struct doc *d, struct np_sshg_env *e)
{
	struct passwd *pw = getpwuid(getuid());

	memset(e, 0, sizeof(*e));
	e->home = pw != NULL && pw->pw_dir != NULL ? pw->pw_dir :
	    getenv("HOME");
	e->luser = pw != NULL ? pw->pw_name : NULL;
	e->arg = d->t->host;
	e->uid = (unsigned)getuid();
}

/* A path made comparable: realpath, or its directory's plus the name. */
static void
canon(const char *p, char *out, size_t outlen)
{
	char buf[PATH_MAX], dir[PATH_MAX], *slash;

	if (realpath(p, buf) != NULL) {
		snprintf(out, outlen, "%s", buf);
		return;
	}
	snprintf(dir, sizeof(dir), "%s", p);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (realpath(dir, buf) != NULL) {
			snprintf(out, outlen, "%s/%s", buf, slash + 1);
			return;
		}
	}
	snprintf(out, outlen, "%s", p);
}

static int
same_path(const char *a, const char *b)
{
	char ca[PATH_MAX + NAME_MAX + 2], cb[PATH_MAX + NAME_MAX + 2];

	canon(a, ca, sizeof(ca));
	canon(b, cb, sizeof(cb));
	return strcmp(ca, cb) == 0;
}

/* np on PATH (or the path itself): 1 when it can be run. */
static int
np_runnable(const char *np)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX], *dirs, *dir, *save = NULL;
	int ok = 0;

	if (strchr(np, '/') != NULL) {
		return access(np, X_OK) == 0;
	}
	if (path == NULL || (dirs = strdup(path)) == NULL) {
		return 0;
	}
	for (dir = strtok_r(dirs, ":", &save); dir != NULL && !ok;
	    dir = strtok_r(NULL, ":", &save)) {
		snprintf(buf, sizeof(buf), "%s/%s", *dir != '\0' ? dir : ".",
		    np);
		ok = access(buf, X_OK) == 0;
	}
	free(dirs);
	return ok;
}

/* The config np proxy would read: -F's (with the shell's "~/"), then
 * NP_CONFIG, then the default. */
static void
proxy_config(const char *f, char *out, size_t outlen)
{
	const char *env = getenv("NP_CONFIG"), *home = getenv("HOME");

	if (f != NULL && f[0] == '~' && f[1] == '/' && home != NULL) {
		snprintf(out, outlen, "%s%s", home, f + 1);
	} else if (f != NULL) {
		snprintf(out, outlen, "%s", f);
	} else if (env != NULL && *env != '\0') {
		snprintf(out, outlen, "%s", env);
	} else if (np_config_path("config", out, outlen) != NP_OK) {
		snprintf(out, outlen, "(none)");
	}
}

/* ProxyCommand "[exec] np [-F CONFIG] [-v] proxy %h %p %r", with an np
 * that runs and the config these checks read: 0, else -1, why, fix. */
static int
check_proxycommand(struct doc *d, const char *pc, char *why, size_t whylen,
    char *fix, size_t fixlen)
{
	struct np_sshg_proxy p;
	char conf[PATH_MAX], what[256];

	snprintf(fix, fixlen, "ProxyCommand np proxy %%h %%p %%r in its Host "
	    "block (ssh-config-snippets/noports.conf)");
	if (np_sshg_proxy_parse(pc, &p, what, sizeof(what)) != NP_OK) {
		snprintf(why, whylen, "its ProxyCommand '%.600s': %s", pc,
		    what);
		return -1;
	}
	if (!np_runnable(p.np)) {
		snprintf(why, whylen, "its ProxyCommand runs %.600s, which is "
		    "not %s", p.np, strchr(p.np, '/') != NULL ? "executable" :
		    "on PATH");
		snprintf(fix, fixlen, "give np's full path in ProxyCommand");
		return -1;
	}
	proxy_config(p.config, conf, sizeof(conf));
	if (d->cli->config_path != NULL &&
	    !same_path(conf, d->cli->config_path)) {
		snprintf(why, whylen, "its ProxyCommand runs np with the "
		    "config %.600s, but these checks read %.600s", conf,
		    d->cli->config_path);
		snprintf(fix, fixlen, "check that one: np -F %.400s doctor %s "
		    "(or give ProxyCommand -F %.400s)", conf, d->t->host,
		    d->cli->config_path);
		return -1;
	}
	return 0;
}

/* One of ssh's IdentityFiles is KeyDir/USER@HOST, as np proxy writes. */
static int
check_idfile(struct doc *d, const struct np_sshg *g, char *why,
    size_t whylen, char *fix, size_t fixlen)
{
	const char *dir = d->cli->cfg.key_dir;
	struct np_sshg_env e;
	char want[PATH_MAX], got[PATH_MAX], list[1024];
	size_t i, off = 0;

	snprintf(fix, fixlen, "IdentityFile %s/%%r@%%h in its Host block "
	    "(ssh-config-snippets/noports.conf)", dir != NULL ? dir :
	    "KEYDIR");
	if (dir == NULL || g->user == NULL || g->hostname == NULL) {
		snprintf(why, whylen, "no KeyDir, or ssh -G gave no user or "
		    "hostname");
		return -1;
	}
	ssh_env(d, &e);
	snprintf(want, sizeof(want), "%s/%s@%s", dir, g->user, g->hostname);
	list[0] = '\0';
	for (i = 0; i < g->nidfiles; i++) {
		if (np_sshg_expand(g->idfiles[i], g, &e, got, sizeof(got)) ==
		    NP_OK && same_path(got, want)) {
			return 0;
		}
		if (off + 1 < sizeof(list)) {
			off += (size_t)snprintf(list + off, sizeof(list) - off,
			    "%s%s", off > 0 ? ", " : "", g->idfiles[i]);
		}
	}
	snprintf(why, whylen, "no IdentityFile is %.600s (the session key np "
	    "proxy writes; ssh has: %.600s)", want, off > 0 ? list : "none");
	return -1;
}

/* ssh's UserKnownHostsFile names KnownHosts. */
static int
check_ukh(struct doc *d, const struct np_sshg *g, char *why, size_t whylen,
    char *fix, size_t fixlen)
{
	const char *kh = d->cli->cfg.known_hosts;
	struct np_sshg_env e;
	char copy[2048], got[PATH_MAX], *tok, *save = NULL;

	snprintf(fix, fixlen, "UserKnownHostsFile %s in its Host block "
	    "(ssh-config-snippets/noports.conf)", kh != NULL ? kh :
	    "KNOWNHOSTS");
	ssh_env(d, &e);
	snprintf(copy, sizeof(copy), "%s", g->ukh != NULL ? g->ukh : "");
	for (tok = strtok_r(copy, " \t", &save); kh != NULL && tok != NULL;
	    tok = strtok_r(NULL, " \t", &save)) {
		if (np_sshg_expand(tok, g, &e, got, sizeof(got)) == NP_OK &&
		    same_path(got, kh)) {
			return 0;
		}
	}
	snprintf(why, whylen, "its UserKnownHostsFile (%.600s) is not "
	    "KnownHosts %.600s, where np proxy writes the device's host keys",
	    g->ukh != NULL ? g->ukh : "none", kh != NULL ? kh : "(unset)");
	return -1;
}

static void
check_ssh(struct doc *d)
{
	struct np_sshg g;
	char what[NP_HOSTNAME_MAX + 32], why[1536], fix[1536], err[512];
	char *out = NULL, *nl;
	int r, status = 0;

	snprintf(what, sizeof(what), "ssh config for %s", d->t->host);
	r = np_sshg_run(d->ssh_config, d->t->host, SSH_WAIT_MS, &out, &status,
	    err, sizeof(err));
	if (r != NP_OK || status != 0) {
		if ((nl = strchr(err, '\n')) != NULL) {
			*nl = '\0';
		}
		doc_fail(d, status == 127 ? "install openssh-client" :
		    "correct the ssh config it names", "%s: ssh -G %s %s%s%s",
		    what, d->t->host, r != NP_OK ? np_strerror(r) : "failed",
		    err[0] != '\0' ? ": " : "", err);
		goto out;
	}
	np_sshg_parse(out, &g);
	if (g.proxycommand == NULL || strcmp(g.proxycommand, "none") == 0) {
		doc_fail(d, "install ssh-config-snippets/noports.conf as "
		    "/etc/ssh/ssh_config.d/noports.conf, or add its Host "
		    "*.noports block to ~/.ssh/config", "%s: no ProxyCommand "
		    "(ssh would connect to %s directly)", what,
		    g.hostname != NULL ? g.hostname : d->t->host);
		goto out;
	}
	if (check_proxycommand(d, g.proxycommand, why, sizeof(why), fix,
	    sizeof(fix)) != 0 || check_idfile(d, &g, why, sizeof(why), fix,
	    sizeof(fix)) != 0 || check_ukh(d, &g, why, sizeof(why), fix,
	    sizeof(fix)) != 0) {
		doc_fail(d, fix, "%s: %s", what, why);
		goto out;
	}
	doc_ok(d, "%s: ProxyCommand runs np proxy, IdentityFile is in KeyDir, "
	    "UserKnownHostsFile is KnownHosts", what);
 out:
	free(out);
}

/* ---------------- the command ---------------- */

static int
doctor_run(struct doc *d)
{
	check_config(d);
	check_key(d);
	check_keydir(d);
	check_known_hosts(d);
	check_server(d);
	check_cert(d);
	check_auth(d);
	check_pins(d);
	check_relay(d);
	if (d->t != NULL) {
		check_device_ident(d);
		check_device_ping(d);
		check_ssh(d);
	}
	if (d->srv_fd >= 0) {
		close(d->srv_fd);
	}
	np_sctx_free(d->x);
	d->x = NULL;
	return d->nfail == 0 && fflush(stdout) == 0 ? NP_EXIT_OK :
	    NP_EXIT_FAIL;
}

int
cmd_doctor(struct np_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ssh-config", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct np_target t;
	struct doc d;
	char why[256];
	int ch;

	memset(&d, 0, sizeof(d));
	d.cli = cli;
	d.srv_fd = -1;
	snprintf(d.self.host, sizeof(d.self.host), "doctor");
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (ch == 'h') {
			printf("usage: %s\n", DOCTOR_USAGE);
			return NP_EXIT_OK;
		}
		if (ch != 'S') {
			return cli_usage(DOCTOR_USAGE);
		}
		d.ssh_config = optarg;
	}
	if (cli->ev == NULL || optind + 1 < argc) {
		return cli_usage(DOCTOR_USAGE);
	}
	if (optind < argc) {
		if (np_target_resolve(argv[optind], cli->cfg.aliases,
		    cli->cfg.naliases, &t, why, sizeof(why)) != NP_OK) {
			cli_err("bad device name '%.80s': %s", argv[optind],
			    why);
			return NP_EXIT_FAIL;
		}
		d.t = &t;
	}
	return doctor_run(&d);
}
