/*
 * np-keyhelper: one subcommand from the table below, or, when the first
 * argument is not a subcommand name, the AuthorizedKeysCommand lookup
 * (np-keyhelper [-s SPOOLDIR] USER).  The sshd drop-in passes "-s DIR"
 * first, so a local user who happens to be called "install" or "sweep"
 * is still looked up, never taken for a subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "keyhelper.h"

static const struct kh_cmd cmds[] = {
    {"install", kh_install, "add a session key to authorized_keys"},
    {"sweep", kh_sweep, "remove expired session keys"},
    {NULL, NULL, NULL},
};

/*
 * In a sanitizer build (make SANITIZE=1), a report makes np-keyhelper exit
 * with status 86.  sshd runs the AuthorizedKeysCommand with a fresh
 * environment (no ASAN_OPTIONS) and throws its stderr away, so this status
 * in sshd's "AuthorizedKeysCommand ... failed, status 86" log line is all
 * that is left of the report; the tests look for it.
 */
#if defined(__SANITIZE_ADDRESS__)
#define KH_SANITIZE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KH_SANITIZE 1
#endif
#endif
#ifdef KH_SANITIZE
const char *__asan_default_options(void);
const char *__ubsan_default_options(void);

const char *
__asan_default_options(void)
{
	return "exitcode=86";
}

const char *
__ubsan_default_options(void)
{
	return "exitcode=86";
}
#endif

static void
usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: np-keyhelper [-d] [-s SPOOLDIR] USER\n"
	    "       np-keyhelper install [-f AUTHORIZED_KEYS] [--user USER] "
	    "--key 'ssh-ed25519 ...'\n"
	    "                            --expires UNIX_SECONDS --session SID\n"
	    "       np-keyhelper sweep [-f AUTHORIZED_KEYS] [--user USER] | "
	    "sweep -s SPOOLDIR\n"
	    "       np-keyhelper --help | --version\n\nsubcommands:\n");
	for (const struct kh_cmd *c = cmds; c->name != NULL; c++) {
		fprintf(f, "  %-8s %s\n", c->name, c->help);
	}
}

int
main(int argc, char **argv)
{
	if (argc >= 2 &&
	    (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return KH_EXIT_OK;
	}
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("np-keyhelper %s\n", KH_VERSION);
		return KH_EXIT_OK;
	}
	if (argc < 2) {
		usage(stderr);
		return KH_EXIT_USAGE;
	}
	for (const struct kh_cmd *c = cmds; c->name != NULL; c++) {
		if (strcmp(argv[1], c->name) == 0) {
			return c->fn(argc - 1, argv + 1);
		}
	}
	return kh_keys(argc, argv);
}
