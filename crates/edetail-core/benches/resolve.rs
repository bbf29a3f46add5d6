//! Asset serving: (1) p50/p99 of resolve + read of a small asset (2 KB CSS), 10k times, beside
//! `File::open` + read of the same blob file; (2) streaming a large video (default 500 MB,
//! `EDETAIL_BENCH_VIDEO_MB`) through `resolve` with 64 KiB reads in MB/s, beside a
//! `std::fs::File` read of the same blob file, while sampling VmRSS: the increase must stay
//! under 32 MB (the asset is streamed, never loaded into memory).
//!
//! Run: `cargo bench -p edetail-core --bench resolve`

#[path = "common/mod.rs"]
mod common;

use std::fs;
use std::io::Read;
use std::time::{Duration, Instant};

use edetail_core::Device;

use common::*;

const BUNDLE: &str = "com.example.media";
const CSS: &str = "shared/deck.css";
const VIDEO: &str = "media/keynote.mp4";
const CHUNK: usize = 64 * 1024;

/// Reads `r` to the end in 64 KiB reads; samples VmRSS every 256 reads. Returns (bytes, peak RSS KiB).
fn drain(r: &mut dyn Read, buf: &mut [u8], sample: bool) -> (u64, u64) {
    let (mut total, mut peak, mut reads) = (0u64, 0u64, 0u64);
    loop {
        let n = r.read(buf).expect("read");
        if n == 0 {
            break;
        }
        total += n as u64;
        reads += 1;
        if sample && reads.is_multiple_of(256) {
            peak = peak.max(proc_status_kib("VmRSS"));
        }
    }
    (total, peak)
}

fn main() {
    let video_mb = env_usize("EDETAIL_BENCH_VIDEO_MB", 500) as u64;
    let small_n = env_usize("EDETAIL_BENCH_SMALL_N", 10_000);
    let tmp = scratch("resolve");
    let src = tmp.path().join("src");
    authoring_folder(&src, BUNDLE, 1, 3);
    assert_eq!(fs::metadata(src.join(CSS)).expect("css").len(), 2048);
    let t = Instant::now();
    write_noise_file(&src.join(VIDEO), 42, video_mb << 20);
    let zip = tmp.path().join("media.zip");
    pack(&src, &zip);
    fs::remove_dir_all(&src).expect("rm src");
    println!("resolve: generated and packed a {video_mb} MB video bundle in {:.1?}", t.elapsed());

    let d = Device::open(&tmp.path().join("device"), config()).expect("open");
    let t = Instant::now();
    d.install_zip(&zip).expect("install");
    let secs = t.elapsed().as_secs_f64();
    println!("  installed it in {secs:.1} s ({:.0} MB/s, for information)", video_mb as f64 / secs);
    fs::remove_file(&zip).expect("rm zip");
    let css_bp = edetail_bundle::BundlePath::parse(CSS).expect("path");
    let video_bp = edetail_bundle::BundlePath::parse(VIDEO).expect("path");
    let (css_sha, _, _) = d.content().active_file(BUNDLE, &css_bp).expect("lookup").expect("css");
    let (video_sha, video_size, _) = d.content().active_file(BUNDLE, &video_bp).expect("lookup").expect("video");
    let css_path = d.content().blobs().path_of(&css_sha);
    let video_path = d.content().blobs().path_of(&video_sha);

    // 1. Small asset, interleaved with the baseline in blocks of 500.
    let mut buf = Vec::with_capacity(4096);
    let (mut dev, mut base) = (Vec::with_capacity(small_n), Vec::with_capacity(small_n));
    for _ in 0..200 {
        let mut a = d.assets().resolve(BUNDLE, CSS, None).expect("resolve");
        buf.clear();
        a.reader.read_to_end(&mut buf).expect("read");
    }
    let mut done = 0;
    while done < small_n {
        let k = 500.min(small_n - done);
        for _ in 0..k {
            let t = Instant::now();
            let mut a = d.assets().resolve(BUNDLE, CSS, None).expect("resolve");
            buf.clear();
            a.reader.read_to_end(&mut buf).expect("read");
            dev.push(t.elapsed());
            assert_eq!(buf.len(), 2048);
        }
        for _ in 0..k {
            let t = Instant::now();
            let mut f = fs::File::open(&css_path).expect("open");
            buf.clear();
            f.read_to_end(&mut buf).expect("read");
            base.push(t.elapsed());
        }
        done += k;
    }
    // Where the time goes: the catalogue lookup alone.
    let mut lookup = Vec::with_capacity(small_n);
    for _ in 0..small_n {
        let t = Instant::now();
        let f = d.content().active_file(BUNDLE, &css_bp).expect("lookup");
        lookup.push(t.elapsed());
        assert!(f.is_some());
    }
    lookup.sort();
    dev.sort();
    base.sort();
    let sum = |v: &[Duration]| v.iter().sum::<Duration>().as_secs_f64();
    println!("\n  small asset (2 KB CSS), {small_n} times      p50 us    p99 us    reads/s");
    println!(
        "  {:<38} {:>8.1} {:>9.1} {:>10.0}",
        "assets().resolve + read",
        us(pct(&dev, 50.0)),
        us(pct(&dev, 99.0)),
        small_n as f64 / sum(&dev)
    );
    println!(
        "  {:<38} {:>8.1} {:>9.1} {:>10.0}",
        "File::open + read (same blob)",
        us(pct(&base, 50.0)),
        us(pct(&base, 99.0)),
        small_n as f64 / sum(&base)
    );
    println!("  {:<38} {:>8.1} {:>9.1}", "  of which active_file (catalogue lookup)", us(pct(&lookup, 50.0)), us(pct(&lookup, 99.0)));
    println!(
        "  ratio resolve/File: p50 {:.2}x, p99 {:.2}x",
        pct(&dev, 50.0).as_secs_f64() / pct(&base, 50.0).as_secs_f64(),
        pct(&dev, 99.0).as_secs_f64() / pct(&base, 99.0).as_secs_f64()
    );

    // 2. Streaming. Both sides read from the page cache (the blob was just written); three
    // alternating runs each, the median reported.
    let mut chunk = vec![0u8; CHUNK];
    let rss_before = proc_status_kib("VmRSS");
    let hwm_before = proc_status_kib("VmHWM");
    let (mut dev_mbs, mut base_mbs, mut peak) = (Vec::new(), Vec::new(), rss_before);
    for run in 0..3 {
        for side in if run % 2 == 0 { [0, 1] } else { [1, 0] } {
            let t = Instant::now();
            let (n, p) = if side == 0 {
                let mut a = d.assets().resolve(BUNDLE, VIDEO, None).expect("resolve");
                drain(&mut a.reader, &mut chunk, true)
            } else {
                drain(&mut fs::File::open(&video_path).expect("open"), &mut chunk, false)
            };
            let secs = t.elapsed().as_secs_f64();
            assert_eq!(n, video_size);
            let mbs = n as f64 / (1 << 20) as f64 / secs;
            if side == 0 {
                dev_mbs.push(mbs);
                peak = peak.max(p);
            } else {
                base_mbs.push(mbs);
            }
        }
    }
    // A ranged read in the middle (what a WebView seek does) streams the same way.
    let mid = video_size / 2;
    let mut a = d.assets().resolve(BUNDLE, VIDEO, Some(&format!("bytes={mid}-"))).expect("range");
    let (n, p) = drain(&mut a.reader, &mut chunk, true);
    assert_eq!(n, video_size - mid);
    peak = peak.max(p);
    let (dm, bm) = (median_f(dev_mbs), median_f(base_mbs));
    println!("\n  streaming {video_mb} MB video, 64 KiB reads (median of 3, page cache warm)");
    println!("  {:<38} {:>8.0} MB/s", "assets().resolve reader", dm);
    println!("  {:<38} {:>8.0} MB/s", "std::fs::File (same blob)", bm);
    println!("  ratio resolve/File throughput: {:.2}x", dm / bm);
    let grew_kib = peak.saturating_sub(rss_before);
    println!(
        "  VmRSS before {:.1} MB, peak while streaming {:.1} MB: +{:.1} MB (VmHWM {:.1} -> {:.1} MB)",
        rss_before as f64 / 1024.0,
        peak as f64 / 1024.0,
        grew_kib as f64 / 1024.0,
        hwm_before as f64 / 1024.0,
        proc_status_kib("VmHWM") as f64 / 1024.0
    );
    assert!(grew_kib < 32 * 1024, "RSS grew by {} KiB while streaming: the asset is not streamed", grew_kib);
    println!("  RSS increase under 32 MB: MET");
}
