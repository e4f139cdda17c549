; tailcall_bpf2bpf_fentry, _fexit and _fentry_fexit (kernel selftests prog_tests/tailcalls.c
; with progs/tailcall_bpf2bpf2.c, tailcall_bpf2bpf_fentry.c and tailcall_bpf2bpf_fexit.c):
; the count limit when the tail call is made from a subprogram that a trampoline traces.
; The programs are tailcall_bpf2bpf_2's: the entry tail-calls classifier_0, which adds one
; to `count` (context word 0) and calls subprog_tail, which tail-calls classifier_0 again
; and returns 1 when the tail call fails. An fentry and an fexit program are attached to
; subprog_tail (function 1 of classifier_0); each adds one to its own counter (word 0 of
; slot 0 and slot 1 of array `counts`), and the fexit keeps the return value it saw in
; word 1 of slot 1.
;
; The kernel expects R0 = 1, count = 33, fentry count 33 and fexit count 33, with either
; attachment alone or both. Why: every one of the 33 runs of classifier_0 calls
; subprog_tail through the trampoline (so fentry runs 33 times) and the tail call out of
; subprog_tail replaces only its frame, so the classifier_0 it enters returns into that
; trampoline: the 33 frames unwind through 33 fexit runs, each seeing 1. The trampoline
; keeps the tail-call count across the fentry and fexit programs, so the limit still stops
; the chain at 33.
.ctx 8
.map jmp_table 1
.slot jmp_table 0 classifier_0
.array counts 8 2

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
    call subprog_tail
    exit
subprog_tail:
    r3 = *(u8 *)(r1 + 4)    ; the packet's first byte: index 1 if non-zero, else 0
    if r3 == 0 goto tail
    r3 = 1
tail:
    r2 = jmp_table ll
    call bpf_tail_call
    r0 = 1
    exit

.fentry fentry classifier_0:1
    *(u32 *)(r10 - 4) = 0   ; key 0
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

.fexit fexit classifier_0:1
    r6 = *(u64 *)(r1 + 40)  ; subprog_tail's return value (after its 5 arguments)
    *(u32 *)(r10 - 4) = 1   ; key 1
    r2 = r10
    r2 += -4
    r1 = counts ll
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r1 = *(u32 *)(r0 + 0)   ; fexit count++
    r1 += 1
    *(u32 *)(r0 + 0) = r1
    *(u32 *)(r0 + 4) = r6   ; the return value seen last
out:
    r0 = 0
    exit
