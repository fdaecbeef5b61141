//! The image store on its own: retention by count, age and bytes, atomic assembly, crash
//! leftovers.

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
        max_bytes: None,
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
        max_bytes: None,
    };
    let store = ImageStore::open(dir.path(), retention).unwrap();
    let old = store.insert(b"o", b"c", &meta(now() - 7200)).unwrap();
    let fresh = store.insert(b"o", b"c", &meta(now())).unwrap();
    assert_eq!(store.enforce_retention(), 1);
    assert!(store.meta(&old).is_none());
    assert!(store.meta(&fresh).is_some());
}

#[test]
fn retention_keeps_the_newest_within_the_byte_budget() {
    let dir = tempfile::tempdir().unwrap();
    let original = vec![7u8; 10_000];
    let colorized = vec![9u8; 20_000];
    let probe = ImageStore::open(
        dir.path(),
        Retention {
            max_images: None,
            max_age: None,
            max_bytes: None,
        },
    )
    .unwrap();
    let one = probe.insert(&original, &colorized, &meta(now())).unwrap();
    let per_image = probe.image_bytes(&one);
    assert!(per_image > 30_000 && per_image < 31_000, "{per_image}");
    assert!(probe.delete(&one));

    // Room for two and a half images: the two newest stay.
    let retention = Retention {
        max_images: None,
        max_age: None,
        max_bytes: Some(per_image * 5 / 2),
    };
    let store = ImageStore::open(dir.path(), retention).unwrap();
    let t = now();
    let ids: Vec<_> = (0..5)
        .map(|i| {
            store
                .insert(&original, &colorized, &meta(t - 10 + i))
                .unwrap()
        })
        .collect();
    assert_eq!(store.enforce_retention(), 3);
    let kept: Vec<_> = store.list().into_iter().map(|(id, _)| id).collect();
    assert_eq!(kept, ids[3..]);
    let total: u64 = kept.iter().map(|id| store.image_bytes(id)).sum();
    assert!(total <= per_image * 5 / 2, "{total}");
    // Within the budget nothing more goes.
    assert_eq!(store.enforce_retention(), 0);
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
