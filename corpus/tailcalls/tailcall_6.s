; tailcall_6 (kernel selftest progs/tailcall6.c): tailcall_3 with the index read at run
; time from a global `which` (here context word 1), so the kernel's JITs must emit the
; indirect tail call rather than a patched direct jump. The entry tail-calls slot `which`;
; classifier_0 adds one to `count` (context word 0) and tail-calls slot `which` again,
; returning 1 when that fails.
;
; The kernel expects, with which = 0, R0 = 1 and count = 33: 33 successful tail calls,
; the first from the entry, so classifier_0 runs 33 times; the 34th attempt fails.
; With which = 1 (= max_entries, out of range; not a case of the selftest) the entry's
; attempt fails: R0 = 0, count 0.
.ctx 8                      ; word 0: count, word 1: which
.map jmp_table 1
.slot jmp_table 0 classifier_0

.prog entry
    r3 = *(u32 *)(r1 + 4)   ; which
    r2 = jmp_table ll
    call bpf_tail_call
    r0 = 0
    exit

.prog classifier_0
    r6 = r1
    r1 = *(u32 *)(r6 + 0)   ; count++
    r1 += 1
    *(u32 *)(r6 + 0) = r1
    r3 = *(u32 *)(r6 + 4)   ; which
    r1 = r6
    r2 = jmp_table ll
    call bpf_tail_call
    r0 = 1
    exit
