//! `colorize batch` over local folders (and, when moto's server is installed, a loopback S3),
//! with the bundled model at render size 64 on real photos: shards as separate processes cover
//! every input once, a killed shard resumes without redoing its images, a corrupt image fails
//! alone, and bad input is refused before any work.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::{colorize, shared_data};

/// Nine real photos (BSDS500 PNGs and two small historical JPEGs) in `dir`, in sub-folders,
/// and a file that is not an image. Returns their keys relative to `dir`.
fn photos(dir: &Path) -> Vec<String> {
    let mut keys = Vec::new();
    let mut bsds: Vec<PathBuf> = std::fs::read_dir(shared_data().join("val/bsds500"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    bsds.sort();
    for (i, f) in bsds.iter().take(7).enumerate() {
        let key = format!(
            "{}/{}",
            ["box-1", "box-2/folder a", "box-3"][i % 3],
            f.file_name().unwrap().to_str().unwrap()
        );
        keys.push(key);
        copy(f, &dir.join(keys.last().unwrap()));
    }
    for name in ["1888Slum.jpg", "1900sSaloon.jpg"] {
        keys.push(format!("box-1/{name}"));
        copy(
            &shared_data().join("historical").join(name),
            &dir.join(keys.last().unwrap()),
        );
    }
    std::fs::write(dir.join("box-1/notes.txt"), b"not an image").unwrap();
    keys.sort();
    keys
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

/// Every file under `dir` (relative, `/`-separated), leaving out `_colorize/` and staging files.
fn files(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                // object_store's staging files (`name#3`) of uploads a kill interrupted are
                // not outputs (its listings skip them too).
                let staging = rel
                    .rsplit_once('#')
                    .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                if !rel.starts_with("_colorize/") && !staging {
                    out.insert(rel);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

fn report(out: &Path, index: u64, count: u64) -> serde_json::Value {
    let p = out.join(format!("_colorize/reports/shard-{index}-of-{count}.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

/// `colorize batch` as a plain process (for running shards side by side), fast settings.
fn batch_process(input: impl AsRef<OsStr>, out: impl AsRef<OsStr>, extra: &[&str]) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("colorize"));
    c.arg("batch")
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(out)
        .args([
            "--render-size",
            "64",
            "--threads",
            "1",
            "--concurrency",
            "2",
        ])
        .args(extra)
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("AWS_BATCH_JOB_ARRAY_INDEX")
        .env_remove("COLORIZE_SHARD_COUNT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn finish(child: Child) -> (Option<i32>, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn three_shards_as_processes_cover_every_input_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    let keys = photos(&input);
    let children: Vec<Child> = (0..3)
        .map(|i| {
            batch_process(&input, &out, &["--shard-count", "3", "--format", "jpeg"])
                // The index from Kubernetes' variable, as an Indexed Job sets it.
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut done = 0;
    for (i, child) in children.into_iter().enumerate() {
        let (code, stderr) = finish(child);
        assert_eq!(code, Some(0), "shard {i}: {stderr}");
        let r = report(&out, i as u64, 3);
        assert_eq!(r["state"], "finished");
        assert_eq!(r["input_images"], keys.len());
        assert_eq!(r["failed"], 0);
        assert_eq!(r["render_size"], 64);
        assert_eq!(r["done"], r["shard_images"]);
        done += r["done"].as_u64().unwrap();
    }
    assert_eq!(done as usize, keys.len(), "each input colourised once");
    let expected: BTreeSet<String> = keys
        .iter()
        .map(|k| format!("{}.jpg", k.rsplit_once('.').unwrap().0))
        .collect();
    assert_eq!(files(&out), expected);
    let out_photo = out.join(expected.iter().next().unwrap());
    let img = image::open(&out_photo).unwrap();
    let src = image::open(input.join(&keys[0])).unwrap();
    assert_eq!(
        (img.width(), img.height()),
        (src.width(), src.height()),
        "full size"
    );

    let summary = colorize()
        .args(["batch", "--summary", "--output"])
        .arg(&out)
        .assert()
        .code(0);
    let stdout = String::from_utf8_lossy(&summary.get_output().stdout).to_string();
    assert!(
        stdout.contains("3 of 3 shard reports")
            && stdout.contains(&format!("{} colourised", keys.len())),
        "{stdout}"
    );
}

#[test]
fn a_killed_shard_resumes_without_redoing_its_images() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    let keys = photos(&input);
    // Killed (SIGABRT, as abrupt as a kill) after writing 3 images.
    let (code, stderr) = finish(
        batch_process(&input, &out, &["--progress-every", "1"])
            .env("COLORIZE_BATCH_ABORT_AFTER", "3")
            .spawn()
            .unwrap(),
    );
    assert_ne!(code, Some(0), "{stderr}");
    let first = files(&out);
    assert!(first.len() >= 3 && first.len() < keys.len(), "{first:?}");
    let r = report(&out, 0, 1);
    assert_eq!(r["state"], "running", "the periodic report is left");
    assert!(r["done"].as_u64().unwrap() >= 2, "{r}");
    let mtimes: Vec<SystemTime> = first
        .iter()
        .map(|f| std::fs::metadata(out.join(f)).unwrap().modified().unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(20));

    let (code, stderr) = finish(batch_process(&input, &out, &[]).spawn().unwrap());
    assert_eq!(code, Some(0), "{stderr}");
    let r = report(&out, 0, 1);
    assert_eq!(r["state"], "finished");
    assert_eq!(r["skipped"].as_u64().unwrap() as usize, first.len(), "{r}");
    assert_eq!(
        r["done"].as_u64().unwrap() as usize,
        keys.len() - first.len()
    );
    assert_eq!(files(&out), keys.iter().cloned().collect());
    for (f, t) in first.iter().zip(&mtimes) {
        let now = std::fs::metadata(out.join(f)).unwrap().modified().unwrap();
        assert_eq!(now, *t, "{f} was written again");
    }
}

#[test]
fn a_corrupt_image_is_reported_and_the_shard_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    let keys = photos(&input);
    std::fs::write(
        input.join("box-2/broken.jpg"),
        b"\xFF\xD8\xFF\xE0 not a jpeg",
    )
    .unwrap();
    let (code, stderr) = finish(
        batch_process(&input, &out, &["--format", "png"])
            .spawn()
            .unwrap(),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("error: box-2/broken.jpg: ") && l.contains("decode")),
        "{stderr}"
    );
    let r = report(&out, 0, 1);
    assert_eq!(r["failed"], 1);
    assert_eq!(r["done"].as_u64().unwrap() as usize, keys.len());
    assert_eq!(r["failures"][0]["key"], "box-2/broken.jpg");
    assert_eq!(files(&out).len(), keys.len());
    let summary = colorize()
        .args(["batch", "--summary", "--output"])
        .arg(&out)
        .assert()
        .code(1);
    let stdout = String::from_utf8_lossy(&summary.get_output().stdout).to_string();
    assert!(stdout.contains("box-2/broken.jpg"), "{stdout}");
}

#[test]
fn a_manifest_key_that_is_missing_fails_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    let keys = photos(&input);
    let manifest = tmp.path().join("manifest.txt");
    std::fs::write(&manifest, format!("{}\nbox-9/missing.png\n", keys[0])).unwrap();
    let (code, stderr) = finish(
        batch_process(&input, &out, &["--manifest", manifest.to_str().unwrap()])
            .spawn()
            .unwrap(),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("error: box-9/missing.png: not found in the input"),
        "{stderr}"
    );
    assert_eq!(files(&out), BTreeSet::from([keys[0].clone()]));
}

#[test]
fn bad_input_is_refused_before_any_work_on_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    photos(&input);
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(empty.join("sub")).unwrap();
    std::fs::write(empty.join("sub/readme.txt"), b"no images").unwrap();
    let nested = input.join("colour");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--shard-index".into(),
                "3".into(),
                "--shard-count".into(),
                "3".into(),
            ],
            "shard index 3 is outside the shard count 3",
        ),
        (
            vec!["--output".into(), nested.display().to_string()],
            "is inside input",
        ),
        (
            vec!["--input".into(), empty.display().to_string()],
            "no images to colourise",
        ),
        (
            vec![
                "--input".into(),
                tmp.path().join("nope").display().to_string(),
            ],
            "no such folder",
        ),
        (
            vec!["--input".into(), "ftp://example.invalid/x".into()],
            "unsupported",
        ),
    ];
    for (args, message) in cases {
        let mut cmd = colorize();
        cmd.args(["batch", "--render-size", "64"]);
        let input_arg = args
            .chunks(2)
            .find(|p| p[0] == "--input")
            .map_or(input.display().to_string(), |p| p[1].clone());
        let output_arg = args
            .chunks(2)
            .find(|p| p[0] == "--output")
            .map_or(out.display().to_string(), |p| p[1].clone());
        cmd.args(["--input", &input_arg, "--output", &output_arg]);
        for pair in args.chunks(2) {
            if pair[0] != "--input" && pair[0] != "--output" {
                cmd.args(pair);
            }
        }
        let a = cmd
            .env("COLORIZE_SHARD_COUNT", "")
            .env_remove("JOB_COMPLETION_INDEX")
            .assert()
            .code(3);
        let stderr = String::from_utf8_lossy(&a.get_output().stderr).to_string();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(message),
            "{message}: {stderr}"
        );
        assert!(!nested.exists(), "nothing written inside the input");
        assert!(
            files(&out).is_empty(),
            "{message}: nothing colourised: {:?}",
            files(&out)
        );
    }
}

#[test]
fn an_unreachable_store_is_one_clear_error_within_seconds() {
    let tmp = tempfile::tempdir().unwrap();
    // A closed port on the loopback: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let a = colorize()
        .args(["batch", "--input", "s3://scans/in", "--output"])
        .arg(tmp.path().join("out"))
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .assert()
        .code(3);
    let stderr = String::from_utf8_lossy(&a.get_output().stderr).to_string();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: s3://scans/in: cannot list the input"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

/// A moto S3 server on a free loopback port, stopped on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python that has moto's server: `$COLORIZE_TEST_MOTO` (set by .ci/run) or `python3`.
fn start_moto() -> Option<Moto> {
    let python = std::env::var("COLORIZE_TEST_MOTO").unwrap_or_else(|_| "python3".into());
    let has = Command::new(&python)
        .args(["-c", "import moto.server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has {
        assert!(
            std::env::var_os("CI").is_none(),
            "moto's S3 server is missing under CI ({python} -c 'import moto.server' failed; .ci/run installs it)"
        );
        eprintln!(
            "skipped: moto's S3 server is not installed (pip install 'moto[server]'; or set COLORIZE_TEST_MOTO to a python that has it)"
        );
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&python)
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto did not start on {endpoint}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(Moto { child, endpoint })
}

fn s3_env(c: &mut Command, endpoint: &str) {
    c.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1");
}

#[test]
fn two_shards_over_a_loopback_s3_server() {
    let Some(moto) = start_moto() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("in");
    let keys = photos(&local);
    // Create the bucket and upload the folder, through the S3 API (a tiny boto3 script: moto
    // brings boto3).
    let python = std::env::var("COLORIZE_TEST_MOTO").unwrap_or_else(|_| "python3".into());
    let upload = format!(
        "import boto3, os\n\
         s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
         s3.create_bucket(Bucket='scans')\n\
         root = {:?}\n\
         for d, _, fs in os.walk(root):\n    for f in fs:\n        p = os.path.join(d, f)\n        s3.upload_file(p, 'scans', 'in/' + os.path.relpath(p, root))\n",
        moto.endpoint,
        local.display().to_string()
    );
    let status = Command::new(&python)
        .args(["-c", &upload])
        .status()
        .unwrap();
    assert!(status.success(), "uploading to moto failed");

    let children: Vec<Child> = (0..2)
        .map(|i| {
            let mut c = batch_process("s3://scans/in", "s3://scans/out", &["--shard-count", "2"]);
            c.env("AWS_BATCH_JOB_ARRAY_INDEX", i.to_string());
            s3_env(&mut c, &moto.endpoint);
            c.spawn().unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let (code, stderr) = finish(child);
        assert_eq!(code, Some(0), "shard {i}: {stderr}");
    }
    // Every output exists (listed back through the S3 API), with a content type.
    let check = format!(
        "import boto3, json\n\
         s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
         keys = [o['Key'] for o in s3.list_objects_v2(Bucket='scans', Prefix='out/')['Contents']]\n\
         types = {{k: s3.head_object(Bucket='scans', Key=k)['ContentType'] for k in keys if not k.startswith('out/_colorize/')}}\n\
         print(json.dumps(types))\n",
        moto.endpoint
    );
    let out = Command::new(&python).args(["-c", &check]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let types: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&out.stdout).unwrap();
    let got: BTreeSet<String> = types
        .keys()
        .map(|k| k.strip_prefix("out/").unwrap().to_string())
        .collect();
    assert_eq!(got, keys.iter().cloned().collect());
    assert!(
        types.iter().all(|(k, t)| t
            == if k.ends_with(".png") {
                "image/png"
            } else {
                "image/jpeg"
            }),
        "{types:?}"
    );

    let mut c = Command::new(assert_cmd::cargo::cargo_bin("colorize"));
    c.args(["batch", "--summary", "--json", "--output", "s3://scans/out"]);
    s3_env(&mut c, &moto.endpoint);
    let out = c.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["reports"], 2);
    assert_eq!(s["done"].as_u64().unwrap() as usize, keys.len(), "{s}");
    assert_eq!(s["failed"], 0);
    assert_eq!(s["input_images"].as_u64().unwrap() as usize, keys.len());
}
