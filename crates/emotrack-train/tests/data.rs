//! The FER-2013 folder loader on the real dataset and on broken copies of it.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "../../emotrack/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

use emotrack::Emotion;
use emotrack_train::{DataError, load_split};

/// Images per class in FER-2013 PublicTest (our `val/`), in `Emotion::ALL` order.
const VAL_COUNTS: [usize; 7] = [467, 56, 496, 895, 607, 653, 415];
/// Images per class in FER-2013 Training (our `train/`).
const TRAIN_COUNTS: [usize; 7] = [3995, 436, 4097, 7215, 4965, 4830, 3171];

fn fer() -> Option<PathBuf> {
    common::fer2013_dir()
}

/// Copies the first `n` images of each class of the real val split into `dst/<class>/`.
fn copy_subset(fer: &Path, dst: &Path, n: usize, classes: &[Emotion]) {
    for e in classes {
        let src = fer.join("val").join(e.name());
        let out = dst.join(e.name());
        std::fs::create_dir_all(&out).unwrap();
        let mut files: Vec<_> = std::fs::read_dir(&src)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files.iter().take(n) {
            std::fs::copy(f, out.join(f.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn val_split_loads_every_image_with_its_class() {
    let Some(fer) = fer() else { return };
    let val = load_split(&fer.join("val")).unwrap();
    assert_eq!(val.class_counts(), VAL_COUNTS);
    assert!(val.skipped.is_empty());
    assert_eq!(val.image(0).len(), 48 * 48);
    // Not a constant image.
    let px = val.image(0);
    assert!(px.iter().max() > px.iter().min());
}

#[test]
#[ignore = "decodes all 28,709 training images (~10 s in debug)"]
fn train_split_loads_every_image_with_its_class() {
    let Some(fer) = fer() else { return };
    let train = load_split(&fer.join("train")).unwrap();
    assert_eq!(train.class_counts(), TRAIN_COUNTS);
    assert!(train.skipped.is_empty());
}

#[test]
fn stratified_subset_keeps_every_class() {
    let Some(fer) = fer() else { return };
    let val = load_split(&fer.join("val")).unwrap();
    let sub = val.stratified_subset(300);
    assert!((280..=310).contains(&sub.len()), "{}", sub.len());
    assert!(sub.class_counts().iter().all(|&c| c > 0));
}

#[test]
fn missing_folder_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_split(&dir.path().join("nope")).unwrap_err();
    assert!(matches!(err, DataError::MissingFolder(_)), "{err}");
    assert!(err.to_string().contains("nope"));
}

#[test]
fn missing_class_folder_is_named() {
    let Some(fer) = fer() else { return };
    let dir = tempfile::tempdir().unwrap();
    let without_disgust: Vec<Emotion> = Emotion::ALL
        .into_iter()
        .filter(|&e| e != Emotion::Disgust)
        .collect();
    copy_subset(&fer, dir.path(), 2, &without_disgust);
    let err = load_split(dir.path()).unwrap_err();
    assert!(
        matches!(&err, DataError::MissingClass { class, .. } if class == "disgust"),
        "{err}"
    );
    assert!(err.to_string().contains("disgust"));
}

#[test]
fn unknown_class_folder_is_named() {
    let Some(fer) = fer() else { return };
    let dir = tempfile::tempdir().unwrap();
    copy_subset(&fer, dir.path(), 2, &Emotion::ALL);
    std::fs::create_dir(dir.path().join("contempt")).unwrap();
    let err = load_split(dir.path()).unwrap_err();
    assert!(
        matches!(&err, DataError::UnknownClass { name, .. } if name == "contempt"),
        "{err}"
    );
}

#[test]
fn empty_split_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for e in Emotion::ALL {
        std::fs::create_dir(dir.path().join(e.name())).unwrap();
    }
    let err = load_split(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::EmptySplit(_)), "{err}");
}

#[test]
fn unreadable_image_is_skipped_and_counted() {
    let Some(fer) = fer() else { return };
    let dir = tempfile::tempdir().unwrap();
    copy_subset(&fer, dir.path(), 3, &Emotion::ALL);
    let bad = dir.path().join("happy").join("corrupt.jpg");
    std::fs::write(&bad, b"\xFF\xD8\xFF\xE0 this is not a JPEG").unwrap();
    let data = load_split(dir.path()).unwrap();
    assert_eq!(data.len(), 21);
    assert_eq!(data.skipped.len(), 1);
    assert_eq!(data.skipped[0].path, bad);
    assert_eq!(data.class_counts(), [3; 7]);
}
