//! The fuzzers' seeds and every input kept in `fuzz/regressions/<target>/`
//! (each one a crash the fuzzers found, kept once it was fixed), run
//! through the targets in the test command, with no fuzzer needed.

use std::path::PathBuf;

use boxoffice_fuzzing::{TARGETS, run, seeds};

#[test]
fn every_seed_runs_clean() {
    let seeds = seeds();
    for target in TARGETS {
        assert!(
            seeds.iter().any(|(t, _)| *t == target),
            "no seed for {target}"
        );
    }
    for (target, data) in &seeds {
        run(target, data);
    }
}

#[test]
fn every_kept_regression_runs_clean() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let mut replayed = 0;
    for target in TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let data = std::fs::read(&path).expect("a regression input");
            eprintln!("replaying {}", path.display());
            run(target, &data);
            replayed += 1;
        }
    }
    eprintln!("{replayed} regressions replayed");
}

/// The seeds' bytes cut short, grown and flipped: a quick, deterministic
/// sweep of the neighbourhood the fuzzers start from.
#[test]
fn seeds_cut_grown_and_flipped_run_clean() {
    for (target, data) in seeds() {
        for cut in 0..data.len() {
            run(target, &data[..cut]);
        }
        for i in 0..data.len() {
            for bit in 0..8 {
                let mut flipped = data.clone();
                flipped[i] ^= 1 << bit;
                run(target, &flipped);
            }
        }
        let mut grown = data.clone();
        grown.extend_from_slice(&data);
        run(target, &grown);
    }
}
