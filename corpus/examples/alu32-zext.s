; RV64 JIT bug 1e692f09e091 (Jitterbug): ALU32 results must be zero-extended.
; 0x7fffffff + 1 in 32 bits is 0x80000000; the upper 32 bits must be 0.
    r0 = 0x7fffffff ll
    w0 += 1
    r0 >>= 32
    exit
