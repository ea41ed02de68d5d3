//! Where the CPU went while a scenario ran: the server's hashing threads,
//! its other threads, PostgreSQL, the load generator (this process) and the
//! rest of the machine, from `/proc` read before and after. Throughput
//! ratios say how far a scenario is from a limit; these say what spent the
//! CPU that was not there (Linux only; elsewhere nothing is reported).
use serde::Serialize;
use std::time::Instant;

/// authd names its hashing pool's threads `argon2-<n>`.
const HASHING_THREADS: &str = "argon2-";
/// The command name of every PostgreSQL process (postmaster and backends).
const POSTGRES: &str = "postgres";
/// `/proc` counts CPU time in USER_HZ ticks, 100 per second on Linux.
const TICKS_PER_SEC: f64 = 100.0;

/// Cumulative CPU ticks of each group.
#[derive(Clone, Copy, Default)]
struct Ticks {
    hashing: u64,
    server: u64,
    postgres: u64,
    generator: u64,
    machine_busy: u64,
    machine_all: u64,
}

/// What to measure: the server's pid (this process when in-process, then
/// the load generator cannot be told apart from it).
#[derive(Clone, Copy)]
pub struct Meter {
    server_pid: Option<u32>,
    in_process: bool,
}

/// A reading to measure from.
pub struct Mark {
    ticks: Option<Ticks>,
    at: Instant,
}

/// Average cores each group kept busy over a run, and the idle ones.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuUse {
    pub hashing_cores: f64,
    /// The server's threads other than hashing (with the load generator's
    /// when in-process).
    pub server_other_cores: f64,
    pub postgres_cores: f64,
    /// `None` when the load generator shares the server's process.
    pub generator_cores: Option<f64>,
    /// Everything else: other processes, interrupts.
    pub rest_cores: f64,
    pub idle_cores: f64,
}

impl Meter {
    /// In-process: the server is this process. Otherwise `server_pid`, if
    /// known (without it nothing is measured).
    pub fn new(in_process: bool, server_pid: Option<u32>) -> Self {
        Self {
            server_pid: if in_process {
                Some(std::process::id())
            } else {
                server_pid
            },
            in_process,
        }
    }

    pub fn mark(&self) -> Mark {
        Mark {
            ticks: self.read(),
            at: Instant::now(),
        }
    }

    /// The CPU used since `start`; `None` where `/proc` cannot be read.
    pub fn since(&self, start: &Mark) -> Option<CpuUse> {
        let (before, after) = (start.ticks?, self.read()?);
        let seconds = start.at.elapsed().as_secs_f64().max(f64::EPSILON);
        let cores = |ticks: u64| ticks as f64 / TICKS_PER_SEC / seconds;
        let d = |f: fn(&Ticks) -> u64| f(&after).saturating_sub(f(&before));
        let (hashing, server, postgres) = (d(|t| t.hashing), d(|t| t.server), d(|t| t.postgres));
        // In-process, the generator's ticks are already the server's.
        let generator = (!self.in_process).then(|| d(|t| t.generator));
        let (busy, all) = (d(|t| t.machine_busy), d(|t| t.machine_all));
        Some(CpuUse {
            hashing_cores: cores(hashing),
            server_other_cores: cores(server.saturating_sub(hashing)),
            postgres_cores: cores(postgres),
            generator_cores: generator.map(cores),
            rest_cores: cores(busy.saturating_sub(server + postgres + generator.unwrap_or(0))),
            idle_cores: cores(all.saturating_sub(busy)),
        })
    }

    fn read(&self) -> Option<Ticks> {
        let pid = self.server_pid?;
        let (machine_busy, machine_all) = machine()?;
        let mut hashing = 0;
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
        {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue; // the thread has just exited
            };
            if let Some((comm, times)) = parse_stat(&stat)
                && comm.starts_with(HASHING_THREADS)
            {
                hashing += times.own;
            }
        }
        let server = process(pid)?.own;
        let generator = process(std::process::id())?.own;
        Some(Ticks {
            hashing,
            server,
            postgres: postgres(),
            generator,
            machine_busy,
            machine_all,
        })
    }
}

struct Times {
    /// utime + stime.
    own: u64,
    /// cutime + cstime: exited children, once reaped.
    children: u64,
}

fn process(pid: u32) -> Option<Times> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(_, times)| times)
}

/// Every PostgreSQL process, with the children the postmaster has reaped
/// (backends that ended), so a backend exiting mid-run loses nothing.
fn postgres() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| match parse_stat(&stat)? {
            (POSTGRES, t) => Some(t.own + t.children),
            _ => None,
        })
        .sum()
}

/// Busy and all ticks of the whole machine, from `/proc/stat`.
fn machine() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let [user, nice, system, idle, iowait, irq, softirq, steal, ..] = fields[..] else {
        return None;
    };
    let busy = user + nice + system + irq + softirq + steal;
    Some((busy, busy + idle + iowait))
}

/// The command name and CPU times of a `/proc/.../stat` line. The name is
/// in parentheses and may itself hold spaces or parentheses.
fn parse_stat(stat: &str) -> Option<(&str, Times)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    // After the name: state, ppid, … utime is the 12th field, then stime,
    // cutime, cstime.
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let field = |i: usize| rest.get(i).and_then(|f| f.parse::<u64>().ok());
    let (utime, stime) = (field(11)?, field(12)?);
    let (cutime, cstime) = (field(13)?, field(14)?);
    Some((
        comm,
        Times {
            own: utime + stime,
            children: cutime + cstime,
        },
    ))
}
