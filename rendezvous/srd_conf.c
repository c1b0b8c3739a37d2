/*
 * srd.conf: the keyword table, defaults and the checks that look at
 * several values together (docs/np-srd.md).
 */
#include <arpa/inet.h>

#include <libgen.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "err.h"
#include "ident.h"
#include "log.h"
#include "srd.h"

#define KW(name, type, field, flags, min, max, help)                         \
	{ name, type, offsetof(struct srd_conf, field), flags, min, max,     \
	    help }

const struct np_conf_kw srd_conf_table[] = {
	KW("Identity", NP_CONF_IDENT, identity, 0, 0, 0,
	    "this rendezvous' identity, @name (checked against the key)"),
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
	KW("PublicHost", NP_CONF_STR, public_host, 0, 0, 0,
	    "host name or address handed to peers"),
	KW("ListenAddress", NP_CONF_STR, listen_address, 0, 0, 0,
	    "address the session ports are bound to"),
	KW("SinglePort", NP_CONF_INT, single_port, 0, 0, 65535,
	    "one port for all sessions (0: two fresh ports per session)"),
	KW("PortRange", NP_CONF_STR, port_range, 0, 0, 0,
	    "lo-hi: ports for fresh session ports"),
	KW("Allow", NP_CONF_LIST, allow, 0, 0, 0,
	    "identities that may open sessions (@name ..., or *)"),
	KW("MaxSessionsPerIdentity", NP_CONF_INT, max_per_ident, 0, 1,
	    10000000, "unfinished sessions per identity"),
	KW("MaxSessions", NP_CONF_INT, max_sessions, 0, 1, 10000000,
	    "sessions at once"),
	KW("AuthTimeout", NP_CONF_DURATION, auth_timeout, 0, 1, 3600,
	    "seconds a connection has to send its token line"),
	KW("SessionTimeout", NP_CONF_DURATION, session_timeout, 0, 1, 86400,
	    "seconds both sides have to arrive"),
	KW("IdleTimeout", NP_CONF_DURATION, idle_timeout, 0, 0, 0,
	    "seconds without a byte before a relay ends (0: never)"),
	KW("KeepAlive", NP_CONF_DURATION, keepalive, 0, 0, 86400,
	    "TCP keepalive idle seconds (0: off)"),
	KW("GraceTime", NP_CONF_DURATION, grace_time, 0, 0, 86400,
	    "seconds relaying sessions get after SIGTERM"),
	KW("MaxPending", NP_CONF_INT, max_pending, 0, 1, 1000000,
	    "connections not yet authenticated, in total"),
	KW("MaxPendingPerSource", NP_CONF_INT, max_pending_src, 0, 1,
	    1000000, "connections not yet authenticated, per address"),
	KW("LogLevel", NP_CONF_STR, log_level, 0, 0, 0,
	    "error, warn, info or debug"),
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

int
srd_conf_init(struct srd_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->max_per_ident = SRD_DEFAULT_MAX_PER_IDENT;
	c->max_sessions = SRD_DEFAULT_MAX_SESSIONS;
	c->auth_timeout = SRD_DEFAULT_AUTH_TIMEOUT;
	c->session_timeout = SRD_DEFAULT_SESSION_TIMEOUT;
	c->idle_timeout = SRD_DEFAULT_IDLE_TIMEOUT;
	c->keepalive = SRD_DEFAULT_KEEPALIVE;
	c->grace_time = SRD_DEFAULT_GRACE_TIME;
	c->max_pending = SRD_DEFAULT_MAX_PENDING;
	c->max_pending_src = SRD_DEFAULT_MAX_PENDING_SRC;
	c->level = NP_LOG_INFO;
	return NP_OK;
}

int
srd_log_level_parse(const char *s, int *level)
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
srd_ip_literal(const char *s)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, s, &a4) == 1 ||
	    inet_pton(AF_INET6, s, &a6) == 1;
}

/* Host names and addresses: [A-Za-z0-9.:-_], 1..253 characters. */
static int
host_valid(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 253) {
		return 0;
	}
	for (i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
		    ch == ':' || ch == '_')) {
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

/* "lo-hi" with 1 <= lo < hi <= 65535. */
static int
port_range_parse(const char *s, int *lo, int *hi)
{
	char *end;
	long a, b;

	if (*s < '0' || *s > '9') {
		return NP_ERR_INVALID;
	}
	a = strtol(s, &end, 10);
	if (*end != '-' || end[1] < '0' || end[1] > '9') {
		return NP_ERR_INVALID;
	}
	b = strtol(end + 1, &end, 10);
	if (*end != '\0' || a < 1 || b > 65535 || a >= b) {
		return NP_ERR_INVALID;
	}
	*lo = (int)a;
	*hi = (int)b;
	return NP_OK;
}

/* Normalise every Allow entry to "@name" (or "*"). */
static int
allow_check(struct srd_conf *c, const char *fname, char *err, size_t errlen)
{
	char id[NP_IDENT_MAX + 1];
	size_t i;
	char *s;

	c->allow_all = 0;
	for (i = 0; i < c->allow.n; i++) {
		if (strcmp(c->allow.v[i], "*") == 0) {
			c->allow_all = 1;
			continue;
		}
		if (np_ident_norm(c->allow.v[i], id, sizeof(id)) != NP_OK) {
			snprintf(err, errlen, "%s: Allow: bad identity "
			    "'%.64s' (want @name or *)", fname,
			    c->allow.v[i]);
			return NP_ERR_CONF;
		}
		if ((s = strdup(id)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return NP_ERR_ALLOC;
		}
		free(c->allow.v[i]);
		c->allow.v[i] = s;
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
known_default(struct srd_conf *c)
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
addr_check(struct srd_conf *c, const char *fname, char *err, size_t errlen)
{
	int r;

	if ((r = dup_default(&c->public_host, SRD_DEFAULT_PUBLIC_HOST)) !=
	    NP_OK) {
		snprintf(err, errlen, "out of memory");
		return r;
	}
	if (!host_valid(c->public_host)) {
		snprintf(err, errlen, "%s: bad PublicHost '%.64s'", fname,
		    c->public_host);
		return NP_ERR_CONF;
	}
	if (c->listen_address == NULL) {
		r = dup_default(&c->listen_address,
		    srd_ip_literal(c->public_host) ? c->public_host :
		    "0.0.0.0");
		if (r != NP_OK) {
			snprintf(err, errlen, "out of memory");
			return r;
		}
	}
	if (!srd_ip_literal(c->listen_address)) {
		snprintf(err, errlen, "%s: ListenAddress '%.64s' is not an "
		    "IPv4 or IPv6 address", fname, c->listen_address);
		return NP_ERR_CONF;
	}
	return NP_OK;
}

static int
ports_check(struct srd_conf *c, const char *fname, char *err, size_t errlen)
{
	c->port_lo = c->port_hi = 0;
	if (c->port_range == NULL) {
		return NP_OK;
	}
	if (c->single_port != 0) {
		snprintf(err, errlen, "%s: PortRange and SinglePort exclude "
		    "each other", fname);
		return NP_ERR_CONF;
	}
	if (port_range_parse(c->port_range, &c->port_lo, &c->port_hi) !=
	    NP_OK) {
		snprintf(err, errlen, "%s: bad PortRange '%.32s' (want lo-hi, "
		    "1 <= lo < hi <= 65535)", fname, c->port_range);
		return NP_ERR_CONF;
	}
	return NP_OK;
}

static int
limits_check(struct srd_conf *c, const char *fname, char *err,
    size_t errlen)
{
	if (c->max_pending_src > c->max_pending) {
		snprintf(err, errlen, "%s: MaxPendingPerSource (%ld) is above "
		    "MaxPending (%ld)", fname, c->max_pending_src,
		    c->max_pending);
		return NP_ERR_CONF;
	}
	if (c->max_per_ident > c->max_sessions) {
		c->max_per_ident = c->max_sessions;
	}
	if (c->idle_timeout > 86400L * 365) {
		snprintf(err, errlen, "%s: IdleTimeout is over a year", fname);
		return NP_ERR_CONF;
	}
	return NP_OK;
}

int
srd_conf_check(struct srd_conf *c, const char *fname, char *err,
    size_t errlen)
{
	int r;

	if (c->identity_file == NULL || c->server.host == NULL ||
	    c->server_fingerprint == NULL) {
		snprintf(err, errlen, "%s: %s is required", fname,
		    c->identity_file == NULL ? "IdentityFile" :
		    c->server.host == NULL ? "Server" : "ServerFingerprint");
		return NP_ERR_CONF;
	}
	if (!fp_valid(c->server_fingerprint)) {
		snprintf(err, errlen, "%s: ServerFingerprint is not a "
		    "SHA256:... fingerprint", fname);
		return NP_ERR_CONF;
	}
	if ((r = known_default(c)) != NP_OK) {
		snprintf(err, errlen, "%s: IdentityFile path too long", fname);
		return NP_ERR_CONF;
	}
	if ((r = addr_check(c, fname, err, errlen)) != NP_OK ||
	    (r = ports_check(c, fname, err, errlen)) != NP_OK ||
	    (r = allow_check(c, fname, err, errlen)) != NP_OK ||
	    (r = limits_check(c, fname, err, errlen)) != NP_OK) {
		return r;
	}
	if (c->log_level != NULL &&
	    srd_log_level_parse(c->log_level, &c->level) != NP_OK) {
		snprintf(err, errlen, "%s: bad LogLevel '%.32s' (error, warn, "
		    "info or debug)", fname, c->log_level);
		return NP_ERR_CONF;
	}
	return NP_OK;
}

int
srd_conf_parse(struct srd_conf *c, const char *text, size_t len,
    const char *fname, char *err, size_t errlen)
{
	int r;

	if ((r = np_conf_parse(srd_conf_table, c, text, len, fname, err,
	    errlen)) != NP_OK) {
		return r;
	}
	return srd_conf_check(c, fname, err, errlen);
}

int
srd_conf_load(struct srd_conf *c, const char *path, char *err,
    size_t errlen)
{
	int r;

	srd_conf_init(c);
	r = np_conf_load(srd_conf_table, c, path, err, errlen);
	if (r == NP_ERR_NOT_FOUND) {
		snprintf(err, errlen, "%s: no such file", path);
		return r;
	}
	if (r != NP_OK) {
		return r;
	}
	return srd_conf_check(c, path, err, errlen);
}

void
srd_conf_free(struct srd_conf *c)
{
	if (c == NULL) {
		return;
	}
	np_conf_free(srd_conf_table, c);
}

int
srd_conf_allowed(const struct srd_conf *c, const char *id)
{
	size_t i;

	if (c->allow_all) {
		return np_ident_valid(id);
	}
	for (i = 0; i < c->allow.n; i++) {
		if (strcmp(c->allow.v[i], id) == 0) {
			return 1;
		}
	}
	return 0;
}
