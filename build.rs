//! Build script: on a Windows host with the WDK (feature `wdk`), hand over to
//! windows-drivers-rs to configure the driver link; elsewhere there is nothing to do.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(all(windows, feature = "wdk"))]
    wdk_build::configure_wdk_binary_build()?;
    Ok(())
}
