// The generated Kotlin bindings of edetail-ffi on a plain JVM (JNA), against the real library and
// a real hub: the same scenario an Android shell runs. Content and assets, a call driven by
// slide bridge messages, errors as ApiException subclasses, sync from coroutines with a
// TokenProvider and SyncListener written in Kotlin, and a remote session of a call. Run by
// scripts/bindings-test (Run.kt).
package edetail.bindings.test

import java.io.File
import java.net.ServerSocket
import java.net.Socket
import java.net.SocketTimeoutException
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import kotlin.concurrent.thread
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeout
import org.junit.AfterClass
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.BeforeClass
import org.junit.Test
import uniffi.edetail_ffi.*
import edetail.bindings.test.Fixtures.CARDIOZEN
import edetail.bindings.test.Fixtures.GLUCORA

private val UUID = Regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

/** Asserts that [block] throws exactly [T] and returns it. */
inline fun <reified T : Throwable> assertThrows(block: () -> Unit): T {
    try {
        block()
    } catch (e: Throwable) {
        if (e is T) return e
        throw AssertionError("expected ${T::class.simpleName}, got $e", e)
    }
    throw AssertionError("expected ${T::class.simpleName}, nothing was thrown")
}

class EdetailDeviceTest {
    companion object {
        private lateinit var hubRoot: File
        private lateinit var hub: Hub

        @BeforeClass @JvmStatic
        fun startHub() {
            hubRoot = tempDir("edetail-kt-hub-")
            hub = Hub(hubRoot)
            // The hub offers Cardiozen v2 (devices install v1 from a file) and another deck.
            assertEquals(2L, hub.publish(Fixtures.v2)["version"])
            assertEquals(GLUCORA, hub.publish(Fixtures.glucora)["bundle_id"])
        }

        @AfterClass @JvmStatic
        fun stopHub() { // runs even when startHub failed
            if (::hub.isInitialized) hub.close()
            if (::hubRoot.isInitialized) hubRoot.deleteRecursively()
        }
    }

    private val dirs = mutableListOf<File>()
    private val devices = mutableListOf<EdetailDevice>()

    private fun device(install: Boolean = true): EdetailDevice {
        val dir = tempDir("edetail-kt-").also { dirs.add(it) }
        return openDevice(dir).also { devices.add(it); if (install) it.installBundleFile(Fixtures.v1.path) }
    }

    @org.junit.After
    fun cleanUp() {
        devices.forEach { it.close() }
        dirs.forEach { it.deleteRecursively() }
    }

    // ---- content -------------------------------------------------------------------------

    @Test
    fun installAndListBundles() {
        val d = device(install = false)
        assertEquals(emptyList<BundleInfo>(), d.bundles())
        val m = Fixtures.manifest(Fixtures.v1)
        val files = m["files"].obj().values.map { it.obj() }
        val r = d.installBundleFile(Fixtures.v1.path)
        assertEquals(InstallResult(CARDIOZEN, 1UL, true, files.map { it["sha256"] }.toSet().size.toULong(), 0UL), r)
        assertFalse(d.installBundleFile(Fixtures.v1.path).activated)

        val b = d.bundles().single()
        assertEquals(CARDIOZEN to 1UL, b.bundleId to b.version)
        assertEquals(m["title"], b.title)
        assertEquals(m["approval_code"], b.approvalCode)
        assertEquals(ContentStatus.READY, b.status)
        assertNull(b.statusReason)
        assertNull(b.update)
        assertEquals(files.sumOf { it["size"] as Long }.toULong(), b.totalBytes)
        val now = System.currentTimeMillis()
        assertTrue(b.validFromMs < now && now < b.validUntilMs)
        assertEquals((m["slides"] as List<*>).map { it.obj()["id"] }, b.slides.map { it.id })
        val intro = b.slides.first()
        assertEquals("/$CARDIOZEN/slides/intro/index.html", intro.url)
        assertEquals("/$CARDIOZEN/slides/intro/thumb.png", intro.thumbnailUrl)
        assertEquals(listOf("references"), b.slides.filter { it.hidden }.map { it.id })
        assertEquals(listOf("main" to false, "isi" to true, "pi" to true), b.presentations.map { it.id to it.hidden })
        for (s in b.slides) {
            d.resolveAsset(s.thumbnailUrl!!, null).use { resp ->
                assertEquals(200.toUShort(), resp.status())
                assertEquals("image/png", resp.mimeType())
                assertArrayEquals(byteArrayOf(0x89.toByte(), 'P'.code.toByte(), 'N'.code.toByte(), 'G'.code.toByte()), resp.readAll().copyOf(4))
            }
        }
    }

    @Test
    fun resolveAssetsRangesAndMissing() {
        val d = device()
        val files = Fixtures.manifest(Fixtures.v1)["files"].obj()
        for (path in listOf("slides/intro/index.html", "shared/deck.css", "media/cardiozen-moa-poster.jpg")) {
            val want = Fixtures.zipBytes(Fixtures.v1, path)
            val meta = files[path].obj()
            d.resolveAsset("/$CARDIOZEN/$path", null).use { resp ->
                assertEquals(path, 200.toUShort(), resp.status())
                assertEquals(meta["mime"], resp.mimeType())
                assertEquals(meta["mime"], resp.header("Content-Type"))
                assertEquals(want.size.toString(), resp.header("Content-Length"))
                assertEquals("\"${meta["sha256"]}\"", resp.header("ETag"))
                assertArrayEquals(want, resp.readAll())
            }
        }
        val video = Fixtures.zipBytes(Fixtures.v1, "media/cardiozen-moa.mp4")
        val url = "/$CARDIOZEN/media/cardiozen-moa.mp4"
        d.resolveAsset(url, "bytes=100-1123").use { r ->
            assertEquals(206.toUShort(), r.status())
            assertEquals("bytes 100-1123/${video.size}", r.header("Content-Range"))
            assertEquals(1024UL, r.contentLength())
            assertArrayEquals(video.copyOfRange(100, 1124), r.readAll())
        }
        // Streamed in chunks, as a WebView scheme handler reads it.
        d.resolveAsset(url, null).use { r ->
            val out = java.io.ByteArrayOutputStream()
            while (true) {
                val chunk = r.read(4096u)
                if (chunk.isEmpty()) break
                assertTrue(chunk.size <= 4096)
                out.write(chunk)
            }
            assertArrayEquals(video, out.toByteArray())
        }
        d.resolveAsset(url, null).use { r ->
            assertEquals(1000, r.read(1000u).size)
            r.cancel()
            assertEquals(0, r.read(1000u).size)
        }
        assertEquals(416.toUShort(), d.resolveAsset(url, "bytes=${video.size + 10}-").use { it.status() })
        for (missing in listOf("/$CARDIOZEN/slides/nope/index.html", "/com.example.unknown/index.html", "/$CARDIOZEN/../manifest.json")) {
            d.resolveAsset(missing, null).use { r ->
                assertEquals(missing, 404.toUShort(), r.status())
                assertTrue(r.readAll().isNotEmpty())
            }
        }
        d.resolveAsset("/_edetail/edetail.js", null).use { assertEquals("text/javascript", it.mimeType()) }
    }

    // ---- a call driven by the slide bridge -----------------------------------------------

    @Test
    fun callDrivenByBridgeMessages() {
        val d = device()
        val slide = Slide(d)
        assertNull(slide.ok("hello")["call"])
        assertEquals("no_call", slide.error("react", mapOf("value" to "positive")))

        val start = d.startCall("hcp-test-1", CallChannel.FACE_TO_FACE, CARDIOZEN, null)
        assertEquals(SlideTarget("intro", "main", "/$CARDIOZEN/slides/intro/index.html", true), start.first)
        val ctx = slide.ok("hello")
        assertEquals(start.callId, ctx["call"].obj()["id"])
        assertEquals(mapOf("id" to "hcp-test-1"), ctx["hcp"])
        assertEquals(mapOf("id" to CARDIOZEN, "version" to 1L), ctx["bundle"])

        assertEquals("burden", slide.ok("navigate", mapOf("action" to "next"))["slide"])
        slide.slide = "burden"
        val n = d.outboxStatus().pending
        assertTrue(UUID.matches(slide.ok("track", mapOf("event" to "chart_toggle", "data" to mapOf("endpoint" to "hf_hosp")))["event_id"] as String))
        assertEquals(emptyMap<String, Any?>(), slide.ok("react", mapOf("value" to "positive")))
        slide.ok("answer", mapOf("question" to "q1", "answers" to listOf("a")))
        slide.ok("follow_up", mapOf("topic" to "efficacy"))
        assertEquals(n + 4UL, d.outboxStatus().pending)
        slide.ok("state.save", mapOf("key" to "dose", "value" to mapOf("mg" to 5)))
        assertEquals(mapOf("value" to mapOf("mg" to 5L)), slide.ok("state.load", mapOf("key" to "dose")))
        assertEquals("efficacy-primary", slide.ok("navigate", mapOf("action" to "goto", "slide" to "efficacy-primary"))["slide"])
        assertEquals("invalid_params", slide.error("react", mapOf("value" to "ecstatic")))
        assertEquals("not_found", slide.error("navigate", mapOf("action" to "goto", "slide" to "no-such-slide")))
        assertEquals("unknown_method", slide.error("warp"))
        val bad = Json.parse(d.handleBridgeMessage("{not json")).obj()
        assertEquals(listOf(false, null, "malformed"), listOf(bad["ok"], bad["id"], bad["error"].obj()["code"]))

        assertEquals("summary", d.navigate(start.callId, Navigation.ToSlide("summary"), true).slideId)
        assertEquals("survey", d.navigate(start.callId, Navigation.Previous, false).slideId)
        assertEquals("pi-1", d.navigate(start.callId, Navigation.ToPresentation("pi"), false).slideId)
        val before = d.outboxStatus().pending
        val recs = listOf(
            d.react(start.callId, ReactionKind.NEUTRAL),
            d.note(start.callId, "test note"),
            d.followUp(start.callId, "dosing", null),
            d.record(start.callId, "app.sample_request", """{"units": 2}"""),
        )
        assertEquals(before + recs.size.toULong(), d.outboxStatus().pending)
        assertEquals((recs[0].seq until recs[0].seq + recs.size).toList(), recs.map { it.seq })
        assertTrue(recs.all { UUID.matches(it.uuid) })

        val open = d.calls().single()
        assertEquals(listOf(start.callId, "hcp-test-1", "open", "pi-1"), listOf(open.callId, open.hcpId, open.status, open.currentSlideId))
        assertNull(open.endedAtMs)
        d.endCall(start.callId)
        val call = d.calls().single()
        assertEquals(listOf(start.callId, "completed", null), listOf(call.callId, call.status, call.currentSlideId))
        assertTrue(call.endedAtMs!! >= call.startedAtMs)
        assertNull(d.openCall())
        assertEquals("no_call", slide.error("track", mapOf("event" to "late", "data" to emptyMap<String, Any?>())))
    }

    // ---- what a call offers ----------------------------------------------------------------

    @Test
    fun callPlanIsLocalWithReasonsForAnHcpWithHistory() {
        val d = device()
        val anonymous = d.startCall(null, CallChannel.FACE_TO_FACE, CARDIOZEN, null)
        assertNull(anonymous.plan)
        assertEquals(emptyList<String>(), anonymous.suggestedSlides)
        d.endCall(anonymous.callId)

        val first = d.startCall("hcp-plan-kt", CallChannel.FACE_TO_FACE, CARDIOZEN, null)
        assertEquals(PlanSource.LOCAL, first.plan!!.source)
        assertTrue(first.plan!!.reasons.first().contains("no earlier calls"))
        d.followUp(first.callId, "efficacy", null)
        d.endCall(first.callId)

        val shown = d.planFor("hcp-plan-kt", CARDIOZEN)!!
        assertEquals(PlanSource.LOCAL, shown.source)
        assertNull(shown.planId)
        assertNull(shown.stage)
        assertTrue(shown.reasons.toString(), shown.reasons.any { it.contains("efficacy") })
        val second = d.startCall("hcp-plan-kt", CallChannel.REMOTE, CARDIOZEN, null)
        assertEquals(shown, second.plan)
        assertEquals(second.plan!!.slides.map { it.slideId }, second.suggestedSlides)
        d.endCall(second.callId)
        assertNull(d.planFor("hcp-plan-kt", "com.example.unknown"))
    }

    // ---- the rep's call sequence ------------------------------------------------------------

    @Test
    fun repBuildsTheCallFromASequenceSavedOnTheDevice() {
        val dir = tempDir("edetail-kt-seq-").also { dirs.add(it) }
        var d = openDevice(dir).also { it.installBundleFile(Fixtures.v1.path) }
        val s = d.startSequence("hcp-seq-kt", CARDIOZEN)
        val sid = s.sequenceId
        assertNull(s.planId)
        assertEquals(emptyList<String>(), s.planned)
        assertEquals(listOf("intro", "burden"), s.slides.take(2).map { it.slideId })
        assertFalse("hidden slides are not in a sequence", s.slides.any { it.slideId == "references" })
        assertEquals(SequenceSlide("isi-1", "isi", true, SequenceOrigin.START), s.slides.last())

        val mandatory = assertThrows<ApiException.InvalidInput> { d.removeFromSequence(sid, "isi-1") }
        assertTrue(mandatory.reason, mandatory.reason.contains("mandatory"))
        for (hidden in listOf("references", "pi-1")) {
            val e = assertThrows<ApiException.InvalidInput> { d.addToSequence(sid, hidden) }
            assertTrue(e.reason, e.reason.contains(hidden))
        }
        assertThrows<ApiException.NotFound> { d.addToSequence(sid, "no-such-slide") }
        assertThrows<ApiException.InvalidInput> { d.addToSequence(sid, "intro") } // already in it
        assertThrows<ApiException.InvalidInput> { d.moveSequenceSlide(sid, 0u, 99u) }
        assertThrows<ApiException.NotFound> { d.sequence("no-such-sequence") }

        d.removeFromSequence(sid, "burden")
        val added = d.addToSequence(sid, "burden")
        val moved = d.moveSequenceSlide(sid, (added.slides.size - 1).toUInt(), 0u)
        assertEquals(SequenceSlide("burden", "main", false, SequenceOrigin.ADDED), moved.slides.first())

        // Saved in the rep's database: still there after the app restarts.
        d.close()
        d = openDevice(dir).also { devices.add(it) }
        assertEquals(moved, d.savedSequence("hcp-seq-kt", CARDIOZEN))
        assertNull(d.savedSequence("hcp-other-kt", CARDIOZEN))

        val before = d.outboxStatus().pending
        val start = d.startCallFromSequence(sid, CallChannel.FACE_TO_FACE)
        assertEquals("burden", start.first.slideId)
        assertEquals(moved.slides.map { it.slideId }, start.suggestedSlides)
        assertNull(start.plan)
        assertEquals("call_started, call_plan, slide_enter", before + 3UL, d.outboxStatus().pending)

        assertTrue(UUID.matches(d.advocacy(start.callId, AdvocacyAction.AGREED_TO_SPEAK).uuid))
        val slide = Slide(d)
        slide.slide = "burden"
        assertTrue(UUID.matches(slide.ok("advocacy", mapOf("action" to "referred_colleague"))["event_id"] as String))
        val n = d.outboxStatus().pending
        assertEquals("invalid_params", slide.error("advocacy", mapOf("action" to "told_a_friend")))
        assertEquals("an unknown advocacy action records nothing", n, d.outboxStatus().pending)
        d.endCall(start.callId)
        assertThrows<ApiException.NotFound> { d.advocacy(start.callId, AdvocacyAction.SHARED_MICROSITE) }
    }

    // ---- errors --------------------------------------------------------------------------

    @Test
    fun errorsAreApiExceptionSubclasses() {
        val dir = tempDir("edetail-kt-inuse-").also { dirs.add(it) }
        val first = openDevice(dir)
        val inUse = assertThrows<ApiException.InUse> { openDevice(dir) }
        assertTrue(inUse.reason.isNotEmpty())
        first.close() // AutoCloseable: releases the directory at once, no GC needed
        openDevice(dir).close()

        val d = device()
        assertThrows<ApiException.NotFound> { d.startCall(null, CallChannel.FACE_TO_FACE, "com.example.unknown", null) }
        assertThrows<ApiException.NotFound> { d.navigate("no-such-call", Navigation.Next, false) }
        val call = d.startCall(null, CallChannel.REMOTE, CARDIOZEN, null).callId
        d.endCall(call)
        assertThrows<ApiException.NotFound> { d.endCall(call) }
        val pending = d.outboxStatus().pending
        val bad = assertThrows<ApiException.InvalidInput> { d.record(null, "custom", "{not json") }
        assertTrue(bad.reason.contains("JSON"))
        assertThrows<ApiException.InvalidInput> { d.record(null, "", "{}") }
        for (notAnObject in listOf("42", "[1, 2]", "\"text\"", "null")) {
            assertThrows<ApiException.InvalidInput> { d.record(null, "custom", notAnObject) } // the hub would refuse it for good
        }
        assertEquals(pending, d.outboxStatus().pending)
        assertThrows<ApiException.InvalidInput> { openDevice(tempDir("edetail-kt-key-").also { dirs.add(it) }, keys = listOf("not a key")) }
        assertThrows<ApiException.BundleRejected> { d.installBundleFile(Fixtures.unsigned.path) }
        assertThrows<ApiException.SyncNotConfigured> { runBlocking { d.syncNow() } }
        assertEquals(SyncStatus.Idle, d.syncStatus())
        d.configureSync("http://127.0.0.1:9", "dev-1", TestTokens("t"))
        d.setOnline(false)
        assertThrows<ApiException.Offline> { runBlocking { d.syncNow() } }
        // Every variant is an ApiException, so one catch handles them all.
        assertTrue(runCatching { d.endCall(call) }.exceptionOrNull() is ApiException)
    }

    // ---- sync against a real hub ---------------------------------------------------------

    private fun presentACall(d: EdetailDevice) {
        val slide = Slide(d)
        val call = d.startCall("hcp-test-1", CallChannel.FACE_TO_FACE, CARDIOZEN, null).callId
        slide.ok("navigate", mapOf("action" to "next"))
        slide.ok("track", mapOf("event" to "chart_toggle", "data" to mapOf("endpoint" to "hf_hosp")))
        slide.ok("react", mapOf("value" to "positive"))
        d.endCall(call)
    }

    @Test
    fun syncUploadsEventsAndInstallsNewContent() = runBlocking {
        val d = device()
        presentACall(d)
        val recorded = d.outboxStatus().pending
        assertTrue(recorded > 3UL)
        val (deviceId, token) = hub.addDevice()
        val tokens = TestTokens(token)
        val listener = TestListener()
        d.configureSync(hub.url, deviceId, tokens)
        d.setSyncListener(listener) // after configure_sync: attached to the running engine

        val summary = withContext(Dispatchers.IO) { d.syncNow() }
        assertEquals(recorded, summary.eventsUploaded)
        assertEquals(listOf(0UL, 0UL), listOf(summary.eventsAlreadyUploaded, summary.eventsParked))
        // "<bundle id>@<version>" strings (not records): the app parses them.
        assertEquals(listOf("$CARDIOZEN@2", "$GLUCORA@1"), summary.bundlesActivated.sorted())
        assertTrue(summary.filesDownloaded > 0UL)
        assertTrue(tokens.tokens.get() >= 1)
        assertEquals(0, tokens.refreshes.get())

        assertEquals(OutboxStatus(pending = 0UL, parked = 0UL, acknowledged = recorded), d.outboxStatus())
        val bundles = d.bundles().associateBy { it.bundleId }
        assertEquals(2UL to ContentStatus.READY, bundles.getValue(CARDIOZEN).let { it.version to it.status })
        assertEquals(1UL to ContentStatus.READY, bundles.getValue(GLUCORA).let { it.version to it.status })
        val intro = d.resolveAsset("/$CARDIOZEN/slides/intro/index.html", null).use { it.readAll() }
        assertArrayEquals(Fixtures.zipBytes(Fixtures.v2, "slides/intro/index.html"), intro)

        assertTrue(listener.statuses.toString(), SyncStatus.Uploading in listener.statuses && SyncStatus.Downloading in listener.statuses)
        assertEquals(SyncStatus.Done, listener.statuses.last())
        assertEquals(recorded, listener.events.filterIsInstance<SyncEvent.EventsUploaded>().sumOf { it.accepted })
        assertTrue(SyncEvent.BundleActivated(CARDIOZEN, 2UL) in listener.events)
        assertTrue(SyncEvent.BundleActivated(GLUCORA, 1UL) in listener.events)
        assertEquals(SyncStatus.Done, d.syncStatus())
        assertNull(d.nextSyncInMs())
        val onHub = hub.device(deviceId)
        assertEquals(listOf(recorded.toLong(), 0L, 0L), listOf(onHub["events_received"], onHub["duplicates_absorbed"], onHub["rejected"]))

        // One more event, synced with sync_blocking on a worker thread (a WorkManager Worker).
        val last = d.record(null, "app.opened", "{}")
        assertEquals(1UL, withContext(Dispatchers.IO) { d.syncBlocking() }.eventsUploaded)
        assertEquals(listOf(recorded.toLong() + 1, last.seq), hub.device(deviceId).let { listOf(it["events_received"], it["watermark"]) })
        val again = d.syncNow()
        assertEquals(listOf(0UL, 0UL), listOf(again.eventsUploaded, again.filesDownloaded))
    }

    @Test
    fun tokenProviderThatThrowsIsAuthRequired() = runBlocking {
        val d = device()
        val (deviceId, _) = hub.addDevice()
        d.record(null, "app.opened", "{}")
        for (failure in listOf(TokenProviderException.Unavailable("signed out"), IllegalStateException("SSO crashed"))) {
            val tokens = TestTokens("unused", fail = failure)
            d.configureSync(hub.url, deviceId, tokens)
            assertThrows<ApiException.AuthRequired> { runBlocking { d.syncNow() } }
            assertTrue(tokens.tokens.get() >= 1)
        }
        // A token the hub refuses: refreshed once, then AuthRequired.
        val wrong = TestTokens("0".repeat(64))
        d.configureSync(hub.url, deviceId, wrong)
        assertThrows<ApiException.AuthRequired> { runBlocking { d.syncNow() } }
        assertEquals(1 to 2, wrong.refreshes.get() to wrong.tokens.get())
        assertEquals(1UL, d.outboxStatus().pending)
    }

    /** A "hub" that accepts connections and never answers. */
    private class SilentHub : AutoCloseable {
        val server = ServerSocket(0, 8, java.net.InetAddress.getLoopbackAddress()).apply { soTimeout = 200 }
        val accepted = CountDownLatch(1)
        private val conns = mutableListOf<Socket>()
        @Volatile private var stop = false
        private val acceptor = thread(isDaemon = true) {
            while (!stop) {
                try { conns.add(server.accept()); accepted.countDown() } catch (_: SocketTimeoutException) {}
            }
        }
        val url get() = "http://127.0.0.1:${server.localPort}"
        override fun close() { stop = true; acceptor.join(); conns.forEach { it.close() }; server.close() }
    }

    @Test
    fun cancelSyncFromAnotherThreadAgainstASilentHub() = runBlocking {
        val d = device()
        presentACall(d)
        val recorded = d.outboxStatus().pending
        SilentHub().use { silent ->
            d.configureSync(silent.url, "dev-silent", TestTokens("t"))
            val sync = async(Dispatchers.IO, start = CoroutineStart.UNDISPATCHED) { runCatching { d.syncNow() } }
            assertTrue("the sync never reached the hub", silent.accepted.await(10, TimeUnit.SECONDS))
            assertThrows<ApiException.AlreadySyncing> { runBlocking { d.syncNow() } }
            assertEquals(SyncStatus.Uploading, d.syncStatus())
            val t0 = System.nanoTime()
            thread { d.cancelSync() }
            val outcome = withTimeout(10_000) { sync.await() }
            val ms = (System.nanoTime() - t0) / 1_000_000
            assertTrue("expected SyncCancelled, got $outcome", outcome.exceptionOrNull() is ApiException.SyncCancelled)
            assertTrue("cancel took $ms ms", ms < 2000)
            assertEquals(SyncStatus.Idle, d.syncStatus())
        }
        assertEquals(recorded, d.outboxStatus().pending)

        // Cancelling the coroutine does not stop the Rust sync (documented): the next sync is
        // refused until cancelSync() stops it.
        SilentHub().use { silent ->
            d.configureSync(silent.url, "dev-silent", TestTokens("t"))
            val job = async(Dispatchers.IO) { d.syncNow() }
            assertTrue(silent.accepted.await(10, TimeUnit.SECONDS))
            job.cancel()
            try { job.await(); fail("the cancelled coroutine returned") } catch (_: CancellationException) {}
            assertThrows<ApiException.AlreadySyncing> { runBlocking { d.syncNow() } }
            d.cancelSync()
        }

        // Then the real hub gets everything, once. Nothing awaited the aborted sync above, so
        // its directory lock may take a moment to go: AlreadySyncing is allowed for up to 5 s.
        val (deviceId, token) = hub.addDevice()
        d.configureSync(hub.url, deviceId, TestTokens(token))
        val deadline = System.nanoTime() + 5_000_000_000L
        var summary: SyncSummary? = null
        while (summary == null) {
            try {
                summary = d.syncNow()
            } catch (e: ApiException.AlreadySyncing) {
                if (System.nanoTime() > deadline) throw AssertionError("the cancelled sync still holds the directory after 5 s", e)
                kotlinx.coroutines.delay(50)
            }
        }
        assertEquals(recorded, summary.eventsUploaded)
        assertEquals(recorded.toLong(), hub.device(deviceId)["events_received"])
        assertNotEquals(0L, recorded.toLong())
    }

    @Test
    fun remoteSessionJoinUrlControlAndEnd() = runBlocking {
        val d = device()
        val (deviceId, token) = hub.addDevice()
        d.configureSync(hub.url, deviceId, TestTokens(token))
        withContext(Dispatchers.IO) { d.syncNow() } // Cardiozen v2: a session presents a version the hub offers
        val call = d.startCall("hcp-test-1", CallChannel.REMOTE, CARDIOZEN, null).callId

        assertThrows<ApiException.InvalidInput> { d.openRemoteSession(call, 0U, false) }
        val s = withContext(Dispatchers.IO) { d.openRemoteSession(call, 30U, false) }
        assertTrue(s.joinUrl(), Regex("^" + Regex.escape(hub.url) + "/r/[0-9a-f]{64}$").matches(s.joinUrl()))
        assertTrue(s.recorded())
        assertTrue(s.expiresAtMs() > System.currentTimeMillis() + 29 * 60 * 1000)

        fun <T : RemoteEvent> await(type: Class<T>): T {
            val deadline = System.nanoTime() + 10_000_000_000L
            val seen = mutableListOf<RemoteEvent>()
            while (System.nanoTime() < deadline) {
                val e = s.nextEvent(1000UL) ?: continue
                if (type.isInstance(e)) return type.cast(e)
                seen.add(e)
            }
            throw AssertionError("no ${type.simpleName} within 10 s; saw $seen")
        }
        withContext(Dispatchers.IO) { await(RemoteEvent.Connected::class.java) }
        assertEquals(RemoteStatus(RemoteConnection.Connected, RemoteControl.REP, emptyList()), s.status())
        val page = java.net.URI(s.joinUrl()).toURL().openConnection() as java.net.HttpURLConnection
        assertEquals(200, page.responseCode)
        page.disconnect()
        s.setControl(RemoteControl.HCP)
        assertEquals(RemoteControl.HCP, s.status().control)
        assertThrows<ApiException.InvalidInput> { s.pointer(RemotePoint(1.5, 0.5)) }
        s.pointer(null)

        withContext(Dispatchers.IO) { s.end() }
        withContext(Dispatchers.IO) { await(RemoteEvent.Ended::class.java) }
        assertEquals(RemoteConnection.Ended, s.status().connection)
        val gone = java.net.URI(s.joinUrl()).toURL().openConnection() as java.net.HttpURLConnection
        assertEquals(410, gone.responseCode)
        gone.disconnect()
        s.end() // idempotent
        assertThrows<ApiException.NotFound> { s.setControl(RemoteControl.REP) }
        s.close()
        d.endCall(call)
    }

    @Test
    fun versionIsReported() {
        assertTrue(Regex("""^\d+\.\d+\.\d+""").containsMatchIn(edetailVersion()))
    }
}
