// Sketch: the shell as a standalone Gradle build. Not built on the machines that wrote it (no
// Android SDK there): see README.md.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "edetail-android-shell"
include(":app")

// Option B (instead of the .aar in app/libs): build the library from the Gradle module that
// scripts/build-android-aar.sh lays out, as part of this build.
// include(":edetail-ffi")
// project(":edetail-ffi").projectDir = file("../../target/android/edetail-ffi")
