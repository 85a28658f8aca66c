//! Replays the checked-in fuzz corpus (`fuzz/seeds/<target>/`) through the fuzz targets' own checks on
//! the stable toolchain, deterministically (files in name order), so every `cargo test` re-runs what
//! libFuzzer found interesting. Long runs, which grow the corpus, need nightly: see `fuzz/README.md`.

use chorus_protocol::Codec;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The checks every fuzz target runs (the fuzz crate's library, compiled here as a module).
#[path = "../fuzz/src/lib.rs"]
mod checks;

/// What a fuzz target does with one input: panics on a finding.
type Check = fn(&[u8]);

/// Each fuzz target (a file in `fuzz/fuzz_targets/`) and the check it applies to one input.
const TARGETS: [(&str, Check); 7] = [
    ("decode_client_msgpack", |data| checks::client_frame(Codec::MsgPack, data)),
    ("decode_client_json", |data| checks::client_frame(Codec::Json, data)),
    ("decode_server_msgpack", |data| checks::server_frame(Codec::MsgPack, data)),
    ("decode_server_json", |data| checks::server_frame(Codec::Json, data)),
    ("split_frame", checks::stream),
    ("payload_msgpack", |data| checks::payload(Codec::MsgPack, data)),
    ("payload_json", |data| checks::payload(Codec::Json, data)),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    files.sort();
    files
}

#[test]
fn the_replay_covers_every_fuzz_target() {
    let targets: BTreeSet<String> = files(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| p.file_stem()?.to_str().map(str::to_owned))
        .collect();
    let replayed: BTreeSet<String> = TARGETS.iter().map(|(name, _)| name.to_string()).collect();
    assert_eq!(targets, replayed, "every fuzz target has a row in TARGETS");
}

#[test]
fn every_fuzz_target_passes_its_checked_in_corpus() {
    for (target, check) in TARGETS {
        let inputs = files(&fuzz_dir().join("seeds").join(target));
        assert!(inputs.len() >= 5, "{target}: the corpus has only {} inputs", inputs.len());
        for input in inputs {
            let data = std::fs::read(&input).expect("read corpus file");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target} panicked on {}", input.display());
        }
    }
}
