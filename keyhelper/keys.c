/*
 * np-keyhelper [-d] [-s SPOOLDIR] USER: the AuthorizedKeysCommand.
 *
 * stdout carries authorized_keys lines and nothing else: one line per
 * unexpired spool entry for USER, composed from the parsed fields (never
 * copied from the file).  Everything else goes to syslog (LOG_AUTH), or
 * to stderr with -d.  Exit 0 with the lines (none is fine); exit 1 with
 * nothing printed for an invalid user name, an unsafe spool directory or
 * any other error (sshd then ignores the command's output and logs the
 * failure).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "key.h"
#include "keyhelper.h"
#include "log.h"
#include "spool.h"

#define KH_MAX_LINES 256
#define KH_OUT_MAX (KH_MAX_LINES * 256)

struct keys_out {
	struct np_buf *b;
	unsigned n;
};

static int
add_line(const struct np_spool_entry *e, void *arg)
{
	struct keys_out *o = arg;
	int r;

	if (o->n >= KH_MAX_LINES) {
		np_warn("more than %d session keys for one user: rest ignored",
			KH_MAX_LINES);
		return NP_ERR_LIMIT;
	}
	if ((r = np_authkey_format(e, o->b)) != NP_OK ||
	    (r = np_buf_put_u8(o->b, '\n')) != NP_OK) {
		return r;
	}
	o->n++;
	return NP_OK;
}

static int
write_out(const struct np_buf *b)
{
	const uint8_t *p = np_buf_ptr(b);
	size_t len = np_buf_len(b);
	ssize_t w;

	while (len > 0) {
		w = write(STDOUT_FILENO, p, len);
		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w <= 0) {
			return NP_ERR_SYSTEM;
		}
		p += w;
		len -= (size_t)w;
	}
	return NP_OK;
}

static int
keys_opts(int argc, char **argv, const char **dir, int *debug)
{
	int ch;

	optind = 1;
	while ((ch = getopt(argc, argv, "+ds:")) != -1) {
		switch (ch) {
		case 'd':
			*debug = 1;
			break;
		case 's':
			*dir = optarg;
			break;
		default:
			return NP_ERR_INVALID;
		}
	}
	return optind == argc - 1 ? NP_OK : NP_ERR_INVALID;
}

int
kh_keys(int argc, char **argv)
{
	const char *dir = NP_SPOOL_DIR_DEFAULT, *user;
	struct keys_out o = {NULL, 0};
	int debug = 0, r;

	r = keys_opts(argc, argv, &dir, &debug);
	np_log_init("np-keyhelper", !debug, debug ? NP_LOG_DEBUG : NP_LOG_INFO);
	if (!debug) {
		openlog("np-keyhelper", LOG_PID | LOG_NDELAY, LOG_AUTH);
	}
	if (r != NP_OK) {
		np_error("usage: np-keyhelper [-d] [-s SPOOLDIR] USER");
		return KH_EXIT_USAGE;
	}
	user = argv[optind];
	if (!np_user_valid(user)) {
		np_warn("invalid user name refused");
		return KH_EXIT_FAIL;
	}
	if ((o.b = np_buf_new(KH_OUT_MAX)) == NULL) {
		return KH_EXIT_FAIL;
	}
	r = np_spool_list(dir, user, (int64_t)time(NULL), add_line, &o);
	if (r != NP_OK && r != NP_ERR_LIMIT) {
		np_error_r(r, "listing %s for %s", dir, user);
	} else {
		np_info("%u session key(s) for %s", o.n, user);
		if ((r = write_out(o.b)) != NP_OK) {
			np_error_r(r, "writing to sshd");
		}
	}
	np_buf_free(o.b);
	return r == NP_OK || r == NP_ERR_LIMIT ? KH_EXIT_OK : KH_EXIT_FAIL;
}
