//! Kernel and Filter Manager routines.
//!
//! On Windows they import by name from `fltmgr.sys` / `ntoskrnl.exe` (`raw-dylib`: no
//! import library); elsewhere they are undefined symbols that `fltsim` defines.
//! Every routine's IRQL rule is that of Microsoft's documentation; fltsim checks some.

use crate::flt::{
    FLT_CALLBACK_DATA, FLT_CALLBACK_DATA_QUEUE, FLT_FILE_NAME_INFORMATION,
    FLT_PREOP_CALLBACK_STATUS, FLT_REGISTRATION, KIRQL, KSPIN_LOCK,
    PFLT_CALLBACK_DATA_QUEUE_ACQUIRE, PFLT_CALLBACK_DATA_QUEUE_COMPLETE_CANCELED_IO,
    PFLT_CALLBACK_DATA_QUEUE_INSERT_IO, PFLT_CALLBACK_DATA_QUEUE_PEEK_NEXT_IO,
    PFLT_CALLBACK_DATA_QUEUE_RELEASE, PFLT_CALLBACK_DATA_QUEUE_REMOVE_IO, PFLT_CONNECT_NOTIFY,
    PFLT_DISCONNECT_NOTIFY, PFLT_FILTER, PFLT_INSTANCE, PFLT_MESSAGE_NOTIFY, PFLT_PORT,
};
use crate::io::FILE_OBJECT;
use crate::ntdef::{
    ACCESS_MASK, BOOLEAN, EX_PUSH_LOCK, HANDLE, KEVENT, KPROCESSOR_MODE, KSTART_ROUTINE,
    LARGE_INTEGER, NTSTATUS, OBJECT_ATTRIBUTES, PDRIVER_OBJECT, PETHREAD, PIRP,
    PSECURITY_DESCRIPTOR,
};
use core::ffi::c_void;

#[cfg_attr(
    windows,
    link(name = "fltmgr.sys", kind = "raw-dylib", modifiers = "+verbatim")
)]
unsafe extern "system" {
    /// Registers the minifilter. PASSIVE_LEVEL.
    pub fn FltRegisterFilter(
        Driver: PDRIVER_OBJECT,
        Registration: *const FLT_REGISTRATION,
        RetFilter: *mut PFLT_FILTER,
    ) -> NTSTATUS;
    /// Starts filtering (instances attach after this). PASSIVE_LEVEL.
    pub fn FltStartFiltering(Filter: PFLT_FILTER) -> NTSTATUS;
    /// Unregisters the filter; returns after every callback has finished. PASSIVE_LEVEL.
    pub fn FltUnregisterFilter(Filter: PFLT_FILTER);
    /// Creates a communication server port. PASSIVE_LEVEL.
    pub fn FltCreateCommunicationPort(
        Filter: PFLT_FILTER,
        ServerPort: *mut PFLT_PORT,
        ObjectAttributes: *const OBJECT_ATTRIBUTES,
        ServerPortCookie: *mut c_void,
        ConnectNotifyCallback: PFLT_CONNECT_NOTIFY,
        DisconnectNotifyCallback: PFLT_DISCONNECT_NOTIFY,
        MessageNotifyCallback: Option<PFLT_MESSAGE_NOTIFY>,
        MaxConnections: i32,
    ) -> NTSTATUS;
    /// Closes a server port (no new connects; existing connections stay). PASSIVE_LEVEL.
    pub fn FltCloseCommunicationPort(ServerPort: PFLT_PORT);
    /// Closes a client port and sets `*ClientPort` to null. PASSIVE_LEVEL.
    pub fn FltCloseClientPort(Filter: PFLT_FILTER, ClientPort: *mut PFLT_PORT);
    /// Sends a message to a client port, optionally waiting for a reply. IRQL <= APC_LEVEL.
    /// Returns `STATUS_TIMEOUT` (a success code!) when `Timeout` expires.
    pub fn FltSendMessage(
        Filter: PFLT_FILTER,
        ClientPort: *mut PFLT_PORT,
        SenderBuffer: *mut c_void,
        SenderBufferLength: u32,
        ReplyBuffer: *mut c_void,
        ReplyLength: *mut u32,
        Timeout: *mut LARGE_INTEGER,
    ) -> NTSTATUS;
    /// Builds a security descriptor granting `DesiredAccess` to Administrators and SYSTEM.
    pub fn FltBuildDefaultSecurityDescriptor(
        SecurityDescriptor: *mut PSECURITY_DESCRIPTOR,
        DesiredAccess: ACCESS_MASK,
    ) -> NTSTATUS;
    /// Frees a descriptor from `FltBuildDefaultSecurityDescriptor`.
    pub fn FltFreeSecurityDescriptor(SecurityDescriptor: PSECURITY_DESCRIPTOR);
    /// Gets name information for the operation's file. Release it with
    /// `FltReleaseFileNameInformation`. IRQL <= APC_LEVEL.
    pub fn FltGetFileNameInformation(
        CallbackData: *mut FLT_CALLBACK_DATA,
        NameOptions: u32,
        FileNameInformation: *mut *mut FLT_FILE_NAME_INFORMATION,
    ) -> NTSTATUS;
    /// Parses a name into volume, parent, final component, extension and stream.
    pub fn FltParseFileNameInformation(
        FileNameInformation: *mut FLT_FILE_NAME_INFORMATION,
    ) -> NTSTATUS;
    /// Releases name information.
    pub fn FltReleaseFileNameInformation(FileNameInformation: *mut FLT_FILE_NAME_INFORMATION);
    /// The process id of the operation's requestor.
    pub fn FltGetRequestorProcessId(CallbackData: *mut FLT_CALLBACK_DATA) -> u32;
    /// Whether an *opened* file object is a directory (post-create only).
    pub fn FltIsDirectory(
        FileObject: *mut FILE_OBJECT,
        Instance: PFLT_INSTANCE,
        IsDirectory: *mut BOOLEAN,
    ) -> NTSTATUS;
    /// Initialises a push lock.
    pub fn FltInitializePushLock(PushLock: *mut EX_PUSH_LOCK);
    /// Deletes a push lock.
    pub fn FltDeletePushLock(PushLock: *mut EX_PUSH_LOCK);
    /// Acquires a push lock exclusively (enters a critical region).
    pub fn FltAcquirePushLockExclusive(PushLock: *mut EX_PUSH_LOCK);
    /// Acquires a push lock shared (enters a critical region).
    pub fn FltAcquirePushLockShared(PushLock: *mut EX_PUSH_LOCK);
    /// Releases a push lock (leaves the critical region).
    pub fn FltReleasePushLock(PushLock: *mut EX_PUSH_LOCK);
    /// Initializes a cancel-safe callback data queue. Any IRQL.
    pub fn FltCbdqInitialize(
        Instance: PFLT_INSTANCE,
        Cbdq: *mut FLT_CALLBACK_DATA_QUEUE,
        CbdqInsertIo: PFLT_CALLBACK_DATA_QUEUE_INSERT_IO,
        CbdqRemoveIo: PFLT_CALLBACK_DATA_QUEUE_REMOVE_IO,
        CbdqPeekNextIo: PFLT_CALLBACK_DATA_QUEUE_PEEK_NEXT_IO,
        CbdqAcquire: PFLT_CALLBACK_DATA_QUEUE_ACQUIRE,
        CbdqRelease: PFLT_CALLBACK_DATA_QUEUE_RELEASE,
        CbdqCompleteCanceledIo: PFLT_CALLBACK_DATA_QUEUE_COMPLETE_CANCELED_IO,
    ) -> NTSTATUS;
    /// Inserts an IRP-based operation's callback data into the queue (cancel-safe): what
    /// the insert routine returns, or `STATUS_FLT_CBDQ_DISABLED`. IRQL <= DISPATCH_LEVEL
    /// with a spin-lock-protected queue.
    pub fn FltCbdqInsertIo(
        Cbdq: *mut FLT_CALLBACK_DATA_QUEUE,
        Cbd: *mut FLT_CALLBACK_DATA,
        Context: *mut c_void,
        InsertContext: *mut c_void,
    ) -> NTSTATUS;
    /// Removes the next entry matching `PeekContext` (the peek routine decides), or
    /// returns null. IRQL <= DISPATCH_LEVEL with a spin-lock-protected queue.
    pub fn FltCbdqRemoveNextIo(
        Cbdq: *mut FLT_CALLBACK_DATA_QUEUE,
        PeekContext: *mut c_void,
    ) -> *mut FLT_CALLBACK_DATA;
    /// Disables the queue: later inserts fail with `STATUS_FLT_CBDQ_DISABLED`. IRQL <=
    /// DISPATCH_LEVEL with a spin-lock-protected queue.
    pub fn FltCbdqDisable(Cbdq: *mut FLT_CALLBACK_DATA_QUEUE);
    /// Resumes an operation its pre-operation callback pended (`FLT_PREOP_PENDING`):
    /// `CallbackStatus` as a pre-operation callback would return it (not PENDING or
    /// SYNCHRONIZE). IRQL <= DISPATCH_LEVEL.
    pub fn FltCompletePendedPreOperation(
        CallbackData: *mut FLT_CALLBACK_DATA,
        CallbackStatus: FLT_PREOP_CALLBACK_STATUS,
        Context: *mut c_void,
    );
}

#[cfg_attr(
    windows,
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")
)]
unsafe extern "system" {
    /// Allocates pool memory (zeroed unless `POOL_FLAG_UNINITIALIZED`). Windows 10 2004+.
    pub fn ExAllocatePool2(Flags: u64, NumberOfBytes: usize, Tag: u32) -> *mut c_void;
    /// Frees pool memory allocated with `Tag`.
    pub fn ExFreePoolWithTag(P: *mut c_void, Tag: u32);
    /// System time in 100 ns units since 1601-01-01 (UTC), precise.
    pub fn KeQuerySystemTimePrecise(CurrentTime: *mut LARGE_INTEGER);
    /// Current process id.
    pub fn PsGetCurrentProcessId() -> HANDLE;
    /// Current thread id.
    pub fn PsGetCurrentThreadId() -> HANDLE;
    /// Thread id of a thread object.
    pub fn PsGetThreadId(Thread: PETHREAD) -> HANDLE;
    /// Initialises an event object.
    pub fn KeInitializeEvent(Event: *mut KEVENT, Type: i32, State: BOOLEAN);
    /// Signals an event; returns its previous state.
    pub fn KeSetEvent(Event: *mut KEVENT, Increment: i32, Wait: BOOLEAN) -> i32;
    /// Resets an event to not-signalled.
    pub fn KeClearEvent(Event: *mut KEVENT);
    /// Waits for a dispatcher object. `Timeout`: null = forever, negative = relative 100 ns.
    pub fn KeWaitForSingleObject(
        Object: *mut c_void,
        WaitReason: i32,
        WaitMode: KPROCESSOR_MODE,
        Alertable: BOOLEAN,
        Timeout: *mut LARGE_INTEGER,
    ) -> NTSTATUS;
    /// Creates a system thread. PASSIVE_LEVEL.
    pub fn PsCreateSystemThread(
        ThreadHandle: *mut HANDLE,
        DesiredAccess: ACCESS_MASK,
        ObjectAttributes: *mut OBJECT_ATTRIBUTES,
        ProcessHandle: HANDLE,
        ClientId: *mut c_void,
        StartRoutine: KSTART_ROUTINE,
        StartContext: *mut c_void,
    ) -> NTSTATUS;
    /// Waits on a handle (here: a system thread's handle, until the thread exits).
    pub fn ZwWaitForSingleObject(
        Handle: HANDLE,
        Alertable: BOOLEAN,
        Timeout: *mut LARGE_INTEGER,
    ) -> NTSTATUS;
    /// Closes a kernel handle.
    pub fn ZwClose(Handle: HANDLE) -> NTSTATUS;
    /// The current thread's `TopLevelIrp` field: NULL when the thread holds no resources
    /// above the file system; an IRP or an `FSRTL_*_TOP_LEVEL_IRP` value when a file
    /// system, the cache manager or the modified page writer is the top-level component.
    /// IRQL <= DISPATCH_LEVEL.
    pub fn IoGetTopLevelIrp() -> PIRP;
    /// Whether the current thread is inside a guarded region or at IRQL >= APC_LEVEL (all
    /// APC delivery disabled). IRQL <= DISPATCH_LEVEL.
    pub fn KeAreAllApcsDisabled() -> BOOLEAN;
    /// Enters a critical region: normal kernel APCs (thread suspension among them) are not
    /// delivered to the current thread until the matching [`KeLeaveCriticalRegion`].
    /// IRQL <= APC_LEVEL.
    pub fn KeEnterCriticalRegion();
    /// Leaves the critical region entered by [`KeEnterCriticalRegion`]. IRQL <= APC_LEVEL.
    pub fn KeLeaveCriticalRegion();
    /// Stops the system with a bug check. Used only by the cross build's panic handler.
    pub fn KeBugCheckEx(
        BugCheckCode: u32,
        BugCheckParameter1: usize,
        BugCheckParameter2: usize,
        BugCheckParameter3: usize,
        BugCheckParameter4: usize,
    ) -> !;
    /// Acquires a spin lock, raising to DISPATCH_LEVEL; returns the previous IRQL.
    /// IRQL <= DISPATCH_LEVEL.
    pub fn KeAcquireSpinLockRaiseToDpc(SpinLock: *mut KSPIN_LOCK) -> KIRQL;
    /// Releases a spin lock and returns to `NewIrql`. IRQL = DISPATCH_LEVEL.
    pub fn KeReleaseSpinLock(SpinLock: *mut KSPIN_LOCK, NewIrql: KIRQL);
}

#[cfg_attr(
    windows,
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")
)]
unsafe extern "C" {
    /// Prints to the kernel debugger if `Level` passes the filter mask of `ComponentId`
    /// (`DPFLTR_*`; variadic, so `extern "C"`). Since Windows Vista, `DbgPrint` output
    /// is component DEFAULT at `DPFLTR_INFO_LEVEL` and is filtered out by default; with
    /// the default masks only `DPFLTR_ERROR_LEVEL` messages show. Any IRQL <= DIRQL (`%s`
    /// of 8-bit strings only).
    pub fn DbgPrintEx(ComponentId: u32, Level: u32, Format: *const u8, ...) -> u32;
}

unsafe extern "system" {
    /// Copies `Length` bytes from a **user-mode** address into a kernel buffer, probing
    /// and catching faults. Returns `STATUS_ACCESS_VIOLATION` (or the fault's code) for a
    /// bad address, never faults. On Windows this is the driver's SEH helper
    /// (`src/glue/usercopy.c`); on other targets fltsim defines it and checks the address
    /// against the user buffers it handed out.
    pub fn PfCopyFromUser(
        Destination: *mut c_void,
        UserSource: *const c_void,
        Length: usize,
    ) -> NTSTATUS;
    /// Copies `Length` bytes from a kernel buffer to a **user-mode** address, probing and
    /// catching faults, like [`PfCopyFromUser`].
    pub fn PfCopyToUser(
        UserDestination: *mut c_void,
        Source: *const c_void,
        Length: usize,
    ) -> NTSTATUS;
}
