// FFI overhead, Kotlin side: the same EdetailDevice calls as
// bindings/edetail-ffi/benches/overhead.rs (record, resolve_read, bridge_context, sync_status)
// through the generated JNA bindings, on the same data. Each op: a warm-up run (also warms the
// JIT), then EDETAIL_BENCH_RUNS (7) runs of N calls; the median run's ns/op is printed as
// `bench kotlin <op> ns_per_op=.. ops_per_s=.. runs=.. n=..`. Run by scripts/bindings-bench.
package edetail.bindings.bench

import java.io.File
import java.nio.file.Files
import uniffi.edetail_ffi.*

private const val BUNDLE = "com.example.cardiozen.launch"
private const val SMALL_ASSET = "/com.example.cardiozen.launch/shared/tick.svg"
private const val RECORD_PAYLOAD = """{"slide":"efficacy-primary","event":"chart_tap","point":3}"""
private const val BRIDGE_CONTEXT = """{"v":1,"id":1,"method":"context","params":{}}"""

private fun env(name: String) = System.getenv(name) ?: error("$name is not set: run scripts/bindings-bench")
private fun envInt(name: String, default: Int) = System.getenv(name)?.trim()?.toInt() ?: default

@Volatile private var sink: Any? = null

private fun bench(op: String, n: Int, runs: Int, f: () -> Unit) {
    val perOp = ArrayList<Double>()
    for (run in 0..runs) {
        val t = System.nanoTime()
        for (i in 0 until n) f()
        if (run > 0) perOp.add((System.nanoTime() - t).toDouble() / n)
    }
    perOp.sort()
    val median = perOp[perOp.size / 2]
    println("bench kotlin $op ns_per_op=${"%.0f".format(median)} ops_per_s=${"%.0f".format(1e9 / median)} runs=$runs n=$n")
}

fun main() {
    val runs = envInt("EDETAIL_BENCH_RUNS", 7)
    val n = envInt("EDETAIL_BENCH_N", 10_000)
    val work = Files.createTempDirectory(File(env("EDETAIL_BENCH_DIR")).toPath(), "ffi-overhead-kotlin-").toFile()
    try {
        val key = File(env("EDETAIL_BENCH_PUBKEY")).readText()
        EdetailDevice.open(DeviceOptions(dataDir = File(work, "device").path, repId = "rep-bench", publisherKeys = listOf(key))).use { device ->
            check(device.installBundleFile(env("EDETAIL_BENCH_BUNDLE")).bundleId == BUNDLE)
            val smallLen = device.resolveAsset(SMALL_ASSET, null).use { check(it.status().toInt() == 200); it.readAll().size }
            check(smallLen in 1 until 4096)

            bench("record", envInt("EDETAIL_BENCH_RECORD_N", 200), runs) { device.record(null, "bench", RECORD_PAYLOAD) }
            bench("resolve_read", n, runs) {
                device.resolveAsset(SMALL_ASSET, null).use { check(it.readAll().size == smallLen) }
            }
            bench("bridge_context", n, runs) { check(device.handleBridgeMessage(BRIDGE_CONTEXT).contains("\"ok\":true")) }
            bench("sync_status", n, runs) { sink = device.syncStatus() }
        }
    } finally {
        work.deleteRecursively()
    }
}
