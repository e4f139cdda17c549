; Linux 6.12 and 7.x disagree on whether a tail call through an empty prog-array slot
; uses up one of the 33 tail calls.
;
; Each run tries the empty slot 0, then slot 2, which holds the program itself. 6.12's
; interpreter counts every tail call past the index check (count++ before the NULL
; check), and its RV64 JIT, in a program without calls, keeps the decremented count
; before the slot check: each run spends two, so 16 self tail calls succeed and the 17th
; run's empty slot spends the last: 17 entries (0x11). Linux 7.0 counts only tail calls
; that find a program ("bpf: Do not increment tailcall count when prog is NULL",
; 3733f4be2870), and 7.x's RV64 JIT stores the count only after the slot check: 33 self
; tail calls, 34 entries (0x22). ctx[0] counts the entries in the generator's form, so the
; kernel engines report entries - 1 as their tail-call count.
;
; Found by `jitdiff fuzz --engines reference,kernel-jit@6.12,kernel-jit@7.3` (1226 of 1226
; findings in 10 minutes, one group), minimised, then written down by hand. It is the known
; divergence 6.12-counts-empty-slots (compare/src/known.rs): a documented difference between
; versions, counted apart where the reference runs today's rule (the default when the
; kernels' rules differ).
.ctx 8
.map jmp 3
.slot jmp 2 entry

.prog entry
    r0 = *(u64 *)(r1 + 0)
    r0 += 1
    *(u64 *)(r1 + 0) = r0
    r6 = r1
    r2 = jmp ll
    r3 = 0
    call bpf_tail_call
    r1 = r6
    r2 = jmp ll
    r3 = 2
    call bpf_tail_call
    r0 = 0
    exit
