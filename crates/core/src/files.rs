//! Finding photos on disk: which file names count as images, and the recursive, sorted walk of a
//! folder tree that `colorize image`, `colorize eval` and the trainer share. Entries that cannot
//! be read are reported, never skipped in silence.

use std::path::{Path, PathBuf};

use crate::error::CoreError;

/// Extensions taken as images when walking a folder (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp", "gif"];

/// Whether `path` has one of the [`IMAGE_EXTENSIONS`] (case-insensitive). Only the name is looked
/// at; the file is not opened.
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// What a walk of a folder tree found: the image files, sorted by path, and each entry that
/// could not be read.
#[derive(Debug, Default)]
pub struct ImageWalk {
    /// The image files (by extension, see [`is_image_path`]), sorted by path so that runs are
    /// reproducible.
    pub files: Vec<PathBuf>,
    /// One [`CoreError::Walk`] per folder or entry that could not be read (no permission, a
    /// symbolic link that loops back to a folder above it, a dangling link, a missing root).
    pub errors: Vec<CoreError>,
}

/// Walks `dir` recursively, following symbolic links, for image files, leaving out the folders in
/// `skip` below `dir` and everything under them (compared by canonical path, so `photos/colorized` is skipped
/// whether it is reached by that name or through a link). Unreadable entries do not stop the
/// walk; they are returned in [`ImageWalk::errors`].
pub fn walk_images(dir: &Path, skip: &[PathBuf]) -> ImageWalk {
    let skip: Vec<PathBuf> = skip.iter().filter_map(|p| p.canonicalize().ok()).collect();
    let mut walk = ImageWalk::default();
    let entries = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .into_iter()
        .filter_entry(|e| {
            // `dir` itself is always walked, even when it is also the output folder.
            skip.is_empty()
                || e.depth() == 0
                || !e.file_type().is_dir()
                || e.path().canonicalize().map_or(true, |c| !skip.contains(&c))
        });
    for entry in entries {
        match entry {
            Ok(e) if e.file_type().is_file() && is_image_path(e.path()) => {
                walk.files.push(e.into_path());
            }
            Ok(_) => {}
            Err(e) => walk.errors.push(walk_error(dir, &e)),
        }
    }
    walk.files.sort();
    walk
}

fn walk_error(root: &Path, e: &walkdir::Error) -> CoreError {
    let path = e.path().unwrap_or(root).to_path_buf();
    let message = match (e.loop_ancestor(), e.io_error()) {
        (Some(ancestor), _) => format!(
            "symbolic link loops back to {}; not followed",
            ancestor.display()
        ),
        (None, Some(io)) => format!("cannot read: {io}"),
        (None, None) => e.to_string(),
    };
    CoreError::Walk { path, message }
}

/// The image files under `dir` (recursive, following symbolic links), sorted by path so that runs
/// are reproducible.
///
/// # Errors
/// The first entry that cannot be read, as [`CoreError::Walk`] (a missing `dir` included); use
/// [`walk_images`] to carry on past them.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>, CoreError> {
    let walk = walk_images(dir, &[]);
    match walk.errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(walk.files),
    }
}

/// The image files under `dir`, as [`list_images`], but at least one.
///
/// # Errors
/// [`CoreError::NotAFolder`] if `dir` is not a folder (or does not exist),
/// [`CoreError::Walk`] for the first entry under it that cannot be read (so that a training or
/// evaluation run never quietly uses part of its data), [`CoreError::NoImages`] if it holds no
/// image file.
pub fn find_images(dir: &Path) -> Result<Vec<PathBuf>, CoreError> {
    if !dir.is_dir() {
        return Err(CoreError::NotAFolder {
            path: dir.to_path_buf(),
        });
    }
    let files = list_images(dir)?;
    if files.is_empty() {
        return Err(CoreError::NoImages {
            path: dir.to_path_buf(),
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_extensions_are_case_insensitive() {
        assert!(is_image_path(Path::new("a/b.JPG")));
        assert!(is_image_path(Path::new("x.tiff")));
        assert!(is_image_path(Path::new("x.WebP")));
        assert!(!is_image_path(Path::new("notes.txt")));
        assert!(!is_image_path(Path::new("jpg")), "a name without extension");
        assert!(!is_image_path(Path::new("archive.png.zip")));
    }

    #[test]
    fn find_images_walks_sorted_and_names_the_folder_in_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        for name in [
            "b.png",
            "a.JPG",
            "sub/c.webp",
            "sub/deeper/d.tif",
            "notes.txt",
        ] {
            std::fs::write(root.join(name), b"x").unwrap();
        }
        let found = find_images(root).unwrap();
        let rel: Vec<_> = found
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
            .collect();
        let expected: Vec<PathBuf> = ["a.JPG", "b.png", "sub/c.webp", "sub/deeper/d.tif"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(rel, expected);

        let missing = root.join("missing");
        let e = find_images(&missing).unwrap_err();
        assert!(
            matches!(&e, CoreError::NotAFolder { path } if path == &missing),
            "{e}"
        );
        assert!(e.to_string().contains("missing"), "{e}");
        assert!(matches!(
            list_images(&missing),
            Err(CoreError::Walk { path, .. }) if path == missing
        ));

        let empty = root.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::write(empty.join("readme.md"), b"x").unwrap();
        let e = find_images(&empty).unwrap_err();
        assert!(
            matches!(&e, CoreError::NoImages { path } if path == &empty),
            "{e}"
        );
        assert!(e.to_string().contains("no image files"), "{e}");
    }
}

#[cfg(test)]
mod walk_tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn symlink_loops_are_reported_and_skip_folders_are_left_out() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(root.join("out/deeper")).unwrap();
        for name in ["a.png", "sub/b.png", "out/c.png", "out/deeper/d.png"] {
            std::fs::write(root.join(name), b"x").unwrap();
        }
        std::os::unix::fs::symlink(root, root.join("sub/loop")).unwrap();
        let walk = walk_images(root, &[root.join("out")]);
        let rel: Vec<_> = walk
            .files
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
            .collect();
        assert_eq!(rel, [PathBuf::from("a.png"), PathBuf::from("sub/b.png")]);
        assert_eq!(walk.errors.len(), 1, "{:?}", walk.errors);
        let msg = walk.errors[0].to_string();
        assert!(
            msg.contains("sub/loop") && msg.contains("loops back"),
            "{msg}"
        );
        // The strict forms refuse the tree instead of using part of it.
        assert!(matches!(list_images(root), Err(CoreError::Walk { .. })));
        assert!(matches!(find_images(root), Err(CoreError::Walk { .. })));
        // The root itself is walked even when it is in `skip`.
        let out = root.join("out");
        assert_eq!(walk_images(&out, std::slice::from_ref(&out)).files.len(), 2);
    }
}
