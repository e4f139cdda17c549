/* jitdiff: writes lib/test_bpf.c's eBPF tests as JSON test vectors.
 *
 * Compiled by kernel/test-vectors.sh as one unit after shim.h, the table part of the
 * kernel's lib/test_bpf.c (`tests[]`, its generator functions and `tail_call_tests[]`)
 * and a table `jitdiff_fill_names[]` that names each generator function. It runs every
 * generator as the kernel's test_bpf() does and writes, into the folder named by argv[1]:
 *   tests.json              the eBPF tests with a fixed program (a JSON array, one per line)
 *   tests_generated.jsonl   the eBPF tests whose program a generator made (one per line)
 *   skipped.json            every other test of the table, with the reason
 *   tail_calls.json         tail_call_tests[] with the prog array the kernel builds
 * argv[2] names the kernel source, for tail_calls.json. kernel/vectors/README.md
 * describes the fields. Exit status 0, or 1 with a message when a generator fails.
 */

#define JITDIFF_AUX_NO_DATA 0x01
#define JITDIFF_AUX_EXPECTED_FAIL 0x02
#define JITDIFF_AUX_SKB_FRAG 0x04
#define JITDIFF_AUX_VERIFIER_ZEXT 0x08
#define JITDIFF_AUX_LARGE_MEM 0x10
#define JITDIFF_AUX_CLASSIC 0x40
#define JITDIFF_AUX_INTERNAL 0x80

/* The flag names of an aux byte, in bit order, the test type last. */
static void put_aux_flags(FILE *f, unsigned aux)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{ JITDIFF_AUX_NO_DATA, "FLAG_NO_DATA" },
		{ JITDIFF_AUX_EXPECTED_FAIL, "FLAG_EXPECTED_FAIL" },
		{ JITDIFF_AUX_SKB_FRAG, "FLAG_SKB_FRAG" },
		{ JITDIFF_AUX_VERIFIER_ZEXT, "FLAG_VERIFIER_ZEXT" },
		{ JITDIFF_AUX_LARGE_MEM, "FLAG_LARGE_MEM" },
		{ JITDIFF_AUX_CLASSIC, "CLASSIC" },
		{ JITDIFF_AUX_INTERNAL, "INTERNAL" },
	};
	const char *sep = "";

	fputc('[', f);
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (aux & names[i].bit) {
			fprintf(f, "%s\"%s\"", sep, names[i].name);
			sep = ",";
		}
	}
	fputc(']', f);
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void put_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void put_insns(FILE *f, const struct bpf_insn *insns, int len)
{
	fputc('[', f);
	for (int i = 0; i < len; i++)
		fprintf(f, "%s[%u,%u,%u,%d,%d]", i ? "," : "", insns[i].code, insns[i].dst_reg,
			insns[i].src_reg, insns[i].off, insns[i].imm);
	fputc(']', f);
}

/* The name of a generator function, from the table the build script writes. */
static const char *fill_name(int (*fn)(struct bpf_test *))
{
	for (size_t i = 0; i < ARRAY_SIZE(jitdiff_fill_names); i++)
		if (jitdiff_fill_names[i].fn == fn)
			return jitdiff_fill_names[i].name;
	return "unnamed generator";
}

/* The length of a fixed program, as the kernel's test runner takes it: up to the last
 * slot whose opcode, registers or immediate is non-zero (the offset is not looked at),
 * and at least one slot. */
static int fixed_length(const struct bpf_insn *insns)
{
	int len = MAX_INSNS - 1;

	while (len > 0 && insns[len].code == 0 && insns[len].dst_reg == 0 &&
	       insns[len].src_reg == 0 && insns[len].imm == 0)
		len--;
	return len + 1;
}

static bool is_ld_imm64(const struct bpf_insn *insn)
{
	return insn->code == (BPF_LD | BPF_DW | BPF_IMM);
}

/* Whether instruction `insn` reads R1 (`reads`) or sets it without reading (`writes`). */
static void r1_use(const struct bpf_insn *insn, bool *reads, bool *writes)
{
	unsigned cls = BPF_CLASS(insn->code), op = BPF_OP(insn->code);
	bool x = BPF_SRC(insn->code) == BPF_X;

	*reads = *writes = false;
	switch (cls) {
	case BPF_ALU:
	case BPF_ALU64: {
		/* xor and sub of a register with itself give 0 whatever it held. */
		bool self_clear = x && insn->dst_reg == insn->src_reg && (op == BPF_XOR || op == BPF_SUB);

		if (op != BPF_MOV && !self_clear)
			*reads |= insn->dst_reg == 1;
		if (x && op != BPF_END && !self_clear)
			*reads |= insn->src_reg == 1;
		*writes = insn->dst_reg == 1;
		break;
	}
	case BPF_LD:
		if (is_ld_imm64(insn)) {
			*writes = insn->dst_reg == 1;
		} else { /* packet loads read the context in R6 and clobber R1-R5 */
			*reads = BPF_MODE(insn->code) == BPF_IND && insn->src_reg == 1;
			*writes = true;
		}
		break;
	case BPF_LDX:
		*reads = insn->src_reg == 1;
		*writes = insn->dst_reg == 1;
		break;
	case BPF_ST:
		*reads = insn->dst_reg == 1;
		break;
	case BPF_STX:
		*reads = insn->dst_reg == 1 || insn->src_reg == 1;
		break;
	case BPF_JMP:
	case BPF_JMP32:
		if (op == BPF_CALL || op == BPF_TAIL_CALL) {
			*reads = true; /* R1 is the first argument */
		} else if (op != BPF_JA && op != BPF_EXIT) {
			*reads = insn->dst_reg == 1 || (x && insn->src_reg == 1);
		}
		break;
	}
}

/* Whether some path from the entry reads R1 before writing it: backward liveness over
 * the control-flow graph, iterated to a fixed point. */
static bool reads_r1_on_entry(const struct bpf_insn *insns, int len)
{
	bool *live = calloc((size_t)len + 2, sizeof(bool));
	bool changed = true;

	if (!live) {
		fprintf(stderr, "test-vectors: out of memory\n");
		exit(1);
	}
	while (changed) {
		changed = false;
		for (int i = len - 1; i >= 0; i--) {
			const struct bpf_insn *insn = &insns[i];
			unsigned cls = BPF_CLASS(insn->code), op = BPF_OP(insn->code);
			bool reads, writes, out = false, now;
			int next = i + (is_ld_imm64(insn) ? 2 : 1);

			r1_use(insn, &reads, &writes);
			if ((cls == BPF_JMP || cls == BPF_JMP32) && op == BPF_EXIT) {
				out = false;
			} else if ((cls == BPF_JMP || cls == BPF_JMP32) && op == BPF_JA) {
				int target = i + 1 + (cls == BPF_JMP32 ? insn->imm : insn->off);

				out = target >= 0 && target < len && live[target];
			} else if ((cls == BPF_JMP || cls == BPF_JMP32) && op != BPF_CALL &&
				   op != BPF_TAIL_CALL) {
				int target = i + 1 + insn->off;

				out = (next < len && live[next]) || (target >= 0 && target < len && live[target]);
			} else {
				out = next < len && live[next];
			}
			now = reads || (!writes && out);
			if (now != live[i]) {
				live[i] = now;
				changed = true;
			}
		}
	}
	bool entry = live[0];

	free(live);
	return entry;
}

/* Why an eBPF program cannot be replayed with a plain context buffer, or NULL. */
static const char *unreplayable(const struct bpf_insn *insns, int len, unsigned aux)
{
	for (int i = 0; i < len; i++) {
		unsigned cls = BPF_CLASS(insns[i].code);

		if (cls == BPF_LD && (BPF_MODE(insns[i].code) == BPF_ABS || BPF_MODE(insns[i].code) == BPF_IND))
			return "ld_abs_ind: reads the packet through LD_ABS/LD_IND";
		if ((cls == BPF_JMP || cls == BPF_JMP32) && BPF_OP(insns[i].code) == BPF_CALL)
			return "helper_call: calls a kernel function";
		if (is_ld_imm64(&insns[i]))
			i++;
	}
	if (!(aux & (JITDIFF_AUX_NO_DATA | JITDIFF_AUX_LARGE_MEM)) && reads_r1_on_entry(insns, len))
		return "reads_skb: reads the sk_buff it is given in R1";
	return NULL;
}

static FILE *open_out(const char *dir, const char *name)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "test-vectors: cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return f;
}

static void close_out(FILE *f, const char *name)
{
	if (ferror(f) || fclose(f) != 0) {
		fprintf(stderr, "test-vectors: writing %s failed\n", name);
		exit(1);
	}
}

static void put_skipped(FILE *f, int *count, int index, const struct bpf_test *t, const char *reason)
{
	fputs(*count ? ",\n" : "[\n", f);
	fprintf(f, "{\"index\":%d,\"name\":", index);
	put_string(f, t->descr);
	fputs(",\"flags\":", f);
	put_aux_flags(f, t->aux);
	fputs(",\"generator\":", f);
	if (t->fill_helper)
		put_string(f, fill_name(t->fill_helper));
	else
		fputs("null", f);
	fputs(",\"reason\":", f);
	put_string(f, reason);
	fputc('}', f);
	(*count)++;
}

static void put_test(FILE *f, int index, const struct bpf_test *t, const struct bpf_insn *insns, int len)
{
	int data_len = MAX_DATA;

	fprintf(f, "{\"index\":%d,\"name\":", index);
	put_string(f, t->descr);
	fprintf(f, ",\"source\":\"%s\",\"generator\":", t->fill_helper ? "generated" : "static");
	if (t->fill_helper)
		put_string(f, fill_name(t->fill_helper));
	else
		fputs("null", f);
	fputs(",\"flags\":", f);
	put_aux_flags(f, t->aux);
	fprintf(f, ",\"aux\":%u,\"ctx\":\"%s\",\"data_hex\":\"", t->aux,
		t->aux & JITDIFF_AUX_NO_DATA	  ? "none"
		: t->aux & JITDIFF_AUX_LARGE_MEM ? "buffer"
						  : "skb_unused");
	while (data_len > 0 && t->data[data_len - 1] == 0)
		data_len--;
	for (int i = 0; i < data_len; i++)
		fprintf(f, "%02x", t->data[i]);
	/* The first sub-test always runs; a later {0, 0} ends the list. */
	fputs("\",\"subtests\":[", f);
	for (int i = 0; i < MAX_SUBTESTS; i++) {
		if (i > 0 && t->test[i].data_size == 0 && t->test[i].result == 0)
			break;
		fprintf(f, "%s{\"data_size\":%d,\"result\":%u}", i ? "," : "", t->test[i].data_size,
			t->test[i].result);
	}
	fprintf(f, "],\"stack_depth\":%d,\"nr_testruns\":%d,\"insn_count\":%d,\"insns\":", t->stack_depth,
		t->nr_testruns, len);
	put_insns(f, insns, len);
	fputc('}', f);
}

/* tests[]: every eBPF test, its generator run, into the fixed or the generated file. */
static void dump_tests(const char *dir)
{
	FILE *fixed = open_out(dir, "tests.json");
	FILE *generated = open_out(dir, "tests_generated.jsonl");
	FILE *skipped = open_out(dir, "skipped.json");
	int n_fixed = 0, n_generated = 0, n_skipped = 0;
	long fixed_insns = 0, generated_insns = 0;

	for (int i = 0; i < (int)ARRAY_SIZE(tests); i++) {
		struct bpf_test *t = &tests[i];
		const struct bpf_insn *insns;
		const char *why;
		int len;

		if (!(t->aux & JITDIFF_AUX_INTERNAL)) {
			put_skipped(skipped, &n_skipped, i, t, "classic");
			continue;
		}
		if (t->aux & JITDIFF_AUX_EXPECTED_FAIL) {
			put_skipped(skipped, &n_skipped, i, t, "expected_fail: the kernel expects it to be refused");
			continue;
		}
		if (t->aux & JITDIFF_AUX_SKB_FRAG) {
			put_skipped(skipped, &n_skipped, i, t, "skb_frag: needs a fragmented sk_buff");
			continue;
		}
		if (t->fill_helper) {
			int err = t->fill_helper(t);

			if (err) {
				fprintf(stderr, "test-vectors: generator %s of test %d (%s) failed: %d\n",
					fill_name(t->fill_helper), i, t->descr, err);
				exit(1);
			}
			insns = t->u.ptr.insns;
			len = (int)t->u.ptr.len;
		} else {
			insns = t->u.insns_int;
			len = fixed_length(insns);
		}
		why = unreplayable(insns, len, t->aux);
		if (why) {
			put_skipped(skipped, &n_skipped, i, t, why);
		} else if (t->fill_helper) {
			put_test(generated, i, t, insns, len);
			fputc('\n', generated);
			n_generated++;
			generated_insns += len;
		} else {
			fputs(n_fixed ? ",\n" : "[\n", fixed);
			put_test(fixed, i, t, insns, len);
			n_fixed++;
			fixed_insns += len;
		}
		if (t->fill_helper)
			free(t->u.ptr.insns);
	}
	fputs(n_fixed ? "\n]\n" : "[]\n", fixed);
	fputs(n_skipped ? "\n]\n" : "[]\n", skipped);
	close_out(fixed, "tests.json");
	close_out(generated, "tests_generated.jsonl");
	close_out(skipped, "skipped.json");
	fprintf(stderr,
		"test-vectors: %d fixed programs (%ld instructions), %d generated (%ld instructions), "
		"%d skipped\n",
		n_fixed, fixed_insns, n_generated, generated_insns, n_skipped);
}

/* A tail-call program's length as the kernel's loader takes it: up to the first zero
 * opcode that is not the second slot of a 16-byte load. */
static int tail_call_length(const struct bpf_insn *insns)
{
	int len = 0;

	while (len < MAX_INSNS && insns[len].code != 0)
		len += is_ld_imm64(&insns[len]) && len < MAX_INSNS - 1 ? 2 : 1;
	return len;
}

/* tail_call_tests[], each program twice: as written (markers unresolved) and with the
 * prog-array index of every `r3 = marker` resolved as the kernel's loader does it and
 * every BPF_CALL_REL written as a plain helper call. */
static void dump_tail_calls(const char *dir, const char *source)
{
	FILE *f = open_out(dir, "tail_calls.json");
	int ntests = (int)ARRAY_SIZE(tail_call_tests);

	fputs("{\"source\":", f);
	put_string(f, source);
	fprintf(f,
		",\n\"constants\":{\"MAX_TESTRUNS\":%d,\"MAX_TAIL_CALL_CNT\":%d,\"TAIL_CALL_MARKER\":%d,"
		"\"TAIL_CALL_NULL\":%d,\"TAIL_CALL_INVALID\":%d,\"BPF_FUNC_test_func\":%d},\n",
		MAX_TESTRUNS, MAX_TAIL_CALL_CNT, TAIL_CALL_MARKER, TAIL_CALL_NULL, TAIL_CALL_INVALID,
		BPF_FUNC_test_func);
	fprintf(f, "\"prog_array\":{\"max_entries\":%d,\"entries\":[", ntests + 1);
	for (int i = 0; i < ntests; i++) {
		char what[256];

		snprintf(what, sizeof(what), "tail_call_tests[%d] \"%s\"", i, tail_call_tests[i].descr);
		fprintf(f, "%s{\"index\":%d,\"program\":", i ? "," : "", i);
		put_string(f, what);
		fputc('}', f);
	}
	fprintf(f, ",{\"index\":%d,\"program\":null}]},\n\"tests\":[\n", ntests);
	for (int which = 0; which < ntests; which++) {
		const struct tail_call_test *t = &tail_call_tests[which];
		int len = tail_call_length(t->insns);
		struct bpf_insn resolved[MAX_INSNS];
		const char *sep = "";

		memcpy(resolved, t->insns, sizeof(resolved));
		fprintf(f, "%s{\"index\":%d,\"name\":", which ? ",\n" : "", which);
		put_string(f, t->descr);
		fputs(",\"flags\":[", f);
		if (t->flags & FLAG_NEED_STATE) {
			fputs("\"FLAG_NEED_STATE\"", f);
			sep = ",";
		}
		if (t->flags & FLAG_RESULT_IN_STATE)
			fprintf(f, "%s\"FLAG_RESULT_IN_STATE\"", sep);
		fprintf(f, "],\"result\":%d,\"runs\":%d,\"stack_depth\":%d,\"has_tail_call\":%s,", t->result,
			MAX_TESTRUNS, t->stack_depth, t->has_tail_call ? "true" : "false");
		fputs("\"tail_call_targets\":[", f);
		sep = "";
		for (int i = 0; i < len; i++) {
			struct bpf_insn *insn = &resolved[i];

			if (insn->code != (BPF_ALU | BPF_MOV | BPF_K) || insn->imm != TAIL_CALL_MARKER)
				continue;
			const char *kind = insn->off == TAIL_CALL_NULL ? "null"
					   : insn->off == TAIL_CALL_INVALID ? "out_of_range"
									    : "program";
			int index = insn->off == TAIL_CALL_NULL	     ? ntests
				    : insn->off == TAIL_CALL_INVALID ? ntests + 1
								     : which + insn->off;

			fprintf(f, "%s{\"pc\":%d,\"offset_field\":%d,\"index\":%d,\"kind\":\"%s\"}", sep, i,
				insn->off, index, kind);
			sep = ",";
			insn->imm = index;
			insn->off = 0;
		}
		fputs("],\"helper_calls\":[", f);
		sep = "";
		for (int i = 0; i < len; i++) {
			struct bpf_insn *insn = &resolved[i];

			if (insn->code != (BPF_JMP | BPF_CALL) || insn->src_reg != BPF_PSEUDO_CALL)
				continue;
			fprintf(f, "%s{\"pc\":%d,\"helper_id\":%d}", sep, i, insn->imm);
			sep = ",";
			insn->src_reg = 0;
		}
		fprintf(f, "],\"insn_count\":%d,\"insns\":", len);
		put_insns(f, t->insns, len);
		fputs(",\"insns_index_resolved\":", f);
		put_insns(f, resolved, len);
		fputc('}', f);
	}
	fputs("\n]}\n", f);
	close_out(f, "tail_calls.json");
	fprintf(stderr, "test-vectors: %d tail-call programs\n", ntests);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s OUTPUT_DIR SOURCE_NAME\n", argv[0]);
		return 2;
	}
	dump_tests(argv[1]);
	dump_tail_calls(argv[1], argv[2]);
	return 0;
}
