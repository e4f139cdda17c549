; The kernel's interpreter crashes when a tail-called program uses more stack than the
; program that started the chain. A kernel bug in Linux 6.12 and 7.3 (the interpreter
; only: their RV64 JITs give each program its own frame and return 7).
;
; The interpreter runs a whole chain of tail calls inside the entry program's call of the
; interpreter, whose frame holds the entry's stack rounded up to 32 bytes. The verifier
; knows a tail-called program may need more and gives every program that makes tail calls
; the whole 512 bytes (in its fixups, where it rewrites the call to bpf_tail_call), but the
; end of the same fixups pass sets the program's depth back to its first function's own
; depth (a line added with the may_goto instruction in 6.9; 7.3 has it in
; kernel/bpf/fixups.c). Here the entry uses 8 bytes (where the kernel engine keeps the
; context for the tail call): a 32-byte frame. The target writes zeros over 128 bytes of its
; stack, 96 of them below that frame, over the interpreter's saved return address: the
; kernel jumps to address 0 ("Unable to handle kernel NULL pointer dereference at virtual
; address 0000000000000000", then "Kernel panic - not syncing"), under 6.12 and 7.3 alike.
; Every engine that ran returns 7 with two entries counted.
;
; Found by the kernel engines' test of generated sets on 6.12 (seed 121: a 32-byte entry
; tail-calling a program with 40 bytes of stack crashed the guest; the saved return address
; was overwritten with the context pointer), minimised and written down by hand. It is the
; known divergence interp-tail-call-frame (compare/src/known.rs).
.ctx 8
.map jmp 1
.slot jmp 0 target

.prog entry
    r0 = *(u64 *)(r1 + 0)
    r0 += 1
    *(u64 *)(r1 + 0) = r0
    r2 = jmp ll
    r3 = 0
    call bpf_tail_call
    r0 = 1
    exit

.prog target
    r0 = *(u64 *)(r1 + 0)
    r0 += 1
    *(u64 *)(r1 + 0) = r0
    *(u64 *)(r10 - 8) = 0
    *(u64 *)(r10 - 16) = 0
    *(u64 *)(r10 - 24) = 0
    *(u64 *)(r10 - 32) = 0
    *(u64 *)(r10 - 40) = 0
    *(u64 *)(r10 - 48) = 0
    *(u64 *)(r10 - 56) = 0
    *(u64 *)(r10 - 64) = 0
    *(u64 *)(r10 - 72) = 0
    *(u64 *)(r10 - 80) = 0
    *(u64 *)(r10 - 88) = 0
    *(u64 *)(r10 - 96) = 0
    *(u64 *)(r10 - 104) = 0
    *(u64 *)(r10 - 112) = 0
    *(u64 *)(r10 - 120) = 0
    *(u64 *)(r10 - 128) = 0
    r0 = 7
    exit
