/* Test harness for the jobqd API tests: process control (spawn, bounded
 * waits, SIGTERM/SIGKILL, log scanning), libcurl exchanges, the
 * problem+json checker, and a schema per jobqd on PostgreSQL. Spawned daemons die with the test process
 * (PR_SET_PDEATHSIG) and an atexit hook removes leftover temp dirs, so a
 * failed assertion in the middle of a test leaks nothing. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libpq-fe.h>

extern char **environ;

#define POLL_STEP_NS 10000000L    /* 10 ms between polls */
#define START_BOUND_MS 10000.0    /* listening line + healthz */
#define STOP_BOUND_MS 10000.0     /* SIGTERM to exit, then SIGKILL */
#define CLI_BOUND_MS 10000.0      /* a command-line run */
#define HTTP_TIMEOUT_MS 45000L    /* longest exchange (tests wait <= 30 s) */
#define LISTEN_PREFIX "jobqd: listening on http://"
#define MAX_LIVE 16

/* Everything spawned by this test process, for the atexit sweep. */
struct live_entry {
	pid_t pid;                    /* -1 when reaped */
	char dir[HARNESS_PATH_MAX];   /* "" when removed */
};
static struct live_entry live_table[MAX_LIVE];
static int live_init;
static char suite_root[HARNESS_PATH_MAX / 4];  /* "" outside a suite run */

static const char *const sanitizer_markers[] = {
	"ERROR: AddressSanitizer",
	"runtime error:",
	"ERROR: LeakSanitizer",
	"WARNING: ThreadSanitizer",
	NULL,
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void nap(void)
{
	struct timespec ts = { 0, POLL_STEP_NS };

	nanosleep(&ts, NULL);
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_rf(const char *dir)
{
	if (dir[0] != '\0')
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void live_sweep(void)
{
	int i;

	for (i = 0; i < MAX_LIVE; i++) {
		if (live_table[i].pid > 0) {
			kill(live_table[i].pid, SIGKILL);
			waitpid(live_table[i].pid, NULL, 0);
			live_table[i].pid = -1;
		}
		rm_rf(live_table[i].dir);
		live_table[i].dir[0] = '\0';
	}
}

static struct live_entry *live_find(pid_t pid, const char *dir)
{
	int i;

	for (i = 0; i < MAX_LIVE; i++) {
		if (pid > 0 && live_table[i].pid == pid)
			return &live_table[i];
		if (dir != NULL && dir[0] != '\0' &&
		    strcmp(live_table[i].dir, dir) == 0)
			return &live_table[i];
	}
	return NULL;
}

static void live_add(pid_t pid, const char *dir)
{
	struct live_entry *e;
	int i;

	if (!live_init) {
		live_init = 1;
		for (i = 0; i < MAX_LIVE; i++)
			live_table[i].pid = -1;
		atexit(live_sweep);
		signal(SIGPIPE, SIG_IGN);
	}
	e = live_find(-1, dir);
	if (e == NULL) {
		for (i = 0; i < MAX_LIVE && e == NULL; i++)
			if (live_table[i].pid <= 0 && live_table[i].dir[0] == '\0')
				e = &live_table[i];
	}
	ck_assert_msg(e != NULL, "harness: too many live jobqd processes");
	if (pid > 0)
		e->pid = pid;
	snprintf(e->dir, sizeof e->dir, "%s", dir);
}

static void live_reaped(pid_t pid)
{
	struct live_entry *e = live_find(pid, NULL);

	if (e != NULL)
		e->pid = -1;
}

static void live_dir_removed(const char *dir)
{
	struct live_entry *e = live_find(-1, dir);

	if (e != NULL)
		e->dir[0] = '\0';
}

char *harness_read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return strdup("");
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			p = realloc(p, cap);
			if (p == NULL)
				abort();
		}
		n = fread(p + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	fclose(f);
	p[len] = '\0';
	return p;
}

static const char *tmp_base(void)
{
	const char *t = getenv("TMPDIR");

	return t == NULL || t[0] == '\0' ? "/tmp" : t;
}

static void make_tmpdir(char *out, size_t n)
{
	snprintf(out, n, "%s/jobq-test-XXXXXX",
		 suite_root[0] != '\0' ? suite_root : tmp_base());
	ck_assert_msg(mkdtemp(out) != NULL, "mkdtemp(%s): %s", out,
		      strerror(errno));
}

void harness_suite_begin(void)
{
	snprintf(suite_root, sizeof suite_root, "%.90s/jobq-api-XXXXXX",
		 tmp_base());
	if (mkdtemp(suite_root) == NULL) {
		fprintf(stderr, "harness: mkdtemp(%s): %s\n", suite_root,
			strerror(errno));
		exit(1);
	}
}

const char *harness_db_url(void)
{
	const char *url = getenv("JOBQ_TEST_DB_URL");

	return url != NULL && url[0] != '\0' ? url : NULL;
}

/* The lowercase hex of what follows the last '-' of a mkdtemp dir name. */
static void hex_suffix(char *out, size_t n, const char *dir)
{
	const char *x = strrchr(dir, '-');
	size_t len = 0;

	x = x != NULL ? x + 1 : dir;
	out[0] = '\0';
	for (; *x != '\0' && len + 3 <= n; x++, len += 2)
		snprintf(out + len, n - len, "%02x", (unsigned char)*x);
}

/* "at_<suite root>_": the prefix of every schema of this suite run. */
static void schema_prefix(char *out, size_t n)
{
	char hex[16];

	hex_suffix(hex, sizeof hex, suite_root);
	snprintf(out, n, "at_%s_", hex);
}

/* A name within [a-z_][a-z0-9_]{0,62}, unique while the temp dirs are. */
static void schema_for(struct jobqd *d)
{
	char prefix[32], hex[16];

	d->schema[0] = '\0';
	if (harness_db_url() == NULL)
		return;
	schema_prefix(prefix, sizeof prefix);
	hex_suffix(hex, sizeof hex, d->dir);
	snprintf(d->schema, sizeof d->schema, "%s%s", prefix, hex);
}

/* Drops the schemas of this suite run (jobqd is gone by now). Returns the
 * number dropped, -1 if the server could not be asked. */
static int drop_suite_schemas(void)
{
	const char *params[1];
	char prefix[32], sql[160];
	PGconn *c = PQconnectdb(harness_db_url());
	PGresult *r = NULL, *d;
	int i, n = -1;

	schema_prefix(prefix, sizeof prefix);
	params[0] = prefix;
	if (PQstatus(c) != CONNECTION_OK)
		goto out;
	PQclear(PQexec(c, "SET lock_timeout = '10s'; SET client_min_messages = warning"));
	r = PQexecParams(c, "SELECT quote_ident(nspname) FROM pg_namespace "
			 "WHERE left(nspname, length($1)) = $1",
			 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		goto out;
	for (i = 0, n = 0; i < PQntuples(r); i++) {
		snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE",
			 PQgetvalue(r, i, 0));
		d = PQexec(c, sql);
		if (PQresultStatus(d) == PGRES_COMMAND_OK)
			n++;
		else
			fprintf(stderr, "harness: %s: %s", sql, PQerrorMessage(c));
		PQclear(d);
	}
out:
	if (n < 0)
		fprintf(stderr, "harness: could not drop the schemas %s*: %s",
			prefix, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return n;
}

void harness_suite_end(void)
{
	const char *keep = getenv("HARNESS_KEEP");
	int kept = keep != NULL && keep[0] == '1';

	if (kept)
		fprintf(stderr, "harness: kept test dirs in %s\n", suite_root);
	else
		rm_rf(suite_root);
	if (harness_db_url() != NULL && !kept)
		drop_suite_schemas();
	suite_root[0] = '\0';
}

int harness_run(Suite *s)
{
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	harness_suite_begin();
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	harness_suite_end();
	curl_global_cleanup();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

static void bin_path(const char *var, const char *def, char *out)
{
	const char *p = getenv(var);

	if (p == NULL || p[0] == '\0')
		p = def;
	ck_assert_msg(realpath(p, out) != NULL,
		      "jobqd binary '%s' not found (%s); set %s", p,
		      strerror(errno), var);
}

static void jobqd_path(char *out)
{
	bin_path("JOBQD", "build/jobqd", out);
}

/* The child environment: ours minus JOBQ_*, plus extra. Free the array only. */
static char **build_env(const char *const *extra)
{
	size_t n = 0, m = 0, i;
	char **envp;

	while (environ[n] != NULL)
		n++;
	while (extra != NULL && extra[m] != NULL)
		m++;
	envp = calloc(n + m + 1, sizeof *envp);
	if (envp == NULL)
		abort();
	n = 0;
	for (i = 0; environ[i] != NULL; i++)
		if (strncmp(environ[i], "JOBQ_", 5) != 0)
			envp[n++] = environ[i];
	for (i = 0; i < m; i++)
		envp[n++] = (char *)extra[i];
	envp[n] = NULL;
	return envp;
}

/* Forks and execs argv[0]; the child dies with us and writes stdout to
 * outfd, stderr to errfd, reads /dev/null; with nocore it cannot dump core. */
static pid_t spawn(char *const *argv, char *const *envp, const char *cwd,
		   int outfd, int errfd, int nocore)
{
	struct rlimit zero = { 0, 0 };

	pid_t parent = getpid();
	pid_t pid = fork();
	int nul;

	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid > 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	if (cwd != NULL && chdir(cwd) != 0)
		_exit(127);
	if (nocore)
		setrlimit(RLIMIT_CORE, &zero);
	nul = open("/dev/null", O_RDONLY);
	if (nul >= 0)
		dup2(nul, 0);
	dup2(outfd, 1);
	dup2(errfd, 2);
	execve(argv[0], argv, envp);
	dprintf(2, "harness: execve %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* Waits for pid at most bound_ms; returns 1 and sets *status if it exited. */
static int wait_bounded(pid_t pid, double bound_ms, int *status)
{
	double end = now_ms() + bound_ms;
	pid_t r;

	for (;;) {
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 1;
		if (r < 0 && errno != EINTR)
			return 1;
		if (now_ms() > end)
			return 0;
		nap();
	}
}

void harness_check_log(const struct jobqd *d)
{
	char *log = harness_read_file(d->log);
	int i;

	for (i = 0; sanitizer_markers[i] != NULL; i++) {
		if (strstr(log, sanitizer_markers[i]) != NULL) {
			fprintf(stderr, "---- jobqd log %s ----\n%s\n----\n",
				d->log, log);
			ck_abort_msg("sanitizer report (%s) in jobqd log:\n%s",
				     sanitizer_markers[i], log);
		}
	}
	free(log);
}

static void fail_start(struct jobqd *d, const char *why)
{
	char *log = harness_read_file(d->log);

	if (d->pid > 0) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
		live_reaped(d->pid);
		d->pid = -1;
	}
	fprintf(stderr, "---- jobqd log %s ----\n%s\n----\n", d->log, log);
	ck_abort_msg("jobqd did not start: %s; log:\n%s", why, log);
}

/* Parses the port from the listening line once it is complete. */
static int find_port(const char *log)
{
	const char *p = strstr(log, LISTEN_PREFIX);
	const char *eol, *colon = NULL, *q;
	long port;
	char *end;

	if (p == NULL)
		return 0;
	p += strlen(LISTEN_PREFIX);
	eol = strchr(p, '\n');
	if (eol == NULL)
		return 0;
	for (q = p; q < eol; q++)
		if (*q == ':')
			colon = q;
	if (colon == NULL)
		return -1;
	port = strtol(colon + 1, &end, 10);
	if (end == colon + 1 || port <= 0 || port > 65535)
		return -1;
	while (end < eol && (*end == '\r' || *end == ' '))
		end++;
	return end == eol ? (int)port : -1;
}

/* Forks jobqd on d's DB and log. A daemon started by harness_start_bin
 * runs its own binary in its temp dir without core dumps. */
static void launch_spawn(struct jobqd *d, const char *const *extra_args,
			 const char *const *env)
{
	char bin[PATH_MAX];
	const char *argv[64];
	char **envp;
	size_t n = 0, i;
	int fd;

	if (d->bin[0] != '\0')
		snprintf(bin, sizeof bin, "%s", d->bin);
	else
		jobqd_path(bin);
	argv[n++] = bin;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--db";
	if (d->schema[0] != '\0') {
		argv[n++] = harness_db_url();
		argv[n++] = "--db-schema";
		argv[n++] = d->schema;
	} else {
		argv[n++] = d->db;
	}
	argv[n++] = "--log-level";
	argv[n++] = "info";
	for (i = 0; extra_args != NULL && extra_args[i] != NULL; i++) {
		ck_assert_msg(n < 63, "harness: too many arguments");
		argv[n++] = extra_args[i];
	}
	argv[n] = NULL;

	fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
	ck_assert_msg(fd >= 0, "open %s: %s", d->log, strerror(errno));
	envp = build_env(env);
	d->pid = spawn((char *const *)argv, envp,
		       d->bin[0] != '\0' ? d->dir : NULL, fd, fd,
		       d->bin[0] != '\0');
	free(envp);
	close(fd);
	live_add(d->pid, d->dir);
}

/* Waits for the listening line and a 200 from /healthz. */
static void launch_ready(struct jobqd *d)
{
	int port = 0, status;
	double end;
	struct resp r;
	char why[256];

	end = now_ms() + START_BOUND_MS;
	while (port == 0) {
		char *log = harness_read_file(d->log);

		port = find_port(log);
		free(log);
		if (port < 0)
			fail_start(d, "unparsable listening line");
		if (port > 0)
			break;
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			live_reaped(d->pid);
			d->pid = -1;
			snprintf(why, sizeof why, "exited early (wait status %d)",
				 status);
			fail_start(d, why);
		}
		if (now_ms() > end)
			fail_start(d, "no '" LISTEN_PREFIX "HOST:PORT' line within 10 s");
		nap();
	}
	d->port = port;
	snprintf(d->base, sizeof d->base, "http://127.0.0.1:%d", port);

	for (;;) {
		harness_request(d, "GET", "/healthz", NULL, NULL, NULL, &r);
		status = (int)r.status;
		harness_resp_free(&r);
		if (status == 200)
			break;
		if (now_ms() > end)
			fail_start(d, "GET /healthz did not answer 200 within 10 s");
		nap();
	}
}

static void launch(struct jobqd *d, const char *const *extra_args,
		   const char *const *env)
{
	launch_spawn(d, extra_args, env);
	launch_ready(d);
}

/* The env kept by harness_start_bin as a NULL-terminated array (max 15). */
static void stored_env(const struct jobqd *d, const char **out, size_t max)
{
	const char *p = d->envbuf;
	size_t n = 0;

	while (*p != '\0' && n + 1 < max) {
		out[n++] = p;
		p += strlen(p) + 1;
	}
	out[n] = NULL;
}

void harness_start_env(struct jobqd *d, const char *const *extra_args,
		       const char *const *env)
{
	memset(d, 0, sizeof *d);
	d->pid = -1;
	make_tmpdir(d->dir, sizeof d->dir);
	live_add(-1, d->dir);
	snprintf(d->db, sizeof d->db, "%s/jobq.db", d->dir);
	snprintf(d->log, sizeof d->log, "%s/stderr.log", d->dir);
	schema_for(d);
	launch(d, extra_args, env);
}

void harness_start(struct jobqd *d, const char *const *extra_args)
{
	harness_start_env(d, extra_args, NULL);
}

void harness_restart(struct jobqd *d, const char *const *extra_args)
{
	const char *env[16];

	ck_assert_msg(d->pid < 0 && d->dir[0] != '\0',
		      "harness_restart needs a stopped jobqd with its temp dir");
	harness_check_log(d);
	stored_env(d, env, 16);
	launch(d, extra_args, env[0] != NULL ? env : NULL);
}

void harness_start_bin(struct jobqd *d, const char *bin_var,
		       const char *bin_default, const char *const *extra_args,
		       const char *const *env)
{
	harness_start_bin_schema(d, NULL, bin_var, bin_default, extra_args, env);
}

void harness_start_bin_schema(struct jobqd *d, const char *schema,
			      const char *bin_var, const char *bin_default,
			      const char *const *extra_args,
			      const char *const *env)
{
	size_t len = 0, k, i;

	memset(d, 0, sizeof *d);
	d->pid = -1;
	bin_path(bin_var, bin_default, d->bin);
	for (i = 0; env != NULL && env[i] != NULL; i++) {
		k = strlen(env[i]) + 1;
		ck_assert_msg(i < 15 && len + k + 1 < sizeof d->envbuf,
			      "harness: environment too large");
		memcpy(d->envbuf + len, env[i], k);
		len += k;
	}
	d->envbuf[len] = '\0';
	make_tmpdir(d->dir, sizeof d->dir);
	live_add(-1, d->dir);
	snprintf(d->db, sizeof d->db, "%s/jobq.db", d->dir);
	snprintf(d->log, sizeof d->log, "%s/stderr.log", d->dir);
	schema_for(d);
	if (schema != NULL && d->schema[0] != '\0')
		snprintf(d->schema, sizeof d->schema, "%s", schema);
	launch(d, extra_args, env);
}

void harness_make_dir(char *out, size_t n)
{
	make_tmpdir(out, n);
}

void harness_respawn(struct jobqd *d, const char *const *extra_args)
{
	const char *env[16];

	ck_assert_msg(d->pid < 0 && d->dir[0] != '\0',
		      "harness_respawn needs a stopped jobqd with its temp dir");
	harness_check_log(d);
	stored_env(d, env, 16);
	d->port = 0;
	d->base[0] = '\0';
	launch_spawn(d, extra_args, env[0] != NULL ? env : NULL);
}

void harness_wait_ready(struct jobqd *d)
{
	ck_assert_msg(d->pid > 0, "harness_wait_ready: jobqd is not running");
	launch_ready(d);
}

void harness_sigterm(const struct jobqd *d)
{
	if (d->pid > 0)
		kill(d->pid, SIGTERM);
}

int harness_wait_exit(struct jobqd *d, double bound_ms, int *status)
{
	if (d->pid <= 0)
		return 0;
	if (!wait_bounded(d->pid, bound_ms, status))
		return 0;
	live_reaped(d->pid);
	d->pid = -1;
	harness_check_log(d);
	return 1;
}

/* The last 4 KiB of jobqd's log on stderr, after it died of signal sig. */
static void show_log_tail(const struct jobqd *d, int sig)
{
	char *log = harness_read_file(d->log);
	size_t len = strlen(log);
	const char *tail = len > 4096 ? log + len - 4096 : log;

	fprintf(stderr, "---- jobqd %s died of signal %d on SIGTERM; its log ends ----\n%s\n----\n",
		d->log, sig, tail);
	free(log);
}

int harness_stop_keep(struct jobqd *d)
{
	int status = -1;

	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	if (!wait_bounded(d->pid, STOP_BOUND_MS, &status)) {
		fprintf(stderr, "harness: jobqd %d ignored SIGTERM for 10 s; "
			"killing it\n", (int)d->pid);
		kill(d->pid, SIGKILL);
		waitpid(d->pid, &status, 0);
	}
	live_reaped(d->pid);
	d->pid = -1;
	harness_check_log(d);
	/* A jobqd killed by a signal on SIGTERM (an abort, a crash) says why
	 * only in its log: show the end of it, whatever the caller asserts. */
	if (WIFSIGNALED(status))
		show_log_tail(d, WTERMSIG(status));
	return status;
}

void harness_cleanup(struct jobqd *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
		live_reaped(d->pid);
		d->pid = -1;
	}
	rm_rf(d->dir);
	live_dir_removed(d->dir);
	d->dir[0] = '\0';
}

int harness_stop(struct jobqd *d)
{
	int status = harness_stop_keep(d);

	harness_cleanup(d);
	return status;
}

void harness_kill9(struct jobqd *d)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
	live_reaped(d->pid);
	d->pid = -1;
	harness_check_log(d);
}

void harness_run_cli(const char *const *args, const char *const *env,
		     struct cli_result *res)
{
	char dir[HARNESS_PATH_MAX / 2], outp[HARNESS_PATH_MAX + 16],
		errp[HARNESS_PATH_MAX + 16], bin[PATH_MAX];
	const char *argv[64];
	char **envp;
	size_t n = 0, i;
	int ofd, efd, status = 0;
	pid_t pid;

	memset(res, 0, sizeof *res);
	jobqd_path(bin);
	make_tmpdir(dir, sizeof dir);
	live_add(-1, dir);
	snprintf(outp, sizeof outp, "%s/stdout.log", dir);
	snprintf(errp, sizeof errp, "%s/stderr.log", dir);
	argv[n++] = bin;
	for (i = 0; args != NULL && args[i] != NULL; i++) {
		ck_assert_msg(n < 63, "harness: too many arguments");
		argv[n++] = args[i];
	}
	argv[n] = NULL;

	ofd = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	efd = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert_msg(ofd >= 0 && efd >= 0, "open log: %s", strerror(errno));
	envp = build_env(env);
	pid = spawn((char *const *)argv, envp, dir, ofd, efd, 0);
	free(envp);
	close(ofd);
	close(efd);
	live_add(pid, dir);
	if (!wait_bounded(pid, CLI_BOUND_MS, &status)) {
		res->timed_out = 1;
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	live_reaped(pid);
	res->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	res->out = harness_read_file(outp);
	res->err = harness_read_file(errp);
	rm_rf(dir);
	live_dir_removed(dir);
	for (i = 0; sanitizer_markers[i] != NULL; i++)
		ck_assert_msg(strstr(res->err, sanitizer_markers[i]) == NULL,
			      "sanitizer report in jobqd stderr:\n%s", res->err);
}

void harness_cli_result_free(struct cli_result *res)
{
	free(res->out);
	free(res->err);
	res->out = NULL;
	res->err = NULL;
}

/* ---- HTTP ---- */

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (b->p == NULL)
			abort();
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	buf_add(ud, data, size * nmemb);
	return size * nmemb;
}

/* Keeps only the last header block (a 100 Continue block comes first). */
static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	struct buf *b = ud;
	size_t n = size * nmemb;

	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
		b->len = 0;
	buf_add(b, data, n);
	return n;
}

struct src {
	const char *p;
	size_t left;
};

/* Feeds at most 512 bytes per call so a chunked body has several chunks. */
static size_t on_read(char *dst, size_t size, size_t nitems, void *ud)
{
	struct src *s = ud;
	size_t n = size * nitems;

	if (n > 512)
		n = 512;
	if (n > s->left)
		n = s->left;
	memcpy(dst, s->p, n);
	s->p += n;
	s->left -= n;
	return n;
}

void harness_request_raw(const struct jobqd *d, const char *method,
			 const char *path, const char *const *headers,
			 const void *body, size_t len, int chunked,
			 struct resp *out)
{
	CURL *c;
	CURLcode rc;
	struct curl_slist *hl = NULL;
	struct buf hb = { NULL, 0, 0 }, bb = { NULL, 0, 0 };
	struct src s = { body, body != NULL ? len : 0 };
	char url[1024];
	char errbuf[CURL_ERROR_SIZE] = "";
	double t0;
	size_t i;

	memset(out, 0, sizeof *out);
	snprintf(url, sizeof url, "%s%s", d->base, path);
	c = curl_easy_init();
	if (c == NULL)
		abort();
	hl = curl_slist_append(hl, "Expect:");
	for (i = 0; headers != NULL && headers[i] != NULL; i++)
		hl = curl_slist_append(hl, headers[i]);
	if (chunked)
		hl = curl_slist_append(hl, "Transfer-Encoding: chunked");

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, HTTP_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &bb);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);

	if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "POST") == 0 || body != NULL || chunked) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		if (chunked) {
			curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
			curl_easy_setopt(c, CURLOPT_READDATA, &s);
		} else {
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)s.left);
			curl_easy_setopt(c, CURLOPT_POSTFIELDS,
					 body != NULL ? body : "");
		}
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	}

	t0 = now_ms();
	rc = curl_easy_perform(c);
	out->ms = now_ms() - t0;
	if (rc == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	} else {
		out->status = 0;
		snprintf(out->error, sizeof out->error, "%s %.200s: %.100s (%.150s)",
			 method, path, curl_easy_strerror(rc), errbuf);
	}
	curl_easy_cleanup(c);
	curl_slist_free_all(hl);

	buf_add(&hb, "", 0);
	buf_add(&bb, "", 0);
	out->headers = hb.p;
	out->body = bb.p;
	out->body_len = bb.len;
	if (out->body_len > 0)
		out->json = cJSON_ParseWithOpts(out->body, NULL, 1);
}

void harness_request(const struct jobqd *d, const char *method, const char *path,
		     const char *content_type, const char *body,
		     const char *extra_header, struct resp *out)
{
	char ct[256];
	const char *headers[3];
	size_t n = 0;

	if (content_type != NULL)
		snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
	else
		snprintf(ct, sizeof ct, "Content-Type:");
	headers[n++] = ct;
	if (extra_header != NULL)
		headers[n++] = extra_header;
	headers[n] = NULL;
	harness_request_raw(d, method, path, headers, body,
			    body != NULL ? strlen(body) : 0, 0, out);
}

void harness_resp_free(struct resp *r)
{
	free(r->headers);
	free(r->body);
	cJSON_Delete(r->json);
	r->headers = NULL;
	r->body = NULL;
	r->json = NULL;
}

int harness_header(const struct resp *r, const char *name, char *out, size_t n)
{
	const char *line = r->headers;
	size_t nl = strlen(name);

	if (n > 0)
		out[0] = '\0';
	while (line != NULL && *line != '\0') {
		const char *eol = strchr(line, '\n');
		const char *v, *e;

		if (eol == NULL)
			eol = line + strlen(line);
		if ((size_t)(eol - line) > nl && line[nl] == ':' &&
		    strncasecmp(line, name, nl) == 0) {
			v = line + nl + 1;
			e = eol;
			while (v < e && (*v == ' ' || *v == '\t'))
				v++;
			while (e > v && (e[-1] == '\r' || e[-1] == ' ' ||
					 e[-1] == '\t'))
				e--;
			snprintf(out, n, "%.*s", (int)(e - v), v);
			return 1;
		}
		line = *eol ? eol + 1 : eol;
	}
	return 0;
}

__attribute__((format(printf, 3, 4)))
static void why_add(char *why, size_t n, const char *fmt, ...)
{
	size_t len = strlen(why);
	va_list ap;

	if (len + 1 >= n)
		return;
	va_start(ap, fmt);
	vsnprintf(why + len, n - len, fmt, ap);
	va_end(ap);
}

int harness_problem_mismatch(const struct resp *r, long status, const char *code,
			     const char *field, char *why, size_t n)
{
	char ct[256], want_type[128];
	const cJSON *j = r->json, *v;
	size_t plen = strlen("application/problem+json");

	why[0] = '\0';
	if (r->status == 0) {
		why_add(why, n, "transfer failed: %s; ", r->error);
		return 1;
	}
	if (r->status != status)
		why_add(why, n, "status %ld, want %ld; ", r->status, status);
	if (!harness_header(r, "Content-Type", ct, sizeof ct))
		why_add(why, n, "no Content-Type; ");
	else if (strncmp(ct, "application/problem+json", plen) != 0 ||
		 (ct[plen] != '\0' && ct[plen] != ';'))
		why_add(why, n, "Content-Type '%s', want application/problem+json; ",
			ct);
	if (!cJSON_IsObject(j)) {
		why_add(why, n, "body is not a JSON object; ");
	} else {
		v = cJSON_GetObjectItemCaseSensitive(j, "status");
		if (!cJSON_IsNumber(v) || v->valuedouble != (double)status)
			why_add(why, n, "body status not %ld; ", status);
		v = cJSON_GetObjectItemCaseSensitive(j, "code");
		if (!cJSON_IsString(v) || strcmp(v->valuestring, code) != 0)
			why_add(why, n, "code not \"%s\"; ", code);
		v = cJSON_GetObjectItemCaseSensitive(j, "title");
		if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
			why_add(why, n, "title missing; ");
		snprintf(want_type, sizeof want_type, "urn:jobq:problem:%s", code);
		v = cJSON_GetObjectItemCaseSensitive(j, "type");
		if (!cJSON_IsString(v) || strcmp(v->valuestring, want_type) != 0)
			why_add(why, n, "type not \"%s\"; ", want_type);
		v = cJSON_GetObjectItemCaseSensitive(j, "field");
		if (field == NULL && v != NULL)
			why_add(why, n, "field present, want it omitted; ");
		if (field != NULL &&
		    (!cJSON_IsString(v) || strcmp(v->valuestring, field) != 0))
			why_add(why, n, "field not \"%s\"; ", field);
	}
	if (why[0] == '\0')
		return 0;
	why_add(why, n, "body: %.600s", r->body != NULL ? r->body : "");
	return 1;
}

/* ---- small helpers shared by the api_* suites (see harness.h) ---- */

const cJSON *jget(const cJSON *o, const char *k)
{
	return cJSON_GetObjectItemCaseSensitive(o, k);
}

const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = jget(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *jstr_or(const cJSON *o, const char *k)
{
	const char *s = jstr(o, k);

	return s != NULL ? s : "(not a string)";
}

int jnull(const cJSON *o, const char *k)
{
	return cJSON_IsNull(jget(o, k));
}

int jint(const cJSON *o, const char *k, long *out)
{
	const cJSON *v = jget(o, k);

	if (!cJSON_IsNumber(v) || v->valuedouble != (double)(long)v->valuedouble)
		return 0;
	*out = (long)v->valuedouble;
	return 1;
}

long jlong(const cJSON *o, const char *k)
{
	long n;

	return jint(o, k, &n) ? n : -999999;
}

int str_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

int is_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

int is_rfc3339_ms(const char *s)
{
	return s != NULL && strlen(s) == 24 && is_digits(s, 4) && s[4] == '-' &&
	       is_digits(s + 5, 2) && s[7] == '-' && is_digits(s + 8, 2) &&
	       s[10] == 'T' && is_digits(s + 11, 2) && s[13] == ':' &&
	       is_digits(s + 14, 2) && s[16] == ':' && is_digits(s + 17, 2) &&
	       s[19] == '.' && is_digits(s + 20, 3) && s[23] == 'Z';
}

long long ts_ms_lax(const char *s)
{
	struct tm tm;
	int ms = 0;

	memset(&tm, 0, sizeof tm);
	if (s == NULL ||
	    sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
		   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (long long)timegm(&tm) * 1000 + ms;
}

long long ts_ms(const char *s)
{
	return is_rfc3339_ms(s) ? ts_ms_lax(s) : -1;
}

long long jts(const cJSON *o, const char *k)
{
	return ts_ms(jstr(o, k));
}

int is_uuidv7(const char *s)
{
	size_t i;

	if (s == NULL || strlen(s) != 36)
		return 0;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!((s[i] >= '0' && s[i] <= '9') ||
			     (s[i] >= 'a' && s[i] <= 'f'))) {
			return 0;
		}
	}
	return s[14] == '7' && strchr("89ab", s[19]) != NULL;
}

int in_list(const char *s, const char *const *set)
{
	size_t i;

	for (i = 0; s != NULL && set[i] != NULL; i++)
		if (strcmp(s, set[i]) == 0)
			return 1;
	return 0;
}

int is_terminal(const char *s)
{
	return str_eq(s, "succeeded") || str_eq(s, "failed") ||
	       str_eq(s, "canceled");
}

void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

cJSON *take_json(struct resp *r)
{
	cJSON *j = r->json;

	r->json = NULL;
	return j;
}

int json_equal_text(const cJSON *a, const char *text)
{
	cJSON *b = cJSON_Parse(text);
	int eq = b != NULL && a != NULL && cJSON_Compare(a, b, 1);

	cJSON_Delete(b);
	return eq;
}

void job_action(const struct jobqd *d, const char *id, const char *action,
		struct resp *r)
{
	char path[256];

	snprintf(path, sizeof path, "/v1/jobs/%s/%s", id, action);
	harness_request(d, "POST", path, NULL, NULL, NULL, r);
}

void expand_id(char *out, size_t n, const char *path, const char *id)
{
	const char *p = strstr(path, "{id}");

	if (p == NULL)
		snprintf(out, n, "%s", path);
	else
		snprintf(out, n, "%.*s%s%s", (int)(p - path), path, id, p + 4);
}

const cJSON *history_at(const cJSON *j, int i)
{
	return cJSON_GetArrayItem(jget(j, "attempt_history"), i);
}

TCase *harness_tcase(Suite *s, const char *name, int timeout_s)
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, timeout_s);
	suite_add_tcase(s, tc);
	return tc;
}

cJSON *harness_wait_terminal(const struct jobqd *d, const char *id, harness_get_fn get)
{
	return harness_wait_terminal_for(d, id, get, 30000.0);
}

cJSON *harness_wait_terminal_for(const struct jobqd *d, const char *id, harness_get_fn get,
				 double bound_ms)
{
	double end = mono_ms() + bound_ms;
	cJSON *j;

	if (get == NULL)
		get = harness_get_job;
	for (;;) {
		j = get(d, id, "wait=5");
		if (is_terminal(jstr(j, "state")))
			return j;
		ck_assert_msg(mono_ms() < end, "job %s not terminal after %.0f ms: %s",
			      id, bound_ms, jstr_or(j, "state"));
		cJSON_Delete(j);
	}
}

cJSON *harness_wait_state(const struct jobqd *d, const char *id, const char *state,
			  harness_get_fn get)
{
	double end = mono_ms() + 10000.0;
	cJSON *j;

	if (get == NULL)
		get = harness_get_job;
	for (;;) {
		j = get(d, id, NULL);
		if (str_eq(jstr(j, "state"), state))
			return j;
		ck_assert_msg(!is_terminal(jstr(j, "state")) && mono_ms() < end,
			      "job %s never reached %s (now %s, error %s)", id,
			      state, jstr_or(j, "state"), jstr_or(j, "error"));
		cJSON_Delete(j);
		nap_ms(10);
	}
}

/* ---- the API helpers every suite uses ---- */

static harness_job_check_fn job_check;

void harness_set_job_check(harness_job_check_fn fn)
{
	job_check = fn;
}

/* Runs the suite's job check, if any, on j. */
static void run_job_check(const cJSON *j, int from_get)
{
	char *text;

	if (job_check == NULL)
		return;
	text = harness_json_text(j);
	job_check(j, text, from_get);
	free(text);
}

cJSON *harness_call(const struct jobqd *d, const char *method, const char *path,
		    const char *body, const char *extra_header, long want)
{
	struct resp r;
	cJSON *j;

	harness_request(d, method, path, body ? "application/json" : NULL, body,
			extra_header, &r);
	ck_assert_msg(r.status == want,
		      "%s %s on %s: status %ld (want %ld) %s; body: %.800s", method,
		      path, d->base, r.status, want, r.error, r.body);
	j = take_json(&r);
	harness_resp_free(&r);
	ck_assert_msg(j != NULL || want == 204, "%s %s: body is not JSON", method, path);
	return j;
}

cJSON *harness_submit_json(const struct jobqd *d, const char *body,
			   const char *extra_header)
{
	char loc[256] = "", want[256];
	struct resp r;
	cJSON *j;

	harness_request(d, "POST", "/v1/jobs", "application/json", body, extra_header, &r);
	ck_assert_msg(r.status == 201, "submit %.300s: status %ld %s; body: %.800s",
		      body, r.status, r.error, r.body);
	ck_assert_msg(cJSON_IsObject(r.json) && jstr(r.json, "id") != NULL,
		      "submit %.300s: no id in %.800s", body, r.body);
	snprintf(want, sizeof want, "/v1/jobs/%s", jstr(r.json, "id"));
	ck_assert_msg(harness_header(&r, "Location", loc, sizeof loc) &&
		      strcmp(loc, want) == 0, "Location '%s', want '%s'", loc, want);
	j = take_json(&r);
	harness_resp_free(&r);
	run_job_check(j, 0);
	return j;
}

char *harness_submit(const struct jobqd *d, const char *body)
{
	cJSON *j = harness_submit_json(d, body, NULL);
	char *id = strdup(jstr(j, "id"));

	ck_assert(id != NULL);
	cJSON_Delete(j);
	return id;
}

char *harness_submit_state(const struct jobqd *d, const char *body, const char *state)
{
	cJSON *j = harness_submit_json(d, body, NULL);
	char *id = strdup(jstr(j, "id"));

	ck_assert(id != NULL);
	ck_assert_msg(str_eq(jstr(j, "state"), state), "submit %.300s: state %s, want %s",
		      body, jstr_or(j, "state"), state);
	cJSON_Delete(j);
	return id;
}

cJSON *harness_queue_action(const struct jobqd *d, const char *queue, const char *action)
{
	char path[256];

	snprintf(path, sizeof path, "/v1/queues/%s/%s", queue, action);
	return harness_call(d, "POST", path, NULL, NULL, 200);
}

cJSON *harness_get_job(const struct jobqd *d, const char *id, const char *query)
{
	char path[256];
	struct resp r;
	cJSON *j;

	snprintf(path, sizeof path, "/v1/jobs/%s%s%s", id, query ? "?" : "",
		 query ? query : "");
	harness_request(d, "GET", path, NULL, NULL, NULL, &r);
	ck_assert_msg(r.status == 200 && cJSON_IsObject(r.json),
		      "GET %s: status %ld (want 200) %s; body: %.800s", path,
		      r.status, r.error, r.body);
	ck_assert_msg(str_eq(jstr(r.json, "id"), id), "GET %s answered %.800s", path,
		      r.body);
	j = take_json(&r);
	harness_resp_free(&r);
	run_job_check(j, 1);
	return j;
}

char *harness_json_text(const cJSON *j)
{
	char *s = j != NULL ? cJSON_PrintUnformatted(j) : NULL;

	return s != NULL ? s : strdup("(null)");
}

/* Appends "; "-separated text to why (n bytes). */
__attribute__((format(printf, 3, 4)))
static void why_more(char *why, size_t n, const char *fmt, ...)
{
	size_t len = strlen(why);
	va_list ap;

	if (len + 2 >= n)
		return;
	if (len > 0) {
		memcpy(why + len, "; ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(why + len, n - len, fmt, ap);
	va_end(ap);
}

int harness_bad_case_run(const struct jobqd *d, const struct harness_bad_case *c,
			 const char *id, char *report, size_t cap)
{
	char path[256], why[2048] = "", allow[128] = "";
	const char *ctype = c->ctype;
	struct resp r;
	int bad = 0;
	size_t len;

	if (ctype == NULL)
		ctype = c->body != NULL ? "application/json" : NULL;
	else if (ctype[0] == '\0')
		ctype = NULL;
	expand_id(path, sizeof path, c->path, id);
	harness_request(d, c->method, path, ctype, c->body, NULL, &r);
	if (strcmp(c->method, "HEAD") == 0) {
		/* no body in a HEAD reply: status and Allow only */
		if (r.status != c->status) {
			why_more(why, sizeof why, "status %ld, want %ld %s", r.status,
				c->status, r.error);
			bad = 1;
		}
	} else {
		bad = harness_problem_mismatch(&r, c->status, c->code, c->field, why,
					       sizeof why);
	}
	if (c->allow != NULL && (!harness_header(&r, "Allow", allow, sizeof allow) ||
				 strcmp(allow, c->allow) != 0)) {
		why_more(why, sizeof why, "Allow '%s', want '%s'", allow, c->allow);
		bad = 1;
	}
	if (r.status >= 500 || r.status == 0) {
		why_more(why, sizeof why, "[5xx or no answer]");
		bad = 1;
	}
	if (bad) {
		len = strlen(report);
		snprintf(report + len, cap - len, "  %s %s [ct %s] body %.90s: %s\n",
			 c->method, path, ctype ? ctype : "-", c->body ? c->body : "-", why);
	}
	harness_resp_free(&r);
	return bad;
}

void harness_bad_cases(const struct jobqd *d, const struct harness_bad_case *cases,
		       size_t n, const char *id)
{
	size_t cap = 256 * 1024, i;
	char *report = calloc(1, cap);
	int nbad = 0;

	ck_assert(report != NULL);
	for (i = 0; i < n; i++)
		nbad += harness_bad_case_run(d, &cases[i], id, report, cap);
	if (nbad > 0)
		fprintf(stderr, "bad-input mismatches (%d of %zu):\n%s", nbad, n, report);
	ck_assert_msg(nbad == 0, "%d of %zu bad-input cases mismatched:\n%s", nbad, n,
		      report);
	free(report);
}

/* The value of the sample series in a Prometheus text body, or -1 with
 * *found 0 when it is not there. */
static double metric_value(const char *body, const char *series, int *found)
{
	size_t n = strlen(series);
	const char *p = body;

	*found = 0;
	while (p != NULL && *p != '\0') {
		if (strncmp(p, series, n) == 0 && p[n] == ' ') {
			*found = 1;
			return strtod(p + n + 1, NULL);
		}
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return -1;
}

double harness_metric(const struct jobqd *d, const char *series)
{
	struct resp r;
	double v;
	int found;

	harness_request(d, "GET", "/metrics", NULL, NULL, NULL, &r);
	ck_assert_msg(r.status == 200, "GET /metrics: %ld %s", r.status, r.error);
	v = metric_value(r.body, series, &found);
	harness_resp_free(&r);
	return found ? v : -1;
}

double harness_wait_metric(const struct jobqd *d, const char *series, double min,
			   double bound_ms)
{
	double end = mono_ms() + bound_ms, v;
	struct resp r;
	int found;

	for (;;) {
		harness_request(d, "GET", "/metrics", NULL, NULL, NULL, &r);
		ck_assert_msg(r.status == 200, "GET /metrics: %ld %s", r.status, r.error);
		v = metric_value(r.body, series, &found);
		harness_resp_free(&r);
		if (found && v >= min)
			return v;
		ck_assert_msg(mono_ms() < end, "%s is %s%g after %.0f ms, want at least %g",
			      series, found ? "" : "absent, ", v, bound_ms, min);
		nap_ms(10);
	}
}
