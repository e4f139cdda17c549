; A backward jump that closes no cycle: both jumps go back to an `exit` earlier in the
; program, as compilers place shared exits. The kernel's verifier accepts it (it rejects
; back edges of the control-flow graph, not backward offsets); with context word 0 zero
; the first jump is taken and R0 = 2, else R0 = 3.
.ctx 8
    goto start
out:
    exit
start:
    r0 = 2
    r2 = *(u64 *)(r1 + 0)
    if r2 == 0 goto out
    r0 = 3
    goto out
