//! Turning the `<INPUT>...` arguments of `colorize image` into (input file, output file) jobs.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use colorize_core::OutputFormat;
use colorize_core::files::walk_images;

/// One photo to colourise and where its result goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The input file.
    pub input: PathBuf,
    /// The output file.
    pub output: PathBuf,
    /// The output format.
    pub format: OutputFormat,
}

/// An input argument that named nothing usable, reported like a failed image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadInput {
    /// The argument or file.
    pub input: PathBuf,
    /// Why.
    pub message: String,
}

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Output path for `input` whose name relative to its root is `rel`.
fn output_for(rel: &Path, out: &Path, format: Option<OutputFormat>) -> (PathBuf, OutputFormat) {
    let target = out.join(rel);
    match format {
        Some(f) => (target.with_extension(f.extension()), f),
        None => match OutputFormat::from_path(rel) {
            Ok(f) => (target, f),
            // An input whose extension we cannot write (e.g. `.jfif`): keep the name, add `.png`.
            Err(_) => {
                let mut name = target.into_os_string();
                name.push(".png");
                (PathBuf::from(name), OutputFormat::Png)
            }
        },
    }
}

/// Expands the arguments: a file is taken as it is (output keeps its name); a folder is walked
/// recursively for image files (outputs mirror its sub-folders); anything else with `*`, `?` or
/// `[` is a glob pattern. Outputs go under `out`, in `format` when given.
///
/// The `out` folder (and anything under it) is never walked as an input, so that
/// `colorize image photos --out photos/colorized` run twice does not colourise its own outputs.
///
/// Returns the jobs and what gave nothing: missing files, empty patterns, folders or entries that
/// could not be read (a symbolic-link loop, no permission), two inputs mapped to one output name
/// (the later one is reported, naming the earlier), an output that would replace any input (its
/// own or another: `x.jpg` with `--format png` next to an input `x.png`).
pub fn expand(
    args: &[PathBuf],
    out: &Path,
    format: Option<OutputFormat>,
) -> (Vec<Job>, Vec<BadInput>) {
    let mut files: Vec<(PathBuf, PathBuf)> = Vec::new(); // (input, relative output name)
    let mut bad = Vec::new();
    for arg in args {
        let s = arg.to_string_lossy();
        if arg.is_file() {
            let name = arg
                .file_name()
                .map(PathBuf::from)
                .unwrap_or_else(|| arg.clone());
            files.push((arg.clone(), name));
        } else if arg.is_dir() {
            // Sorted by input path, so outputs mirror the folder in a stable order.
            let walk = walk_images(arg, &[out.to_path_buf()]);
            for e in walk.errors {
                let (input, message) = match &e {
                    colorize_core::CoreError::Walk { path, message } => {
                        (path.clone(), message.clone())
                    }
                    other => (arg.clone(), other.to_string()),
                };
                bad.push(BadInput { input, message });
            }
            let found: Vec<(PathBuf, PathBuf)> = walk
                .files
                .into_iter()
                .map(|p| {
                    let rel = p.strip_prefix(arg).unwrap_or(&p).to_path_buf();
                    (p, rel)
                })
                .collect();
            if found.is_empty() {
                bad.push(BadInput {
                    input: arg.clone(),
                    message: "folder holds no image files".into(),
                });
            }
            files.extend(found);
        } else if has_glob_chars(&s) {
            let matched: Vec<PathBuf> = match glob::glob(&s) {
                Ok(paths) => paths
                    .filter_map(Result::ok)
                    .filter(|p| p.is_file())
                    .collect(),
                Err(e) => {
                    bad.push(BadInput {
                        input: arg.clone(),
                        message: format!("bad glob pattern: {e}"),
                    });
                    continue;
                }
            };
            if matched.is_empty() {
                bad.push(BadInput {
                    input: arg.clone(),
                    message: "pattern matches no files".into(),
                });
            }
            for p in matched {
                let name = p
                    .file_name()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| p.clone());
                files.push((p, name));
            }
        } else {
            bad.push(BadInput {
                input: arg.clone(),
                message: "no such file or folder".into(),
            });
        }
    }
    // Every input, by canonical path, before any output is placed: an output may not land on any
    // of them, not only on its own.
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let all_inputs: HashMap<PathBuf, PathBuf> = files
        .iter()
        .map(|(input, _)| (canonical(input), input.clone()))
        .collect();
    let mut seen_inputs = HashSet::new();
    let mut seen_outputs: HashMap<PathBuf, PathBuf> = HashMap::new();
    let mut jobs = Vec::new();
    for (input, rel) in files {
        let canonical_in = canonical(&input);
        if !seen_inputs.insert(canonical_in.clone()) {
            continue; // the same file named twice
        }
        let (output, format) = output_for(&rel, out, format);
        let canonical_out = output
            .parent()
            .and_then(|p| p.canonicalize().ok())
            .map(|p| p.join(output.file_name().unwrap_or_default()))
            .unwrap_or_else(|| output.clone());
        if let Some(other) = all_inputs.get(&canonical_out) {
            let message = if *other == input {
                format!(
                    "output {} would replace the input; choose another --out",
                    output.display()
                )
            } else {
                format!(
                    "output {} would replace another input, {}; choose another --out or --format",
                    output.display(),
                    other.display()
                )
            };
            bad.push(BadInput { input, message });
            continue;
        }
        if let Some(first) = seen_outputs.get(&canonical_out) {
            bad.push(BadInput {
                message: format!(
                    "{} also writes {}; rename one of them or colourise them separately",
                    first.display(),
                    output.display()
                ),
                input,
            });
            continue;
        }
        seen_outputs.insert(canonical_out, input.clone());
        jobs.push(Job {
            input,
            output,
            format,
        });
    }
    (jobs, bad)
}
