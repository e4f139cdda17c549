; tailcall_bpf2bpf_hierarchy_3 (kernel selftest progs/tailcall_bpf2bpf_hierarchy3.c): the
; entry tail-calls classifier_0 through jmp_table0; classifier_0 adds one to `count`
; (context word 0), calls subprog_tail with jmp_table0, then with jmp_table1 (both hold
; classifier_0 in slot 0), and returns count. subprog_tail receives the map as its
; second argument, tail-calls its slot 0 and returns 0 if that fails.
;
; The kernel expects R0 = 33 and count = 33. Why: one count per run, shared by both maps
; and every frame (global semantics): the entry's tail call is the first of 33 successful
; ones, each a run of classifier_0; every later attempt fails, and each classifier_0 then
; returns count, which is 33 by the time any of them returns.
; Per-frame counting never finishes in practice: classifier_0 at count c < 33 makes two
; tail calls at count c + 1 (one per subprogram call), about 2^33 runs. Bounded, it runs
; out of budget.
.ctx 4                      ; word 0: count
.map jmp_table0 1
.map jmp_table1 1
.slot jmp_table0 0 classifier_0
.slot jmp_table1 0 classifier_0

.prog entry
    r2 = jmp_table0 ll
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
    r2 = jmp_table0 ll
    call subprog_tail
    r1 = r6
    r2 = jmp_table1 ll
    call subprog_tail
    r0 = *(u32 *)(r6 + 0)   ; return count
    exit
subprog_tail:               ; (skb, jmp_table)
    r3 = 0
    call bpf_tail_call
    r0 = 0
    exit
