#include <string.h>

#include "err.h"
#include "ident.h"

static int
name_char(char c, int first)
{
	if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')
		return 1;
	return !first && (c == '.' || c == '-');
}

static int
name_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i >= NP_NAME_MAX || !name_char(s[i], i == 0))
			return 0;
	}
	return i > 0;
}

int
np_ident_valid(const char *s)
{
	return s != NULL && s[0] == '@' && name_valid(s + 1);
}

int
np_ident_norm(const char *s, char *out, size_t outlen)
{
	if (s == NULL || outlen < NP_IDENT_MAX + 1)
		return NP_ERR_INVALID;
	if (s[0] == '@')
		s++;
	if (!name_valid(s))
		return NP_ERR_INVALID;
	out[0] = '@';
	memcpy(out + 1, s, strlen(s) + 1);
	return NP_OK;
}

int
np_tunnel_host_valid(const char *h, size_t len)
{
	size_t i;

	if (h == NULL || len < 1 || len > NP_TUNNEL_HOST_MAX || h[0] == '-') {
		return 0;
	}
	for (i = 0; i < len; i++) {
		if (!((h[i] >= 'a' && h[i] <= 'z') ||
		    (h[i] >= 'A' && h[i] <= 'Z') ||
		    (h[i] >= '0' && h[i] <= '9') || h[i] == '.' ||
		    h[i] == '-' || h[i] == '_' || h[i] == ':')) {
			return 0;
		}
	}
	return 1;
}
