/*
 * np-keyhelper install / sweep: authorized_keys mode, for hosts whose
 * sshd_config cannot change.  The rewrite itself (lock, atomic replace
 * with the same owner and mode, only our marked lines touched) is
 * np_authkeys_install/np_authkeys_sweep in lib/spool.c.  Messages go to
 * stderr; nothing is printed on success unless -v.
 */
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "key.h"
#include "keyhelper.h"
#include "log.h"
#include "spool.h"
#include "sshkey.h"

struct kh_target {
	char path[PATH_MAX];
	uid_t uid;
	gid_t gid;
	int mkdir; /* create ~/.ssh when it is missing */
};

struct kh_opts {
	const char *file;
	const char *user;
	const char *key;
	const char *expires;
	const char *session;
	const char *spool;
	int verbose;
	int help;
};

enum { OPT_USER = 256, OPT_KEY, OPT_EXPIRES, OPT_SESSION };

#define INSTALL_USAGE "usage: np-keyhelper install [-v] " \
	"[-f AUTHORIZED_KEYS] [--user USER]\n" \
	"    --key 'ssh-ed25519 BASE64' --expires UNIX_SECONDS --session SID\n"
#define SWEEP_USAGE "usage: np-keyhelper sweep [-v] " \
	"[-f AUTHORIZED_KEYS] [--user USER]\n" \
	"       np-keyhelper sweep [-v] -s SPOOLDIR\n"

static const struct option longopts[] = {
    {"file", required_argument, NULL, 'f'},
    {"user", required_argument, NULL, OPT_USER},
    {"key", required_argument, NULL, OPT_KEY},
    {"expires", required_argument, NULL, OPT_EXPIRES},
    {"session", required_argument, NULL, OPT_SESSION},
    {"spool", required_argument, NULL, 's'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int
parse_opts(int argc, char **argv, struct kh_opts *o)
{
	int ch;

	memset(o, 0, sizeof(*o));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+f:s:vh", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'h':
			o->help = 1;
			break;
		case 'f':
			o->file = optarg;
			break;
		case 's':
			o->spool = optarg;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case OPT_USER:
			o->user = optarg;
			break;
		case OPT_KEY:
			o->key = optarg;
			break;
		case OPT_EXPIRES:
			o->expires = optarg;
			break;
		case OPT_SESSION:
			o->session = optarg;
			break;
		default:
			return NP_ERR_INVALID;
		}
	}
	return optind == argc ? NP_OK : NP_ERR_INVALID;
}

/* The account whose file we edit: --user, or the effective user. */
static int
resolve_target(const struct kh_opts *o, struct kh_target *t)
{
	const struct passwd *pw;

	if (o->user != NULL && !np_user_valid(o->user)) {
		np_error("invalid user name '%.40s'", o->user);
		return NP_ERR_INVALID;
	}
	pw = o->user != NULL ? getpwnam(o->user) : getpwuid(geteuid());
	if (pw == NULL) {
		np_error("no such user");
		return NP_ERR_NOT_FOUND;
	}
	t->uid = pw->pw_uid;
	t->gid = pw->pw_gid;
	t->mkdir = o->file == NULL;
	if (o->file != NULL) {
		if (strlen(o->file) >= sizeof(t->path)) {
			return NP_ERR_TOO_BIG;
		}
		strcpy(t->path, o->file);
		return NP_OK;
	}
	if (pw->pw_dir == NULL || pw->pw_dir[0] != '/' ||
	    (size_t)snprintf(t->path, sizeof(t->path),
			     "%s/.ssh/authorized_keys",
			     strcmp(pw->pw_dir, "/") == 0 ? "" : pw->pw_dir) >=
		sizeof(t->path)) {
		np_error("bad home directory for the user");
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

static int
parse_expires(const char *s, int64_t *t)
{
	char *end;
	long long v;

	if (s == NULL || *s < '0' || *s > '9') {
		return NP_ERR_INVALID;
	}
	v = strtoll(s, &end, 10);
	if (*end != '\0' || v < 0 || v > NP_SPOOL_TIME_MAX) {
		return NP_ERR_INVALID;
	}
	*t = v;
	return NP_OK;
}

/* --key 'ssh-ed25519 BASE64 [comment]' */
static int
parse_key(const char *s, uint8_t pk[NP_SSHKEY_PK_LEN])
{
	struct np_sshpub *p = NULL;
	int r;

	if (s == NULL) {
		return NP_ERR_INVALID;
	}
	if ((r = np_sshpub_parse((const uint8_t *)s, strlen(s), &p)) != NP_OK) {
		return r;
	}
	r = np_sshkey_parse_blob_ed25519(p->blob, p->bloblen, pk);
	np_sshpub_free(p);
	return r;
}

static int
install_entry(const struct kh_opts *o, struct np_spool_entry *e, int64_t now)
{
	memset(e, 0, sizeof(*e));
	if (parse_key(o->key, e->pk) != NP_OK) {
		np_error("--key: need one 'ssh-ed25519 BASE64' public key");
		return NP_ERR_INVALID;
	}
	if (parse_expires(o->expires, &e->expires) != NP_OK) {
		np_error("--expires: need unix seconds");
		return NP_ERR_INVALID;
	}
	if (e->expires <= now) {
		np_error("--expires is in the past");
		return NP_ERR_INVALID;
	}
	if (!np_sid_valid(o->session)) {
		np_error("--session: need 32 lowercase hex digits");
		return NP_ERR_INVALID;
	}
	memcpy(e->sid, o->session, NP_SID_HEX_LEN + 1);
	return NP_OK;
}

int
kh_install(int argc, char **argv)
{
	struct np_spool_entry e;
	struct kh_target t;
	struct kh_opts o;
	int64_t now = (int64_t)time(NULL);
	int r;

	np_log_init("np-keyhelper", 0, NP_LOG_INFO);
	if ((r = parse_opts(argc, argv, &o)) == NP_OK && o.help) {
		fputs(INSTALL_USAGE, stdout);
		return KH_EXIT_OK;
	}
	if (r != NP_OK || o.spool != NULL) {
		fputs(INSTALL_USAGE, stderr);
		return KH_EXIT_USAGE;
	}
	if (install_entry(&o, &e, now) != NP_OK ||
	    resolve_target(&o, &t) != NP_OK) {
		return KH_EXIT_FAIL;
	}
	r = np_authkeys_install(t.path, t.uid, t.gid, t.mkdir, &e, now);
	if (r != NP_OK) {
		np_error_r(r, "%s", t.path);
		return KH_EXIT_FAIL;
	}
	if (o.verbose) {
		np_info("%s: installed session %s", t.path, e.sid);
	}
	return KH_EXIT_OK;
}

int
kh_sweep(int argc, char **argv)
{
	struct kh_target t;
	struct kh_opts o;
	unsigned n = 0;
	int64_t now = (int64_t)time(NULL);
	int r;

	np_log_init("np-keyhelper", 0, NP_LOG_INFO);
	if ((r = parse_opts(argc, argv, &o)) == NP_OK && o.help) {
		fputs(SWEEP_USAGE, stdout);
		return KH_EXIT_OK;
	}
	if (r != NP_OK || o.key != NULL ||
	    o.expires != NULL || o.session != NULL ||
	    (o.spool != NULL && (o.file != NULL || o.user != NULL))) {
		fputs(SWEEP_USAGE, stderr);
		return KH_EXIT_USAGE;
	}
	if (o.spool != NULL) {
		r = np_spool_sweep(o.spool, now, &n);
		snprintf(t.path, sizeof(t.path), "%s", o.spool);
	} else if ((r = resolve_target(&o, &t)) == NP_OK) {
		r = np_authkeys_sweep(t.path, t.uid, now, &n);
		if (r == NP_ERR_NOT_FOUND) {
			r = NP_OK; /* no ~/.ssh: nothing to sweep */
		}
	}
	if (r != NP_OK) {
		np_error_r(r, "sweep failed");
		return KH_EXIT_FAIL;
	}
	if (o.verbose) {
		np_info("%s: removed %u expired session key(s)", t.path, n);
	}
	return KH_EXIT_OK;
}
