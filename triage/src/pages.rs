//! Triage reports: per group a Markdown report and a self-contained HTML page (every
//! piece of user-controlled text escaped), and a JSON summary of all groups.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::dedup::{Group, Triage};
use compare::config::FindingConfig;
use compare::engines::{Engines, ALL};

/// BPF instructions shown on either side of the first divergent one.
const DIVERGENCE_CONTEXT: usize = 2;

/// One report's sections, as plain text, shared by the Markdown and HTML forms.
struct Sections {
    title: String,
    facts: Vec<(String, String)>,
    blocks: Vec<(String, String)>,
}

/// The command line that replays `file` with `config` (only the options that differ from
/// the defaults; a file written by jitdiff also records its configuration itself).
pub fn reproduce_command(file: &Path, config: &FindingConfig) -> String {
    let (opts, engines) = (&config.options, &config.engines);
    let mut cmd = String::from("jitdiff run");
    if *engines != ALL {
        cmd += &format!(" --engines {}", engines.join(","));
    }
    if let Some(k) = opts.kernel {
        cmd += &format!(" --kernel {k}");
    }
    if opts.scheme != jit::Scheme::Register {
        cmd += &format!(" --scheme {}", opts.scheme);
    }
    if opts.semantics != oracle::reference::TailCallSemantics::Global {
        cmd += " --semantics per-frame";
    }
    if opts.empty_slot_rule() != bpf::EmptySlotRule::Free {
        cmd += &format!(" --empty-slot {}", opts.empty_slot_rule());
    }
    let bugs: Vec<&str> = opts.bugs.list().iter().map(|b| b.name()).collect();
    if !bugs.is_empty() {
        cmd += &format!(" --inject {}", bugs.join(","));
    }
    cmd + &format!(" {}", file.display())
}

/// Which kernel each kernel engine of `names` ran, or "none" without kernel engines.
fn kernels(names: &[&'static str], opts: &compare::engines::Options) -> String {
    let each: Vec<String> = names
        .iter()
        .filter_map(|n| kernel::engine::parse_engine_name(n).map(|(_, spec)| (n, spec)))
        .map(|(n, spec)| format!("{n}: {}", spec.or(opts.kernel).unwrap_or(kernel::DEFAULT_KERNEL)))
        .collect();
    if each.is_empty() {
        "none (no kernel engine)".into()
    } else {
        each.join(", ")
    }
}

fn sections(group: &Group, reproducer: &Path) -> Sections {
    let (m, opts, names) = (&group.best, &group.config.options, &group.config.engines);
    let mut engines = Engines::with_options(names, opts);
    let results = engines.run_set(&m.set, &m.input);
    let verdict = compare::compare(&results);
    let outcomes = crate::present::to_text("reproducer", &m.set, &results, &verdict);
    let mut macros = String::new();
    for p in m.set.progs() {
        let _ = writeln!(macros, "/* program {} */\nstruct bpf_insn {}[] = {{", p.name, c_name(&p.name));
        macros += &bpf::asm::kernel::program_macros(&p.prog);
        macros += "};\n";
    }
    for a in m.set.attachments() {
        let target = m.set.progs().get(a.target.prog).map_or("?", |p| p.name.as_str());
        let _ = writeln!(
            macros,
            "/* {} program {}, attached to function {} of program {target} (BPF_PROG_TYPE_TRACING, \
             attach_prog_fd = {target}, attach_btf_id = that function's BTF id) */\nstruct bpf_insn {}[] = {{",
            a.kind.name(),
            a.program.name,
            a.target.func,
            c_name(&a.program.name)
        );
        macros += &bpf::asm::kernel::program_macros(&a.program.prog);
        macros += "};\n";
    }
    let compiled = jit::compile::compile_set_with(
        &m.set,
        jit::compile::Codegen { scheme: opts.scheme, empty_slot: opts.empty_slot_rule(), bugs: opts.bugs },
    );
    let listing = match &compiled {
        Ok(c) => jit::listing::listing(&m.set, c),
        Err(e) => format!("the JIT cannot compile the reproducer: {e}"),
    };
    let traced = m.signature.odd_one_out == Some("jit");
    let divergence = match (traced.then(|| engines.first_divergence(&m.set, &m.input)).flatten(), &compiled) {
        (Some(d), Ok(c)) => format!(
            "{}\n\n{}",
            wrap(&d.describe(&m.set), 100),
            jit::listing::listing_around(&m.set, c, d.prog, d.index, DIVERGENCE_CONTEXT)
        ),
        _ if !traced => format!(
            "not traced: the odd one out is {}; only jitdiff's own JIT is traced, against the reference",
            m.signature.odd_one_out.unwrap_or("no single engine")
        ),
        _ => "no trace comparison: the reference or the JIT cannot run this set".into(),
    };
    let native = engines.native_listings(&m.set, &m.input).into_iter().map(|(name, listing)| {
        let title = format!("RV64 code of the kernel's JIT ({name}), as the kernel made it");
        (title, listing.unwrap_or_else(|why| format!("not available: {why}")))
    });
    let bugs: Vec<&str> = opts.bugs.list().iter().map(|b| b.name()).collect();
    let inputs: Vec<String> = group.inputs.iter().map(|p| p.display().to_string()).collect();
    Sections {
        title: format!("jitdiff finding: {}", group.key),
        facts: vec![
            ("group".into(), group.key.clone()),
            ("signatures seen".into(), seen(group)),
            ("reproducer's signature".into(), m.signature.to_string()),
            ("inputs in the group".into(), group.inputs.len().to_string()),
            ("reproducer size".into(), format!("{} BPF instructions (from {})", m.size_after, m.size_before)),
            ("engines".into(), names.join(", ")),
            ("kernel".into(), kernels(names, opts)),
            ("TCC scheme".into(), opts.scheme.to_string()),
            ("tail-call semantics".into(), compare::config::semantics_name(opts.semantics).to_string()),
            ("empty-slot rule".into(), opts.empty_slot_rule().to_string()),
            ("injected bugs".into(), if bugs.is_empty() { "none".into() } else { bugs.join(", ") }),
            ("reproduce".into(), reproduce_command(reproducer, &group.config)),
        ],
        blocks: [
            ("Outcomes".into(), outcomes),
            (
                "First divergent BPF instruction (reference and JIT traces), with its RV64 code".into(),
                divergence,
            ),
            ("Minimised program set (jitdiff text)".into(), bpf::asm::print_set(&m.set, Some(&m.input))),
            ("As kernel instruction macros (lib/test_bpf.c, selftests)".into(), macros),
            ("RV64 code of jitdiff's JIT, with the BPF instruction each range came from".into(), listing),
        ]
        .into_iter()
        .chain(native)
        .chain([("Inputs".into(), inputs.join("\n"))])
        .collect(),
    }
}

/// `text` with its words wrapped into lines of at most `width` characters (longer words
/// keep a line to themselves).
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split_whitespace() {
        if line > 0 && line + 1 + word.len() > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += word.len();
    }
    out
}

/// The signatures a group's inputs showed, comma-separated.
fn seen(group: &Group) -> String {
    group.signatures.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
}

/// A C identifier from a program name.
fn c_name(name: &str) -> String {
    let s: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("prog_{s}")
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn markdown(s: &Sections) -> String {
    let mut md = format!("# {}\n\n", s.title);
    for (k, v) in &s.facts {
        let _ = writeln!(md, "- **{k}**: `{}`", v.replace('`', "'"));
    }
    for (h, body) in &s.blocks {
        let _ = write!(md, "\n## {h}\n\n```\n{}\n```\n", body.trim_end().replace("```", "'''"));
    }
    md
}

fn html(s: &Sections) -> String {
    let mut h = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
    );
    let _ = writeln!(h, "<title>{}</title>", escape_html(&s.title));
    h += "<style>body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;\
          color:#1d1d1f}h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #ddd}\
          table{border-collapse:collapse}td{padding:.2rem .8rem;border-bottom:1px solid #eee;vertical-align:top}\
          td:first-child{font-weight:600;white-space:nowrap}pre{background:#f6f8fa;padding:1rem;overflow-x:auto;\
          font-size:.85rem;line-height:1.35}code{font-family:ui-monospace,monospace}</style>\n</head><body>\n";
    let _ = writeln!(h, "<h1>{}</h1>\n<table>", escape_html(&s.title));
    for (k, v) in &s.facts {
        let _ = writeln!(h, "<tr><td>{}</td><td><code>{}</code></td></tr>", escape_html(k), escape_html(v));
    }
    h += "</table>\n";
    for (title, body) in &s.blocks {
        let _ = writeln!(h, "<h2>{}</h2>\n<pre>{}</pre>", escape_html(title), escape_html(body.trim_end()));
    }
    h + "</body></html>\n"
}

/// Refuses an output directory that exists and holds anything, so that reports never
/// overwrite or mix with other files.
pub fn ensure_new_dir(out: &Path) -> Result<(), String> {
    if out.exists() && std::fs::read_dir(out).map_or(true, |mut d| d.next().is_some()) {
        return Err(format!("{} exists and is not empty; name a new directory with -o", out.display()));
    }
    Ok(())
}

/// Writes the reports of `t` into `out` (which must not exist or be empty): per group
/// `group-K/` with `reproducer.s`, `report.md` and `report.html`, and `summary.json`.
/// Returns the summary.
pub fn write_reports(t: &Triage, out: &Path, seconds: f64) -> Result<serde_json::Value, String> {
    ensure_new_dir(out)?;
    let io = |p: &Path, e: std::io::Error| format!("cannot write {}: {e}", p.display());
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let mut groups = Vec::new();
    for (k, g) in t.groups.iter().enumerate() {
        let dir = out.join(format!("group-{}", k + 1));
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let reproducer = dir.join("reproducer.s");
        let text = format!(
            "; jitdiff: {} ({} inputs; this reproducer: {})\n{}\n{}",
            g.key,
            g.inputs.len(),
            g.best.signature,
            g.config.line(),
            bpf::asm::print_set(&g.best.set, Some(&g.best.input))
        );
        crate::files::write_new(&reproducer, text.as_bytes()).map_err(|e| io(&reproducer, e))?;
        let s = sections(g, &reproducer);
        let (md, page) = (dir.join("report.md"), dir.join("report.html"));
        crate::files::write_new(&md, markdown(&s).as_bytes()).map_err(|e| io(&md, e))?;
        crate::files::write_new(&page, html(&s).as_bytes()).map_err(|e| io(&page, e))?;
        groups.push(serde_json::json!({
            "group": g.key,
            "signatures": g.signatures.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "signature": g.best.signature.to_string(),
            "inputs": g.inputs.len(),
            "size": g.best.size_after,
            "report": page.display().to_string(),
            "config": g.config.line().trim_start_matches(compare::config::PREFIX).trim(),
            "reproduce": reproduce_command(&reproducer, &g.config),
        }));
    }
    let skipped: Vec<serde_json::Value> = t
        .skipped
        .iter()
        .map(|(p, why)| serde_json::json!({"input": p.display().to_string(), "reason": why}))
        .collect();
    let known: Vec<serde_json::Value> = t
        .known
        .iter()
        .map(|(p, name)| serde_json::json!({"input": p.display().to_string(), "known_divergence": name}))
        .collect();
    let summary = serde_json::json!({
        "inputs": t.inputs,
        "groups": t.groups.len(),
        "skipped": t.skipped.len(),
        "known": known.len(),
        "seconds": seconds,
        "output": out.display().to_string(),
        "group_list": groups,
        "skipped_list": skipped,
        "known_list": known,
    });
    let path: PathBuf = out.join("summary.json");
    crate::files::write_new(&path, format!("{summary:#}\n").as_bytes()).map_err(|e| io(&path, e))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use compare::engines::Options;

    #[test]
    fn long_lines_wrap_at_word_boundaries() {
        assert_eq!(wrap("aa bb cc", 5), "aa bb\ncc");
        assert_eq!(wrap("aaaaaaa b", 3), "aaaaaaa\nb");
    }

    #[test]
    fn html_escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape_html("<script>alert('x' & \"y\")</script>"),
            "&lt;script&gt;alert(&#39;x&#39; &amp; &quot;y&quot;)&lt;/script&gt;"
        );
    }

    #[test]
    fn reports_are_written_once_and_escape_file_names() {
        let dir = std::env::temp_dir().join(format!("jitdiff-pages-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("<b>evil&.s");
        std::fs::write(&input, ".ctx 8\nr0 = -1\nw0 += 0\nexit\n").unwrap();
        let opts = Options { bugs: jit::Bugs::NONE.with(jit::Bug::Alu32ArithNoZext), ..Options::default() };
        let config = FindingConfig { options: opts, ..FindingConfig::default() };
        let t = crate::dedup::triage(&[input], &|_| Ok(config.clone()), 1_000, &mut |_, _| {});
        let out = dir.join("out");
        let summary = write_reports(&t, &out, 0.5).unwrap();
        assert_eq!(summary["groups"], 1);
        let page = std::fs::read_to_string(out.join("group-1/report.html")).unwrap();
        assert!(page.contains("&lt;b&gt;evil&amp;.s") && !page.contains("<b>evil"), "names are escaped");
        assert!(page.contains("BPF_ALU32_IMM(BPF_ADD, BPF_REG_0, 0)"));
        assert!(page.contains("jitdiff run --inject alu32-arith-no-zext"));
        let md = std::fs::read_to_string(out.join("group-1/report.md")).unwrap();
        assert!(md.starts_with("# jitdiff finding: jit@alu32\n"));
        // The first divergence names the 32-bit add (pc 1) and shows its RV64 code.
        assert!(md.contains("first divergence at pc 1 (w0 += 0) [alu32]"), "{md}");
        assert!(md.contains(">>   1: w0 += 0"), "{md}");
        // The output directory is not reused.
        assert!(write_reports(&t, &out, 0.5).unwrap_err().contains("not empty"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
