//! Mapping a PE32+ image the way the Windows loader maps a driver: headers and sections
//! at their RVAs in one reservation of `SizeOfImage` bytes, base relocations applied for
//! wherever that reservation landed, every import resolved by module and name, then each
//! section given its own protection. The memory is never writable and executable at
//! once: it is filled while read-write and not executable, then sections become
//! read-only, read-write or read-execute.
//!
//! Parsing is goblin's; nothing here reads a header by hand.

use super::imports::{self, Provided};
use goblin::pe::PE;
use goblin::pe::section_table::{IMAGE_SCN_MEM_EXECUTE, IMAGE_SCN_MEM_WRITE};
use std::fmt;

/// `IMAGE_FILE_MACHINE_AMD64`.
const MACHINE_AMD64: u16 = 0x8664;
/// `IMAGE_FILE_RELOCS_STRIPPED`: the image can only sit at its preferred base.
const IMAGE_FILE_RELOCS_STRIPPED: u16 = 0x0001;
/// `IMAGE_REL_BASED_ABSOLUTE`: padding, no effect.
const REL_BASED_ABSOLUTE: u8 = 0;
/// `IMAGE_REL_BASED_DIR64`: add the delta to a 64-bit value.
const REL_BASED_DIR64: u8 = 10;
const PAGE: usize = 4096;

/// Why an image was not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The file could not be read.
    Io(String),
    /// Not a PE32+ AMD64 image goblin can parse, or a structure points outside it.
    Malformed(String),
    /// Imports fltsim does not provide, as `module!name` (all of them, sorted).
    UnresolvedImports(Vec<String>),
    /// The address space could not be reserved or protected.
    Map(String),
    /// A driver is already loaded.
    AlreadyLoaded,
    /// The image loaded, but its `DriverEntry` failed with this status (it was unloaded
    /// again, with the checks of an unload).
    DriverEntry(i32),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "cannot read the image: {e}"),
            Self::Malformed(e) => write!(f, "malformed image: {e}"),
            Self::UnresolvedImports(names) => write!(
                f,
                "the image imports routines fltsim does not provide: {}",
                names.join(", ")
            ),
            Self::Map(e) => write!(f, "cannot map the image: {e}"),
            Self::AlreadyLoaded => f.write_str("a driver is already loaded"),
            Self::DriverEntry(status) => write!(f, "DriverEntry failed with {status:#010x}"),
        }
    }
}

impl std::error::Error for LoadError {}

fn malformed(what: impl Into<String>) -> LoadError {
    LoadError::Malformed(what.into())
}

/// The protection given to one page range of a mapped image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protection {
    /// Image-relative start.
    pub rva: u32,
    /// Bytes (whole pages).
    pub size: u32,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub execute: bool,
}

/// An image mapped in memory. Dropping it leaves the range reserved but inaccessible, so
/// code that still runs in it after unload faults instead of running whatever the
/// address space holds next.
#[derive(Debug)]
pub struct Mapped {
    base: usize,
    size: usize,
    entry_rva: u32,
    image_base: u64,
    /// Protections applied per page range (every range is readable).
    protections: Vec<Protection>,
}

impl Mapped {
    /// Where the image was mapped.
    #[must_use]
    pub fn base(&self) -> usize {
        self.base
    }
    /// `SizeOfImage`.
    #[must_use]
    pub fn size(&self) -> usize {
        self.size
    }
    /// The entry point's address.
    #[must_use]
    pub fn entry(&self) -> usize {
        self.base + self.entry_rva as usize
    }
    /// The preferred base the image was linked for.
    #[must_use]
    pub fn preferred_base(&self) -> u64 {
        self.image_base
    }
    /// Protections as applied: headers, then each section.
    #[must_use]
    pub fn protections(&self) -> &[Protection] {
        &self.protections
    }
    /// Whether `address` lies in the image.
    #[must_use]
    pub fn contains(&self, address: usize) -> bool {
        address >= self.base && address - self.base < self.size
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: replaces our own mapping with an inaccessible reservation of the same
        // range (MAP_FIXED over memory this struct owns).
        unsafe {
            libc::mmap(
                self.base as *mut libc::c_void,
                self.size,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
                -1,
                0,
            );
        }
    }
}

/// The memory while it is being filled (read-write, never executable).
struct Staging {
    base: usize,
    size: usize,
}

impl Staging {
    fn reserve(size: usize) -> Result<Self, LoadError> {
        // SAFETY: a fresh anonymous read-write mapping; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(LoadError::Map(std::io::Error::last_os_error().to_string()));
        }
        Ok(Self {
            base: p as usize,
            size,
        })
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `size` read-write bytes owned by `self`.
        unsafe { std::slice::from_raw_parts_mut(self.base as *mut u8, self.size) }
    }

    fn range(&mut self, rva: usize, len: usize, what: &str) -> Result<&mut [u8], LoadError> {
        let end = rva
            .checked_add(len)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| {
                malformed(format!("{what} at rva {rva:#x} (+{len}) outside the image"))
            })?;
        Ok(&mut self.bytes()[rva..end])
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.size != 0 {
            // SAFETY: our own mapping, not handed out (a successful load takes it over
            // by setting `size` to 0).
            unsafe { libc::munmap(self.base as *mut libc::c_void, self.size) };
        }
    }
}

/// Maps `bytes` (a PE32+ AMD64 image): sections, relocations, imports from `provided`,
/// protections.
///
/// # Errors
/// [`LoadError`]: malformed image, unresolved imports (all named), mapping failure.
pub(crate) fn map(bytes: &[u8], provided: &[Provided]) -> Result<Mapped, LoadError> {
    let pe = PE::parse(bytes).map_err(|e| malformed(e.to_string()))?;
    if !pe.is_64 || pe.header.coff_header.machine != MACHINE_AMD64 {
        return Err(malformed("not a PE32+ AMD64 image"));
    }
    let optional = pe
        .header
        .optional_header
        .ok_or_else(|| malformed("no optional header"))?;
    let size = usize::try_from(optional.windows_fields.size_of_image)
        .map_err(|_| malformed("SizeOfImage"))?
        .next_multiple_of(PAGE);
    if size == 0 {
        return Err(malformed("SizeOfImage is 0"));
    }
    let unresolved = unresolved_imports(&pe, provided);
    if !unresolved.is_empty() {
        return Err(LoadError::UnresolvedImports(unresolved));
    }

    let mut staging = Staging::reserve(size)?;
    // Headers, then each section's raw data (the rest of its virtual size stays zero).
    let headers = usize::try_from(optional.windows_fields.size_of_headers)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    staging
        .range(0, headers, "headers")?
        .copy_from_slice(&bytes[..headers]);
    for s in &pe.sections {
        let raw = s
            .data(bytes)
            .map_err(|e| malformed(format!("section data: {e}")))?
            .unwrap_or_default();
        let len = raw
            .len()
            .min(s.virtual_size.max(s.size_of_raw_data) as usize);
        staging
            .range(s.virtual_address as usize, len, "section")?
            .copy_from_slice(&raw[..len]);
    }

    apply_relocations(&pe, &mut staging)?;
    bind_imports(&pe, provided, &mut staging)?;
    let protections = protect(&pe, &staging, headers)?;

    let mapped = Mapped {
        base: staging.base,
        size,
        entry_rva: pe.entry,
        image_base: pe.image_base,
        protections,
    };
    staging.size = 0; // taken over by `mapped`
    Ok(mapped)
}

/// Every import the table does not provide (or imported by ordinal), as `module!name`.
fn unresolved_imports(pe: &PE<'_>, provided: &[Provided]) -> Vec<String> {
    let mut missing: Vec<String> = pe
        .imports
        .iter()
        .filter(|i| imports::find(provided, i.dll, &i.name).is_none())
        .map(|i| format!("{}!{}", i.dll, i.name))
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

fn apply_relocations(pe: &PE<'_>, staging: &mut Staging) -> Result<(), LoadError> {
    let delta = (staging.base as u64).wrapping_sub(pe.image_base);
    let Some(relocations) = &pe.relocation_data else {
        // No relocation directory: nothing to fix, unless the linker stripped them.
        return if delta == 0
            || pe.header.coff_header.characteristics & IMAGE_FILE_RELOCS_STRIPPED == 0
        {
            Ok(())
        } else {
            Err(malformed(
                "relocations stripped, and the image cannot sit at its preferred base",
            ))
        };
    };
    for block in relocations.blocks() {
        let block = block.map_err(|e| malformed(format!("relocation block: {e}")))?;
        for word in block.words() {
            let word = word.map_err(|e| malformed(format!("relocation: {e}")))?;
            match word.reloc_type() {
                REL_BASED_ABSOLUTE => {}
                REL_BASED_DIR64 => {
                    let rva = block.rva as usize + usize::from(word.offset());
                    let slot = staging.range(rva, 8, "relocation")?;
                    let value = u64::from_le_bytes(slot.try_into().unwrap_or([0; 8]));
                    slot.copy_from_slice(&value.wrapping_add(delta).to_le_bytes());
                }
                other => {
                    return Err(malformed(format!(
                        "base relocation type {other} (only DIR64 is expected on x64)"
                    )));
                }
            }
        }
    }
    Ok(())
}

fn bind_imports(
    pe: &PE<'_>,
    provided: &[Provided],
    staging: &mut Staging,
) -> Result<(), LoadError> {
    for import in &pe.imports {
        let address = imports::find(provided, import.dll, &import.name).ok_or_else(|| {
            LoadError::UnresolvedImports(vec![format!("{}!{}", import.dll, import.name)])
        })?;
        // `offset` is the RVA of the import's slot in the import address table.
        staging
            .range(import.offset, 8, "import address table slot")?
            .copy_from_slice(&(address as u64).to_le_bytes());
    }
    Ok(())
}

fn protect(pe: &PE<'_>, staging: &Staging, headers: usize) -> Result<Vec<Protection>, LoadError> {
    // Pages no section covers stay inaccessible.
    // SAFETY: our own mapping, whole.
    if unsafe {
        libc::mprotect(
            staging.base as *mut libc::c_void,
            staging.size,
            libc::PROT_NONE,
        )
    } != 0
    {
        return Err(LoadError::Map(std::io::Error::last_os_error().to_string()));
    }
    let mut applied = Vec::new();
    let mut set = |rva: usize, len: usize, write: bool, exec: bool| -> Result<(), LoadError> {
        let len = len.next_multiple_of(PAGE);
        if len == 0 {
            return Ok(());
        }
        if write && exec {
            return Err(malformed(format!(
                "section at rva {rva:#x} is writable and executable"
            )));
        }
        let prot = libc::PROT_READ
            | if write { libc::PROT_WRITE } else { 0 }
            | if exec { libc::PROT_EXEC } else { 0 };
        if !rva.is_multiple_of(PAGE) || rva + len > staging.size {
            return Err(malformed(format!(
                "section at rva {rva:#x} is not page aligned"
            )));
        }
        // SAFETY: a page-aligned range inside our own mapping.
        let r = unsafe { libc::mprotect((staging.base + rva) as *mut libc::c_void, len, prot) };
        if r != 0 {
            return Err(LoadError::Map(std::io::Error::last_os_error().to_string()));
        }
        applied.push(Protection {
            rva: u32::try_from(rva).unwrap_or(u32::MAX),
            size: u32::try_from(len).unwrap_or(u32::MAX),
            write,
            execute: exec,
        });
        Ok(())
    };
    set(0, headers, false, false)?;
    for s in &pe.sections {
        let c = s.characteristics;
        set(
            s.virtual_address as usize,
            s.virtual_size.max(s.size_of_raw_data) as usize,
            c & IMAGE_SCN_MEM_WRITE != 0,
            c & IMAGE_SCN_MEM_EXECUTE != 0,
        )?;
    }
    Ok(applied)
}
