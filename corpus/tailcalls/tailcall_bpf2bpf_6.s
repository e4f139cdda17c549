; tailcall_bpf2bpf_6 (kernel selftest progs/tailcall_bpf2bpf6.c: "tail call counting works
; even when there is data on stack which is not aligned to 8 bytes"): the entry has a
; 1-byte stack array, writes and reads it, and returns what subprog_tail returns.
; subprog_tail keeps a 4-byte `ret = 1` on its stack, tail-calls slot 0 and returns `ret`
; if that fails. classifier_0 in slot 0 sets `done` (context word 0) to 1 and returns 0.
;
; The kernel expects R0 = 0 and done = 1: the tail call succeeds (1 tail call), and
; classifier_0's 0 goes back to the entry. Where a JIT keeps its count in a frame slot
; placed from an unaligned stack depth, a wrong offset breaks the count or the frame.
; With slot 0 deleted (not a case of the selftest) the tail call fails: R0 = 1 (the `ret`
; kept on subprog_tail's stack), done = 0.
.ctx 4                      ; word 0: done
.map jmp_table 1
.slot jmp_table 0 classifier_0

.prog entry
.stack 1
    *(u8 *)(r10 - 1) = 0    ; volatile char arr[1] = {}
    r2 = *(u8 *)(r10 - 1)   ; __sink(arr[0])
    call subprog_tail
    exit
subprog_tail:
.stack 4
    *(u32 *)(r10 - 4) = 1   ; volatile int ret = 1
    r2 = jmp_table ll
    r3 = 0
    call bpf_tail_call
    r0 = *(u32 *)(r10 - 4)
    exit

.prog classifier_0
    *(u32 *)(r1 + 0) = 1    ; done = 1
    r0 = 0
    exit
