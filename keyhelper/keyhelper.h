/*
 * np-keyhelper: sshd's AuthorizedKeysCommand for NoPorts session keys, and
 * install/sweep of marked lines in plain authorized_keys files.
 */
#ifndef NP_KEYHELPER_H
#define NP_KEYHELPER_H

#define KH_VERSION "0.1.0"

/* Exit codes: sshd uses AuthorizedKeysCommand output only on exit 0. */
#define KH_EXIT_OK 0
#define KH_EXIT_FAIL 1
#define KH_EXIT_USAGE 2

struct kh_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

int kh_keys(int argc, char **argv);
int kh_install(int argc, char **argv);
int kh_sweep(int argc, char **argv);

#endif
