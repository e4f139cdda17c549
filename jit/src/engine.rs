//! The JIT as a [`bpf::Engine`]: compile, run in unicorn, and translate what the machine
//! did into an engine-neutral [`Outcome`].

use bpf::{Engine, Fault, FaultKind, Input, Outcome, Program, RunResult};

use crate::compile::{compile, Compiled};
use crate::runner::{Native, Runner, Stop, CODE_ADDR, INSN_LIMIT};

/// Compiles programs with jitdiff's RV64 JIT and runs them in one reusable emulator.
/// Create one per thread.
#[derive(Debug, Default)]
pub struct Jit {
    runner: Option<Runner>,
}

impl Jit {
    /// A JIT engine; the emulator is created on first use.
    pub fn new() -> Jit {
        Jit { runner: None }
    }

    fn runner(&mut self) -> Result<&mut Runner, String> {
        if self.runner.is_none() {
            self.runner = Some(Runner::new()?);
        }
        Ok(self.runner.as_mut().expect("just created"))
    }
}

fn host(detail: String) -> RunResult {
    RunResult::Ran(Outcome {
        result: Err(Fault { kind: FaultKind::Host, pc: None, detail }),
        ctx: Vec::new(),
        r0_is_address: false,
    })
}

/// The BPF pc whose code contains guest address `addr`, if any.
fn bpf_pc(prog: &Program, compiled: &Compiled, addr: u64) -> Option<usize> {
    let off = addr.checked_sub(CODE_ADDR)? as usize;
    compiled.insn_at(off).map(|i| prog.pc_of(i))
}

/// Turns a finished run into an outcome: R0 is `a5`; the native return value `a0` must
/// be R0's low 32 bits sign-extended, and callee-saved registers must be intact, or the
/// run is an ABI fault.
pub fn outcome(prog: &Program, compiled: &Compiled, n: Native) -> Outcome {
    let pc = bpf_pc(prog, compiled, n.pc);
    let fault = |kind, detail: String| Err(Fault { kind, pc, detail });
    let result = match n.stop {
        Ok(()) if n.a0 != n.a5 as i32 as i64 as u64 => fault(
            FaultKind::Abi,
            format!(
                "the native return value a0 = {:#x} is not R0's low 32 bits sign-extended (R0 = {:#x})",
                n.a0, n.a5
            ),
        ),
        Ok(()) if !n.clobbered.is_empty() => {
            let list: Vec<String> =
                n.clobbered.iter().map(|(r, was, now)| format!("{r} was {was:#x}, is {now:#x}")).collect();
            Err(Fault {
                kind: FaultKind::Abi,
                pc: None,
                detail: format!("callee-saved registers not restored: {}", list.join("; ")),
            })
        }
        Ok(()) => Ok(n.a5),
        Err(Stop::Memory { addr, access }) => fault(
            FaultKind::MemoryAccess,
            match addr {
                Some(a) => format!("{access} of unmapped address {a:#x} (machine pc {:#x})", n.pc),
                None => format!("{access} fault at machine pc {:#x}", n.pc),
            },
        ),
        Err(Stop::Illegal) => fault(FaultKind::BadCode, format!("illegal instruction at machine pc {:#x}", n.pc)),
        Err(Stop::Limit) => fault(FaultKind::Budget, format!("{INSN_LIMIT} machine instructions without returning")),
        Err(Stop::Emulator(e)) => fault(FaultKind::BadCode, format!("emulator stopped with {e} at {:#x}", n.pc)),
    };
    Outcome { result, ctx: n.ctx, r0_is_address: false }
}

impl Engine for Jit {
    fn name(&self) -> &'static str {
        "jit"
    }

    fn run(&mut self, prog: &Program, input: &Input) -> RunResult {
        let compiled = match compile(prog) {
            Ok(c) => c,
            Err(e) => return RunResult::CannotJudge(e.to_string()),
        };
        let code = compiled.code();
        let runner = match self.runner() {
            Ok(r) => r,
            Err(e) => return host(e),
        };
        match runner.run(&code, input.ctx.as_deref()) {
            Ok(native) => RunResult::Ran(outcome(prog, &compiled, native)),
            Err(e) => host(e),
        }
    }
}
