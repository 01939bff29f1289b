/*
 * rootstream-kms-helper: hands the framebuffer a display plane shows to the
 * unprivileged rootstream host, as read-only dma-buf file descriptors.
 *
 * Why it exists: the kernel fills in the buffer handles of DRM_IOCTL_MODE_GETFB2
 * only for CAP_SYS_ADMIN (or the DRM master).  Giving that capability to
 * python3 would give it to every Python program on the machine, so it lives on
 * this small program instead, installed root:video mode 0750 (whoever can run
 * it can read the screen).
 *
 * How it is used: the host creates an AF_UNIX SOCK_SEQPACKET socketpair,
 * starts "rootstream-kms-helper CARD_NUMBER" with one end as fd 0, and asks
 * with 16-byte requests; each answer is one 88-byte reply, with the plane's
 * dma-buf fds attached (SCM_RIGHTS) only when the framebuffer changed.  The
 * wire layout is written down in rootstream/_native/kms_helper_protocol.py.
 *
 * What it trusts: nothing it reads.  The environment is cleared, argv must be a
 * card number, the socket's peer must be the parent process, every request is
 * checked for size, magic, version and kind, and every kernel reply for
 * consistency.  Anything malformed is refused with one line on stderr; the
 * helper never exits on bad input, only when the host goes (EOF or, through
 * PR_SET_PDEATHSIG, the parent's death).  It keeps CAP_SYS_ADMIN in its
 * permitted set only, raising it for the one GETFB2 ioctl, never forks, and
 * once the card is open runs under a seccomp filter that allows only the
 * system calls and the four DRM ioctls it makes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#if __has_include(<drm/drm_mode.h>)
#include <drm/drm.h>
#include <drm/drm_mode.h>
#else
#include <libdrm/drm.h>
#include <libdrm/drm_mode.h>
#endif

#define REQUEST_SIZE 16
#define REPLY_SIZE 88
#define PROTOCOL_VERSION 1
#define KIND_FRAMEBUFFER 1
enum { NEW = 0, UNCHANGED = 1, OFF = 2, REFUSED = 3, FAILED = 4 };

#define DRM_MAJOR 226
#define MAX_CARD 255
#define MAX_DIMENSION 32768 /* larger than any scanout the kernel allows */
#define MAX_LOGGED_REFUSALS 20 /* a flooding host cannot flood its own stderr */
#define SLOTS 8 /* planes whose last sent buffer is remembered */

static int card_fd = -1, card_error, have_admin, refusals;

/* The buffer last sent for a plane: "unchanged" needs the same fb id AND the
 * same buffer, because the kernel reuses a freed fb id for the next ADDFB. */
static struct sent { uint32_t plane, fb; dev_t dev; ino_t ino; } sent[SLOTS];
static unsigned next_slot;

static void say(const char *fmt, ...)
{
	char line[256];
	int n = snprintf(line, sizeof line, "rootstream-kms-helper: ");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
	va_end(ap);
	n = (int)strlen(line);
	line[n] = '\n';
	if (write(2, line, n + 1) < 0) { /* nothing left to tell anyone */ }
}

static void put16(unsigned char *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static void put32(unsigned char *p, uint32_t v) { put16(p, v); put16(p + 2, v >> 16); }
static void put64(unsigned char *p, uint64_t v) { put32(p, v); put32(p + 4, v >> 32); }
static uint16_t get16(const unsigned char *p) { return p[0] | p[1] << 8; }
static uint32_t get32(const unsigned char *p) { return get16(p) | (uint32_t)get16(p + 2) << 16; }

/* capset(2) without libcap: CAP_SYS_ADMIN stays permitted (if we had it),
 * effective only while `raise` is set; nothing is inheritable. */
static int set_admin(int raise)
{
	struct __user_cap_header_struct head = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2] = { { 0 } };
	uint32_t bit = have_admin ? 1u << CAP_SYS_ADMIN : 0;
	data[0].permitted = bit;
	data[0].effective = raise ? bit : 0;
	return (int)syscall(SYS_capset, &head, data);
}

static int drop_privileges(void)
{
	struct __user_cap_header_struct head = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	if (syscall(SYS_capget, &head, data) != 0)
		return -1;
	have_admin = !!(data[0].permitted & 1u << CAP_SYS_ADMIN);
	/* No new privileges for anything this process could ever exec, no ambient
	 * capabilities to hand down; then everything but CAP_SYS_ADMIN goes. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
		return -1;
	return set_admin(0);
}

static int parse_card(const char *text)
{
	int n = 0;
	if (!*text || strlen(text) > 3)
		return -1;
	for (; *text; text++) {
		if (*text < '0' || *text > '9')
			return -1;
		n = n * 10 + (*text - '0');
	}
	return n <= MAX_CARD ? n : -1;
}

/* Opened before the sandbox closes; when it fails, every request is answered
 * with the reason, so the host hears why instead of from a helper that died. */
static int open_card(int number)
{
	char path[32];
	struct stat st;
	struct drm_set_client_cap universal = { DRM_CLIENT_CAP_UNIVERSAL_PLANES, 1 };
	snprintf(path, sizeof path, "/dev/dri/card%d", number);
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	if (fd < 0)
		return errno;
	if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode) || major(st.st_rdev) != DRM_MAJOR) {
		close(fd);
		return ENODEV;
	}
	/* Primary and cursor planes are only visible with universal planes. */
	if (ioctl(fd, DRM_IOCTL_SET_CLIENT_CAP, &universal) != 0) {
		int err = errno;
		close(fd);
		return err;
	}
	/* If no compositor runs, the first opener becomes DRM master; a helper
	 * holding master would lock the next compositor out of the display. */
	ioctl(fd, DRM_IOCTL_DROP_MASTER, 0);
	card_fd = fd;
	return 0;
}

static void send_reply(int sock, unsigned char *reply, const int *fds, int nfds)
{
	union { struct cmsghdr align; char buf[CMSG_SPACE(4 * sizeof(int))]; } control;
	struct iovec iov = { reply, REPLY_SIZE };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	memset(&control, 0, sizeof control);
	if (nfds > 0) {
		msg.msg_control = control.buf;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != EPIPE && errno != ECONNRESET)
			say("cannot answer the host: %s", strerror(errno));
		exit(0); /* the host is gone or its socket broke: nothing left to serve */
	}
}

static void start_reply(unsigned char *r, int status, uint32_t plane, int error)
{
	memset(r, 0, REPLY_SIZE);
	memcpy(r, "RSKH", 4);
	put16(r + 4, PROTOCOL_VERSION);
	put16(r + 6, status);
	put32(r + 8, plane);
	put32(r + 40, (uint32_t)error);
}

static void refuse(int sock, int error, const char *why)
{
	unsigned char r[REPLY_SIZE];
	if (++refusals <= MAX_LOGGED_REFUSALS)
		say("refused a request: %s%s", why,
		    refusals == MAX_LOGGED_REFUSALS ? " (further refusals not logged)" : "");
	start_reply(r, REFUSED, 0, error);
	send_reply(sock, r, NULL, 0);
}

static void close_handles(const struct drm_mode_fb_cmd2 *fb)
{
	for (int i = 0; i < 4; i++) {
		int seen = 0;
		for (int j = 0; j < i; j++)
			seen |= fb->handles[j] == fb->handles[i];
		if (fb->handles[i] && !seen) {
			struct drm_gem_close c = { .handle = fb->handles[i] };
			ioctl(card_fd, DRM_IOCTL_GEM_CLOSE, &c);
		}
	}
}

/* GETFB2 of `fb_id` checked, every plane exported read-only; the GEM handles
 * are closed before returning (the dma-bufs keep the buffer alive).  Returns
 * the number of fds, or -errno. */
static int export_framebuffer(uint32_t fb_id, struct drm_mode_fb_cmd2 *fb, int *fds)
{
	int planes = 0, exported = 0, err = 0;
	memset(fb, 0, sizeof *fb);
	fb->fb_id = fb_id;
	if (set_admin(1) != 0)
		return -EPERM;
	if (ioctl(card_fd, DRM_IOCTL_MODE_GETFB2, fb) != 0)
		err = errno;
	if (set_admin(0) != 0) {
		say("cannot lower CAP_SYS_ADMIN again: %s", strerror(errno));
		exit(1); /* fail closed rather than run on with the capability raised */
	}
	if (err)
		return -err;
	while (planes < 4 && fb->handles[planes])
		planes++;
	if (planes == 0)
		err = EPERM; /* the kernel withheld the handles: no CAP_SYS_ADMIN */
	else if (fb->fb_id != fb_id || fb->width == 0 || fb->height == 0 ||
		 fb->width > MAX_DIMENSION || fb->height > MAX_DIMENSION || fb->pixel_format == 0 ||
		 (fb->flags & ~(DRM_MODE_FB_INTERLACED | DRM_MODE_FB_MODIFIERS)))
		err = EPROTO;
	for (int i = planes; i < 4 && !err; i++)
		if (fb->handles[i])
			err = EPROTO; /* a gap in the plane list */
	for (int i = 0; i < planes && !err; i++) {
		struct drm_prime_handle prime = { .handle = fb->handles[i], .flags = DRM_CLOEXEC };
		if (fb->pitches[i] == 0)
			err = EPROTO;
		else if (ioctl(card_fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &prime) != 0)
			err = errno;
		else if (prime.fd < 0)
			err = EPROTO;
		else
			fds[exported++] = prime.fd;
	}
	for (int i = 0; i < exported && !err; i++) {
		/* The plane must lie inside its buffer (a dma-buf's size is its end). */
		off_t size = lseek(fds[i], 0, SEEK_END);
		uint64_t rows = i == 0 ? fb->height : 1;
		if (size < 0 || (uint64_t)fb->offsets[i] + (uint64_t)fb->pitches[i] * rows > (uint64_t)size)
			err = EPROTO;
	}
	close_handles(fb);
	if (!err)
		return exported;
	for (int i = 0; i < exported; i++)
		close(fds[i]);
	return -err;
}

static struct sent *slot_for(uint32_t plane)
{
	for (int i = 0; i < SLOTS; i++)
		if (sent[i].plane == plane)
			return &sent[i];
	struct sent *s = &sent[next_slot++ % SLOTS];
	memset(s, 0, sizeof *s);
	s->plane = plane;
	return s;
}

static void answer(int sock, uint32_t plane_id, uint32_t known_fb)
{
	unsigned char r[REPLY_SIZE];
	struct drm_mode_get_plane plane = { .plane_id = plane_id };
	struct drm_mode_fb_cmd2 fb;
	struct stat st;
	int fds[4], err = card_error;
	if (err == 0 && ioctl(card_fd, DRM_IOCTL_MODE_GETPLANE, &plane) != 0)
		err = errno;
	if (err == 0 && plane.plane_id != plane_id)
		err = EPROTO;
	if (err) {
		start_reply(r, FAILED, plane_id, err);
		send_reply(sock, r, NULL, 0);
		return;
	}
	if (plane.fb_id == 0 || plane.crtc_id == 0) { /* the plane shows nothing */
		start_reply(r, OFF, plane_id, 0);
		send_reply(sock, r, NULL, 0);
		return;
	}
	int n = export_framebuffer(plane.fb_id, &fb, fds);
	if (n > 0 && fstat(fds[0], &st) != 0)
		n = -errno;
	if (n < 0) {
		start_reply(r, FAILED, plane_id, -n);
		put32(r + 12, plane.fb_id);
		send_reply(sock, r, NULL, 0);
		return;
	}
	struct sent *s = slot_for(plane_id);
	int same = known_fb == fb.fb_id && s->fb == fb.fb_id && s->dev == st.st_dev &&
		   s->ino == st.st_ino;
	start_reply(r, same ? UNCHANGED : NEW, plane_id, 0);
	put32(r + 12, fb.fb_id);
	put32(r + 16, plane.crtc_id);
	put32(r + 20, fb.width);
	put32(r + 24, fb.height);
	put32(r + 28, fb.pixel_format);
	put32(r + 32, fb.flags);
	put32(r + 36, same ? 0 : n);
	for (int i = 0; i < 4; i++) {
		put32(r + 48 + 4 * i, fb.pitches[i]);
		put32(r + 64 + 4 * i, fb.offsets[i]);
	}
	put64(r + 80, fb.modifier[0]);
	s->fb = fb.fb_id;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	send_reply(sock, r, fds, same ? 0 : n);
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

/* One request: exactly REQUEST_SIZE bytes, no ancillary data. */
static void serve_one(int sock)
{
	unsigned char req[REQUEST_SIZE + 1];
	union { struct cmsghdr align; char buf[CMSG_SPACE(8 * sizeof(int))]; } control;
	struct iovec iov = { req, sizeof req };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = control.buf, .msg_controllen = sizeof control.buf };
	ssize_t got = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	if (got < 0 && errno == EINTR)
		return;
	if (got < 0) {
		say("cannot read from the host: %s", strerror(errno));
		exit(1);
	}
	if (got == 0)
		exit(0); /* the host closed its end: it is done or gone */
	int passed = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		passed = 1;
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int *fd = (int *)CMSG_DATA(c);
			for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++)
				close(fd[i]); /* never keep what a peer slips in */
		}
	}
	const char *why = NULL;
	int error = EINVAL;
	if (passed || (msg.msg_flags & MSG_CTRUNC))
		why = "it carried ancillary data";
	else if ((msg.msg_flags & MSG_TRUNC) || got != REQUEST_SIZE) {
		why = got < REQUEST_SIZE ? "it is shorter than 16 bytes" : "it is longer than 16 bytes";
		error = EMSGSIZE;
	}
	else if (memcmp(req, "RSKH", 4) != 0)
		why = "bad magic";
	else if (get16(req + 4) != PROTOCOL_VERSION)
		why = "unsupported protocol version";
	else if (get16(req + 6) != KIND_FRAMEBUFFER)
		why = "unknown request kind";
	else if (get32(req + 8) == 0)
		why = "plane id 0";
	if (why)
		refuse(sock, error, why);
	else
		answer(sock, get32(req + 8), get32(req + 12));
}

/* From here on the helper needs a handful of system calls, and ioctl only for
 * the four DRM requests it makes: anything else (open, exec, mount, other
 * ioctls, even if a bug let someone steer it) fails with ENOSYS. */
#define ALLOW(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), \
		  BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define ALLOW_IOCTL(req) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(req), 0, 1), \
			 BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define DENY BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS)
/* Where the filter is written for: little-endian (the ioctl request is read
 * as the low word of its argument) 64-bit x86 and ARM. */
#if defined(__x86_64__)
#define THIS_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define THIS_ARCH AUDIT_ARCH_AARCH64
#endif

static int sandbox(void)
{
#ifdef THIS_ARCH
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, THIS_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS), /* another ABI: x32, i386 */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 10), /* 10: past the ioctls */
		/* ioctl's request is an unsigned int: the low half of the argument */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
		ALLOW_IOCTL(DRM_IOCTL_MODE_GETPLANE), ALLOW_IOCTL(DRM_IOCTL_MODE_GETFB2),
		ALLOW_IOCTL(DRM_IOCTL_PRIME_HANDLE_TO_FD), ALLOW_IOCTL(DRM_IOCTL_GEM_CLOSE),
		DENY,
		ALLOW(__NR_recvmsg), ALLOW(__NR_sendmsg), ALLOW(__NR_close), ALLOW(__NR_lseek),
		ALLOW(__NR_newfstatat), ALLOW(__NR_capset), ALLOW(__NR_write),
		ALLOW(__NR_exit_group), ALLOW(__NR_exit),
#ifdef __NR_fstat
		ALLOW(__NR_fstat),
#endif
		DENY,
	};
	struct sock_fprog program = { sizeof filter / sizeof filter[0], filter };
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0);
#else
	return 0; /* no filter for this architecture: the capability rules still hold */
#endif
}

int main(int argc, char **argv)
{
	struct ucred peer;
	socklen_t len = sizeof peer;
	int type = 0;
	socklen_t type_len = sizeof type;

	clearenv(); /* nothing below reads it; no locale, no library paths */
	umask(077);
	if (drop_privileges() != 0) {
		say("cannot drop privileges: %s", strerror(errno));
		return 1;
	}
	/* The kernel clears the death signal when it executes a file with
	 * capabilities, so it is set here; then the parent is checked again,
	 * in case it died before the signal was armed. */
	pid_t parent = getppid();
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != parent || parent == 1)
		return 1;
	if (close_range(3, ~0u, 0) != 0)
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
	int card_number;
	if (argc != 2 || (card_number = parse_card(argv[1])) < 0) {
		say("usage: rootstream-kms-helper CARD_NUMBER (started by rootstream, fd 0 a socket)");
		return 2;
	}
	if (getsockopt(0, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0 || type != SOCK_SEQPACKET) {
		say("fd 0 is not a SOCK_SEQPACKET socket");
		return 2;
	}
	/* Serve only the process that started us: the socket's creator must be
	 * our parent, running as our real user. */
	if (getsockopt(0, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 || peer.pid != parent ||
	    peer.uid != getuid()) {
		say("refused: the socket's peer is not the process that started the helper");
		return 3;
	}
	card_error = open_card(card_number);
	if (sandbox() != 0) {
		say("cannot install the system call filter: %s", strerror(errno));
		return 1;
	}
	for (;;)
		serve_one(0);
}
