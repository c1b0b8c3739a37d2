#include "err.h"

static const char *const np_errstr[] = {
	"success",
	"internal error",
	"out of memory",
	"invalid format",
	"too big",
	"truncated input",
	"system error",
	"signature or authentication tag did not verify",
	"timestamp outside the allowed window",
	"message replayed",
	"sender or recipient does not match",
	"unsafe file permissions or owner",
	"already exists",
	"not found",
	"TLS error",
	"protocol violation",
	"authentication refused",
	"timed out",
	"configuration error",
	"try again",
	"connection closed",
	"server fingerprint does not match the pinned one",
	"identity key changed",
	"identity revoked",
	"limit reached",
	"enrollment token invalid, expired or already used",
	"nesting too deep",
	"unreachable",
	"input/output error: connection lost",
};

/* One name for every code from NP_OK down to NP_ERR_MIN. */
_Static_assert(sizeof(np_errstr) / sizeof(np_errstr[0]) == 1 - NP_ERR_MIN,
    "np_errstr does not match enum np_err");

const char *
np_strerror(int r)
{
	if (r > 0 || r < NP_ERR_MIN)
		return "unknown error";
	return np_errstr[-r];
}
