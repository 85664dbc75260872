//! The pre-create callback.

use core::ffi::c_void;
use portfilter_bindings::{
    FLT_CALLBACK_DATA, FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_SUCCESS_NO_CALLBACK,
    FLT_RELATED_OBJECTS,
};

/// Pre-create: the skeleton lets every create through.
pub(crate) unsafe extern "system" fn pre_create(
    _data: *mut FLT_CALLBACK_DATA,
    _flt_objects: *const FLT_RELATED_OBJECTS,
    _completion_context: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    FLT_PREOP_SUCCESS_NO_CALLBACK
}
