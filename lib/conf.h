/*
 * ssh_config-style configuration files, parsed from a table.
 *   Keyword value...      or   Keyword=value
 * '#' starts a comment, keywords are case-insensitive, values may be
 * double-quoted.  Unknown keywords, a repeated single-valued keyword,
 * missing or extra arguments and out-of-range numbers are errors reported
 * as "file:line: message".  The parser is a pure function of the bytes.
 */
#ifndef NP_CONF_H
#define NP_CONF_H

#include <stddef.h>
#include <stdint.h>

#define NP_CONF_MAX_FILE (1024 * 1024)
#define NP_CONF_MAX_LINE 4096

enum np_conf_type {
	NP_CONF_STR,	  /* char *: one argument */
	NP_CONF_INT,	  /* long: one argument within [min, max] */
	NP_CONF_BOOL,	  /* int: yes / no */
	NP_CONF_DURATION, /* long seconds: "30", "30s", "5m", "2h", "1d" */
	NP_CONF_HOSTPORT, /* struct np_hostport: "host:port", "[v6]:port" */
	NP_CONF_IDENT,	  /* char *: an identity "@name"; with
			   * NP_CONF_MULTI struct np_strlist: several on
			   * its line, in order, none twice */
	NP_CONF_LIST,	  /* struct np_strlist: all arguments, may repeat */
	NP_CONF_PATH,	  /* char *: one argument, "~/" expanded */
	NP_CONF_LINES,	  /* struct np_strlines: may repeat, each line's
			   * arguments kept as a list of its own */
};

#define NP_CONF_REQUIRED 0x1
#define NP_CONF_MULTI 0x2 /* HOSTPORT, IDENT: several on its line, in
			   * order */
#define NP_CONF_MULTI_MAX 16 /* values of one MULTI keyword */
#define NP_CONF_LINES_MAX 65536 /* lines of one NP_CONF_LINES keyword */

struct np_hostport {
	char *host;
	char *port; /* decimal string */
	struct np_hostport *next; /* NP_CONF_MULTI: the further ones */
};

struct np_strlist {
	char **v;
	size_t n;
};

/* NP_CONF_LINES: v[i] holds the arguments of the i-th occurrence. */
struct np_strlines {
	struct np_strlist *v;
	size_t n;
};

struct np_conf_kw {
	const char *name;
	enum np_conf_type type;
	size_t offset; /* offsetof the field in the caller's struct */
	int flags;
	long min, max; /* NP_CONF_INT and NP_CONF_DURATION; both 0 means
			* any long (INT) or any value >= 0 (DURATION) */
	const char *help;
};

/*
 * Parse text into obj per table (terminated by a {NULL} entry).  On error
 * returns NP_ERR_CONF and writes "fname:line: message" into err.  Values
 * already set in obj (defaults) are overwritten by the file.
 * Field types: STR/IDENT/PATH char *, INT/DURATION long, BOOL int,
 * HOSTPORT struct np_hostport, LIST struct np_strlist, LINES struct
 * np_strlines (one np_strlist per line, in file order).  Defaults held in
 * pointer fields must be malloc'ed: they are freed when the file replaces
 * them (a LIST's or LINES' defaults are dropped at its first occurrence in
 * the file; later occurrences append).  Only STR accepts "" as a value.  Lines:
 * "Keyword value", "Keyword=value", "Keyword = value"; '#' starts a
 * comment at the start of a line or of an argument; "..." quotes an
 * argument (no escapes); CRLF is fine; NUL bytes are refused.
 * NP_ERR_ALLOC on out of memory, NP_ERR_INTERNAL on a bad table.  On any
 * error obj still holds only owned values: np_conf_free() releases it.
 */
int np_conf_parse(const struct np_conf_kw *table, void *obj,
    const char *text, size_t len, const char *fname, char *err,
    size_t errlen);
/*
 * Read path (regular file, <= NP_CONF_MAX_FILE) and parse it.  Besides
 * np_conf_parse's codes: NP_ERR_NOT_FOUND when path does not exist,
 * NP_ERR_SYSTEM on other open/read errors ("path: strerror"), NP_ERR_CONF
 * for a non-regular or too large file, or one that group or other may
 * write or that is owned by neither the euid nor root.
 */
int np_conf_load(const struct np_conf_kw *table, void *obj, const char *path,
    char *err, size_t errlen);
/* Free every string and list the table names in obj. */
void np_conf_free(const struct np_conf_kw *table, void *obj);

/*
 * "host:port" or "[v6addr]:port" into hp (host without brackets, port
 * normalised decimal 1..65535, next NULL).  hp is overwritten (not freed)
 * and left {NULL, NULL, NULL} on error.  NP_OK, NP_ERR_INVALID or
 * NP_ERR_ALLOC.
 */
int np_hostport_parse(const char *s, struct np_hostport *hp);
/* Frees hp's strings and the chain behind hp->next (not hp itself). */
void np_hostport_free(struct np_hostport *hp);
/* Entries in the chain starting at hp (0 when hp->host is NULL). */
size_t np_hostport_count(const struct np_hostport *hp);
void np_strlist_free(struct np_strlist *l);
void np_strlines_free(struct np_strlines *l);

#endif
