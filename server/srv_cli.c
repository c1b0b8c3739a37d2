/*
 * Helpers shared by the subcommands.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
srv_open_store(const char *dir, struct np_store **out)
{
	char path[4096];
	int r;

	if ((r = srv_path(path, sizeof(path), dir, SRV_DB_FILE)) != NP_OK) {
		srv_err("%s: path too long", dir);
		return r;
	}
	if ((r = np_store_open(path, 0, out)) != NP_OK) {
		srv_err("cannot open database %s: %s", path, np_strerror(r));
	}
	return r;
}
