; A loop whose 32-bit test counts down only the low half of its counter: r1 starts at
; 0x100000003, and `if w1 != 0` sees 3, 2, 1, 0, so the body runs three times and
; R0 = 3, although r1 ends at 0x100000000. A JIT that compares all 64 bits in the loop's
; test would run it 2^32 times more (jitdiff's `hang`).
    r0 = 0
    r1 = 0x100000003 ll
loop:
    r0 += 1
    r1 -= 1
    if w1 != 0 goto loop
    exit
