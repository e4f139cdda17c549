; tailcall_2 (kernel selftest progs/tailcall2.c): a chain 0 -> 1 -> 2 and a loop 3 <-> 4
; in one prog array of 5 slots. Program i tail-calls the next program of its chain and
; returns i if that fails; program 2 just returns 2. The entry tries slot 0, then slot 2,
; then slot 3, and returns 3.
;
; The kernel expects R0 = 2 with every slot filled (entry -> 0 -> 1 -> 2: 3 tail calls);
; R0 = 1 after deleting slot 2 (program 1's attempt fails: 2 tail calls); R0 = 3 after
; deleting slot 0 as well. Why the last: the entry's attempts on slots 0 and 2 fail; its
; attempt on slot 3 succeeds, and programs 3 and 4 then tail-call each other until the
; count reaches 33, which lands in program 3 (odd counts do), whose next attempt fails: it
; returns 3. Today's kernel counts only tail calls that find a program: successes at counts
; 1..33, 33 tail calls. Linux 6.12 counted the two failed attempts too (index check, count
; check, count, then the empty slot): successes at counts 3..33, 31 tail calls.
; The deletions are made by jitdiff/tests/tailcalls.rs, which edits the slot list.
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
