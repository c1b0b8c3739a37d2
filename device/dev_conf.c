/*
 * deviced.conf: the keyword table, defaults, Allow lines and the checks
 * that look at several values together (docs/np-deviced.md).  Pure: no
 * file is looked at here (the default host keys are found at start-up).
 */
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "dev.h"
#include "err.h"
#include "ident.h"
#include "log.h"
#include "spool.h"

#define KW(name, type, field, flags, min, max, help)                         \
	{ name, type, offsetof(struct dev_conf, field), flags, min, max,     \
	    help }

const struct np_conf_kw dev_conf_table[] = {
	KW("Identity", NP_CONF_IDENT, identity, 0, 0, 0,
	    "this device's identity, @name (checked against the key)"),
	KW("IdentityFile", NP_CONF_PATH, identity_file, NP_CONF_REQUIRED, 0,
	    0, "the identity key file"),
	KW("Server", NP_CONF_HOSTPORT, server, NP_CONF_REQUIRED | NP_CONF_MULTI,
	    0, 0, "the control-plane server, HOST:PORT (several: instances "
	    "sharing one database, tried in turn)"),
	KW("ServerFingerprint", NP_CONF_STR, server_fingerprint,
	    NP_CONF_REQUIRED, 0, 0,
	    "the server certificate's SHA256: fingerprint"),
	KW("KnownIdentities", NP_CONF_PATH, known_identities, 0, 0, 0,
	    "pinned keys of requesters (default: beside IdentityFile)"),
	KW("DeviceName", NP_CONF_LIST, device_name, 0, 0, 0,
	    "device names this identity serves (default: default)"),
	KW("Allow", NP_CONF_LINES, allow_lines, 0, 0, 0,
	    "@ident users=u1,u2: who may log in as whom (none: nobody)"),
	KW("Sshd", NP_CONF_HOSTPORT, sshd, 0, 0, 0,
	    "the local sshd, HOST:PORT (default 127.0.0.1:22)"),
	KW("HostKey", NP_CONF_LIST, host_key, 0, 0, 0,
	    "sshd host public key files (.pub) sent to clients"),
	KW("KeyTTL", NP_CONF_DURATION, key_ttl, 0, 5, 3600,
	    "seconds a session key may be used to log in"),
	KW("KeyMode", NP_CONF_STR, key_mode, 0, 0, 0,
	    "spool (AuthorizedKeysCommand) or authorized_keys"),
	KW("SpoolDir", NP_CONF_PATH, spool_dir, 0, 0, 0,
	    "the session key spool np-keyhelper reads"),
	KW("StateDir", NP_CONF_PATH, state_dir, 0, 0, 0,
	    "where the replay cache is kept"),
	KW("MaxSessions", NP_CONF_INT, max_sessions, 0, 1, 100000,
	    "sessions at once"),
	KW("RendezvousHost", NP_CONF_LIST, rv_host, 0, 0, 0,
	    "rendezvous hosts the device connects to (default: any)"),
	KW("PermitOpen", NP_CONF_LIST, permit_open, 0, 0, 0,
	    "where np tunnel may connect: HOST:PORT [V6]:PORT HOST:* any none "
	    "(default: the Sshd address)"),
	KW("PermitPlainTunnel", NP_CONF_BOOL, permit_plain_tunnel, 0, 0, 0,
	    "let np tunnel --no-relay-encryption through (default no)"),
	KW("GraceTime", NP_CONF_DURATION, grace_time, 0, 0, 86400,
	    "seconds relaying sessions get after SIGTERM"),
	KW("KeepAlive", NP_CONF_DURATION, keepalive, 0, 0, 3600,
	    "seconds between control-plane pings and TCP keepalive (0: off)"),
	KW("ConnectTimeout", NP_CONF_DURATION, connect_timeout, 0, 1, 120,
	    "seconds to reach the rendezvous and sshd for a session"),
	KW("LogLevel", NP_CONF_STR, log_level, 0, 0, 0,
	    "error, warn, info or debug"),
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

int
dev_conf_init(struct dev_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->key_ttl = DEV_DEFAULT_KEY_TTL;
	c->max_sessions = DEV_DEFAULT_MAX_SESSIONS;
	c->grace_time = DEV_DEFAULT_GRACE_TIME;
	c->keepalive = DEV_DEFAULT_KEEPALIVE;
	c->connect_timeout = DEV_DEFAULT_CONNECT_TIMEOUT;
	c->level = NP_LOG_INFO;
	return NP_OK;
}

int
dev_log_level_parse(const char *s, int *level)
{
	static const struct {
		const char *name;
		int level;
	} levels[] = {
		{ "error", NP_LOG_ERROR },
		{ "warn", NP_LOG_WARN },
		{ "info", NP_LOG_INFO },
		{ "debug", NP_LOG_DEBUG },
	};
	size_t i;

	for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (strcasecmp(s, levels[i].name) == 0) {
			*level = levels[i].level;
			return NP_OK;
		}
	}
	return NP_ERR_INVALID;
}

int
dev_devname_valid(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == '\0' || s[0] == '-') {
		return 0;
	}
	for (i = 0; s[i] != '\0'; i++) {
		if (i >= DEV_DEVNAME_MAX) {
			return 0;
		}
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		    s[i] == '-')) {
			return 0;
		}
	}
	return 1;
}

static int
fp_valid(const char *s)
{
	size_t i;

	if (s == NULL || strncmp(s, "SHA256:", 7) != 0 ||
	    strlen(s + 7) != 43) {
		return 0;
	}
	for (i = 7; s[i] != '\0'; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '+' || ch == '/')) {
			return 0;
		}
	}
	return 1;
}

static int
conf_fail(char *err, size_t errlen, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
conf_fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

static void
allow_free(struct dev_conf *c)
{
	size_t i, j;

	for (i = 0; i < c->nallow; i++) {
		for (j = 0; j < c->allow[i].nusers; j++) {
			free(c->allow[i].users[j]);
		}
		free(c->allow[i].users);
	}
	free(c->allow);
	c->allow = NULL;
	c->nallow = 0;
}

/* "u1,u2,..." into a->users; each a valid POSIX user name. */
static int
allow_users(struct dev_allow *a, const char *list, const char *fname,
    size_t line, char *err, size_t errlen)
{
	const char *p = list, *comma;
	size_t len;
	char *u;

	if (strcmp(list, "*") == 0) {
		a->any_user = 1;
		return NP_OK;
	}
	if ((a->users = calloc(DEV_USERS_MAX, sizeof(char *))) == NULL) {
		return conf_fail(err, errlen, NP_ERR_ALLOC, "out of memory");
	}
	for (;;) {
		comma = strchr(p, ',');
		len = comma == NULL ? strlen(p) : (size_t)(comma - p);
		if (a->nusers >= DEV_USERS_MAX) {
			return conf_fail(err, errlen, NP_ERR_CONF, "%s: Allow "
			    "line %zu: more than %d users", fname, line,
			    DEV_USERS_MAX);
		}
		if ((u = strndup(p, len)) == NULL) {
			return conf_fail(err, errlen, NP_ERR_ALLOC,
			    "out of memory");
		}
		a->users[a->nusers++] = u;
		if (!np_user_valid(u)) {
			return conf_fail(err, errlen, NP_ERR_CONF, "%s: Allow "
			    "line %zu: bad user name '%.40s'", fname, line,
			    u);
		}
		if (comma == NULL) {
			break;
		}
		p = comma + 1;
	}
	return NP_OK;
}

/* One Allow line: exactly "@ident users=LIST". */
static int
allow_line(struct dev_conf *c, const struct np_strlist *l, size_t line,
    const char *fname, char *err, size_t errlen)
{
	struct dev_allow *a = &c->allow[c->nallow];
	size_t i;

	if (l->n != 2 || strncmp(l->v[1], "users=", 6) != 0) {
		return conf_fail(err, errlen, NP_ERR_CONF, "%s: Allow line "
		    "%zu: want 'Allow @ident users=user1,user2' (or "
		    "users=*)", fname, line);
	}
	if (np_ident_norm(l->v[0], a->id, sizeof(a->id)) != NP_OK) {
		return conf_fail(err, errlen, NP_ERR_CONF, "%s: Allow line "
		    "%zu: bad identity '%.64s'", fname, line, l->v[0]);
	}
	for (i = 0; i < c->nallow; i++) {
		if (strcmp(c->allow[i].id, a->id) == 0) {
			return conf_fail(err, errlen, NP_ERR_CONF, "%s: Allow "
			    "line %zu: %s has an Allow line already (list "
			    "all its users on one line)", fname, line, a->id);
		}
	}
	c->nallow++;
	return allow_users(a, l->v[1] + 6, fname, line, err, errlen);
}

static int
allow_check(struct dev_conf *c, const char *fname, char *err, size_t errlen)
{
	size_t i;
	int r;

	allow_free(c);
	if (c->allow_lines.n > DEV_ALLOW_MAX) {
		return conf_fail(err, errlen, NP_ERR_CONF, "%s: more than %d "
		    "Allow lines", fname, DEV_ALLOW_MAX);
	}
	if (c->allow_lines.n == 0) {
		return NP_OK;
	}
	if ((c->allow = calloc(c->allow_lines.n, sizeof(*c->allow))) ==
	    NULL) {
		return conf_fail(err, errlen, NP_ERR_ALLOC, "out of memory");
	}
	for (i = 0; i < c->allow_lines.n; i++) {
		if ((r = allow_line(c, &c->allow_lines.v[i], i + 1, fname,
		    err, errlen)) != NP_OK) {
			return r;
		}
	}
	return NP_OK;
}

static int
strlist_add(struct np_strlist *l, const char *s)
{
	char **nv;

	if ((nv = realloc(l->v, (l->n + 1) * sizeof(*nv))) == NULL) {
		return NP_ERR_ALLOC;
	}
	l->v = nv;
	if ((l->v[l->n] = strdup(s)) == NULL) {
		return NP_ERR_ALLOC;
	}
	l->n++;
	return NP_OK;
}

static int
devices_check(struct dev_conf *c, const char *fname, char *err,
    size_t errlen)
{
	size_t i, j;

	if (c->device_name.n == 0 &&
	    strlist_add(&c->device_name, DEV_DEFAULT_DEVICE) != NP_OK) {
		return conf_fail(err, errlen, NP_ERR_ALLOC, "out of memory");
	}
	if (c->device_name.n > DEV_DEVICES_MAX) {
		return conf_fail(err, errlen, NP_ERR_CONF, "%s: more than %d "
		    "device names", fname, DEV_DEVICES_MAX);
	}
	for (i = 0; i < c->device_name.n; i++) {
		if (!dev_devname_valid(c->device_name.v[i])) {
			return conf_fail(err, errlen, NP_ERR_CONF, "%s: bad "
			    "DeviceName '%.40s' (a-z, 0-9, '_', '-', at most "
			    "%d characters)", fname, c->device_name.v[i],
			    DEV_DEVNAME_MAX);
		}
		for (j = 0; j < i; j++) {
			if (strcmp(c->device_name.v[i],
			    c->device_name.v[j]) == 0) {
				return conf_fail(err, errlen, NP_ERR_CONF,
				    "%s: DeviceName '%s' given twice", fname,
				    c->device_name.v[i]);
			}
		}
	}
	return NP_OK;
}

static int
dup_default(char **field, const char *def)
{
	if (*field != NULL) {
		return NP_OK;
	}
	return (*field = strdup(def)) != NULL ? NP_OK : NP_ERR_ALLOC;
}

/* KnownIdentities defaults to "known_identities" beside IdentityFile. */
static int
known_default(struct dev_conf *c)
{
	char p[PATH_MAX], q[PATH_MAX];
	int n;

	if (c->known_identities != NULL) {
		return NP_OK;
	}
	if (strlen(c->identity_file) >= sizeof(p)) {
		return NP_ERR_TOO_BIG;
	}
	memcpy(p, c->identity_file, strlen(c->identity_file) + 1);
	n = snprintf(q, sizeof(q), "%s/known_identities", dirname(p));
	if (n < 0 || (size_t)n >= sizeof(q)) {
		return NP_ERR_TOO_BIG;
	}
	return dup_default(&c->known_identities, q);
}

static int
paths_check(struct dev_conf *c, const char *fname, char *err, size_t errlen)
{
	if (known_default(c) != NP_OK) {
		return conf_fail(err, errlen, NP_ERR_CONF, "%s: IdentityFile "
		    "path too long", fname);
	}
	if (dup_default(&c->state_dir, DEV_DEFAULT_STATE_DIR) != NP_OK ||
	    dup_default(&c->spool_dir, NP_SPOOL_DIR_DEFAULT) != NP_OK) {
		return conf_fail(err, errlen, NP_ERR_ALLOC, "out of memory");
	}
	if (c->spool_dir[0] != '/' || c->state_dir[0] != '/') {
		return conf_fail(err, errlen, NP_ERR_CONF, "%s: SpoolDir and "
		    "StateDir must be absolute paths", fname);
	}
	if (strlen(c->spool_dir) > PATH_MAX - 64 ||
	    strlen(c->state_dir) > PATH_MAX - 64) {
		return conf_fail(err, errlen, NP_ERR_CONF, "%s: SpoolDir or "
		    "StateDir too long", fname);
	}
	return NP_OK;
}

static int
modes_check(struct dev_conf *c, const char *fname, char *err, size_t errlen)
{
	if (c->key_mode == NULL || strcmp(c->key_mode, "spool") == 0) {
		c->keymode = DEV_KEYMODE_SPOOL;
	} else if (strcmp(c->key_mode, "authorized_keys") == 0) {
		c->keymode = DEV_KEYMODE_AUTHKEYS;
	} else {
		return conf_fail(err, errlen, NP_ERR_CONF, "%s: bad KeyMode "
		    "'%.32s' (spool or authorized_keys)", fname, c->key_mode);
	}
	if (c->log_level != NULL &&
	    dev_log_level_parse(c->log_level, &c->level) != NP_OK) {
		return conf_fail(err, errlen, NP_ERR_CONF, "%s: bad LogLevel "
		    "'%.32s' (error, warn, info or debug)", fname,
		    c->log_level);
	}
	if (c->rv_host.n > DEV_RVHOSTS_MAX || c->host_key.n >
	    DEV_HOSTKEYS_MAX) {
		return conf_fail(err, errlen, NP_ERR_CONF, "%s: too many "
		    "RendezvousHost or HostKey entries", fname);
	}
	return NP_OK;
}

static int
sshd_check(struct dev_conf *c, char *err, size_t errlen)
{
	if (c->sshd.host == NULL) {
		if ((c->sshd.host = strdup(DEV_DEFAULT_SSHD_HOST)) == NULL ||
		    (c->sshd.port = strdup(DEV_DEFAULT_SSHD_PORT)) == NULL) {
			return conf_fail(err, errlen, NP_ERR_ALLOC,
			    "out of memory");
		}
	}
	c->sshd_port = strtol(c->sshd.port, NULL, 10);
	return NP_OK;
}

static int
permit_add(struct dev_conf *c, const char *host, size_t hl, long port)
{
	struct dev_permit *p;

	if (c->npermit >= DEV_PERMIT_MAX || hl > DEV_TUNNEL_HOST_MAX) {
		return NP_ERR_TOO_BIG;
	}
	if ((p = realloc(c->permit, (c->npermit + 1) * sizeof(*p))) == NULL) {
		return NP_ERR_ALLOC;
	}
	c->permit = p;
	p += c->npermit++;
	memcpy(p->host, host, hl);
	p->host[hl] = '\0';
	p->port = port;
	return NP_OK;
}

/* One PermitOpen word: HOST:PORT, [V6]:PORT, HOST:* or [V6]:*. */
static int
permit_word(struct dev_conf *c, const char *w)
{
	struct np_hostport hp;
	char tmp[DEV_TUNNEL_HOST_MAX + 16];
	size_t len = strlen(w);
	int any = 0, r;

	if (len < 3 || len >= sizeof(tmp) - 1) {
		return NP_ERR_INVALID;
	}
	memcpy(tmp, w, len + 1);
	if (tmp[len - 1] == '*' && tmp[len - 2] == ':') {
		tmp[len - 1] = '1'; /* checks the host part */
		any = 1;
	}
	if ((r = np_hostport_parse(tmp, &hp)) != NP_OK) {
		return r;
	}
	r = permit_add(c, hp.host, strlen(hp.host), any ? 0 :
	    strtol(hp.port, NULL, 10));
	np_hostport_free(&hp);
	return r;
}

/* PermitOpen, or the default: the Sshd address (and localhost with its
 * port when Sshd is a loopback address). */
static int
permit_check(struct dev_conf *c, const char *fname, char *err,
    size_t errlen)
{
	const struct np_strlist *l = &c->permit_open;
	size_t i;
	int r = NP_OK;

	free(c->permit);
	c->permit = NULL;
	c->npermit = 0;
	c->permit_any = 0;
	if (l->n == 0) {
		r = permit_add(c, c->sshd.host, strlen(c->sshd.host),
		    c->sshd_port);
		if (r == NP_OK && (strcmp(c->sshd.host, "127.0.0.1") == 0 ||
		    strcmp(c->sshd.host, "::1") == 0)) {
			r = permit_add(c, "localhost", 9, c->sshd_port);
		}
		return r == NP_OK ? r : conf_fail(err, errlen, r,
		    "out of memory");
	}
	for (i = 0; i < l->n && r == NP_OK; i++) {
		if (strcmp(l->v[i], "none") == 0 || strcmp(l->v[i], "any") ==
		    0) {
			if (l->n != 1) {
				return conf_fail(err, errlen, NP_ERR_CONF,
				    "%s: PermitOpen %s must stand alone",
				    fname, l->v[i]);
			}
			c->permit_any = l->v[i][0] == 'a';
			return NP_OK;
		}
		r = permit_word(c, l->v[i]);
	}
	if (r != NP_OK) {
		return conf_fail(err, errlen, NP_ERR_CONF, "%s: bad "
		    "PermitOpen entry '%.64s' (HOST:PORT, [V6]:PORT, HOST:*, "
		    "any or none; at most %d)", fname, l->v[i - 1],
		    DEV_PERMIT_MAX);
	}
	return NP_OK;
}

int
dev_conf_permits(const struct dev_conf *c, const char *host, long port)
{
	size_t i;

	if (c->permit_any) {
		return 1;
	}
	for (i = 0; i < c->npermit; i++) {
		if ((c->permit[i].port == 0 || c->permit[i].port == port) &&
		    strcasecmp(c->permit[i].host, host) == 0) {
			return 1;
		}
	}
	return 0;
}

int
dev_conf_check(struct dev_conf *c, const char *fname, char *err,
    size_t errlen)
{
	int r;

	if (c->identity_file == NULL || c->server.host == NULL ||
	    c->server_fingerprint == NULL) {
		return conf_fail(err, errlen, NP_ERR_CONF, "%s: %s is "
		    "required", fname, c->identity_file == NULL ?
		    "IdentityFile" : c->server.host == NULL ? "Server" :
		    "ServerFingerprint");
	}
	if (!fp_valid(c->server_fingerprint)) {
		return conf_fail(err, errlen, NP_ERR_CONF, "%s: "
		    "ServerFingerprint is not a SHA256:... fingerprint",
		    fname);
	}
	if ((r = paths_check(c, fname, err, errlen)) != NP_OK ||
	    (r = modes_check(c, fname, err, errlen)) != NP_OK ||
	    (r = devices_check(c, fname, err, errlen)) != NP_OK ||
	    (r = allow_check(c, fname, err, errlen)) != NP_OK ||
	    (r = sshd_check(c, err, errlen)) != NP_OK ||
	    (r = permit_check(c, fname, err, errlen)) != NP_OK) {
		return r;
	}
	return NP_OK;
}

int
dev_conf_parse(struct dev_conf *c, const char *text, size_t len,
    const char *fname, char *err, size_t errlen)
{
	int r;

	if ((r = np_conf_parse(dev_conf_table, c, text, len, fname, err,
	    errlen)) != NP_OK) {
		return r;
	}
	return dev_conf_check(c, fname, err, errlen);
}

int
dev_conf_load(struct dev_conf *c, const char *path, char *err,
    size_t errlen)
{
	int r;

	dev_conf_init(c);
	r = np_conf_load(dev_conf_table, c, path, err, errlen);
	if (r == NP_ERR_NOT_FOUND) {
		return conf_fail(err, errlen, r, "%s: no such file", path);
	}
	if (r != NP_OK) {
		return r;
	}
	return dev_conf_check(c, path, err, errlen);
}

void
dev_conf_free(struct dev_conf *c)
{
	if (c == NULL) {
		return;
	}
	allow_free(c);
	free(c->permit);
	c->permit = NULL;
	c->npermit = 0;
	np_conf_free(dev_conf_table, c);
}

const struct dev_allow *
dev_conf_allow(const struct dev_conf *c, const char *id)
{
	size_t i;

	if (id == NULL) {
		return NULL;
	}
	for (i = 0; i < c->nallow; i++) {
		if (strcmp(c->allow[i].id, id) == 0) {
			return &c->allow[i];
		}
	}
	return NULL;
}

size_t
dev_conf_users(const struct dev_conf *c, const char **out, size_t max)
{
	size_t i, j, k, n = 0;

	for (i = 0; i < c->nallow; i++) {
		for (j = 0; j < c->allow[i].nusers && n < max; j++) {
			for (k = 0; k < n; k++) {
				if (strcmp(out[k], c->allow[i].users[j]) == 0) {
					break;
				}
			}
			if (k == n) {
				out[n++] = c->allow[i].users[j];
			}
		}
	}
	return n;
}

int
dev_conf_serves(const struct dev_conf *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->device_name.n; i++) {
		if (strcmp(c->device_name.v[i], name) == 0) {
			return 1;
		}
	}
	return 0;
}
