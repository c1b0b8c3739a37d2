/*
 * What ssh makes of its config for one host (`ssh -G HOST`), the parts
 * np doctor checks against the np config: ProxyCommand, IdentityFile,
 * UserKnownHostsFile.  The parsers are pure; np_sshg_run runs ssh
 * (fork + execvp with an argv array, never a shell).
 */
#ifndef NP_PROXY_SSHCFG_H
#define NP_PROXY_SSHCFG_H

#include <stddef.h>

#define NP_SSHG_IDFILES_MAX 32
#define NP_SSHG_OUT_MAX (256 * 1024) /* bytes of ssh -G output kept */
#define NP_SSHG_WORDS_MAX 16

/* The lines of `ssh -G` np doctor looks at (NULL: absent). */
struct np_sshg {
	const char *user;
	const char *hostname;
	const char *port;
	const char *proxycommand;
	const char *ukh;			/* userknownhostsfile */
	const char *idfiles[NP_SSHG_IDFILES_MAX]; /* identityfile, in order */
	size_t nidfiles;
};

/*
 * Pure: pick those out of ssh -G's "keyword value" lines.  text (NUL-
 * terminated) is cut up in place and the fields point into it; other
 * lines, and identityfile lines past NP_SSHG_IDFILES_MAX, are ignored.
 */
void np_sshg_parse(char *text, struct np_sshg *g);

/* A ProxyCommand that runs np proxy, taken apart. */
struct np_sshg_proxy {
	char buf[2048];
	const char *np;	    /* the program as written: "np", "/bin/np" */
	const char *config; /* its -F CONFIG as written, or NULL */
};
/*
 * Pure: pc must be "[exec] NP [-F CONFIG] [-v] proxy %h %p %r", words
 * separated by blanks, NP's last path component "np".  NP_OK fills *p;
 * NP_ERR_INVALID with the reason in why.
 */
int np_sshg_proxy_parse(const char *pc, struct np_sshg_proxy *p, char *why,
    size_t whylen);

/* What "~" and ssh's % tokens stand for (NULL: unknown). */
struct np_sshg_env {
	const char *home;  /* ~ and %d: the passwd entry's home, as ssh */
	const char *luser; /* %u */
	const char *arg;   /* %n: the host as given to ssh */
	unsigned uid;	   /* %i */
};
/*
 * Pure: ssh's expansion of an IdentityFile or a UserKnownHostsFile path:
 * a leading "~/" (or "~" alone), then %% %d %h %r %u %n %p %i (%h, %r
 * and %p from g).  NP_ERR_INVALID for another token or one whose value
 * is unknown, NP_ERR_TOO_BIG when out is too small.
 */
int np_sshg_expand(const char *in, const struct np_sshg *g,
    const struct np_sshg_env *e, char *out, size_t outlen);

/*
 * Run "ssh [-F file] -G -- host" with stdin from /dev/null, for at most
 * timeout_ms (then SIGKILL, NP_ERR_TIMEOUT).  *out gets its stdout
 * (malloc'ed, NUL-terminated, at most NP_SSHG_OUT_MAX bytes kept; free
 * it also on error), err the start of its stderr, *status its exit
 * status (128 + signal when killed; 127 when ssh could not be run).
 */
int np_sshg_run(const char *file, const char *host, int timeout_ms,
    char **out, int *status, char *err, size_t errlen);

#endif
