use super::Reference;
use bpf::{Engine, Input, Program, RunResult};
fn replay(path: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut e = Reference::new();
    let (mut ok, mut bad) = (0, 0);
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let bytes: Vec<u8> = (0..f[5].len()).step_by(2).map(|i| u8::from_str_radix(&f[5][i..i + 2], 16).unwrap()).collect();
        let depth: u32 = f[3].parse().unwrap();
        let prog = Program::with_stack_depth(bpf::decode_bytes(&bytes).unwrap(), if depth == 0 { 512 } else { depth }).unwrap();
        let input = if f[1] == "none" { Input::none() } else { Input::with_ctx(vec![0; f[2].parse().unwrap()]) };
        let want: u64 = f[4].parse().unwrap();
        match e.run(&prog, &input) {
            RunResult::Ran(o) if o.result.as_ref().map(|r| *r as u32 as u64) == Ok(want) => ok += 1,
            other => { bad += 1; println!("#{}: {other:?}", f[0]); }
        }
    }
    println!("{path}: ok {ok} bad {bad}");
}
#[test]
#[ignore]
fn kernel_tables() { replay("/tmp/refcheck/static.txt"); replay("/tmp/refcheck/generated.txt"); }
