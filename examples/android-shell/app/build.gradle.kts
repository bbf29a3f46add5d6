// Sketch of the app module. Versions are those current when this was written; bump them.
// The library comes from scripts/build-android-aar.sh (run on a machine with the Android NDK):
//   bash scripts/build-android-aar.sh
//   cp target/android/edetail-ffi.aar examples/android-shell/app/libs/
plugins {
    id("com.android.application") version "8.7.3"
    id("org.jetbrains.kotlin.android") version "2.1.0"
}

android {
    namespace = "com.example.edetailshell"
    compileSdk = 35
    defaultConfig {
        applicationId = "com.example.edetailshell"
        minSdk = 26 // registerDefaultNetworkCallback (24), WebResourceResponse with status/headers (21)
        targetSdk = 35
        versionCode = 1
        versionName = "0.1"
        // The .aar ships arm64-v8a, armeabi-v7a and x86_64 (emulators); nothing else.
        ndk { abiFilters += listOf("arm64-v8a", "armeabi-v7a", "x86_64") }
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
    sourceSets["main"].kotlin.srcDirs("src/main/kotlin")
    buildTypes {
        release {
            isMinifyEnabled = true
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
        }
    }
}

dependencies {
    // edetail: the generated Kotlin bindings (package uniffi.edetail_ffi) + libedetail_ffi.so per ABI.
    implementation(files("libs/edetail-ffi.aar"))
    // Option B: implementation(project(":edetail-ffi")) with the module included in settings.gradle.kts.

    // What the generated bindings need at run time: JNA (the @aar variant carries Android's
    // libjnidispatch.so) and coroutines (async exports are suspend functions).
    implementation("net.java.dev.jna:jna:5.17.0@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")

    // What the shell itself uses.
    implementation("androidx.activity:activity-ktx:1.9.3")
    implementation("androidx.lifecycle:lifecycle-process:2.8.7")
    implementation("androidx.lifecycle:lifecycle-runtime-ktx:2.8.7")
    implementation("androidx.webkit:webkit:1.12.1") // WebViewCompat.addDocumentStartJavaScript
    implementation("androidx.work:work-runtime-ktx:2.10.0")
}
