/*
 * The daemon: load the configuration, the identity key, the pins, the
 * replay cache and the sshd host keys; check the spool and state
 * directories; set up the event loop and the control plane; sweep expired
 * keys every SWEEP_MS; run until SIGTERM/SIGINT, then let relaying
 * sessions finish for up to GraceTime.  SIGHUP re-reads the host keys.
 */
#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "box.h"
#include "buf.h"
#include "cpc.h"
#include "dev.h"
#include "err.h"
#include "ev.h"
#include "key.h"
#include "log.h"
#include "pin.h"
#include "sshkey.h"

#define SWEEP_MS 10000
#define HOSTKEY_LINE_MAX 16384

static const char *const default_hostkeys[] = {
	"/etc/ssh/ssh_host_ed25519_key.pub",
	"/etc/ssh/ssh_host_ecdsa_key.pub",
	"/etc/ssh/ssh_host_rsa_key.pub",
};

/* ---- host keys ---- */

void
dev_hostkeys_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i]);
	}
	free(v);
}

/* "TYPE BASE64" of one .pub file into *line. */
static int
hostkey_one(const char *path, char **line)
{
	struct np_sshpub *pub = NULL;
	struct np_buf *b = NULL;
	int r;

	*line = NULL;
	if ((r = np_sshpub_load(path, &pub)) != NP_OK) {
		goto out;
	}
	if ((b = np_buf_new(HOSTKEY_LINE_MAX)) == NULL) {
		r = NP_ERR_ALLOC;
		goto out;
	}
	if ((r = np_sshpub_format(pub, b)) != NP_OK ||
	    (r = np_buf_put_u8(b, 0)) != NP_OK) {
		goto out;
	}
	if ((*line = strdup((const char *)np_buf_ptr(b))) == NULL) {
		r = NP_ERR_ALLOC;
	}
 out:
	np_buf_free(b);
	np_sshpub_free(pub);
	return r;
}

int
dev_hostkeys_load(const struct dev_conf *c, char ***out, size_t *nout)
{
	const char *const *paths = (const char *const *)c->host_key.v;
	size_t npaths = c->host_key.n, i, n = 0;
	int defaults = npaths == 0, r;
	char **v;

	if (defaults) {
		paths = default_hostkeys;
		npaths = sizeof(default_hostkeys) / sizeof(default_hostkeys[0]);
	}
	if ((v = calloc(npaths + 1, sizeof(*v))) == NULL) {
		return NP_ERR_ALLOC;
	}
	for (i = 0; i < npaths; i++) {
		if (defaults && access(paths[i], F_OK) != 0) {
			continue;
		}
		if ((r = hostkey_one(paths[i], &v[n])) != NP_OK) {
			np_warn_r(r, "host key %s not used", paths[i]);
			continue;
		}
		n++;
	}
	if (n == 0) {
		free(v);
		return NP_ERR_NOT_FOUND;
	}
	*out = v;
	*nout = n;
	return NP_OK;
}

static void
hostkeys_reload(struct dev *d)
{
	char **v = NULL;
	size_t n = 0;
	int r;

	if ((r = dev_hostkeys_load(d->conf, &v, &n)) != NP_OK) {
		np_warn_r(r, "SIGHUP: no host key could be read: keeping the "
		    "%zu loaded before", d->nhostkeys);
		return;
	}
	dev_hostkeys_free(d->hostkeys, d->nhostkeys);
	d->hostkeys = v;
	d->nhostkeys = n;
	np_info("SIGHUP: %zu host keys loaded", n);
}

/* ---- shutdown ---- */

void
dev_check_done(struct dev *d)
{
	if (d->stopping && d->nsessions == 0) {
		np_ev_stop(d->ev);
	}
}

static void
grace_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct dev *d = arg;

	d->grace_timer = 0;
	np_info("grace time over: stopping %zu relaying sessions",
	    dev_sess_relaying(d));
	dev_sess_shutdown(d, 1);
	dev_check_done(d);
}

static void
begin_shutdown(struct dev *d)
{
	size_t n;

	if (d->stopping) {
		return;
	}
	d->stopping = 1;
	np_ev_timer_del(d->ev, d->sweep_timer);
	d->sweep_timer = 0;
	np_ev_timer_del(d->ev, d->trim_timer);
	d->trim_timer = 0;
	dev_sess_shutdown(d, 0); /* sessions still connecting end now */
	dev_probe_free_all(d);
	dev_ctl_stop(d);
	if ((n = dev_sess_relaying(d)) == 0) {
		np_ev_stop(d->ev);
		return;
	}
	np_info("waiting up to %ld s for %zu relaying sessions",
	    d->conf->grace_time, n);
	d->grace_timer = np_ev_timer_add(d->ev,
	    (uint64_t)d->conf->grace_time * 1000, grace_cb, d);
	if (d->grace_timer == 0) {
		grace_cb(d->ev, 0, d);
	}
}

static void
signal_cb(struct np_ev *ev, int signo, void *arg)
{
	struct dev *d = arg;

	if (signo == SIGHUP) {
		hostkeys_reload(d);
		return;
	}
	if (d->stopping) {
		np_info("signal %d again: stopping now", signo);
		np_ev_timer_del(ev, d->grace_timer);
		grace_cb(ev, 0, d);
		return;
	}
	np_info("signal %d: shutting down", signo);
	begin_shutdown(d);
}

static void
sweep_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct dev *d = arg;

	dev_keys_sweep(d);
	d->sweep_timer = np_ev_timer_add(ev, SWEEP_MS, sweep_cb, d);
}

/* ---- set-up ---- */

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * A directory only we may write: created 0700 when missing (its parent
 * must exist), then it must be a directory owned by the euid that group
 * and other cannot write (np-keyhelper refuses the spool otherwise).
 */
static int
own_dir(const char *what, const char *path)
{
	struct stat st;

	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "np-deviced: %s %s: cannot create: %s\n", what,
		    path, strerror(errno));
		return NP_ERR_SYSTEM;
	}
	if (lstat(path, &st) != 0) {
		fprintf(stderr, "np-deviced: %s %s: %s\n", what, path,
		    strerror(errno));
		return NP_ERR_SYSTEM;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 022) != 0) {
		fprintf(stderr, "np-deviced: %s %s must be a directory (not a "
		    "symlink) owned by uid %u, not writable by group or other "
		    "(chown/chmod 0700 it)\n", what, path,
		    (unsigned)geteuid());
		return NP_ERR_PERM;
	}
	return NP_OK;
}

static int
load_key(struct dev *d)
{
	const char *path = d->conf->identity_file;
	int r;

	if ((r = np_key_load(path, &d->key)) != NP_OK) {
		fprintf(stderr, "np-deviced: %s: cannot load the identity key: "
		    "%s\n", path, np_strerror(r));
		return r;
	}
	if (d->conf->identity != NULL &&
	    strcmp(d->conf->identity, np_key_name(d->key)) != 0) {
		fprintf(stderr, "np-deviced: %s holds the key of %s, but "
		    "Identity is %s\n", path, np_key_name(d->key),
		    d->conf->identity);
		return NP_ERR_CONF;
	}
	if ((r = np_pins_load(d->conf->known_identities, &d->pins)) !=
	    NP_OK) {
		fprintf(stderr, "np-deviced: %s: cannot load pins: %s\n",
		    d->conf->known_identities, np_strerror(r));
		return r;
	}
	return NP_OK;
}

static int
load_state(struct dev *d)
{
	char path[4096];
	int r;

	if ((r = own_dir("StateDir", d->conf->state_dir)) != NP_OK ||
	    (d->conf->keymode == DEV_KEYMODE_SPOOL &&
	    (r = own_dir("SpoolDir", d->conf->spool_dir)) != NP_OK)) {
		return r;
	}
	if ((d->replay = np_replay_new(NP_REPLAY_DEFAULT)) == NULL) {
		return NP_ERR_ALLOC;
	}
	snprintf(path, sizeof(path), "%s/%s", d->conf->state_dir,
	    DEV_SEEN_FILE);
	if ((r = np_replay_persist(d->replay, path)) != NP_OK) {
		fprintf(stderr, "np-deviced: %s: cannot keep the replay cache: "
		    "%s\n", path, np_strerror(r));
		return r;
	}
	if ((r = dev_hostkeys_load(d->conf, &d->hostkeys, &d->nhostkeys)) !=
	    NP_OK) {
		fprintf(stderr, "np-deviced: no sshd host key could be read "
		    "(HostKey, default /etc/ssh/ssh_host_*_key.pub): %s\n",
		    np_strerror(r));
		return r;
	}
	return NP_OK;
}

/* Sshd HOST:PORT, resolved once. */
static int
resolve_sshd(struct dev *d)
{
	struct addrinfo hints, *res = NULL;
	int gai;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((gai = getaddrinfo(d->conf->sshd.host, d->conf->sshd.port, &hints,
	    &res)) != 0) {
		fprintf(stderr, "np-deviced: Sshd %s: %s\n",
		    d->conf->sshd.host, gai_strerror(gai));
		return NP_ERR_CONF;
	}
	if (res->ai_addrlen > sizeof(d->sshd_addr)) {
		freeaddrinfo(res);
		return NP_ERR_INTERNAL;
	}
	memcpy(&d->sshd_addr, res->ai_addr, res->ai_addrlen);
	d->sshd_addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	return NP_OK;
}

static int
dev_setup(struct dev *d, const struct dev_opts *o)
{
	char err[1024];
	int r;

	if ((r = dev_mem_init()) != NP_OK) {
		fprintf(stderr, "np-deviced: cannot initialise OpenSSL\n");
		return r;
	}
	if ((r = dev_conf_load(d->conf, o->conf_path, err, sizeof(err))) !=
	    NP_OK) {
		fprintf(stderr, "np-deviced: %s\n", err);
		return r;
	}
	/* Start-up errors go to stderr; syslog once running (no -D). */
	np_log_init("np-deviced", 0, o->verbose ? NP_LOG_DEBUG :
	    d->conf->level);
	if ((r = np_crypto_init()) != NP_OK || (r = load_key(d)) != NP_OK ||
	    (r = load_state(d)) != NP_OK || (r = resolve_sshd(d)) != NP_OK) {
		return r;
	}
	raise_nofile();
	if ((d->ev = np_ev_new()) == NULL) {
		np_error("out of memory");
		return NP_ERR_ALLOC;
	}
	if ((r = np_ev_signal_add(d->ev, SIGTERM, signal_cb, d)) != NP_OK ||
	    (r = np_ev_signal_add(d->ev, SIGINT, signal_cb, d)) != NP_OK ||
	    (r = np_ev_signal_add(d->ev, SIGHUP, signal_cb, d)) != NP_OK) {
		np_error_r(r, "cannot set up signals");
		return r;
	}
	if ((d->sweep_timer = np_ev_timer_add(d->ev, SWEEP_MS, sweep_cb,
	    d)) == 0) {
		return NP_ERR_ALLOC;
	}
	if ((r = dev_ctl_start(d)) != NP_OK) {
		np_error_r(r, "cannot set up the control-plane client");
		return r;
	}
	return NP_OK;
}

static void
dev_cleanup(struct dev *d)
{
	if (d->ev != NULL) {
		dev_sess_free_all(d);
		dev_probe_free_all(d);
	}
	dev_ctl_free(d);
	dev_hostkeys_free(d->hostkeys, d->nhostkeys);
	np_strlist_free(&d->ak_users);
	np_replay_free(d->replay);
	np_pins_free(d->pins);
	np_key_free(d->key);
	np_ev_free(d->ev);
	dev_conf_free(d->conf);
}

int
dev_main(const struct dev_opts *o)
{
	struct dev_conf conf;
	struct dev d;
	int r;

	signal(SIGPIPE, SIG_IGN);
	memset(&d, 0, sizeof(d));
	dev_conf_init(&conf);
	d.conf = &conf;
	if (dev_setup(&d, o) != NP_OK) {
		dev_cleanup(&d);
		return 1;
	}
	if (!o->foreground) {
		np_log_init("np-deviced", 1, o->verbose ? NP_LOG_DEBUG :
		    conf.level);
	}
	np_info("np-deviced %s as %s: devices %zu (first %s), %zu Allow "
	    "lines, sshd %s port %s, %zu host keys, keys in %s, valid %ld s",
	    DEV_VERSION, np_key_name(d.key), conf.device_name.n,
	    conf.device_name.v[0], conf.nallow, conf.sshd.host,
	    conf.sshd.port, d.nhostkeys, conf.keymode == DEV_KEYMODE_SPOOL ?
	    conf.spool_dir : "~/.ssh/authorized_keys", conf.key_ttl);
	if (conf.nallow == 0) {
		np_warn("no Allow line: every request will be refused");
	}
	dev_keys_init(&d);
	dev_keys_sweep(&d);
	if ((r = np_ev_run(d.ev)) != NP_OK) {
		np_error_r(r, "event loop failed");
		d.exit_code = 1;
	}
	np_info("exiting");
	r = d.exit_code;
	dev_cleanup(&d);
	return r;
}
