//! `colorize serve` as a process: Ctrl+C lets requests in flight finish within the shutdown
//! timeout; a second Ctrl+C stops at once; `--log-format json` writes one JSON line per request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `colorize serve` on a free port; returns the child and the address it printed.
fn start(
    data_dir: &std::path::Path,
    extra: &[&str],
) -> (Child, String, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_colorize"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("colorize serve starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the URL line");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    (child, addr, stdout)
}

fn signal(child: &Child, name: &str) {
    let st = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(st.success());
}

/// Everything the (exited) child wrote to standard error.
fn stderr_of(child: &mut Child) -> String {
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr is piped")
        .read_to_string(&mut err)
        .expect("stderr is readable");
    err
}

fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn a_second_ctrl_c_stops_the_server_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, _stdout) = start(dir.path(), &["--shutdown-timeout", "30"]);
    // A client that never finishes its headers keeps the graceful shutdown waiting.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nX-Slow: aaa")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    signal(&child, "INT");
    // Still finishing (the deadline is 30 s).
    assert!(
        wait_for_exit(&mut child, Duration::from_millis(700)).is_none(),
        "stopped before the deadline"
    );
    let t0 = Instant::now();
    signal(&child, "INT");
    let status =
        wait_for_exit(&mut child, Duration::from_secs(5)).expect("a second Ctrl+C stops it");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(status.code(), Some(130));
    let err = stderr_of(&mut child);
    assert!(err.contains("Ctrl+C again"), "{err}");
    assert!(err.contains("stopped at once"), "{err}");
}

#[test]
fn the_shutdown_timeout_bounds_a_graceful_stop_and_logs_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, mut stdout) = start(
        dir.path(),
        &["--shutdown-timeout", "1", "--log-format", "json"],
    );
    let mut ok = TcpStream::connect(&addr).unwrap();
    ok.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    ok.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nX-Slow: aaa")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    signal(&child, "TERM");
    let status =
        wait_for_exit(&mut child, Duration::from_secs(10)).expect("stops within the deadline");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(
        rest.contains("1 connections dropped at the deadline"),
        "{rest}"
    );

    let err = stderr_of(&mut child);
    let requests: Vec<serde_json::Value> = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 1, "{err}");
    assert_eq!(requests[0]["span"]["route"], "/health");
    assert_eq!(requests[0]["span"]["method"], "GET");
    assert_eq!(requests[0]["fields"]["status"], 200);
}
