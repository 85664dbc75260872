//! The `FLT_REGISTRATION` handed to `FltRegisterFilter`, and the instance callbacks.

use core::mem::size_of;
use core::ptr::null;
use portfilter_bindings::{
    FILE_DEVICE_DISK_FILE_SYSTEM, FLT_OPERATION_REGISTRATION, FLT_REGISTRATION,
    FLT_REGISTRATION_VERSION, FLT_RELATED_OBJECTS, IRP_MJ_CREATE, IRP_MJ_OPERATION_END, NTSTATUS,
    STATUS_FLT_DO_NOT_ATTACH, STATUS_SUCCESS,
};

/// The operations we filter: `IRP_MJ_CREATE` (pre-operation only), then the terminator.
static OPERATIONS: [FLT_OPERATION_REGISTRATION; 2] = [
    FLT_OPERATION_REGISTRATION {
        MajorFunction: IRP_MJ_CREATE,
        Flags: 0,
        PreOperation: Some(crate::precreate::pre_create),
        PostOperation: None,
        Reserved1: core::ptr::null_mut(),
    },
    FLT_OPERATION_REGISTRATION {
        MajorFunction: IRP_MJ_OPERATION_END,
        Flags: 0,
        PreOperation: None,
        PostOperation: None,
        Reserved1: core::ptr::null_mut(),
    },
];

/// What `FltRegisterFilter` receives.
pub(crate) static REGISTRATION: FLT_REGISTRATION = FLT_REGISTRATION {
    Size: size_of::<FLT_REGISTRATION>() as u16,
    Version: FLT_REGISTRATION_VERSION,
    Flags: 0,
    ContextRegistration: null(),
    OperationRegistration: OPERATIONS.as_ptr(),
    FilterUnloadCallback: Some(crate::entry::filter_unload),
    InstanceSetupCallback: Some(instance_setup),
    InstanceQueryTeardownCallback: Some(instance_query_teardown),
    InstanceTeardownStartCallback: None,
    InstanceTeardownCompleteCallback: None,
    GenerateFileNameCallback: null(),
    NormalizeNameComponentCallback: null(),
    NormalizeContextCleanupCallback: null(),
    TransactionNotificationCallback: null(),
    NormalizeNameComponentExCallback: null(),
    SectionNotificationCallback: null(),
};

/// Attach to local disk file systems only: network redirectors and other device types
/// are not what this filter reports on.
unsafe extern "system" fn instance_setup(
    _flt_objects: *const FLT_RELATED_OBJECTS,
    _flags: u32,
    volume_device_type: u32,
    _volume_filesystem_type: i32,
) -> NTSTATUS {
    if volume_device_type == FILE_DEVICE_DISK_FILE_SYSTEM {
        STATUS_SUCCESS
    } else {
        STATUS_FLT_DO_NOT_ATTACH
    }
}

/// Allow manual detach (`fltmc detach`): the filter holds no per-instance state.
unsafe extern "system" fn instance_query_teardown(
    _flt_objects: *const FLT_RELATED_OBJECTS,
    _flags: u32,
) -> NTSTATUS {
    STATUS_SUCCESS
}
