// The process-wide half of the integration: one EdetailDevice per signed-in rep, opened when
// the process starts (also when WorkManager starts it for a background sync), told about
// connectivity and app lifecycle, and configured to sync with the app's SSO token.
package com.example.edetailshell

import android.app.Application
import android.net.ConnectivityManager
import android.net.Network
import android.net.NetworkCapabilities
import android.util.Log
import androidx.lifecycle.DefaultLifecycleObserver
import androidx.lifecycle.LifecycleOwner
import androidx.lifecycle.ProcessLifecycleOwner
import java.io.File
import java.util.concurrent.Executors
import uniffi.edetail_ffi.AppLifecycle
import uniffi.edetail_ffi.DeviceOptions
import uniffi.edetail_ffi.EdetailDevice
import uniffi.edetail_ffi.TokenProvider
import uniffi.edetail_ffi.TokenProviderException

const val TAG = "edetail"

/** What edetail needs from the app's sign-in. The app implements it with its SSO (MSAL, AppAuth…). */
interface RepSession {
    val repId: String // the rep's id, never a name
    val hubUrl: String
    val deviceId: String // issued by the hub when this tablet was enrolled
    suspend fun accessToken(): String? // null: signed out
    suspend fun refreshAccessToken()
}

/** PLACEHOLDER: replace with your SSO. Without a token, sync stops with ApiException.AuthRequired. */
object PlaceholderSession : RepSession {
    override val repId = "rep-placeholder"
    override val hubUrl = "https://hub.example.invalid"
    override val deviceId = "device-placeholder"
    override suspend fun accessToken(): String? = null
    override suspend fun refreshAccessToken() {}
}

/** The library asks for the bearer token on every request and calls refresh() after a 401. */
class SessionTokens(private val session: RepSession) : TokenProvider {
    override suspend fun token(): String = session.accessToken() ?: throw TokenProviderException.Unavailable("signed out")

    override suspend fun refresh() = session.refreshAccessToken()
}

class EdetailApp : Application() {
    lateinit var device: EdetailDevice
        private set

    // One thread for the device's small writes (bridge messages, lifecycle, heartbeats):
    // off the UI thread, and in the order they happened.
    private val deviceThread = Executors.newSingleThreadExecutor()

    fun onDevice(work: () -> Unit) = deviceThread.execute { try { work() } catch (e: Exception) { Log.w(TAG, "edetail: ${e.javaClass.simpleName}: ${e.message}") } }

    override fun onCreate() {
        super.onCreate()
        val session: RepSession = PlaceholderSession
        // Opening is a short SQLite open + recovery of a crashed call; apps that enforce
        // StrictMode can move it to a background initializer.
        val publisherKey = assets.open("edetail/publisher.pub").bufferedReader().use { it.readText() }
        device = EdetailDevice.open(DeviceOptions(dataDir = File(filesDir, "edetail/${session.repId}").path, repId = session.repId, publisherKeys = listOf(publisherKey)))
        // HTTPS trust: the system and device-management CAs (Rust's TLS cannot read Android's store itself).
        val cas = java.security.KeyStore.getInstance("AndroidCAStore").apply { load(null) }
        val roots = cas.aliases().toList().mapNotNull { cas.getCertificate(it)?.encoded }
        device.configureSync(session.hubUrl, session.deviceId, SessionTokens(session), roots)
        device.setOnline(false) // until the system reports a validated network (a captive portal is not online)
        getSystemService(ConnectivityManager::class.java).registerDefaultNetworkCallback(object : ConnectivityManager.NetworkCallback() {
            override fun onCapabilitiesChanged(network: Network, networkCapabilities: NetworkCapabilities) = device.setOnline(networkCapabilities.hasCapability(NetworkCapabilities.NET_CAPABILITY_VALIDATED))

            override fun onLost(network: Network) = device.setOnline(false)
        })
        ProcessLifecycleOwner.get().lifecycle.addObserver(object : DefaultLifecycleObserver {
            override fun onStart(owner: LifecycleOwner) = onDevice { device.setLifecycle(AppLifecycle.FOREGROUND) }
            override fun onStop(owner: LifecycleOwner) = onDevice { device.setLifecycle(AppLifecycle.BACKGROUND) }
        })
        SyncWorker.schedule(this)
    }
}
