/*
 * Helpers shared by the subcommands.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "srv_cli.h"
#include "err.h"
#include "ident.h"

void
srv_err(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	char *p;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (p = msg; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			*p = '?';
		}
	}
	fprintf(stderr, "np-server: %s\n", msg);
}

int
srv_path(char *out, size_t outlen, const char *dir, const char *file)
{
	int n;

	n = snprintf(out, outlen, "%s/%s", dir, file);
	if (n < 0 || (size_t)n >= outlen) {
		return NP_ERR_TOO_BIG;
	}
	return NP_OK;
}

int
srv_ident(const char *arg, char out[NP_IDENT_MAX + 1])
{
	return np_ident_norm(arg, out, NP_IDENT_MAX + 1);
}

int
srv_store_target(const struct srv_conf *c, const char *dir, char *out,
		 size_t outlen)
{
	const char *st = c != NULL ? c->store : NULL;
	int n;

	if (st == NULL) {
		return srv_path(out, outlen, dir, SRV_DB_FILE);
	}
	if (np_store_is_uri(st) || st[0] == '/') {
		n = snprintf(out, outlen, "%s", st);
		return n < 0 || (size_t)n >= outlen ? NP_ERR_TOO_BIG : NP_OK;
	}
	return srv_path(out, outlen, dir, st);
}

int
srv_open_store_at(const char *target, int flags, struct np_store **out)
{
	char safe[512];
	int r;

	if ((r = np_store_open(target, flags, out)) != NP_OK) {
		np_store_redact(target, safe, sizeof(safe));
		srv_err("cannot %s database %s: %s",
			flags & NP_STORE_CREATE ? "create" : "open", safe,
			np_strerror(r));
	}
	return r;
}

int
srv_open_store(const char *dir, struct np_store **out)
{
	char path[4096], target[SRV_STORE_MAX + 4096], err[600];
	struct srv_conf c;
	int r;

	*out = NULL;
	srv_conf_init(&c);
	if ((r = srv_path(path, sizeof(path), dir, SRV_CONF_FILE)) != NP_OK) {
		srv_err("%s: path too long", dir);
		return r;
	}
	if (access(path, F_OK) == 0 &&
	    (r = srv_conf_load(&c, path, err, sizeof(err))) != NP_OK) {
		srv_err("%s", err);
		srv_conf_free(&c);
		return r;
	}
	if ((r = srv_store_target(&c, dir, target, sizeof(target))) != NP_OK) {
		srv_err("%s: path too long", dir);
	} else {
		r = srv_open_store_at(target, 0, out);
	}
	sodium_memzero(target, sizeof(target));
	srv_conf_free(&c);
	return r;
}
