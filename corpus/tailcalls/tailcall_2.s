; tailcall_2 (kernel selftest progs/tailcall2.c): a chain 0 -> 1 -> 2 and a loop 3 <-> 4
; in one prog array of 5 slots. Program i tail-calls the next program of its chain and
; returns i if that fails; program 2 just returns 2. The entry tries slot 0, then slot 2,
; then slot 3, and returns 3.
;
; The kernel expects R0 = 2 with every slot filled (entry -> 0 -> 1 -> 2: 3 tail calls);
; R0 = 1 after deleting slot 2 (program 1's attempt fails: 2 tail calls); R0 = 3 after
; deleting slot 0 as well. Why the last: the entry's attempts on slots 0 and 2 fail but
; each costs one count (index check, count check, count, then the empty slot); its
; attempt on slot 3 is the 3rd count, and programs 3 and 4 then tail-call each other until
; the count reaches 33: successes at counts 3..33, 31 tail calls. Count 33 lands in
; program 3 (odd counts do), whose next attempt fails: it returns 3.
; The deletions are made by triage/tests/tailcalls.rs, which edits the slot list.
.ctx 8
.map jmp_table 5
.slot jmp_table 0 classifier_0
.slot jmp_table 1 classifier_1
.slot jmp_table 2 classifier_2
.slot jmp_table 3 classifier_3
.slot jmp_table 4 classifier_4

.prog entry
    r6 = r1
    r2 = jmp_table ll
    r3 = 0
    call bpf_tail_call
    r1 = r6
    r2 = jmp_table ll
    r3 = 2
    call bpf_tail_call
    r1 = r6
    r2 = jmp_table ll
    r3 = 3
    call bpf_tail_call
    r0 = 3
    exit

.prog classifier_0
    r2 = jmp_table ll
    r3 = 1
    call bpf_tail_call
    r0 = 0
    exit

.prog classifier_1
    r2 = jmp_table ll
    r3 = 2
    call bpf_tail_call
    r0 = 1
    exit

.prog classifier_2
    r0 = 2
    exit

.prog classifier_3
    r2 = jmp_table ll
    r3 = 4
    call bpf_tail_call
    r0 = 3
    exit

.prog classifier_4
    r2 = jmp_table ll
    r3 = 3
    call bpf_tail_call
    r0 = 4
    exit
