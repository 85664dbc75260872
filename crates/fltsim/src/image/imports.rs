//! The routines a loaded image may import, by module and name, each with its Windows x64
//! entry point. An import that is not in this table refuses the load, by name.
//!
//! Adding a routine is one line: its name and its parameter names (their number is the
//! arity; the types come from the declaration in `portfilter_bindings`, which fltsim
//! defines). Routines only an image needs (the SEH helper's `ProbeForRead`,
//! `ProbeForWrite`, `__C_specific_handler`; `KeBugCheckEx` of the cross build's panic
//! handler) are written directly with the Windows x64 convention in
//! [`super::kernel_only`] and [`super::seh`].

use super::win64::IntoWin64;
use super::{kernel_only, seh};

/// One routine an image may import.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Provided {
    /// The module the image names (compared case-insensitively).
    pub module: &'static str,
    /// The routine's name.
    pub name: &'static str,
    /// Its Windows x64 entry point.
    pub address: usize,
}

/// The import table: `"module" { Routine(params…); … }`. Each routine is called through
/// its `portfilter_bindings` declaration; a parameter may carry a type where nothing
/// else fixes it (variadic `DbgPrintEx`).
macro_rules! provided {
    ($( $module:literal { $( $name:ident ( $($arg:ident $(: $ty:ty)?),* ) ; )* } )*) => {
        /// Every routine an image may import.
        pub(crate) fn table() -> Vec<Provided> {
            vec![$($(
                Provided {
                    module: $module,
                    name: stringify!($name),
                    address: IntoWin64::win64(
                        // SAFETY: forwards the image's call with its own arguments; the
                        // image upholds the routine's contract as on Windows.
                        |$($arg $(: $ty)?),*| unsafe { portfilter_bindings::$name($($arg),*) },
                    ),
                },
            )*)*]
        }
    };
}

provided! {
    "fltmgr.sys" {
        FltRegisterFilter(driver, registration, filter);
        FltStartFiltering(filter);
        FltUnregisterFilter(filter);
        FltCreateCommunicationPort(filter, port, attributes, cookie, connect, disconnect, notify, max);
        FltCloseCommunicationPort(port);
        FltCloseClientPort(filter, port);
        FltSendMessage(filter, port, buffer, length, reply, reply_length, timeout);
        FltBuildDefaultSecurityDescriptor(descriptor, access);
        FltFreeSecurityDescriptor(descriptor);
        FltGetFileNameInformation(data, options, information);
        FltParseFileNameInformation(information);
        FltReleaseFileNameInformation(information);
        FltGetRequestorProcessId(data);
        FltIsDirectory(file, instance, is_directory);
        FltInitializePushLock(lock);
        FltDeletePushLock(lock);
        FltAcquirePushLockExclusive(lock);
        FltAcquirePushLockShared(lock);
        FltReleasePushLock(lock);
        FltCbdqInitialize(instance, cbdq, insert, remove, peek, acquire, release, cancelled);
        FltCbdqInsertIo(cbdq, data, context, insert_context);
        FltCbdqRemoveNextIo(cbdq, peek_context);
        FltCbdqDisable(cbdq);
        FltCompletePendedPreOperation(data, status, context);
    }
    "ntoskrnl.exe" {
        ExAllocatePool2(flags, bytes, tag);
        ExFreePoolWithTag(p, tag);
        KeQuerySystemTimePrecise(time);
        KeAcquireSpinLockRaiseToDpc(lock);
        KeReleaseSpinLock(lock, irql);
        PsGetCurrentProcessId();
        PsGetCurrentThreadId();
        PsGetThreadId(thread);
        KeInitializeEvent(event, kind, state);
        KeSetEvent(event, increment, wait);
        KeClearEvent(event);
        KeWaitForSingleObject(object, reason, mode, alertable, timeout);
        PsCreateSystemThread(handle, access, attributes, process, client, routine, context);
        ZwWaitForSingleObject(handle, alertable, timeout);
        ZwClose(handle);
        IoGetTopLevelIrp();
        KeAreAllApcsDisabled();
        KeEnterCriticalRegion();
        KeLeaveCriticalRegion();
        DbgPrintEx(component, level, format, a1: usize);
    }
}

/// The table, plus the routines only an image imports.
pub(crate) fn all() -> Vec<Provided> {
    let mut t = table();
    t.extend([
        Provided {
            module: "ntoskrnl.exe",
            name: "ProbeForRead",
            address: kernel_only::probe_for_read_entry(),
        },
        Provided {
            module: "ntoskrnl.exe",
            name: "ProbeForWrite",
            address: kernel_only::probe_for_write_entry(),
        },
        Provided {
            module: "ntoskrnl.exe",
            name: "KeBugCheckEx",
            address: kernel_only::ke_bug_check_ex as *const () as usize,
        },
        Provided {
            module: "ntoskrnl.exe",
            name: "__C_specific_handler",
            address: seh::c_specific_handler_entry(),
        },
    ]);
    t
}

/// The entry point of `module!name`, if provided.
pub(crate) fn find(table: &[Provided], module: &str, name: &str) -> Option<usize> {
    table
        .iter()
        .find(|p| p.module.eq_ignore_ascii_case(module) && p.name == name)
        .map(|p| p.address)
}
