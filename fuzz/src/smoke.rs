//! The fuzz corpora on the stable toolchain, for the owning crates' test suites (included with
//! `#[path]`, like the target bodies): the committed files, and a short *smoke* run that feeds a
//! target random mutations of its seeds.
//!
//! The smoke run is what CI can afford: it needs no nightly and no second, instrumented build
//! of the workspace (that build alone takes longer here than CI's whole test budget allows), so
//! it is not coverage-guided. It catches the shallow crashes a change introduces; the long,
//! coverage-guided runs are `scripts/fuzz.sh`. `HOTWIRE_FUZZ_SMOKE_SECONDS` sets its length per
//! target (default 4, 0 to skip) and `HOTWIRE_FUZZ_SEED` replays a run: the sequence of inputs
//! depends on the seed alone. A panicking input is written to `fuzz/artifacts/TARGET/` (the
//! directory `scripts/fuzz.sh` uses) and named in the failure.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `fuzz/` of this checkout, from the including crate's manifest directory.
pub fn fuzz_dir(manifest_dir: &str) -> PathBuf {
    Path::new(manifest_dir).join("../fuzz")
}

/// The files of `fuzz/KIND/TARGET/`, by name (none when the directory does not exist).
pub fn files(manifest_dir: &str, kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir(manifest_dir).join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Runs every committed reproducer of `target` (`fuzz/regressions/TARGET/`) through `run`.
pub fn replay(manifest_dir: &str, target: &str, run: fn(&[u8])) {
    for (name, bytes) in files(manifest_dir, "regressions", target) {
        eprintln!("replaying fuzz/regressions/{target}/{name}");
        run(&bytes);
    }
}

/// Feeds `run` mutations of `target`'s seeds for `HOTWIRE_FUZZ_SMOKE_SECONDS`, from
/// `HOTWIRE_FUZZ_SEED` or a fresh seed (see [`smoke_with`]).
pub fn smoke(manifest_dir: &str, target: &str, run: fn(&[u8])) -> u64 {
    let seconds: u64 = env_number("HOTWIRE_FUZZ_SMOKE_SECONDS").unwrap_or(4);
    let seed = env_number("HOTWIRE_FUZZ_SEED").unwrap_or_else(|| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        now.as_nanos() as u64
    });
    smoke_with(
        manifest_dir,
        target,
        run,
        seed,
        Duration::from_secs(seconds),
    )
}

/// Feeds `run` mutations of `target`'s seeds for `length`; panics, naming the input it saved
/// and the seed that replays the run, if `run` panics. Returns the number of inputs run.
pub fn smoke_with(
    manifest_dir: &str,
    target: &str,
    run: fn(&[u8]),
    seed: u64,
    length: Duration,
) -> u64 {
    let seeds: Vec<Vec<u8>> = files(manifest_dir, "corpus", target)
        .into_iter()
        .map(|(_, bytes)| bytes)
        .collect();
    assert!(!seeds.is_empty(), "fuzz/corpus/{target} has no seeds");
    // Before the first input: an abort cannot be caught, and this line then says how to replay.
    eprintln!("{target}: smoke run HOTWIRE_FUZZ_SEED={seed} for {length:?}");
    let mut mutator = Mutator::new(seed);
    let deadline = Instant::now() + length;
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let input = mutator.mutate(&seeds);
        if catch_unwind(AssertUnwindSafe(|| run(&input))).is_err() {
            let dir = fuzz_dir(manifest_dir).join("artifacts").join(target);
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("smoke-{seed}-{runs}"));
            std::fs::write(&path, &input).unwrap();
            panic!(
                "{target}: input {runs} of smoke run HOTWIRE_FUZZ_SEED={seed} panicked; \
                 saved as {} (replay it with scripts/fuzz.sh or this test)",
                path.display()
            );
        }
        runs += 1;
    }
    eprintln!("{target}: {runs} mutated inputs, no panic");
    runs
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

/// Values at the edges of the integer widths, where length and count checks break.
const INTERESTING: [i64; 12] = [
    0,
    1,
    -1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    i32::MAX as i64,
    i32::MIN as i64,
    i64::MAX,
    i64::MIN,
];

/// Byte-level mutations in the manner of libFuzzer's, from a seeded xorshift generator.
struct Mutator {
    state: u64,
}

impl Mutator {
    fn new(seed: u64) -> Self {
        Mutator {
            state: seed | 1, // xorshift never leaves 0
        }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One to eight stacked mutations of a random seed, sometimes spliced with another.
    fn mutate(&mut self, seeds: &[Vec<u8>]) -> Vec<u8> {
        let mut data = seeds[self.below(seeds.len())].clone();
        let limit = seeds.iter().map(Vec::len).max().unwrap_or(0) * 2 + 1024;
        for _ in 0..=self.below(8) {
            match self.below(8) {
                0 | 1 if !data.is_empty() => {
                    let at = self.below(data.len());
                    data[at] ^= 1 << self.below(8);
                }
                2 if !data.is_empty() => {
                    let at = self.below(data.len());
                    data[at] = self.next() as u8;
                }
                3 if !data.is_empty() => {
                    // An interesting integer, big-endian (Kafka) or little-endian (storage).
                    let width = [1, 2, 4, 8][self.below(4)];
                    let value = INTERESTING[self.below(INTERESTING.len())];
                    let bytes = if self.below(2) == 0 {
                        value.to_be_bytes()[8 - width..].to_vec()
                    } else {
                        value.to_le_bytes()[..width].to_vec()
                    };
                    let at = self.below(data.len());
                    let end = (at + width).min(data.len());
                    data[at..end].copy_from_slice(&bytes[..end - at]);
                }
                4 if !data.is_empty() => {
                    let at = self.below(data.len());
                    let len = 1 + self.below((data.len() - at).min(64));
                    data.drain(at..at + len);
                }
                5 if !data.is_empty() && data.len() < limit => {
                    // Duplicate a range somewhere else.
                    let from = self.below(data.len());
                    let len = 1 + self.below((data.len() - from).min(64));
                    let copy = data[from..from + len].to_vec();
                    let at = self.below(data.len() + 1);
                    data.splice(at..at, copy);
                }
                6 => {
                    let other = &seeds[self.below(seeds.len())];
                    let cut = self.below(data.len() + 1);
                    let from = self.below(other.len() + 1);
                    data.truncate(cut);
                    data.extend_from_slice(&other[from..]);
                    data.truncate(limit);
                }
                _ => {
                    let len = self.below(data.len() + 1);
                    data.truncate(len);
                }
            }
        }
        data
    }
}
