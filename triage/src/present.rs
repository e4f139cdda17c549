//! Presenting one program's results: a side-by-side text table, or one stable JSON object.

use serde_json::{json, Map, Value};

use bpf::{Outcome, RunResult};

use compare::{attachments_seen, helper_trace, hex, EngineResult, Verdict};

fn outcome_json(o: &Outcome) -> Value {
    let mut m = Map::new();
    match &o.result {
        Ok(r0) => {
            m.insert("r0".into(), json!(r0));
            m.insert("error".into(), Value::Null);
        }
        Err(f) => {
            m.insert("r0".into(), Value::Null);
            m.insert("error".into(), json!(f.kind.name()));
            m.insert("error_pc".into(), json!(f.pc));
            m.insert("error_detail".into(), json!(f.detail));
        }
    }
    if o.r0_is_address {
        m.insert("r0_is_address".into(), json!(true));
    }
    m.insert("ctx".into(), json!(hex(&o.ctx)));
    if o.observes.tail_calls {
        m.insert("tail_calls".into(), json!(o.tail_calls));
    }
    if o.observes.helper_calls {
        let calls: Vec<Value> = o
            .helper_calls
            .iter()
            .map(|c| json!({"id": c.id, "kfunc": c.kfunc, "args": c.args, "ret": c.ret}))
            .collect();
        m.insert("helpers".into(), Value::Array(calls));
    }
    if o.observes.r0_bits < 64 {
        m.insert("r0_bits".into(), json!(o.observes.r0_bits));
    }
    m.insert("arrays".into(), json!(o.arrays.iter().map(|a| hex(a)).collect::<Vec<_>>()));
    if o.observes.attachments && !o.attachments.is_empty() {
        let seen: Vec<Value> = o
            .attachments
            .iter()
            .map(|a| json!({"runs": a.runs, "returns": a.returns, "address_returns": a.address_returns}))
            .collect();
        m.insert("attachments".into(), Value::Array(seen));
    }
    Value::Object(m)
}

/// The JSON object for one program: `{"file", "verdict", "engines": {name: {...}},
/// "differences": [...], "reason"?}`. Engine entries hold `r0` (a number, or null after a
/// fault), `error` (null or a fault class), and `ctx` (hex); an engine that cannot judge
/// has `{"cannot_judge": reason}` instead, and one whose verifier refused it
/// `{"rejected": log}`.
pub fn to_json(file: &str, results: &[EngineResult], verdict: &Verdict) -> Value {
    let mut engines = Map::new();
    for r in results {
        let v = match &r.result {
            RunResult::Ran(o) => outcome_json(o),
            RunResult::CannotJudge(why) => json!({ "cannot_judge": why }),
            RunResult::Rejected(log) => json!({ "rejected": log }),
        };
        engines.insert(r.engine.into(), v);
    }
    let mut obj = Map::new();
    obj.insert("file".into(), json!(file));
    obj.insert("verdict".into(), json!(verdict.name()));
    obj.insert("engines".into(), Value::Object(engines));
    let diffs: Vec<Value> = match verdict {
        Verdict::Mismatch(d) => d
            .iter()
            .map(|d| json!({"field": d.field.name(), "odd_one_out": d.odd_one_out, "explanation": d.explanation}))
            .collect(),
        _ => Vec::new(),
    };
    obj.insert("differences".into(), Value::Array(diffs));
    if let Verdict::Inconclusive(why) | Verdict::Invalid(why) = verdict {
        obj.insert("reason".into(), json!(why));
    }
    Value::Object(obj)
}

/// The last `n` non-empty lines of a verifier log, joined with ` / `.
fn last_lines(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

/// Context bytes for a table cell: hex up to the last non-zero 8-byte group, then how
/// many zero bytes follow.
fn short_hex(ctx: &[u8]) -> String {
    if ctx.is_empty() {
        return "-".into();
    }
    let used = ctx.iter().rposition(|b| *b != 0).map_or(0, |i| (i / 8 + 1) * 8).min(ctx.len());
    match (used, ctx.len() - used) {
        (0, n) => format!("{n} zero bytes"),
        (_, 0) => hex(ctx),
        (_, n) => format!("{} + {n} zero bytes", hex(&ctx[..used])),
    }
}

/// A human-readable table: one row per engine (R0, error, context, then each array map of
/// `set` by name), then the verdict.
pub fn to_text(file: &str, set: &bpf::ProgramSet, results: &[EngineResult], verdict: &Verdict) -> String {
    let mut s = format!("{file}:\n");
    // The engine column fits the longest name (`kernel-jit@/path/to/tree`), at least 13.
    let w = results.iter().map(|r| r.engine.len()).max().unwrap_or(0).max(13);
    s += &format!("  {:<w$} {:<20} {:<18} {:<10} {}\n", "engine", "r0", "error", "tailcalls", "ctx");
    for r in results {
        match &r.result {
            RunResult::Ran(o) => {
                let (r0, err) = match &o.result {
                    Ok(v) if o.r0_is_address => (format!("{v:#x} (address)"), "-".to_string()),
                    Ok(v) if o.observes.r0_bits < 64 => (format!("{v:#x} (low 32)"), "-".to_string()),
                    Ok(v) => (format!("{v:#x}"), "-".to_string()),
                    Err(f) => ("-".to_string(), f.to_string().lines().next().unwrap_or_default().to_string()),
                };
                let ctx = short_hex(&o.ctx);
                let tail_calls = if o.observes.tail_calls { o.tail_calls.to_string() } else { "-".into() };
                s += &format!("  {:<w$} {:<20} {:<18} {:<10} {}\n", r.engine, r0, err, tail_calls, ctx);
                for (k, a) in o.arrays.iter().enumerate() {
                    let name = set.arrays().get(k).map_or_else(|| k.to_string(), |m| m.name.clone());
                    s += &format!("  {:<w$} array {name}: {}\n", "", short_hex(a));
                }
                if !o.helper_calls.is_empty() {
                    s += &format!("  {:<w$} helpers: {}\n", "", helper_trace(&o.helper_calls));
                }
                if o.observes.attachments && !o.attachments.is_empty() {
                    let each: Vec<_> =
                        o.attachments.iter().map(|a| (a.runs, Some(a.returns.as_slice()))).collect();
                    s += &format!("  {:<w$} attachments: {}\n", "", attachments_seen(&each));
                }
                // A fault's further lines (a kernel's crash report), indented under the row.
                if let Err(f) = &o.result {
                    for line in f.detail.lines().skip(1) {
                        s += &format!("  {:<w$}   | {line}\n", "");
                    }
                }
            }
            RunResult::CannotJudge(why) => s += &format!("  {:<w$} cannot judge: {why}\n", r.engine),
            RunResult::Rejected(log) => {
                s += &format!("  {:<w$} rejected by its verifier: {}\n", r.engine, last_lines(log, 3))
            }
        }
    }
    match verdict {
        Verdict::Agree => s += "  verdict: agree\n",
        Verdict::Mismatch(diffs) => {
            s += "  verdict: MISMATCH\n";
            for d in diffs {
                s += &format!("    {}: {}\n", d.field, d.explanation);
            }
        }
        Verdict::Inconclusive(why) => s += &format!("  verdict: inconclusive: {why}\n"),
        Verdict::Invalid(why) => s += &format!("  verdict: invalid program: {why}\n"),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::short_hex;

    #[test]
    fn context_cells() {
        assert_eq!(short_hex(&[]), "-");
        assert_eq!(short_hex(&[0; 64]), "64 zero bytes");
        let mut c = vec![0u8; 20];
        c[9] = 0xab;
        assert_eq!(short_hex(&c), "0000000000000000 00ab000000000000 + 4 zero bytes");
        assert_eq!(short_hex(&[1, 2]), "0102");
    }
}
