; Linux 6.12's RV64 JIT and its interpreter disagree on how many tail calls a program
; may make when it also calls a helper and tries an empty prog-array slot.
;
; The interpreter counts every tail call that passes the index check, an empty slot
; included (count++ before the NULL check), so each round below spends two of the 33:
; 16 self tail calls succeed, and the 17th round's empty slot spends the last count. In a
; program that makes calls, the RV64 JIT keeps the counter in s6 and decrements it into
; a6 (a6 = s6 - 1) before the NULL check; the failed attempt's decrement is lost, so 33
; self tail calls succeed. ctx[0] counts the program's entries (in the generator's form,
; so that the kernel engines report entries - 1 as their tail-call count): 17 (0x11) on the
; interpreter and on jitdiff's engines under 6.12's rule (--empty-slot counted, the rule
; the 6.12 kernel engines select), 34 (0x22) on 6.12's RV64 JIT. Linux 7.0 made the
; interpreter count only tail calls that find a program (commit 3733f4be2870): on 7.x, and
; on jitdiff's engines under today's rule, every engine gives 34.
; Found by `jitdiff fuzz --engines reference,kernel-jit,kernel-interp`, minimised, then
; written down by hand. It is the known divergence rv64-6.12-empty-slot-tcc
; (compare/src/known.rs): on 6.12 kernels, fuzz and triage count it apart, not as a finding.
.ctx 8
.map jmp 2
.slot jmp 0 entry

.prog entry
    r0 = *(u64 *)(r1 + 0)
    r0 += 1
    *(u64 *)(r1 + 0) = r0
    r6 = r1
    call get_numa_node_id
    r1 = r6
    r2 = jmp ll
    r3 = 1
    call bpf_tail_call
    r1 = r6
    r2 = jmp ll
    r3 = 0
    call bpf_tail_call
    r0 = 0
    exit
