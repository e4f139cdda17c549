; tailcall_bpf2bpf_5 (kernel selftest progs/tailcall_bpf2bpf4.c with noise = 1, run by
; test_tailcall_bpf2bpf_4(true) in prog_tests/tailcalls.c): tailcall_bpf2bpf_4 with a
; helper call before each tail call of subprog_tail_2.
; The flow: entry -> subprog_tail -> tail call 0 -> classifier_0 -> subprog_tail_1 ->
; tail call 1 -> classifier_1 -> subprog_tail_2 -> tail call 2 -> classifier_2, which adds
; one to `count` (context word 1) and calls subprog_tail_2 again, which tail-calls
; classifier_2 again, and so on; each subprogram returns skb->len times its number (1, 2,
; 3) when its tail call fails. Context word 0 is skb->len = 54 (pkt_v4), word 2 `noise`:
; when it is non-zero, subprog_tail_2 calls a helper before its tail call (the selftest
; calls bpf_map_lookup_elem there, to make the verifier insert instructions; here
; jitdiff_counter, which also checks that the count survives a helper call made in a
; subprogram).
;
; The kernel expects R0 = 162 = 54 * 3 and count = 31. Why: one count serves every frame;
; the tail calls into classifier_0 and classifier_1 are the first two, classifier_2 is
; entered by the 3rd to the 33rd (31 runs), and the 34th attempt, in subprog_tail_2,
; fails: 54 * 3 goes back through every frame. Per-frame counting gives the same (each
; subprogram starts from its caller's count, which only grows along this chain).
; With noise = 1 the helper is called 32 times: once per run of subprog_tail_2 (from
; classifier_1 once and classifier_2 31 times).
.ctx 12 hex 36000000 00000000 01000000 ; word 0: skb->len = 54; word 1: count; word 2: noise = 1
.map jmp_table 3
.slot jmp_table 0 classifier_0
.slot jmp_table 1 classifier_1
.slot jmp_table 2 classifier_2

.prog entry
    call subprog_tail
    exit
subprog_tail:
    r6 = r1
    r2 = jmp_table ll
    r3 = 0
    call bpf_tail_call
    r0 = *(u32 *)(r6 + 0)   ; skb->len
    exit

.prog classifier_0
    call subprog_tail_1
    exit
subprog_tail_1:
    r6 = r1
    r2 = jmp_table ll
    r3 = 1
    call bpf_tail_call
    r0 = *(u32 *)(r6 + 0)   ; skb->len * 2
    r0 *= 2
    exit

; Programs cannot share subprograms: classifier_1 and classifier_2 each have their own
; copy of subprog_tail_2.
.prog classifier_1
    call subprog_tail_2
    exit
subprog_tail_2:
    r6 = r1
    r1 = *(u32 *)(r6 + 8)   ; noise
    if r1 == 0 goto quiet
    call jitdiff_counter    ; a helper call between entry and tail call
quiet:
    r1 = r6
    r2 = jmp_table ll
    r3 = 2
    call bpf_tail_call
    r0 = *(u32 *)(r6 + 0)   ; skb->len * 3
    r0 *= 3
    exit

.prog classifier_2
    r6 = r1
    r1 = *(u32 *)(r6 + 4)   ; count++
    r1 += 1
    *(u32 *)(r6 + 4) = r1
    r1 = r6
    call subprog_tail_2
    exit
subprog_tail_2:
    r6 = r1
    r1 = *(u32 *)(r6 + 8)   ; noise
    if r1 == 0 goto quiet
    call jitdiff_counter    ; a helper call between entry and tail call
quiet:
    r1 = r6
    r2 = jmp_table ll
    r3 = 2
    call bpf_tail_call
    r0 = *(u32 *)(r6 + 0)   ; skb->len * 3
    r0 *= 3
    exit
