//! Reading a process's CPU time, memory and wake-ups from /proc, for the
//! benchmarks that measure the daemon from outside.
#![allow(dead_code)]

/// CPU time (user + system) the process used so far, in ms.
pub fn cpu_ms(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks * 10.0
}

/// Bytes the process passed to write calls so far (`wchar` of /proc/PID/io:
/// SQLite's WAL frames and checkpoint copies, sockets, logs).
pub fn written_bytes(pid: u32) -> u64 {
    field(pid, "io", "wchar:")
}

pub fn rss_kib(pid: u32) -> u64 {
    field(pid, "status", "VmRSS:")
}

/// The number after `key` in /proc/PID/`file` (0 if the process is gone).
fn field(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Context switches of every thread of `pid` (each is a wake-up).
pub fn switches(pid: u32) -> u64 {
    let mut total = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(t.path().join("status")) {
            for l in s.lines().filter(|l| l.contains("ctxt_switches")) {
                total += l
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total
}

/// One mapping of /proc/PID/smaps: its range, permissions, path and resident KiB.
struct Mapping {
    start: u64,
    end: u64,
    perms: String,
    path: String,
    rss: u64,
}

fn mappings(pid: u32) -> Vec<Mapping> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut out: Vec<Mapping> = Vec::new();
    for line in s.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                let perms = f.next().unwrap_or("").to_owned();
                let path = f.nth(3).unwrap_or("").to_owned();
                out.push(Mapping {
                    start,
                    end,
                    perms,
                    path,
                    rss: 0,
                });
                continue;
            }
        }
        if first == "Rss:" {
            if let Some(m) = out.last_mut() {
                m.rss = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            }
        }
    }
    out
}

/// Resident memory by what it is (KiB), from /proc/PID/smaps.
#[derive(Debug, Default, Clone, Copy)]
pub struct Breakdown {
    /// The executable's code (r-x).
    pub text: u64,
    /// Its read-only data and relocated data (r--, rw- file-backed).
    pub rodata: u64,
    /// libc, libm, libgcc_s, the loader, the vDSO.
    pub shared_libs: u64,
    /// malloc's main heap (brk).
    pub heap: u64,
    /// malloc's other arenas (64 MiB reservations, the front read-write).
    pub arenas: u64,
    /// Thread stacks (a guard page then read-write), the main one included.
    pub stacks: u64,
    /// Other anonymous mappings: allocations over malloc's mmap threshold,
    /// the executable's .bss.
    pub other_anon: u64,
    /// Other files mapped (SQLite's WAL index, -shm).
    pub other_files: u64,
}

/// glibc reserves each arena but the main one as a 64 MiB mapping (on 64-bit).
const ARENA: u64 = 64 << 20;

/// Sorts each mapping of `pid` into [`Breakdown`]. Thread stacks and malloc
/// arenas are both anonymous: a stack is read-write right above a small
/// inaccessible guard, an arena is read-write at the start of an aligned
/// 64 MiB reservation whose rest is inaccessible.
pub fn breakdown(pid: u32) -> Breakdown {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let exe = exe.trim_end_matches(" (deleted)").to_owned();
    let maps = mappings(pid);
    let mut b = Breakdown::default();
    for (i, m) in maps.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| &maps[j]);
        let next = maps.get(i + 1);
        let anon = m.path.is_empty();
        if !exe.is_empty() && m.path == exe {
            if m.perms.contains('x') {
                b.text += m.rss;
            } else {
                b.rodata += m.rss;
            }
        } else if m.path.contains(".so") || m.path == "[vdso]" || m.path == "[vvar]" {
            b.shared_libs += m.rss;
        } else if m.path == "[heap]" {
            b.heap += m.rss;
        } else if m.path == "[stack]" {
            b.stacks += m.rss;
        } else if anon && m.perms.starts_with("rw") {
            let guard_below = prev.is_some_and(|p| {
                p.path.is_empty()
                    && p.perms.starts_with("---")
                    && p.end == m.start
                    && p.end - p.start <= 64 << 10
            });
            // Aligned, and either all of the reservation or its front.
            let arena = m.start % ARENA == 0
                && (m.end - m.start == ARENA
                    || next.is_some_and(|n| {
                        n.path.is_empty()
                            && n.perms.starts_with("---")
                            && n.start == m.end
                            && n.end - m.start == ARENA
                    }));
            if arena {
                b.arenas += m.rss;
            } else if guard_below {
                b.stacks += m.rss;
            } else {
                b.other_anon += m.rss;
            }
        } else if anon {
            b.other_anon += m.rss;
        } else {
            b.other_files += m.rss;
        }
    }
    b
}

impl Breakdown {
    /// One line, MiB.
    pub fn line(&self) -> String {
        let m = |k: u64| k as f64 / 1024.0;
        format!(
            "binary text {:.1} + rodata/data {:.1}, shared libs {:.1}, malloc heap {:.1} + arenas {:.1}, stacks {:.1}, other anon {:.1}, other files {:.1}",
            m(self.text),
            m(self.rodata),
            m(self.shared_libs),
            m(self.heap),
            m(self.arenas),
            m(self.stacks),
            m(self.other_anon),
            m(self.other_files)
        )
    }
}
