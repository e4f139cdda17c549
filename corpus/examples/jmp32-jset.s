; Bug 80f1f8503635: a 32-bit JSET must test only the low 32 bits.
; r1 and r2 share only bit 32, so `if w1 & w2` must not jump.
    r1 = 0x100000000 ll
    r2 = 0x100000000 ll
    r0 = 0
    if w1 & w2 goto +1
    r0 = 1
    exit
