//! Writes the fuzzers' seeds into `<dir>/<target>/seed-<n>` (scripts/fuzz.sh).

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .ok_or_else(|| std::io::Error::other("usage: fuzz-seeds <corpus dir>"))?;
    let mut written = 0;
    for (n, (target, data)) in boxoffice_fuzzing::seeds().into_iter().enumerate() {
        let folder = dir.join(target);
        std::fs::create_dir_all(&folder)?;
        std::fs::write(folder.join(format!("seed-{n}")), data)?;
        written += 1;
    }
    eprintln!("[fuzz] {written} seeds in {}", dir.display());
    Ok(())
}
