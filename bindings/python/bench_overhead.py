#!/usr/bin/env python3
"""FFI overhead, Python side: the same EdetailDevice calls as bindings/edetail-ffi/benches/overhead.rs
(record, resolve_read, bridge_context, sync_status) through the generated ctypes bindings, on the
same data. Each op: a warm-up run, then EDETAIL_BENCH_RUNS (7) runs of N calls; the median run's
ns/op is printed as `bench python <op> ns_per_op=.. ops_per_s=.. runs=.. n=..`.

Run by scripts/bindings-bench with EDETAIL_PY_BINDINGS (generated module + release .so),
EDETAIL_BENCH_BUNDLE, EDETAIL_BENCH_PUBKEY and EDETAIL_BENCH_DIR.
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.environ["EDETAIL_PY_BINDINGS"])
import edetail_ffi as ef  # noqa: E402

BUNDLE = "com.example.cardiozen.launch"
SMALL_ASSET = "/com.example.cardiozen.launch/shared/tick.svg"
RECORD_PAYLOAD = '{"slide":"efficacy-primary","event":"chart_tap","point":3}'
BRIDGE_CONTEXT = '{"v":1,"id":1,"method":"context","params":{}}'


def env_int(name, default):
    return int(os.environ.get(name, default))


def bench(op, n, runs, f):
    per_op = []
    for run in range(runs + 1):
        t = time.perf_counter_ns()
        for _ in range(n):
            f()
        if run > 0:
            per_op.append((time.perf_counter_ns() - t) / n)
    per_op.sort()
    median = per_op[len(per_op) // 2]
    print(f"bench python {op} ns_per_op={median:.0f} ops_per_s={1e9 / median:.0f} runs={runs} n={n}", flush=True)


def main():
    runs = env_int("EDETAIL_BENCH_RUNS", 7)
    n = env_int("EDETAIL_BENCH_N", 10_000)
    with open(os.environ["EDETAIL_BENCH_PUBKEY"]) as f:
        key = f.read()
    with tempfile.TemporaryDirectory(prefix="ffi-overhead-python-", dir=os.environ["EDETAIL_BENCH_DIR"]) as work:
        device = ef.EdetailDevice.open(ef.DeviceOptions(data_dir=os.path.join(work, "device"), rep_id="rep-bench", publisher_keys=[key]))
        assert device.install_bundle_file(os.environ["EDETAIL_BENCH_BUNDLE"]).bundle_id == BUNDLE
        small = device.resolve_asset(SMALL_ASSET, None)
        assert small.status() == 200
        small_len = len(small.read_all())
        assert 0 < small_len < 4096

        def record():
            device.record(None, "bench", RECORD_PAYLOAD)

        def resolve_read():
            r = device.resolve_asset(SMALL_ASSET, None)
            assert len(r.read_all()) == small_len

        def bridge_context():
            assert '"ok":true' in device.handle_bridge_message(BRIDGE_CONTEXT)

        bench("record", env_int("EDETAIL_BENCH_RECORD_N", 200), runs, record)
        bench("resolve_read", n, runs, resolve_read)
        bench("bridge_context", n, runs, bridge_context)
        bench("sync_status", n, runs, device.sync_status)
        del device


if __name__ == "__main__":
    main()
