//! Catching panics from any thread of the process, with where they happened.
//!
//! [`install`] replaces the panic hook with one that records each panic (location, message,
//! thread) instead of printing it; [`take`] hands the records over. A panic in a thread the
//! code under test owns (the server's inference worker) is seen as well as one that unwinds
//! into the fuzzer's own `catch_unwind`.

use std::sync::Mutex;

/// One panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caught {
    /// `file:line:column`.
    pub location: String,
    /// The panic message.
    pub message: String,
    /// The thread's name.
    pub thread: String,
    /// The innermost function outside the standard library (from a backtrace), if known.
    pub frame: Option<String>,
}

impl Caught {
    /// What identifies this kind of panic: the location, and the message with its numbers
    /// replaced by `#` (so `index 9 out of range` and `index 12 out of range` are one kind).
    pub fn signature(&self) -> String {
        let mut msg = String::new();
        for c in self.message.chars() {
            let c = if c.is_ascii_digit() { '#' } else { c };
            if !(c == '#' && msg.ends_with('#')) {
                msg.push(c);
            }
        }
        msg.truncate(120);
        let frame = self
            .frame
            .as_deref()
            .map(|f| format!(" in {f}"))
            .unwrap_or_default();
        format!(
            "panic at {}{frame}: {}",
            self.location,
            msg.replace(['\n', '\t'], " ")
        )
    }
}

static CAUGHT: Mutex<Vec<Caught>> = Mutex::new(Vec::new());

/// Installs the recording hook (process-wide). With `COLORIZE_FUZZ_PRINT_PANICS` set, panics
/// are printed as usual too.
pub fn install() {
    let print = std::env::var_os("COLORIZE_FUZZ_PRINT_PANICS").is_some();
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", short_path(l.file()), l.line(), l.column()))
            .unwrap_or_else(|| "<unknown>".into());
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "<non-string payload>".into());
        let thread = std::thread::current()
            .name()
            .unwrap_or("<unnamed>")
            .to_string();
        let frame = first_frame(&std::backtrace::Backtrace::force_capture().to_string());
        if let Ok(mut v) = CAUGHT.lock()
            && v.len() < 64
        {
            v.push(Caught {
                location,
                message,
                thread,
                frame,
            });
        }
        if print {
            default(info);
        }
    }));
}

/// The panics recorded since the last call.
pub fn take() -> Vec<Caught> {
    CAUGHT
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default()
}

/// The innermost frame of a printed backtrace (`std::backtrace::Backtrace`'s or the one Rust
/// prints when an allocation fails) that is neither the standard library nor this crate's
/// machinery: the code under test that panicked or asked for the memory.
pub fn first_frame(backtrace: &str) -> Option<String> {
    const SKIP: [&str; 14] = [
        "std::",
        "core::",
        "alloc::",
        "<std::",
        "<core::",
        "<alloc::",
        "<&",
        "__rust",
        "rust_begin_unwind",
        "rust_oom",
        "colorize_fuzz::panics",
        "<alloc",
        "hashbrown::",
        "backtrace",
    ];
    backtrace
        .lines()
        .filter_map(|l| {
            let (n, name) = l.trim().split_once(": ")?;
            n.parse::<u32>().ok()?;
            Some(name.trim().to_string())
        })
        .find(|name| !SKIP.iter().any(|s| name.starts_with(s)))
}

/// A source path without the machine-specific part: `burn-nn-0.22.1/src/...` for a registry
/// crate, `library/alloc/...` for the standard library.
pub fn short_path(file: &str) -> &str {
    if let Some(at) = file.find("/registry/src/") {
        let rest = &file[at + "/registry/src/".len()..];
        return rest.split_once('/').map_or(rest, |(_, r)| r);
    }
    if let Some(rest) = file.strip_prefix("/rustc/") {
        return rest.split_once('/').map_or(rest, |(_, r)| r);
    }
    file
}
