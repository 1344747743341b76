//! Benchmark: the Z-Wave driver against the zwave-js mock controller.
//! Interviews the mock's three locks, then sets 90 user codes (30 per lock,
//! one batch per lock, the three batches at once) and prints the figures;
//! twice in one process: plaintext locks (`mocks/locks.cjs`), then the same
//! locks included with S2 Access Control (`mocks/secure-bench-locks.cjs`,
//! strict: a code that arrived unencrypted is not set), and what S2 costs
//! per set (CPU of this process, and wall time) against the plaintext run.
//!
//! Run: scripts/test-deps-zwave.sh && cargo run --release --example zwave_bench
//!
//! CPU time is this process's (getrusage), so the mock's own CPU is not in it;
//! peak RSS is VmHWM of this process.

use lockhub::drivers::zwave::security::NetworkKeys;
use lockhub::drivers::zwave::testing::{MockController, SECURE_MOCK_KEYS};
use lockhub::drivers::zwave::{ZwaveConfig, ZwaveDriver};
use lockhub::drivers::{LockDriver, SlotCode, SlotOp};
use lockhub::model::Pin;
use std::time::{Duration, Instant};

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct we hand it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One run's figures.
struct Run {
    interview_s: f64,
    interview_cpu_s: f64,
    sets: usize,
    sets_s: f64,
    sets_cpu_s: f64,
}

async fn run(
    label: &str,
    mock_config: &str,
    keys: Option<NetworkKeys>,
) -> Result<Run, Box<dyn std::error::Error>> {
    let mock = MockController::start_with(mock_config)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // Drain events so they do not pile up.
    tokio::spawn(async move { while rx.recv().await.is_some() {} });

    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut config = ZwaveConfig::new(mock.url());
    config.offline_ping_interval = None;
    config.keys = keys;
    let driver = ZwaveDriver::connect(config, tx).await?;
    if !driver.wait_interviews(Duration::from_secs(60)).await {
        return Err("interviews did not finish in 60 s".into());
    }
    let interview = t0.elapsed();
    let interview_cpu = cpu_seconds() - cpu0;
    let devices = driver.devices().await;
    let interview_frames = driver.frames_sent();
    println!(
        "[{label}] interview: {} locks in {:.3} s ({} radio frames, {:.1} ms CPU)",
        devices.len(),
        interview.as_secs_f64(),
        interview_frames,
        interview_cpu * 1e3
    );
    if devices.len() != 3 {
        return Err(format!("expected 3 locks, found {}", devices.len()).into());
    }

    let per_lock = 30u32;
    let cpu1 = cpu_seconds();
    let t1 = Instant::now();
    let batches = devices.iter().enumerate().map(|(i, d)| {
        let ops: Vec<SlotOp> = (1..=per_lock)
            .map(|slot| {
                SlotOp::Set(SlotCode {
                    recurring: None,
                    slot,
                    code: Pin::new(format!("{}{:03}", i + 1, 100 + slot * 7)),
                    name: None,
                    window: None,
                })
            })
            .collect();
        let driver = driver.clone();
        let id = d.device_id.clone();
        async move { driver.apply(&id, &ops).await }
    });
    let results = futures::future::join_all(batches).await;
    let elapsed = t1.elapsed();
    let cpu = cpu_seconds() - cpu1;
    let total = results.iter().map(Vec::len).sum::<usize>();
    let ok = results.iter().flatten().filter(|r| r.is_ok()).count();
    let set_frames = driver.frames_sent() - interview_frames;
    println!(
        "[{label}] sets: {ok}/{total} ok in {:.3} s = {:.1} sets/s ({} radio frames)",
        elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64(),
        set_frames
    );
    println!("[{label}] cpu: {:.3} ms per set", cpu * 1e3 / total as f64);
    // Spot-check the lock side (the strict S2 mock holds only what arrived encrypted).
    let codes = mock.codes(2).await?;
    println!("[{label}] mock node 2 holds {} codes", codes.len());
    if ok != total || codes.len() != per_lock as usize {
        return Err(format!("[{label}] some sets failed").into());
    }
    Ok(Run {
        interview_s: interview.as_secs_f64(),
        interview_cpu_s: interview_cpu,
        sets: total,
        sets_s: elapsed.as_secs_f64(),
        sets_cpu_s: cpu,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let plain = run("plaintext", "mocks/locks.cjs", None).await?;
    let keys = NetworkKeys::from_json(SECURE_MOCK_KEYS)?;
    let s2 = run("S2", "mocks/secure-bench-locks.cjs", Some(keys)).await?;
    let per_set = |r: &Run, x: f64| x * 1e3 / r.sets as f64;
    println!(
        "S2 vs plaintext: interview {:.3} s vs {:.3} s ({:+.1} ms CPU); sets {:.1} vs {:.1} sets/s",
        s2.interview_s,
        plain.interview_s,
        (s2.interview_cpu_s - plain.interview_cpu_s) * 1e3,
        s2.sets as f64 / s2.sets_s,
        plain.sets as f64 / plain.sets_s,
    );
    println!(
        "S2 cost per set: {:+.3} ms CPU ({:.3} vs {:.3}), {:+.2} ms wall ({:.2} vs {:.2})",
        per_set(&s2, s2.sets_cpu_s) - per_set(&plain, plain.sets_cpu_s),
        per_set(&s2, s2.sets_cpu_s),
        per_set(&plain, plain.sets_cpu_s),
        per_set(&s2, s2.sets_s) - per_set(&plain, plain.sets_s),
        per_set(&s2, s2.sets_s),
        per_set(&plain, plain.sets_s),
    );
    match peak_rss_kb() {
        Some(kb) => println!("peak rss: {:.1} MB (VmHWM)", kb as f64 / 1024.0),
        None => println!("peak rss: unavailable"),
    }
    Ok(())
}
