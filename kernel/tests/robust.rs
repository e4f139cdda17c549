//! The agent survives malformed input, and the host notices a hung or dead guest. Every
//! test prints "skipped: no kernel image" and passes when `kernel/build.sh` has not been run.

mod common;

use std::time::Duration;

use common::*;
use kernel::{prog_type, BootOptions, Guest, GuestError};

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = b"JDRQ".to_vec();
    f.extend((payload.len() as u32).to_le_bytes());
    f.extend(payload);
    f
}

/// Payload of a response frame that reports a malformed request: status 1 + message.
fn error_message(payload: &[u8]) -> String {
    assert_eq!(payload[0], 1, "status byte of {payload:?}");
    let n = u32::from_le_bytes(payload[1..5].try_into().unwrap()) as usize;
    assert_eq!(payload.len(), 5 + n);
    String::from_utf8_lossy(&payload[5..]).into_owned()
}

/// An empty request (zero jobs) gets status 0 and a job count of 0.
const EMPTY_OK: [u8; 5] = [0, 0, 0, 0, 0];

fn still_works(g: &mut Guest) {
    let r =
        g.run(&[job(true, prog_type::XDP, vec![vec![mov_imm(0, 11), exit()]], vec![vec![0; 14]])]).unwrap();
    assert_eq!(ran(&r[0])[0].retval, 11);
}

#[test]
fn malformed_requests_get_error_responses() {
    let Some(mut g) = guest() else { return };
    let g = g.as_mut().unwrap();

    // job_count 5 and nothing else
    let msg = error_message(&g.exchange_raw(&frame(&5u32.to_le_bytes())).unwrap());
    assert!(msg.contains("malformed request"), "{msg}");
    still_works(g);

    // a job whose instruction count runs past the end
    let mut p = 1u32.to_le_bytes().to_vec();
    p.extend([1, 0]); // jit, flags
    p.extend([6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // prog_type, attach type, prog_flags
    p.push(0); // buffer mode
    p.extend(u32::MAX.to_le_bytes()); // no input map
    p.extend(0u32.to_le_bytes()); // kfunc names
    p.extend(0u32.to_le_bytes()); // maps
    p.extend(1u32.to_le_bytes()); // progs
    p.extend(1000u32.to_le_bytes()); // insn_count
    p.extend([0xb7, 0, 0, 0, 0, 0, 0, 0]);
    let msg = error_message(&g.exchange_raw(&frame(&p)).unwrap());
    assert!(msg.contains("truncated"), "{msg}");

    // trailing bytes after a complete request
    let mut p = 0u32.to_le_bytes().to_vec();
    p.push(7);
    let msg = error_message(&g.exchange_raw(&frame(&p)).unwrap());
    assert!(msg.contains("trailing"), "{msg}");

    // an empty request is fine
    assert_eq!(g.exchange_raw(&frame(&0u32.to_le_bytes())).unwrap(), EMPTY_OK);
    still_works(g);
}

#[test]
fn garbage_and_oversized_headers_resynchronise() {
    let Some(mut g) = guest() else { return };
    let g = g.as_mut().unwrap();

    // garbage, then a valid empty request: one error, then the request's answer
    let mut bytes = b"garbage!".to_vec();
    bytes.extend(frame(&0u32.to_le_bytes()));
    let msg = error_message(&g.exchange_raw(&bytes).unwrap());
    assert!(msg.contains("bad request magic"), "{msg}");
    assert_eq!(g.exchange_raw(&[]).unwrap(), EMPTY_OK);

    // a header announcing 4 GiB, then a valid request
    let mut bytes = b"JDRQ".to_vec();
    bytes.extend(u32::MAX.to_le_bytes());
    bytes.extend(frame(&0u32.to_le_bytes()));
    let msg = error_message(&g.exchange_raw(&bytes).unwrap());
    assert!(msg.contains("exceeds the limit"), "{msg}");
    assert_eq!(g.exchange_raw(&[]).unwrap(), EMPTY_OK);
    still_works(g);
}

#[test]
fn every_byte_value_passes_the_channel() {
    // all 256 byte values, including XON/XOFF, ^C, ^D, CR and LF, both ways
    let Some(r) = ({
        let data: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let prologue = vec![
            ldx(4, 2, 1, 4),
            ldx(4, 1, 1, 0),
            mov_reg(3, 1),
            add_imm(3, 3000),
            jle_reg(3, 2, 2),
            mov_imm(0, 0),
            exit(),
        ];
        let p = prog(&[&prologue, &[ldx(1, 0, 1, 2999), st_imm(1, 1, 0, 0x11), exit()]]);
        run(&[job(true, prog_type::XDP, vec![p], vec![data])])
    }) else {
        return;
    };
    let run = &ran(&r[0])[0];
    let mut want: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    assert_eq!(run.retval, want[2999] as u32);
    want[0] = 0x11;
    assert_eq!(run.output, want);
}

#[test]
fn large_batches() {
    // 500 jobs with 4 inputs each in one request, and one 4 MiB request
    let p = vec![mov_imm(0, 5), exit()];
    let jobs: Vec<_> =
        (0..500).map(|i| job(i % 2 == 0, prog_type::XDP, vec![p.clone()], vec![vec![0; 14]; 4])).collect();
    let Some(r) = run(&jobs) else { return };
    assert_eq!(r.len(), 500);
    assert!(r.iter().all(|x| ran(x).iter().all(|run| run.retval == 5)));
    let big = job(true, prog_type::XDP, vec![p], vec![vec![0xa5; 3500]; 1200]);
    let r = run(&[big]).unwrap();
    assert!(ran(&r[0]).iter().all(|run| run.output == vec![0xa5; 3500]));
}

#[test]
fn hung_and_dead_guests_are_errors() {
    let Ok(image) = image() else {
        println!("skipped: no kernel image");
        return;
    };
    // a deadline the guest cannot meet
    let opts = BootOptions {
        run_timeout_base: Duration::from_millis(1),
        run_timeout_per_input: Duration::ZERO,
        run_timeout_per_kinsn_squared: Duration::ZERO,
        ..BootOptions::default()
    };
    let mut g = Guest::boot_with(&image, opts).unwrap();
    let jobs: Vec<_> = (0..200)
        .map(|_| job(true, prog_type::XDP, vec![vec![mov_imm(0, 0), exit()]], vec![vec![0; 14]]))
        .collect();
    match g.run(&jobs) {
        Err(GuestError::Timeout { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(!g.is_alive());
    assert!(matches!(g.run(&[]), Err(GuestError::Dead)));

    // qemu killed from outside
    let mut g = Guest::boot(&image).unwrap();
    let status = std::process::Command::new("kill").arg("-9").arg(g.pid().to_string()).status().unwrap();
    assert!(status.success());
    match g.run(&[]) {
        Err(GuestError::Died { status, .. }) => {
            assert!(status.contains("signal") || status.contains("closed"), "{status}")
        }
        other => panic!("{other:?}"),
    }
    // and a new guest boots fine
    let mut g = Guest::boot(&image).unwrap();
    still_works(&mut g);
}

#[test]
fn zba_zbb_follow_the_qemu_cpu() {
    // The kernel is built with RISCV_ISA_ZBA/ZBB: the JIT uses them when the CPU has them
    // (qemu 7.2's default rv64 does). Same results, shorter code.
    let Ok(image) = image() else {
        println!("skipped: no kernel image");
        return;
    };
    // r2 = 0x8899aabbccddeeff; w0 = w2 (zero-extends); r0 = bswap32(r0) (be32)
    let p = prog(&[
        &ld_imm64(2, 0x8899_aabb_ccdd_eeff),
        &[insn(0xbc, 0, 2, 0, 0), insn(0xdc, 0, 0, 0, 32), exit()],
    ]);
    let mut lens = vec![];
    for cpu in [None, Some("rv64,zba=false,zbb=false".to_string())] {
        let mut g = Guest::boot_with(&image, BootOptions { cpu, ..BootOptions::default() }).unwrap();
        let r = g.run(&[job(true, prog_type::XDP, vec![p.clone()], vec![vec![0; 14]])]).unwrap();
        let kernel::JobResult::Ran { entry, runs } = &r[0] else { panic!("{r:?}") };
        assert_eq!(runs[0].retval, 0xffee_ddcc);
        lens.push(entry.jited_len);
    }
    assert!(lens[0] < lens[1], "Zbb code is shorter: {lens:?}");
}

/// Requests sent without waiting are answered in order; a synchronous run waits for none
/// to be outstanding.
#[test]
fn requests_sent_ahead_are_answered_in_order() {
    let Some(mut g) = guest() else { return };
    let g = g.as_mut().unwrap();
    let jobs: Vec<_> = (0..3)
        .map(|k| job(true, prog_type::XDP, vec![vec![mov_imm(0, 40 + k), exit()]], vec![vec![0; 14]]))
        .collect();
    for j in &jobs {
        g.send_request(std::slice::from_ref(j)).unwrap();
    }
    assert_eq!(g.waiting(), 3);
    assert!(matches!(g.run(&jobs[..1]), Err(GuestError::Protocol(_))));
    for (k, j) in jobs.iter().enumerate() {
        let r = g.receive(std::slice::from_ref(j)).unwrap();
        assert_eq!(ran(&r[0])[0].retval, 40 + k as u32);
    }
    assert_eq!(g.waiting(), 0);
    assert!(matches!(g.receive(&jobs[..1]), Err(GuestError::Protocol(_))));
    still_works(g);
}
