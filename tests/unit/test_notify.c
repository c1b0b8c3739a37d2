/*
 * np_notify: the datagram systemd's Type=notify waits for, to a path and
 * to an abstract socket; nothing without NOTIFY_SOCKET.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "err.h"
#include "notify.h"

static int
listener(const char *name, int abstract)
{
	struct sockaddr_un sa;
	socklen_t sl;
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	ck_assert_int_ge(fd, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, name);
	sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
	if (abstract)
		sa.sun_path[0] = '\0';
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sl), 0);
	return fd;
}

static void
expect(int fd, const char *want)
{
	char buf[64];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	ck_assert_int_eq(n, (ssize_t)strlen(want));
	buf[n] = '\0';
	ck_assert_str_eq(buf, want);
}

START_TEST(path_socket)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/np-notify-test.%d", (int)getpid());
	unlink(path);
	fd = listener(path, 0);
	setenv("NOTIFY_SOCKET", path, 1);
	ck_assert_int_eq(np_notify("READY=1"), NP_OK);
	expect(fd, "READY=1");
	close(fd);
	unlink(path);
	/* The socket is gone: the send fails, and says so. */
	ck_assert_int_eq(np_notify("READY=1"), NP_ERR_SYSTEM);
	unsetenv("NOTIFY_SOCKET");
}
END_TEST

START_TEST(abstract_socket)
{
	char name[64];
	int fd;

	snprintf(name, sizeof(name), "@np-notify-test.%d", (int)getpid());
	fd = listener(name, 1);
	setenv("NOTIFY_SOCKET", name, 1);
	ck_assert_int_eq(np_notify("STOPPING=1"), NP_OK);
	expect(fd, "STOPPING=1");
	close(fd);
	unsetenv("NOTIFY_SOCKET");
}
END_TEST

START_TEST(no_socket)
{
	unsetenv("NOTIFY_SOCKET");
	ck_assert_int_eq(np_notify("READY=1"), NP_OK);
	setenv("NOTIFY_SOCKET", "", 1);
	ck_assert_int_eq(np_notify("READY=1"), NP_OK);
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	ck_assert_int_eq(np_notify("READY=1"), NP_ERR_INVALID);
	unsetenv("NOTIFY_SOCKET");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("notify");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int nf;

	tcase_add_test(tc, path_socket);
	tcase_add_test(tc, abstract_socket);
	tcase_add_test(tc, no_socket);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
