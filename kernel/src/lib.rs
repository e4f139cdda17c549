//! jitdiff's real-kernel engine, guest side.
//!
//! `kernel/build.sh` builds a small riscv64 Linux kernel and an initramfs whose `/init` is
//! the agent (`kernel/agent/agent.c`). [`Guest::boot`] starts it under
//! `qemu-system-riscv64` and [`Guest::run`] sends it [`Job`]s: each job creates maps,
//! loads programs through the kernel's verifier, fills prog-array slots and runs the entry
//! program once per input with `BPF_PROG_TEST_RUN`, under the RV64 JIT or the interpreter.
//! The wire format is described in `kernel/PROTOCOL.md`.
//!
//! qemu is driven through piped stdio (a virtio-serial port), with the kernel log on the
//! emulated UART, written to a file. [`engine`] turns jitdiff's program sets into jobs and
//! the results into outcomes: the engines `kernel-jit` and `kernel-interp`.

pub mod btf;
pub mod disasm;
pub mod engine;
mod guest;
mod image;
mod wire;

pub use engine::KernelEngine;
pub use guest::{stop_waiting, BootOptions, Guest};
pub use image::{is_debian_version, KernelImage, DEFAULT_KERNEL};

use std::path::PathBuf;
use std::time::Duration;

/// Program types and attach types of the kernel's UAPI that jitdiff uses (`enum
/// bpf_prog_type` values; the agent accepts any value and lets the kernel decide).
pub mod prog_type {
    /// `BPF_PROG_TYPE_SOCKET_FILTER`: packet in `data_in`, `__sk_buff` context.
    pub const SOCKET_FILTER: u32 = 1;
    /// `BPF_PROG_TYPE_SCHED_CLS`: packet in `data_in`, `__sk_buff` context.
    pub const SCHED_CLS: u32 = 3;
    /// `BPF_PROG_TYPE_XDP`: packet in `data_in`, `xdp_md` context; the recommended type,
    /// see "Program type" in `kernel/PROTOCOL.md`.
    pub const XDP: u32 = 6;
    /// `BPF_PROG_TYPE_SYSCALL`: a sleepable type whose context is a plain writable buffer.
    pub const SYSCALL: u32 = 31;
}

/// Errors of locating, booting and talking to the guest.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// Neither `$JITDIFF_KERNEL_DIR` nor the build cache holds `Image` and `initramfs.cpio`.
    #[error("no kernel image: run kernel/build.sh (looked in {0})")]
    NoImage(PathBuf),
    /// `kernel/build.sh --kernel SPEC` could not build the kernel asked for.
    #[error("no kernel image for {spec}: {why}")]
    Build {
        /// The kernel asked for (a Debian version or a path).
        spec: String,
        /// What went wrong, and the command to run.
        why: String,
    },
    /// qemu could not be started, or the temporary directory could not be made.
    #[error("cannot start qemu ({cmd}): {source}")]
    Spawn {
        /// The program that was started.
        cmd: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The guest did not answer in time (boot handshake or a response); qemu has been
    /// killed and the guest is dead: boot a new one.
    #[error("guest timed out after {waited:?} while {during}")]
    Timeout {
        /// What the host was waiting for.
        during: &'static str,
        /// How long it waited.
        waited: Duration,
        /// The end of the kernel log (the UART), for diagnosis.
        console_tail: String,
    },
    /// qemu exited or closed the channel (e.g. a kernel panic): boot a new guest.
    #[error("guest died while {during}: {status}; kernel log ends with:\n{console_tail}")]
    Died {
        /// What the host was doing.
        during: &'static str,
        /// qemu's exit status and stderr, as far as known.
        status: String,
        /// The end of the kernel log (the UART), which shows a panic if there was one.
        console_tail: String,
    },
    /// The guest was already dead (an earlier error killed it).
    #[error("guest is dead (an earlier error stopped it): boot a new one")]
    Dead,
    /// A `JITDIFF_*` environment variable that configures the guests is malformed (see
    /// [`BootOptions::from_env`]).
    #[error("{0}")]
    Environment(String),
    /// jitdiff is stopping ([`stop_waiting`] was called): the wait was given up and the guest
    /// killed; no new guest boots.
    #[error("interrupted: jitdiff is stopping")]
    Interrupted,
    /// The agent answered with a frame that does not follow the protocol; qemu has been
    /// killed because the stream can no longer be trusted.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The agent refused the request as malformed (the guest stays usable).
    #[error("agent refused the request: {0}")]
    Agent(String),
    /// A job cannot be encoded (the guest was not contacted and stays usable).
    #[error("job {job}: {reason}")]
    InvalidJob {
        /// Index of the job in the slice given to [`Guest::run`].
        job: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The request would exceed the agent's payload limit ([`MAX_REQUEST_BYTES`]); split it.
    #[error("request of {0} bytes exceeds the agent's limit of {MAX_REQUEST_BYTES} bytes: send fewer jobs per call")]
    TooLarge(usize),
}

/// The version of the protocol between the host and the agent (`kernel/PROTOCOL.md`),
/// which the agent's ready frame states.
pub const PROTOCOL_VERSION: u32 = 4;

/// Largest request payload the agent accepts, in bytes.
pub const MAX_REQUEST_BYTES: usize = 64 << 20;

/// Largest verifier log tail returned for a rejected program, in bytes.
pub const MAX_LOG_BYTES: usize = 64 << 10;

/// A map created for one job. Maps are referred to by their index in [`Job::maps`]; keys
/// are `u32`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Map {
    /// `BPF_MAP_TYPE_PROG_ARRAY` with `max_entries` slots, filled from [`Job::slots`]; the
    /// other slots stay empty (a tail call through them falls through).
    ProgArray {
        /// Number of slots.
        max_entries: u32,
    },
    /// `BPF_MAP_TYPE_ARRAY` with `u32` keys. Before every input it is reset to `initial`,
    /// and after every run its whole contents are reported in [`RunOutput::maps`].
    Array {
        /// Bytes per value (the kernel refuses 0).
        value_size: u32,
        /// Number of values.
        max_entries: u32,
        /// Exactly `value_size * max_entries` bytes: value 0, then value 1, ...
        initial: Vec<u8>,
    },
}

/// A prog-array slot to fill before the runs: `maps[map][key] = progs[prog]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Index of a [`Map::ProgArray`] in [`Job::maps`].
    pub map: u32,
    /// The slot (key) in that prog array.
    pub key: u32,
    /// Index of the program in [`Job::progs`] to put there.
    pub prog: u32,
}

/// How each input reaches the program in `BPF_PROG_TEST_RUN`, and where the bytes reported
/// in [`RunOutput::output`] come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BufferMode {
    /// The input is packet data (`data_in`); the output is `data_out` (the packet after the
    /// run). For XDP and SCHED_CLS, the recommended mode.
    #[default]
    Data,
    /// The input is the context (`ctx_in`); the output is `ctx_out` as the kernel writes it
    /// back for the type (e.g. `struct __sk_buff` for SCHED_CLS).
    Ctx,
    /// The input is the context (`ctx_in`), run without `ctx_out` or `repeat`, and the output
    /// is `ctx_in` as the kernel writes it back in place (BPF_PROG_TYPE_SYSCALL).
    CtxInPlace,
    /// The input is packet data (`data_in`) and the context starts zeroed (no `ctx_in`); the
    /// output is `ctx_out` followed by `data_out` (for SCHED_CLS and SOCKET_FILTER: the
    /// 192-byte `struct __sk_buff` as the test run writes it back, then the packet).
    DataAndCtx,
}

/// One program set to load and run on a list of inputs, under the JIT or the interpreter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Job {
    /// `true`: `net.core.bpf_jit_enable = 1` while loading (the RV64 JIT compiles the
    /// programs); `false`: `0` (the kernel interpreter runs them).
    pub jit: bool,
    /// `enum bpf_prog_type` value, e.g. [`prog_type::XDP`]; all programs of the job share it.
    pub prog_type: u32,
    /// `expected_attach_type` for `BPF_PROG_LOAD` (0 for XDP and SCHED_CLS).
    pub expected_attach_type: u32,
    /// `prog_flags` for `BPF_PROG_LOAD` (e.g. `BPF_F_TEST_RND_HI32` = 4); usually 0.
    pub prog_flags: u32,
    /// How the inputs are passed and the output is read back.
    pub buffer_mode: BufferMode,
    /// Kernel functions the programs call: a kfunc call (`call` with src_reg 2,
    /// `BPF_PSEUDO_KFUNC_CALL`) has as imm an index into this list, which the agent replaces
    /// with the function's BTF id in the guest kernel's `/sys/kernel/btf/vmlinux`.
    pub kfuncs: Vec<String>,
    /// Maps, created in order before the programs are loaded.
    pub maps: Vec<Map>,
    /// Programs as raw 8-byte instructions, loaded in order. In an `lddw` (opcode `0x18`)
    /// whose src_reg is 1 (`BPF_PSEUDO_MAP_FD`) or 2 (`BPF_PSEUDO_MAP_VALUE`), imm is an
    /// index into [`Job::maps`]; the agent replaces it with that map's fd.
    pub progs: Vec<Vec<[u8; 8]>>,
    /// The BTF each program is loaded with, by index in [`Job::progs`]; programs past the
    /// end of this list, and `None`s, are loaded without BTF.
    pub btf: Vec<Option<ProgBtf>>,
    /// Prog-array slots filled after all programs are loaded.
    pub slots: Vec<Slot>,
    /// Index in [`Job::progs`] of the program that is run.
    pub entry: u32,
    /// Tracing programs loaded after the slots are filled, each attached with a link to a
    /// function of one of [`Job::progs`]; their run counts are reported per input.
    pub attachments: Vec<JobAttachment>,
    /// With `Some(m)`, [`Job::maps`]`[m]` must be a [`Map::Array`]: before each run, after the
    /// reset, each input's [`Input::map_overlay`] is written over the start of its contents.
    /// This lets the programs' buffer be an array map value (see `kernel/PROTOCOL.md`).
    pub input_map: Option<u32>,
    /// One test run per input, in order, each on freshly reset array maps.
    pub inputs: Vec<Input>,
    /// Also return the entry's JITed machine code ([`EntryInfo::jited_image`]).
    pub want_jited_image: bool,
    /// Also return the entry's instructions as the verifier rewrote them
    /// ([`EntryInfo::xlated`]).
    pub want_xlated: bool,
}

/// A tracing program (`BPF_PROG_TYPE_TRACING`) attached to a function of a program of the
/// job: loaded with `attach_prog_fd` = that program and `attach_btf_id` = the function's
/// `FUNC` in its BTF (which it must have been loaded with), then attached with
/// `BPF_LINK_CREATE`. The kernel attaches tracing programs only to JIT-compiled programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobAttachment {
    /// `BPF_TRACE_FEXIT` when true, else `BPF_TRACE_FENTRY`.
    pub fexit: bool,
    /// Index in [`Job::progs`] of the traced program.
    pub target: u32,
    /// The traced function's `FUNC` type id in the traced program's BTF.
    pub btf_id: u32,
    /// Its instructions, with map references as in [`Job::progs`].
    pub insns: Vec<[u8; 8]>,
}

/// The BTF a program is loaded with: `BPF_BTF_LOAD` of [`ProgBtf::btf`], then
/// `BPF_PROG_LOAD` with that BTF and the [`ProgBtf::func_info`] records. The kernel wants it
/// for a program whose subprograms make tail calls (see [`btf`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProgBtf {
    /// Raw BTF: header, types and strings, as `BPF_BTF_LOAD` takes it; never empty.
    pub btf: Vec<u8>,
    /// One record per function of the program, in order, the first at instruction 0;
    /// never empty.
    pub func_info: Vec<FuncInfo>,
}

/// `struct bpf_func_info`: where a function starts and its `FUNC` type in the BTF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuncInfo {
    /// The function's first instruction slot in the program.
    pub insn_off: u32,
    /// The id of its `BTF_KIND_FUNC` type.
    pub type_id: u32,
}

/// One input of a [`Job`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Input {
    /// The bytes given to `BPF_PROG_TEST_RUN` as the packet or the context
    /// (see [`BufferMode`]). Packet types need at least 14 bytes.
    pub data: Vec<u8>,
    /// Written over the start of the input map's contents before the run; must be empty
    /// when [`Job::input_map`] is `None`, and at most the map's size otherwise.
    pub map_overlay: Vec<u8>,
}

impl From<Vec<u8>> for Input {
    /// An input with the given data and no map overlay.
    fn from(data: Vec<u8>) -> Self {
        Input { data, map_overlay: Vec::new() }
    }
}

/// What the kernel says about the loaded entry program (`BPF_OBJ_GET_INFO_BY_FD`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryInfo {
    /// The entry runs as JITed machine code (`jited_prog_len > 0`).
    pub jited: bool,
    /// Bytes of JITed code, all subprograms included (0 when interpreted).
    pub jited_len: u32,
    /// Bytes of the verifier-rewritten ("xlated") instructions.
    pub xlated_len: u32,
    /// The JITed code, when [`Job::want_jited_image`] was set (else empty); subprograms follow
    /// the main program.
    pub jited_image: Vec<u8>,
    /// The xlated instructions, when [`Job::want_xlated`] was set (else empty).
    pub xlated: Vec<u8>,
}

/// Where [`RunOutput::output`] was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// The run failed (`errno != 0`): there is no output.
    None,
    /// `data_out`: the packet after the run ([`BufferMode::Data`]).
    Data,
    /// `ctx_out` ([`BufferMode::Ctx`]).
    CtxOut,
    /// `ctx_in` as written back in place ([`BufferMode::CtxInPlace`]).
    CtxIn,
    /// `ctx_out` followed by `data_out` ([`BufferMode::DataAndCtx`]).
    CtxOutThenData,
}

/// The result of one `BPF_PROG_TEST_RUN` of the entry on one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// 0 when the test run succeeded, else the errno of `BPF_PROG_TEST_RUN` (e.g. 22 EINVAL
    /// for a packet shorter than 14 or longer than the type allows).
    pub errno: i32,
    /// The program's return value (R0); the kernel reports only its low 32 bits.
    pub retval: u32,
    /// The kernel's measured run time in nanoseconds (0 where the type does not measure).
    pub duration_ns: u32,
    /// Where `output` comes from.
    pub output_kind: OutputKind,
    /// The buffer after the run (at most 64 KiB; see [`OutputKind`]).
    pub output: Vec<u8>,
    /// After the run, one entry per map of the job, in order: the whole contents of each
    /// [`Map::Array`] (`value_size * max_entries` bytes), empty for a prog array.
    pub maps: Vec<Vec<u8>>,
    /// How many times each of [`Job::attachments`] ran during this run (the kernel's
    /// `run_cnt`, counted while `BPF_ENABLE_STATS` is on).
    pub attachment_runs: Vec<u32>,
}

/// The outcome of one [`Job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    /// Every program loaded; one [`RunOutput`] per input, in order.
    Ran {
        /// The entry program as loaded.
        entry: EntryInfo,
        /// One output per input.
        runs: Vec<RunOutput>,
    },
    /// `BPF_PROG_LOAD` failed for `prog` (programs are loaded in order, then the
    /// attachments; none ran).
    Rejected {
        /// Index in [`Job::progs`] of the refused program, or `progs.len() + k` for
        /// attachment `k`.
        prog: u32,
        /// errno of the load (13 EACCES and 22 EINVAL are the verifier's usual ones; 524
        /// ENOTSUPP e.g. when the JIT refuses a feature mix).
        errno: i32,
        /// The last [`MAX_LOG_BYTES`] at most of the verifier log (log_level 1).
        log: String,
    },
    /// Something other than the verifier failed (map creation, a slot update, switching the
    /// JIT, reading maps back); nothing of the job is reported.
    SetupFailed {
        /// errno of the failing call.
        errno: i32,
        /// What the agent was doing.
        message: String,
    },
}

impl JobResult {
    /// The runs when the job ran, else `None`.
    pub fn runs(&self) -> Option<&[RunOutput]> {
        match self {
            JobResult::Ran { runs, .. } => Some(runs),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_can_move_between_threads() {
        fn is_send<T: Send>() {}
        is_send::<Guest>();
        is_send::<GuestError>();
    }
}
