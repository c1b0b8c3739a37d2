/*
 * The daemon: load the configuration and the key, set up the event loop,
 * the data plane and the control plane, run until SIGTERM/SIGINT, then
 * let relaying sessions finish for up to GraceTime.
 */
#include <sys/resource.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "box.h"
#include "cpc.h"
#include "err.h"
#include "notify.h"
#include "ev.h"
#include "key.h"
#include "log.h"
#include "pin.h"
#include "srd.h"

void
srd_check_done(struct srd *d)
{
	if (d->stopping && srd_table_count(d->table) == 0) {
		np_ev_stop(d->ev);
	}
}

static void
grace_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct srd *d = arg;

	d->grace_timer = 0;
	np_info("grace time over: stopping %zu relaying sessions",
	    srd_table_relaying_count(d->table));
	srd_data_stop_relays(d);
	srd_check_done(d);
}

void
srd_begin_shutdown(struct srd *d)
{
	size_t n;

	if (d->stopping) {
		return;
	}
	d->stopping = 1;
	srd_ctl_stop(d);
	srd_data_shutdown(d);
	n = srd_table_relaying_count(d->table);
	if (n == 0) {
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
	struct srd *d = arg;

	if (d->stopping) {
		np_info("signal %d again: stopping now", signo);
		np_ev_timer_del(ev, d->grace_timer);
		grace_cb(ev, 0, d);
		return;
	}
	np_info("signal %d: shutting down", signo);
	srd_begin_shutdown(d);
}

/* Every session holds two or three descriptors: use what we may. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int
load_key(struct srd *d)
{
	const char *path = d->conf->identity_file;
	int r;

	if ((r = np_key_load(path, &d->key)) != NP_OK) {
		fprintf(stderr, "np-srd: %s: cannot load the identity key: "
		    "%s\n", path, np_strerror(r));
		return r;
	}
	if (d->conf->identity != NULL &&
	    strcmp(d->conf->identity, np_key_name(d->key)) != 0) {
		fprintf(stderr, "np-srd: %s holds the key of %s, but Identity "
		    "is %s\n", path, np_key_name(d->key), d->conf->identity);
		return NP_ERR_CONF;
	}
	if ((r = np_pins_load(d->conf->known_identities, &d->pins)) !=
	    NP_OK) {
		fprintf(stderr, "np-srd: %s: cannot load pins: %s\n",
		    d->conf->known_identities, np_strerror(r));
		return r;
	}
	return NP_OK;
}

/* Everything that can fail before the loop runs. */
static int
srd_setup(struct srd *d, const struct srd_opts *o)
{
	char err[1024];
	int r;

	if ((r = srd_conf_load(d->conf, o->conf_path, err, sizeof(err))) !=
	    NP_OK) {
		fprintf(stderr, "np-srd: %s\n", err);
		return r;
	}
	if ((r = np_crypto_init()) != NP_OK || (r = load_key(d)) != NP_OK) {
		return r;
	}
	/* Start-up errors go to stderr; syslog once running (no -D). */
	np_log_init("np-srd", 0, o->verbose ? NP_LOG_DEBUG : d->conf->level);
	raise_nofile();
	if ((d->ev = np_ev_new()) == NULL ||
	    (d->replay = np_replay_new(NP_REPLAY_DEFAULT)) == NULL ||
	    (d->table = srd_table_new((size_t)d->conf->max_sessions,
	    (size_t)d->conf->max_per_ident)) == NULL) {
		np_error("out of memory");
		return NP_ERR_ALLOC;
	}
	if ((r = np_ev_signal_add(d->ev, SIGTERM, signal_cb, d)) != NP_OK ||
	    (r = np_ev_signal_add(d->ev, SIGINT, signal_cb, d)) != NP_OK) {
		np_error_r(r, "cannot set up signals");
		return r;
	}
	if ((r = srd_data_start(d)) != NP_OK) {
		return r;
	}
	if ((r = srd_ctl_start(d)) != NP_OK) {
		np_error_r(r, "cannot set up the control-plane client");
		return r;
	}
	/* Type=notify: the session ports are open (the control plane
	 * connects in the background and reconnects by itself). */
	if (np_notify("READY=1") != NP_OK) {
		np_warn("cannot tell systemd that np-srd is ready");
	}
	return NP_OK;
}

static void
srd_cleanup(struct srd *d)
{
	srd_ctl_free(d);
	srd_data_free(d);
	srd_table_free(d->table);
	np_replay_free(d->replay);
	np_pins_free(d->pins);
	np_key_free(d->key);
	np_ev_free(d->ev);
	srd_conf_free(d->conf);
}

int
srd_main(const struct srd_opts *o)
{
	struct srd_conf conf;
	struct srd d;
	int r;

	signal(SIGPIPE, SIG_IGN);
	memset(&d, 0, sizeof(d));
	srd_conf_init(&conf);
	d.conf = &conf;
	if (srd_setup(&d, o) != NP_OK) {
		srd_cleanup(&d);
		return 1;
	}
	if (!o->foreground) {
		np_log_init("np-srd", 1, o->verbose ? NP_LOG_DEBUG :
		    conf.level);
	}
	np_info("np-srd %s as %s, %s mode, public host %s", SRD_VERSION,
	    np_key_name(d.key), conf.single_port != 0 ? "single-port" :
	    "fresh-port", conf.public_host);
	if ((r = np_ev_run(d.ev)) != NP_OK) {
		np_error_r(r, "event loop failed");
		d.exit_code = 1;
	}
	np_info("exiting");
	r = d.exit_code;
	srd_cleanup(&d);
	return r;
}
