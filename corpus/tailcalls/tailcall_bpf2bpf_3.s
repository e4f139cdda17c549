; tailcall_bpf2bpf_3 (kernel selftest progs/tailcall_bpf2bpf3.c): subprograms that make
; tail calls may use a fair amount of stack (the kernel allows tail calls in subprograms
; while the callers' frames stay below 256 bytes). Stack: entry 128 bytes -> subprog_tail
; 64; classifier_0 128 -> subprog_tail2 64; classifier_1 128.
; The entry returns subprog_tail's value; subprog_tail tail-calls slot 0, else returns
; skb->len * 2. classifier_0 returns subprog_tail2's value; subprog_tail2 tail-calls slot
; 10 (out of range) if the packet's first word is non-zero, else slot 1, and returns
; skb->len when that fails. classifier_1 returns skb->len * 3. Context word 0 is skb->len
; = 54 (pkt_v4), word 1 the packet's first word (0 in pkt_v4). Each function writes both
; ends of its stack; the subprograms keep their fall-back value in their own frame across
; the tail call, so a frame damaged by a failed tail call would show.
;
; The kernel expects R0 = 162 = 54 * 3 with both slots filled (entry -> subprog_tail ->
; classifier_0 -> subprog_tail2 -> classifier_1, 2 tail calls); R0 = 54 after deleting
; slot 1 (subprog_tail2's attempt fails); R0 = 108 = 54 * 2 after deleting slot 0 too
; (subprog_tail's attempt fails). The deletions are made by jitdiff/tests/tailcalls.rs.
.ctx 8 hex 36000000         ; word 0: skb->len = 54; word 1: the packet's first word
.map jmp_table 2
.slot jmp_table 0 classifier_0
.slot jmp_table 1 classifier_1

.prog entry
.stack 128
    *(u64 *)(r10 - 128) = 0
    *(u64 *)(r10 - 8) = 0
    call subprog_tail
    exit
subprog_tail:
.stack 64
    r6 = r1
    *(u64 *)(r10 - 64) = 0
    r0 = *(u32 *)(r6 + 0)   ; skb->len * 2, kept in the frame
    r0 *= 2
    *(u64 *)(r10 - 8) = r0
    r2 = jmp_table ll
    r3 = 0
    call bpf_tail_call
    r0 = *(u64 *)(r10 - 8)
    exit

.prog classifier_0
.stack 128
    *(u64 *)(r10 - 128) = 0
    *(u64 *)(r10 - 8) = 0
    call subprog_tail2
    exit
subprog_tail2:
.stack 64
    r6 = r1
    *(u64 *)(r10 - 64) = 0
    r0 = *(u32 *)(r6 + 0)   ; skb->len, kept in the frame
    *(u64 *)(r10 - 8) = r0
    r3 = 10
    r2 = *(u32 *)(r6 + 4)   ; the packet's first word
    if r2 != 0 goto tail
    r3 = 1
tail:
    r2 = jmp_table ll
    call bpf_tail_call
    r0 = *(u64 *)(r10 - 8)
    exit

.prog classifier_1
.stack 128
    *(u64 *)(r10 - 128) = 0
    *(u64 *)(r10 - 8) = 0
    r0 = *(u32 *)(r1 + 0)   ; skb->len * 3
    r0 *= 3
    exit
