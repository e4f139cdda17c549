; The kernel's own kfuncs around tail calls. The entry calls bpf_rcu_read_lock and
; bpf_rcu_read_unlock, then a subprogram that calls bpf_preempt_disable and
; bpf_preempt_enable and tail-calls slot 0, which holds the entry itself. Each run of the
; entry adds one to context word 0.
;
; Expected on every engine that runs it (the kernel's rule: one tail-call count per run,
; kept across helper and kfunc calls, Björn Töpel's point 2 in the seed thread): the entry
; runs 34 times (33 tail calls succeed, the 34th fails), so word 0 is 34, and R0 is 7.
; A JIT that loses the count across a kfunc call starts from a stale or fresh count after
; it and makes more or fewer tail calls.
.ctx 8
.map jmp_table 1
.slot jmp_table 0 entry

.prog entry
    r6 = r1
    r1 = *(u64 *)(r6 + 0)   ; count++
    r1 += 1
    *(u64 *)(r6 + 0) = r1
    call kfunc:bpf_rcu_read_lock
    call kfunc:bpf_rcu_read_unlock
    r1 = r6
    call sub
    r0 = 7
    exit
sub:
    r6 = r1
    call kfunc:bpf_preempt_disable
    call kfunc:bpf_preempt_enable
    r1 = r6
    r2 = jmp_table ll
    r3 = 0
    call bpf_tail_call
    r0 = 0
    exit
