; tailcall_1 (kernel selftest tools/testing/selftests/bpf/progs/tailcall1.c, run by
; prog_tests/tailcalls.c): the entry tries slot 0, then slot 1, then slot 2 of one prog
; array, each from several call sites, and returns 3 if every attempt failed; the program
; in slot i returns i.
;
; The kernel expects: R0 = 0 with every slot filled (the first site jumps, 1 successful
; tail call); after deleting slot 0, R0 = 1; after deleting slot 1 too, R0 = 2; with all
; three deleted, R0 = 3 and no tail call succeeds. With the slots filled in reverse
; (slot i holding the program that returns 2 - i) the same deletions give 2, 1, 0, 3.
; Why: a failed tail call (empty slot) falls through to the next instruction, so the
; first filled slot, in program order, is where the run goes. Under Linux 6.12's rule the
; empty-slot attempts cost count budget (its interpreter's order: index, count, slot), but
; there are at most 6, far below 33; today's kernel does not count them at all. The selftest has four sites per slot to check
; that the kernel patches every direct jump; two per slot show the same fall-through.
; The deletions are made by jitdiff/tests/tailcalls.rs, which edits the slot list.
.ctx 8
.map jmp_table 3
.slot jmp_table 0 classifier_0
.slot jmp_table 1 classifier_1
.slot jmp_table 2 classifier_2

.prog entry
    r6 = r1                 ; the context (skb); a failed tail call clobbers R1-R5
    r2 = jmp_table ll
    r3 = 0
    call bpf_tail_call
    r1 = r6
    r2 = jmp_table ll
    r3 = 0
    call bpf_tail_call
    r1 = r6
    r2 = jmp_table ll
    r3 = 1
    call bpf_tail_call
    r1 = r6
    r2 = jmp_table ll
    r3 = 1
    call bpf_tail_call
    r1 = r6
    r2 = jmp_table ll
    r3 = 2
    call bpf_tail_call
    r1 = r6
    r2 = jmp_table ll
    r3 = 2
    call bpf_tail_call
    r0 = 3
    exit

.prog classifier_0
    r0 = 0
    exit

.prog classifier_1
    r0 = 1
    exit

.prog classifier_2
    r0 = 2
    exit
