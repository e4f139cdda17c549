; A tc classifier reading the TCP destination port past a variable-length IPv4 header, as
; compilers emit it: data and data_end from the struct __sk_buff, a check that the Ethernet
; header and a minimal IPv4 header are in the packet, the header length from IHL (a
; variable offset: a packet pointer of its own), a second check through that pointer, and
; a 16-bit load. On jitdiff's default packet (IHL 5, TCP port 1234 -> 80): R0 = 80.
.progtype tc
    r2 = *(u32 *)(r1 + 76)
    r3 = *(u32 *)(r1 + 80)
    r0 = 0
    r4 = r2
    r4 += 34
    if r4 > r3 goto out
    r5 = *(u8 *)(r2 + 14)
    r5 &= 15
    r5 <<= 2
    r6 = r2
    r6 += r5
    r7 = r6
    r7 += 18
    if r7 > r3 goto out
    r0 = *(u16 *)(r6 + 16)
    r0 = be16 r0
out:
    exit
