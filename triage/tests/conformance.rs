//! The kernel's own eBPF test table (lib/test_bpf.c of Linux 6.12, made into JSON by
//! `kernel/test-vectors.sh` from Debian's linux-source-6.12): every program, on every engine,
//! must return the result the kernel expects. rbpf is checked wherever it can judge; the tests count where it cannot.

mod common;

use std::io::{BufRead, BufReader};

use common::{all_engines, check_kernel_test, kernel_test, test_bpf_dir};
use serde_json::Value;

#[test]
fn static_tests_pass_on_every_engine() {
    let text = std::fs::read_to_string(test_bpf_dir().join("tests.json")).expect("tests.json");
    let tests: Vec<Value> = serde_json::from_str(&text).expect("tests.json parses");
    assert_eq!(tests.len(), 671);
    let mut engines = all_engines();
    let (mut failures, mut rbpf_skipped) = (Vec::new(), 0);
    for t in &tests {
        let (f, skipped) = check_kernel_test(&mut engines, &kernel_test(t));
        failures.extend(f);
        rbpf_skipped += skipped.len();
    }
    eprintln!("static tests: {} run, rbpf could not judge {rbpf_skipped}", tests.len());
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn generated_tests_pass_on_every_engine() {
    let f = std::fs::File::open(test_bpf_dir().join("tests_generated.jsonl.gz")).expect("generated tests");
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
    eprintln!("generated tests: {count} run, rbpf could not judge {rbpf_skipped}");
    assert_eq!(count, 244);
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}
