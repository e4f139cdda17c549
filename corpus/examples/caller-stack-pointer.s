; A pointer to the caller's stack passed to a subprogram, as clang passes `&local`: main
; writes 5 at r10 - 8 and passes its address; `twice` doubles the value in place and
; returns nothing (R0 undefined, which the verifier allows at a subprogram's exit);
; main reads it back: R0 = 10.
    *(u64 *)(r10 - 8) = 5
    r1 = r10
    r1 += -8
    call twice
    r0 = *(u64 *)(r10 - 8)
    exit
twice:
    r2 = *(u64 *)(r1 + 0)
    r2 <<= 1
    *(u64 *)(r1 + 0) = r2
    exit
