//! Finding and corpus files on disk.

use std::path::{Path, PathBuf};

/// Every regular file below `dir` (searched recursively) for which `keep` holds, sorted;
/// directories for which it does not hold are not entered.
pub fn files_below(dir: &Path, keep: &dyn Fn(&Path) -> bool) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if !keep(&p) {
                continue;
            }
            if p.is_dir() {
                todo.push(p);
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Every `.s` file below `dir`, sorted.
pub fn corpus_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    files_below(dir, &|p| p.is_dir() || p.extension().is_some_and(|x| x == "s"))
}

/// Writes `bytes` to `path`, which must not exist: the name is claimed first (created
/// empty, exclusively, so no other writer, in this process or another, can take it), the
/// bytes are written under a hidden temporary name in the same folder and renamed over the
/// claim. A reader never sees part of the bytes: the file is empty until it is whole (a
/// temporary file a killed writer leaves starts with `.`, which finding readers skip). An
/// existing `path` is an error of kind `AlreadyExists` and is left as it is.
pub fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_data()
    });
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_new_never_overwrites_and_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("jitdiff-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.s");
        write_new(&p, b"one").unwrap();
        let e = write_new(&p, b"two").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, ["a.s"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
