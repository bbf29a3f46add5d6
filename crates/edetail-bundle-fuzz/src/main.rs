//! A time-boxed mutation fuzzer for the bundle reader that runs on stable Rust.
//!
//! It starts from valid bundles (plain, signed, with a large deflated file), applies random
//! structural mutations (bit flips, byte overwrites at header offsets, truncation, splices,
//! duplicated ranges, lying size fields) and checks three properties on every input:
//! 1. `check` and `BundleArchive::open` + `verify_all` never panic;
//! 2. they agree: if `check` reports no error, strict reading succeeds, and vice versa;
//! 3. a mutated archive that is accepted yields exactly the original, signed file contents.
//!
//! Usage: `edetail-bundle-fuzz [--seconds N] [--seed S] [--save-dir DIR]`. Any failing input is
//! written to DIR (default `target/fuzz-failures`) and the process exits 1.
//! CI runs it for a few seconds; run it for hours locally. (A libFuzzer target would need
//! nightly; this keeps the harness runnable everywhere.)

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use edetail_bundle::testkit::SampleBundle;
use edetail_bundle::{BundleArchive, ReadOptions, SecretKey, check};

/// A valid bundle, the options to read it with, and its files' contents.
type Seed<'a> = (Vec<u8>, &'a ReadOptions, BTreeMap<String, Vec<u8>>);

/// xorshift64*: deterministic per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut d = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        if d.is_empty() {
            break;
        }
        match rng.below(8) {
            0 => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(d.len());
                d[i] = [0x00, 0xff, 0x7f, 0x80, b'.', b'/', b'\\'][rng.below(7)];
            }
            2 => {
                let cut = rng.below(d.len());
                d.truncate(cut);
            }
            3 => {
                // Overwrite a 4-byte little-endian field with an interesting value.
                if d.len() > 4 {
                    let i = rng.below(d.len() - 4);
                    let v: u32 = [0, 1, 0xffff_ffff, 0x7fff_ffff, 0xffff, rng.next() as u32][rng.below(6)];
                    d[i..i + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
            4 => {
                // Duplicate a range somewhere else.
                let a = rng.below(d.len());
                let len = rng.below((d.len() - a).min(256)) + 1;
                let chunk = d[a..a + len].to_vec();
                let at = rng.below(d.len());
                d.splice(at..at, chunk);
            }
            5 => {
                // Delete a range.
                let a = rng.below(d.len());
                let len = rng.below((d.len() - a).min(64)) + 1;
                d.drain(a..a + len);
            }
            6 => {
                // Mutate near a zip signature (headers are where parsers go wrong).
                let sigs: Vec<usize> = d.windows(2).enumerate().filter(|(_, w)| w == b"PK").map(|(i, _)| i).collect();
                if !sigs.is_empty() {
                    let base = sigs[rng.below(sigs.len())];
                    let i = (base + rng.below(46)).min(d.len() - 1);
                    d[i] = rng.next() as u8;
                }
            }
            _ => {
                let i = rng.below(d.len());
                d.insert(i, rng.next() as u8);
            }
        }
    }
    d
}

/// Reads every file through strict opening; `Ok(contents)` when accepted.
fn strict_read(bytes: &[u8], opts: &ReadOptions) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut a = BundleArchive::open(Cursor::new(bytes.to_vec()), opts).map_err(|e| e.to_string())?;
    let paths: Vec<_> = a.manifest().files.keys().cloned().collect();
    let mut out = BTreeMap::new();
    for p in paths {
        let mut r = a.read_file(&p).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        r.read_to_end(&mut buf).map_err(|e| e.to_string())?;
        out.insert(p.to_string(), buf);
    }
    Ok(out)
}

fn main() {
    let mut seconds = 10u64;
    let mut seed = 0x5eed_u64;
    let mut save_dir = PathBuf::from("target/fuzz-failures");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().and_then(|v| v.parse().ok()).expect("--seconds N"),
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).expect("--seed S"),
            "--save-dir" => save_dir = PathBuf::from(args.next().expect("--save-dir DIR")),
            other => {
                eprintln!("unknown argument {other}; usage: edetail-bundle-fuzz [--seconds N] [--seed S] [--save-dir DIR]");
                std::process::exit(2);
            }
        }
    }
    let key = SecretKey::from_seed(&[9; 32]);
    let plain = SampleBundle::new();
    let mut big = SampleBundle::new();
    big.files.insert("media/clip.bin".into(), (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect());
    let signed_opts = ReadOptions::signed_by(vec![key.public()]);
    let lax = ReadOptions::allow_unsigned();
    let seeds: Vec<Seed<'_>> = vec![
        (plain.zip(None), &lax, plain.files.clone()),
        (plain.zip(Some(&key)), &signed_opts, plain.files.clone()),
        (big.zip(Some(&key)), &signed_opts, big.files.clone()),
    ];
    for (zip, opts, _) in &seeds {
        assert!(strict_read(zip, opts).is_ok(), "seed bundles must be valid");
    }

    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut runs, mut accepted, mut failures) = (0u64, 0u64, 0u64);
    while Instant::now() < deadline {
        let (base, opts, original) = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, base);
        runs += 1;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let report = check(Cursor::new(input.clone()), opts, &mut |_| {});
            let strict = strict_read(&input, opts);
            match (report.is_ok(), strict) {
                (true, Ok(contents)) => {
                    if &contents != original {
                        return Err("accepted a bundle whose contents differ from the signed original".to_string());
                    }
                    Ok(true)
                }
                (false, Err(_)) => Ok(false),
                (true, Err(e)) => Err(format!("check accepted but strict read failed: {e}")),
                (false, Ok(_)) => Err(format!("strict read accepted but check reported: {:?}", report.errors().next())),
            }
        }));
        let verdict = match outcome {
            Ok(Ok(acc)) => {
                accepted += u64::from(acc);
                continue;
            }
            Ok(Err(msg)) => msg,
            Err(_) => "panic".to_string(),
        };
        failures += 1;
        std::fs::create_dir_all(&save_dir).expect("create save dir");
        let path = save_dir.join(format!("failure-{seed}-{runs}.zip"));
        std::fs::write(&path, &input).expect("save failing input");
        eprintln!("FAILURE ({verdict}): input saved to {}", path.display());
    }
    let passed = runs - failures;
    println!("fuzz: {runs} inputs in {seconds}s, {accepted} accepted unchanged, {failures} failures (seed {seed})");
    println!("{passed} passed, {failures} failed");
    if failures > 0 {
        std::process::exit(1);
    }
}
