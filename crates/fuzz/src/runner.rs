//! Running a campaign: worker processes that execute inputs under `catch_unwind`, and the
//! supervisor that starts them, watches them and writes what crashed.
//!
//! The supervisor starts `--threads` worker processes (this same binary with `--worker`),
//! under `prlimit --as` (a cap on address space, so an oversized allocation fails in the worker
//! instead of exhausting the machine). Worker `t` of `T` runs executions `t, t + T, t + 2T, ...`
//! and reports each on its stdout before and after running it:
//!
//! - `S <i>`: starting execution `i`;
//! - `R <i> <label>`: finished, an acceptable outcome;
//! - `P <i> <signature>\t<message>`: a panic (any thread), the input written to the crash folder;
//! - `C <i> <signature>\t<message>`: a crash that is not a panic (a forbidden response);
//! - `D`: done.
//!
//! A worker that dies (an abort such as a refused allocation or a stack overflow, a signal) or
//! stops reporting for `--timeout-s` seconds (then it is killed) is a crash of the execution it
//! had started: the supervisor regenerates that input from `(seed, index)`, writes it, and
//! starts a new worker at the next index. Every input is a pure function of the seed and its
//! index, so the whole campaign is reproducible.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::panics;
use crate::rng::Rng;
use crate::targets::{Target, TargetOptions};

/// How a campaign runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Executions in all.
    pub execs: u64,
    /// The campaign's seed.
    pub seed: u64,
    /// Worker processes.
    pub threads: usize,
    /// Where crashing inputs are written (`<out>/<target>/`).
    pub out: PathBuf,
    /// Seeds and corpus.
    pub target: TargetOptions,
    /// Address-space cap of each worker in MiB (0: none).
    pub mem_limit_mb: u64,
    /// A worker silent this long on one input is killed, and the input is a crash (a hang).
    pub timeout_s: u64,
    /// Replay these inputs (files, or folders of them) instead of generating.
    pub replay: Vec<PathBuf>,
    /// Print progress every 10 s on stderr.
    pub progress: bool,
}

/// What one worker process does.
#[derive(Debug, Clone)]
pub struct WorkerJob {
    /// First index.
    pub start: u64,
    /// Index step (the number of workers).
    pub step: u64,
    /// Indices below this.
    pub end: u64,
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r', '\t'], " ")
}

/// The crash folder of a target.
pub fn crash_dir(out: &Path, target: &str) -> PathBuf {
    out.join(target)
}

/// Writes `input` as a crash (`<sighash>-<index>`) with a note beside it; returns its path.
fn write_crash<T: Target>(
    input: &T::Input,
    out: &Path,
    signature: &str,
    message: &str,
    seed: u64,
    index: u64,
) -> Option<PathBuf> {
    let dir = crash_dir(out, T::NAME);
    std::fs::create_dir_all(&dir).ok()?;
    // Three inputs per kind of crash are enough (a restarted worker must not add more).
    let prefix = format!("{:016x}-", fnv(signature));
    let existing = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with(&prefix) && n.ends_with(".txt")
                })
                .count()
        })
        .unwrap_or(0);
    if existing >= 3 {
        return None;
    }
    let stem = dir.join(format!("{prefix}{index}"));
    let path = T::save(input, &stem).ok()?;
    let note = format!(
        "target: {}\nsignature: {signature}\nmessage: {message}\nseed: {seed}\nindex: {index}\n\
         replay: colorize-fuzz {} --replay {}\n",
        T::NAME,
        T::NAME,
        path.display()
    );
    std::fs::write(stem.with_extension("txt"), note).ok()?;
    Some(path)
}

/// The list of inputs a replay covers: files, model folders (a folder with a `config.json` or
/// `model.safetensors`), or folders of those (sorted; notes `*.txt`, `*.md` and dot files
/// skipped).
pub fn replay_list(paths: &[PathBuf]) -> Vec<PathBuf> {
    let is_model =
        |p: &Path| p.join("config.json").exists() || p.join("model.safetensors").exists();
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() && !is_model(p) {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            entries.retain(|e| {
                let name = e.file_name().and_then(|n| n.to_str()).unwrap_or("");
                !name.starts_with('.') && !name.ends_with(".txt") && !name.ends_with(".md")
            });
            entries.sort();
            out.extend(entries);
        } else {
            out.push(p.clone());
        }
    }
    out
}

/// Runs a worker: the executions of `job` (or the replay list), reporting on stdout.
pub fn worker<T: Target>(options: &RunOptions, job: &WorkerJob) -> std::io::Result<()> {
    panics::install();
    let mut target = T::new(&options.target);
    let replay = replay_list(&options.replay);
    if !options.replay.is_empty() {
        target.thorough();
    }
    let mut w = BufWriter::new(std::io::stdout().lock());
    let mut written: BTreeMap<String, usize> = BTreeMap::new();
    // `COLORIZE_FUZZ_TIMING=1`: each execution's time on stderr (the worker logs).
    let timing = std::env::var_os("COLORIZE_FUZZ_TIMING").is_some();
    let mut i = job.start;
    while i < job.end {
        writeln!(w, "S {i}")?;
        w.flush()?;
        panics::take();
        let input = if options.replay.is_empty() {
            let mut rng = Rng::for_exec(options.seed, i);
            std::panic::catch_unwind(AssertUnwindSafe(|| target.generate(&mut rng, i)))
                .map_err(|_| "the generator panicked".to_string())
        } else {
            T::load(&replay[i as usize])
                .map_err(|e| format!("cannot read {}: {e}", replay[i as usize].display()))
        };
        let input = match input {
            Ok(input) => input,
            Err(msg) => {
                let sig = panics::take()
                    .first()
                    .map(|c| c.signature())
                    .unwrap_or_else(|| "input error".into());
                writeln!(w, "C {i} {}\t{}", one_line(&sig), one_line(&msg))?;
                i += job.step;
                continue;
            }
        };
        let exec_t0 = Instant::now();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| target.exec(&input, i)));
        let caught = panics::take();
        if timing {
            let label = match &result {
                Ok(Ok(l)) => l.as_str(),
                _ => "crash",
            };
            eprintln!(
                "timing {i} {:.3} ms {label}",
                exec_t0.elapsed().as_secs_f64() * 1e3
            );
        }
        let crash = match (caught.first(), result) {
            (Some(c), _) => Some((
                'P',
                c.signature(),
                format!("{} (thread {})", c.message, c.thread),
            )),
            (None, Err(_)) => Some((
                'P',
                "panic without a hook record".to_string(),
                String::new(),
            )),
            (None, Ok(Err(msg))) => {
                let mut sig: String = msg
                    .chars()
                    .map(|c| if c.is_ascii_digit() { '#' } else { c })
                    .collect();
                sig.truncate(80);
                Some(('C', format!("error: {sig}"), msg))
            }
            (None, Ok(Ok(label))) => {
                writeln!(w, "R {i} {}", one_line(&label).replace(' ', "_"))?;
                None
            }
        };
        if let Some((kind, sig, msg)) = crash {
            let n = written.entry(sig.clone()).or_insert(0);
            if *n < 3 {
                write_crash::<T>(&input, &options.out, &sig, &msg, options.seed, i);
            }
            *n += 1;
            writeln!(w, "{kind} {i} {}\t{}", one_line(&sig), one_line(&msg))?;
            if kind == 'P' {
                target.reset();
            }
        }
        i += job.step;
    }
    writeln!(w, "D")?;
    w.flush()
}

/// One distinct crash.
#[derive(Debug, Clone)]
pub struct CrashClass {
    /// What identifies it.
    pub signature: String,
    /// `panic`, `error` (a forbidden outcome), `abort`, `hang`.
    pub kind: String,
    /// How many executions hit it.
    pub count: u64,
    /// The first index that hit it.
    pub first_index: u64,
    /// The first message.
    pub message: String,
}

/// The result of a campaign.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The target.
    pub target: String,
    /// Executions finished (crashed ones included).
    pub executions: u64,
    /// Wall time in seconds.
    pub wall_s: f64,
    /// Outcome labels and counts.
    pub outcomes: BTreeMap<String, u64>,
    /// Distinct crashes.
    pub crashes: Vec<CrashClass>,
    /// Worker processes started (more than `threads` when some died).
    pub worker_starts: u64,
}

impl Summary {
    /// Executions that crashed, all kinds.
    pub fn crashed(&self) -> u64 {
        self.crashes.iter().map(|c| c.count).sum()
    }

    /// Executions that panicked.
    pub fn panics(&self) -> u64 {
        self.crashes
            .iter()
            .filter(|c| c.kind == "panic")
            .map(|c| c.count)
            .sum()
    }

    /// The summary as JSON.
    pub fn to_json(&self, options: &RunOptions, command: &str) -> serde_json::Value {
        json!({
            "target": self.target,
            "command": command,
            "seed": options.seed,
            "threads": options.threads,
            "executions": self.executions,
            "wall_s": self.wall_s,
            "execs_per_s": self.executions as f64 / self.wall_s.max(1e-9),
            "crashed_executions": self.crashed(),
            "panics": self.panics(),
            "distinct_crashes": self.crashes.len(),
            "crashes": self.crashes.iter().map(|c| json!({
                "signature": c.signature,
                "kind": c.kind,
                "count": c.count,
                "first_index": c.first_index,
                "message": c.message,
            })).collect::<Vec<_>>(),
            "outcomes": self.outcomes,
            "worker_starts": self.worker_starts,
            "cpu": cpu_name(),
            "mem_limit_mb": options.mem_limit_mb,
        })
    }

    /// The summary as text.
    pub fn print(&self, options: &RunOptions) {
        let rate = self.executions as f64 / self.wall_s.max(1e-9);
        println!("target:              {}", self.target);
        println!("executions:          {}", self.executions);
        println!("wall time:           {:.1} s", self.wall_s);
        println!(
            "execs/s:             {rate:.0} ({} worker processes)",
            options.threads
        );
        println!("cpu:                 {}", cpu_name());
        println!("panics:              {}", self.panics());
        println!("crashed executions:  {}", self.crashed());
        println!("distinct crashes:    {}", self.crashes.len());
        for c in &self.crashes {
            println!(
                "  [{}] x{} (first at index {}): {}",
                c.kind, c.count, c.first_index, c.signature
            );
        }
        if !self.crashes.is_empty() {
            println!(
                "crash inputs in:     {}",
                crash_dir(&options.out, &self.target).display()
            );
        }
        let mut top: Vec<_> = self.outcomes.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1));
        println!("outcomes (top 25):");
        for (label, n) in top.iter().take(25) {
            println!("  {n:>9}  {label}");
        }
    }
}

/// The CPU's model name (from `/proc/cpuinfo`), and the number of logical CPUs.
pub fn cpu_name() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let n = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {n} logical CPUs")
}

enum Event {
    Line(usize, u64, String),
    Eof(usize, u64),
}

struct Slot {
    child: Option<Child>,
    generation: u64,
    next: u64,
    started: Option<(u64, Instant)>,
    finished: bool,
    done: bool,
    timed_out: bool,
    log: PathBuf,
    log_offset: u64,
    starts_without_progress: u32,
}

fn prlimit_available() -> bool {
    Command::new("prlimit")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Classifies a worker's death from its exit status and the end of its stderr.
fn classify_death(
    status: Option<std::process::ExitStatus>,
    log_tail: &str,
    timed_out: bool,
    timeout_s: u64,
) -> (String, String) {
    if timed_out {
        return (
            "hang".into(),
            format!("hang: no progress in {timeout_s} s (killed)"),
        );
    }
    let last = log_tail
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string();
    if let Some(at) = log_tail.rfind("memory allocation of") {
        let frame = crate::panics::first_frame(&log_tail[at..])
            .map(|f| format!(" in {f}"))
            .unwrap_or_default();
        return (
            "abort".into(),
            format!("abort: oversized allocation{frame} (refused under the address-space cap)"),
        );
    }
    if log_tail.contains("has overflowed its stack") {
        return ("abort".into(), "abort: stack overflow".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.and_then(|s| s.signal()) {
            return (
                "abort".into(),
                format!("abort: killed by signal {sig} ({})", one_line(&last)),
            );
        }
    }
    let code = status
        .and_then(|s| s.code())
        .map_or("?".into(), |c| c.to_string());
    (
        "abort".into(),
        format!(
            "abort: worker exited with code {code} ({})",
            one_line(&last)
        ),
    )
}

/// Runs a campaign of target `T` under supervision; returns the summary.
///
/// # Errors
/// When workers cannot be started or keep dying before running anything.
pub fn supervise<T: Target>(
    options: &RunOptions,
    extra_args: &[String],
) -> Result<Summary, String> {
    let t0 = Instant::now();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let replay = replay_list(&options.replay);
    let end = if options.replay.is_empty() {
        options.execs
    } else {
        replay.len() as u64
    };
    let threads = options.threads.max(1) as u64;
    let out_dir = crash_dir(&options.out, T::NAME);
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let use_prlimit = options.mem_limit_mb > 0 && prlimit_available();
    if options.mem_limit_mb > 0 && !use_prlimit {
        eprintln!("colorize-fuzz: prlimit not found; workers run without an address-space cap");
    }
    let (tx, rx) = mpsc::channel::<Event>();
    let mut slots: Vec<Slot> = (0..threads)
        .map(|t| Slot {
            child: None,
            generation: 0,
            next: t,
            started: None,
            finished: false,
            done: t >= end,
            timed_out: false,
            log: out_dir.join(format!("worker-{t}.log")),
            log_offset: 0,
            starts_without_progress: 0,
        })
        .collect();
    let mut summary = Summary {
        target: T::NAME.to_string(),
        executions: 0,
        wall_s: 0.0,
        outcomes: BTreeMap::new(),
        crashes: Vec::new(),
        worker_starts: 0,
    };
    let mut regen: Option<T> = None;

    let spawn = |t: usize, slot: &mut Slot, starts: &mut u64| -> Result<(), String> {
        slot.generation += 1;
        slot.finished = false;
        slot.timed_out = false;
        slot.started = None;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&slot.log)
            .map_err(|e| e.to_string())?;
        slot.log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut cmd = if use_prlimit {
            let mut c = Command::new("prlimit");
            c.arg(format!("--as={}", options.mem_limit_mb << 20))
                .arg("--")
                .arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.arg(T::NAME)
            .args(["--worker", "--worker-start"])
            .arg(slot.next.to_string())
            .arg("--worker-step")
            .arg(threads.to_string())
            .arg("--execs")
            .arg(end.to_string())
            .args(extra_args)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start a worker: {e}"))?;
        let stdout = child.stdout.take().ok_or("no worker stdout")?;
        let tx = tx.clone();
        let generation = slot.generation;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(Event::Line(t, generation, line)).is_err() {
                    return;
                }
            }
            let _ = tx.send(Event::Eof(t, generation));
        });
        slot.child = Some(child);
        *starts += 1;
        Ok(())
    };

    for (t, slot) in slots.iter_mut().enumerate() {
        if !slot.done {
            spawn(t, slot, &mut summary.worker_starts)?;
        }
    }
    let mut last_progress = Instant::now();
    let record = |summary: &mut Summary, kind: &str, sig: &str, msg: &str, index: u64| match summary
        .crashes
        .iter_mut()
        .find(|c| c.signature == sig)
    {
        Some(c) => c.count += 1,
        None => summary.crashes.push(CrashClass {
            signature: sig.to_string(),
            kind: kind.to_string(),
            count: 1,
            first_index: index,
            message: msg.to_string(),
        }),
    };
    while slots.iter().any(|s| !s.done) {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(Event::Line(t, generation, line)) if generation == slots[t].generation => {
                let slot = &mut slots[t];
                let mut it = line.splitn(3, ' ');
                let tag = it.next().unwrap_or("");
                let index: u64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                let rest = it.next().unwrap_or("");
                match tag {
                    "S" => {
                        slot.started = Some((index, Instant::now()));
                    }
                    "R" => {
                        summary.executions += 1;
                        *summary.outcomes.entry(rest.to_string()).or_insert(0) += 1;
                        slot.started = None;
                        slot.next = index + threads;
                        slot.starts_without_progress = 0;
                    }
                    "P" | "C" => {
                        summary.executions += 1;
                        let (sig, msg) = rest.split_once('\t').unwrap_or((rest, ""));
                        let kind = if tag == "P" { "panic" } else { "error" };
                        record(&mut summary, kind, sig, msg, index);
                        slot.started = None;
                        slot.next = index + threads;
                        slot.starts_without_progress = 0;
                    }
                    "D" => slot.finished = true,
                    _ => {}
                }
            }
            Ok(Event::Eof(t, generation)) if generation == slots[t].generation => {
                let slot = &mut slots[t];
                let status = slot.child.take().and_then(|mut c| c.wait().ok());
                if slot.finished && status.is_some_and(|s| s.success()) {
                    slot.done = true;
                    continue;
                }
                let mut tail = String::new();
                if let Ok(mut f) = std::fs::File::open(&slot.log) {
                    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                    let from = slot.log_offset.max(len.saturating_sub(4096));
                    if f.seek(std::io::SeekFrom::Start(from)).is_ok() {
                        let _ = f.read_to_string(&mut tail);
                    }
                }
                let (kind, sig) = classify_death(status, &tail, slot.timed_out, options.timeout_s);
                match slot.started {
                    Some((index, _)) => {
                        summary.executions += 1;
                        let msg = match tail.lines().find(|l| {
                            l.contains("memory allocation of") || l.contains("overflowed its stack")
                        }) {
                            Some(l) => l.to_string(),
                            None => one_line(
                                &tail.lines().rev().take(3).collect::<Vec<_>>().join(" | "),
                            ),
                        };
                        let first = !summary.crashes.iter().any(|c| c.signature == sig);
                        record(&mut summary, &kind, &sig, &msg, index);
                        if first
                            || summary
                                .crashes
                                .iter()
                                .any(|c| c.signature == sig && c.count <= 3)
                        {
                            let target = regen.get_or_insert_with(|| T::new(&options.target));
                            let input = if options.replay.is_empty() {
                                Some(
                                    target.generate(&mut Rng::for_exec(options.seed, index), index),
                                )
                            } else {
                                T::load(&replay[index as usize]).ok()
                            };
                            if let Some(input) = input {
                                write_crash::<T>(
                                    &input,
                                    &options.out,
                                    &sig,
                                    &msg,
                                    options.seed,
                                    index,
                                );
                            }
                        }
                        slot.next = index + threads;
                        slot.starts_without_progress = 0;
                    }
                    None => {
                        slot.starts_without_progress += 1;
                        if slot.starts_without_progress >= 3 {
                            return Err(format!(
                                "worker {t} died three times without running an input ({sig}); see {}",
                                slot.log.display()
                            ));
                        }
                    }
                }
                if slot.next >= end {
                    slot.done = true;
                } else {
                    spawn(t, slot, &mut summary.worker_starts)?;
                }
            }
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err("worker channel closed".into()),
        }
        for slot in &mut slots {
            if let (Some((_, since)), Some(child)) = (slot.started, slot.child.as_mut())
                && !slot.timed_out
                && since.elapsed() > Duration::from_secs(options.timeout_s)
            {
                slot.timed_out = true;
                let _ = child.kill();
            }
        }
        if options.progress && last_progress.elapsed() > Duration::from_secs(10) {
            last_progress = Instant::now();
            let el = t0.elapsed().as_secs_f64();
            eprintln!(
                "colorize-fuzz {}: {} / {end} executions, {:.0} execs/s, {} crashed ({} distinct), {:.0} s",
                T::NAME,
                summary.executions,
                summary.executions as f64 / el.max(1e-9),
                summary.crashed(),
                summary.crashes.len(),
                el
            );
        }
    }
    summary.wall_s = t0.elapsed().as_secs_f64();
    Ok(summary)
}
