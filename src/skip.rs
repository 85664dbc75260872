//! Which creates the driver must not report (and therefore never holds).
//!
//! Always skipped, whatever the configuration:
//! * paging-file opens (`SL_OPEN_PAGING_FILE`): the memory manager's own I/O; holding
//!   it can deadlock the system;
//! * volume opens (`FO_VOLUME_OPEN`): not a file, and there is no file name to report;
//! * `SL_OPEN_TARGET_DIRECTORY`: the I/O manager opening the *parent* of a rename or link
//!   target; the "create" is not a create of the named file.
//!
//! Skipped when the configuration asks for it:
//! * directory opens (`FILE_DIRECTORY_FILE` in the create options);
//! * kernel-mode requestors acting for themselves (`Data->RequestorMode == KernelMode`
//!   without `SL_FORCE_ACCESS_CHECK`). A kernel-mode create *with*
//!   `SL_FORCE_ACCESS_CHECK` is made on behalf of a user — the SMB server opening a file
//!   for a remote client, a driver passing `IO_FORCE_ACCESS_CHECK` — and is treated as
//!   that user's request: reported and, in request-reply, held for the decider.

use portfilter_bindings::{
    FILE_DIRECTORY_FILE, FO_VOLUME_OPEN, KERNEL_MODE, KPROCESSOR_MODE, SL_FORCE_ACCESS_CHECK,
    SL_OPEN_PAGING_FILE, SL_OPEN_TARGET_DIRECTORY,
};

/// What the skip decision looks at, copied out of the callback data.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CreateFacts {
    /// `Iopb->OperationFlags` (`SL_*`).
    pub operation_flags: u8,
    /// `FileObject->Flags` (`FO_*`), 0 when there is no file object.
    pub file_object_flags: u32,
    /// Create options (low 24 bits of `Parameters.Create.Options`).
    pub create_options: u32,
    /// `Data->RequestorMode`.
    pub requestor_mode: KPROCESSOR_MODE,
}

impl CreateFacts {
    /// The create opens a directory (`FILE_DIRECTORY_FILE`).
    pub(crate) fn is_directory(&self) -> bool {
        self.create_options & FILE_DIRECTORY_FILE != 0
    }

    /// The request came from kernel mode (`EVENT_FLAG_KERNEL_MODE`).
    pub(crate) fn is_kernel_mode(&self) -> bool {
        self.requestor_mode == KERNEL_MODE
    }

    /// A kernel-mode request made for the kernel itself: kernel mode without
    /// `SL_FORCE_ACCESS_CHECK` (which marks a request on behalf of a user).
    pub(crate) fn is_kernel_own_request(&self) -> bool {
        self.is_kernel_mode() && self.operation_flags & SL_FORCE_ACCESS_CHECK == 0
    }
}

/// The configurable part of the skip rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SkipPolicy {
    /// Skip directory opens.
    pub directories: bool,
    /// Skip kernel-mode requestors acting for themselves.
    pub kernel_mode: bool,
}

/// Why a create is not reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SkipReason {
    /// `SL_OPEN_PAGING_FILE`.
    PagingFile,
    /// `FO_VOLUME_OPEN`.
    VolumeOpen,
    /// `SL_OPEN_TARGET_DIRECTORY`.
    TargetDirectory,
    /// A directory, and the configuration skips directories.
    Directory,
    /// A kernel-mode requestor acting for itself, and the configuration skips those.
    KernelMode,
}

/// The fixed rules: reasons that do not depend on the configuration (checked first, before
/// any lock is taken or any name is queried).
pub(crate) fn always_skipped(facts: &CreateFacts) -> Option<SkipReason> {
    if facts.operation_flags & SL_OPEN_PAGING_FILE != 0 {
        Some(SkipReason::PagingFile)
    } else if facts.file_object_flags & FO_VOLUME_OPEN != 0 {
        Some(SkipReason::VolumeOpen)
    } else if facts.operation_flags & SL_OPEN_TARGET_DIRECTORY != 0 {
        Some(SkipReason::TargetDirectory)
    } else {
        None
    }
}

/// The configurable rules.
pub(crate) fn skipped_by_policy(facts: &CreateFacts, policy: SkipPolicy) -> Option<SkipReason> {
    if policy.directories && facts.is_directory() {
        Some(SkipReason::Directory)
    } else if policy.kernel_mode && facts.is_kernel_own_request() {
        Some(SkipReason::KernelMode)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portfilter_bindings::{FILE_NON_DIRECTORY_FILE, SL_CASE_SENSITIVE, USER_MODE};

    fn user_file() -> CreateFacts {
        CreateFacts {
            operation_flags: 0,
            file_object_flags: 0,
            create_options: FILE_NON_DIRECTORY_FILE,
            requestor_mode: USER_MODE,
        }
    }

    #[test]
    fn plain_user_file_open_is_reported() {
        let f = user_file();
        assert_eq!(always_skipped(&f), None);
        let all = SkipPolicy {
            directories: true,
            kernel_mode: true,
        };
        assert_eq!(skipped_by_policy(&f, all), None);
    }

    #[test]
    fn paging_volume_and_target_directory_are_always_skipped() {
        let mut f = user_file();
        f.operation_flags = SL_OPEN_PAGING_FILE | SL_CASE_SENSITIVE;
        assert_eq!(always_skipped(&f), Some(SkipReason::PagingFile));
        let mut f = user_file();
        f.file_object_flags = FO_VOLUME_OPEN;
        assert_eq!(always_skipped(&f), Some(SkipReason::VolumeOpen));
        let mut f = user_file();
        f.operation_flags = SL_OPEN_TARGET_DIRECTORY;
        assert_eq!(always_skipped(&f), Some(SkipReason::TargetDirectory));
        // Unrelated operation flags do not skip.
        let mut f = user_file();
        f.operation_flags = SL_CASE_SENSITIVE;
        assert_eq!(always_skipped(&f), None);
    }

    #[test]
    fn directories_and_kernel_mode_are_skipped_only_when_configured() {
        let mut dir = user_file();
        dir.create_options = FILE_DIRECTORY_FILE;
        let mut kernel = user_file();
        kernel.requestor_mode = KERNEL_MODE;
        let none = SkipPolicy::default();
        assert_eq!(skipped_by_policy(&dir, none), None);
        assert_eq!(skipped_by_policy(&kernel, none), None);
        let dirs = SkipPolicy {
            directories: true,
            kernel_mode: false,
        };
        assert_eq!(skipped_by_policy(&dir, dirs), Some(SkipReason::Directory));
        assert_eq!(skipped_by_policy(&kernel, dirs), None);
        let km = SkipPolicy {
            directories: false,
            kernel_mode: true,
        };
        assert_eq!(skipped_by_policy(&kernel, km), Some(SkipReason::KernelMode));
        assert_eq!(skipped_by_policy(&dir, km), None);
    }

    #[test]
    fn kernel_mode_on_behalf_of_a_user_is_not_skipped_as_kernel_mode() {
        let mut smb = user_file();
        smb.requestor_mode = KERNEL_MODE;
        smb.operation_flags = SL_FORCE_ACCESS_CHECK;
        assert!(
            smb.is_kernel_mode(),
            "still reported as a kernel-mode request"
        );
        assert!(!smb.is_kernel_own_request());
        let km = SkipPolicy {
            directories: false,
            kernel_mode: true,
        };
        assert_eq!(skipped_by_policy(&smb, km), None);
        assert_eq!(always_skipped(&smb), None);
    }
}
