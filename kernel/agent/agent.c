/*
 * jitdiff guest agent: runs as /init in the riscv64 guest and serves eBPF jobs.
 *
 * It mounts /proc and /dev, opens its channel (the first virtio-serial port,
 * /dev/vport*, else the virtio console /dev/hvc0 in raw mode), announces
 * itself with a ready frame and then answers request frames, one response
 * frame per request, for ever. The wire format is in ../PROTOCOL.md; this file
 * implements exactly that. The kernel log goes to the UART (ttyS0), never to
 * the channel, so it cannot corrupt it.
 *
 * /init must never exit (the kernel would panic): every request is parsed
 * with bounds checks into a plan first, and a malformed one gets an error
 * response. Only the bpf(2) syscall is used, through syscall(2); no libbpf.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define PROTO_VERSION 4u
#define MAGIC_READY 0x5952444au   /* "JDRY" as little-endian u32 */
#define MAGIC_REQUEST 0x5152444au /* "JDRQ" */
#define MAGIC_RESPONSE 0x5352444au /* "JDRS" */

#define MAX_PAYLOAD (64u << 20)     /* largest request payload accepted */
#define VLOG_SIZE (1u << 20)        /* verifier log buffer for a rejected load */
#define VLOG_REPORT_MAX (64u << 10) /* tail of the log that is sent back */
#define OUT_SIZE (128u << 10)       /* data_out / ctx_out buffer */
#define MAX_IMAGE (4u << 20)        /* cap on JITed / xlated dumps */

#define CONSOLE_CHANNEL "/dev/hvc0"
#define VMLINUX_BTF "/sys/kernel/btf/vmlinux"
#define MAX_KFUNCS 64
#define MAX_KFUNC_NAME 128
#define JIT_SYSCTL "/proc/sys/net/core/bpf_jit_enable"

/* job flags */
#define JOB_WANT_JITED 0x01u
#define JOB_WANT_XLATED 0x02u

/* job outcomes */
#define OUTCOME_RAN 0
#define OUTCOME_REJECTED 1
#define OUTCOME_SETUP_FAILED 2

/* buffer modes */
#define BUF_DATA 0
#define BUF_CTX 1
#define BUF_CTX_IN_PLACE 2
#define BUF_DATA_CTX 3

/* output sources */
#define OUT_NONE 0
#define OUT_DATA 1
#define OUT_CTX_OUT 2
#define OUT_CTX_IN 3
#define OUT_CTX_OUT_DATA 4
/* In BUF_DATA_CTX mode, ctx_out's room at the start of outbuf (struct __sk_buff is 192). */
#define CTX_ROOM 256u

static int chan = -1;
static char chan_name[300];
static int chan_is_port; /* a virtio-serial port (EOF = the host went away) */
static int jit_state = -1; /* last value written to (or read from) the sysctl */
static uint8_t *vlog;      /* VLOG_SIZE */
static uint8_t *outbuf;    /* OUT_SIZE */

static void note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("jitdiff-agent: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static uint64_t ptr64(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

/* ---------------------------------------------------------------------------
 * Growable output buffer (the response payload). An allocation failure is
 * remembered and turns the whole response into an error response.
 */
struct out {
	uint8_t *p;
	size_t len, cap;
	int oom;
};

static uint8_t *out_room(struct out *o, size_t n)
{
	if (o->oom)
		return NULL;
	if (n > SIZE_MAX / 2 - o->len) {
		o->oom = 1;
		return NULL;
	}
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		while (cap < o->len + n)
			cap *= 2;
		uint8_t *p = realloc(o->p, cap);
		if (!p) {
			o->oom = 1;
			return NULL;
		}
		o->p = p;
		o->cap = cap;
	}
	uint8_t *at = o->p + o->len;
	o->len += n;
	return at;
}

static void put_bytes(struct out *o, const void *src, size_t n)
{
	uint8_t *at = out_room(o, n);
	if (at && n)
		memcpy(at, src, n);
}

static void put_u8(struct out *o, uint8_t v)
{
	put_bytes(o, &v, 1);
}

static void put_u32(struct out *o, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	put_bytes(o, b, 4);
}

/* u32 length followed by the bytes */
static void put_blob(struct out *o, const void *src, uint32_t n)
{
	put_u32(o, n);
	put_bytes(o, src, n);
}

static void put_str(struct out *o, const char *s)
{
	put_blob(o, s, (uint32_t)strlen(s));
}

/* ---------------------------------------------------------------------------
 * Bounds-checked reader over the request payload. The first failure is kept
 * (with the offset) and every later read returns zeros.
 */
struct cur {
	const uint8_t *p;
	size_t len, pos;
	char err[160];
};

static void cur_fail(struct cur *c, const char *fmt, ...)
{
	if (c->err[0])
		return;
	int n = snprintf(c->err, sizeof(c->err), "at payload offset %zu: ", c->pos);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(c->err))
		vsnprintf(c->err + n, sizeof(c->err) - (size_t)n, fmt, ap);
	va_end(ap);
}

static const uint8_t *get_bytes(struct cur *c, uint64_t n, const char *what)
{
	if (c->err[0])
		return NULL;
	if (n > c->len - c->pos) {
		cur_fail(c, "truncated: %s needs %llu bytes, %zu left", what, (unsigned long long)n, c->len - c->pos);
		return NULL;
	}
	const uint8_t *at = c->p + c->pos;
	c->pos += (size_t)n;
	return at;
}

static uint8_t get_u8(struct cur *c, const char *what)
{
	const uint8_t *b = get_bytes(c, 1, what);
	return b ? b[0] : 0;
}

static uint32_t get_u32(struct cur *c, const char *what)
{
	const uint8_t *b = get_bytes(c, 4, what);
	return b ? (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24 : 0;
}

/* A count of items that each take at least `min_size` bytes: refuse counts the
 * remaining payload cannot hold, so allocations stay bounded by the payload. */
static uint32_t get_count(struct cur *c, uint32_t min_size, const char *what)
{
	uint32_t n = get_u32(c, what);
	if (!c->err[0] && (uint64_t)n * min_size > c->len - c->pos) {
		cur_fail(c, "%s %u cannot fit in the %zu bytes left", what, n, c->len - c->pos);
		return 0;
	}
	return n;
}

/* ---------------------------------------------------------------------------
 * The parsed plan of a request. Byte ranges point into the request payload.
 */
struct map_spec {
	uint8_t kind; /* 0 prog array, 1 array */
	uint32_t value_size, max_entries;
	const uint8_t *init; /* kind 1: value_size * max_entries bytes */
};

struct prog_spec {
	uint32_t insn_count;
	const uint8_t *insns;
	uint32_t btf_len; /* 0: loaded without BTF */
	const uint8_t *btf;
	uint32_t func_info_count; /* struct bpf_func_info records, 8 bytes each */
	const uint8_t *func_info;
};

/* A tracing program attached to a function of one of the job's programs. */
#define ATTACH_FENTRY 0
#define ATTACH_FEXIT 1
#define MAX_ATTACH 64

struct attach_spec {
	uint8_t kind;    /* ATTACH_FENTRY or ATTACH_FEXIT */
	uint32_t target; /* index of the traced program */
	uint32_t btf_id; /* the traced function's FUNC in that program's BTF */
	uint32_t insn_count;
	const uint8_t *insns;
};

struct slot_spec {
	uint32_t map, key, prog;
};

struct input_spec {
	uint32_t len;
	const uint8_t *data;
	uint32_t overlay_len; /* bytes written over the input map's contents */
	const uint8_t *overlay;
};

#define NO_MAP 0xffffffffu

struct job_spec {
	uint8_t jit, flags, buffer_mode;
	uint32_t prog_type, attach_type, prog_flags, input_map;
	uint32_t map_count, prog_count, slot_count, input_count, entry, attach_count, kfunc_count;
	struct map_spec *maps;
	struct prog_spec *progs;
	struct slot_spec *slots;
	struct input_spec *inputs;
	struct attach_spec *attaches;
	char (*kfuncs)[MAX_KFUNC_NAME]; /* names of the kernel functions the programs call */
};

static void free_jobs(struct job_spec *jobs, uint32_t n)
{
	if (!jobs)
		return;
	for (uint32_t i = 0; i < n; i++) {
		free(jobs[i].maps);
		free(jobs[i].progs);
		free(jobs[i].slots);
		free(jobs[i].inputs);
		free(jobs[i].attaches);
		free(jobs[i].kfuncs);
	}
	free(jobs);
}

static void *alloc_items(struct cur *c, uint32_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		cur_fail(c, "out of memory");
	return p;
}

static uint32_t insn_imm(const uint8_t *insn)
{
	return (uint32_t)insn[4] | (uint32_t)insn[5] << 8 | (uint32_t)insn[6] << 16 | (uint32_t)insn[7] << 24;
}

static void set_insn_imm(uint8_t *insn, uint32_t v)
{
	insn[4] = (uint8_t)v;
	insn[5] = (uint8_t)(v >> 8);
	insn[6] = (uint8_t)(v >> 16);
	insn[7] = (uint8_t)(v >> 24);
}

/* A kfunc call: `call` (0x85) with src_reg 2 (BPF_PSEUDO_KFUNC_CALL). */
static int is_kfunc_call(const uint8_t *insn)
{
	return insn[0] == 0x85 && insn[1] >> 4 == 2;
}

/* Map references in lddw (src_reg 1, map fd, or 2, map value) must name a map of the job,
 * kfunc calls one of its kfunc names. */
static void check_map_refs(struct cur *c, const struct job_spec *j, const uint8_t *insns, uint32_t n,
			   const char *what)
{
	for (uint32_t k = 0; insns && k < n && !c->err[0]; k++) {
		const uint8_t *insn = insns + 8 * (size_t)k;
		if (is_kfunc_call(insn) && insn_imm(insn) >= j->kfunc_count)
			cur_fail(c, "%s insn %u: a kfunc call names kfunc %u, the job has %u", what, k, insn_imm(insn),
				 j->kfunc_count);
		if (insn[0] != 0x18)
			continue;
		uint8_t src = insn[1] >> 4;
		uint32_t imm = insn_imm(insn);
		if ((src == 1 || src == 2) && imm >= j->map_count)
			cur_fail(c, "%s insn %u: lddw names map %u, the job has %u", what, k, imm, j->map_count);
		k++; /* the second half of lddw */
	}
}

static void parse_job(struct cur *c, struct job_spec *j, uint32_t index)
{
	char what[64];
	j->jit = get_u8(c, "jit");
	j->flags = get_u8(c, "flags");
	j->prog_type = get_u32(c, "prog_type");
	j->attach_type = get_u32(c, "expected_attach_type");
	j->prog_flags = get_u32(c, "prog_flags");
	j->buffer_mode = get_u8(c, "buffer_mode");
	j->input_map = get_u32(c, "input_map");
	if (c->err[0])
		return;
	if (j->jit > 1)
		return cur_fail(c, "job %u: jit must be 0 or 1, got %u", index, j->jit);
	if (j->flags & ~(JOB_WANT_JITED | JOB_WANT_XLATED))
		return cur_fail(c, "job %u: unknown flags 0x%x", index, j->flags);
	if (j->buffer_mode > BUF_DATA_CTX)
		return cur_fail(c, "job %u: buffer_mode must be 0 to 3, got %u", index, j->buffer_mode);

	j->kfunc_count = get_count(c, 4, "kfunc_count");
	if (!c->err[0] && j->kfunc_count > MAX_KFUNCS)
		return cur_fail(c, "job %u: %u kfuncs, at most %u", index, j->kfunc_count, MAX_KFUNCS);
	if (c->err[0] || !(j->kfuncs = alloc_items(c, j->kfunc_count, sizeof(*j->kfuncs))))
		return;
	for (uint32_t f = 0; f < j->kfunc_count && !c->err[0]; f++) {
		uint32_t len = get_u32(c, "kfunc name length");
		const uint8_t *name = get_bytes(c, len, "kfunc name");
		if (c->err[0])
			return;
		if (len == 0 || len >= MAX_KFUNC_NAME || memchr(name, 0, len))
			return cur_fail(c, "job %u kfunc %u: a name of 1 to %u bytes without NUL expected", index, f,
					MAX_KFUNC_NAME - 1);
		memcpy(j->kfuncs[f], name, len);
		j->kfuncs[f][len] = 0;
	}

	j->map_count = get_count(c, 5, "map_count");
	if (c->err[0] || !(j->maps = alloc_items(c, j->map_count, sizeof(*j->maps))))
		return;
	for (uint32_t m = 0; m < j->map_count && !c->err[0]; m++) {
		struct map_spec *ms = &j->maps[m];
		ms->kind = get_u8(c, "map kind");
		if (ms->kind == 0) {
			ms->max_entries = get_u32(c, "prog array max_entries");
		} else if (ms->kind == 1) {
			ms->value_size = get_u32(c, "array value_size");
			ms->max_entries = get_u32(c, "array max_entries");
			snprintf(what, sizeof(what), "job %u map %u initial contents", index, m);
			ms->init = get_bytes(c, (uint64_t)ms->value_size * ms->max_entries, what);
		} else if (!c->err[0]) {
			cur_fail(c, "job %u map %u: unknown kind %u", index, m, ms->kind);
		}
	}

	j->prog_count = get_count(c, 4, "prog_count");
	if (c->err[0] || !(j->progs = alloc_items(c, j->prog_count, sizeof(*j->progs))))
		return;
	for (uint32_t p = 0; p < j->prog_count && !c->err[0]; p++) {
		struct prog_spec *ps = &j->progs[p];
		ps->insn_count = get_u32(c, "insn_count");
		snprintf(what, sizeof(what), "job %u prog %u instructions", index, p);
		ps->insns = get_bytes(c, (uint64_t)ps->insn_count * 8, what);
		snprintf(what, sizeof(what), "job %u prog %u", index, p);
		check_map_refs(c, j, ps->insns, ps->insn_count, what);
		ps->btf_len = get_u32(c, "btf length");
		snprintf(what, sizeof(what), "job %u prog %u btf", index, p);
		ps->btf = get_bytes(c, ps->btf_len, what);
		ps->func_info_count = get_count(c, 8, "func_info_count");
		snprintf(what, sizeof(what), "job %u prog %u func_info", index, p);
		ps->func_info = get_bytes(c, (uint64_t)ps->func_info_count * 8, what);
		if (!c->err[0] && !ps->btf_len != !ps->func_info_count)
			return cur_fail(c, "job %u prog %u: %u bytes of btf with %u func_info records", index, p,
					ps->btf_len, ps->func_info_count);
	}
	if (c->err[0])
		return;

	j->slot_count = get_count(c, 12, "slot_count");
	if (c->err[0] || !(j->slots = alloc_items(c, j->slot_count, sizeof(*j->slots))))
		return;
	for (uint32_t s = 0; s < j->slot_count && !c->err[0]; s++) {
		struct slot_spec *ss = &j->slots[s];
		ss->map = get_u32(c, "slot map");
		ss->key = get_u32(c, "slot key");
		ss->prog = get_u32(c, "slot prog");
		if (c->err[0])
			return;
		if (ss->map >= j->map_count || j->maps[ss->map].kind != 0)
			return cur_fail(c, "job %u slot %u: map %u is not a prog array of the job", index, s, ss->map);
		if (ss->prog >= j->prog_count)
			return cur_fail(c, "job %u slot %u: prog %u out of range (%u progs)", index, s, ss->prog,
					j->prog_count);
	}

	j->entry = get_u32(c, "entry");
	if (!c->err[0] && j->entry >= j->prog_count)
		return cur_fail(c, "job %u: entry %u out of range (%u progs)", index, j->entry, j->prog_count);

	j->attach_count = get_count(c, 13, "attach_count");
	if (!c->err[0] && j->attach_count > MAX_ATTACH)
		return cur_fail(c, "job %u: %u attachments, at most %u", index, j->attach_count, MAX_ATTACH);
	if (c->err[0] || !(j->attaches = alloc_items(c, j->attach_count, sizeof(*j->attaches))))
		return;
	for (uint32_t a = 0; a < j->attach_count && !c->err[0]; a++) {
		struct attach_spec *as = &j->attaches[a];
		as->kind = get_u8(c, "attach kind");
		as->target = get_u32(c, "attach target");
		as->btf_id = get_u32(c, "attach btf_id");
		as->insn_count = get_u32(c, "attach insn_count");
		snprintf(what, sizeof(what), "job %u attachment %u instructions", index, a);
		as->insns = get_bytes(c, (uint64_t)as->insn_count * 8, what);
		if (c->err[0])
			return;
		if (as->kind > ATTACH_FEXIT)
			return cur_fail(c, "job %u attachment %u: unknown kind %u", index, a, as->kind);
		if (as->target >= j->prog_count)
			return cur_fail(c, "job %u attachment %u: target %u out of range (%u progs)", index, a,
					as->target, j->prog_count);
		snprintf(what, sizeof(what), "job %u attachment %u", index, a);
		check_map_refs(c, j, as->insns, as->insn_count, what);
	}

	if (j->input_map != NO_MAP && (j->input_map >= j->map_count || j->maps[j->input_map].kind != 1))
		return cur_fail(c, "job %u: input_map %u is not an array map of the job", index, j->input_map);
	uint64_t overlay_max = 0;
	if (j->input_map != NO_MAP)
		overlay_max = (uint64_t)j->maps[j->input_map].value_size * j->maps[j->input_map].max_entries;

	j->input_count = get_count(c, 4, "input_count");
	if (c->err[0] || !(j->inputs = alloc_items(c, j->input_count, sizeof(*j->inputs))))
		return;
	for (uint32_t i = 0; i < j->input_count && !c->err[0]; i++) {
		j->inputs[i].len = get_u32(c, "input len");
		snprintf(what, sizeof(what), "job %u input %u", index, i);
		j->inputs[i].data = get_bytes(c, j->inputs[i].len, what);
		if (j->input_map == NO_MAP)
			continue;
		j->inputs[i].overlay_len = get_u32(c, "overlay len");
		if (!c->err[0] && j->inputs[i].overlay_len > overlay_max)
			return cur_fail(c, "job %u input %u: overlay of %u bytes exceeds the %llu bytes of map %u",
					index, i, j->inputs[i].overlay_len, (unsigned long long)overlay_max,
					j->input_map);
		snprintf(what, sizeof(what), "job %u input %u overlay", index, i);
		j->inputs[i].overlay = get_bytes(c, j->inputs[i].overlay_len, what);
	}
}

static struct job_spec *parse_request(struct cur *c, uint32_t *count)
{
	*count = get_count(c, 1, "job_count");
	if (c->err[0])
		return NULL;
	struct job_spec *jobs = alloc_items(c, *count, sizeof(*jobs));
	if (!jobs)
		return NULL;
	for (uint32_t i = 0; i < *count && !c->err[0]; i++)
		parse_job(c, &jobs[i], i);
	if (!c->err[0] && c->pos != c->len)
		cur_fail(c, "%zu trailing bytes after the last job", c->len - c->pos);
	return jobs;
}

/* ---------------------------------------------------------------------------
 * Executing one job
 */
/* ---------------------------------------------------------------------------
 * The kernel's BTF, read once: kfunc calls name a kernel function by its BTF id.
 */
static uint8_t *vmlinux_btf;
static size_t vmlinux_btf_len;
static uint32_t le32(const uint8_t *b);

static int read_vmlinux_btf(void)
{
	if (vmlinux_btf)
		return 0;
	int fd = open(VMLINUX_BTF, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t cap = 1 << 20, len = 0;
	uint8_t *buf = malloc(cap);
	for (;;) {
		if (!buf) {
			close(fd);
			return -ENOMEM;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			free(buf);
			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == cap) {
			cap *= 2;
			uint8_t *grown = realloc(buf, cap);
			if (!grown)
				free(buf);
			buf = grown;
		}
	}
	close(fd);
	vmlinux_btf = buf;
	vmlinux_btf_len = len;
	return 0;
}

/* Bytes that follow a struct btf_type of `kind` with `vlen` members (btf.rst). */
static long btf_extra(uint32_t kind, uint32_t vlen)
{
	switch (kind) {
	case 1: case 14: case 17: return 4;                 /* INT, VAR, DECL_TAG */
	case 2: case 7: case 8: case 9: case 10: case 11:   /* PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT */
	case 12: case 16: case 18: return 0;                /* FUNC, FLOAT, TYPE_TAG */
	case 3: return 12;                                  /* ARRAY */
	case 4: case 5: case 15: case 19: return 12L * vlen; /* STRUCT, UNION, DATASEC, ENUM64 */
	case 6: case 13: return 8L * vlen;                  /* ENUM, FUNC_PROTO */
	default: return -1;
	}
}

/* Kernel functions already found, so that a job's kfuncs cost no walk over vmlinux's BTF
 * (tens of thousands of types) once seen: name and id. */
#define KFUNC_CACHE 64
static struct {
	char name[MAX_KFUNC_NAME];
	uint32_t id;
} kfunc_cache[KFUNC_CACHE];
static uint32_t kfunc_cached;

static int kfunc_btf_id_uncached(const char *name, uint32_t *id);

/* The BTF id of the kernel function `name` (a BTF_KIND_FUNC of vmlinux). */
static int kfunc_btf_id(const char *name, uint32_t *id)
{
	for (uint32_t k = 0; k < kfunc_cached; k++) {
		if (!strcmp(kfunc_cache[k].name, name)) {
			*id = kfunc_cache[k].id;
			return 0;
		}
	}
	int e = kfunc_btf_id_uncached(name, id);
	if (!e && kfunc_cached < KFUNC_CACHE && strlen(name) < MAX_KFUNC_NAME) {
		strcpy(kfunc_cache[kfunc_cached].name, name);
		kfunc_cache[kfunc_cached++].id = *id;
	}
	return e;
}

static int kfunc_btf_id_uncached(const char *name, uint32_t *id)
{
	int e = read_vmlinux_btf();
	if (e)
		return e;
	const uint8_t *b = vmlinux_btf;
	if (vmlinux_btf_len < 24 || b[0] != 0x9f || b[1] != 0xeb)
		return -EINVAL;
	uint32_t hdr = le32(b + 4), type_off = le32(b + 8), type_len = le32(b + 12), str_off = le32(b + 16),
		 str_len = le32(b + 20);
	if ((uint64_t)hdr + type_off + type_len > vmlinux_btf_len || (uint64_t)hdr + str_off + str_len > vmlinux_btf_len)
		return -EINVAL;
	const uint8_t *t = b + hdr + type_off, *end = t + type_len;
	const char *strs = (const char *)b + hdr + str_off;
	for (uint32_t next = 1; t + 12 <= end; next++) {
		uint32_t name_off = le32(t), info = le32(t + 4);
		uint32_t kind = (info >> 24) & 0x1f, vlen = info & 0xffff;
		long extra = btf_extra(kind, vlen);
		if (extra < 0)
			return -EINVAL;
		if (kind == 12 && name_off < str_len && !strncmp(strs + name_off, name, str_len - name_off)) {
			*id = next;
			return 0;
		}
		t += 12 + extra;
	}
	return -ENOENT;
}

static int set_jit(int on)
{
	if (jit_state == on)
		return 0;
	int fd = open(JIT_SYSCTL, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	const char *v = on ? "1\n" : "0\n";
	ssize_t n = write(fd, v, 2);
	int e = n == 2 ? 0 : (n < 0 ? errno : EIO);
	close(fd);
	if (e)
		return -e;
	jit_state = on;
	return 0;
}

struct job_state {
	int *map_fds;
	int *prog_fds;
	int *att_fds;  /* per attachment: its tracing program */
	int *link_fds; /* per attachment: the link that attaches it */
	uint32_t *kfunc_ids; /* per kfunc name: its BTF id in vmlinux */
	uint8_t **values; /* per array map: its mmap()ed values (BPF_F_MMAPABLE) */
	size_t *mapped;   /* per array map: length of that mapping */
	uint8_t *insns;   /* scratch for patching */
};

/* An mmap()ed array map holds value k at k * round_up(value_size, 8). */
static size_t elem_size(const struct map_spec *ms)
{
	return ((size_t)ms->value_size + 7) & ~(size_t)7;
}

/* ---------------------------------------------------------------------------
 * Maps are kept across jobs and reused by later jobs that ask for the same
 * kind of map: freeing maps (after JITed programs were freed) costs several
 * milliseconds in the guest, more than the rest of a small job.
 *
 * Reuse cannot be observed: every array value is rewritten before every run,
 * and a prog array is emptied (the job's slots deleted) before it is pooled.
 * A prog array keeps the owner the kernel gave it on first use (program type,
 * JITed or not, XDP fragments), so it is only reused by jobs whose programs
 * would give it that same owner: same prog_type, expected_attach_type,
 * prog_flags and jit setting.
 */
#define POOL_MAX 64
#define POOL_MAX_BYTES (1u << 20) /* larger maps are freed at the end of the job */

struct pooled {
	int fd;
	uint8_t *values; /* arrays: the mmap()ed values */
	size_t mapped;
	uint8_t kind, jit;
	uint32_t value_size, max_entries, prog_type, attach_type, prog_flags;
};

static struct pooled pool[POOL_MAX];
static int pool_len;

static int pool_match(const struct pooled *p, const struct job_spec *j, const struct map_spec *ms)
{
	if (p->kind != ms->kind || p->max_entries != ms->max_entries)
		return 0;
	if (ms->kind == 1)
		return p->value_size == ms->value_size;
	return p->jit == j->jit && p->prog_type == j->prog_type && p->attach_type == j->attach_type &&
	       p->prog_flags == j->prog_flags;
}

static int pool_take(const struct job_spec *j, const struct map_spec *ms, uint8_t **values, size_t *mapped)
{
	for (int i = pool_len - 1; i >= 0; i--) {
		if (!pool_match(&pool[i], j, ms))
			continue;
		int fd = pool[i].fd;
		*values = pool[i].values;
		*mapped = pool[i].mapped;
		pool[i] = pool[--pool_len];
		return fd;
	}
	return -1;
}

static void pool_drop(int fd, uint8_t *values, size_t mapped)
{
	if (values)
		munmap(values, mapped);
	close(fd);
}

static void pool_put(const struct job_spec *j, const struct map_spec *ms, int fd, uint8_t *values, size_t mapped)
{
	if (mapped > POOL_MAX_BYTES) {
		pool_drop(fd, values, mapped);
		return;
	}
	if (pool_len == POOL_MAX) {
		/* drop the oldest */
		pool_drop(pool[0].fd, pool[0].values, pool[0].mapped);
		memmove(pool, pool + 1, sizeof(pool[0]) * (POOL_MAX - 1));
		pool_len--;
	}
	pool[pool_len++] = (struct pooled){ fd,		  values,	  mapped,	  ms->kind,
					    j->jit,	  ms->value_size, ms->max_entries, j->prog_type,
					    j->attach_type, j->prog_flags };
}

/* Deletes the slots a job filled; 0 when the prog array is empty again. */
static int empty_prog_array(const struct job_spec *j, uint32_t m, int fd)
{
	for (uint32_t s = 0; s < j->slot_count; s++) {
		if (j->slots[s].map != m)
			continue;
		union bpf_attr a;
		memset(&a, 0, sizeof(a));
		uint32_t key = j->slots[s].key;
		a.map_fd = (uint32_t)fd;
		a.key = ptr64(&key);
		if (sys_bpf(BPF_MAP_DELETE_ELEM, &a) < 0 && errno != ENOENT && errno != E2BIG)
			return -1;
	}
	return 0;
}

static void close_all(const struct job_spec *j, struct job_state *st)
{
	for (uint32_t i = 0; st->link_fds && i < j->attach_count; i++)
		if (st->link_fds[i] >= 0)
			close(st->link_fds[i]);
	for (uint32_t i = 0; st->att_fds && i < j->attach_count; i++)
		if (st->att_fds[i] >= 0)
			close(st->att_fds[i]);
	for (uint32_t i = 0; st->prog_fds && i < j->prog_count; i++)
		if (st->prog_fds[i] >= 0)
			close(st->prog_fds[i]);
	for (uint32_t i = 0; st->map_fds && i < j->map_count; i++) {
		if (st->map_fds[i] < 0)
			continue;
		const struct map_spec *ms = &j->maps[i];
		if ((ms->kind == 1 && st->values[i]) || (ms->kind == 0 && !empty_prog_array(j, i, st->map_fds[i])))
			pool_put(j, ms, st->map_fds[i], st->values[i], st->mapped[i]);
		else
			pool_drop(st->map_fds[i], st->values[i], st->mapped[i]);
	}
	free(st->map_fds);
	free(st->prog_fds);
	free(st->att_fds);
	free(st->link_fds);
	free(st->kfunc_ids);
	free(st->values);
	free(st->mapped);
	free(st->insns);
}

static int create_map(const struct map_spec *ms)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = ms->kind == 0 ? BPF_MAP_TYPE_PROG_ARRAY : BPF_MAP_TYPE_ARRAY;
	a.key_size = 4;
	a.value_size = ms->kind == 0 ? 4 : ms->value_size;
	a.max_entries = ms->max_entries;
	/* mmap()able, so that resetting and reading back takes no syscalls; the
	 * value layout and the programs' view of the map are the same. */
	if (ms->kind == 1)
		a.map_flags = BPF_F_MMAPABLE;
	long fd = sys_bpf(BPF_MAP_CREATE, &a);
	return fd < 0 ? -errno : (int)fd;
}

static int map_update(int fd, uint32_t key, const void *value)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_fd = (uint32_t)fd;
	a.key = ptr64(&key);
	a.value = ptr64(value);
	a.flags = BPF_ANY;
	return sys_bpf(BPF_MAP_UPDATE_ELEM, &a) < 0 ? -errno : 0;
}

/* Load a program's BTF; on failure returns -errno and leaves the kernel's BTF log in vlog
 * (the program is then reported as refused). */
static int load_btf(const struct prog_spec *ps, uint32_t *log_len)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.btf = ptr64(ps->btf);
	a.btf_size = ps->btf_len;
	long fd = sys_bpf(BPF_BTF_LOAD, &a);
	if (fd >= 0)
		return (int)fd;
	int err = errno;
	static const char prefix[] = "jitdiff-agent: BPF_BTF_LOAD of the program's BTF failed:\n";
	memcpy(vlog, prefix, sizeof(prefix));
	a.btf_log_buf = ptr64(vlog + sizeof(prefix) - 1);
	a.btf_log_size = VLOG_SIZE - sizeof(prefix);
	a.btf_log_level = 1;
	fd = sys_bpf(BPF_BTF_LOAD, &a);
	if (fd >= 0)
		close((int)fd);
	vlog[VLOG_SIZE - 1] = 0;
	*log_len = (uint32_t)strlen((char *)vlog);
	return -err;
}

/* How a program is loaded: the job's type, or a tracing program attached to another. */
struct load_as {
	uint32_t prog_type, attach_type, attach_prog_fd, attach_btf_id;
};

/* Load one program; on failure returns -errno and leaves the verifier log in vlog. */
static int load_prog(const struct job_spec *j, const struct load_as *as, const struct prog_spec *ps,
		     const struct job_state *st, uint32_t *log_len)
{
	memcpy(st->insns, ps->insns, (size_t)ps->insn_count * 8);
	for (uint32_t k = 0; k < ps->insn_count; k++) {
		uint8_t *insn = st->insns + 8 * (size_t)k;
		if (is_kfunc_call(insn)) {
			set_insn_imm(insn, st->kfunc_ids[insn_imm(insn)]);
			continue;
		}
		if (insn[0] != 0x18)
			continue;
		uint8_t src = insn[1] >> 4;
		if (src == 1 || src == 2) {
			set_insn_imm(insn, (uint32_t)st->map_fds[insn_imm(insn)]);
		}
		k++;
	}
	static const char license[] = "GPL";
	int btf_fd = -1;
	if (ps->btf_len) {
		btf_fd = load_btf(ps, log_len);
		if (btf_fd < 0)
			return btf_fd;
	}
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	if (btf_fd >= 0) {
		a.prog_btf_fd = (uint32_t)btf_fd;
		a.func_info_rec_size = 8;
		a.func_info = ptr64(ps->func_info);
		a.func_info_cnt = ps->func_info_count;
	}
	a.prog_type = as->prog_type;
	a.expected_attach_type = as->attach_type;
	a.attach_prog_fd = as->attach_prog_fd;
	a.attach_btf_id = as->attach_btf_id;
	a.prog_flags = j->prog_flags;
	a.insn_cnt = ps->insn_count;
	a.insns = ptr64(st->insns);
	a.license = ptr64(license);
	/* Fast path without a log; a rejection is loaded again with log_level 1
	 * to obtain the verifier's explanation (the outcome does not depend on
	 * the log level, and a log that overflows would itself fail the load). */
	long fd = sys_bpf(BPF_PROG_LOAD, &a);
	int err = errno;
	if (fd < 0) {
		vlog[0] = 0;
		a.log_level = 1;
		a.log_size = VLOG_SIZE;
		a.log_buf = ptr64(vlog);
		long again = sys_bpf(BPF_PROG_LOAD, &a);
		if (again >= 0) {
			close((int)again);
			snprintf((char *)vlog, VLOG_SIZE,
				 "jitdiff-agent: load failed with errno %d but succeeded when loaded again with log_level 1",
				 err);
		}
		vlog[VLOG_SIZE - 1] = 0;
		*log_len = (uint32_t)strlen((char *)vlog);
	}
	if (btf_fd >= 0)
		close(btf_fd); /* a loaded program holds its own reference */
	return fd >= 0 ? (int)fd : -err;
}

static int prog_info(int fd, struct bpf_prog_info *info, void *jited, uint32_t jited_len, void *xlated,
		     uint32_t xlated_len)
{
	memset(info, 0, sizeof(*info));
	info->jited_prog_len = jited_len;
	info->jited_prog_insns = ptr64(jited);
	info->xlated_prog_len = xlated_len;
	info->xlated_prog_insns = ptr64(xlated);
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.info.bpf_fd = (uint32_t)fd;
	a.info.info_len = sizeof(*info);
	a.info.info = ptr64(info);
	return sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) < 0 ? -errno : 0;
}

/* Reports the entry's JIT state and optional dumps. Returns -errno on failure. */
static int report_entry(struct out *o, const struct job_spec *j, int fd)
{
	struct bpf_prog_info info;
	int e = prog_info(fd, &info, NULL, 0, NULL, 0);
	if (e)
		return e;
	uint32_t jl = info.jited_prog_len, xl = info.xlated_prog_len;
	put_u8(o, jl > 0);
	put_u32(o, jl);
	put_u32(o, xl);
	uint32_t want_j = (j->flags & JOB_WANT_JITED) && jl <= MAX_IMAGE ? jl : 0;
	uint32_t want_x = (j->flags & JOB_WANT_XLATED) && xl <= MAX_IMAGE ? xl : 0;
	if (!want_j && !want_x) {
		put_u32(o, 0);
		put_u32(o, 0);
		return 0;
	}
	uint8_t *jb = calloc(want_j + 1, 1), *xb = calloc(want_x + 1, 1);
	if (!jb || !xb) {
		free(jb);
		free(xb);
		return -ENOMEM;
	}
	e = prog_info(fd, &info, want_j ? jb : NULL, want_j, want_x ? xb : NULL, want_x);
	if (!e) {
		/* the kernel zeroes the pointer when it refuses a raw dump */
		put_blob(o, jb, info.jited_prog_insns ? want_j : 0);
		put_blob(o, xb, info.xlated_prog_insns ? want_x : 0);
	}
	free(jb);
	free(xb);
	return e;
}

/* Every array map gets its initial contents again; the input map gets the
 * input's overlay written over the start of them. */
static void reset_arrays(const struct job_spec *j, const struct job_state *st, const struct input_spec *in)
{
	for (uint32_t m = 0; m < j->map_count; m++) {
		const struct map_spec *ms = &j->maps[m];
		if (ms->kind != 1)
			continue;
		size_t es = elem_size(ms);
		const uint8_t *overlay = m == j->input_map ? in->overlay : NULL;
		size_t overlay_len = overlay ? in->overlay_len : 0;
		for (uint32_t k = 0; k < ms->max_entries; k++) {
			size_t flat = (size_t)k * ms->value_size; /* offset in the flat contents */
			uint8_t *dst = st->values[m] + (size_t)k * es;
			memcpy(dst, ms->init + flat, ms->value_size);
			if (flat < overlay_len) {
				size_t n = overlay_len - flat;
				memcpy(dst, overlay + flat, n < ms->value_size ? n : ms->value_size);
			}
		}
	}
}

static void read_maps(struct out *o, const struct job_spec *j, const struct job_state *st)
{
	put_u32(o, j->map_count);
	for (uint32_t m = 0; m < j->map_count; m++) {
		const struct map_spec *ms = &j->maps[m];
		if (ms->kind != 1) {
			put_u32(o, 0);
			continue;
		}
		size_t es = elem_size(ms);
		put_u32(o, (uint32_t)((size_t)ms->value_size * ms->max_entries));
		for (uint32_t k = 0; k < ms->max_entries; k++)
			put_bytes(o, st->values[m] + (size_t)k * es, ms->value_size);
	}
}

static void run_input(struct out *o, const struct job_spec *j, int prog_fd, const struct input_spec *in,
		      uint8_t *ctx_copy)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.test.prog_fd = (uint32_t)prog_fd;
	if (j->buffer_mode == BUF_DATA || j->buffer_mode == BUF_DATA_CTX) {
		uint32_t room = j->buffer_mode == BUF_DATA_CTX ? CTX_ROOM : 0;
		a.test.repeat = 1;
		a.test.data_in = ptr64(in->len ? in->data : NULL);
		a.test.data_size_in = in->len;
		a.test.data_out = ptr64(outbuf + room);
		a.test.data_size_out = OUT_SIZE - room;
		if (room) {
			/* No ctx_in: the kernel starts from a zeroed context. */
			a.test.ctx_out = ptr64(outbuf);
			a.test.ctx_size_out = room;
		}
	} else {
		if (in->len)
			memcpy(ctx_copy, in->data, in->len);
		a.test.ctx_in = ptr64(in->len ? ctx_copy : NULL);
		a.test.ctx_size_in = in->len;
		if (j->buffer_mode == BUF_CTX) {
			a.test.repeat = 1;
			a.test.ctx_out = ptr64(outbuf);
			a.test.ctx_size_out = OUT_SIZE;
		}
		/* BUF_CTX_IN_PLACE (BPF_PROG_TYPE_SYSCALL): the kernel refuses
		 * ctx_out and repeat, and writes the context back into ctx_in. */
	}
	long r = sys_bpf(BPF_PROG_TEST_RUN, &a);
	int err = r < 0 ? errno : 0;
	put_u32(o, (uint32_t)err);
	put_u32(o, a.test.retval);
	put_u32(o, a.test.duration);
	/* On success (or ENOSPC, where the kernel copies a truncated buffer) the
	 * size fields say how much was written back. */
	if (r < 0 && err != ENOSPC) {
		put_u8(o, OUT_NONE);
		put_u32(o, 0);
	} else if (j->buffer_mode == BUF_DATA_CTX) {
		/* ctx_out, then data_out moved right behind it. */
		uint32_t ctx_n = a.test.ctx_size_out <= CTX_ROOM ? a.test.ctx_size_out : CTX_ROOM;
		uint32_t data_n = a.test.data_size_out <= OUT_SIZE - CTX_ROOM ? a.test.data_size_out : OUT_SIZE - CTX_ROOM;
		memmove(outbuf + ctx_n, outbuf + CTX_ROOM, data_n);
		put_u8(o, OUT_CTX_OUT_DATA);
		put_blob(o, outbuf, ctx_n + data_n);
	} else if (j->buffer_mode == BUF_DATA) {
		put_u8(o, OUT_DATA);
		put_blob(o, outbuf, a.test.data_size_out <= OUT_SIZE ? a.test.data_size_out : OUT_SIZE);
	} else if (j->buffer_mode == BUF_CTX) {
		put_u8(o, OUT_CTX_OUT);
		put_blob(o, outbuf, a.test.ctx_size_out <= OUT_SIZE ? a.test.ctx_size_out : OUT_SIZE);
	} else {
		put_u8(o, OUT_CTX_IN);
		put_blob(o, ctx_copy, in->len);
	}
}

/* Run counts of programs are kept while this fd is open (BPF_ENABLE_STATS). */
static int stats_fd = -1;

static int enable_stats(void)
{
	if (stats_fd >= 0)
		return 0;
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.enable_stats.type = BPF_STATS_RUN_TIME;
	long fd = sys_bpf(BPF_ENABLE_STATS, &a);
	if (fd < 0)
		return -errno;
	stats_fd = (int)fd;
	return 0;
}

/* How many times program `fd` has run (its run_cnt). */
static int run_count(int fd, uint64_t *count)
{
	struct bpf_prog_info info;
	int e = prog_info(fd, &info, NULL, 0, NULL, 0);
	*count = info.run_cnt;
	return e;
}

static void setup_failed(struct out *o, size_t start, int err, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o->len = start; /* drop whatever this job had written */
	put_u8(o, OUTCOME_SETUP_FAILED);
	put_u32(o, (uint32_t)err);
	put_str(o, msg);
}

static void run_job(struct out *o, const struct job_spec *j)
{
	size_t start = o->len;
	struct job_state st;
	memset(&st, 0, sizeof(st));
	uint8_t *ctx_copy = NULL;
	uint32_t max_insns = 1, max_input = 1;
	for (uint32_t p = 0; p < j->prog_count; p++)
		if (j->progs[p].insn_count > max_insns)
			max_insns = j->progs[p].insn_count;
	for (uint32_t a = 0; a < j->attach_count; a++)
		if (j->attaches[a].insn_count > max_insns)
			max_insns = j->attaches[a].insn_count;
	for (uint32_t i = 0; i < j->input_count; i++)
		if (j->inputs[i].len > max_input)
			max_input = j->inputs[i].len;

	st.map_fds = malloc(sizeof(int) * (j->map_count + 1));
	st.prog_fds = malloc(sizeof(int) * (j->prog_count + 1));
	st.att_fds = malloc(sizeof(int) * (j->attach_count + 1));
	st.link_fds = malloc(sizeof(int) * (j->attach_count + 1));
	st.kfunc_ids = calloc(j->kfunc_count + 1, sizeof(uint32_t));
	st.values = calloc(j->map_count + 1, sizeof(uint8_t *));
	st.mapped = calloc(j->map_count + 1, sizeof(size_t));
	st.insns = malloc((size_t)max_insns * 8);
	ctx_copy = malloc(max_input);
	if (!st.map_fds || !st.prog_fds || !st.att_fds || !st.link_fds || !st.kfunc_ids || !st.values ||
	    !st.mapped || !st.insns || !ctx_copy) {
		setup_failed(o, start, ENOMEM, "agent out of memory");
		goto done;
	}
	for (uint32_t i = 0; i < j->map_count; i++)
		st.map_fds[i] = -1;
	for (uint32_t i = 0; i < j->prog_count; i++)
		st.prog_fds[i] = -1;
	for (uint32_t i = 0; i < j->attach_count; i++)
		st.att_fds[i] = st.link_fds[i] = -1;

	int e = set_jit(j->jit);
	if (e) {
		setup_failed(o, start, -e, "writing %d to %s", j->jit, JIT_SYSCTL);
		goto done;
	}
	for (uint32_t f = 0; f < j->kfunc_count; f++) {
		e = kfunc_btf_id(j->kfuncs[f], &st.kfunc_ids[f]);
		if (e) {
			setup_failed(o, start, -e, "looking up kernel function %s in %s", j->kfuncs[f], VMLINUX_BTF);
			goto done;
		}
	}
	for (uint32_t m = 0; m < j->map_count; m++) {
		const struct map_spec *ms = &j->maps[m];
		int fd = pool_take(j, ms, &st.values[m], &st.mapped[m]);
		if (fd >= 0) {
			st.map_fds[m] = fd;
			continue;
		}
		fd = create_map(ms);
		if (fd < 0) {
			setup_failed(o, start, -fd, "creating map %u (%s, value_size %u, max_entries %u)", m,
				     ms->kind ? "array" : "prog array", ms->value_size, ms->max_entries);
			goto done;
		}
		st.map_fds[m] = fd;
		if (ms->kind == 1) {
			size_t len = elem_size(ms) * ms->max_entries;
			void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			if (p == MAP_FAILED) {
				setup_failed(o, start, errno, "mmap of array map %u", m);
				goto done;
			}
			st.values[m] = p;
			st.mapped[m] = len;
		}
	}
	struct load_as own = { j->prog_type, j->attach_type, 0, 0 };
	for (uint32_t p = 0; p < j->prog_count; p++) {
		uint32_t log_len = 0;
		int fd = load_prog(j, &own, &j->progs[p], &st, &log_len);
		if (fd < 0) {
			o->len = start;
			put_u8(o, OUTCOME_REJECTED);
			put_u32(o, p);
			put_u32(o, (uint32_t)-fd);
			uint32_t skip = log_len > VLOG_REPORT_MAX ? log_len - VLOG_REPORT_MAX : 0;
			put_blob(o, vlog + skip, log_len - skip);
			goto done;
		}
		st.prog_fds[p] = fd;
	}
	for (uint32_t s = 0; s < j->slot_count; s++) {
		const struct slot_spec *ss = &j->slots[s];
		uint32_t fd = (uint32_t)st.prog_fds[ss->prog];
		e = map_update(st.map_fds[ss->map], ss->key, &fd);
		if (e) {
			setup_failed(o, start, -e, "filling slot %u (map %u key %u prog %u)", s, ss->map, ss->key,
				     ss->prog);
			goto done;
		}
	}

	if (j->attach_count) {
		e = enable_stats();
		if (e) {
			setup_failed(o, start, -e, "BPF_ENABLE_STATS (the tracing programs' run counts)");
			goto done;
		}
	}
	for (uint32_t a = 0; a < j->attach_count; a++) {
		const struct attach_spec *as = &j->attaches[a];
		struct prog_spec ps = { as->insn_count, as->insns, 0, NULL, 0, NULL };
		struct load_as tracing = { BPF_PROG_TYPE_TRACING,
					   as->kind == ATTACH_FENTRY ? BPF_TRACE_FENTRY : BPF_TRACE_FEXIT,
					   (uint32_t)st.prog_fds[as->target], as->btf_id };
		uint32_t log_len = 0;
		int fd = load_prog(j, &tracing, &ps, &st, &log_len);
		if (fd < 0) {
			o->len = start;
			put_u8(o, OUTCOME_REJECTED);
			put_u32(o, j->prog_count + a);
			put_u32(o, (uint32_t)-fd);
			uint32_t skip = log_len > VLOG_REPORT_MAX ? log_len - VLOG_REPORT_MAX : 0;
			put_blob(o, vlog + skip, log_len - skip);
			goto done;
		}
		st.att_fds[a] = fd;
		union bpf_attr la;
		memset(&la, 0, sizeof(la));
		la.link_create.prog_fd = (uint32_t)fd;
		la.link_create.attach_type = tracing.attach_type;
		long link = sys_bpf(BPF_LINK_CREATE, &la);
		if (link < 0) {
			setup_failed(o, start, errno, "attaching tracing program %u to program %u (btf id %u)", a,
				     as->target, as->btf_id);
			goto done;
		}
		st.link_fds[a] = (int)link;
	}

	put_u8(o, OUTCOME_RAN);
	e = report_entry(o, j, st.prog_fds[j->entry]);
	if (e) {
		setup_failed(o, start, -e, "BPF_OBJ_GET_INFO_BY_FD on the entry");
		goto done;
	}
	put_u32(o, j->input_count);
	for (uint32_t i = 0; i < j->input_count; i++) {
		uint64_t before[MAX_ATTACH];
		for (uint32_t a = 0; a < j->attach_count; a++)
			if ((e = run_count(st.att_fds[a], &before[a])))
				break;
		reset_arrays(j, &st, &j->inputs[i]);
		run_input(o, j, st.prog_fds[j->entry], &j->inputs[i], ctx_copy);
		read_maps(o, j, &st);
		put_u32(o, j->attach_count);
		for (uint32_t a = 0; a < j->attach_count && !e; a++) {
			uint64_t after = 0;
			e = run_count(st.att_fds[a], &after);
			put_u32(o, (uint32_t)(after - before[a]));
		}
		if (e) {
			setup_failed(o, start, -e, "BPF_OBJ_GET_INFO_BY_FD on a tracing program (its run count)");
			goto done;
		}
	}
done:
	close_all(j, &st);
	free(ctx_copy);
}

/* ---------------------------------------------------------------------------
 * Channel I/O
 */
static int read_full(void *dst, size_t n)
{
	uint8_t *p = dst;
	while (n) {
		ssize_t r = read(chan, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void write_full(const void *src, size_t n)
{
	const uint8_t *p = src;
	while (n) {
		ssize_t r = write(chan, p, n);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0) {
			note("write to %s failed: %s", chan_name, strerror(errno));
			sleep(1);
			return;
		}
		p += r;
		n -= (size_t)r;
	}
}

static void send_frame(uint32_t magic, const struct out *o)
{
	uint8_t hdr[8];
	uint32_t len = (uint32_t)o->len;
	for (int i = 0; i < 4; i++) {
		hdr[i] = (uint8_t)(magic >> (8 * i));
		hdr[4 + i] = (uint8_t)(len >> (8 * i));
	}
	write_full(hdr, 8);
	write_full(o->p, o->len);
}

static void send_error(const char *msg)
{
	struct out o = { 0 };
	put_u8(&o, 1);
	put_str(&o, msg);
	if (o.oom) {
		static uint8_t fallback[] = { 1, 0, 0, 0, 0 };
		struct out f = { fallback, sizeof(fallback), sizeof(fallback), 0 };
		send_frame(MAGIC_RESPONSE, &f);
	} else {
		send_frame(MAGIC_RESPONSE, &o);
	}
	free(o.p);
}

static uint32_t le32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Slides an 8-byte window through the input until it starts with the request
 * magic; the window then holds a header again. Returns -1 when the channel
 * fails. */
static int resync(uint8_t hdr[8])
{
	while (le32(hdr) != MAGIC_REQUEST) {
		memmove(hdr, hdr + 1, 7);
		if (read_full(hdr + 7, 1))
			return -1;
	}
	return 0;
}

/* The host has gone (its end of the channel is closed): a guest nobody can
 * talk to only burns CPU, so power off; qemu runs with -no-reboot and exits. */
static void host_gone(void)
{
	if (!chan_is_port) {
		sleep(1); /* a console never reports the host's side: keep waiting */
		return;
	}
	note("the host closed %s; powering off", chan_name);
	sync();
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

static void serve_one(void)
{
	uint8_t hdr[8];
	if (read_full(hdr, 8)) {
		host_gone();
		return;
	}
	/* Out of sync (a bad magic, or a length no sender would use): answer once,
	 * then skip input up to the next magic. */
	while (le32(hdr) != MAGIC_REQUEST || le32(hdr + 4) > MAX_PAYLOAD) {
		if (le32(hdr) != MAGIC_REQUEST) {
			send_error("bad request magic (expected \"JDRQ\"); skipping input up to the next magic");
		} else {
			char msg[128];
			snprintf(msg, sizeof(msg),
				 "request payload of %u bytes exceeds the limit of %u; skipping input up to the next magic",
				 le32(hdr + 4), MAX_PAYLOAD);
			send_error(msg);
			hdr[0] ^= 0xff; /* step past this magic */
		}
		if (resync(hdr))
			return;
	}
	uint32_t len = le32(hdr + 4);
	uint8_t *payload = malloc(len ? len : 1);
	if (!payload) {
		uint8_t tmp[4096];
		for (uint32_t left = len; left;) {
			uint32_t k = left > sizeof(tmp) ? (uint32_t)sizeof(tmp) : left;
			if (read_full(tmp, k))
				return;
			left -= k;
		}
		send_error("agent out of memory for the request");
		return;
	}
	if (read_full(payload, len)) {
		free(payload);
		host_gone();
		return;
	}
	struct cur c = { payload, len, 0, { 0 } };
	uint32_t count = 0;
	struct job_spec *jobs = parse_request(&c, &count);
	if (c.err[0]) {
		char msg[200];
		snprintf(msg, sizeof(msg), "malformed request: %s", c.err);
		send_error(msg);
	} else {
		struct out o = { 0 };
		put_u8(&o, 0);
		put_u32(&o, count);
		for (uint32_t i = 0; i < count && !o.oom; i++)
			run_job(&o, &jobs[i]);
		if (o.oom)
			send_error("agent out of memory for the response");
		else
			send_frame(MAGIC_RESPONSE, &o);
		free(o.p);
	}
	free_jobs(jobs, count);
	free(payload);
}

/* ---------------------------------------------------------------------------
 * Start-up
 */
static void mount_fs(const char *src, const char *dir, const char *type)
{
	mkdir(dir, 0755);
	if (mount(src, dir, type, 0, NULL) && errno != EBUSY)
		note("mount %s on %s: %s", type, dir, strerror(errno));
}

/* The first virtio-serial port (/dev/vportNpM): a plain byte stream, no tty. */
static int open_port(void)
{
	DIR *d = opendir("/dev");
	if (!d)
		return -1;
	int fd = -1;
	struct dirent *e;
	while (fd < 0 && (e = readdir(d))) {
		if (strncmp(e->d_name, "vport", 5) != 0 || strlen(e->d_name) > 32)
			continue;
		snprintf(chan_name, sizeof(chan_name), "/dev/%s", e->d_name);
		fd = open(chan_name, O_RDWR | O_CLOEXEC);
	}
	closedir(d);
	return fd;
}

/* The virtio console, set to raw mode so that every byte passes unchanged. */
static int open_console(void)
{
	snprintf(chan_name, sizeof(chan_name), "%s", CONSOLE_CHANNEL);
	int fd = open(chan_name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct termios t;
	if (tcgetattr(fd, &t) == 0) {
		cfmakeraw(&t);
		t.c_cc[VMIN] = 1;
		t.c_cc[VTIME] = 0;
		if (tcsetattr(fd, TCSANOW, &t))
			note("tcsetattr on %s: %s", chan_name, strerror(errno));
	} else {
		note("tcgetattr on %s: %s", chan_name, strerror(errno));
	}
	return fd;
}

static int open_channel(void)
{
	/* the devices may register a little after init starts */
	for (int tries = 0; tries < 300; tries++) {
		int fd = open_port();
		if (fd >= 0) {
			chan_is_port = 1;
			return fd;
		}
		fd = open_console();
		if (fd >= 0)
			return fd;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return -1;
}

static int read_jit_sysctl(void)
{
	char b[8] = { 0 };
	int fd = open(JIT_SYSCTL, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, b, sizeof(b) - 1);
	close(fd);
	return n > 0 ? atoi(b) : -1;
}

int main(void)
{
	mount_fs("proc", "/proc", "proc");
	mount_fs("sysfs", "/sys", "sysfs");
	mount_fs("devtmpfs", "/dev", "devtmpfs");
	vlog = malloc(VLOG_SIZE);
	outbuf = malloc(OUT_SIZE);
	if (!vlog || !outbuf) {
		note("out of memory at start-up");
		for (;;)
			pause();
	}
	chan = open_channel();
	if (chan < 0) {
		note("no channel: neither a virtio-serial port (/dev/vport*) nor %s", CONSOLE_CHANNEL);
		sync();
		reboot(RB_POWER_OFF);
		for (;;)
			pause();
	}
	jit_state = read_jit_sysctl();

	struct utsname u;
	char text[1024];
	if (uname(&u))
		memset(&u, 0, sizeof(u));
	snprintf(text, sizeof(text), "release=%s machine=%s bpf_jit_enable=%d channel=%s", u.release, u.machine,
		 jit_state, chan_name);
	struct out o = { 0 };
	put_u32(&o, PROTO_VERSION);
	put_str(&o, text);
	send_frame(MAGIC_READY, &o);
	free(o.p);

	for (;;)
		serve_one();
}
