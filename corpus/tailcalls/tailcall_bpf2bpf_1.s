; tailcall_bpf2bpf_1 (kernel selftest progs/tailcall_bpf2bpf1.c): tail calls and bpf2bpf
; calls in one program. The entry tail-calls slot 1; if that fails it returns what its
; subprogram subprog_tail returns. subprog_tail tail-calls slot 0 and, if that fails,
; returns skb->len * 2. The program in slot i returns i. skb->len is context word 0: 54,
; the size of the selftest's packet pkt_v4 (14 + 20 + 20 bytes).
;
; The kernel expects R0 = 1 with both slots filled (the entry's tail call); R0 = 0 after
; deleting slot 1 (the subprogram's tail call replaces the subprogram's frame, and what
; classifier_0 returns goes back to the entry, which returns it); R0 = 108 = 54 * 2 after
; deleting slot 0 too (the subprogram reads the context and the entry returns its value).
; The deletions are made by jitdiff/tests/tailcalls.rs, which edits the slot list.
.ctx 8 hex 36000000         ; word 0: skb->len = 54
.map jmp_table 2
.slot jmp_table 0 classifier_0
.slot jmp_table 1 classifier_1

.prog entry
    r6 = r1
    r2 = jmp_table ll
    r3 = 1
    call bpf_tail_call
    r1 = r6
    call subprog_tail
    exit
subprog_tail:
    r6 = r1
    r2 = jmp_table ll
    r3 = 0
    call bpf_tail_call
    r0 = *(u32 *)(r6 + 0)   ; skb->len * 2
    r0 *= 2
    exit

.prog classifier_0
    r0 = 0
    exit

.prog classifier_1
    r0 = 1
    exit
