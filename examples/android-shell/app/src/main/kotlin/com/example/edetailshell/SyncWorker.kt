// Background sync with WorkManager: one sync per run, only with a network, stopped in Rust
// when WorkManager stops the worker, and the next run scheduled when the engine asks for it.
package com.example.edetailshell

import android.content.Context
import android.util.Log
import androidx.work.Constraints
import androidx.work.CoroutineWorker
import androidx.work.ExistingPeriodicWorkPolicy
import androidx.work.ExistingWorkPolicy
import androidx.work.NetworkType
import androidx.work.OneTimeWorkRequestBuilder
import androidx.work.PeriodicWorkRequestBuilder
import androidx.work.WorkManager
import androidx.work.WorkerParameters
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.CancellationException
import uniffi.edetail_ffi.ApiException

class SyncWorker(context: Context, params: WorkerParameters) : CoroutineWorker(context, params) {
    override suspend fun doWork(): Result {
        val device = (applicationContext as EdetailApp).device
        return try {
            val summary = device.syncNow()
            Log.i(TAG, "sync done: ${summary.eventsUploaded} events uploaded, ${summary.bundlesActivated.size} bundles updated")
            Result.success()
        } catch (e: CancellationException) {
            // WorkManager stopped us (network lost, quota): a cancelled coroutine does not stop
            // the Rust sync, cancelSync() does. Everything done so far is kept and resumed.
            device.cancelSync()
            throw e
        } catch (e: ApiException) {
            Log.w(TAG, "sync: ${e.javaClass.simpleName}")
            when (e) {
                is ApiException.AlreadySyncing -> Result.success() // another run is doing it
                is ApiException.AuthRequired, is ApiException.SyncNotConfigured -> Result.failure() // sign in again
                is ApiException.SyncFailed -> if (e.retryable) retryLater(device.nextSyncInMs()) else Result.failure()
                else -> retryLater(device.nextSyncInMs()) // offline, cancelled, storage full…
            }
        }
    }

    /** Schedules the next run when the engine suggests (its backoff), after this one ends. */
    private fun retryLater(engineDelayMs: ULong?): Result =
        Result.success().also { schedule(applicationContext, engineDelayMs?.toLong() ?: DEFAULT_RETRY_MS, ExistingWorkPolicy.APPEND_OR_REPLACE) }

    companion object {
        private const val DEFAULT_RETRY_MS = 15 * 60 * 1000L
        private val NETWORK = Constraints.Builder().setRequiredNetworkType(NetworkType.CONNECTED).build()

        /** A sync as soon as there is a network (KEEP: a pending engine backoff is respected), plus one every few hours. */
        fun schedule(context: Context, delayMs: Long = 0, policy: ExistingWorkPolicy = ExistingWorkPolicy.KEEP) {
            val work = WorkManager.getInstance(context)
            val once = OneTimeWorkRequestBuilder<SyncWorker>().setConstraints(NETWORK).setInitialDelay(delayMs, TimeUnit.MILLISECONDS).build()
            work.enqueueUniqueWork("edetail-sync", policy, once)
            val periodic = PeriodicWorkRequestBuilder<SyncWorker>(4, TimeUnit.HOURS).setConstraints(NETWORK).build()
            work.enqueueUniquePeriodicWork("edetail-sync-periodic", ExistingPeriodicWorkPolicy.KEEP, periodic)
        }
    }
}
