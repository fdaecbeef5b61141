//! The image store on its own: retention by count and age, atomic assembly, crash leftovers.

use std::time::Duration;

use colorize_server::store::{ImageMeta, Variant};
use colorize_server::{ImageStore, Retention};

fn meta(created_unix: u64) -> ImageMeta {
    ImageMeta {
        original_type: "image/png".into(),
        colorized_type: "image/png".into(),
        width: 1,
        height: 1,
        model: "default".into(),
        render_size: 32,
        created_unix,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn retention_keeps_the_newest_by_count() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        max_images: Some(2),
        max_age: None,
    };
    let store = ImageStore::open(dir.path(), retention).unwrap();
    let t = now();
    let ids: Vec<_> = (0..3)
        .map(|i| store.insert(b"orig", b"col", &meta(t - 10 + i)).unwrap())
        .collect();
    assert_eq!(store.enforce_retention(), 1);
    assert!(store.read(&ids[0], Variant::Original).is_none());
    assert_eq!(store.read(&ids[1], Variant::Original).unwrap().0, b"orig");
    assert_eq!(store.read(&ids[2], Variant::Colorized).unwrap().0, b"col");
    assert_eq!(store.list().len(), 2);
}

#[test]
fn retention_removes_images_older_than_the_age() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        max_images: None,
        max_age: Some(Duration::from_secs(3600)),
    };
    let store = ImageStore::open(dir.path(), retention).unwrap();
    let old = store.insert(b"o", b"c", &meta(now() - 7200)).unwrap();
    let fresh = store.insert(b"o", b"c", &meta(now())).unwrap();
    assert_eq!(store.enforce_retention(), 1);
    assert!(store.meta(&old).is_none());
    assert!(store.meta(&fresh).is_some());
}

#[test]
fn leftovers_of_a_crash_are_removed_at_start_and_never_listed() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(images.join(".tmp-0123456789abcdef0123456789abcdef")).unwrap();
    std::fs::write(
        images.join(".tmp-0123456789abcdef0123456789abcdef/original"),
        b"half",
    )
    .unwrap();
    std::fs::create_dir_all(images.join(".del-0123456789abcdef0123456789abcdee")).unwrap();
    let store = ImageStore::open(dir.path(), Retention::default()).unwrap();
    assert!(store.list().is_empty());
    let left: Vec<_> = std::fs::read_dir(&images).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    // Deleting twice: the second finds nothing.
    let id = store.insert(b"o", b"c", &meta(now())).unwrap();
    assert!(store.delete(&id));
    assert!(!store.delete(&id));
}
