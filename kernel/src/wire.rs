//! Encoding of request frames and decoding of ready and response frames (see
//! `kernel/PROTOCOL.md`). All integers are little-endian.

use crate::{
    BufferMode, EntryInfo, GuestError, Job, JobResult, Map, OutputKind, RunOutput, MAX_REQUEST_BYTES,
};
#[cfg(test)]
use crate::{FuncInfo, JobAttachment, ProgBtf};

/// Protocol version announced in the ready frame.
pub(crate) const VERSION: u32 = crate::PROTOCOL_VERSION;
pub(crate) const MAGIC_READY: [u8; 4] = *b"JDRY";
pub(crate) const MAGIC_REQUEST: [u8; 4] = *b"JDRQ";
pub(crate) const MAGIC_RESPONSE: [u8; 4] = *b"JDRS";

const FLAG_WANT_JITED: u8 = 1;
const FLAG_WANT_XLATED: u8 = 2;

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn count(job: usize, what: &str, n: usize) -> Result<u32, GuestError> {
    u32::try_from(n).map_err(|_| GuestError::InvalidJob { job, reason: format!("too many {what} ({n})") })
}

/// Encodes a whole request frame (header included), checking what the agent would refuse.
pub(crate) fn encode_request(jobs: &[Job]) -> Result<Vec<u8>, GuestError> {
    let mut out = Vec::with_capacity(64 + jobs.len() * 128);
    out.extend_from_slice(&MAGIC_REQUEST);
    put_u32(&mut out, 0); // payload length, patched below
    put_u32(&mut out, count(0, "jobs", jobs.len())?);
    for (j, job) in jobs.iter().enumerate() {
        encode_job(&mut out, j, job)?;
        if out.len() - 8 > MAX_REQUEST_BYTES {
            return Err(GuestError::TooLarge(out.len() - 8));
        }
    }
    let len = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&len.to_le_bytes());
    Ok(out)
}

/// The most attachments a job may have (the agent's limit).
const MAX_ATTACHMENTS: usize = 64;
/// The most kfunc names a job may have, and the agent's limit on a name's bytes (plus NUL).
const MAX_KFUNCS: usize = 64;
const MAX_KFUNC_NAME: usize = 128;

/// Checks that every `lddw` map reference (src_reg 1 or 2) of `insns` names one of `maps`
/// maps and every kfunc call one of `kfuncs` names; the error says which instruction does
/// not.
fn check_refs(insns: &[[u8; 8]], maps: usize, kfuncs: usize) -> Result<(), String> {
    let mut k = 0;
    while k < insns.len() {
        let insn = insns[k];
        let imm = u32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]);
        if insn[0] == 0x85 && insn[1] >> 4 == 2 && imm as usize >= kfuncs {
            return Err(format!("insn {k}: a kfunc call names kfunc {imm}, the job has {kfuncs}"));
        }
        let src = insn[1] >> 4;
        if insn[0] == 0x18 && (src == 1 || src == 2) {
            let idx = u32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]);
            if idx as usize >= maps {
                return Err(format!("insn {k}: lddw names map {idx}, the job has {maps}"));
            }
        }
        k += if insn[0] == 0x18 { 2 } else { 1 };
    }
    Ok(())
}

fn encode_job(out: &mut Vec<u8>, j: usize, job: &Job) -> Result<(), GuestError> {
    let bad = |reason: String| GuestError::InvalidJob { job: j, reason };
    out.push(job.jit as u8);
    out.push(
        if job.want_jited_image { FLAG_WANT_JITED } else { 0 }
            | if job.want_xlated { FLAG_WANT_XLATED } else { 0 },
    );
    put_u32(out, job.prog_type);
    put_u32(out, job.expected_attach_type);
    put_u32(out, job.prog_flags);
    out.push(match job.buffer_mode {
        BufferMode::Data => 0,
        BufferMode::Ctx => 1,
        BufferMode::CtxInPlace => 2,
        BufferMode::DataAndCtx => 3,
    });
    let overlay_max = match job.input_map {
        None => {
            put_u32(out, u32::MAX);
            None
        }
        Some(m) => match job.maps.get(m as usize) {
            Some(Map::Array { initial, .. }) => {
                put_u32(out, m);
                Some(initial.len())
            }
            _ => return Err(bad(format!("input_map {m} is not an array map of the job"))),
        },
    };

    if job.kfuncs.len() > MAX_KFUNCS {
        return Err(bad(format!("{} kfuncs, at most {MAX_KFUNCS}", job.kfuncs.len())));
    }
    put_u32(out, job.kfuncs.len() as u32);
    for (f, name) in job.kfuncs.iter().enumerate() {
        if name.is_empty() || name.len() >= MAX_KFUNC_NAME || name.contains('\0') {
            return Err(bad(format!("kfunc {f}: a name of 1 to {} bytes without NUL", MAX_KFUNC_NAME - 1)));
        }
        put_u32(out, name.len() as u32);
        out.extend_from_slice(name.as_bytes());
    }
    put_u32(out, count(j, "maps", job.maps.len())?);
    for (m, map) in job.maps.iter().enumerate() {
        match map {
            Map::ProgArray { max_entries } => {
                out.push(0);
                put_u32(out, *max_entries);
            }
            Map::Array { value_size, max_entries, initial } => {
                let want = *value_size as u64 * *max_entries as u64;
                if initial.len() as u64 != want {
                    return Err(bad(format!(
                        "map {m}: initial has {} bytes, value_size * max_entries is {want}",
                        initial.len()
                    )));
                }
                out.push(1);
                put_u32(out, *value_size);
                put_u32(out, *max_entries);
                out.extend_from_slice(initial);
            }
        }
    }

    if job.progs.is_empty() {
        return Err(bad("no programs".into()));
    }
    put_u32(out, count(j, "programs", job.progs.len())?);
    for (p, prog) in job.progs.iter().enumerate() {
        put_u32(out, count(j, "instructions", prog.len())?);
        check_refs(prog, job.maps.len(), job.kfuncs.len()).map_err(|e| bad(format!("prog {p} {e}")))?;
        for insn in prog {
            out.extend_from_slice(insn);
        }
        match job.btf.get(p).and_then(Option::as_ref) {
            Some(b) if b.btf.is_empty() || b.func_info.is_empty() => {
                return Err(bad(format!("prog {p}: BTF needs both the types and the func_info records")));
            }
            Some(b) => {
                put_u32(out, count(j, "BTF bytes", b.btf.len())?);
                out.extend_from_slice(&b.btf);
                put_u32(out, count(j, "func_info records", b.func_info.len())?);
                for f in &b.func_info {
                    put_u32(out, f.insn_off);
                    put_u32(out, f.type_id);
                }
            }
            None => out.extend_from_slice(&[0; 8]),
        }
    }
    if job.btf.len() > job.progs.len() {
        return Err(bad(format!("BTF for {} programs, the job has {}", job.btf.len(), job.progs.len())));
    }

    put_u32(out, count(j, "slots", job.slots.len())?);
    for (s, slot) in job.slots.iter().enumerate() {
        match job.maps.get(slot.map as usize) {
            Some(Map::ProgArray { .. }) => {}
            _ => return Err(bad(format!("slot {s}: map {} is not a prog array of the job", slot.map))),
        }
        if slot.prog as usize >= job.progs.len() {
            return Err(bad(format!("slot {s}: prog {} out of range", slot.prog)));
        }
        put_u32(out, slot.map);
        put_u32(out, slot.key);
        put_u32(out, slot.prog);
    }

    if job.entry as usize >= job.progs.len() {
        return Err(bad(format!("entry {} out of range ({} programs)", job.entry, job.progs.len())));
    }
    put_u32(out, job.entry);
    if job.attachments.len() > MAX_ATTACHMENTS {
        return Err(bad(format!("{} attachments, at most {MAX_ATTACHMENTS}", job.attachments.len())));
    }
    put_u32(out, job.attachments.len() as u32);
    for (a, att) in job.attachments.iter().enumerate() {
        if att.target as usize >= job.progs.len() {
            return Err(bad(format!("attachment {a}: target {} out of range", att.target)));
        }
        if job.btf.get(att.target as usize).is_none_or(Option::is_none) {
            return Err(bad(format!("attachment {a}: program {} has no BTF to attach to", att.target)));
        }
        check_refs(&att.insns, job.maps.len(), job.kfuncs.len())
            .map_err(|e| bad(format!("attachment {a} {e}")))?;
        out.push(att.fexit as u8);
        put_u32(out, att.target);
        put_u32(out, att.btf_id);
        put_u32(out, count(j, "instructions", att.insns.len())?);
        for insn in &att.insns {
            out.extend_from_slice(insn);
        }
    }
    put_u32(out, count(j, "inputs", job.inputs.len())?);
    for (i, input) in job.inputs.iter().enumerate() {
        put_u32(out, count(j, "input bytes", input.data.len())?);
        out.extend_from_slice(&input.data);
        match overlay_max {
            None if !input.map_overlay.is_empty() => {
                return Err(bad(format!("input {i} has a map overlay but the job has no input_map")))
            }
            None => {}
            Some(max) if input.map_overlay.len() > max => {
                return Err(bad(format!(
                    "input {i}: overlay of {} bytes exceeds the map's {max}",
                    input.map_overlay.len()
                )))
            }
            Some(_) => {
                put_u32(out, input.map_overlay.len() as u32);
                out.extend_from_slice(&input.map_overlay);
            }
        }
    }
    Ok(())
}

/// A bounds-checked reader over a frame payload.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], GuestError> {
        if self.buf.len() - self.pos < n {
            return Err(GuestError::Protocol(format!(
                "response truncated at byte {} reading {what} ({n} bytes wanted, {} left)",
                self.pos,
                self.buf.len() - self.pos
            )));
        }
        let b = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    fn u8(&mut self, what: &str) -> Result<u8, GuestError> {
        Ok(self.bytes(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, GuestError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn blob(&mut self, what: &str) -> Result<&'a [u8], GuestError> {
        let n = self.u32(what)? as usize;
        self.bytes(n, what)
    }

    fn text(&mut self, what: &str) -> Result<String, GuestError> {
        Ok(String::from_utf8_lossy(self.blob(what)?).into_owned())
    }

    fn finish(&self) -> Result<(), GuestError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(GuestError::Protocol(format!("{} trailing bytes in the response", self.buf.len() - self.pos)))
        }
    }
}

/// Decodes a ready payload: the protocol version and the agent's description of the guest.
pub(crate) fn decode_ready(payload: &[u8]) -> Result<String, GuestError> {
    let mut r = Reader::new(payload);
    let version = r.u32("version")?;
    if version != VERSION {
        return Err(GuestError::Protocol(format!("agent speaks protocol {version}, this crate {VERSION}")));
    }
    let text = r.text("banner")?;
    r.finish()?;
    Ok(text)
}

/// Decodes a response payload for `jobs` (the request that was sent).
pub(crate) fn decode_response(payload: &[u8], jobs: &[Job]) -> Result<Vec<JobResult>, GuestError> {
    let mut r = Reader::new(payload);
    match r.u8("status")? {
        0 => {}
        1 => return Err(GuestError::Agent(r.text("error message")?)),
        s => return Err(GuestError::Protocol(format!("unknown response status {s}"))),
    }
    let n = r.u32("job count")? as usize;
    if n != jobs.len() {
        return Err(GuestError::Protocol(format!("{n} job results for {} jobs", jobs.len())));
    }
    let mut results = Vec::with_capacity(n);
    for job in jobs {
        results.push(decode_job(&mut r, job)?);
    }
    r.finish()?;
    Ok(results)
}

fn decode_job(r: &mut Reader<'_>, job: &Job) -> Result<JobResult, GuestError> {
    match r.u8("outcome")? {
        0 => {
            let jited = r.u8("jited")? != 0;
            let jited_len = r.u32("jited_prog_len")?;
            let xlated_len = r.u32("xlated_prog_len")?;
            let jited_image = r.blob("jited image")?.to_vec();
            let xlated = r.blob("xlated instructions")?.to_vec();
            let entry = EntryInfo { jited, jited_len, xlated_len, jited_image, xlated };
            let count = r.u32("run count")? as usize;
            if count != job.inputs.len() {
                return Err(GuestError::Protocol(format!("{count} runs for {} inputs", job.inputs.len())));
            }
            let mut runs = Vec::with_capacity(count);
            for _ in 0..count {
                let errno = r.u32("errno")? as i32;
                let retval = r.u32("retval")?;
                let duration_ns = r.u32("duration")?;
                let output_kind = match r.u8("output kind")? {
                    0 => OutputKind::None,
                    1 => OutputKind::Data,
                    2 => OutputKind::CtxOut,
                    3 => OutputKind::CtxIn,
                    4 => OutputKind::CtxOutThenData,
                    k => return Err(GuestError::Protocol(format!("unknown output kind {k}"))),
                };
                let output = r.blob("output")?.to_vec();
                let map_count = r.u32("map count")? as usize;
                if map_count != job.maps.len() {
                    return Err(GuestError::Protocol(format!(
                        "{map_count} maps reported for {}",
                        job.maps.len()
                    )));
                }
                let mut maps = Vec::with_capacity(map_count);
                for _ in 0..map_count {
                    maps.push(r.blob("map contents")?.to_vec());
                }
                let attached = r.u32("attachment count")? as usize;
                if attached != job.attachments.len() {
                    return Err(GuestError::Protocol(format!(
                        "{attached} attachment run counts for {} attachments",
                        job.attachments.len()
                    )));
                }
                let attachment_runs =
                    (0..attached).map(|_| r.u32("attachment runs")).collect::<Result<Vec<_>, _>>()?;
                runs.push(RunOutput {
                    errno,
                    retval,
                    duration_ns,
                    output_kind,
                    output,
                    maps,
                    attachment_runs,
                });
            }
            Ok(JobResult::Ran { entry, runs })
        }
        1 => {
            let prog = r.u32("prog index")?;
            let errno = r.u32("errno")? as i32;
            let log = r.text("verifier log")?;
            Ok(JobResult::Rejected { prog, errno, log })
        }
        2 => {
            let errno = r.u32("errno")? as i32;
            let message = r.text("message")?;
            Ok(JobResult::SetupFailed { errno, message })
        }
        o => Err(GuestError::Protocol(format!("unknown job outcome {o}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            jit: true,
            prog_type: 6,
            maps: vec![Map::Array { value_size: 4, max_entries: 2, initial: vec![1, 0, 0, 0, 2, 0, 0, 0] }],
            progs: vec![vec![[0xb7, 0, 0, 0, 42, 0, 0, 0], [0x95, 0, 0, 0, 0, 0, 0, 0]]],
            inputs: vec![vec![0; 14].into()],
            ..Job::default()
        }
    }

    #[test]
    fn request_layout() {
        let frame = encode_request(&[job()]).unwrap();
        assert_eq!(&frame[..4], b"JDRQ");
        assert_eq!(u32::from_le_bytes(frame[4..8].try_into().unwrap()) as usize, frame.len() - 8);
        // job count, jit, flags, prog_type
        assert_eq!(&frame[8..12], &1u32.to_le_bytes());
        assert_eq!(frame[12], 1);
        assert_eq!(frame[13], 0);
        assert_eq!(&frame[14..18], &6u32.to_le_bytes());
    }

    #[test]
    fn refuses_bad_jobs() {
        let mut j = job();
        j.maps[0] = Map::Array { value_size: 4, max_entries: 2, initial: vec![0; 7] };
        assert!(matches!(encode_request(&[j]), Err(GuestError::InvalidJob { .. })));
        let mut j = job();
        j.entry = 1;
        assert!(matches!(encode_request(&[j]), Err(GuestError::InvalidJob { .. })));
        let mut j = job();
        j.progs[0].insert(0, [0x18, 0x11, 0, 0, 5, 0, 0, 0]);
        j.progs[0].insert(1, [0; 8]);
        assert!(matches!(encode_request(&[j]), Err(GuestError::InvalidJob { .. })));
        let mut j = job();
        j.btf = vec![Some(ProgBtf { btf: vec![1; 4], func_info: vec![] })];
        assert!(matches!(encode_request(&[j]), Err(GuestError::InvalidJob { .. })));
        let mut j = job();
        j.btf = vec![None, None];
        assert!(matches!(encode_request(&[j]), Err(GuestError::InvalidJob { .. })));
        // A kfunc call naming a kfunc the job does not list; an attachment to a program
        // without BTF.
        let mut j = job();
        j.progs[0].insert(0, [0x85, 0x20, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(encode_request(&[j.clone()]), Err(GuestError::InvalidJob { .. })));
        j.kfuncs = vec!["bpf_rcu_read_lock".into()];
        assert!(encode_request(&[j]).is_ok());
        let mut j = job();
        j.attachments = vec![JobAttachment {
            fexit: false,
            target: 0,
            btf_id: 4,
            insns: vec![[0x95, 0, 0, 0, 0, 0, 0, 0]],
        }];
        assert!(matches!(encode_request(&[j]), Err(GuestError::InvalidJob { .. })));
    }

    #[test]
    fn attachments_and_kfunc_names_are_sent_and_their_runs_read_back() {
        let mut j = job();
        j.kfuncs = vec!["bpf_preempt_disable".into()];
        j.btf =
            vec![Some(ProgBtf { btf: vec![7; 5], func_info: vec![FuncInfo { insn_off: 0, type_id: 4 }] })];
        let exit = [0x95, 0, 0, 0, 0, 0, 0, 0];
        j.attachments = vec![JobAttachment { fexit: true, target: 0, btf_id: 4, insns: vec![exit] }];
        let frame = encode_request(&[j.clone()]).unwrap();
        // The kfunc names come before the maps: count, then length and bytes.
        let mut names = 1u32.to_le_bytes().to_vec();
        names.extend(19u32.to_le_bytes());
        names.extend(b"bpf_preempt_disable");
        assert!(frame.windows(names.len()).any(|w| w == names), "kfunc names in the request");
        // The attachment after the entry: count, kind 1 (fexit), target 0, btf id 4, one instruction.
        let mut att = 0u32.to_le_bytes().to_vec(); // entry
        att.extend(1u32.to_le_bytes());
        att.push(1);
        att.extend(0u32.to_le_bytes());
        att.extend(4u32.to_le_bytes());
        att.extend(1u32.to_le_bytes());
        att.extend(exit);
        assert!(frame.windows(att.len()).any(|w| w == att), "the attachment in the request");
        // A run reports the attachment's runs after the maps.
        let mut p = vec![0u8];
        p.extend(1u32.to_le_bytes());
        p.push(0);
        p.push(1);
        p.extend([0; 16]); // jited_len, xlated_len, two empty blobs
        p.extend(1u32.to_le_bytes());
        p.extend([0; 12]); // errno, retval, duration
        p.push(0);
        p.extend(0u32.to_le_bytes());
        p.extend(1u32.to_le_bytes());
        p.extend(8u32.to_le_bytes());
        p.extend([1, 0, 0, 0, 2, 0, 0, 0]);
        p.extend(1u32.to_le_bytes());
        p.extend(33u32.to_le_bytes());
        let r = decode_response(&p, std::slice::from_ref(&j)).unwrap();
        assert_eq!(r[0].runs().unwrap()[0].attachment_runs, vec![33]);
        // A count that does not match the job's attachments is a protocol error.
        let mut wrong = p.clone();
        let n = wrong.len();
        wrong[n - 8..n - 4].copy_from_slice(&2u32.to_le_bytes());
        assert!(decode_response(&wrong, &[j]).is_err());
    }

    #[test]
    fn btf_follows_its_program() {
        let plain = encode_request(&[job()]).unwrap();
        let mut j = job();
        j.btf =
            vec![Some(ProgBtf { btf: vec![7; 5], func_info: vec![FuncInfo { insn_off: 0, type_id: 3 }] })];
        let with = encode_request(&[j]).unwrap();
        // The two instructions end at the same place; then the BTF blob and one record
        // replace the two zero counts.
        let exit = [0x95, 0, 0, 0, 0, 0, 0, 0];
        let at = plain.windows(8).position(|w| w == exit).unwrap() + 8;
        assert_eq!(&plain[at..at + 8], &[0; 8]);
        let mut want = 5u32.to_le_bytes().to_vec();
        want.extend([7; 5]);
        want.extend(1u32.to_le_bytes());
        want.extend(0u32.to_le_bytes());
        want.extend(3u32.to_le_bytes());
        assert_eq!(&with[at..at + want.len()], &want[..]);
        assert_eq!(with.len(), plain.len() - 8 + want.len());
    }

    #[test]
    fn decodes_each_outcome() {
        let jobs = [job(), job(), job()];
        let mut p = vec![0u8];
        p.extend(3u32.to_le_bytes());
        // ran
        p.push(0);
        p.push(1);
        p.extend(100u32.to_le_bytes());
        p.extend(16u32.to_le_bytes());
        p.extend(0u32.to_le_bytes());
        p.extend(0u32.to_le_bytes());
        p.extend(1u32.to_le_bytes());
        p.extend(0u32.to_le_bytes()); // errno
        p.extend(42u32.to_le_bytes()); // retval
        p.extend(7u32.to_le_bytes()); // duration
        p.push(1);
        p.extend(2u32.to_le_bytes());
        p.extend([9, 8]);
        p.extend(1u32.to_le_bytes());
        p.extend(8u32.to_le_bytes());
        p.extend([1, 0, 0, 0, 2, 0, 0, 0]);
        p.extend(0u32.to_le_bytes()); // no attachments
                                      // rejected
        p.push(1);
        p.extend(0u32.to_le_bytes());
        p.extend(13u32.to_le_bytes());
        p.extend(3u32.to_le_bytes());
        p.extend(b"log");
        // setup failed
        p.push(2);
        p.extend(22u32.to_le_bytes());
        p.extend(1u32.to_le_bytes());
        p.extend(b"m");
        let r = decode_response(&p, &jobs).unwrap();
        let JobResult::Ran { entry, runs } = &r[0] else { panic!("{r:?}") };
        assert!(entry.jited);
        assert_eq!(entry.jited_len, 100);
        assert_eq!(runs[0].retval, 42);
        assert_eq!(runs[0].output, vec![9, 8]);
        assert_eq!(runs[0].maps, vec![vec![1, 0, 0, 0, 2, 0, 0, 0]]);
        assert_eq!(r[1], JobResult::Rejected { prog: 0, errno: 13, log: "log".into() });
        assert_eq!(r[2], JobResult::SetupFailed { errno: 22, message: "m".into() });
        // every truncation is an error, never a panic
        for cut in 0..p.len() {
            assert!(decode_response(&p[..cut], &jobs).is_err());
        }
    }
}
