// Asset serving: every request to the shell's one origin is answered by the library
// (resolveAsset), streamed in chunks, with the WebView's Range header passed through so
// video seeking works. Links out of the deck are refused: the rep is presenting, offline.
package com.example.edetailshell

import android.webkit.WebResourceRequest
import android.webkit.WebResourceResponse
import android.webkit.WebView
import android.webkit.WebViewClient
import java.io.IOException
import java.io.InputStream
import uniffi.edetail_ffi.ApiException
import uniffi.edetail_ffi.AssetResponse
import uniffi.edetail_ffi.EdetailDevice

/** One stable origin for every bundle, so localStorage and `../shared/` paths keep working. */
const val HOST = "appassets.androidplatform.net" // the unused domain Android reserves for app-served content
const val ORIGIN = "https://$HOST"

class SlideWebViewClient(private val device: EdetailDevice) : WebViewClient() {
    // Called on a WebView I/O thread, never the UI thread.
    override fun shouldInterceptRequest(view: WebView, request: WebResourceRequest): WebResourceResponse? {
        if (request.url.host != HOST) return null
        val range = request.requestHeaders.entries.firstOrNull { it.key.equals("Range", ignoreCase = true) }?.value
        val asset = device.resolveAsset(request.url.encodedPath ?: "/", range)
        val status = asset.status().toInt()
        return WebResourceResponse(
            asset.mimeType(),
            null, // no charset: a page's <meta charset> decides, else the WebView's UTF-8 default
            status,
            if (status < 300) "OK" else "Error", // WebView wants a reason phrase; the status is what counts
            asset.headers().associate { it.name to it.value },
            AssetStream(asset),
        )
    }

    // A link out of the deck (a reference's website) stays closed.
    override fun shouldOverrideUrlLoading(view: WebView, request: WebResourceRequest) = request.url.host != HOST
}

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
        if (len == 0) return 0
        if (!fill()) return -1
        val n = minOf(len, chunk.size - pos)
        System.arraycopy(chunk, pos, b, off, n)
        pos += n
        return n
    }

    // The WebView closes the stream when done or when the request is cancelled (a seek, a new
    // slide): free the Rust object and its open file now rather than at garbage collection.
    override fun close() = asset.destroy()

    private companion object {
        const val CHUNK: UInt = 262_144u // 256 KiB per read
    }
}
