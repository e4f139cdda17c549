/*
 * Host-side check of the agent's request parser: parses random mutations of a
 * valid request under the sanitizers. Not part of the guest.
 *
 *   gcc -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -std=gnu11 \
 *       -o /tmp/fuzz_parser kernel/agent/fuzz_parser.c && /tmp/fuzz_parser [iterations]
 */
#define main agent_main
#include "agent.c"
#undef main

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

static void put32(struct out *o, uint32_t v)
{
	put_u32(o, v);
}

/* A request with two jobs that use every field. */
static void seed(struct out *o)
{
	put32(o, 2);
	for (int j = 0; j < 2; j++) {
		uint32_t input_map = j ? 1 : 0xffffffffu;
		put_u8(o, 1);
		put_u8(o, 3);
		put32(o, 6);
		put32(o, 0);
		put32(o, 0);
		put_u8(o, 0);
		put32(o, input_map);
		put32(o, 1); /* one kernel function name */
		put32(o, 17);
		put_bytes(o, (const uint8_t *)"bpf_rcu_read_lock", 17);
		put32(o, 2);
		put_u8(o, 0); /* prog array */
		put32(o, 4);
		put_u8(o, 1); /* array 8 x 2 */
		put32(o, 8);
		put32(o, 2);
		for (int k = 0; k < 16; k++)
			put_u8(o, (uint8_t)k);
		put32(o, 2);
		static const uint8_t prog0[] = {
			0x18, 0x21, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* lddw r1, map_value(1) */
			0x18, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* lddw r2, map(0) */
			0xb7, 0, 0, 0, 1, 0, 0, 0,			       /* r0 = 1 */
			0x95, 0, 0, 0, 0, 0, 0, 0,			       /* exit */
		};
		static const uint8_t prog1[] = {
			0x85, 0x20, 0, 0, 0, 0, 0, 0, /* call kfunc 0 */
			0xb7, 0, 0, 0, 2, 0, 0, 0,    /* r0 = 2 */
			0x95, 0, 0, 0, 0, 0, 0, 0,    /* exit */
		};
		put32(o, sizeof(prog0) / 8);
		put_bytes(o, prog0, sizeof(prog0));
		put32(o, 0); /* no btf, no func_info */
		put32(o, 0);
		put32(o, sizeof(prog1) / 8);
		put_bytes(o, prog1, sizeof(prog1));
		put32(o, 8); /* 8 bytes standing for a btf, one func_info record */
		put_bytes(o, (const uint8_t *)"\x9f\xeb\x01\x00btf!", 8);
		put32(o, 1);
		put32(o, 0);
		put32(o, 3);
		put32(o, 1); /* slot: map 0 key 1 prog 1 */
		put32(o, 0);
		put32(o, 1);
		put32(o, 1);
		put32(o, 0); /* entry */
		put32(o, 1); /* an fexit on prog 1's function with BTF id 3 */
		put_u8(o, 1);
		put32(o, 1);
		put32(o, 3);
		put32(o, sizeof(prog1) / 8);
		put_bytes(o, prog1, sizeof(prog1));
		put32(o, 2);
		for (int i = 0; i < 2; i++) {
			put32(o, 14);
			for (int k = 0; k < 14; k++)
				put_u8(o, 0);
			if (input_map != 0xffffffffu) {
				put32(o, 4);
				put32(o, 0x04030201);
			}
		}
	}
}

int main(int argc, char **argv)
{
	long iterations = argc > 1 ? atol(argv[1]) : 300000;
	struct out s = { 0 };
	seed(&s);
	long ok = 0, malformed = 0;
	for (long it = 0; it < iterations; it++) {
		size_t len = s.len;
		uint8_t *buf = malloc(len + 64);
		memcpy(buf, s.p, len);
		for (int m = 1 + (int)(rnd() % 4); m > 0; m--) {
			switch (rnd() % 4) {
			case 0: /* a random byte */
				if (len)
					buf[rnd() % len] = (uint8_t)rnd();
				break;
			case 1: /* truncate */
				len = rnd() % (len + 1);
				break;
			case 2: { /* a count-like value */
				uint32_t v = rnd() % 5 == 0 ? 0xffffffffu : rnd() % 300;
				size_t at = len ? rnd() % len : 0;
				if (at + 4 <= len)
					memcpy(buf + at, &v, 4);
				break;
			}
			default: /* append garbage */
				if (len + 16 <= s.len + 64)
					for (int k = 0; k < 16; k++)
						buf[len++] = (uint8_t)rnd();
			}
		}
		/* an exact-size copy, so that any overread is caught */
		uint8_t *p = malloc(len ? len : 1);
		memcpy(p, buf, len);
		struct cur c = { p, len, 0, { 0 } };
		uint32_t count = 0;
		struct job_spec *jobs = parse_request(&c, &count);
		if (c.err[0])
			malformed++;
		else
			ok++;
		free_jobs(jobs, count);
		free(p);
		free(buf);
	}
	struct cur c = { s.p, s.len, 0, { 0 } };
	uint32_t count = 0;
	struct job_spec *jobs = parse_request(&c, &count);
	free_jobs(jobs, count);
	if (c.err[0]) {
		printf("the seed itself does not parse: %s\n", c.err);
		return 1;
	}
	printf("%ld mutated requests: %ld parsed, %ld refused as malformed, no fault\n", iterations, ok, malformed);
	free(s.p);
	return 0;
}
