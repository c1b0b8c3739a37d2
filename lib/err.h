/*
 * Error codes shared by every module.  Functions return NP_OK (0) or one
 * of the negative codes below; np_strerror() names a code.
 */
#ifndef NP_ERR_H
#define NP_ERR_H

enum np_err {
	NP_OK = 0,
	NP_ERR_INTERNAL = -1,	 /* a bug: should not happen */
	NP_ERR_ALLOC = -2,	 /* out of memory */
	NP_ERR_INVALID = -3,	 /* malformed input */
	NP_ERR_TOO_BIG = -4,	 /* a size or count over its cap */
	NP_ERR_TRUNCATED = -5,	 /* input ends early */
	NP_ERR_SYSTEM = -6,	 /* a system call failed: see errno */
	NP_ERR_CRYPTO = -7,	 /* signature or MAC did not verify */
	NP_ERR_STALE = -8,	 /* timestamp outside the window */
	NP_ERR_REPLAY = -9,	 /* message seen before */
	NP_ERR_WRONG_PEER = -10, /* from/to do not match */
	NP_ERR_PERM = -11,	 /* unsafe file mode or owner */
	NP_ERR_EXISTS = -12,	 /* already exists */
	NP_ERR_NOT_FOUND = -13,	 /* no such thing */
	NP_ERR_TLS = -14,	 /* TLS failure */
	NP_ERR_PROTO = -15,	 /* peer broke the protocol */
	NP_ERR_AUTH = -16,	 /* authentication refused */
	NP_ERR_TIMEOUT = -17,	 /* deadline passed */
	NP_ERR_CONF = -18,	 /* configuration error */
	NP_ERR_AGAIN = -19,	 /* would block / need more data */
	NP_ERR_CLOSED = -20,	 /* peer closed the connection */
	NP_ERR_FINGERPRINT = -21, /* pinned fingerprint mismatch */
	NP_ERR_KEY_CHANGED = -22, /* pinned identity key changed */
	NP_ERR_REVOKED = -23,	 /* identity revoked */
	NP_ERR_LIMIT = -24,	 /* a rate or connection limit hit */
	NP_ERR_TOKEN = -25,	 /* enrollment token invalid or used */
	NP_ERR_DEPTH = -26,	 /* nesting too deep */
	NP_ERR_UNREACHABLE = -27, /* cannot connect */
	NP_ERR_IO = -28,	  /* a database or device connection lost */
};
#define NP_ERR_MIN (-28)

const char *np_strerror(int r);

#endif
