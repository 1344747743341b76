//! The fuzzing corpus as regression tests on stable: every input in
//! `fuzz/corpus/<target>/` (seeds, what `scripts/fuzz.sh` kept for coverage,
//! and every crash it ever found) fed to its target in `lockhub::fuzzing`.
//! None may panic.

use std::path::Path;

#[test]
fn every_corpus_input_is_handled_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut failures = Vec::new();
    let mut total = 0;
    for (name, target) in lockhub::fuzzing::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: no corpus", dir.display());
        for f in files {
            let data = std::fs::read(&f).unwrap();
            total += 1;
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                failures.push(f.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "inputs that panic: {failures:#?}");
    println!("{total} corpus inputs handled");
}

#[test]
fn every_target_has_a_fuzz_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    for (name, _) in lockhub::fuzzing::TARGETS {
        assert!(
            root.join(format!("{name}.rs")).exists(),
            "fuzz/fuzz_targets/{name}.rs"
        );
    }
}
