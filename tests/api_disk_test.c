/* Black-box tests of jobqd against its disk: readiness on a real full disk
 * (a small tmpfs), a database damaged in its middle (refused at start,
 * noticed at run time), the start-up integrity check's time budget, and
 * start-up errors (missing directory, read-only file, file in use) as one
 * plain line with their exit status.
 *
 * Mounts are made in a mount namespace of the test's own, which the jobqd
 * it starts shares: they vanish with the test process even when a check
 * fails half-way. Without the right to mount (not root, or no
 * CAP_SYS_ADMIN) those tests say so on stderr and pass without running. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "harness.h"

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define TEST_TIMEOUT_S 90
#define tcase(s, name) harness_tcase((s), (name), TEST_TIMEOUT_S)
#define JSON_CT "Content-Type: application/json"
#define PAGE 4096
#define FILL_JOBS 3000

/* ---- helpers ---- */

static void call(const struct jobqd *d, const char *method, const char *path, const char *body,
		 struct resp *r)
{
	const char *headers[] = { body != NULL ? JSON_CT : "Content-Type:", NULL };

	harness_request_raw(d, method, path, headers, body, body != NULL ? strlen(body) : 0, 0, r);
}

static void assert_status(const struct resp *r, long status, const char *what)
{
	ck_assert_msg(r->status == status, "%s: status %ld (%s), want %ld; body: %.600s", what,
		      r->status, r->error, status, r->body);
}

/* GET /readyz; returns the status, with the body's detail in detail. */
static long readyz(const struct jobqd *d, char *detail, size_t n)
{
	struct resp r;
	long status;

	call(d, "GET", "/readyz", NULL, &r);
	status = r.status;
	snprintf(detail, n, "%s", r.body);
	if (status == 503)
		assert_problem(&r, 503, "storage_unavailable", NULL);
	else
		ck_assert_msg(status == 200 && json_equal_text(r.json, "{\"status\":\"ready\"}"),
			      "readyz: %ld %s", status, r.body);
	harness_resp_free(&r);
	return status;
}

/* Submits an echo job due in a day (it waits, scheduled: no worker runs
 * it) with pad bytes of payload; returns the status, asserting the
 * problem when it is 503. */
static long submit_padded(const struct jobqd *d, size_t pad)
{
	char *body = malloc(pad + 128);
	struct resp r;
	long status;

	ck_assert_ptr_nonnull(body);
	snprintf(body, pad + 128, "{\"type\":\"echo\",\"delay_s\":86400,\"payload\":{\"pad\":\"%*s\"}}",
		 (int)pad, "");
	call(d, "POST", "/v1/jobs", body, &r);
	free(body);
	status = r.status;
	if (status == 503)
		assert_problem(&r, 503, "storage_unavailable", NULL);
	else
		assert_status(&r, 201, "submit");
	harness_resp_free(&r);
	return status;
}

/* Submits n scheduled echo jobs in one batch, each with a 100-byte pad. */
static void submit_batch(const struct jobqd *d, int n)
{
	size_t cap = (size_t)n * 180 + 64, len = 0;
	char *body = malloc(cap);
	struct resp r;
	int i;

	ck_assert_ptr_nonnull(body);
	len += (size_t)snprintf(body + len, cap - len, "{\"jobs\":[");
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(body + len, cap - len,
					"%s{\"type\":\"echo\",\"delay_s\":86400,\"payload\":{\"n\":%d,\"pad\":\"%100s\"}}",
					i ? "," : "", i, "");
	snprintf(body + len, cap - len, "]}");
	call(d, "POST", "/v1/batches", body, &r);
	free(body);
	assert_status(&r, 201, "batch");
	harness_resp_free(&r);
}

/* Gives this test process (and the jobqd it starts) mounts of its own.
 * Returns 0, or -1 after saying on stderr why the test cannot run. */
static int private_mounts(const char *test)
{
	if (unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0)
		return 0;
	fprintf(stderr, "%s: not run: cannot mount here (%s); it needs root\n", test, strerror(errno));
	return -1;
}

/* Fills the file system of path but for room bytes: writes until even
 * one byte finds no room (the size is bounded by the tmpfs), then gives
 * room back. */
static void fill_disk(const char *path, off_t room)
{
	static char chunk[65536];
	size_t n = sizeof chunk;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	memset(chunk, 'f', sizeof chunk);
	while (n > 0) {
		ssize_t w = write(fd, chunk, n);

		if (w < 0) {
			ck_assert_msg(errno == ENOSPC, "write %s: %s", path, strerror(errno));
			n /= 2;
		}
	}
	ck_assert_int_eq(ftruncate(fd, lseek(fd, 0, SEEK_END) - room), 0);
	close(fd);
}

/* A page of the jobs table in the middle of the file: the leaf page whose
 * number is nearest to half the page count. */
static long middle_jobs_page(const char *db)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *s = NULL;
	long page = -1;

	ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(h,
		"SELECT pageno FROM dbstat WHERE name = 'jobs' AND pagetype = 'leaf'"
		" ORDER BY abs(pageno - (SELECT page_count FROM pragma_page_count()) / 2) LIMIT 1",
		-1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		page = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(h);
	ck_assert_msg(page > 2, "no leaf page of jobs in the middle of %s", db);
	return page;
}

/* Overwrites two pages from page (numbered from 1) with a byte no b-tree
 * page starts with; the header (page 1) is left alone. */
static void damage_pages(const char *db, long page)
{
	char junk[2 * PAGE];
	int fd = open(db, O_WRONLY | O_CLOEXEC);

	ck_assert_msg(fd >= 0, "open %s: %s", db, strerror(errno));
	memset(junk, 0xA5, sizeof junk);
	ck_assert_int_eq(pwrite(fd, junk, sizeof junk, (off_t)(page - 1) * PAGE), (ssize_t)sizeof junk);
	ck_assert_int_eq(fsync(fd), 0);
	close(fd);
}

/* Makes a database of FILL_JOBS jobs in d's temp dir and stops jobqd, so
 * that everything is in the main file (a clean stop checkpoints the WAL
 * and removes it). */
static void make_filled_db(struct jobqd *d)
{
	char wal[HARNESS_PATH_MAX + 8];
	struct stat sb;
	int st;

	harness_start(d, NULL);
	submit_batch(d, FILL_JOBS);
	st = harness_stop_keep(d);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "jobqd stop: wait status %d", st);
	snprintf(wal, sizeof wal, "%s-wal", d->db);
	ck_assert_msg(stat(wal, &sb) != 0 || sb.st_size == 0, "%s is left with %lld bytes", wal,
		      (long long)sb.st_size);
}

/* The start-up error contract: exit status want, and stderr exactly one
 * plain line "jobqd: ..." holding each of the NULL-terminated parts, with
 * no log line and no SQL. */
static void assert_startup_error(const struct cli_result *res, int want, const char *const *parts)
{
	const char *nl = strchr(res->err, '\n');
	static const char *const never[] = { "ts=", "level=", "SELECT", "INSERT", "UPDATE", "BEGIN", NULL };
	int i;

	ck_assert_msg(!res->timed_out && res->status == want, "exit %d (timed out %d), want %d; stderr: %s",
		      res->status, res->timed_out, want, res->err);
	ck_assert_msg(nl != NULL && nl[1] == '\0', "stderr is not one line: [%s]", res->err);
	ck_assert_msg(strncmp(res->err, "jobqd: ", 7) == 0, "stderr: %s", res->err);
	for (i = 0; parts[i] != NULL; i++)
		ck_assert_msg(strstr(res->err, parts[i]) != NULL, "'%s' not in: %s", parts[i], res->err);
	for (i = 0; never[i] != NULL; i++)
		ck_assert_msg(strstr(res->err, never[i]) == NULL, "'%s' in: %s", never[i], res->err);
}

/* ---- readiness on a full disk ---- */

/* Ready means a submission would be accepted. With three pages left, no
 * job (seven pages and more) fits, but a one-row write does: and a failed
 * commit leaves the WAL grown by what it could write, so such a probe
 * stayed 200 while every submission got 503. */
START_TEST(readyz_fails_while_the_disk_is_full_and_recovers)
{
	struct jobqd d;
	char mnt[HARNESS_PATH_MAX], db[HARNESS_PATH_MAX + 16], filler[HARNESS_PATH_MAX + 16], why[1024];
	long status = 201;
	int i, st;

	if (private_mounts(__func__) != 0)
		return;
	harness_start(&d, NULL);
	ck_assert_int_eq(WEXITSTATUS(harness_stop_keep(&d)), 0);
	snprintf(mnt, sizeof mnt, "%s/disk", d.dir);
	ck_assert_int_eq(mkdir(mnt, 0755), 0);
	ck_assert_msg(mount("tmpfs", mnt, "tmpfs", 0, "size=2m") == 0, "mount: %s", strerror(errno));
	snprintf(db, sizeof db, "%s/jobq.db", mnt);
	snprintf(filler, sizeof filler, "%s/filler", mnt);
	harness_restart(&d, ARGS("--db", db));

	ck_assert_int_eq(readyz(&d, why, sizeof why), 200);
	ck_assert_int_eq(submit_padded(&d, 2000), 201);

	fill_disk(filler, 3 * PAGE);
	for (i = 0; i < 500 && status == 201; i++)
		status = submit_padded(&d, 2000);
	ck_assert_msg(status == 503, "the full disk took %d more submissions", i);
	ck_assert_msg(readyz(&d, why, sizeof why) == 503, "ready on a full disk: %s", why);
	ck_assert_int_eq(submit_padded(&d, 2000), 503);
	ck_assert_msg(readyz(&d, why, sizeof why) == 503, "ready on a full disk: %s", why);

	ck_assert_int_eq(unlink(filler), 0);
	ck_assert_msg(readyz(&d, why, sizeof why) == 200, "not ready with room again: %s", why);
	ck_assert_int_eq(submit_padded(&d, 2000), 201);

	st = harness_stop_keep(&d);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "jobqd stop: wait status %d", st);
	ck_assert_msg(umount(mnt) == 0, "umount %s: %s", mnt, strerror(errno));
	harness_cleanup(&d);
}
END_TEST

/* ---- a damaged database ---- */

START_TEST(start_refuses_a_database_damaged_in_its_middle)
{
	struct jobqd d;
	struct cli_result res;

	make_filled_db(&d);
	damage_pages(d.db, middle_jobs_page(d.db));
	harness_run_cli(ARGS("--listen", "127.0.0.1:0", "--db", d.db), NULL, &res);
	assert_startup_error(&res, 4, ARGS("database ", d.db, " is damaged", "quick_check"));
	harness_cli_result_free(&res);
	harness_cleanup(&d);
}
END_TEST

/* Damage quick_check did not see at start (here: made later) is met by a
 * read; from then on readiness fails, saying why: it does not heal. */
START_TEST(readyz_fails_once_a_read_meets_damage)
{
	struct jobqd d;
	struct resp r;
	char path[256], why[1024], cursor[128] = "", *log;
	long page, failed = 0;
	int i;

	make_filled_db(&d);
	page = middle_jobs_page(d.db);
	harness_restart(&d, NULL);
	ck_assert_int_eq(readyz(&d, why, sizeof why), 200);
	damage_pages(d.db, page);
	ck_assert_int_eq(submit_padded(&d, 10), 201);

	for (i = 0; i < FILL_JOBS / 500 + 2 && !failed; i++) {
		snprintf(path, sizeof path, "/v1/jobs?limit=500%s%s", cursor[0] ? "&cursor=" : "", cursor);
		call(&d, "GET", path, NULL, &r);
		if (r.status == 503) {
			assert_problem(&r, 503, "storage_unavailable", NULL);
			failed = 1;
		} else {
			assert_status(&r, 200, path);
			ck_assert_msg(jstr(r.json, "next_cursor") != NULL, "the damaged page was not read");
			snprintf(cursor, sizeof cursor, "%s", jstr(r.json, "next_cursor"));
		}
		harness_resp_free(&r);
	}
	ck_assert_msg(failed, "every page of the list was read");

	call(&d, "GET", "/readyz", NULL, &r);
	assert_problem(&r, 503, "storage_unavailable", NULL);
	ck_assert_msg(strstr(jstr_or(r.json, "detail"), "damaged") != NULL, "detail: %s", r.body);
	ck_assert_msg(harness_header(&r, "Retry-After", why, sizeof why) && strcmp(why, "60") == 0,
		      "Retry-After: %s", why);
	harness_resp_free(&r);
	log = harness_read_file(d.log);
	ck_assert_msg(strstr(log, "is damaged") != NULL, "no log line says so:\n%.3000s", log);
	free(log);
	harness_stop(&d);
}
END_TEST

/* With a budget too short for the file, the check is cut and jobqd starts,
 * saying so. */
START_TEST(start_check_stops_at_its_budget)
{
	struct jobqd d;
	char *log;
	int st;

	harness_start(&d, NULL);
	submit_batch(&d, 5000);
	submit_batch(&d, 5000);
	submit_batch(&d, 5000);
	st = harness_stop_keep(&d);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "jobqd stop: wait status %d", st);
	harness_restart(&d, ARGS("--integrity-check", "0.001"));
	log = harness_read_file(d.log);
	ck_assert_msg(strstr(log, "the integrity check stopped after") != NULL, "log:\n%.3000s", log);
	free(log);
	harness_stop(&d);
}
END_TEST

/* ---- start-up errors ---- */

START_TEST(start_in_a_missing_directory_is_one_line_and_exit_3)
{
	struct cli_result res;

	harness_run_cli(ARGS("--listen", "127.0.0.1:0", "--db", "/nonexistent-jobq-dir/sub/jobq.db"), NULL, &res);
	assert_startup_error(&res, 3, ARGS("cannot open database /nonexistent-jobq-dir/sub/jobq.db",
					   "No such file or directory"));
	harness_cli_result_free(&res);
}
END_TEST

/* Root writes whatever a mode says, so as root the file is made read-only
 * by a read-only bind mount over it; otherwise by its mode. */
START_TEST(start_on_a_read_only_database_is_one_line_and_exit_3)
{
	struct jobqd d;
	struct cli_result res;
	int st;

	if (geteuid() == 0 && private_mounts(__func__) != 0)
		return;
	harness_start(&d, NULL);
	st = harness_stop_keep(&d);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "jobqd stop: wait status %d", st);
	if (geteuid() == 0) {
		ck_assert_msg(mount(d.db, d.db, NULL, MS_BIND, NULL) == 0, "bind: %s", strerror(errno));
		ck_assert_msg(mount(NULL, d.db, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) == 0,
			      "read-only: %s", strerror(errno));
	} else {
		ck_assert_int_eq(chmod(d.db, 0444), 0);
	}
	harness_run_cli(ARGS("--listen", "127.0.0.1:0", "--db", d.db), NULL, &res);
	if (geteuid() == 0)
		ck_assert_msg(umount(d.db) == 0, "umount %s: %s", d.db, strerror(errno));
	assert_startup_error(&res, 3, ARGS("cannot open database ", d.db, "read-only"));
	harness_cli_result_free(&res);
	harness_cleanup(&d);
}
END_TEST

START_TEST(start_on_a_database_in_use_is_one_line_and_exit_3)
{
	struct jobqd d;
	struct cli_result res;

	harness_start(&d, NULL);
	harness_run_cli(ARGS("--listen", "127.0.0.1:0", "--db", d.db), NULL, &res);
	assert_startup_error(&res, 3, ARGS("cannot open database ", d.db, "in use by another jobqd"));
	harness_cli_result_free(&res);
	harness_stop(&d);
}
END_TEST

/* ---- suite ---- */

static Suite *disk_suite(void)
{
	Suite *s = suite_create("disk");
	TCase *tc;

	tc = tcase(s, "full");
	tcase_add_test(tc, readyz_fails_while_the_disk_is_full_and_recovers);

	tc = tcase(s, "damage");
	tcase_add_test(tc, start_refuses_a_database_damaged_in_its_middle);
	tcase_add_test(tc, readyz_fails_once_a_read_meets_damage);
	tcase_add_test(tc, start_check_stops_at_its_budget);

	tc = tcase(s, "startup");
	tcase_add_test(tc, start_in_a_missing_directory_is_one_line_and_exit_3);
	tcase_add_test(tc, start_on_a_read_only_database_is_one_line_and_exit_3);
	tcase_add_test(tc, start_on_a_database_in_use_is_one_line_and_exit_3);
	return s;
}

int main(void)
{
	return harness_run(disk_suite());
}
