// Presenting: a WebView on the shell's origin, a call on the first presentable bundle, and the
// slide bridge. edetail.js (served at /_edetail/edetail.js) posts each message through
// `window.EdetailAndroid.postMessage(string)`; the library answers and the reply goes back
// through `window.edetail._receive(string)`. The shell never interprets a message except to
// follow a navigation the library asked for. Decks made for other vendors (ADR 0013): the
// runtime scripts run first in every slide (a document-start script where the WebView has the
// feature, else <script> tags put into each entry page), and slides are scaled to fit like an iPad.
package com.example.edetailshell

import android.annotation.SuppressLint
import android.net.Uri
import android.os.Bundle
import android.view.GestureDetector
import android.view.Gravity
import android.view.MotionEvent
import android.view.ViewGroup.LayoutParams.WRAP_CONTENT
import android.webkit.JavascriptInterface
import android.webkit.WebView
import android.widget.FrameLayout
import androidx.activity.ComponentActivity
import androidx.lifecycle.Lifecycle
import androidx.lifecycle.lifecycleScope
import androidx.lifecycle.repeatOnLifecycle
import androidx.webkit.WebViewCompat
import kotlin.math.abs
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import org.json.JSONObject
import uniffi.edetail_ffi.CallChannel
import uniffi.edetail_ffi.ContentStatus
import uniffi.edetail_ffi.Navigation

class PresenterActivity : ComponentActivity() {
    private val app get() = application as EdetailApp
    private val device get() = app.device
    private lateinit var webView: WebView
    private val client by lazy { SlideWebViewClient(device) }
    private val remote by lazy { RemotePresenting(this, device) { url -> show(url) } }

    @SuppressLint("SetJavaScriptEnabled") // the slides are signed, approved content served only from our origin
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        webView = WebView(this).apply {
            settings.javaScriptEnabled = true
            settings.domStorageEnabled = true // slides keep state in localStorage
            settings.mediaPlaybackRequiresUserGesture = false
            settings.allowFileAccess = false
            settings.allowContentAccess = false
            // Slides made for an iPad declare <meta name="viewport" content="width=2048px">: scale them to fit.
            settings.useWideViewPort = true
            settings.loadWithOverviewMode = true
            webViewClient = client
            addJavascriptInterface(Bridge(), "EdetailAndroid")
            setOnTouchListener { view, event -> swipes.onTouchEvent(event); remote.touched(view, event); false } // the page still gets every touch
        }
        setContentView(FrameLayout(this).apply { addView(webView); addView(remote.bar, FrameLayout.LayoutParams(WRAP_CONTENT, WRAP_CONTENT, Gravity.TOP or Gravity.END)) })
        app.onDevice {
            // A real app lets the rep pick the HCP and the deck; the shell presents the first one.
            val bundle = device.bundles().firstOrNull { it.status == ContentStatus.READY } ?: return@onDevice
            client.slides = bundle.slides.associate { Uri.decode(it.url) to it.bridge }
            // The runtime scripts first in every slide and frame: a document-start script where the installed
            // WebView supports it (androidx.webkit), else the client puts <script> tags into each entry page.
            runOnUiThread { if (!client.injectTags) WebViewCompat.addDocumentStartJavaScript(webView, client.runtimeScript(), setOf(ORIGIN)) }
            // Recreated (a configuration change) with the call still open: same call, same slide.
            if (savedInstanceState != null && device.openCall() != null) return@onDevice runOnUiThread { webView.restoreState(savedInstanceState) }
            val call = device.startCall(null, CallChannel.FACE_TO_FACE, bundle.bundleId, null)
            show(call.first.url)
        }
        // While visible, a heartbeat every few seconds: after a crash, dwell ends at the last one.
        lifecycleScope.launch { repeatOnLifecycle(Lifecycle.State.STARTED) { while (true) { app.onDevice { device.heartbeat() }; delay(HEARTBEAT_MS) } } }
    }

    override fun onSaveInstanceState(outState: Bundle) { super.onSaveInstanceState(outState); webView.saveState(outState) }

    override fun onDestroy() {
        if (isFinishing) {
            app.onDevice { device.openCall()?.let { device.endCall(it) } }
            SyncWorker.schedule(this) // upload the call soon
        }
        webView.destroy()
        super.onDestroy()
    }

    /** Loads a slide: the library's URL paths are already percent-encoded and may carry a route (`?path=`, `#`). */
    private fun show(path: String) = runOnUiThread { webView.loadUrl(ORIGIN + path) }

    /** The shell's own navigation (a swipe): the slide is reloaded only when the deck moved. */
    private fun go(to: Navigation) = app.onDevice {
        val target = device.navigate(device.openCall() ?: return@onDevice, to, false)
        if (target.moved) show(target.url) // "next" on the last slide, "previous" on the first: nothing
    }

    /** A horizontal fling is a swipe to the next / previous slide. */
    private val swipes by lazy { GestureDetector(this, object : GestureDetector.SimpleOnGestureListener() {
        override fun onFling(e1: MotionEvent?, e2: MotionEvent, velocityX: Float, velocityY: Float) = (abs(velocityX) > 2 * abs(velocityY))
            .also { if (it) go(if (velocityX < 0) Navigation.Next else Navigation.Previous) }
    }) }

    /** Called by edetail.js on the WebView's JavaBridge thread; the page waits until we return. */
    inner class Bridge {
        @JavascriptInterface fun postMessage(message: String) = app.onDevice {
            val reply = device.handleBridgeMessage(message)
            runOnUiThread { webView.evaluateJavascript("window.edetail && window.edetail._receive(${JSONObject.quote(reply)})", null) }
            navigationTarget(message, reply)?.let { show(it) } // queued after the reply
        }
    }
}

private const val HEARTBEAT_MS = 5_000L

/**
 * The URL path to load when the message was a `navigate` the library accepted, or its result
 * carries a `navigate` (a vendor call that moved the deck, ADR 0013); null when nothing moved.
 */
private fun navigationTarget(message: String, reply: String): String? = runCatching {
    val result = JSONObject(reply).optJSONObject("result") ?: return null
    val nav = if (JSONObject(message).optString("method") == "navigate") result else result.optJSONObject("navigate") ?: return null
    nav.optString("url").takeIf { it.isNotEmpty() && nav.optBoolean("moved", true) }
}.getOrNull()
