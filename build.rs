//! Build script: on a Windows host with the WDK (feature `wdk`), hand over to
//! windows-drivers-rs to configure the driver link, and compile the SEH user-copy helper
//! `src/glue/usercopy.c` with cl.exe. Elsewhere there is nothing to do: the cross build
//! (`scripts/build-sys.sh`) compiles the helper with clang itself, and host builds get
//! `PfCopyFromUser`/`PfCopyToUser` from fltsim.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(all(windows, feature = "wdk"))]
    {
        wdk_build::configure_wdk_binary_build()?;
        println!("cargo::rerun-if-changed=src/glue/usercopy.c");
        cc::Build::new()
            .file("src/glue/usercopy.c")
            // Kernel-mode code: no C++ exceptions/RTTI, kernel-safe code generation.
            .flag("/kernel")
            // No default-library directives in the object (no C runtime in a driver).
            .flag("/Zl")
            // The helper has no local buffers; no security-cookie references.
            .flag("/GS-")
            .warnings_into_errors(true)
            .compile("portfilter_usercopy");
    }
    Ok(())
}
