; The "tailcall hierarchy" shape (after selftest tailcall_bpf2bpf_hierarchy_2):
; the entry calls two subprograms; each starts a self-tail-call chain that counts its
; runs in its own context word. With today's kernel (one count per run, `global`) the
; first chain takes all 33 tail calls: c0 runs 33 times, c1 never. Where a subprogram's
; tail calls do not consume its caller's budget (`per-frame`, the old x86-64 behaviour
; and the RV64 v1 `stack` scheme) each chain gets 33: 66 tail calls in all.
.ctx 8
.map chains 2
.slot chains 0 c0
.slot chains 1 c1

.prog entry
    r6 = r1
    call sub0
    r1 = r6
    call sub1
    r0 = 0
    exit
sub0:
    r2 = chains ll
    r3 = 0
    call bpf_tail_call
    r0 = 0
    exit
sub1:
    r2 = chains ll
    r3 = 1
    call bpf_tail_call
    r0 = 0
    exit

.prog c0
    r6 = r1
    r1 = *(u32 *)(r6 + 0)
    r1 += 1
    *(u32 *)(r6 + 0) = r1
    r1 = r6
    r2 = chains ll
    r3 = 0
    call bpf_tail_call
    r0 = 0
    exit

.prog c1
    r6 = r1
    r1 = *(u32 *)(r6 + 4)
    r1 += 1
    *(u32 *)(r6 + 4) = r1
    r1 = r6
    r2 = chains ll
    r3 = 1
    call bpf_tail_call
    r0 = 0
    exit
