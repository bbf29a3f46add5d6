// Asset serving: every request to the shell's one origin is answered by the library
// (resolveAsset), streamed in chunks, with the WebView's Range header passed through so
// video seeking works. Links out of the deck are refused: the rep is presenting, offline.
// Vendor containers (ADR 0013): `veeva:` and `objc://` navigations are handed to the page's
// containers.js, and the runtime scripts that must run first in every slide are built here.
package com.example.edetailshell

import android.webkit.WebResourceRequest
import android.webkit.WebResourceResponse
import android.webkit.WebView
import android.webkit.WebViewClient
import androidx.webkit.WebViewFeature
import java.io.IOException
import java.io.InputStream
import org.json.JSONArray
import org.json.JSONObject
import uniffi.edetail_ffi.ApiException
import uniffi.edetail_ffi.AssetResponse
import uniffi.edetail_ffi.BridgeKind
import uniffi.edetail_ffi.EdetailDevice

/** One stable origin for every bundle, so localStorage and `../shared/` paths keep working. */
const val HOST = "appassets.androidplatform.net" // the unused domain Android reserves for app-served content
const val ORIGIN = "https://$HOST"

class SlideWebViewClient(private val device: EdetailDevice) : WebViewClient() {
    /** The deck's entry pages (decoded URL paths) and their manifest `bridge`: set before its first slide loads. */
    @Volatile var slides: Map<String, BridgeKind> = emptyMap()

    /** WebViews without document-start scripts (androidx.webkit) get the runtime's `<script>` tags in each entry page. */
    val injectTags = !WebViewFeature.isFeatureSupported(WebViewFeature.DOCUMENT_START_SCRIPT)

    // Called on a WebView I/O thread, never the UI thread.
    override fun shouldInterceptRequest(view: WebView, request: WebResourceRequest): WebResourceResponse? {
        if (request.url.host != HOST) return null
        val range = request.requestHeaders.entries.firstOrNull { it.key.equals("Range", ignoreCase = true) }?.value
        val asset = device.resolveAsset(request.url.encodedPath ?: "/", range)
        val status = asset.status().toInt()
        val bridge = slides[request.url.path].takeIf { injectTags && status == 200 && range == null }
        // An entry page given the tags is read whole, so its Content-Length no longer holds.
        val headers = asset.headers().filter { bridge == null || !it.name.equals("Content-Length", ignoreCase = true) }.associate { it.name to it.value }
        // No charset: a page's <meta charset> decides, else the WebView's UTF-8 default. WebView wants
        // a reason phrase; the status is what counts.
        val body = if (bridge == null) AssetStream(asset) else withRuntimeTags(asset, bridge) // after reading the headers: it may free the asset
        return WebResourceResponse(asset.mimeType(), null, status, if (status < 300) "OK" else "Error", headers, body)
    }

    /** The page with the runtime's `<script src>` tags right after `<head>`, before any content script. */
    private fun withRuntimeTags(asset: AssetResponse, bridge: BridgeKind): InputStream {
        // Latin-1 maps each byte to one char and back: the page's own encoding is left untouched.
        // (An unreadable page, a damaged blob, becomes an empty one: throwing here would crash the app.)
        val html = try { String(asset.readAll(), Charsets.ISO_8859_1) } catch (e: ApiException) { "" } finally { asset.destroy() }
        val at = (HEAD.find(html) ?: DOCTYPE.find(html))?.range?.last?.plus(1) ?: 0 // else at the very start
        return (html.substring(0, at) + runtimeScripts(bridge).joinToString("") { "<script src=\"/_edetail/$it\"></script>" } + html.substring(at))
            .byteInputStream(Charsets.ISO_8859_1)
    }

    /** edetail.js, containers.js and, in Veeva slides only, veeva-clm.js: one document-start script. */
    fun runtimeScript(): String {
        val veevaPages = JSONArray(slides.filterValues { it == BridgeKind.VEEVA }.keys)
        fun source(name: String) = device.resolveAsset("/_edetail/$name", null).let { try { String(it.readAll()) } finally { it.destroy() } }
        return runtimeScripts(BridgeKind.EDETAIL).joinToString("\n") { source(it) } +
            "\nif ($veevaPages.indexOf(decodeURIComponent(location.pathname)) >= 0) {\n${source(VEEVA_SCRIPT)}\n}\n"
    }

    // veeva: and objc:// URLs are vendor container calls: cancelled and handed to containers.js (the
    // URL as a JSON string literal). Any other link out of the deck (a reference's website) stays closed.
    override fun shouldOverrideUrlLoading(view: WebView, request: WebResourceRequest): Boolean {
        CONTAINER_CALLS[request.url.scheme?.lowercase()]?.let { view.evaluateJavascript("window.edetailContainers && $it(${JSONObject.quote(request.url.toString())})", null) }
        return request.url.host != HOST
    }

}

private const val VEEVA_SCRIPT = "veeva-clm.js"
private val HEAD = Regex("<head(\\s[^>]*)?>", RegexOption.IGNORE_CASE)
private val DOCTYPE = Regex("<!doctype[^>]*>", RegexOption.IGNORE_CASE)
private val CONTAINER_CALLS = mapOf("veeva" to "window.edetailContainers.veeva.request", "objc" to "window.edetailContainers.agnitio.invoke")

/** The runtime's scripts a slide with this `bridge` loads first, in order. */
private fun runtimeScripts(bridge: BridgeKind) = listOf("edetail.js", "containers.js") + if (bridge == BridgeKind.VEEVA) listOf(VEEVA_SCRIPT) else emptyList()

/** The body of an AssetResponse, pulled in chunks of at most CHUNK bytes: media is never loaded whole. */
class AssetStream(private val asset: AssetResponse) : InputStream() {
    private var chunk = ByteArray(0)
    private var pos = 0

    private fun fill(): Boolean {
        if (pos < chunk.size) return true
        chunk = try { asset.read(CHUNK) } catch (e: ApiException) { throw IOException(e) }
        pos = 0
        return chunk.isNotEmpty()
    }

    override fun read(): Int = if (fill()) chunk[pos++].toInt() and 0xff else -1

    override fun read(b: ByteArray, off: Int, len: Int): Int {
        if (len == 0 || !fill()) return if (len == 0) 0 else -1
        val n = minOf(len, chunk.size - pos)
        chunk.copyInto(b, off, pos, pos + n)
        return n.also { pos += it }
    }

    // The WebView closes the stream when done or when the request is cancelled (a seek, a new
    // slide): free the Rust object and its open file now rather than at garbage collection.
    override fun close() = asset.destroy()
}

private const val CHUNK: UInt = 262_144u // 256 KiB per read
