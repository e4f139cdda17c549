; tailcall_bpf2bpf_hierarchy_1 (kernel selftest progs/tailcall_bpf2bpf_hierarchy1.c, fixed
; in v6.12 by 116e04ba1459 (x86-64) and 66ff4d61dc12 (arm64)): the entry adds one to
; `count` (context word 0), calls subprog_tail twice and returns 1; subprog_tail
; tail-calls slot 0, which holds the entry itself, and returns 0 if that fails.
;
; The kernel expects R0 = 1 and count = 34. Why: one count per run, shared by every frame
; (global semantics): 33 tail calls succeed, each a new run of the entry (one frame
; deeper), so the entry runs 1 + 33 = 34 times; every later attempt fails. The selftest
; then deletes slot 0 and runs again without resetting count: count = 35, R0 = 1, no
; tail call (jitdiff/tests/tailcalls.rs edits the slot list and passes the first run's
; context on).
; Per-frame counting (the old x86-64 behaviour, the RV64 `stack` scheme) never finishes
; in practice: each subprogram starts from its caller's count and the caller's own count
; comes back when it returns, so every run of the entry with count c < 33 makes two
; tail calls at count c + 1: about 2^34 runs. Bounded, it runs out of budget.
.ctx 4                      ; word 0: count
.map jmp_table 1
.slot jmp_table 0 entry

.prog entry
    r6 = r1
    r1 = *(u32 *)(r6 + 0)   ; count++
    r1 += 1
    *(u32 *)(r6 + 0) = r1
    r1 = r6
    call subprog_tail
    r1 = r6
    call subprog_tail
    r0 = 1
    exit
subprog_tail:
    r2 = jmp_table ll
    r3 = 0
    call bpf_tail_call
    r0 = 0
    exit
