//! The kernel's own eBPF test table (lib/test_bpf.c, made into JSON by
//! `kernel/test-vectors.sh` from Debian's linux-source-6.12 and linux-source-7.3): every
//! program, on every engine, must return the result the kernel expects. rbpf is checked
//! wherever it can judge; the tests count where it cannot.

mod common;

use std::io::{BufRead, BufReader};

use common::{all_engines, check_kernel_test, kernel_test, test_bpf_dirs, vectors_kernel};
use serde_json::Value;

/// How many fixed and generated programs each kernel's table has (7.x added the signed
/// division and modulo generators). Vectors of a kernel not listed must have some of both.
fn expected_counts(kernel: &str) -> Option<(usize, usize)> {
    match kernel.split('.').take(2).collect::<Vec<_>>().join(".").as_str() {
        "6.12" => Some((671, 244)),
        "7.3" => Some((671, 256)),
        _ => None,
    }
}

fn check_count(kernel: &str, what: &str, count: usize, expected: Option<usize>) {
    match expected {
        Some(n) => assert_eq!(count, n, "{what} programs in Linux {kernel}'s vectors"),
        None => assert!(count > 0, "no {what} programs in Linux {kernel}'s vectors"),
    }
}

#[test]
fn static_tests_pass_on_every_engine() {
    for dir in test_bpf_dirs() {
        let kernel = vectors_kernel(&dir);
        let text = std::fs::read_to_string(dir.join("tests.json")).expect("tests.json");
        let tests: Vec<Value> = serde_json::from_str(&text).expect("tests.json parses");
        check_count(&kernel, "fixed", tests.len(), expected_counts(&kernel).map(|c| c.0));
        let mut engines = all_engines();
        let (mut failures, mut rbpf_skipped) = (Vec::new(), 0);
        for t in &tests {
            let (f, skipped) = check_kernel_test(&mut engines, &kernel_test(t));
            failures.extend(f);
            rbpf_skipped += skipped.len();
        }
        eprintln!("Linux {kernel}: static tests: {} run, rbpf could not judge {rbpf_skipped}", tests.len());
        assert!(failures.is_empty(), "Linux {kernel}: {} failures:\n{}", failures.len(), failures.join("\n"));
    }
}

#[test]
fn generated_tests_pass_on_every_engine() {
    for dir in test_bpf_dirs() {
        let kernel = vectors_kernel(&dir);
        let f = std::fs::File::open(dir.join("tests_generated.jsonl.gz")).expect("generated tests");
        let lines = BufReader::new(flate2::read::GzDecoder::new(f)).lines();
        let mut engines = all_engines();
        let (mut failures, mut count, mut rbpf_skipped) = (Vec::new(), 0, 0);
        for line in lines {
            let t: Value = serde_json::from_str(&line.expect("read")).expect("line parses");
            let (f, skipped) = check_kernel_test(&mut engines, &kernel_test(&t));
            failures.extend(f);
            rbpf_skipped += skipped.len();
            count += 1;
        }
        eprintln!("Linux {kernel}: generated tests: {count} run, rbpf could not judge {rbpf_skipped}");
        check_count(&kernel, "generated", count, expected_counts(&kernel).map(|c| c.1));
        assert!(failures.is_empty(), "Linux {kernel}: {} failures:\n{}", failures.len(), failures.join("\n"));
    }
}
