//! Running the shipped driver image (`portfilter.sys`, PE32+ for x86_64-pc-windows-msvc)
//! under fltsim, instead of the driver's source compiled for Linux.
//!
//! * [`map`]: the PE loader (goblin): sections at their RVAs, base relocations, every
//!   import resolved by module and name — an import fltsim does not provide refuses the
//!   load, by name — and per-section protections, never writable and executable at once.
//! * [`imports`]: the routines an image may import, one line each, with their Windows x64
//!   entry points generated from the bindings' declarations ([`win64`]).
//! * [`win64`]: the calling-convention boundary both ways; every driver callback fltsim
//!   calls goes through `driver_call`, which uses the Windows x64 convention for code
//!   inside a loaded image.
//! * [`seh`]: exception dispatch for faults in the image (the SEH helper's `__try`).
//! * [`shadow`]: user buffers as the image's SEH helper touches them.
//!
//! One image at a time (one driver per machine). `DriverEntry` runs through
//! [`crate::load_driver`], so loading, unloading, pool accounting, leak reports and the
//! verifier are exactly those of the rlib build. Linux x86_64 only.

pub(crate) mod imports;
pub(crate) mod kernel_only;
mod map;
pub(crate) mod seh;
pub(crate) mod shadow;
pub(crate) mod win64;

pub use map::{LoadError, Mapped, Protection};
pub use seh::{ExceptionCounts, exception_counts};

use crate::driver::{self, DriverEntry};
use goblin::pe::PE;
use parking_lot::Mutex;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A mapped image and its decoded unwind data.
#[derive(Debug)]
pub(crate) struct Loaded {
    mapped: Mapped,
    unwind: seh::unwind::Table,
    name: String,
}

impl Loaded {
    pub fn base(&self) -> usize {
        self.mapped.base()
    }
    pub fn contains(&self, address: usize) -> bool {
        self.mapped.contains(address)
    }
    pub fn unwind(&self) -> &seh::unwind::Table {
        &self.unwind
    }
}

/// Facts about the loaded image, for tests and tools.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    /// Where it is mapped.
    pub base: usize,
    /// `SizeOfImage`.
    pub size: usize,
    /// The base it was linked for (the loader relocated it from there).
    pub preferred_base: u64,
    /// Protections as applied: headers, then each section.
    pub protections: Vec<Protection>,
    /// Functions with unwind data (`.pdata` entries).
    pub unwind_functions: usize,
}

static CURRENT: Mutex<Option<Arc<Loaded>>> = Mutex::new(None);
/// The loaded image's range, for the signal handler and [`runs_win64`] (lock-free).
static CODE_BASE: AtomicUsize = AtomicUsize::new(0);
static CODE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// Whether code at `address` follows the Windows x64 convention: it lies in the loaded
/// image. (Async-signal-safe.)
pub(crate) fn code_contains(address: usize) -> bool {
    let base = CODE_BASE.load(Ordering::Acquire);
    base != 0 && address >= base && address - base < CODE_SIZE.load(Ordering::Acquire)
}

/// See [`code_contains`]; the name says what `driver_call` asks.
pub(crate) fn runs_win64(address: usize) -> bool {
    code_contains(address)
}

pub(crate) fn current() -> Option<Arc<Loaded>> {
    CURRENT.lock().clone()
}

/// `name+0xRVA` for an address in the image, else the address.
pub(crate) fn describe(address: u64) -> String {
    match current() {
        Some(l) if l.contains(address as usize) => {
            format!("{}+{:#x}", l.name, address as usize - l.base())
        }
        _ => format!("{address:#x}"),
    }
}

/// The loaded image, if any.
#[must_use]
pub fn loaded_image() -> Option<ImageInfo> {
    current().map(|l| ImageInfo {
        base: l.mapped.base(),
        size: l.mapped.size(),
        preferred_base: l.mapped.preferred_base(),
        protections: l.mapped.protections().to_vec(),
        unwind_functions: l.unwind.len(),
    })
}

/// Every routine an image may import, as (module, name).
#[must_use]
pub fn provided_imports() -> Vec<(&'static str, &'static str)> {
    imports::all().iter().map(|p| (p.module, p.name)).collect()
}

/// Loads the driver image at `path`: maps it, then runs its `DriverEntry` as
/// [`crate::load_driver`] does for the rlib.
///
/// # Errors
/// [`LoadError`]; `DriverEntry`'s failure status as [`LoadError::DriverEntry`].
pub fn load_driver_image(path: &Path) -> Result<(), LoadError> {
    let bytes =
        std::fs::read(path).map_err(|e| LoadError::Io(format!("{}: {e}", path.display())))?;
    let name = path
        .file_name()
        .map_or_else(|| "image".to_owned(), |n| n.to_string_lossy().into_owned());
    load_driver_image_bytes(&name, &bytes)
}

/// [`load_driver_image`] from bytes; `name` appears in messages.
///
/// # Errors
/// As [`load_driver_image`].
pub fn load_driver_image_bytes(name: &str, bytes: &[u8]) -> Result<(), LoadError> {
    if driver::is_loaded() {
        return Err(LoadError::AlreadyLoaded);
    }
    if !crate::usercopy::install_fault_handling() || !kernel_only::init() {
        return Err(LoadError::Map("cannot reserve fltsim's fault pages".into()));
    }
    let loaded = map_image(name, bytes)?;
    let entry = loaded.mapped.entry();
    publish(Some(Arc::new(loaded)));
    // SAFETY: the entry point lies in the image just mapped; `driver_call` calls it with
    // the Windows x64 convention because of where it points (the type is the one
    // `load_driver` takes for any driver).
    let entry: DriverEntry = unsafe { std::mem::transmute::<usize, DriverEntry>(entry) };
    match driver::load_driver(entry) {
        Ok(()) => Ok(()),
        Err(status) => {
            // `load_driver` ran the unload checks; the image is gone (see `on_unload`).
            Err(LoadError::DriverEntry(status))
        }
    }
}

/// The environment variable that makes test harnesses and `portfilter-sim` run a driver
/// image instead of the driver linked into them: the path of the `.sys`.
pub const IMAGE_ENV: &str = "FLTSIM_IMAGE";

/// The image [`IMAGE_ENV`] names, if set (and not empty).
#[must_use]
pub fn image_from_env() -> Option<std::path::PathBuf> {
    std::env::var_os(IMAGE_ENV)
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
}

/// Loads the driver the way the environment asks: the image [`IMAGE_ENV`] names, else
/// `linked` (the driver built as an rlib) — the one switch between the two runs.
///
/// # Errors
/// `DriverEntry`'s failure status.
///
/// # Panics
/// When the image cannot be mapped (a setup error, named in the message).
pub fn load_driver_from_env(linked: DriverEntry) -> Result<(), portfilter_bindings::NTSTATUS> {
    match image_from_env() {
        None => driver::load_driver(linked),
        Some(path) => match load_driver_image(&path) {
            Ok(()) => Ok(()),
            Err(LoadError::DriverEntry(status)) => Err(status),
            Err(e) => panic!("fltsim: cannot load {}: {e}", path.display()),
        },
    }
}

/// Maps an image without running it (for tests of the loader).
///
/// # Errors
/// As [`load_driver_image`], without `DriverEntry`.
pub fn map_only(bytes: &[u8]) -> Result<ImageInfo, LoadError> {
    let l = map_image("image", bytes)?;
    Ok(ImageInfo {
        base: l.mapped.base(),
        size: l.mapped.size(),
        preferred_base: l.mapped.preferred_base(),
        protections: l.mapped.protections().to_vec(),
        unwind_functions: l.unwind.len(),
    })
}

/// An image loaded without a driver around it (a test DLL): mapped, its imports bound
/// to fltsim, faults in it dispatched like a driver's. Unmapped when dropped.
#[derive(Debug)]
pub struct Library {
    loaded: Arc<Loaded>,
    exports: Vec<(String, u32)>,
}

impl Library {
    /// The address of the export `name`.
    #[must_use]
    pub fn export(&self, name: &str) -> Option<usize> {
        self.exports
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, rva)| self.loaded.base() + *rva as usize)
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        let mine = current().is_some_and(|c| Arc::ptr_eq(&c, &self.loaded));
        if mine {
            publish(None);
        }
    }
}

/// Loads `bytes` as the machine's image without calling anything in it.
///
/// # Errors
/// As [`load_driver_image`]; [`LoadError::AlreadyLoaded`] while a driver or another
/// image is loaded.
pub fn load_library(name: &str, bytes: &[u8]) -> Result<Library, LoadError> {
    if driver::is_loaded() || current().is_some() {
        return Err(LoadError::AlreadyLoaded);
    }
    if !crate::usercopy::install_fault_handling() || !kernel_only::init() {
        return Err(LoadError::Map("cannot reserve fltsim's fault pages".into()));
    }
    let loaded = Arc::new(map_image(name, bytes)?);
    let pe = PE::parse(bytes).map_err(|e| LoadError::Malformed(e.to_string()))?;
    let exports = pe
        .exports
        .iter()
        .filter_map(|e| Some((e.name?.to_owned(), u32::try_from(e.rva).ok()?)))
        .collect();
    publish(Some(loaded.clone()));
    Ok(Library { loaded, exports })
}

fn map_image(name: &str, bytes: &[u8]) -> Result<Loaded, LoadError> {
    let mapped = map::map(bytes, &imports::all())?;
    let pe = PE::parse(bytes).map_err(|e| LoadError::Malformed(e.to_string()))?;
    // SAFETY: the image is mapped for `size` bytes; only its readable sections (the
    // unwind info in .rdata/.xdata) are read by the decoder, at RVAs the PE names.
    let view = unsafe { std::slice::from_raw_parts(mapped.base() as *const u8, mapped.size()) };
    let unwind = seh::unwind::Table::decode(&pe, view).map_err(LoadError::Malformed)?;
    Ok(Loaded {
        mapped,
        unwind,
        name: name.to_owned(),
    })
}

fn publish(l: Option<Arc<Loaded>>) {
    let mut current = CURRENT.lock();
    match &l {
        Some(l) => {
            CODE_SIZE.store(l.mapped.size(), Ordering::Release);
            CODE_BASE.store(l.mapped.base(), Ordering::Release);
        }
        None => {
            CODE_BASE.store(0, Ordering::Release);
            CODE_SIZE.store(0, Ordering::Release);
        }
    }
    // The previous image (if any) becomes inaccessible when its last user drops it.
    *current = l;
}

/// The driver unloaded (or its DriverEntry failed): the image goes away.
pub(crate) fn on_unload() {
    publish(None);
}

pub(crate) fn reset() {
    publish(None);
    shadow::reset();
}
