//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) and the inputs that once crashed a target
//! (`fuzz/regressions/<target>/`, kept apart so that `cargo fuzz cmin` never drops them) through each target on
//! stable: every one must pass.

use std::path::{Path, PathBuf};

#[test]
fn every_corpus_input_passes_its_target() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    for (name, target) in noex_fuzz::TARGETS {
        let inputs = files(&root.join("corpus").join(name));
        assert!(!inputs.is_empty(), "the corpus of {name} is empty");
        for input in inputs.into_iter().chain(files(&root.join("regressions").join(name))) {
            let data = std::fs::read(&input).expect("readable corpus file");
            target(&data);
        }
    }
}

/// The files in `folder`; none if it does not exist.
fn files(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
    entries.map(|entry| entry.expect("readable corpus folder").path()).collect()
}
