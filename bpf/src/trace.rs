//! Instruction traces: what an engine saw just before each BPF instruction it executed,
//! so that two engines' runs can be walked side by side to the first instruction after
//! which they disagree.
//!
//! Only engines that can stop at every BPF instruction produce traces (the reference
//! interpreter, and the JIT through an emulator hook on the first machine instruction of
//! each BPF instruction's code). Traces are for triage, never for the fuzzing loop.

/// The most steps a trace keeps: a trace of a long run is cut here (the first divergence
/// of a finding is almost always early; a cut trace says so).
pub const MAX_STEPS: usize = 100_000;

/// One executed BPF instruction: where it was and the registers just before it ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// The program of the set (0 is the entry).
    pub prog: usize,
    /// The instruction's index in the program's instruction list (not its slot pc).
    pub index: usize,
    /// R0 to R10 just before the instruction.
    pub regs: [u64; 11],
    /// Bit `r` set: register `r` holds a value every engine must agree on (defined, and
    /// not derived from a stack or context address, which engines place differently).
    /// Engines that cannot tell set every bit.
    pub comparable: u16,
}

impl Step {
    /// Every register comparable.
    pub const ALL_COMPARABLE: u16 = (1 << 11) - 1;

    /// Whether register `r` (0 to 10) is comparable in this step.
    pub fn is_comparable(&self, r: usize) -> bool {
        r < 11 && self.comparable & (1 << r) != 0
    }
}

/// A run's steps in execution order, at most [`MAX_STEPS`] of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    /// The steps kept.
    pub steps: Vec<Step>,
    /// Whether the run executed more steps than were kept.
    pub cut: bool,
}

impl Trace {
    /// Appends a step, or marks the trace cut when it is full.
    pub fn push(&mut self, step: Step) {
        if self.steps.len() < MAX_STEPS {
            self.steps.push(step);
        } else {
            self.cut = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_trace_is_cut_not_grown() {
        let mut t = Trace::default();
        let s = Step { prog: 0, index: 0, regs: [0; 11], comparable: Step::ALL_COMPARABLE };
        for _ in 0..MAX_STEPS + 3 {
            t.push(s);
        }
        assert_eq!(t.steps.len(), MAX_STEPS);
        assert!(t.cut);
        assert!(s.is_comparable(10) && !s.is_comparable(11));
    }
}
