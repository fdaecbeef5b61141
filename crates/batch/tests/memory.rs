//! The pipeline over object_store's in-memory store: shards cover every key once, reruns skip
//! what is done, bad images and missing keys fail alone, refusals come before any work.

use std::sync::Arc;
use std::time::Duration;

use colorize_batch::listing::parse_manifest;
use colorize_batch::pipeline::{put_with_threshold, runtime};
use colorize_batch::{BatchConfig, BatchError, FormatChoice, Location, Shard, summarize};
use colorize_core::OutputFormat;
use colorize_core::io::DecodeLimits;
use colorize_core::lab::SampleDepth;
use image::DynamicImage;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::shared_data;

/// Real photos (BSDS500 validation PNGs) under `in/`, in two folders, plus a corrupt JPEG.
fn store_with_photos(n: usize) -> (Arc<dyn ObjectStore>, Vec<String>) {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let rt = runtime().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(shared_data().join("val/bsds500"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut keys = Vec::new();
    for (i, f) in files.iter().take(n).enumerate() {
        let key = format!(
            "{}/{}",
            if i % 2 == 0 { "a" } else { "b/c" },
            f.file_name().unwrap().to_str().unwrap()
        );
        let bytes = std::fs::read(f).unwrap();
        rt.block_on(store.put(
            &StorePath::from(format!("in/{key}")),
            PutPayload::from(bytes),
        ))
        .unwrap();
        keys.push(key);
    }
    rt.block_on(store.put(
        &StorePath::from("in/a/broken.jpg"),
        PutPayload::from_static(b"\xFF\xD8\xFF\xE0 not really a jpeg"),
    ))
    .unwrap();
    rt.block_on(store.put(
        &StorePath::from("in/notes.txt"),
        PutPayload::from_static(b"not an image"),
    ))
    .unwrap();
    keys.sort();
    (store, keys)
}

fn config(store: &Arc<dyn ObjectStore>, shard: Shard) -> BatchConfig {
    BatchConfig {
        input: Location::from_store(store.clone(), "memory://", "in"),
        output: Location::from_store(store.clone(), "memory://", "out"),
        manifest: None,
        shard,
        format: FormatChoice::Fixed(OutputFormat::Jpeg),
        limits: DecodeLimits::default(),
        concurrency: 2,
        report_every: 1,
        report_interval: Duration::from_secs(30),
        model: "stand-in".into(),
        render_size: 64,
        version: "test".into(),
        abort_after: None,
    }
}

/// The network's stand-in: the photo as 8-bit RGB.
fn stand_in(image: &DynamicImage, _: SampleDepth) -> Result<DynamicImage, String> {
    Ok(DynamicImage::ImageRgb8(image.to_rgb8()))
}

fn outputs(store: &Arc<dyn ObjectStore>) -> Vec<String> {
    let rt = runtime().unwrap();
    let out = Location::from_store(store.clone(), "memory://", "out");
    let mut keys: Vec<String> = rt
        .block_on(async {
            use futures_util::StreamExt;
            store
                .list(Some(&StorePath::from("out")))
                .map(|m| m.unwrap().location)
                .collect::<Vec<_>>()
                .await
        })
        .iter()
        .filter_map(|p| out.relative(p))
        .filter(|k| !k.starts_with("_colorize/"))
        .collect();
    keys.sort();
    keys
}

#[test]
fn three_shards_cover_every_image_once_and_a_corrupt_one_fails_alone() {
    let (store, keys) = store_with_photos(9);
    let mut done = 0;
    let mut failures = Vec::new();
    for i in 0..3 {
        let report = colorize_batch::run(
            &config(&store, Shard::new(i, 3).unwrap()),
            stand_in,
            |_, _| {},
        )
        .unwrap();
        assert!(report.finished());
        assert_eq!(report.input_images, 10, "9 photos and the corrupt one");
        assert_eq!(report.done + report.failed, report.shard_images);
        done += report.done;
        failures.extend(report.failures);
    }
    assert_eq!(done, 9);
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].key, "a/broken.jpg");
    assert!(
        failures[0].reason.contains("decode"),
        "{}",
        failures[0].reason
    );
    let expected: Vec<String> = keys.iter().map(|k| k.replace(".png", ".jpg")).collect();
    assert_eq!(outputs(&store), expected);

    let rt = runtime().unwrap();
    let output = Location::from_store(store.clone(), "memory://", "out");
    let summary = rt.block_on(summarize(&output, None)).unwrap();
    assert_eq!((summary.reports, summary.done, summary.failed), (3, 9, 1));
    assert!(summary.missing.is_empty() && summary.unfinished.is_empty());
    assert!(!summary.ok(), "a failure makes the summary fail");

    // A rerun of one shard skips its outputs and retries only the failure.
    let report = colorize_batch::run(
        &config(&store, Shard::new(0, 3).unwrap()),
        stand_in,
        |_, _| {},
    )
    .unwrap();
    assert_eq!(report.done, 0);
    assert_eq!(report.skipped + report.failed, report.shard_images);
}

#[test]
fn a_manifest_key_that_does_not_exist_fails_alone() {
    let (store, keys) = store_with_photos(3);
    let mut c = config(&store, Shard::ALL);
    let manifest = format!(
        "# two photos and a missing one\n{}\n\nmemory:///in/{}\nmissing/photo.png\n",
        keys[0], keys[1]
    );
    c.manifest = Some(parse_manifest(&manifest, &c.input));
    let report = colorize_batch::run(&c, stand_in, |_, _| {}).unwrap();
    assert_eq!((report.done, report.failed), (2, 1), "{report:?}");
    assert_eq!(report.failures[0].key, "missing/photo.png");
    assert!(report.failures[0].reason.contains("not found"));
}

#[test]
fn refusals_come_before_any_work() {
    let (store, _) = store_with_photos(1);
    let mut c = config(&store, Shard::ALL);
    c.output = Location::from_store(store.clone(), "memory://", "in/colour");
    let calls = std::cell::Cell::new(0);
    let stand_in = |i: &DynamicImage, d| {
        calls.set(calls.get() + 1);
        stand_in(i, d)
    };
    assert!(matches!(
        colorize_batch::run(&c, stand_in, |_, _| {}),
        Err(BatchError::Overlap { .. })
    ));
    let mut c = config(&store, Shard::ALL);
    c.input = Location::from_store(store.clone(), "memory://", "nothing-here");
    let e = colorize_batch::run(&c, stand_in, |_, _| {}).unwrap_err();
    assert!(matches!(e, BatchError::NoImages { .. }), "{e}");
    assert_eq!(calls.get(), 0);
}

#[test]
fn large_outputs_go_up_as_a_completed_multipart_upload() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let out = Location::from_store(store.clone(), "memory://", "out");
    let rt = runtime().unwrap();
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    let path = out.path("big.png");
    rt.block_on(put_with_threshold(
        &out,
        &path,
        OutputFormat::Png,
        bytes.clone(),
        1024,
    ))
    .unwrap();
    let got = rt
        .block_on(async { store.get(&path).await.unwrap().bytes().await })
        .unwrap();
    assert_eq!(got.as_ref(), bytes.as_slice());
}
