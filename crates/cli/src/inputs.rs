//! Turning the `<INPUT>...` arguments of `colorize image` into (input file, output file) jobs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use colorize_core::OutputFormat;
use colorize_core::files::list_images;

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
/// Returns the jobs and the arguments that gave nothing (missing files, empty patterns, two inputs
/// mapped to one output name, an output that would replace its own input).
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
            let found: Vec<(PathBuf, PathBuf)> = list_images(arg)
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
    let mut seen_inputs = HashSet::new();
    let mut seen_outputs = HashSet::new();
    let mut jobs = Vec::new();
    for (input, rel) in files {
        let canonical_in = input.canonicalize().unwrap_or_else(|_| input.clone());
        if !seen_inputs.insert(canonical_in.clone()) {
            continue; // the same file named twice
        }
        let (output, format) = output_for(&rel, out, format);
        let canonical_out = output
            .parent()
            .and_then(|p| p.canonicalize().ok())
            .map(|p| p.join(output.file_name().unwrap_or_default()))
            .unwrap_or_else(|| output.clone());
        if canonical_out == canonical_in {
            bad.push(BadInput {
                input,
                message: format!(
                    "output {} would replace the input; choose another --out",
                    output.display()
                ),
            });
            continue;
        }
        if !seen_outputs.insert(canonical_out) {
            bad.push(BadInput {
                input,
                message: format!("another input already writes {}", output.display()),
            });
            continue;
        }
        jobs.push(Job {
            input,
            output,
            format,
        });
    }
    (jobs, bad)
}
