/*
 * np-deviced's idle trim (device/dev_mem.c): the pages of read-only file
 * mappings leave the page tables and come back intact when read again;
 * a mapping with a written (copy-on-write) page is left alone, so a
 * relocated RELRO segment, a breakpoint or a uprobe is never lost.
 */
#include <check.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dev.h"

#define LEN (64 * 1024)

/* Rss (KiB) of the mapping that starts at p, or -1. */
static long
map_rss(const void *p)
{
	char line[640];
	uintptr_t lo, hi;
	long rss = -1;
	int in = 0;
	FILE *f;

	ck_assert_ptr_nonnull(f = fopen("/proc/self/smaps", "re"));
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, ':') > strchr(line, ' ')) {
			in = lo == (uintptr_t)p;
		} else if (in && sscanf(line, "Rss: %ld", &rss) == 1) {
			break;
		}
	}
	fclose(f);
	return rss;
}

static int
tmpfile_of(unsigned char fill)
{
	char path[] = "/tmp/np-test.dev_mem.XXXXXX";
	unsigned char buf[LEN];
	int fd;

	ck_assert_int_ge(fd = mkstemp(path), 0);
	unlink(path);
	memset(buf, fill, sizeof(buf));
	ck_assert_int_eq(write(fd, buf, sizeof(buf)), LEN);
	return fd;
}

START_TEST(test_trim_drops_clean_keeps_written)
{
	int fd = tmpfile_of(0xa5);
	volatile unsigned char *ro, *rw;
	unsigned sum = 0;
	size_t i;

	/* A clean read-only mapping, all of it read (resident). */
	ro = mmap(NULL, LEN, PROT_READ, MAP_PRIVATE, fd, 0);
	ck_assert_ptr_ne((void *)ro, MAP_FAILED);
	for (i = 0; i < LEN; i += 4096) {
		sum += ro[i];
	}
	ck_assert_uint_eq(sum, 16u * 0xa5);
	ck_assert_int_gt(map_rss((void *)ro), 0);
	/* A private mapping with one page written, then made read-only:
	 * what the dynamic linker leaves of a RELRO segment. */
	rw = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	ck_assert_ptr_ne((void *)rw, MAP_FAILED);
	rw[0] = 0x5a;
	for (i = 4096; i < LEN; i += 4096) {
		sum += rw[i];
	}
	ck_assert_int_eq(mprotect((void *)rw, LEN, PROT_READ), 0);

	dev_mem_trim();

	ck_assert_int_eq(map_rss((void *)ro), 0);
	ck_assert_int_gt(map_rss((void *)rw), 0);
	ck_assert_uint_eq(rw[0], 0x5a); /* the written page survived */
	for (i = 0; i < LEN; i++) {
		ck_assert_uint_eq(ro[i], 0xa5);
	}
	ck_assert_int_gt(map_rss((void *)ro), 0);
	munmap((void *)ro, LEN);
	munmap((void *)rw, LEN);
	close(fd);
}
END_TEST

/* The program goes on after its own code and libc's left the page
 * tables (they are mapped again on use), and again after a second trim. */
START_TEST(test_trim_twice_and_go_on)
{
	char buf[64];

	dev_mem_trim();
	snprintf(buf, sizeof(buf), "%d %s", 42, "after");
	ck_assert_str_eq(buf, "42 after");
	dev_mem_trim();
	ck_assert_ptr_nonnull(strstr(buf, "after"));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("dev_mem");
	TCase *tc = tcase_create("trim");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_trim_drops_clean_keeps_written);
	tcase_add_test(tc, test_trim_twice_and_go_on);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
