; tailcall_bpf2bpf_2 (kernel selftest progs/tailcall_bpf2bpf2.c): the count limit when
; the tail call is made from a subprogram. The entry tail-calls slot 0. classifier_0 adds
; one to `count` (context word 0) and returns what subprog_tail returns; subprog_tail
; tail-calls slot 1 if the packet's first byte (context byte 4) is non-zero, else slot 0,
; and returns 1 when the tail call fails.
;
; The kernel expects R0 = 1 and count = 33. Why: the packet byte is 0, so every
; subprog_tail tail-calls classifier_0, which replaces the subprogram's frame and calls
; subprog_tail again, one frame deeper each time; one count serves them all, so 33 tail
; calls succeed (the entry's first), classifier_0 runs 33 times, the 34th attempt fails,
; and 1 is returned through every frame. Per-frame counting gives the same: each new
; subprogram frame starts from its caller's count, which only grows along the chain.
; With slot 0 deleted the selftest expects R0 = 0 (the entry's attempt fails), count 0.
.ctx 8                      ; word 0: count; byte 4: the packet's first byte
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
