/*
 * server.conf: the keyword table, defaults and the commented default file
 * that `np-server init` writes.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "srv_cli.h"
#include "err.h"
#include "log.h"

#define KW(name, type, field, min, max, help)                                  \
	{                                                                      \
		name, type, offsetof(struct srv_conf, field), 0, min, max,     \
		    help                                                       \
	}

const struct np_conf_kw srv_conf_table[] = {
    KW("Listen", NP_CONF_STR, listen, 0, 0,
       "address and port to listen on (port 0: any free port)"),
    KW("MaxConnections", NP_CONF_INT, max_conns, 1, 1000000,
       "connections held at once; more are accepted and closed"),
    KW("MaxUnauthPerSource", NP_CONF_INT, max_unauth, 1, 100000,
       "unauthenticated connections per source address"),
    KW("AuthTimeout", NP_CONF_DURATION, auth_timeout, 1, 3600,
       "seconds a new connection has to authenticate"),
    KW("QueueMax", NP_CONF_INT, queue_max, 1, 10000000,
       "queued boxes per identity; the oldest is dropped past it"),
    KW("MaxTTL", NP_CONF_DURATION, max_ttl, 1, 604800,
       "longest time a box is kept (seconds)"),
    KW("LogLevel", NP_CONF_STR, log_level, 0, 0, "error, warn, info or debug"),
    KW("Store", NP_CONF_STR, store, 0, 0,
       "database: a file (relative: in the data directory) or a "
       "postgresql:// URI"),
    {NULL, 0, 0, 0, 0, 0, NULL},
};

/* Defaults as text, in table order, for the generated file. */
static const char *const srv_conf_defaults[] = {
    SRV_DEFAULT_LISTEN,	   "20000",	"32", "10", "1000", "604800",
    SRV_DEFAULT_LOG_LEVEL, SRV_DB_FILE,
};

void
srv_conf_init(struct srv_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->max_conns = SRV_DEFAULT_MAX_CONNS;
	c->max_unauth = SRV_DEFAULT_MAX_UNAUTH;
	c->auth_timeout = SRV_DEFAULT_AUTH_TIMEOUT;
	c->queue_max = SRV_DEFAULT_QUEUE_MAX;
	c->max_ttl = SRV_DEFAULT_MAX_TTL;
}

static int
dup_default(char **field, const char *def)
{
	if (*field != NULL) {
		return NP_OK;
	}
	return (*field = strdup(def)) != NULL ? NP_OK : NP_ERR_ALLOC;
}

int
srv_conf_load(struct srv_conf *c, const char *path, char *err, size_t errlen)
{
	int r;

	if (path != NULL &&
	    (r = np_conf_load(srv_conf_table, c, path, err, errlen)) != NP_OK) {
		return r;
	}
	return srv_conf_check(c, path, err, errlen);
}

int
srv_conf_check(struct srv_conf *c, const char *path, char *err, size_t errlen)
{
	struct np_hostport hp;
	int level, r;

	if ((r = dup_default(&c->listen, SRV_DEFAULT_LISTEN)) != NP_OK ||
	    (r = dup_default(&c->log_level, SRV_DEFAULT_LOG_LEVEL)) != NP_OK) {
		snprintf(err, errlen, "out of memory");
		return r;
	}
	if (srv_listen_parse(c->listen, &hp) != NP_OK) {
		snprintf(err, errlen, "%s: bad Listen '%.64s' (want ADDR:PORT)",
			 path != NULL ? path : "config", c->listen);
		return NP_ERR_CONF;
	}
	np_hostport_free(&hp);
	if (srv_log_level_parse(c->log_level, &level) != NP_OK) {
		snprintf(
		    err, errlen,
		    "%s: bad LogLevel '%.32s' (error, warn, info or debug)",
		    path != NULL ? path : "config", c->log_level);
		return NP_ERR_CONF;
	}
	if (c->store != NULL &&
	    (c->store[0] == '\0' || strlen(c->store) >= SRV_STORE_MAX)) {
		snprintf(err, errlen,
			 "%s: bad Store (a file or a URI of 1 to %d "
			 "characters)",
			 path != NULL ? path : "config", SRV_STORE_MAX - 1);
		return NP_ERR_CONF;
	}
	return NP_OK;
}

void
srv_conf_free(struct srv_conf *c)
{
	if (c == NULL) {
		return;
	}
	np_conf_free(srv_conf_table, c);
	c->listen = NULL;
	c->log_level = NULL;
	c->store = NULL;
}

int
srv_conf_default_text(struct np_buf *out, const char *store)
{
	const struct np_conf_kw *kw;
	size_t i;
	int r;

	if ((r = np_buf_putf(
		 out,
		 "# np-server configuration.  Every keyword is shown with its\n"
		 "# default value; remove the '#' to change one.\n")) !=
	    NP_OK) {
		return r;
	}
	for (i = 0, kw = srv_conf_table; kw->name != NULL; kw++, i++) {
		if ((r = np_buf_putf(out, "\n# %s\n#%s %s\n", kw->help,
				     kw->name, srv_conf_defaults[i])) !=
		    NP_OK) {
			return r;
		}
		if (store != NULL &&
		    kw->offset == offsetof(struct srv_conf, store) &&
		    (r = np_buf_putf(out, "%s %s\n", kw->name, store)) !=
			NP_OK) {
			return r;
		}
	}
	return NP_OK;
}

int
srv_listen_parse(const char *s, struct np_hostport *hp)
{
	char tmp[300];
	const char *colon;
	size_t n;
	int r;

	hp->host = hp->port = NULL;
	if (s == NULL || (n = strlen(s)) >= sizeof(tmp) ||
	    (colon = strrchr(s, ':')) == NULL) {
		return NP_ERR_INVALID;
	}
	if (strcmp(colon, ":0") != 0) {
		return np_hostport_parse(s, hp);
	}
	/* Validate the host part with a stand-in port, then set 0. */
	memcpy(tmp, s, n + 1);
	tmp[n - 1] = '1';
	if ((r = np_hostport_parse(tmp, hp)) != NP_OK) {
		return r;
	}
	free(hp->port);
	if ((hp->port = strdup("0")) == NULL) {
		np_hostport_free(hp);
		return NP_ERR_ALLOC;
	}
	return NP_OK;
}

int
srv_log_level_parse(const char *s, int *level)
{
	static const struct {
		const char *name;
		int level;
	} levels[] = {
	    {"error", NP_LOG_ERROR},
	    {"warn", NP_LOG_WARN},
	    {"info", NP_LOG_INFO},
	    {"debug", NP_LOG_DEBUG},
	};
	size_t i;

	for (i = 0; s != NULL && i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (strcasecmp(s, levels[i].name) == 0) {
			*level = levels[i].level;
			return NP_OK;
		}
	}
	return NP_ERR_CONF;
}
