//! Finding photos on disk: which file names count as images, and the recursive, sorted walk of a
//! folder tree that `colorize image`, `colorize eval` and the trainer share.

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

/// The image files under `dir` (recursive, following symbolic links), sorted by path so that runs
/// are reproducible. Entries that cannot be read are left out; an empty or missing folder gives an
/// empty list.
pub fn list_images(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && is_image_path(e.path()))
        .map(walkdir::DirEntry::into_path)
        .collect();
    files.sort();
    files
}

/// The image files under `dir`, as [`list_images`], but at least one.
///
/// # Errors
/// [`CoreError::NotAFolder`] if `dir` is not a folder (or does not exist),
/// [`CoreError::NoImages`] if it holds no image file.
pub fn find_images(dir: &Path) -> Result<Vec<PathBuf>, CoreError> {
    if !dir.is_dir() {
        return Err(CoreError::NotAFolder {
            path: dir.to_path_buf(),
        });
    }
    let files = list_images(dir);
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
        assert!(list_images(&missing).is_empty());

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
