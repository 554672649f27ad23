//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through each target on stable: every input the
//! fuzzers kept, and every crash they found once (saved there when fixed), must pass.

use std::path::PathBuf;

#[test]
fn every_corpus_input_passes_its_target() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (name, target) in noex_fuzz::TARGETS {
        let folder = root.join(name);
        let inputs: Vec<_> = std::fs::read_dir(&folder)
            .unwrap_or_else(|error| panic!("no corpus for target {name} at {}: {error}", folder.display()))
            .map(|entry| entry.expect("readable corpus folder").path())
            .collect();
        assert!(!inputs.is_empty(), "the corpus of {name} is empty");
        for input in inputs {
            let data = std::fs::read(&input).expect("readable corpus file");
            target(&data);
        }
    }
}
