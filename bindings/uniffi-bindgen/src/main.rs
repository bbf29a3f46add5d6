//! `uniffi-bindgen`: generates the Kotlin, Swift and Python bindings of `edetail-ffi` from the
//! built library (library mode). Kept a separate crate: it is most of a clean build.

fn main() {
    uniffi::uniffi_bindgen_main()
}
