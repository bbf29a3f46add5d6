// Test support for the Kotlin suite: fixtures from scripts/bindings-test, a tiny JSON reader
// (the JVM has none and the suite needs no other jar), a slide that speaks the bridge protocol,
// a real hub process, a Kotlin TokenProvider and SyncListener.
package edetail.bindings.test

import java.io.File
import java.nio.file.Files
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import java.util.zip.ZipFile
import kotlinx.coroutines.yield
import uniffi.edetail_ffi.*

object Fixtures {
    private fun env(name: String) = System.getenv(name) ?: error("$name is not set: run scripts/bindings-test")
    val dir = File(env("EDETAIL_FIXTURES"))
    val edetail = env("EDETAIL_BIN")
    val v1 = File(dir, "cardiozen-v1.zip")
    val v2 = File(dir, "cardiozen-v2.zip")
    val unsigned = File(dir, "cardiozen-unsigned.zip")
    val glucora = File(dir, "glucora.zip")
    val publisherPub = File(dir, "publisher.pub")
    val publisherKey: String = publisherPub.readText()
    const val CARDIOZEN = "com.example.cardiozen.launch"
    const val GLUCORA = "com.example.glucora.brief"

    fun zipBytes(zip: File, name: String): ByteArray = ZipFile(zip).use { z -> z.getInputStream(z.getEntry(name)).readBytes() }

    @Suppress("UNCHECKED_CAST")
    fun manifest(zip: File): Map<String, Any?> = Json.parse(String(zipBytes(zip, "manifest.json"))) as Map<String, Any?>
}

fun tempDir(prefix: String): File = Files.createTempDirectory(prefix).toFile()

fun openDevice(dir: File, keys: List<String> = listOf(Fixtures.publisherKey), allowUnsigned: Boolean = false): EdetailDevice =
    EdetailDevice.open(DeviceOptions(dataDir = dir.path, repId = "rep-test-1", publisherKeys = keys, allowUnsigned = allowUnsigned))

fun AssetResponse.header(name: String): String? = headers().firstOrNull { it.name.equals(name, ignoreCase = true) }?.value

/** Minimal JSON reader: objects -> Map, arrays -> List, numbers -> Long or Double. */
object Json {
    fun parse(text: String): Any? {
        val p = Parser(text)
        val v = p.value()
        p.ws()
        require(p.i == text.length) { "trailing characters at ${p.i}" }
        return v
    }

    private class Parser(val s: String) {
        var i = 0
        fun ws() { while (i < s.length && s[i].isWhitespace()) i++ }
        fun value(): Any? {
            ws()
            return when (val c = s[i]) {
                '{' -> obj()
                '[' -> arr()
                '"' -> str()
                't' -> lit("true", true)
                'f' -> lit("false", false)
                'n' -> lit("null", null)
                else -> if (c == '-' || c.isDigit()) num() else error("unexpected '$c' at $i")
            }
        }
        fun lit(word: String, v: Any?): Any? { require(s.startsWith(word, i)) { "bad literal at $i" }; i += word.length; return v }
        fun obj(): Map<String, Any?> {
            val m = LinkedHashMap<String, Any?>()
            i++; ws()
            if (s[i] == '}') { i++; return m }
            while (true) {
                ws(); val k = str(); ws(); require(s[i] == ':'); i++
                m[k] = value(); ws()
                if (s[i] == ',') { i++; continue }
                require(s[i] == '}') { "expected } at $i" }; i++; return m
            }
        }
        fun arr(): List<Any?> {
            val l = ArrayList<Any?>()
            i++; ws()
            if (s[i] == ']') { i++; return l }
            while (true) {
                l.add(value()); ws()
                if (s[i] == ',') { i++; continue }
                require(s[i] == ']') { "expected ] at $i" }; i++; return l
            }
        }
        fun str(): String {
            require(s[i] == '"') { "expected string at $i" }
            i++
            val b = StringBuilder()
            while (s[i] != '"') {
                if (s[i] == '\\') {
                    i++
                    when (val e = s[i]) {
                        'n' -> b.append('\n'); 't' -> b.append('\t'); 'r' -> b.append('\r'); 'b' -> b.append('\b'); 'f' -> b.append('\u000c')
                        'u' -> { b.append(s.substring(i + 1, i + 5).toInt(16).toChar()); i += 4 }
                        else -> b.append(e)
                    }
                } else b.append(s[i])
                i++
            }
            i++
            return b.toString()
        }
        fun num(): Any {
            val start = i
            while (i < s.length && (s[i].isDigit() || s[i] in "+-.eE")) i++
            val t = s.substring(start, i)
            return t.toLongOrNull() ?: t.toDouble()
        }
    }

    /** Serializes maps, lists, strings, numbers, booleans and null. */
    fun write(v: Any?): String = when (v) {
        null -> "null"
        is String -> "\"" + v.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n") + "\""
        is Number, is Boolean -> v.toString()
        is Map<*, *> -> v.entries.joinToString(",", "{", "}") { write(it.key.toString()) + ":" + write(it.value) }
        is List<*> -> v.joinToString(",", "[", "]") { write(it) }
        else -> error("cannot write ${v::class}")
    }
}

@Suppress("UNCHECKED_CAST")
fun Any?.obj(): Map<String, Any?> = this as Map<String, Any?>

/** A slide page: sends bridge messages exactly as edetail.js does and checks each reply's id. */
class Slide(private val device: EdetailDevice, var slide: String = "intro") {
    private var nextId = 1L

    fun send(method: String, params: Map<String, Any?> = emptyMap()): Map<String, Any?> {
        val id = nextId++
        val msg = mapOf("v" to 1, "id" to id, "method" to method, "params" to params, "slide" to slide, "bundle" to Fixtures.CARDIOZEN)
        val reply = Json.parse(device.handleBridgeMessage(Json.write(msg))).obj()
        check(reply["v"] == 1L && reply["id"] == id) { "reply to $method carries the wrong id: ${reply["id"]}" }
        return reply
    }

    fun ok(method: String, params: Map<String, Any?> = emptyMap()): Map<String, Any?> {
        val r = send(method, params)
        check(r["ok"] == true) { "$method failed: ${r["error"]}" }
        return r["result"].obj()
    }

    fun error(method: String, params: Map<String, Any?> = emptyMap()): String {
        val r = send(method, params)
        check(r["ok"] == false) { "$method unexpectedly succeeded" }
        return r["error"].obj()["code"] as String
    }
}

fun cli(vararg args: String): String {
    val p = ProcessBuilder(Fixtures.edetail, *args).redirectErrorStream(false).start()
    val out = p.inputStream.bufferedReader().readText()
    val err = p.errorStream.bufferedReader().readText()
    check(p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0) { "edetail ${args.take(2)} failed: ${err.take(500)}" }
    return out
}

/** `edetail hub serve` on 127.0.0.1 with its own data directory. */
class Hub(root: File) : AutoCloseable {
    val data = File(root, "hub")
    private val process: Process = ProcessBuilder(
        Fixtures.edetail, "hub", "serve", "--data", data.path, "--listen", "127.0.0.1:0", "--publisher-key", Fixtures.publisherPub.path,
    ).redirectError(ProcessBuilder.Redirect.DISCARD).start()
    val url: String
    private val publisherToken: String

    init {
        val first = process.inputStream.bufferedReader().readLine() ?: ""
        if (!first.startsWith("hub: http://127.0.0.1:")) {
            close()
            error("hub did not start: $first")
        }
        url = first.removePrefix("hub: ").trimEnd('/')
        publisherToken = Json.parse(cli("hub", "publisher", "add", "--data", data.path, "--name", "content-team", "--json")).obj()["token"] as String
    }

    /** (device id, token) of a newly provisioned tablet. */
    fun addDevice(): Pair<String, String> {
        val d = Json.parse(cli("hub", "device", "add", "--data", data.path, "--rep", "rep-test-1", "--territory", "north", "--json")).obj()
        return d["device_id"] as String to d["token"] as String
    }

    fun publish(zip: File): Map<String, Any?> =
        Json.parse(cli("publish", zip.path, "--hub", url, "--token", publisherToken, "--json")).obj()

    /** What `edetail hub stats --json` says about one device. */
    fun device(deviceId: String): Map<String, Any?> {
        val stats = Json.parse(cli("hub", "stats", "--data", data.path, "--json")).obj()
        check(stats["store"] == "sqlite")
        return (stats["devices"] as List<*>).map { it.obj() }.single { it["device_id"] == deviceId }
    }

    override fun close() {
        process.destroy()
        if (!process.waitFor(10, TimeUnit.SECONDS)) process.destroyForcibly().waitFor()
    }
}

/** A token provider in Kotlin: `suspend` like an SSO client; counts calls; `fail` throws. */
class TestTokens(private val token: String, private val fail: Exception? = null) : TokenProvider {
    val tokens = AtomicInteger()
    val refreshes = AtomicInteger()

    override suspend fun token(): String {
        tokens.incrementAndGet()
        yield()
        fail?.let { throw it }
        return token
    }

    override suspend fun refresh() {
        refreshes.incrementAndGet()
    }
}

/** Collects what the engine reports (called on the engine's threads). */
class TestListener : SyncListener {
    val statuses = CopyOnWriteArrayList<SyncStatus>()
    val events = CopyOnWriteArrayList<SyncEvent>()
    override fun onStatus(status: SyncStatus) { statuses.add(status) }
    override fun onEvent(event: SyncEvent) { events.add(event) }
}
