; A loop bounded by the context, as compilers emit `for (i = 0; i < n; i++)` with n read
; from the packet: n = ctx[0] & 3, the test `i < n` at the bottom (so the body runs once
; even for n = 0), and an early exit when the running sum passes 100. With ctx[0] = 3
; and ctx[1] = 40: i = 1, 2, 3, R0 = 40 + 40 + 40 = 120 > 100 leaves at i = 3 anyway,
; R0 = 120.
.ctx hex 0328000000000000
    r2 = *(u8 *)(r1 + 0)
    r2 &= 3
    r3 = *(u8 *)(r1 + 1)
    r0 = 0
    r4 = 0
loop:
    r0 += r3
    if r0 > 100 goto out
    r4 += 1
    if r4 < r2 goto loop
out:
    exit
