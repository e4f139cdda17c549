; Atomics on the context: fetch-add returns the old value; cmpxchg32 zero-extends.
    r2 = 5
    r2 = atomic_fetch_add((u64 *)(r1 + 0), r2)
    *(u32 *)(r1 + 8) = -2147483648
    w0 = 0x80000000
    w3 = 7
    w0 = cmpxchg32_32(r1 + 8, w0, w3)
    r0 += r2
    exit
