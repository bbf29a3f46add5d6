// Presenting: a WebView on the shell's origin, a call on the first presentable bundle, and the
// slide bridge. edetail.js (served at /_edetail/edetail.js) posts each message through
// `window.EdetailAndroid.postMessage(string)`; the library answers and the reply goes back
// through `window.edetail._receive(string)`. The shell never interprets a message except to
// follow a navigation the library asked for.
package com.example.edetailshell

import android.annotation.SuppressLint
import android.net.Uri
import android.os.Bundle
import android.webkit.JavascriptInterface
import android.webkit.WebView
import androidx.activity.ComponentActivity
import androidx.lifecycle.Lifecycle
import androidx.lifecycle.lifecycleScope
import androidx.lifecycle.repeatOnLifecycle
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import org.json.JSONObject
import uniffi.edetail_ffi.CallChannel
import uniffi.edetail_ffi.ContentStatus

class PresenterActivity : ComponentActivity() {
    private val app get() = application as EdetailApp
    private val device get() = app.device
    private lateinit var webView: WebView

    @SuppressLint("SetJavaScriptEnabled") // the slides are signed, approved content served only from our origin
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        webView = WebView(this).apply {
            settings.javaScriptEnabled = true
            settings.domStorageEnabled = true // slides keep state in localStorage
            settings.mediaPlaybackRequiresUserGesture = false
            settings.allowFileAccess = false
            settings.allowContentAccess = false
            webViewClient = SlideWebViewClient(device)
            addJavascriptInterface(Bridge(), "EdetailAndroid")
        }
        setContentView(webView)
        app.onDevice {
            if (savedInstanceState != null && device.openCall() != null) {
                // Recreated (a configuration change) with the call still open: same call, same slide.
                runOnUiThread { webView.restoreState(savedInstanceState) }
                return@onDevice
            }
            // A real app lets the rep pick the HCP and the deck; the shell presents the first one.
            val bundle = device.bundles().firstOrNull { it.status == ContentStatus.READY } ?: return@onDevice
            val call = device.startCall(null, CallChannel.FACE_TO_FACE, bundle.bundleId, null)
            show(call.first.url)
        }
        // While visible, a heartbeat every few seconds: after a crash, dwell ends at the last one.
        lifecycleScope.launch {
            repeatOnLifecycle(Lifecycle.State.STARTED) {
                while (true) { app.onDevice { device.heartbeat() }; delay(HEARTBEAT_MS) }
            }
        }
    }

    override fun onSaveInstanceState(outState: Bundle) {
        super.onSaveInstanceState(outState)
        webView.saveState(outState)
    }

    override fun onDestroy() {
        if (isFinishing) {
            app.onDevice { device.openCall()?.let { device.endCall(it) } }
            SyncWorker.schedule(this) // upload the call soon
        }
        webView.destroy()
        super.onDestroy()
    }

    /** Loads a slide: the library's URL paths are plain paths, so percent-encode them ("50% off.html"). */
    private fun show(path: String) = runOnUiThread { webView.loadUrl(ORIGIN + Uri.encode(path, "/")) }

    /** Called by edetail.js on the WebView's JavaBridge thread; the page waits until we return. */
    inner class Bridge {
        @JavascriptInterface
        fun postMessage(message: String) = app.onDevice {
            val reply = device.handleBridgeMessage(message)
            val next = navigationTarget(message, reply)
            runOnUiThread {
                webView.evaluateJavascript("window.edetail && window.edetail._receive(${JSONObject.quote(reply)})", null)
                next?.let { show(it) }
            }
        }
    }

    private companion object {
        const val HEARTBEAT_MS = 5_000L

        /** The URL path to load when the message was a `navigate` the library accepted, else null. */
        fun navigationTarget(message: String, reply: String): String? = runCatching {
            if (JSONObject(message).optString("method") != "navigate") return null
            JSONObject(reply).optJSONObject("result")?.optString("url")?.takeIf { it.isNotEmpty() }
        }.getOrNull()
    }
}
