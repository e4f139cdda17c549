; tailcall_bpf2bpf_fentry_entry (kernel selftests prog_tests/tailcalls.c with
; progs/tailcall_bpf2bpf2.c and tailcall_bpf2bpf_fentry.c): the fentry program traces
; classifier_0 itself, and the run starts at classifier_0 (the selftest runs it directly).
; classifier_0 adds one to `count` (context word 0) and calls subprog_tail, which
; tail-calls classifier_0 (slot 0) and returns 1 when the tail call fails. The fentry adds
; one to word 0 of slot 0 of array `counts`.
;
; The kernel expects R0 = 1, count = 34 and fentry count 1. Why: classifier_0 runs once
; from the start and 33 times by tail call; a tail call jumps past the patched entry of its
; target, so only the first run goes through the trampoline.
.ctx 8
.map jmp_table 1
.slot jmp_table 0 classifier_0
.array counts 8 1

.prog classifier_0
    r6 = r1
    r1 = *(u32 *)(r6 + 0)   ; count++
    r1 += 1
    *(u32 *)(r6 + 0) = r1
    r1 = r6
    call subprog_tail
    exit
subprog_tail:
    r3 = *(u8 *)(r1 + 4)
    if r3 == 0 goto tail
    r3 = 1
tail:
    r2 = jmp_table ll
    call bpf_tail_call
    r0 = 1
    exit

.fentry fentry classifier_0
    *(u32 *)(r10 - 4) = 0
    r2 = r10
    r2 += -4
    r1 = counts ll
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r1 = *(u32 *)(r0 + 0)   ; fentry count++
    r1 += 1
    *(u32 *)(r0 + 0) = r1
out:
    r0 = 0
    exit
