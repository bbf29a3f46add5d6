// Runs the Kotlin suite with JUnitCore and prints the plain "N passed, M failed" line CI reads
// (JUnitCore's own "OK (N tests)" is not parsed); exits 1 on any failure.
package edetail.bindings.test

import kotlin.system.exitProcess
import org.junit.runner.Description
import org.junit.runner.JUnitCore
import org.junit.runner.notification.Failure
import org.junit.runner.notification.RunListener

fun main() {
    val core = JUnitCore()
    var passed = 0
    core.addListener(object : RunListener() {
        private val failed = HashSet<Description>()
        override fun testFailure(failure: Failure) {
            failed.add(failure.description)
            println("  FAIL  ${failure.description.methodName ?: failure.description.displayName}: ${failure.message}")
            println(failure.trace.lineSequence().take(12).joinToString("\n") { "        $it" })
        }
        override fun testFinished(description: Description) {
            if (description !in failed) {
                passed++
                println("  ok    ${description.methodName}")
            }
        }
    })
    val result = core.run(EdetailDeviceTest::class.java)
    val failed = result.failureCount // includes failures outside a test (@BeforeClass)
    println("$passed passed, $failed failed")
    exitProcess(if (failed == 0 && result.runCount > 0) 0 else 1)
}
