/*
 * Table-driven parser for ssh_config-style files.  np_conf_parse() is a
 * pure function of its input: it never exits, keeps no state between
 * calls and does no I/O (the one exception is getenv("HOME") to expand
 * "~/" in NP_CONF_PATH values).  Every value is built apart and only then
 * swapped into obj, so after any error obj holds only owned pointers or
 * NULL and np_conf_free() releases it.
 */
#include <sys/stat.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf.h"
#include "err.h"
#include "ident.h"

#define CONF_MAX_ARGS (NP_CONF_MAX_LINE / 2 + 2)
#define CONF_SHOW_MAX 64  /* longest value quoted back in a message */
#define HOST_MAX 253

/* Where we are in the file, for messages. */
struct conf_ctx {
	const char *fname;
	size_t line;
	char *err;
	size_t errlen;
};

typedef int (*conf_setter)(struct conf_ctx *, const struct np_conf_kw *,
    void *, char **, size_t, int);

static void conf_msg(struct conf_ctx *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
conf_msg(struct conf_ctx *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (c->err == NULL || c->errlen == 0) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->line == 0) {
		snprintf(c->err, c->errlen, "%s: %s", c->fname, msg);
	} else {
		snprintf(c->err, c->errlen, "%s:%zu: %s", c->fname, c->line,
		    msg);
	}
}

/* Copy s for a message: printable, at most CONF_SHOW_MAX characters. */
static const char *
conf_show(const char *s, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 4 < outlen && i < CONF_SHOW_MAX; i++) {
		out[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
	}
	if (s[i] != '\0' && i + 4 <= outlen) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

static int
conf_isspace(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' ||
	    ch == '\v';
}

static char *
conf_skipspace(char *p)
{
	while (conf_isspace(*p)) {
		p++;
	}
	return p;
}

/* One argument at *pp (not at a space or end); NUL-terminates it. */
static int
conf_split_arg(struct conf_ctx *c, char **pp, char **arg)
{
	char *p = *pp, *q;

	if (*p == '"') {
		if ((q = strchr(p + 1, '"')) == NULL) {
			conf_msg(c, "unterminated quote");
			return NP_ERR_CONF;
		}
		*q++ = '\0';
		if (*q != '\0' && !conf_isspace(*q)) {
			conf_msg(c, "unexpected character after closing "
			    "quote");
			return NP_ERR_CONF;
		}
		*arg = p + 1;
	} else {
		for (q = p; *q != '\0' && !conf_isspace(*q); q++) {
			if (*q == '"') {
				conf_msg(c, "unexpected quote inside an "
				    "argument");
				return NP_ERR_CONF;
			}
		}
		*arg = p;
	}
	if (*q != '\0') {
		*q++ = '\0';
	}
	*pp = q;
	return NP_OK;
}

/*
 * Split a line into keyword and arguments in place.  *argc == 0 with no
 * keyword means a blank or comment line.  argv[0] is the keyword.
 */
static int
conf_split(struct conf_ctx *c, char *line, char **argv, size_t *argc)
{
	char *p = conf_skipspace(line);
	size_t n = 0;
	int r;

	*argc = 0;
	if (*p == '\0' || *p == '#') {
		return NP_OK;
	}
	argv[n++] = p;
	while (*p != '\0' && !conf_isspace(*p) && *p != '=') {
		p++;
	}
	if (*p != '\0') {
		int eq = *p == '=';

		*p++ = '\0';
		p = conf_skipspace(p);
		if (!eq && *p == '=') {
			p = conf_skipspace(p + 1);
		}
	}
	for (;;) {
		p = conf_skipspace(p);
		if (*p == '\0' || *p == '#') {
			break;
		}
		if (n >= CONF_MAX_ARGS) {
			conf_msg(c, "too many arguments");
			return NP_ERR_CONF;
		}
		if ((r = conf_split_arg(c, &p, &argv[n])) != NP_OK) {
			return r;
		}
		n++;
	}
	*argc = n;
	return NP_OK;
}

static int
conf_set_str(struct conf_ctx *c, const struct np_conf_kw *kw, void *field,
    char **argv, size_t argc, int first)
{
	char **dst = field, *s;

	if ((s = strdup(argv[0])) == NULL) {
		conf_msg(c, "out of memory");
		return NP_ERR_ALLOC;
	}
	free(*dst);
	*dst = s;
	return NP_OK;
}

/* Parse a decimal long; 0 on success. */
static int
conf_strtol(const char *s, long *v)
{
	char *end;
	long l;

	if (*s == '\0' || (!isdigit((unsigned char)*s) && *s != '-')) {
		return -1;
	}
	errno = 0;
	l = strtol(s, &end, 10);
	if (end == s || *end != '\0') {
		return -1;
	}
	if (errno == ERANGE) {
		return 1;
	}
	*v = l;
	return 0;
}

/* NP_CONF_INT bounds: min == max == 0 means any long. */
static int
conf_in_range(const struct np_conf_kw *kw, long v, long dflt_min)
{
	if (kw->min == 0 && kw->max == 0) {
		return v >= dflt_min;
	}
	return v >= kw->min && v <= kw->max;
}

static void
conf_range_msg(struct conf_ctx *c, const struct np_conf_kw *kw,
    const char *arg, long dflt_min)
{
	char show[CONF_SHOW_MAX + 8];

	conf_show(arg, show, sizeof(show));
	if (kw->min == 0 && kw->max == 0) {
		conf_msg(c, "value %s out of range %ld..%ld", show, dflt_min,
		    LONG_MAX);
	} else {
		conf_msg(c, "value %s out of range %ld..%ld", show, kw->min,
		    kw->max);
	}
}

static int
conf_set_int(struct conf_ctx *c, const struct np_conf_kw *kw, void *field,
    char **argv, size_t argc, int first)
{
	char show[CONF_SHOW_MAX + 8];
	long v = 0;
	int r;

	if ((r = conf_strtol(argv[0], &v)) < 0) {
		conf_msg(c, "bad integer '%s' for '%s'",
		    conf_show(argv[0], show, sizeof(show)), kw->name);
		return NP_ERR_CONF;
	}
	if (r > 0 || !conf_in_range(kw, v, LONG_MIN)) {
		conf_range_msg(c, kw, argv[0], LONG_MIN);
		return NP_ERR_CONF;
	}
	*(long *)field = v;
	return NP_OK;
}

static int
conf_set_bool(struct conf_ctx *c, const struct np_conf_kw *kw, void *field,
    char **argv, size_t argc, int first)
{
	char show[CONF_SHOW_MAX + 8];

	if (strcasecmp(argv[0], "yes") == 0) {
		*(int *)field = 1;
	} else if (strcasecmp(argv[0], "no") == 0) {
		*(int *)field = 0;
	} else {
		conf_msg(c, "bad value '%s' for '%s' (yes or no)",
		    conf_show(argv[0], show, sizeof(show)), kw->name);
		return NP_ERR_CONF;
	}
	return NP_OK;
}

/* "30", "30s", "5m", "2h", "1d" to seconds; -1 bad, 1 overflow. */
static int
conf_duration(const char *s, long *v)
{
	long n = 0, mul = 1;
	const char *p;

	for (p = s; isdigit((unsigned char)*p); p++) {
		if (n > (LONG_MAX - (*p - '0')) / 10) {
			return 1;
		}
		n = n * 10 + (*p - '0');
	}
	if (p == s) {
		return -1;
	}
	switch (*p) {
	case '\0':
	case 's':
	case 'S':
		break;
	case 'm':
	case 'M':
		mul = 60;
		break;
	case 'h':
	case 'H':
		mul = 3600;
		break;
	case 'd':
	case 'D':
		mul = 86400;
		break;
	default:
		return -1;
	}
	if (*p != '\0' && p[1] != '\0') {
		return -1;
	}
	if (n > LONG_MAX / mul) {
		return 1;
	}
	*v = n * mul;
	return 0;
}

static int
conf_set_duration(struct conf_ctx *c, const struct np_conf_kw *kw,
    void *field, char **argv, size_t argc, int first)
{
	char show[CONF_SHOW_MAX + 8];
	long v = 0;
	int r;

	if ((r = conf_duration(argv[0], &v)) < 0) {
		conf_msg(c, "bad duration '%s' for '%s' (e.g. 30, 30s, 5m, "
		    "2h, 1d)", conf_show(argv[0], show, sizeof(show)),
		    kw->name);
		return NP_ERR_CONF;
	}
	if (r > 0 || !conf_in_range(kw, v, 0)) {
		conf_range_msg(c, kw, argv[0], 0);
		return NP_ERR_CONF;
	}
	*(long *)field = v;
	return NP_OK;
}

static int
conf_set_hostport(struct conf_ctx *c, const struct np_conf_kw *kw,
    void *field, char **argv, size_t argc, int first)
{
	char show[CONF_SHOW_MAX + 8];
	struct np_hostport *dst = field, hp = { NULL, NULL, NULL }, *tail;
	struct np_hostport *more;
	size_t i;
	int r;

	(void)first;
	if (argc > NP_CONF_MULTI_MAX) {
		conf_msg(c, "at most %d values for '%s'", NP_CONF_MULTI_MAX,
		    kw->name);
		return NP_ERR_CONF;
	}
	tail = &hp;
	for (i = 0; i < argc; i++) {
		more = i == 0 ? &hp : calloc(1, sizeof(*more));
		if (more == NULL ||
		    (r = np_hostport_parse(argv[i], more)) != NP_OK) {
			r = more == NULL ? NP_ERR_ALLOC : r;
			if (more != &hp) {
				free(more);
			}
			np_hostport_free(&hp);
			if (r == NP_ERR_ALLOC) {
				conf_msg(c, "out of memory");
				return r;
			}
			conf_msg(c, "bad host:port '%s' for '%s'",
			    conf_show(argv[i], show, sizeof(show)), kw->name);
			return NP_ERR_CONF;
		}
		if (more != &hp) {
			tail->next = more;
			tail = more;
		}
	}
	np_hostport_free(dst);
	*dst = hp;
	return NP_OK;
}

static int
conf_ident_ok(struct conf_ctx *c, const struct np_conf_kw *kw,
    const char *s)
{
	char show[CONF_SHOW_MAX + 8];

	if (!np_ident_valid(s)) {
		conf_msg(c, "bad identity '%s' for '%s' (want @name: a-z, "
		    "0-9, '_', '.', '-', at most %d characters)",
		    conf_show(s, show, sizeof(show)), kw->name, NP_NAME_MAX);
		return 0;
	}
	return 1;
}

/* IDENT with NP_CONF_MULTI: every identity of the line, in order, into
 * a struct np_strlist; a bad or repeated one refuses the whole line. */
static int
conf_set_idents(struct conf_ctx *c, const struct np_conf_kw *kw,
    void *field, char **argv, size_t argc)
{
	struct np_strlist *dst = field, l = { NULL, 0 };
	size_t i, j;

	if (argc > NP_CONF_MULTI_MAX) {
		conf_msg(c, "at most %d values for '%s'", NP_CONF_MULTI_MAX,
		    kw->name);
		return NP_ERR_CONF;
	}
	for (i = 0; i < argc; i++) {
		if (!conf_ident_ok(c, kw, argv[i])) {
			return NP_ERR_CONF;
		}
		for (j = 0; j < i; j++) {
			if (strcmp(argv[i], argv[j]) == 0) {
				conf_msg(c, "'%s' given twice for '%s'",
				    argv[i], kw->name);
				return NP_ERR_CONF;
			}
		}
	}
	if ((l.v = calloc(argc, sizeof(*l.v))) == NULL) {
		conf_msg(c, "out of memory");
		return NP_ERR_ALLOC;
	}
	for (l.n = 0; l.n < argc; l.n++) {
		if ((l.v[l.n] = strdup(argv[l.n])) == NULL) {
			np_strlist_free(&l);
			conf_msg(c, "out of memory");
			return NP_ERR_ALLOC;
		}
	}
	np_strlist_free(dst);
	*dst = l;
	return NP_OK;
}

static int
conf_set_ident(struct conf_ctx *c, const struct np_conf_kw *kw, void *field,
    char **argv, size_t argc, int first)
{
	if ((kw->flags & NP_CONF_MULTI) != 0) {
		return conf_set_idents(c, kw, field, argv, argc);
	}
	if (!conf_ident_ok(c, kw, argv[0])) {
		return NP_ERR_CONF;
	}
	return conf_set_str(c, kw, field, argv, argc, first);
}

/* The power of two at or above n (1 for 0). */
static size_t
conf_cap(size_t n)
{
	size_t c = 1;

	while (c < n && c <= SIZE_MAX / 2) {
		c <<= 1;
	}
	return c < n ? n : c;
}

static int
conf_set_list(struct conf_ctx *c, const struct np_conf_kw *kw, void *field,
    char **argv, size_t argc, int first)
{
	struct np_strlist *l = field;
	char **nv;
	size_t i;

	if (first) {
		np_strlist_free(l); /* drop the defaults */
	}
	if (argc > SIZE_MAX / sizeof(*nv) - l->n) {
		conf_msg(c, "too many values for '%s'", kw->name);
		return NP_ERR_CONF;
	}
	/* Capacity is the power of two at or above n (defaults are gone by
	 * now), so a long run of lines costs amortised O(1) each. */
	if (l->v == NULL || conf_cap(l->n + argc) > conf_cap(l->n)) {
		if ((nv = realloc(l->v, conf_cap(l->n + argc) *
		    sizeof(*nv))) == NULL) {
			conf_msg(c, "out of memory");
			return NP_ERR_ALLOC;
		}
		l->v = nv;
	}
	for (i = 0; i < argc; i++) {
		if ((l->v[l->n] = strdup(argv[i])) == NULL) {
			conf_msg(c, "out of memory");
			return NP_ERR_ALLOC;
		}
		l->n++;
	}
	return NP_OK;
}

static int
conf_set_lines(struct conf_ctx *c, const struct np_conf_kw *kw, void *field,
    char **argv, size_t argc, int first)
{
	struct np_strlines *l = field;
	struct np_strlist *nv;
	size_t cap;
	int r;

	if (first) {
		np_strlines_free(l); /* drop the defaults */
	}
	if (l->n >= NP_CONF_LINES_MAX) {
		conf_msg(c, "too many '%s' lines (at most %d)", kw->name,
		    NP_CONF_LINES_MAX);
		return NP_ERR_CONF;
	}
	/* Capacity doubles: grow when n is 0 or a power of two. */
	if ((l->n & (l->n - 1)) == 0) {
		cap = l->n == 0 ? 1 : l->n * 2;
		if ((nv = realloc(l->v, cap * sizeof(*nv))) == NULL) {
			conf_msg(c, "out of memory");
			return NP_ERR_ALLOC;
		}
		l->v = nv;
	}
	memset(&l->v[l->n], 0, sizeof(l->v[l->n]));
	l->n++;
	/* Appending to an empty list never drops anything. */
	if ((r = conf_set_list(c, kw, &l->v[l->n - 1], argv, argc, 0)) !=
	    NP_OK) {
		return r;
	}
	return NP_OK;
}

static int
conf_set_path(struct conf_ctx *c, const struct np_conf_kw *kw, void *field,
    char **argv, size_t argc, int first)
{
	char show[CONF_SHOW_MAX + 8];
	char **dst = field, *s;
	const char *home;
	size_t hl, al;

	if (argv[0][0] != '~') {
		return conf_set_str(c, kw, field, argv, argc, first);
	}
	conf_show(argv[0], show, sizeof(show));
	if (argv[0][1] != '/') {
		conf_msg(c, "cannot expand '%s' for '%s': only '~/' is "
		    "supported", show, kw->name);
		return NP_ERR_CONF;
	}
	if ((home = getenv("HOME")) == NULL || *home == '\0') {
		conf_msg(c, "cannot expand '%s' for '%s': HOME is not set",
		    show, kw->name);
		return NP_ERR_CONF;
	}
	hl = strlen(home);
	al = strlen(argv[0] + 1);
	if ((s = malloc(hl + al + 1)) == NULL) {
		conf_msg(c, "out of memory");
		return NP_ERR_ALLOC;
	}
	memcpy(s, home, hl);
	memcpy(s + hl, argv[0] + 1, al + 1);
	free(*dst);
	*dst = s;
	return NP_OK;
}

static const conf_setter conf_setters[] = {
	[NP_CONF_STR] = conf_set_str,
	[NP_CONF_INT] = conf_set_int,
	[NP_CONF_BOOL] = conf_set_bool,
	[NP_CONF_DURATION] = conf_set_duration,
	[NP_CONF_HOSTPORT] = conf_set_hostport,
	[NP_CONF_IDENT] = conf_set_ident,
	[NP_CONF_LIST] = conf_set_list,
	[NP_CONF_PATH] = conf_set_path,
	[NP_CONF_LINES] = conf_set_lines,
};

static int
conf_type_ok(enum np_conf_type t)
{
	return (unsigned)t < sizeof(conf_setters) / sizeof(conf_setters[0]);
}

static void *
conf_field(void *obj, const struct np_conf_kw *kw)
{
	return (char *)obj + kw->offset;
}

/* Arity and repetition checks, then the type's setter. */
static int
conf_apply(struct conf_ctx *c, const struct np_conf_kw *kw, size_t *seen,
    void *obj, char **argv, size_t argc)
{
	size_t i;
	int r;

	if (argc == 0) {
		conf_msg(c, "missing argument for '%s'", kw->name);
		return NP_ERR_CONF;
	}
	if (kw->type != NP_CONF_LIST && kw->type != NP_CONF_LINES) {
		if (argc > 1 && !((kw->type == NP_CONF_HOSTPORT ||
		    kw->type == NP_CONF_IDENT) &&
		    (kw->flags & NP_CONF_MULTI) != 0)) {
			conf_msg(c, "too many arguments for '%s'", kw->name);
			return NP_ERR_CONF;
		}
		if (*seen != 0) {
			conf_msg(c, "'%s' given twice (first at line %zu)",
			    kw->name, *seen);
			return NP_ERR_CONF;
		}
	}
	for (i = 0; i < argc && kw->type != NP_CONF_STR; i++) {
		if (argv[i][0] == '\0') {
			conf_msg(c, "empty argument for '%s'", kw->name);
			return NP_ERR_CONF;
		}
	}
	r = conf_setters[kw->type](c, kw, conf_field(obj, kw), argv, argc,
	    *seen == 0);
	if (*seen == 0) {
		*seen = c->line;
	}
	return r;
}

static int
conf_line(struct conf_ctx *c, const struct np_conf_kw *table, size_t *seen,
    void *obj, char *line)
{
	char *argv[CONF_MAX_ARGS + 1], show[CONF_SHOW_MAX + 8];
	size_t argc, i;
	int r;

	if ((r = conf_split(c, line, argv, &argc)) != NP_OK || argc == 0) {
		return r;
	}
	for (i = 0; table[i].name != NULL; i++) {
		if (strcasecmp(table[i].name, argv[0]) == 0) {
			return conf_apply(c, &table[i], &seen[i], obj,
			    argv + 1, argc - 1);
		}
	}
	conf_msg(c, "unknown keyword '%s'",
	    conf_show(argv[0], show, sizeof(show)));
	return NP_ERR_CONF;
}

static int
conf_lines(struct conf_ctx *c, const struct np_conf_kw *table, size_t *seen,
    void *obj, const char *text, size_t len)
{
	char line[NP_CONF_MAX_LINE + 1];
	const char *p = text, *nl;
	size_t left = len, n;
	int r;

	while (left > 0) {
		c->line++;
		nl = memchr(p, '\n', left);
		n = nl == NULL ? left : (size_t)(nl - p);
		if (n > NP_CONF_MAX_LINE) {
			conf_msg(c, "line too long (more than %d bytes)",
			    NP_CONF_MAX_LINE);
			return NP_ERR_CONF;
		}
		if (memchr(p, '\0', n) != NULL) {
			conf_msg(c, "NUL byte in line");
			return NP_ERR_CONF;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		if ((r = conf_line(c, table, seen, obj, line)) != NP_OK) {
			return r;
		}
		if (nl == NULL) {
			break;
		}
		p = nl + 1;
		left -= n + 1;
	}
	return NP_OK;
}

static int
conf_table_check(const struct np_conf_kw *table, size_t *n)
{
	size_t i;

	for (i = 0; table[i].name != NULL; i++) {
		if (!conf_type_ok(table[i].type)) {
			return NP_ERR_INTERNAL;
		}
	}
	*n = i;
	return NP_OK;
}

int
np_conf_parse(const struct np_conf_kw *table, void *obj, const char *text,
    size_t len, const char *fname, char *err, size_t errlen)
{
	struct conf_ctx c = { fname == NULL ? "(config)" : fname, 0, err,
		errlen };
	size_t *seen = NULL, n, i;
	int r;

	if (err != NULL && errlen > 0) {
		err[0] = '\0';
	}
	if (table == NULL || obj == NULL || (text == NULL && len > 0)) {
		conf_msg(&c, "internal error: bad arguments");
		return NP_ERR_INTERNAL;
	}
	if ((r = conf_table_check(table, &n)) != NP_OK) {
		conf_msg(&c, "internal error: bad keyword table");
		return r;
	}
	if (len > NP_CONF_MAX_FILE) {
		conf_msg(&c, "file too large (more than %d bytes)",
		    NP_CONF_MAX_FILE);
		return NP_ERR_CONF;
	}
	if ((seen = calloc(n + 1, sizeof(*seen))) == NULL) {
		conf_msg(&c, "out of memory");
		return NP_ERR_ALLOC;
	}
	if ((r = conf_lines(&c, table, seen, obj, text, len)) != NP_OK) {
		goto out;
	}
	c.line = 0;
	for (i = 0; i < n; i++) {
		if ((table[i].flags & NP_CONF_REQUIRED) && seen[i] == 0) {
			conf_msg(&c, "missing required keyword '%s'",
			    table[i].name);
			r = NP_ERR_CONF;
			goto out;
		}
	}
	r = NP_OK;
out:
	free(seen);
	return r;
}

/* Read all of fd (at most NP_CONF_MAX_FILE bytes) into *out. */
static int
conf_read(int fd, struct conf_ctx *c, char **out, size_t *outlen)
{
	size_t len = 0, cap = NP_CONF_MAX_FILE + 1;
	char *p;
	ssize_t n;

	if ((p = malloc(cap)) == NULL) {
		conf_msg(c, "out of memory");
		return NP_ERR_ALLOC;
	}
	while (len < cap) {
		n = read(fd, p + len, cap - len);
		if (n == 0) {
			break;
		}
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			conf_msg(c, "%s", strerror(errno));
			free(p);
			return NP_ERR_SYSTEM;
		}
		len += (size_t)n;
	}
	if (len > NP_CONF_MAX_FILE) {
		conf_msg(c, "file too large (more than %d bytes)",
		    NP_CONF_MAX_FILE);
		free(p);
		return NP_ERR_CONF;
	}
	*out = p;
	*outlen = len;
	return NP_OK;
}

int
np_conf_load(const struct np_conf_kw *table, void *obj, const char *path,
    char *err, size_t errlen)
{
	struct conf_ctx c = { path, 0, err, errlen };
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	int fd = -1, r;

	if (err != NULL && errlen > 0) {
		err[0] = '\0';
	}
	if (path == NULL) {
		c.fname = "(config)";
		conf_msg(&c, "no file name");
		return NP_ERR_INTERNAL;
	}
	/* O_NONBLOCK: opening a FIFO must not hang; refused below. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		r = errno == ENOENT ? NP_ERR_NOT_FOUND : NP_ERR_SYSTEM;
		conf_msg(&c, "%s", strerror(errno));
		return r;
	}
	if (fstat(fd, &st) == -1) {
		r = NP_ERR_SYSTEM;
		conf_msg(&c, "%s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = NP_ERR_CONF;
		conf_msg(&c, "not a regular file");
		goto out;
	}
	/* As ssh does for its config: a file others can change is refused
	 * (for np-deviced it says which identities may log in as whom). */
	if ((st.st_mode & 022) != 0 ||
	    (st.st_uid != geteuid() && st.st_uid != 0)) {
		r = NP_ERR_CONF;
		conf_msg(&c, "bad owner or permissions (writable by group or "
		    "other, or owned by neither root nor uid %u)",
		    (unsigned)geteuid());
		goto out;
	}
	if (st.st_size > NP_CONF_MAX_FILE) {
		r = NP_ERR_CONF;
		conf_msg(&c, "file too large (more than %d bytes)",
		    NP_CONF_MAX_FILE);
		goto out;
	}
	if ((r = conf_read(fd, &c, &text, &len)) != NP_OK) {
		goto out;
	}
	r = np_conf_parse(table, obj, text, len, path, err, errlen);
out:
	free(text);
	close(fd);
	return r;
}

void
np_conf_free(const struct np_conf_kw *table, void *obj)
{
	const struct np_conf_kw *kw;
	void *f;

	if (table == NULL || obj == NULL) {
		return;
	}
	for (kw = table; kw->name != NULL; kw++) {
		f = conf_field(obj, kw);
		switch (kw->type) {
		case NP_CONF_IDENT:
			if ((kw->flags & NP_CONF_MULTI) != 0) {
				np_strlist_free(f);
				break;
			}
			free(*(char **)f);
			*(char **)f = NULL;
			break;
		case NP_CONF_STR:
		case NP_CONF_PATH:
			free(*(char **)f);
			*(char **)f = NULL;
			break;
		case NP_CONF_HOSTPORT:
			np_hostport_free(f);
			break;
		case NP_CONF_LIST:
			np_strlist_free(f);
			break;
		case NP_CONF_LINES:
			np_strlines_free(f);
			break;
		default:
			break;
		}
	}
}

static int
conf_host_ok(const char *h, size_t n)
{
	size_t i;

	if (n == 0 || n > HOST_MAX || h[0] == '-') {
		return 0; /* a leading '-' could pass for an option */
	}
	for (i = 0; i < n; i++) {
		if (!isalnum((unsigned char)h[i]) && h[i] != '.' &&
		    h[i] != '-' && h[i] != '_') {
			return 0;
		}
	}
	return 1;
}

static int
conf_v6_ok(const char *h, size_t n)
{
	char tmp[64];
	struct in6_addr a;

	if (n == 0 || n >= sizeof(tmp)) {
		return 0;
	}
	memcpy(tmp, h, n);
	tmp[n] = '\0';
	return inet_pton(AF_INET6, tmp, &a) == 1;
}

/* Decimal 1..65535, digits only; *v gets the value. */
static int
conf_port_ok(const char *s, unsigned *v)
{
	unsigned n = 0;
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (!isdigit((unsigned char)s[i]) || i >= 5) {
			return 0;
		}
		n = n * 10 + (unsigned)(s[i] - '0');
	}
	if (i == 0 || n == 0 || n > 65535) {
		return 0;
	}
	*v = n;
	return 1;
}

int
np_hostport_parse(const char *s, struct np_hostport *hp)
{
	const char *host, *colon;
	size_t hl;
	unsigned port;
	char pbuf[8];

	if (hp == NULL) {
		return NP_ERR_INVALID;
	}
	hp->host = hp->port = NULL;
	hp->next = NULL;
	if (s == NULL) {
		return NP_ERR_INVALID;
	}
	if (s[0] == '[') {
		host = s + 1;
		if ((colon = strchr(host, ']')) == NULL || colon[1] != ':') {
			return NP_ERR_INVALID;
		}
		hl = (size_t)(colon - host);
		colon++;
		if (!conf_v6_ok(host, hl)) {
			return NP_ERR_INVALID;
		}
	} else {
		host = s;
		if ((colon = strchr(s, ':')) == NULL) {
			return NP_ERR_INVALID;
		}
		hl = (size_t)(colon - host);
		if (!conf_host_ok(host, hl)) {
			return NP_ERR_INVALID;
		}
	}
	if (!conf_port_ok(colon + 1, &port)) {
		return NP_ERR_INVALID;
	}
	snprintf(pbuf, sizeof(pbuf), "%u", port);
	if ((hp->host = strndup(host, hl)) == NULL ||
	    (hp->port = strdup(pbuf)) == NULL) {
		np_hostport_free(hp);
		return NP_ERR_ALLOC;
	}
	return NP_OK;
}

void
np_hostport_free(struct np_hostport *hp)
{
	struct np_hostport *n;

	if (hp == NULL) {
		return;
	}
	free(hp->host);
	free(hp->port);
	hp->host = hp->port = NULL;
	while ((n = hp->next) != NULL) {
		hp->next = n->next;
		free(n->host);
		free(n->port);
		free(n);
	}
}

size_t
np_hostport_count(const struct np_hostport *hp)
{
	size_t n = 0;

	for (; hp != NULL && hp->host != NULL; hp = hp->next) {
		n++;
	}
	return n;
}

void
np_strlist_free(struct np_strlist *l)
{
	size_t i;

	if (l == NULL) {
		return;
	}
	for (i = 0; i < l->n; i++) {
		free(l->v[i]);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void
np_strlines_free(struct np_strlines *l)
{
	size_t i;

	if (l == NULL) {
		return;
	}
	for (i = 0; i < l->n; i++) {
		np_strlist_free(&l->v[i]);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}
