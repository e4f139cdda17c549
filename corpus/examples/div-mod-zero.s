; Division by zero gives 0; 64-bit modulo by zero leaves the dividend;
; 32-bit modulo by zero keeps the low 32 bits and clears the upper 32.
    r1 = 0
    r2 = 0x123456789 ll
    r2 /= r1            ; 0
    r3 = 0x123456789 ll
    r3 %= r1            ; 0x123456789
    r4 = 0x123456789 ll
    w4 %= w1            ; 0x23456789
    r0 = r2
    r0 += r3
    r0 += r4
    exit
