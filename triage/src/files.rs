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
