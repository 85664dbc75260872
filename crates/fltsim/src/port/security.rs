//! Port security, as far as the model needs it: `FltBuildDefaultSecurityDescriptor`
//! grants the requested access to BUILTIN\Administrators and LocalSystem only; a port
//! created without a descriptor admits everyone. Real ACLs are not modelled.

use crate::kernel::pool;
use crate::verifier::{self, rule};
use portfilter_bindings::{
    ACCESS_MASK, FLT_PORT_ALL_ACCESS, NTSTATUS, POOL_FLAG_PAGED, PSECURITY_DESCRIPTOR,
    STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};

/// Pool tag of the descriptors (`FMsd`, as the Filter Manager's own allocations).
pub const SECURITY_DESCRIPTOR_TAG: u32 = u32::from_le_bytes(*b"FMsd");
const MAGIC: u64 = 0x6473_5f6d_6973_746c; // "ltsim_sd"
/// The access `FilterConnectCommunicationPort` asks for.
const CONNECT_ASKS: ACCESS_MASK = FLT_PORT_ALL_ACCESS;

/// Who may connect to a server port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
    /// No descriptor: everyone.
    Everyone,
    /// Default descriptor: administrators and SYSTEM, with this access.
    AdminsOnly(ACCESS_MASK),
}

impl Security {
    /// Whether a caller (admin or not) may connect. `FilterConnectCommunicationPort`
    /// opens the port for `FLT_PORT_ALL_ACCESS` [re], so the descriptor must grant all of
    /// it: one built for `FLT_PORT_CONNECT` alone refuses even administrators.
    pub fn admits(self, admin: bool) -> bool {
        match self {
            Self::Everyone => true,
            Self::AdminsOnly(access) => admin && access & CONNECT_ASKS == CONNECT_ASKS,
        }
    }
}

#[repr(C)]
struct Descriptor {
    magic: u64,
    access: ACCESS_MASK,
}

/// Interprets the descriptor of `OBJECT_ATTRIBUTES`.
pub(crate) fn from_descriptor(sd: PSECURITY_DESCRIPTOR) -> Security {
    if sd.is_null() {
        return Security::Everyone;
    }
    if !pool::is_live(sd as usize, SECURITY_DESCRIPTOR_TAG) {
        verifier::report(
            rule::INVALID_OBJECT,
            format!(
                "security descriptor {sd:p} not built by FltBuildDefaultSecurityDescriptor (or freed)"
            ),
        );
        return Security::AdminsOnly(0);
    }
    // SAFETY: a live descriptor allocated by FltBuildDefaultSecurityDescriptor.
    let d = unsafe { sd.cast::<Descriptor>().read() };
    if d.magic == MAGIC {
        Security::AdminsOnly(d.access)
    } else {
        Security::AdminsOnly(0)
    }
}

/// `FltBuildDefaultSecurityDescriptor`.
///
/// # Safety
/// `security_descriptor` is writable.
#[inline(never)]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltBuildDefaultSecurityDescriptor(
    security_descriptor: *mut PSECURITY_DESCRIPTOR,
    desired_access: ACCESS_MASK,
) -> NTSTATUS {
    if security_descriptor.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let p = pool::allocate(
        POOL_FLAG_PAGED,
        size_of::<Descriptor>(),
        SECURITY_DESCRIPTOR_TAG,
    );
    if p.is_null() {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    // SAFETY: a fresh allocation of the descriptor's size (16-aligned).
    unsafe {
        p.cast::<Descriptor>().write(Descriptor {
            magic: MAGIC,
            access: desired_access,
        });
    }
    // SAFETY: non-null, writable per the contract.
    unsafe { security_descriptor.write(p) };
    STATUS_SUCCESS
}

/// `FltFreeSecurityDescriptor`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn FltFreeSecurityDescriptor(security_descriptor: PSECURITY_DESCRIPTOR) {
    if security_descriptor.is_null() {
        verifier::report(rule::POOL_BAD_FREE, "FltFreeSecurityDescriptor(NULL)");
        return;
    }
    pool::free(security_descriptor, SECURITY_DESCRIPTOR_TAG);
}
