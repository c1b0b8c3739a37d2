/*
 * Fuzz the config parser: arbitrary bytes against a table with every
 * keyword type, over malloc'ed defaults; then free everything.  Also
 * feeds the input to np_hostport_parse() as a C string.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "err.h"

struct fconf {
	char *str;
	long num;
	int flag;
	long dur;
	long anynum;
	long anydur;
	struct np_hostport hp;
	char *ident;
	struct np_strlist list;
	char *path;
};

static const struct np_conf_kw ftable[] = {
	{ "Str", NP_CONF_STR, offsetof(struct fconf, str), 0, 0, 0, "" },
	{ "Num", NP_CONF_INT, offsetof(struct fconf, num), 0, -5, 65535, "" },
	{ "Flag", NP_CONF_BOOL, offsetof(struct fconf, flag), 0, 0, 0, "" },
	{ "Dur", NP_CONF_DURATION, offsetof(struct fconf, dur), 0, 1, 86400,
	    "" },
	{ "AnyNum", NP_CONF_INT, offsetof(struct fconf, anynum), 0, 0, 0, "" },
	{ "AnyDur", NP_CONF_DURATION, offsetof(struct fconf, anydur), 0, 0, 0,
	    "" },
	{ "Server", NP_CONF_HOSTPORT, offsetof(struct fconf, hp),
	    NP_CONF_REQUIRED, 0, 0, "" },
	{ "Ident", NP_CONF_IDENT, offsetof(struct fconf, ident), 0, 0, 0, "" },
	{ "List", NP_CONF_LIST, offsetof(struct fconf, list), 0, 0, 0, "" },
	{ "Path", NP_CONF_PATH, offsetof(struct fconf, path), 0, 0, 0, "" },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

static void
fuzz_defaults(struct fconf *c)
{
	memset(c, 0, sizeof(*c));
	c->str = strdup("default");
	c->hp.host = strdup("localhost");
	c->hp.port = strdup("22");
	if ((c->list.v = calloc(1, sizeof(char *))) != NULL &&
	    (c->list.v[0] = strdup("d")) != NULL) {
		c->list.n = 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fconf c;
	struct np_hostport hp;
	char err[256], *s;

	fuzz_defaults(&c);
	(void)np_conf_parse(ftable, &c, (const char *)data, size, "fuzz",
	    err, sizeof(err));
	np_conf_free(ftable, &c);

	if (size < 4096 && (s = malloc(size + 1)) != NULL) {
		memcpy(s, data, size);
		s[size] = '\0';
		if (np_hostport_parse(s, &hp) == NP_OK) {
			np_hostport_free(&hp);
		}
		free(s);
	}
	return 0;
}
