; tailcall_3 (kernel selftest progs/tailcall3.c, "the count value of the tail call limit
; enforcement"; the kernel's JITs use a direct jump here since the index is a constant):
; the entry tail-calls slot 0; program classifier_0 in slot 0 adds one to a global
; `count` (here context word 0) and tail-calls slot 0, itself, returning 1 when that fails.
;
; The kernel expects R0 = 1 and count = 33. Why: at most 33 tail calls succeed in one run
; (MAX_TAIL_CALL_CNT); the entry's is the first, so classifier_0 runs 33 times, and its
; 34th attempt (the 33rd of its own) fails and falls through to `return 1`.
; With slot 0 deleted the selftest expects R0 = 0 (the entry's attempt fails) and no run
; of classifier_0 (count stays 0).
.ctx 4                      ; word 0: count
.map jmp_table 1
.slot jmp_table 0 classifier_0

.prog entry
    r2 = jmp_table ll
    r3 = 0
    call bpf_tail_call
    r0 = 0
    exit

.prog classifier_0
    r6 = r1
    r1 = *(u32 *)(r6 + 0)   ; count++
    r1 += 1
    *(u32 *)(r6 + 0) = r1
    r1 = r6
    r2 = jmp_table ll
    r3 = 0
    call bpf_tail_call
    r0 = 1
    exit
