//! Running the guest under qemu and exchanging frames with its agent.

use std::collections::VecDeque;
use std::fs;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::wire;
use crate::{GuestError, Job, JobResult, KernelImage};

/// How the guest is started and how long the host waits for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootOptions {
    /// The qemu binary (default: the path `JITDIFF_QEMU` names, else `qemu-system-riscv64`
    /// found on `PATH`).
    pub qemu: PathBuf,
    /// Guest memory in MiB (default 512).
    pub memory_mib: u32,
    /// qemu's translation cache in MiB (`-accel tcg,tb-size=N`; default 128). qemu's own
    /// default, 1 GiB, fills over an hour of fuzzing (the JITed images are new code every
    /// job) and holds a guest's memory that much above its RAM; a full cache is flushed and
    /// refilled, which costs little at this size.
    pub tcg_cache_mib: u32,
    /// qemu `-cpu` value, e.g. `rv64,zba=true,zbb=true` to let the JIT use bit-manipulation
    /// instructions; `None` (default) keeps qemu's default `rv64` CPU.
    pub cpu: Option<String>,
    /// Longest wait for the agent's ready frame after qemu starts (default 60 s).
    pub boot_timeout: Duration,
    /// Every [`Guest::run`] waits at most this long, plus `run_timeout_per_input` times the
    /// number of inputs (each job counts at least once), plus `run_timeout_per_kinsn_squared`
    /// times the square of each program's length in thousands of instructions, for its
    /// response (default: the seconds `JITDIFF_GUEST_TIMEOUT` gives, else 30 s).
    pub run_timeout_base: Duration,
    /// See `run_timeout_base` (default 50 ms).
    pub run_timeout_per_input: Duration,
    /// See `run_timeout_base` (default 80 ms, so 3.2 s for a 4,096-instruction program and
    /// 53 min for 200,000). The verifier's time grows with the square of a program's length
    /// when it removes dead code: it moves the rest of the program once per dead region.
    /// Under emulation a 61,079-instruction lib/test_bpf.c vector took 72 s and a
    /// 98,787-instruction one 252 s to load; this allows about three times that.
    pub run_timeout_per_kinsn_squared: Duration,
    /// Extra kernel command-line arguments.
    pub extra_append: String,
    /// A folder where qemu's human monitor listens on a Unix socket, one per guest
    /// (`guest-PID-N.sock`), for profiling (`scripts/guest-profile.py` samples the guest's
    /// program counter through it). Default: the folder `JITDIFF_GUEST_MONITOR` names, else
    /// none.
    pub monitor_dir: Option<PathBuf>,
}

impl BootOptions {
    /// The longest wait for the response to `jobs`: `run_timeout_base`, plus
    /// `run_timeout_per_input` for each input (at least one per job), plus
    /// `run_timeout_per_kinsn_squared` times (program length / 1,000)² for each program.
    pub fn run_budget(&self, jobs: &[Job]) -> Duration {
        let inputs: u32 = jobs.iter().map(|j| j.inputs.len().max(1) as u32).fold(0, u32::saturating_add);
        let insns_squared: u128 = jobs.iter().flat_map(|j| &j.progs).map(|p| (p.len() as u128).pow(2)).sum();
        let verifier_nanos = self.run_timeout_per_kinsn_squared.as_nanos() * insns_squared / 1_000_000;
        self.run_timeout_base
            .saturating_add(self.run_timeout_per_input.saturating_mul(inputs))
            .saturating_add(Duration::from_nanos(u64::try_from(verifier_nanos).unwrap_or(u64::MAX)))
    }
}

impl BootOptions {
    /// The defaults with what the environment sets: `JITDIFF_QEMU` (the qemu binary),
    /// `JITDIFF_GUEST_TIMEOUT` (seconds, for `run_timeout_base`: a shorter budget notices a
    /// hung guest sooner), `JITDIFF_GUEST_MONITOR` (see `monitor_dir`). `Err` names the
    /// variable and what is wrong with its value.
    pub fn from_env() -> Result<BootOptions, String> {
        let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let mut o = BootOptions::built_in();
        o.monitor_dir = set("JITDIFF_GUEST_MONITOR").map(PathBuf::from);
        if let Some(qemu) = set("JITDIFF_QEMU") {
            o.qemu = PathBuf::from(qemu);
        }
        if let Some(secs) = set("JITDIFF_GUEST_TIMEOUT") {
            let text = secs.to_string_lossy();
            let secs =
                text.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0);
            let Some(secs) = secs else {
                return Err(format!(
                    "JITDIFF_GUEST_TIMEOUT: {text:?} is not a number of seconds above 0 and at most 86400"
                ));
            };
            o.run_timeout_base = Duration::from_secs_f64(secs);
        }
        Ok(o)
    }

    /// The defaults without the environment.
    fn built_in() -> BootOptions {
        BootOptions {
            qemu: PathBuf::from("qemu-system-riscv64"),
            memory_mib: 512,
            tcg_cache_mib: 128,
            cpu: None,
            boot_timeout: Duration::from_secs(60),
            run_timeout_base: Duration::from_secs(30),
            run_timeout_per_input: Duration::from_millis(50),
            run_timeout_per_kinsn_squared: Duration::from_millis(80),
            extra_append: String::new(),
            monitor_dir: None,
        }
    }
}

impl Default for BootOptions {
    /// [`BootOptions::from_env`], or the built-in defaults when a variable is malformed
    /// (jitdiff's commands refuse to start then, naming it).
    fn default() -> Self {
        BootOptions::from_env().unwrap_or_else(|_| BootOptions::built_in())
    }
}

/// Set by [`stop_waiting`].
static STOP_WAITING: AtomicBool = AtomicBool::new(false);

/// How often a wait for a guest looks at [`STOP_WAITING`].
const STOP_POLL: Duration = Duration::from_millis(50);

/// Makes every wait for a guest, now and later, give up within 50 ms with
/// [`GuestError::Interrupted`] (killing that guest), and every boot fail so: for a process
/// that is stopping (Ctrl-C) and will not wait for a slow verifier.
pub fn stop_waiting() {
    STOP_WAITING.store(true, Ordering::Relaxed);
}

/// A running guest: qemu with the agent ready to take requests.
///
/// Its kernel log and qemu's messages are files in a folder of its own while it boots;
/// once the agent is ready the folder is removed and the guest reads them through open
/// handles, so that nothing is left behind however jitdiff ends. Dropping it kills qemu
/// (and removes the folder if it is still there).
/// After any error other than [`GuestError::Agent`], [`GuestError::InvalidJob`] and
/// [`GuestError::TooLarge`] the guest is dead: every later call returns an error, and
/// the caller boots a new one.
pub struct Guest {
    child: Child,
    stdin: Option<ChildStdin>,
    chunks: Receiver<Vec<u8>>,
    reader: Option<JoinHandle<()>>,
    pending: Vec<u8>,
    tmp: PathBuf,
    /// `console.log` and `qemu.stderr`, opened once the agent is ready and its folder
    /// removed.
    logs: Option<(fs::File, fs::File)>,
    options: BootOptions,
    banner: String,
    boot_time: Duration,
    /// The wait allowed for the current boot or request (reported on a timeout).
    budget: Duration,
    dead: bool,
    /// Requests sent and not yet answered, oldest first: when each was sent, and its budget.
    outstanding: VecDeque<(Instant, Duration)>,
    /// When the last response came (or the guest became ready).
    last_answer: Instant,
}

static GUEST_SEQ: AtomicU64 = AtomicU64::new(0);

impl Guest {
    /// Boots `image` with [`BootOptions::default`] and waits for the agent's ready frame.
    pub fn boot(image: &KernelImage) -> Result<Guest, GuestError> {
        Guest::boot_with(image, BootOptions::default())
    }

    /// Boots `image` with `options` and waits for the agent's ready frame (at most
    /// `options.boot_timeout`). The kernel log goes to a file in a fresh temporary directory.
    pub fn boot_with(image: &KernelImage, options: BootOptions) -> Result<Guest, GuestError> {
        let start = Instant::now();
        if STOP_WAITING.load(Ordering::Relaxed) {
            return Err(GuestError::Interrupted);
        }
        let seq = GUEST_SEQ.fetch_add(1, Ordering::Relaxed);
        let spawn_err = |source| GuestError::Spawn { cmd: options.qemu.display().to_string(), source };
        let qemu = find_program(&options.qemu).ok_or_else(|| {
            spawn_err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not found (scripts/setup.sh installs it)",
            ))
        })?;
        remove_folders_of_dead_processes();
        let tmp = process_folder().join(format!("guest-{seq}"));
        create_folder(&tmp).map_err(spawn_err)?;
        let stderr = fs::File::create(tmp.join("qemu.stderr")).map_err(spawn_err)?;
        let mut append = String::from("console=ttyS0 riscv_isa_fallback panic=-1");
        if !options.extra_append.is_empty() {
            append.push(' ');
            append.push_str(&options.extra_append);
        }
        // qemu dies with the thread that started it, whatever ends jitdiff (a kill, a
        // crash): `setpriv --pdeathsig KILL` (util-linux, which Debian always has) sets the
        // parent-death signal and becomes qemu. Its own process group keeps a terminal's
        // Ctrl-C for jitdiff, which shuts its guests down itself.
        let mut cmd = match find_program(std::path::Path::new("setpriv")) {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(&qemu);
                c
            }
            None => Command::new(&qemu),
        };
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.args([
            "-M",
            "virt",
            "-smp",
            "1",
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-bios",
            "default",
        ])
        .arg("-m")
        .arg(format!("{}M", options.memory_mib))
        .arg("-accel")
        .arg(format!("tcg,tb-size={}", options.tcg_cache_mib))
        .arg("-kernel")
        .arg(&image.image)
        .arg("-initrd")
        .arg(&image.initramfs)
        .arg("-append")
        .arg(&append)
        .arg("-serial")
        .arg(format!("file:{}", tmp.join("console.log").display()))
        // the channel: a virtio-serial port on qemu's stdio (the guest's /dev/vport0p1)
        .args(["-device", "virtio-serial-device", "-chardev", "stdio,id=ch,signal=off"])
        .args(["-device", "virtserialport,chardev=ch,name=org.jitdiff.agent"]);
        if let Some(cpu) = &options.cpu {
            cmd.arg("-cpu").arg(cpu);
        }
        if let Some(dir) = &options.monitor_dir {
            let socket = dir.join(format!("guest-{}-{seq}.sock", std::process::id()));
            cmd.arg("-monitor").arg(format!("unix:{},server,nowait", socket.display()));
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(stderr);
        let mut child = match spawn_from_a_lasting_thread(cmd) {
            Ok(c) => c,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(spawn_err(e));
            }
        };
        let mut stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, chunks) = mpsc::channel();
        let reader = std::thread::Builder::new()
            .name("jitdiff-guest-reader".into())
            .spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    match stdout.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if tx.send(buf[..n].to_vec()).is_err() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            })
            .map_err(spawn_err)?;
        let mut guest = Guest {
            child,
            stdin,
            chunks,
            reader: Some(reader),
            pending: Vec::new(),
            tmp,
            logs: None,
            options,
            banner: String::new(),
            boot_time: Duration::ZERO,
            budget: Duration::ZERO,
            dead: false,
            outstanding: VecDeque::new(),
            last_answer: start,
        };
        guest.budget = guest.options.boot_timeout;
        let deadline = start + guest.budget;
        let payload = guest.read_frame(wire::MAGIC_READY, deadline, "waiting for the agent's ready frame")?;
        guest.banner = wire::decode_ready(&payload).inspect_err(|_| guest.kill())?;
        // qemu has opened the log long since: from now on it is read through handles.
        let open = |name: &str| fs::File::open(guest.tmp.join(name));
        if let (Ok(console), Ok(stderr)) = (open("console.log"), open("qemu.stderr")) {
            guest.logs = Some((console, stderr));
            guest.remove_folder();
        }
        guest.boot_time = start.elapsed();
        guest.last_answer = Instant::now();
        Ok(guest)
    }

    /// The agent's self-description from its ready frame, e.g.
    /// `release=6.12.117 machine=riscv64 bpf_jit_enable=1`.
    pub fn banner(&self) -> &str {
        &self.banner
    }

    /// Time from starting qemu to the agent's ready frame.
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// `false` once an error has stopped the guest.
    pub fn is_alive(&self) -> bool {
        !self.dead
    }

    /// The kernel log (the UART) so far.
    pub fn console_log(&self) -> String {
        String::from_utf8_lossy(&self.read_log("console.log", |l| &l.0)).into_owned()
    }

    /// The whole of log `name`, through its handle once the folder is gone.
    fn read_log(&self, name: &str, handle: fn(&(fs::File, fs::File)) -> &fs::File) -> Vec<u8> {
        match &self.logs {
            Some(logs) => {
                let mut bytes = Vec::new();
                let mut file = handle(logs);
                let _ = file.seek(std::io::SeekFrom::Start(0)).and_then(|_| file.read_to_end(&mut bytes));
                bytes
            }
            None => fs::read(self.tmp.join(name)).unwrap_or_default(),
        }
    }

    /// Removes the guest's folder, and the process's once its last guest's is gone.
    fn remove_folder(&self) {
        let _ = fs::remove_dir_all(&self.tmp);
        if let Some(parent) = self.tmp.parent() {
            let _ = fs::remove_dir(parent);
        }
    }

    /// Sends `jobs` as one request frame and returns one result per job, in order. No
    /// request sent by [`Guest::send_request`] may be waiting for its response.
    ///
    /// Waits at most [`BootOptions::run_budget`] of `jobs`; a timeout, a dead qemu or a malformed response kills the guest and
    /// is an error. An empty slice is a cheap round trip (a liveness check).
    pub fn run(&mut self, jobs: &[Job]) -> Result<Vec<JobResult>, GuestError> {
        if !self.outstanding.is_empty() {
            return Err(GuestError::Protocol(format!(
                "{} request(s) still wait for their responses",
                self.outstanding.len()
            )));
        }
        self.send_request(jobs)?;
        self.receive(jobs)
    }

    /// Sends `jobs` as one request frame and returns at once: the guest works on it while
    /// the host goes on, and [`Guest::receive`] collects the results. Requests are answered
    /// in the order they are sent, each within the [`BootOptions::run_budget`] of its jobs,
    /// counted from when the guest could start on it (when it was sent, or when the answer
    /// before it came).
    pub fn send_request(&mut self, jobs: &[Job]) -> Result<(), GuestError> {
        if self.dead {
            return Err(GuestError::Dead);
        }
        let frame = wire::encode_request(jobs)?;
        self.budget = self.options.run_budget(jobs);
        let sent = Instant::now();
        self.send(frame, sent + self.budget)?;
        self.outstanding.push_back((sent, self.budget));
        Ok(())
    }

    /// Requests sent and not yet answered.
    pub fn waiting(&self) -> usize {
        self.outstanding.len()
    }

    /// The results of the oldest request still waiting for its response, which held
    /// `jobs`; errors as for [`Guest::run`].
    pub fn receive(&mut self, jobs: &[Job]) -> Result<Vec<JobResult>, GuestError> {
        if self.dead {
            return Err(GuestError::Dead);
        }
        let Some((sent, budget)) = self.outstanding.pop_front() else {
            return Err(GuestError::Protocol("no request waits for a response".into()));
        };
        self.budget = budget;
        let deadline = sent.max(self.last_answer) + budget;
        let payload = self.read_frame(wire::MAGIC_RESPONSE, deadline, "waiting for a response")?;
        self.last_answer = Instant::now();
        wire::decode_response(&payload, jobs).inspect_err(|e| {
            if matches!(e, GuestError::Protocol(_)) {
                self.kill();
            }
        })
    }

    /// Sends `bytes` unchanged (they need not be a valid request) and returns the payload of
    /// the next response frame. For testing the agent's handling of malformed input; the
    /// response is not decoded. Timeouts and a dead guest are errors as in [`Guest::run`].
    pub fn exchange_raw(&mut self, bytes: &[u8]) -> Result<Vec<u8>, GuestError> {
        if self.dead {
            return Err(GuestError::Dead);
        }
        if !self.outstanding.is_empty() {
            return Err(GuestError::Protocol("requests still wait for their responses".into()));
        }
        self.budget = self.options.run_timeout_base;
        let deadline = Instant::now() + self.budget;
        self.send(bytes.to_vec(), deadline)?;
        self.read_frame(wire::MAGIC_RESPONSE, deadline, "waiting for a response")
    }

    /// The process id of qemu.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes the request from a helper thread, so that a guest that stops reading cannot
    /// block the caller past the deadline.
    fn send(&mut self, frame: Vec<u8>, deadline: Instant) -> Result<(), GuestError> {
        let Some(mut stdin) = self.stdin.take() else { return Err(self.died("sending a request")) };
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("jitdiff-guest-writer".into())
            .spawn(move || {
                let ok = stdin.write_all(&frame).and_then(|()| stdin.flush()).is_ok();
                let _ = done_tx.send((ok, stdin));
            })
            .map_err(|source| GuestError::Spawn { cmd: "writer thread".into(), source })?;
        loop {
            match done_rx.recv_timeout(self.slice(deadline)?) {
                Ok((true, stdin)) => {
                    self.stdin = Some(stdin);
                    return Ok(());
                }
                Ok((false, _)) | Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.died("sending a request"))
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                    return Err(self.timed_out("sending a request"))
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Reads one frame with the given magic; returns its payload.
    fn read_frame(
        &mut self,
        magic: [u8; 4],
        deadline: Instant,
        during: &'static str,
    ) -> Result<Vec<u8>, GuestError> {
        let header = self.read_exact(8, deadline, during)?;
        if header[..4] != magic {
            self.kill();
            return Err(GuestError::Protocol(format!(
                "expected a {:?} frame, got magic {:02x?}",
                String::from_utf8_lossy(&magic),
                &header[..4]
            )));
        }
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        self.read_exact(len, deadline, during)
    }

    fn read_exact(
        &mut self,
        n: usize,
        deadline: Instant,
        during: &'static str,
    ) -> Result<Vec<u8>, GuestError> {
        while self.pending.len() < n {
            let wait = self.slice(deadline)?;
            match self.chunks.recv_timeout(wait) {
                Ok(chunk) => self.pending.extend_from_slice(&chunk),
                Err(RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                    return Err(self.timed_out(during))
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err(self.died(during)),
            }
        }
        let rest = self.pending.split_off(n);
        Ok(std::mem::replace(&mut self.pending, rest))
    }

    /// The next stretch of a wait that ends at `deadline`: at most [`STOP_POLL`], so that
    /// [`stop_waiting`] is noticed. `Err` (and the guest killed) once it has been called.
    fn slice(&mut self, deadline: Instant) -> Result<Duration, GuestError> {
        if STOP_WAITING.load(Ordering::Relaxed) {
            self.kill();
            return Err(GuestError::Interrupted);
        }
        Ok(deadline.saturating_duration_since(Instant::now()).min(STOP_POLL))
    }

    fn timed_out(&mut self, during: &'static str) -> GuestError {
        self.kill();
        GuestError::Timeout { during, waited: self.budget, console_tail: self.console_tail() }
    }

    fn died(&mut self, during: &'static str) -> GuestError {
        // give qemu a moment to finish exiting so that its status is known
        let mut status = None;
        for _ in 0..50 {
            if let Ok(Some(s)) = self.child.try_wait() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        let stderr = String::from_utf8_lossy(&self.read_log("qemu.stderr", |l| &l.1)).into_owned();
        let status = match status {
            Some(s) => format!("qemu exited with {s}"),
            None => "qemu closed the channel".to_string(),
        };
        let status =
            if stderr.trim().is_empty() { status } else { format!("{status}; qemu: {}", stderr.trim()) };
        GuestError::Died { during, status, console_tail: self.console_tail() }
    }

    fn console_tail(&self) -> String {
        let log = self.console_log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn kill(&mut self) {
        self.dead = true;
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.kill();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.remove_folder();
    }
}

/// Spawns `cmd` from a thread that lasts as long as the process. The parent-death signal
/// is sent when the thread that started the child ends, not the process, and guests are
/// booted from short-lived threads too (a test's, a fuzzing thread's) and shared: started
/// from this thread, qemu dies exactly when jitdiff does.
fn spawn_from_a_lasting_thread(cmd: Command) -> std::io::Result<Child> {
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: std::sync::OnceLock<std::sync::Mutex<mpsc::Sender<Request>>> = std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        let started = std::thread::Builder::new().name("jitdiff-qemu-spawner".into()).spawn(move || {
            for (mut cmd, reply) in rx {
                let _ = reply.send(cmd.spawn());
            }
        });
        if let Err(e) = started {
            eprintln!("jitdiff: cannot start the thread that starts qemu: {e}");
        }
        std::sync::Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    let sent = spawner.lock().unwrap_or_else(|e| e.into_inner()).send((cmd, reply));
    match sent.ok().and_then(|()| answer.recv().ok()) {
        Some(result) => result,
        None => Err(std::io::Error::other("the thread that starts qemu is gone")),
    }
}

/// `program` itself when it names a path, else the first executable of that name on
/// `PATH`.
fn find_program(program: &std::path::Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// Creates `folder` and its parents; tried again when another guest removes the process's
/// folder (its last guest became ready) at the same moment.
fn create_folder(folder: &std::path::Path) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match fs::create_dir_all(folder) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 5 => tries += 1,
            other => return other,
        }
    }
}

/// This process's folder for its guests' files: `jitdiff-PID` in the temporary folder.
fn process_folder() -> PathBuf {
    std::env::temp_dir().join(format!("jitdiff-{}", std::process::id()))
}

/// Removes the guest folders left by jitdiff processes that are gone (killed before they
/// could clean up): `jitdiff-PID` (and the older `jitdiff-guest-PID-N`) in the temporary
/// folder whose PID no longer runs. Nothing else is touched.
fn remove_folders_of_dead_processes() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let pid = match name.strip_prefix("jitdiff-guest-") {
            Some(rest) => rest.split('-').next(),
            None => name.strip_prefix("jitdiff-"),
        };
        let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) else { continue };
        let gone = !std::path::Path::new(&format!("/proc/{pid}")).exists();
        if gone && e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guest")
            .field("pid", &self.child.id())
            .field("banner", &self.banner)
            .field("alive", &!self.dead)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(program_lengths: &[usize], inputs: usize) -> Job {
        Job {
            progs: program_lengths.iter().map(|&n| vec![[0u8; 8]; n]).collect(),
            inputs: vec![crate::Input::default(); inputs],
            ..Job::default()
        }
    }

    #[test]
    fn the_run_budget_grows_with_inputs_and_the_square_of_each_programs_length() {
        let o = BootOptions::built_in();
        // a small job: the base, one input's allowance and 80 ms * (2 / 1000)² = 320 ns
        assert_eq!(o.run_budget(&[job(&[2], 1)]), Duration::from_nanos(30_050_000_320));
        // a job without inputs still counts once
        assert_eq!(o.run_budget(&[job(&[], 0)]), Duration::from_secs(30) + Duration::from_millis(50));
        // 10,000 instructions: 10² * 80 ms = 8 s on top
        assert_eq!(o.run_budget(&[job(&[10_000], 3)]), Duration::from_millis(30_000 + 150 + 8_000));
        // each program is verified on its own: two of 10,000 get twice that, not (20,000)²
        assert_eq!(o.run_budget(&[job(&[10_000, 10_000], 1)]), Duration::from_millis(30_000 + 50 + 16_000));
        // the largest lib/test_bpf.c vector (199,587 instructions) is allowed about 53 minutes
        let largest = o.run_budget(&[job(&[199_587], 1)]).as_secs();
        assert!((3_180..3_220).contains(&largest), "{largest}");
    }
}
