; A global variable, as libbpf makes one: `count` lives at offset 4 of the single value
; of array map `bss` (clang's .bss), and `r1 = &bss + 4 ll` is its address (lddw with
; src 2, BPF_PSEUDO_MAP_VALUE). classifier_0 counts its runs there before it tail-calls
; itself, the shape of the kernel's tailcall3 selftest: the kernel's limit of 33 tail
; calls leaves count = 33 and R0 = 1 (bpf/tests/fixtures/globals.c is the same in C).
.ctx 8
.map jmp_table 1
.slot jmp_table 0 classifier_0
.array bss 8 1
.prog entry
    r2 = jmp_table ll
    r3 = 0
    call bpf_tail_call
    r0 = 0
    exit
.prog classifier_0
    r6 = r1
    r1 = &bss + 4 ll
    r2 = *(u32 *)(r1 + 0)
    r2 += 1
    *(u32 *)(r1 + 0) = r2
    r1 = r6
    r2 = jmp_table ll
    r3 = 0
    call bpf_tail_call
    r0 = 1
    exit
