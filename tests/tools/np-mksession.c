/*
 * np-mksession: test tool doing the device's part of a session set-up.
 *   np-mksession [-s SPOOLDIR] [-i SID] KEYFILE USER EXPIRES
 * generates a per-session Ed25519 key, writes the OpenSSH private key to
 * KEYFILE (0600) and "ssh-ed25519 BASE64 noports-session-SID" to
 * KEYFILE.pub, and with -s a spool entry for USER.  EXPIRES is unix
 * seconds, or +N / -N seconds from now.  Prints the session id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "key.h"
#include "spool.h"
#include "sshkey.h"

static int
parse_when(const char *s, int64_t *t)
{
	char *end;
	long long v = strtoll(s, &end, 10);

	if (*s == '\0' || *end != '\0') {
		return NP_ERR_INVALID;
	}
	*t = (*s == '+' || *s == '-') ? (int64_t)time(NULL) + v : v;
	return NP_OK;
}

static int
write_files(const struct np_sshkey *k, const char *path, const char *sid)
{
	char comment[64], pubpath[4096];
	struct np_buf *priv, *pub;
	int r = NP_ERR_ALLOC;

	snprintf(comment, sizeof(comment), "%s%s", NP_AUTHKEY_COMMENT_PFX, sid);
	snprintf(pubpath, sizeof(pubpath), "%s.pub", path);
	priv = np_buf_new_secure(NP_SSHKEY_PRIV_MAX);
	pub = np_buf_new(1024);
	if (priv != NULL && pub != NULL &&
	    (r = np_sshkey_private_pem(k, comment, priv)) == NP_OK &&
	    (r = np_sshkey_public_line(k, comment, pub)) == NP_OK &&
	    (r = np_buf_put_u8(pub, '\n')) == NP_OK &&
	    (r = np_file_write_atomic(path, np_buf_ptr(priv), np_buf_len(priv),
				      1)) == NP_OK) {
		r = np_file_write_atomic(pubpath, np_buf_ptr(pub),
					 np_buf_len(pub), 1);
	}
	np_buf_free(priv);
	np_buf_free(pub);
	return r;
}

int
main(int argc, char **argv)
{
	struct np_spool_entry e;
	struct np_sshkey *k = NULL;
	const char *spool = NULL, *sid = NULL;
	uint8_t rnd[16];
	int ch, r;

	while ((ch = getopt(argc, argv, "+s:i:")) != -1) {
		if (ch == 's') {
			spool = optarg;
		} else if (ch == 'i') {
			sid = optarg;
		} else {
			goto usage;
		}
	}
	if (argc - optind != 3 || np_crypto_init() != NP_OK) {
		goto usage;
	}
	memset(&e, 0, sizeof(e));
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(e.sid, sizeof(e.sid), rnd, sizeof(rnd));
	if (sid != NULL) {
		snprintf(e.sid, sizeof(e.sid), "%s", sid);
	}
	snprintf(e.user, sizeof(e.user), "%s", argv[optind + 1]);
	if (parse_when(argv[optind + 2], &e.expires) != NP_OK) {
		goto usage;
	}
	if ((r = np_sshkey_generate(&k)) != NP_OK) {
		goto fail;
	}
	memcpy(e.pk, np_sshkey_pk(k), sizeof(e.pk));
	if ((r = write_files(k, argv[optind], e.sid)) != NP_OK ||
	    (spool != NULL && (r = np_spool_write(spool, &e)) != NP_OK)) {
		goto fail;
	}
	np_sshkey_free(k);
	printf("%s\n", e.sid);
	return 0;
fail:
	np_sshkey_free(k);
	fprintf(stderr, "np-mksession: %s\n", np_strerror(r));
	return 1;
usage:
	fprintf(stderr, "usage: np-mksession [-s SPOOLDIR] [-i SID] KEYFILE "
			"USER EXPIRES\n");
	return 2;
}
