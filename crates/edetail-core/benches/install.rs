//! Installing a ~200 MB mixed bundle (media stored, text deflated) from its zip, in MB/s of
//! content, beside `unzip -q -o` of the same zip to the same disk, measured in the same run
//! (median of `EDETAIL_BENCH_RUNS`, default 3, alternating order; `sync` between runs). The
//! target is ratio unzip_time / install_time >= 1.0. Install does more than unzip: it verifies
//! the signature and every file's sha256 and size, hashes again while writing each blob, and
//! fsyncs every blob and the catalogue; `unzip + sync` is printed beside it for information.
//!
//! Run: `cargo bench -p edetail-core --bench install` (EDETAIL_BENCH_MB=N to resize).

#[path = "common/mod.rs"]
mod common;

use std::fs;
use std::process::Command;
use std::time::Instant;

use edetail_core::Device;

use common::*;

const BUNDLE: &str = "com.example.mixed";

fn main() {
    let total_mb = env_usize("EDETAIL_BENCH_MB", 200) as u64;
    let runs = env_usize("EDETAIL_BENCH_RUNS", 3).max(1);
    let tmp = scratch("install");
    let src = tmp.path().join("src");
    let content = generate_mixed(&src, BUNDLE, 1, total_mb);
    let zip = tmp.path().join("mixed.zip");
    pack(&src, &zip);
    fs::remove_dir_all(&src).expect("rm src");
    let zip_size = fs::metadata(&zip).expect("zip").len();
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    println!("install: {:.0} MB of content ({} files), zip {:.0} MB", mb(content), MIXED_FILES, mb(zip_size));
    let have_unzip = Command::new("unzip").arg("-v").output().is_ok_and(|o| o.status.success());
    if !have_unzip {
        println!("  unzip is not installed (apt-get install -y unzip): baseline SKIPPED, install figures only");
    }

    let (mut inst, mut unz, mut unz_sync, mut cpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let order: &[u8] = if run % 2 == 0 { &[0, 1] } else { &[1, 0] };
        for &side in order {
            let out = tmp.path().join(format!("out-{run}-{side}"));
            sync_disk();
            if side == 0 {
                let d = Device::open(&out, config()).expect("open");
                let (t, c) = (Instant::now(), cpu_secs());
                let o = d.install_zip(&zip).expect("install");
                inst.push(t.elapsed().as_secs_f64());
                cpu.push(cpu_secs() - c);
                assert_eq!(o.bytes_written, content);
            } else if have_unzip {
                fs::create_dir_all(&out).expect("mkdir");
                let t = Instant::now();
                let st = Command::new("unzip").arg("-q").arg("-o").arg(&zip).arg("-d").arg(&out).status().expect("unzip");
                unz.push(t.elapsed().as_secs_f64());
                assert!(st.success());
                sync_disk();
                unz_sync.push(t.elapsed().as_secs_f64());
            }
            fs::remove_dir_all(&out).expect("rm out");
        }
    }
    // For reading the figures: what one SHA-256 pass over the content costs on this machine
    // (install hashes each file once, in the bundle's VerifyingReader; the blob store's write
    // takes that digest as given: `edetail_bundle::cas::Expect::Verified`).
    let t = Instant::now();
    let mut f = fs::File::open(&zip).expect("zip");
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf).expect("read");
        if n == 0 {
            break;
        }
        sha2::Digest::update(&mut h, &buf[..n]);
    }
    let _ = sha2::Digest::finalize(h);
    let sha_secs = t.elapsed().as_secs_f64() * content as f64 / zip_size as f64;
    let ti = median_f(inst);
    println!(
        "  {:<34} {:>7.2} s {:>7.0} MB/s   (CPU {:.2} s: the rest is waiting on fsync)",
        "Device::install_zip",
        ti,
        mb(content) / ti,
        median_f(cpu)
    );
    println!("  {:<34} {:>7.2} s   (one SHA-256 pass over the content, for information)", "sha256", sha_secs);
    if have_unzip {
        let (tu, tus) = (median_f(unz), median_f(unz_sync));
        println!("  {:<34} {:>7.2} s {:>7.0} MB/s", "unzip -q -o (baseline)", tu, mb(content) / tu);
        println!("  {:<34} {:>7.2} s {:>7.0} MB/s", "unzip -q -o + sync (information)", tus, mb(content) / tus);
        let ratio = tu / ti;
        println!("  ratio unzip_time / install_time = {ratio:.2}x (target >= 1.0: {})", if ratio >= 1.0 { "MET" } else { "MISSED" });
        println!("  ratio (unzip + sync)_time / install_time = {:.2}x", tus / ti);
    }
}
