/* jitdiff: the few kernel facilities that lib/test_bpf.c's test table and generator
 * functions use, for a userspace build on a 64-bit little-endian host.
 *
 * kernel/test-vectors.sh compiles this header, the table part of the kernel's
 * lib/test_bpf.c (read where it lies in the kernel source) and dump.c as one unit. The
 * uapi headers (struct bpf_insn, struct sock_filter, the opcode fields, the helper ids)
 * come from the same kernel source through -I <source>/include/uapi, so the ids and
 * constants are the ones of the kernel under test. What is defined here is written from
 * the eBPF instruction encoding (Documentation/bpf/standardization/instruction-set.rst):
 * each macro builds one instruction slot from its fields.
 */
#ifndef JITDIFF_TEST_BPF_SHIM_H
#define JITDIFF_TEST_BPF_SHIM_H

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/bpf.h>
#include <linux/filter.h>

/* glibc's <endian.h> defines __BIG_ENDIAN as a byte-order constant on every host; the
 * kernel defines it only on big-endian CPUs, and test_bpf.c tests it with #ifdef. */
#undef __BIG_ENDIAN
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__ || __SIZEOF_POINTER__ != 8
#error "the test vectors are made on a 64-bit little-endian host"
#endif

/* --- types and small utilities -------------------------------------------------- */
typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int8_t s8;
typedef int16_t s16;
typedef int32_t s32;
typedef int64_t s64;

#define KBUILD_MODNAME "test_bpf"
#define BIT(n) (1UL << (n))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define S16_MAX INT16_MAX
#define S32_MAX INT32_MAX
#define S32_MIN INT32_MIN
#define S64_MAX INT64_MAX
#define U32_MAX UINT32_MAX
#define ETH_P_IP 0x0800
#define GFP_KERNEL 0
#define MAX_TAIL_CALL_CNT 33

/* A generator that breaks its own length arithmetic must not produce vectors. */
#define BUG_ON(cond)                                                                    \
	do {                                                                            \
		if (cond) {                                                             \
			fprintf(stderr, "test-vectors: BUG_ON(%s) at %s:%d\n", #cond,   \
				__FILE__, __LINE__);                                    \
			abort();                                                        \
		}                                                                       \
	} while (0)

/* The kernel's max() and abs() keep the type of their operands (abs of an s64 is an s64). */
#define max(a, b) ((a) > (b) ? (a) : (b))
#undef abs
#define abs(x) ((x) < 0 ? -(x) : (x))

static inline void *kmalloc_array(size_t n, size_t size, int flags)
{
	(void)flags;
	return calloc(n ? n : 1, size);
}

/* Linux 7.x: an array of `count` objects of the type of `var_or_type` (GFP flags may follow). */
#define kmalloc_objs(var_or_type, count, ...)                                          \
	((typeof(var_or_type) *)kmalloc_array((count), sizeof(var_or_type), GFP_KERNEL))

static inline u64 div64_u64(u64 a, u64 b)
{
	return a / b;
}

/* Signed division truncates toward zero, as C's does. */
static inline s64 div64_s64(s64 a, s64 b)
{
	return a / b;
}

static inline u64 div64_u64_rem(u64 a, u64 b, u64 *rem)
{
	*rem = a % b;
	return a / b;
}

/* Byte order, as constant expressions (the table uses them in static initialisers). */
#define cpu_to_le16(x) ((u16)(x))
#define cpu_to_le32(x) ((u32)(x))
#define cpu_to_le64(x) ((u64)(x))
#define cpu_to_be16(x) __builtin_bswap16((u16)(x))
#define cpu_to_be32(x) __builtin_bswap32((u32)(x))
#define cpu_to_be64(x) __builtin_bswap64((u64)(x))

/* The kernel's seeded pseudo-random generator (a combined Tausworthe generator with
 * four components, L'Ecuyer 1999), used by a generator for its operand values. */
struct rnd_state {
	u32 s1, s2, s3, s4;
};

static inline u32 jitdiff_taus_step(u32 s, unsigned a, unsigned b, u32 mask, unsigned d)
{
	return ((s & mask) << d) ^ (((s << a) ^ s) >> b);
}

static inline u32 prandom_u32_state(struct rnd_state *st)
{
	st->s1 = jitdiff_taus_step(st->s1, 6, 13, 0xfffffffeU, 18);
	st->s2 = jitdiff_taus_step(st->s2, 2, 27, 0xfffffff8U, 2);
	st->s3 = jitdiff_taus_step(st->s3, 13, 21, 0xfffffff0U, 7);
	st->s4 = jitdiff_taus_step(st->s4, 3, 12, 0xffffff80U, 13);
	return st->s1 ^ st->s2 ^ st->s3 ^ st->s4;
}

/* Each component's state must be at least its minimum; smaller seeds are raised. */
static inline u32 jitdiff_taus_seed(u32 x, u32 min)
{
	return x < min ? x + min : x;
}

static inline void prandom_seed_state(struct rnd_state *st, u64 seed)
{
	u32 i = (u32)((seed >> 32) ^ (seed << 10) ^ seed);

	st->s1 = jitdiff_taus_seed(i, 2);
	st->s2 = jitdiff_taus_seed(i, 8);
	st->s3 = jitdiff_taus_seed(i, 16);
	st->s4 = jitdiff_taus_seed(i, 128);
}

/* The test runner's device, declared just above the part of the file that is compiled. */
struct net_device {
	int ifindex, type;
};

/* A helper the tail-call table defines for its programs to call; only its id matters. */
#define BPF_CALL_1(name, type, arg) static __attribute__((unused)) u64 name(type arg)

/* --- instruction slots ------------------------------------------------------------ */
#define BPF_REG_FP BPF_REG_10
#define BPF_TAIL_CALL 0xf0
#define BPF_FROM_LE BPF_TO_LE
#define BPF_FROM_BE BPF_TO_BE

#define BPF_RAW_INSN(CODE, DST, SRC, OFF, IMM)                                          \
	((struct bpf_insn){ .code = (CODE), .dst_reg = (DST), .src_reg = (SRC),          \
			    .off = (OFF), .imm = (IMM) })

/* Arithmetic: class, operation and operand source in the opcode. */
#define BPF_ALU64_REG_OFF(OP, DST, SRC, OFF) BPF_RAW_INSN(BPF_ALU64 | BPF_OP(OP) | BPF_X, DST, SRC, OFF, 0)
#define BPF_ALU32_REG_OFF(OP, DST, SRC, OFF) BPF_RAW_INSN(BPF_ALU | BPF_OP(OP) | BPF_X, DST, SRC, OFF, 0)
#define BPF_ALU64_IMM_OFF(OP, DST, IMM, OFF) BPF_RAW_INSN(BPF_ALU64 | BPF_OP(OP) | BPF_K, DST, 0, OFF, IMM)
#define BPF_ALU32_IMM_OFF(OP, DST, IMM, OFF) BPF_RAW_INSN(BPF_ALU | BPF_OP(OP) | BPF_K, DST, 0, OFF, IMM)
#define BPF_ALU64_REG(OP, DST, SRC) BPF_ALU64_REG_OFF(OP, DST, SRC, 0)
#define BPF_ALU32_REG(OP, DST, SRC) BPF_ALU32_REG_OFF(OP, DST, SRC, 0)
#define BPF_ALU64_IMM(OP, DST, IMM) BPF_ALU64_IMM_OFF(OP, DST, IMM, 0)
#define BPF_ALU32_IMM(OP, DST, IMM) BPF_ALU32_IMM_OFF(OP, DST, IMM, 0)

/* Byte swaps: the width in imm; BPF_ALU64 | BPF_END is the unconditional swap. */
#define BPF_ENDIAN(TYPE, DST, LEN) BPF_RAW_INSN(BPF_ALU | BPF_END | BPF_SRC(TYPE), DST, 0, 0, LEN)
#define BPF_BSWAP(DST, LEN) BPF_RAW_INSN(BPF_ALU64 | BPF_END | BPF_SRC(BPF_TO_LE), DST, 0, 0, LEN)

/* Moves; a sign-extending move has the source width in off, and a move with imm 1 is
 * the kernel-internal zero extension of a register into itself. */
#define BPF_MOV64_REG(DST, SRC) BPF_RAW_INSN(BPF_ALU64 | BPF_MOV | BPF_X, DST, SRC, 0, 0)
#define BPF_MOV32_REG(DST, SRC) BPF_RAW_INSN(BPF_ALU | BPF_MOV | BPF_X, DST, SRC, 0, 0)
#define BPF_MOVSX64_REG(DST, SRC, OFF) BPF_RAW_INSN(BPF_ALU64 | BPF_MOV | BPF_X, DST, SRC, OFF, 0)
#define BPF_MOVSX32_REG(DST, SRC, OFF) BPF_RAW_INSN(BPF_ALU | BPF_MOV | BPF_X, DST, SRC, OFF, 0)
#define BPF_MOV64_IMM(DST, IMM) BPF_RAW_INSN(BPF_ALU64 | BPF_MOV | BPF_K, DST, 0, 0, IMM)
#define BPF_MOV32_IMM(DST, IMM) BPF_RAW_INSN(BPF_ALU | BPF_MOV | BPF_K, DST, 0, 0, IMM)
#define BPF_ZEXT_REG(DST) BPF_RAW_INSN(BPF_ALU | BPF_MOV | BPF_X, DST, DST, 0, 1)

/* The 16-byte immediate load: low word in the first slot, high word in the second. */
#define BPF_LD_IMM64_RAW(DST, SRC, IMM)                                                 \
	BPF_RAW_INSN(BPF_LD | BPF_DW | BPF_IMM, DST, SRC, 0, (u32)(u64)(IMM)),          \
	BPF_RAW_INSN(0, 0, 0, 0, (u32)(((u64)(IMM)) >> 32))
#define BPF_LD_IMM64(DST, IMM) BPF_LD_IMM64_RAW(DST, 0, IMM)

/* Memory. */
#define BPF_LDX_MEM(SIZE, DST, SRC, OFF) BPF_RAW_INSN(BPF_LDX | BPF_SIZE(SIZE) | BPF_MEM, DST, SRC, OFF, 0)
#define BPF_LDX_MEMSX(SIZE, DST, SRC, OFF) BPF_RAW_INSN(BPF_LDX | BPF_SIZE(SIZE) | BPF_MEMSX, DST, SRC, OFF, 0)
#define BPF_STX_MEM(SIZE, DST, SRC, OFF) BPF_RAW_INSN(BPF_STX | BPF_SIZE(SIZE) | BPF_MEM, DST, SRC, OFF, 0)
#define BPF_ST_MEM(SIZE, DST, OFF, IMM) BPF_RAW_INSN(BPF_ST | BPF_SIZE(SIZE) | BPF_MEM, DST, 0, OFF, IMM)
#define BPF_ATOMIC_OP(SIZE, OP, DST, SRC, OFF)                                          \
	BPF_RAW_INSN(BPF_STX | BPF_SIZE(SIZE) | BPF_ATOMIC, DST, SRC, OFF, OP)
#define BPF_STX_XADD(SIZE, DST, SRC, OFF) BPF_ATOMIC_OP(SIZE, BPF_ADD, DST, SRC, OFF)

/* Jumps, calls and exit. */
#define BPF_JMP_REG(OP, DST, SRC, OFF) BPF_RAW_INSN(BPF_JMP | BPF_OP(OP) | BPF_X, DST, SRC, OFF, 0)
#define BPF_JMP_IMM(OP, DST, IMM, OFF) BPF_RAW_INSN(BPF_JMP | BPF_OP(OP) | BPF_K, DST, 0, OFF, IMM)
#define BPF_JMP32_REG(OP, DST, SRC, OFF) BPF_RAW_INSN(BPF_JMP32 | BPF_OP(OP) | BPF_X, DST, SRC, OFF, 0)
#define BPF_JMP32_IMM(OP, DST, IMM, OFF) BPF_RAW_INSN(BPF_JMP32 | BPF_OP(OP) | BPF_K, DST, 0, OFF, IMM)
#define BPF_JMP_A(OFF) BPF_RAW_INSN(BPF_JMP | BPF_JA, 0, 0, OFF, 0)
#define BPF_CALL_REL(IMM) BPF_RAW_INSN(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, IMM)
#define BPF_EXIT_INSN() BPF_RAW_INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* Classic BPF statements and jumps, for the classic entries of the same table. */
#define __BPF_STMT(CODE, K) ((struct sock_filter){ .code = (CODE), .k = (K) })
#define __BPF_JUMP(CODE, K, JT, JF)                                                     \
	((struct sock_filter){ .code = (CODE), .jt = (JT), .jf = (JF), .k = (K) })

#endif
