//! [`export_user_api!`]: the `#[no_mangle]` Win32/fltlib symbols over one backend.

/// Defines the user-mode fltlib and kernel32 functions a client calls —
/// `FilterConnectCommunicationPort`, `FilterGetMessage`, `FilterReplyMessage`,
/// `FilterSendMessage`, `CloseHandle`, `CreateIoCompletionPort`,
/// `GetQueuedCompletionStatus(Ex)`, `PostQueuedCompletionStatus`, `CancelIoEx`,
/// `GetOverlappedResult`, `CreateEventW`, `SetEvent`, `ResetEvent`,
/// `WaitForSingleObject`, `GetLastError`, `SetLastError` — as `#[no_mangle] extern
/// "system"` functions with exactly windows-sys 0.61's signatures, forwarding to
/// [`crate::api`] with `$backend` (an expression of a type implementing
/// [`PortBackend`](crate::PortBackend), usually a unit struct).
///
/// Invoke it once per final binary (two providers are a duplicate-symbol link error).
#[macro_export]
macro_rules! export_user_api {
    ($backend:expr) => {
        /// `FilterConnectCommunicationPort` (fltlib).
        ///
        /// # Safety
        /// As the Win32 function: valid pointers for what is non-null.
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub unsafe extern "system" fn FilterConnectCommunicationPort(
            lpportname: $crate::reexport::PCWSTR,
            dwoptions: u32,
            lpcontext: *const ::core::ffi::c_void,
            wsizeofcontext: u16,
            lpsecurityattributes: *const $crate::reexport::SECURITY_ATTRIBUTES,
            hport: *mut $crate::reexport::HANDLE,
        ) -> $crate::reexport::HRESULT {
            // SAFETY: forwarded; the callee validates what it can.
            unsafe {
                $crate::api::filter_connect_communication_port(
                    &$backend,
                    lpportname,
                    dwoptions,
                    lpcontext,
                    wsizeofcontext,
                    lpsecurityattributes,
                    hport,
                )
            }
        }

        /// `FilterGetMessage` (fltlib).
        ///
        /// # Safety
        /// As the Win32 function: the buffer and OVERLAPPED stay valid until completion.
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub unsafe extern "system" fn FilterGetMessage(
            hport: $crate::reexport::HANDLE,
            lpmessagebuffer: *mut $crate::reexport::FILTER_MESSAGE_HEADER,
            dwmessagebuffersize: u32,
            lpoverlapped: *mut $crate::reexport::OVERLAPPED,
        ) -> $crate::reexport::HRESULT {
            // SAFETY: forwarded; the callee validates what it can.
            unsafe {
                $crate::api::filter_get_message(
                    &$backend,
                    hport,
                    lpmessagebuffer,
                    dwmessagebuffersize,
                    lpoverlapped,
                )
            }
        }

        /// `FilterReplyMessage` (fltlib).
        ///
        /// # Safety
        /// As the Win32 function.
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub unsafe extern "system" fn FilterReplyMessage(
            hport: $crate::reexport::HANDLE,
            lpreplybuffer: *const $crate::reexport::FILTER_REPLY_HEADER,
            dwreplybuffersize: u32,
        ) -> $crate::reexport::HRESULT {
            // SAFETY: forwarded; the callee validates what it can.
            unsafe {
                $crate::api::filter_reply_message(
                    &$backend,
                    hport,
                    lpreplybuffer,
                    dwreplybuffersize,
                )
            }
        }

        /// `FilterSendMessage` (fltlib).
        ///
        /// # Safety
        /// As the Win32 function.
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub unsafe extern "system" fn FilterSendMessage(
            hport: $crate::reexport::HANDLE,
            lpinbuffer: *const ::core::ffi::c_void,
            dwinbuffersize: u32,
            lpoutbuffer: *mut ::core::ffi::c_void,
            dwoutbuffersize: u32,
            lpbytesreturned: *mut u32,
        ) -> $crate::reexport::HRESULT {
            // SAFETY: forwarded; the callee validates what it can.
            unsafe {
                $crate::api::filter_send_message(
                    &$backend,
                    hport,
                    lpinbuffer,
                    dwinbuffersize,
                    lpoutbuffer,
                    dwoutbuffersize,
                    lpbytesreturned,
                )
            }
        }

        /// `CloseHandle` (kernel32).
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub extern "system" fn CloseHandle(
            hobject: $crate::reexport::HANDLE,
        ) -> $crate::reexport::BOOL {
            $crate::api::close_handle(&$backend, hobject)
        }

        /// `CreateIoCompletionPort` (kernel32).
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub extern "system" fn CreateIoCompletionPort(
            filehandle: $crate::reexport::HANDLE,
            existingcompletionport: $crate::reexport::HANDLE,
            completionkey: usize,
            numberofconcurrentthreads: u32,
        ) -> $crate::reexport::HANDLE {
            $crate::api::create_io_completion_port(
                &$backend,
                filehandle,
                existingcompletionport,
                completionkey,
                numberofconcurrentthreads,
            )
        }

        /// `GetQueuedCompletionStatus` (kernel32).
        ///
        /// # Safety
        /// As the Win32 function.
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub unsafe extern "system" fn GetQueuedCompletionStatus(
            completionport: $crate::reexport::HANDLE,
            lpnumberofbytestransferred: *mut u32,
            lpcompletionkey: *mut usize,
            lpoverlapped: *mut *mut $crate::reexport::OVERLAPPED,
            dwmilliseconds: u32,
        ) -> $crate::reexport::BOOL {
            // SAFETY: forwarded; the callee validates what it can.
            unsafe {
                $crate::api::get_queued_completion_status(
                    &$backend,
                    completionport,
                    lpnumberofbytestransferred,
                    lpcompletionkey,
                    lpoverlapped,
                    dwmilliseconds,
                )
            }
        }

        /// `GetQueuedCompletionStatusEx` (kernel32).
        ///
        /// # Safety
        /// As the Win32 function.
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub unsafe extern "system" fn GetQueuedCompletionStatusEx(
            completionport: $crate::reexport::HANDLE,
            lpcompletionportentries: *mut $crate::reexport::OVERLAPPED_ENTRY,
            ulcount: u32,
            ulnumentriesremoved: *mut u32,
            dwmilliseconds: u32,
            falertable: $crate::reexport::BOOL,
        ) -> $crate::reexport::BOOL {
            // SAFETY: forwarded; the callee validates what it can.
            unsafe {
                $crate::api::get_queued_completion_status_ex(
                    &$backend,
                    completionport,
                    lpcompletionportentries,
                    ulcount,
                    ulnumentriesremoved,
                    dwmilliseconds,
                    falertable,
                )
            }
        }

        /// `PostQueuedCompletionStatus` (kernel32).
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub extern "system" fn PostQueuedCompletionStatus(
            completionport: $crate::reexport::HANDLE,
            dwnumberofbytestransferred: u32,
            dwcompletionkey: usize,
            lpoverlapped: *const $crate::reexport::OVERLAPPED,
        ) -> $crate::reexport::BOOL {
            $crate::api::post_queued_completion_status(
                &$backend,
                completionport,
                dwnumberofbytestransferred,
                dwcompletionkey,
                lpoverlapped,
            )
        }

        /// `CancelIoEx` (kernel32).
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub extern "system" fn CancelIoEx(
            hfile: $crate::reexport::HANDLE,
            lpoverlapped: *const $crate::reexport::OVERLAPPED,
        ) -> $crate::reexport::BOOL {
            $crate::api::cancel_io_ex(&$backend, hfile, lpoverlapped)
        }

        /// `GetOverlappedResult` (kernel32).
        ///
        /// # Safety
        /// As the Win32 function.
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub unsafe extern "system" fn GetOverlappedResult(
            hfile: $crate::reexport::HANDLE,
            lpoverlapped: *const $crate::reexport::OVERLAPPED,
            lpnumberofbytestransferred: *mut u32,
            bwait: $crate::reexport::BOOL,
        ) -> $crate::reexport::BOOL {
            // SAFETY: forwarded; the callee validates what it can.
            unsafe {
                $crate::api::get_overlapped_result(
                    &$backend,
                    hfile,
                    lpoverlapped,
                    lpnumberofbytestransferred,
                    bwait,
                )
            }
        }

        /// `CreateEventW` (kernel32; names are ignored).
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub extern "system" fn CreateEventW(
            lpeventattributes: *const $crate::reexport::SECURITY_ATTRIBUTES,
            bmanualreset: $crate::reexport::BOOL,
            binitialstate: $crate::reexport::BOOL,
            lpname: $crate::reexport::PCWSTR,
        ) -> $crate::reexport::HANDLE {
            $crate::api::create_event_w(
                &$backend,
                lpeventattributes,
                bmanualreset,
                binitialstate,
                lpname,
            )
        }

        /// `SetEvent` (kernel32).
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub extern "system" fn SetEvent(
            hevent: $crate::reexport::HANDLE,
        ) -> $crate::reexport::BOOL {
            $crate::api::set_event(&$backend, hevent)
        }

        /// `ResetEvent` (kernel32).
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub extern "system" fn ResetEvent(
            hevent: $crate::reexport::HANDLE,
        ) -> $crate::reexport::BOOL {
            $crate::api::reset_event(&$backend, hevent)
        }

        /// `WaitForSingleObject` (kernel32; events only).
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub extern "system" fn WaitForSingleObject(
            hhandle: $crate::reexport::HANDLE,
            dwmilliseconds: u32,
        ) -> u32 {
            $crate::api::wait_for_single_object(&$backend, hhandle, dwmilliseconds)
        }

        /// `GetLastError` (kernel32; thread-local).
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub extern "system" fn GetLastError() -> u32 {
            $crate::last_error::get()
        }

        /// `SetLastError` (kernel32; thread-local).
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub extern "system" fn SetLastError(dwerrcode: u32) {
            $crate::last_error::set(dwerrcode);
        }
    };
}
