// Remote detailing (ADR 0023): the call on screen presented to doctors following from a link.
// "Present remotely" opens a session for the open call (a network request: on Dispatchers.IO)
// and shares its join link through the share sheet; a loop on Dispatchers.IO reads the
// session's events and updates the bar on the main thread. Every slide the call moves to
// reaches the doctors by itself; with control handed over, their navigation moves the call and
// the shell loads the slide it moved to.
package com.example.edetailshell

import android.content.Intent
import android.graphics.Color
import android.view.MotionEvent
import android.view.View
import android.widget.Button
import android.widget.LinearLayout
import android.widget.TextView
import android.widget.Toast
import androidx.activity.ComponentActivity
import androidx.core.view.isVisible
import androidx.lifecycle.lifecycleScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import uniffi.edetail_ffi.EdetailDevice
import uniffi.edetail_ffi.RemoteControl
import uniffi.edetail_ffi.RemoteEvent
import uniffi.edetail_ffi.RemotePoint
import uniffi.edetail_ffi.RemoteSession

/** The call screen's remote bar; `showSlide(urlPath)` loads the slide the doctors moved the call to. */
class RemotePresenting(private val activity: ComponentActivity, private val device: EdetailDevice, private val showSlide: (String) -> Unit) {
    // Main-thread state. The session is released by the event loop when it stops.
    private var session: RemoteSession? = null
    private val waiting = mutableListOf<String>() // attendees in the waiting room (opaque ids, never names)
    private var hcpLeads = false
    private var reconnecting = false
    private var lastPointerAt = 0L

    val bar = LinearLayout(activity).apply { orientation = LinearLayout.VERTICAL }
    private val banner = TextView(activity).apply { text = "Connection lost: reconnecting…"; setBackgroundColor(Color.YELLOW); bar.addView(this) }
    private val present = button("Present remotely") { if (session == null) open() else share() }
    private val admit = button("Admit") { session?.let { s -> runCatching { s.admit(waiting.removeAt(0)) }; render() } }
    private val control = button("Give control") {
        val to = if (hcpLeads) RemoteControl.REP else RemoteControl.HCP
        session?.let { s -> runCatching { s.setControl(to) }.onSuccess { hcpLeads = to == RemoteControl.HCP } }
        render()
    }
    private val end = button("End meeting") {
        val s = session ?: return@button
        activity.lifecycleScope.launch(Dispatchers.IO) { runCatching { s.end() }.onFailure { toast("The meeting could not be ended: ${it.message}") } }
    }

    init { render() }

    private fun button(label: String, onClick: () -> Unit) = Button(activity).apply { text = label; setOnClickListener { onClick() }; bar.addView(this) }

    private fun render() {
        present.text = if (session == null) "Present remotely" else "Share link"
        admit.isVisible = waiting.isNotEmpty()
        admit.text = "Admit (${waiting.size} waiting)"
        control.isVisible = session != null
        control.text = if (hcpLeads) "Take control back" else "Give control"
        end.isVisible = session != null
        banner.isVisible = session != null && reconnecting
    }

    private fun toast(text: String) = activity.runOnUiThread { Toast.makeText(activity, text, Toast.LENGTH_LONG).show() }

    /** Opens (or, for a call already presented, resumes) the call's session: blocks on the network. */
    private fun open() {
        present.isEnabled = false
        activity.lifecycleScope.launch(Dispatchers.IO) {
            val opened = runCatching { device.openRemoteSession(device.openCall() ?: error("no open call"), SESSION_MINUTES, true) }
            withContext(Dispatchers.Main) {
                present.isEnabled = true
                opened.onSuccess { session = it; hcpLeads = false; render(); share(); listen(it) }
                    .onFailure { toast("Cannot present remotely: ${it.message}") } // AuthRequired, SyncFailed (offline)…
            }
        }
    }

    /** The join link carries the session's secret: share it only with those invited. */
    private fun share() {
        val link = session?.joinUrl() ?: return
        activity.startActivity(Intent.createChooser(Intent(Intent.ACTION_SEND).setType("text/plain").putExtra(Intent.EXTRA_TEXT, link), "Invite to the meeting"))
    }

    /** Reads the session's events until it ends; `nextEvent` blocks, so on an IO thread, never the main one. */
    private fun listen(s: RemoteSession) = activity.lifecycleScope.launch(Dispatchers.IO) {
        try {
            while (isActive) {
                val event = s.nextEvent(POLL_MS) ?: continue // none within POLL_MS: check for cancellation
                withContext(Dispatchers.Main) { handle(event) }
                if (event is RemoteEvent.Ended || event is RemoteEvent.Replaced) break
            }
        } finally {
            // The activity is going away: end the meeting with the call (a network request), then release the session.
            if (activity.isFinishing) runCatching { s.end() }
            s.close()
        }
    }

    private fun handle(event: RemoteEvent) {
        when (event) {
            is RemoteEvent.AttendeeJoined -> if (event.waiting) waiting += event.attendee else waiting -= event.attendee
            is RemoteEvent.AttendeeLeft -> waiting -= event.attendee
            is RemoteEvent.Navigated -> showSlide(event.url) // performed and recorded (HCP-led) by the library
            is RemoteEvent.Disconnected -> reconnecting = true
            RemoteEvent.Connected -> reconnecting = false
            RemoteEvent.Ended, RemoteEvent.Replaced -> { session = null; waiting.clear(); reconnecting = false; hcpLeads = false }
            else -> return // refused navigation, taps
        }
        render()
    }

    /** Touches on the slide show the rep's pointer to the doctors (at most every POINTER_MS); lifting the finger hides it. */
    fun touched(view: View, touch: MotionEvent) {
        val s = session ?: return
        val up = touch.actionMasked == MotionEvent.ACTION_UP || touch.actionMasked == MotionEvent.ACTION_CANCEL
        if (!up && touch.eventTime - lastPointerAt < POINTER_MS) return
        lastPointerAt = touch.eventTime
        val at = RemotePoint((touch.x / view.width).toDouble().coerceIn(0.0, 1.0), (touch.y / view.height).toDouble().coerceIn(0.0, 1.0))
        runCatching { s.pointer(if (up) null else at) }
    }
}

private const val SESSION_MINUTES = 60u
private const val POLL_MS = 1_000uL
private const val POINTER_MS = 50L
