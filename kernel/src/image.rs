//! Which kernel the guest boots: images built by `kernel/build.sh`, one per kernel, side
//! by side in its cache (`kernels/LABEL`), and built on first use.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::GuestError;

/// The kernel the kernel engines run when none is named: a Debian kernel version as
/// `kernel/build.sh --kernel` takes it (its `DEFAULT_KERNEL` is the same; a test checks).
pub const DEFAULT_KERNEL: &str = "7.3";

/// `kernel/build.sh`, where this crate's sources are.
const BUILD_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/build.sh");

/// Whether `spec` names a Debian kernel (`6.12`, `7.3`) rather than a path.
pub fn is_debian_version(spec: &str) -> bool {
    let mut parts = spec.split('.');
    let number = |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    number(parts.next()) && number(parts.next()) && parts.next().is_none()
}

/// The build cache: `$JITDIFF_KERNEL_CACHE`, default `$HOME/.cache/jitdiff/kernel`.
fn cache_dir() -> PathBuf {
    match std::env::var_os("JITDIFF_KERNEL_CACHE") {
        Some(c) if !c.is_empty() => PathBuf::from(c),
        _ => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"))
            .join(".cache/jitdiff/kernel"),
    }
}

/// A built guest: a kernel `Image` and the `initramfs.cpio` holding the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelImage {
    /// The directory that holds both files (build.sh's last output line).
    pub dir: PathBuf,
    /// The riscv64 kernel image (`Image`).
    pub image: PathBuf,
    /// The initramfs whose `/init` is the agent.
    pub initramfs: PathBuf,
}

impl KernelImage {
    /// Finds an already built guest of the default kernel, building nothing: in
    /// `$JITDIFF_KERNEL_DIR` when set, else in the cache's `kernels/`[`DEFAULT_KERNEL`].
    /// Fails with [`GuestError::NoImage`] ("no kernel image: run kernel/build.sh") when either
    /// file is missing; it does not check that qemu is installed.
    pub fn locate() -> Result<KernelImage, GuestError> {
        match std::env::var_os("JITDIFF_KERNEL_DIR") {
            Some(d) if !d.is_empty() => KernelImage::in_dir(Path::new(&d)),
            _ => KernelImage::in_dir(&cache_dir().join("kernels").join(DEFAULT_KERNEL)),
        }
    }

    /// The already built guest of Debian kernel `version` (`kernels/VERSION` in the cache),
    /// building nothing; [`GuestError::NoImage`] when there is none.
    pub fn cached(version: &str) -> Result<KernelImage, GuestError> {
        KernelImage::in_dir(&cache_dir().join("kernels").join(version))
    }

    /// The guest of kernel `spec` (a Debian version or the path of a source tree or
    /// tarball; `None`: `$JITDIFF_KERNEL_DIR` when set, else [`DEFAULT_KERNEL`]). A Debian
    /// kernel already in the cache is used as it is; otherwise `kernel/build.sh --kernel
    /// SPEC` runs, its progress on stderr: it builds a missing image, and for a source
    /// tree it runs `make` every time, so a changed tree is rebuilt. Fails with
    /// [`GuestError::Build`] naming the command to run.
    pub fn for_kernel(spec: Option<&str>) -> Result<KernelImage, GuestError> {
        let spec = match spec {
            Some(s) => s,
            None => match std::env::var_os("JITDIFF_KERNEL_DIR") {
                Some(d) if !d.is_empty() => return KernelImage::in_dir(Path::new(&d)),
                _ => DEFAULT_KERNEL,
            },
        };
        if is_debian_version(spec) {
            if let Ok(image) = KernelImage::cached(spec) {
                return Ok(image);
            }
        }
        KernelImage::build(spec)
    }

    /// Runs `kernel/build.sh --kernel spec` and uses the directory it prints last.
    fn build(spec: &str) -> Result<KernelImage, GuestError> {
        let fail = |why: String| GuestError::Build { spec: spec.to_string(), why };
        if !Path::new(BUILD_SCRIPT).is_file() {
            return Err(fail(format!(
                "{BUILD_SCRIPT} is missing (run kernel/build.sh --kernel {spec} from a jitdiff checkout)"
            )));
        }
        eprintln!("jitdiff: building the guest for kernel {spec} (kernel/build.sh --kernel {spec})");
        let out = Command::new("bash")
            .arg(BUILD_SCRIPT)
            .arg("--kernel")
            .arg(spec)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| fail(format!("cannot run {BUILD_SCRIPT}: {e}")))?;
        if !out.status.success() {
            return Err(fail(format!(
                "kernel/build.sh --kernel {spec} failed ({}; its messages are above)",
                out.status
            )));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let dir = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        KernelImage::in_dir(Path::new(dir))
    }

    /// Whether this kernel's interpreter counts a tail call through an empty slot, as
    /// `kernel/build.sh` read it from the kernel's `kernel/bpf/core.c` into
    /// `build-info.txt` (`empty_slot=counted` or `free`); `None` when it could not tell.
    pub fn empty_slot(&self) -> Option<bpf::EmptySlotRule> {
        self.build_info("empty_slot")?.parse().ok()
    }

    /// The kernel's version as `kernel/build.sh` recorded it in `build-info.txt` (such as
    /// `6.12.118`); `None` when it is not recorded.
    pub fn version(&self) -> Option<String> {
        self.build_info("kernel_version")
    }

    /// The value of `key` in the image's `build-info.txt` (lines `key=value`).
    fn build_info(&self, key: &str) -> Option<String> {
        let info = std::fs::read_to_string(self.dir.join("build-info.txt")).ok()?;
        let value = info.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('='))?;
        Some(value.trim().to_string())
    }

    /// Uses the `Image` and `initramfs.cpio` in `dir`; fails with [`GuestError::NoImage`]
    /// when either is missing.
    pub fn in_dir(dir: &Path) -> Result<KernelImage, GuestError> {
        let image = dir.join("Image");
        let initramfs = dir.join("initramfs.cpio");
        if image.is_file() && initramfs.is_file() {
            Ok(KernelImage { dir: dir.to_path_buf(), image, initramfs })
        } else {
            Err(GuestError::NoImage(dir.to_path_buf()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_image_is_reported() {
        let dir = std::env::temp_dir().join("jitdiff-no-kernel-here");
        let err = KernelImage::in_dir(&dir).unwrap_err();
        assert!(err.to_string().starts_with("no kernel image: run kernel/build.sh"), "{err}");
    }

    #[test]
    fn the_empty_slot_rule_is_read_from_build_info() {
        let dir = std::env::temp_dir().join(format!("jitdiff-image-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image =
            KernelImage { dir: dir.clone(), image: dir.join("Image"), initramfs: dir.join("initramfs.cpio") };
        assert_eq!((image.empty_slot(), image.version()), (None, None), "no build-info.txt");
        for (text, rule) in [
            ("kernel=6.12\nkernel_version=6.12.118\nempty_slot=counted\n", Some(bpf::EmptySlotRule::Counted)),
            ("empty_slot=free\n", Some(bpf::EmptySlotRule::Free)),
            ("empty_slot=unknown\n", None),
        ] {
            std::fs::write(dir.join("build-info.txt"), text).unwrap();
            assert_eq!(image.empty_slot(), rule, "{text}");
        }
        std::fs::write(dir.join("build-info.txt"), "kernel_version=7.3.4\n").unwrap();
        assert_eq!(image.version().as_deref(), Some("7.3.4"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debian_versions_and_paths_are_told_apart() {
        for v in ["6.12", "7.3", "10.0"] {
            assert!(is_debian_version(v), "{v}");
        }
        for p in ["7", "7.3.4", "7.x", ".3", "/usr/src/linux", "../linux-7.3", ""] {
            assert!(!is_debian_version(p), "{p}");
        }
    }

    #[test]
    fn build_script_has_the_same_default_kernel() {
        let script = std::fs::read_to_string(BUILD_SCRIPT).expect("kernel/build.sh");
        assert!(
            script.lines().any(|l| l == format!("DEFAULT_KERNEL={DEFAULT_KERNEL}")),
            "kernel/build.sh's DEFAULT_KERNEL differs from kernel::DEFAULT_KERNEL ({DEFAULT_KERNEL})"
        );
    }
}
