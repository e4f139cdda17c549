; tailcall_bpf2bpf_hierarchy_2 (kernel selftest progs/tailcall_bpf2bpf_hierarchy2.c):
; two tail-call chains started from two subprograms of the entry. The entry calls
; subprog_tail0, which tail-calls slot 0, then subprog_tail1, which tail-calls slot 1, and
; returns (count1 << 16) | count0. classifier_0 (slot 0) adds one to count0 (context word
; 0) and calls its own subprog_tail0 again; classifier_1 (slot 1) likewise with count1
; (word 1) and subprog_tail1. Each subprogram returns 0 when its tail call fails.
;
; The kernel expects R0 = 33: count0 = 33, count1 = 0, 33 tail calls. Why: one count per
; run (global semantics); the first chain takes all 33 successful tail calls, and
; subprog_tail1's attempt, made afterwards, finds the count spent.
; Per-frame counting gives each chain its own 33: the entry's count is still 0 when
; subprog_tail1 is called, and each chain is a straight line (one call per run), so it
; finishes: count0 = count1 = 33, R0 = (33 << 16) | 33 = 0x210021, 66 tail calls.
; corpus/tailcalls/hierarchy-two-chains.s is the same shape without the return value.
.ctx 8                      ; word 0: count0, word 1: count1
.map jmp_table 2
.slot jmp_table 0 classifier_0
.slot jmp_table 1 classifier_1

.prog entry
    r6 = r1
    call subprog_tail0
    r1 = r6
    call subprog_tail1
    r0 = *(u32 *)(r6 + 4)   ; (count1 << 16) | count0
    r0 <<= 16
    r1 = *(u32 *)(r6 + 0)
    r0 |= r1
    exit
subprog_tail0:
    r2 = jmp_table ll
    r3 = 0
    call bpf_tail_call
    r0 = 0
    exit
subprog_tail1:
    r2 = jmp_table ll
    r3 = 1
    call bpf_tail_call
    r0 = 0
    exit

.prog classifier_0
    r6 = r1
    r1 = *(u32 *)(r6 + 0)   ; count0++
    r1 += 1
    *(u32 *)(r6 + 0) = r1
    r1 = r6
    call subprog_tail0
    r0 = 0
    exit
subprog_tail0:
    r2 = jmp_table ll
    r3 = 0
    call bpf_tail_call
    r0 = 0
    exit

.prog classifier_1
    r6 = r1
    r1 = *(u32 *)(r6 + 4)   ; count1++
    r1 += 1
    *(u32 *)(r6 + 4) = r1
    r1 = r6
    call subprog_tail1
    r0 = 0
    exit
subprog_tail1:
    r2 = jmp_table ll
    r3 = 1
    call bpf_tail_call
    r0 = 0
    exit
