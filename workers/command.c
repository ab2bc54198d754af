/* Command job kinds: a job of type NAME runs the executable registered for
 * it, on the worker thread, without a shell.
 *
 * The child: posix_spawn of PATH (argv = {PATH}) in its own process group,
 * signal mask empty and every signal at its default action (jobqd blocks
 * SIGTERM and ignores SIGPIPE; neither may leak into the command). fd 0 is
 * a pipe carrying the payload as compact JSON ("null" when absent) plus a
 * newline, then EOF; fd 1 and 2 are pipes; fd 3 is the write end of the
 * progress pipe (JOBQ_PROGRESS_FD=3); every other fd is closed. The
 * environment is jobqd's plus JOBQ_JOB_ID and JOBQ_ATTEMPT.
 *
 * The outcome:
 *   exit 0      -> succeeded; result = stdout as JSON when it is exactly one
 *                  JSON value (white space around allowed), else stdout as a
 *                  JSON string (invalid UTF-8 replaced by U+FFFD).
 *   stdout over max_output -> the group is stopped like on cancel; failed,
 *                  not retryable: "output larger than N bytes".
 *   exit N != 0 -> failed, retryable: "exit status N: <stderr tail>".
 *   signal N    -> failed, retryable: "killed by signal N (SIGX): <tail>".
 *   stop (cancel, shutdown, timeout) -> SIGTERM to the group, SIGKILL after
 *                  grace_s; RUN_STOPPED (the pool tells the three apart).
 *
 * DESIGN. Reaping follows design-research §6: a pidfd says when the leader
 * exits; waitid(WNOWAIT) confirms it without reaping, so the zombie leader
 * still pins the process group while kill(-pgid, SIGKILL) removes any
 * straggler; only then waitpid(pid). Nothing else in jobqd waits for
 * children (never waitpid(-1), never SIGCHLD = SIG_IGN), so the pid is ours
 * until we reap it. Every pipe is created O_CLOEXEC: a command spawned by
 * another worker at the same moment inherits none of them, so EOF arrives.
 * A stop request wakes the poll at once through an eventfd written by the
 * run's stop hook. A process that leaves the group (setsid, setpgid) is out
 * of reach; if it keeps the output pipes open the drain gives up after
 * DRAIN_MS. */
#include "workers/command.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/job.h"
#include "core/kind.h"
#include "core/log.h"
#include "core/run.h"
#include "core/text.h"

extern char **environ;

#define CHILD_PROGRESS_FD 3   /* the progress pipe's number in the child */
#define CHILD_FD_FLOOR 4      /* parent-side fds handed to dup2 sit at or above */
#define STDERR_TAIL 2000      /* bytes of stderr kept for the error */
#define PROGRESS_LINE_MAX 1024 /* longer progress lines are ignored */
#define READ_CHUNK 65536
#define POLL_CAP_MS 1000      /* re-check the run at least this often */
#define NO_PIDFD_POLL_MS 20   /* without a pidfd, look for the exit this often */
#define DRAIN_MS 2000         /* after the exit, wait this long for pipe EOF */
#define GRACE_MAX_S 86400.0

struct command {
	struct job_kind kind;  /* first: the kind pointer leads back here */
	char *name;
	char *path;            /* kind.arg */
	int64_t grace_ms;
	size_t max_output;
};

/* One running child and the parent's ends of its pipes (-1 when closed). */
struct child {
	pid_t pid;
	int pidfd;             /* -1: no pidfd, poll waitid instead */
	int in_w, out_r, err_r, prog_r;
	const char *in;        /* stdin bytes still to write: in[in_off..in_len) */
	size_t in_len, in_off;
	char *out;             /* stdout, at most max_output bytes kept */
	size_t out_len, out_cap;
	bool overflow;         /* stdout went past max_output */
	char err[2 * STDERR_TAIL]; /* stderr; the last STDERR_TAIL bytes matter */
	size_t err_len;
	char line[PROGRESS_LINE_MAX + 1];
	size_t line_len;
	bool line_skip;        /* the current progress line is too long */
	int status;            /* waitpid status, once reaped */
};

/* ---- text helpers ---- */

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* A NUL-terminated copy of s[0..n) that is valid UTF-8 with no NUL byte
 * (bad bytes and NUL become U+FFFD), cut at a character boundary to at
 * most cap bytes. NULL when out of memory. */
static char *utf8_clean(const char *s, size_t n, size_t cap)
{
	static const char repl[] = "\xef\xbf\xbd";
	size_t room = n <= (SIZE_MAX - 1) / 3 ? 3 * n : SIZE_MAX - 1;
	if (room > cap)
		room = cap;
	char *out = malloc(room + 1);
	if (!out)
		return NULL;
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	size_t len = 0;
	while (p < end) {
		size_t k = *p ? utf8_seq_len((const char *)p, (size_t)(end - p)) : 0;
		const char *src = k ? (const char *)p : repl;
		size_t srclen = k ? k : 3;
		if (len + srclen > room)
			break;
		memcpy(out + len, src, srclen);
		len += srclen;
		p += k ? k : 1;
	}
	out[len] = '\0';
	return out;
}

/* The stderr tail for an error message: the last STDERR_TAIL bytes, not
 * starting inside a character, trailing white space dropped. */
static char *stderr_tail(const struct child *c)
{
	const char *s = c->err;
	size_t n = c->err_len;
	if (n > STDERR_TAIL) {
		s += n - STDERR_TAIL;
		n = STDERR_TAIL;
	}
	for (int i = 0; i < 3 && n > 0 && ((unsigned char)*s & 0xc0) == 0x80; i++)
		s++, n--;
	while (n > 0 && is_space(s[n - 1]))
		n--;
	return utf8_clean(s, n, SIZE_MAX - 1);
}

/* "<head>: <stderr tail>", or just head when stderr was empty. */
static char *failure_message(const struct child *c, const char *head)
{
	char *tail = stderr_tail(c);
	char *msg = NULL;
	if (tail && tail[0]) {
		if (asprintf(&msg, "%s: %s", head, tail) < 0)
			msg = NULL;
	} else {
		msg = strdup(head);
	}
	free(tail);
	return msg;
}

/* ---- progress ---- */

/* "progress <percent> [message]": anything else is ignored. */
static void progress_line(struct run *run, char *line, size_t len)
{
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	line[len] = '\0';
	static const char prefix[] = "progress ";
	if (strncmp(line, prefix, sizeof prefix - 1) != 0)
		return;
	char *num = line + sizeof prefix - 1;
	while (*num == ' ')
		num++;
	size_t numlen = strspn(num, "0123456789.+-eE");
	if (numlen == 0 || (num[numlen] && num[numlen] != ' ' && num[numlen] != '\t'))
		return;
	char *end = NULL;
	double percent = strtod(num, &end);
	if (end != num + numlen || !isfinite(percent))
		return;
	while (*end == ' ' || *end == '\t')
		end++;
	char *msg = utf8_clean(end, strlen(end), JOB_PROGRESS_MSG_MAX);
	if (msg)
		run_progress(run, percent, msg);
	free(msg);
}

static void progress_bytes(struct run *run, struct child *c, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (buf[i] == '\n') {
			if (!c->line_skip)
				progress_line(run, c->line, c->line_len);
			c->line_len = 0;
			c->line_skip = false;
		} else if (c->line_len < PROGRESS_LINE_MAX) {
			c->line[c->line_len++] = buf[i];
		} else {
			c->line_skip = true;
		}
	}
}

/* ---- pipes ---- */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* A pipe, both ends close-on-exec; the end the child gets (child_end 0 or 1)
 * is moved to CHILD_FD_FLOOR or above so no dup2 onto 0..3 clobbers it. */
static int make_pipe(int fds[2], int child_end)
{
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	if (fds[child_end] < CHILD_FD_FLOOR) {
		int moved = fcntl(fds[child_end], F_DUPFD_CLOEXEC, CHILD_FD_FLOOR);
		if (moved < 0) {
			close(fds[0]);
			close(fds[1]);
			fds[0] = fds[1] = -1;
			return -1;
		}
		close(fds[child_end]);
		fds[child_end] = moved;
	}
	int parent = fds[1 - child_end];
	int fl = fcntl(parent, F_GETFL);
	if (fl < 0 || fcntl(parent, F_SETFL, fl | O_NONBLOCK) != 0) {
		close(fds[0]);
		close(fds[1]);
		fds[0] = fds[1] = -1;
		return -1;
	}
	return 0;
}

/* Reads what fd has now (up to a few chunks) into the child's buffers;
 * closes *fd at EOF or on an error. which: 1 stdout, 2 stderr, 3 progress. */
static void drain_fd(const struct command *cmd, struct run *run, struct child *c, int *fd, int which)
{
	char buf[READ_CHUNK];
	for (int rounds = 0; rounds < 16 && *fd >= 0; rounds++) {
		ssize_t n = read(*fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			if (which == 3 && c->line_len > 0 && !c->line_skip)
				progress_line(run, c->line, c->line_len);
			c->line_len = 0;
			close_fd(fd);
			return;
		}
		size_t len = (size_t)n;
		if (which == 1) {
			size_t keep = cmd->max_output - c->out_len;
			if (len > keep)
				c->overflow = true;
			else
				keep = len;
			if (keep > 0 && c->out_len + keep > c->out_cap) {
				size_t cap = c->out_cap ? c->out_cap : 4096;
				while (cap < c->out_len + keep)
					cap *= 2;
				if (cap > cmd->max_output)
					cap = cmd->max_output;
				char *p = realloc(c->out, cap);
				if (!p) {
					c->overflow = true; /* out of memory: treat like too much */
					keep = 0;
				} else {
					c->out = p;
					c->out_cap = cap;
				}
			}
			if (keep > 0) {
				memcpy(c->out + c->out_len, buf, keep);
				c->out_len += keep;
			}
		} else if (which == 2) {
			if (len >= STDERR_TAIL) {
				memcpy(c->err, buf + len - STDERR_TAIL, STDERR_TAIL);
				c->err_len = STDERR_TAIL;
			} else {
				if (c->err_len + len > sizeof c->err) {
					memmove(c->err, c->err + c->err_len - STDERR_TAIL, STDERR_TAIL);
					c->err_len = STDERR_TAIL;
				}
				memcpy(c->err + c->err_len, buf, len);
				c->err_len += len;
			}
		} else {
			progress_bytes(run, c, buf, len);
		}
	}
}

/* Writes what stdin takes now; closes it when all is written or the child
 * stopped reading. SIGPIPE is blocked on this thread (see command_run). */
static void feed_stdin(struct child *c)
{
	while (c->in_w >= 0 && c->in_off < c->in_len) {
		ssize_t n = write(c->in_w, c->in + c->in_off, c->in_len - c->in_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			if (errno == EPIPE) {
				/* Take the SIGPIPE this write raised on this thread. */
				sigset_t pipe_set;
				sigemptyset(&pipe_set);
				sigaddset(&pipe_set, SIGPIPE);
				struct timespec zero = {0, 0};
				while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
					;
			}
			break;
		}
		c->in_off += (size_t)n;
	}
	close_fd(&c->in_w);
}

/* ---- the child process ---- */

/* jobqd's environment without our three names, then ours. The strings
 * live in the caller's buffers; free the array only. */
static char **child_env(char *id_var, char *attempt_var, char *progress_var)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **envp = calloc(n + 4, sizeof *envp);
	if (!envp)
		return NULL;
	static const char *const ours[] = {"JOBQ_JOB_ID=", "JOBQ_ATTEMPT=", "JOBQ_PROGRESS_FD="};
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		bool skip = false;
		for (size_t j = 0; j < sizeof ours / sizeof ours[0]; j++)
			skip |= strncmp(environ[i], ours[j], strlen(ours[j])) == 0;
		if (!skip)
			envp[k++] = environ[i];
	}
	envp[k++] = id_var;
	envp[k++] = attempt_var;
	envp[k++] = progress_var;
	envp[k] = NULL;
	return envp;
}

/* Starts the command with its pipes. Returns 0, or -1 with *error set
 * (nothing left open or running). */
static int spawn_child(const struct command *cmd, struct run *run, struct child *c, char **error)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, prog[2] = {-1, -1};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	bool fa_ok = false, attr_ok = false;
	char **envp = NULL;
	int rc = -1;
	const char *what = "pipe";

	if (make_pipe(in, 0) != 0 || make_pipe(out, 1) != 0 || make_pipe(err, 1) != 0 ||
	    make_pipe(prog, 1) != 0)
		goto sys_fail;

	what = "posix_spawn setup";
	if ((errno = posix_spawn_file_actions_init(&fa)) != 0)
		goto sys_fail;
	fa_ok = true;
	if ((errno = posix_spawnattr_init(&attr)) != 0)
		goto sys_fail;
	attr_ok = true;
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	if ((errno = posix_spawn_file_actions_adddup2(&fa, in[0], 0)) != 0 ||
	    (errno = posix_spawn_file_actions_adddup2(&fa, out[1], 1)) != 0 ||
	    (errno = posix_spawn_file_actions_adddup2(&fa, err[1], 2)) != 0 ||
	    (errno = posix_spawn_file_actions_adddup2(&fa, prog[1], CHILD_PROGRESS_FD)) != 0 ||
	    (errno = posix_spawn_file_actions_addclosefrom_np(&fa, CHILD_PROGRESS_FD + 1)) != 0 ||
	    (errno = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
	                                                 POSIX_SPAWN_SETSIGDEF)) != 0 ||
	    (errno = posix_spawnattr_setpgroup(&attr, 0)) != 0 ||
	    (errno = posix_spawnattr_setsigmask(&attr, &none)) != 0 ||
	    (errno = posix_spawnattr_setsigdefault(&attr, &all)) != 0)
		goto sys_fail;

	char id_var[sizeof "JOBQ_JOB_ID=" + UUID_LEN];
	char attempt_var[32], progress_var[32];
	snprintf(id_var, sizeof id_var, "JOBQ_JOB_ID=%s", run->job->id);
	snprintf(attempt_var, sizeof attempt_var, "JOBQ_ATTEMPT=%d", run->job->attempts);
	snprintf(progress_var, sizeof progress_var, "JOBQ_PROGRESS_FD=%d", CHILD_PROGRESS_FD);
	what = "environment";
	errno = ENOMEM;
	if (!(envp = child_env(id_var, attempt_var, progress_var)))
		goto sys_fail;

	char *argv[] = {cmd->path, NULL};
	int spawn_rc = posix_spawn(&c->pid, cmd->path, &fa, &attr, argv, envp);
	if (spawn_rc != 0) {
		if (asprintf(error, "cannot run %s: %s", cmd->path, strerror(spawn_rc)) < 0)
			*error = NULL;
		goto out;
	}
	c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
	if (c->pidfd < 0)
		c->pidfd = -1; /* old kernel or filtered: fall back to polling waitid */
	c->in_w = in[1], in[1] = -1;
	c->out_r = out[0], out[0] = -1;
	c->err_r = err[0], err[0] = -1;
	c->prog_r = prog[0], prog[0] = -1;
	rc = 0;
	goto out;

sys_fail:;
	int saved = errno;
	log_errno("job %s: %s for %s failed", run->job->id, what, cmd->path);
	if (asprintf(error, "cannot run %s: %s failed: %s", cmd->path, what, strerror(saved)) < 0)
		*error = NULL;
out:
	free(envp);
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	if (attr_ok)
		posix_spawnattr_destroy(&attr);
	for (int i = 0; i < 2; i++) {
		close_fd(&in[i]);
		close_fd(&out[i]);
		close_fd(&err[i]);
		close_fd(&prog[i]);
	}
	return rc;
}

/* True once the group leader has exited (not reaped: WNOWAIT keeps the
 * zombie, and with it the process group id). */
static bool leader_exited(const struct child *c, bool pidfd_ready)
{
	if (c->pidfd >= 0 && !pidfd_ready)
		return false;
	siginfo_t si;
	memset(&si, 0, sizeof si);
	int flags = WEXITED | WNOWAIT | (c->pidfd >= 0 ? 0 : WNOHANG);
	while (waitid(P_PID, (id_t)c->pid, &si, flags) != 0) {
		if (errno != EINTR) {
			log_errno("waitid(%d)", (int)c->pid);
			return true; /* cannot happen for our own child; reap below */
		}
	}
	return si.si_pid == c->pid;
}

/* The leader has exited: kill what is left of its group, then reap it. */
static void reap(struct child *c)
{
	if (kill(-c->pid, SIGKILL) != 0 && errno != ESRCH)
		log_errno("kill(-%d, SIGKILL)", (int)c->pid);
	while (waitpid(c->pid, &c->status, 0) < 0) {
		if (errno != EINTR) {
			log_errno("waitpid(%d)", (int)c->pid);
			c->status = 0;
			break;
		}
	}
	c->pid = -1;
}

static void wake_hook(void *arg)
{
	uint64_t one = 1;
	ssize_t n = write(*(const int *)arg, &one, sizeof one);
	(void)n; /* a full counter is already a wake-up */
}

/* Polls the child's pipes, the pidfd and the wake fd until now + ms (ms
 * < 0: no limit). Returns true when the pidfd reported the exit. */
static bool poll_once(const struct command *cmd, struct run *run, struct child *c, int wake, int ms)
{
	struct pollfd pf[6];
	int *fds[6];
	int n = 0;
	int *watch[] = {&c->out_r, &c->err_r, &c->prog_r};
	for (int i = 0; i < 3; i++)
		if (*watch[i] >= 0) {
			fds[n] = watch[i];
			pf[n++] = (struct pollfd){.fd = *watch[i], .events = POLLIN};
		}
	int in_at = -1, pid_at = -1, wake_at = n;
	pf[n++] = (struct pollfd){.fd = wake, .events = POLLIN};
	if (c->in_w >= 0) {
		in_at = n;
		pf[n++] = (struct pollfd){.fd = c->in_w, .events = POLLOUT};
	}
	if (c->pidfd >= 0 && c->pid > 0) {
		pid_at = n;
		pf[n++] = (struct pollfd){.fd = c->pidfd, .events = POLLIN};
	}
	if (poll(pf, (nfds_t)n, ms) <= 0)
		return false; /* timeout or EINTR: the caller re-checks */
	for (int i = 0; i < wake_at; i++)
		if (pf[i].revents)
			drain_fd(cmd, run, c, fds[i], fds[i] == &c->out_r ? 1 : fds[i] == &c->err_r ? 2 : 3);
	if (pf[wake_at].revents) {
		uint64_t v;
		ssize_t r = read(wake, &v, sizeof v);
		(void)r;
	}
	if (in_at >= 0 && pf[in_at].revents)
		feed_stdin(c);
	return pid_at >= 0 && pf[pid_at].revents != 0;
}

static int ms_until(int64_t t)
{
	int64_t left = t - clock_mono_ms();
	return left <= 0 ? 0 : left > POLL_CAP_MS ? POLL_CAP_MS : (int)left;
}

/* Runs the child to its end: feeds stdin, collects output and progress,
 * stops the group when asked (or on too much output), reaps the leader,
 * then drains the pipes for at most DRAIN_MS. Returns why it was stopped
 * (RUN_STOP_NONE when the command ended by itself or for overflow). */
static enum run_stop supervise(const struct command *cmd, struct run *run, struct child *c, int wake)
{
	enum run_stop why = RUN_STOP_NONE;
	bool term_sent = false, kill_sent = false;
	int64_t kill_at = 0;
	feed_stdin(c);
	for (;;) {
		if (!term_sent) {
			why = run_stopping(run);
			if (why != RUN_STOP_NONE || c->overflow) {
				if (kill(-c->pid, SIGTERM) != 0 && errno != ESRCH)
					log_errno("kill(-%d, SIGTERM)", (int)c->pid);
				term_sent = true;
				kill_at = clock_mono_ms() + cmd->grace_ms;
			}
		}
		if (term_sent && !kill_sent && clock_mono_ms() >= kill_at) {
			if (kill(-c->pid, SIGKILL) != 0 && errno != ESRCH)
				log_errno("kill(-%d, SIGKILL)", (int)c->pid);
			kill_sent = true;
		}
		int ms;
		if (!term_sent) {
			int64_t left = run_time_left_ms(run);
			ms = left > POLL_CAP_MS ? POLL_CAP_MS : (int)left;
		} else {
			ms = kill_sent ? POLL_CAP_MS : ms_until(kill_at);
		}
		if (c->pidfd < 0 && ms > NO_PIDFD_POLL_MS)
			ms = NO_PIDFD_POLL_MS;
		bool ready = poll_once(cmd, run, c, wake, ms);
		if ((ready || c->pidfd < 0) && leader_exited(c, true))
			break;
	}
	reap(c);
	close_fd(&c->in_w);
	int64_t until = clock_mono_ms() + DRAIN_MS;
	while ((c->out_r >= 0 || c->err_r >= 0 || c->prog_r >= 0) && clock_mono_ms() < until)
		poll_once(cmd, run, c, wake, ms_until(until));
	if (c->out_r >= 0 || c->err_r >= 0 || c->prog_r >= 0)
		log_warn("job %s: %s exited but a process outside its group still holds its output",
		         run->job->id, cmd->path);
	return why;
}

/* The result of a successful run: stdout as JSON if it is one JSON value,
 * else as a string. NULL only when out of memory. */
static cJSON *stdout_result(const struct child *c)
{
	/* out is NULL (and out_len 0) when the command printed nothing. */
	const char *out = c->out ? c->out : "";
	size_t len = c->out ? c->out_len : 0;
	bool plain = utf8_valid(out, len);
	for (size_t i = 0; plain && i < len; i++) {
		unsigned char ch = (unsigned char)out[i];
		plain = ch >= 0x20 || ch == '\t' || ch == '\n' || ch == '\r';
	}
	if (plain && len > 0) {
		const char *end = NULL;
		cJSON *v = cJSON_ParseWithLengthOpts(out, len, &end, 0);
		if (v) {
			const char *stop = out + len;
			while (end < stop && is_space(*end))
				end++;
			if (end == stop)
				return v;
			cJSON_Delete(v);
		}
	}
	char *text = utf8_clean(out, len, SIZE_MAX - 1);
	cJSON *s = text ? cJSON_CreateString(text) : NULL;
	free(text);
	return s;
}

static enum run_outcome command_run(const struct job_kind *kind, struct run *run,
                                    const cJSON *payload, cJSON **result, char **error)
{
	const struct command *cmd = (const struct command *)kind;
	struct child c = {.pid = -1, .pidfd = -1, .in_w = -1, .out_r = -1, .err_r = -1, .prog_r = -1};
	enum run_outcome outcome = RUN_FAILED;
	char *input = NULL;
	int wake = -1;
	bool hooked = false;

	/* A child that closes stdin early must not kill jobqd with SIGPIPE. */
	sigset_t pipe_set, old_mask;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);

	/* The payload's stored text, not cJSON's reading of it: that would cut
	 * strings at \u0000 and round numbers. */
	(void)payload;
	const char *json = run->job->payload ? run->job->payload : "null";
	if (asprintf(&input, "%s\n", json) < 0) {
		input = NULL;
		*error = strdup("out of memory preparing the command's input");
		goto out;
	}
	c.in = input;
	c.in_len = strlen(input);

	wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (wake < 0) {
		log_errno("eventfd");
		if (asprintf(error, "cannot run %s: eventfd failed: %s", cmd->path, strerror(errno)) < 0)
			*error = NULL;
		goto out;
	}
	run_set_stop_hook(run, wake_hook, &wake);
	hooked = true;

	if (run_stopping(run) != RUN_STOP_NONE) {
		outcome = RUN_STOPPED; /* asked to stop before it started */
		goto out;
	}
	if (spawn_child(cmd, run, &c, error) != 0)
		goto out;
	log_debug("job %s: started %s as pid %d", run->job->id, cmd->path, (int)c.pid);
	enum run_stop why = supervise(cmd, run, &c, wake);

	char head[128];
	int st = c.status;
	if (why != RUN_STOP_NONE) {
		outcome = RUN_STOPPED;
	} else if (c.overflow) {
		outcome = RUN_FAILED_FINAL;
		if (asprintf(error, "output larger than %zu bytes", cmd->max_output) < 0)
			*error = NULL;
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		*result = stdout_result(&c);
		outcome = *result ? RUN_SUCCEEDED : RUN_FAILED;
		if (!*result)
			*error = strdup("out of memory keeping the command's output");
	} else if (WIFSIGNALED(st)) {
		int sig = WTERMSIG(st);
		const char *abbrev = sigabbrev_np(sig);
		if (abbrev)
			snprintf(head, sizeof head, "killed by signal %d (SIG%s)", sig, abbrev);
		else if (sig >= SIGRTMIN && sig <= SIGRTMAX)
			snprintf(head, sizeof head, "killed by signal %d (SIGRTMIN+%d)", sig, sig - SIGRTMIN);
		else
			snprintf(head, sizeof head, "killed by signal %d", sig);
		*error = failure_message(&c, head);
	} else {
		snprintf(head, sizeof head, "exit status %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		*error = failure_message(&c, head);
	}
	log_debug("job %s: %s ended (wait status 0x%x)", run->job->id, cmd->path, (unsigned)st);

out:
	if (hooked)
		run_set_stop_hook(run, NULL, NULL);
	close_fd(&wake);
	close_fd(&c.pidfd);
	close_fd(&c.in_w);
	close_fd(&c.out_r);
	close_fd(&c.err_r);
	close_fd(&c.prog_r);
	free(c.out);
	free(input);
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	return outcome;
}

int command_register(const char *name, const char *path, const struct command_options *o,
                     char *err, size_t errlen)
{
	struct command_options opts = {COMMAND_GRACE_S_DEFAULT, COMMAND_MAX_OUTPUT_DEFAULT};
	if (o)
		opts = *o;
	if (opts.max_output == 0)
		opts.max_output = COMMAND_MAX_OUTPUT_DEFAULT;
	if (!job_queue_name_valid(name)) {
		snprintf(err, errlen, "--command %s: the job type name must be 1 to %d of A-Z a-z 0-9 _ . : -",
		         name, JOB_NAME_MAX);
		return -1;
	}
	if (!(opts.grace_s >= 0 && opts.grace_s <= GRACE_MAX_S)) {
		snprintf(err, errlen, "--command-grace must be between 0 and %.0f seconds", GRACE_MAX_S);
		return -1;
	}
	if (kind_find(name)) {
		snprintf(err, errlen, "--command %s=%s: job type %s is already registered", name, path, name);
		return -1;
	}
	struct stat st;
	if (stat(path, &st) != 0) {
		snprintf(err, errlen, "--command %s=%s: %s", name, path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "--command %s=%s: not a regular file", name, path);
		return -1;
	}
	if (access(path, X_OK) != 0) {
		snprintf(err, errlen, "--command %s=%s: not executable (%s)", name, path, strerror(errno));
		return -1;
	}
	struct command *cmd = calloc(1, sizeof *cmd);
	if (cmd) {
		cmd->name = strdup(name);
		cmd->path = strdup(path);
	}
	if (!cmd || !cmd->name || !cmd->path) {
		if (cmd) {
			free(cmd->name);
			free(cmd->path);
		}
		free(cmd);
		snprintf(err, errlen, "--command %s: out of memory", name);
		return -1;
	}
	cmd->grace_ms = (int64_t)llround(opts.grace_s * 1000);
	cmd->max_output = opts.max_output;
	cmd->kind = (struct job_kind){.name = cmd->name, .run = command_run, .arg = cmd->path};
	if (kind_register(&cmd->kind) != 0) {
		snprintf(err, errlen, "--command %s: too many job types (at most %d)", name, KIND_MAX);
		free(cmd->name);
		free(cmd->path);
		free(cmd);
		return -1;
	}
	return 0;
}
