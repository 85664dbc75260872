//! The pre-create callback: decide whether to report the create, build the event, deliver
//! it (request-reply to the decider, notify or queue for observers), and complete the
//! create when the verdict is "deny".
//!
//! Order of work, cheapest first, so that creates nobody wants cost little:
//! 1. fixed skip rules (paging file, volume open, target directory) — no lock, no name;
//! 2. the configured skip rules and the "nobody listens" shortcut (no lock: atomic words);
//! 3. the requestor thread's context: with a top-level IRP set or all APCs disabled it
//!    may hold file-system or memory-manager resources, so the create is reported but
//!    never held for user mode ([`ThreadContext`]);
//! 4. the file name (normalized, else opened, else none; not queried at all with a
//!    top-level IRP, where the Filter Manager refuses it), parsed;
//! 5. one lock-free look at the configuration (pinned, see `config`): the settings used
//!    for the rest of this create and the path/extension filters come from the same
//!    configuration, so a concurrent `SetConfig` is seen entirely or not at all;
//! 6. only for a reported create: the requestor's ids, the sequence number, the time, and
//!    the event, in a pool buffer of exactly its size (the name is released first);
//! 7. delivery.

use crate::config::Settings;
use crate::deliver::notify;
use crate::deliver::pended;
use crate::deliver::queue::Push;
use crate::deliver::reply::{self, Outcome};
use crate::event::EventMessage;
use crate::names::{FileName, NameKind};
use crate::skip::{self, CreateFacts};
use crate::state::{self, DriverState};
use crate::stats::Counter;
use core::ffi::c_void;
use core::sync::atomic::Ordering;
use portfilter_bindings::{
    FALSE, FLT_CALLBACK_DATA, FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_COMPLETE, FLT_PREOP_PENDING,
    FLT_PREOP_SUCCESS_NO_CALLBACK, FLT_RELATED_OBJECTS, FltGetRequestorProcessId, IO_STATUS_BLOCK,
    IO_STATUS_BLOCK_0, IoGetTopLevelIrp, KeAreAllApcsDisabled, KeQuerySystemTimePrecise,
    PFLT_INSTANCE, PsGetThreadId,
};
use portfilter_protocol::{
    Delivery, EVENT_FLAG_DIRECTORY, EVENT_FLAG_KERNEL_MODE, EVENT_FLAG_NAME_OPENED,
    EVENT_FLAG_NAME_UNAVAILABLE, EVENT_FLAG_UNSAFE_CONTEXT, EventFields,
};

/// Where waiting for user mode could deadlock: the requestor thread may hold
/// file-system or memory-manager resources that a user-mode client needs to answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ThreadContext {
    /// `IoGetTopLevelIrp() != NULL`: a file system, the cache manager or the modified
    /// page writer is the top-level component (it holds its resources). Name queries are
    /// refused here too ("cannot get file name information if the TopLevelIrp field of
    /// the current thread is not NULL").
    pub top_level_irp: bool,
    /// `KeAreAllApcsDisabled()`: inside a guarded region (typically holding a guarded
    /// mutex or a resource acquired that way) or at IRQL >= APC_LEVEL.
    pub apcs_disabled: bool,
}

impl ThreadContext {
    /// The calling (requestor) thread's context.
    #[inline(always)]
    fn current() -> Self {
        // SAFETY: reads the current thread's TopLevelIrp field; callable at any IRQL <=
        // DISPATCH_LEVEL, and a pre-create runs at PASSIVE_LEVEL or APC_LEVEL.
        let top_level_irp = !unsafe { IoGetTopLevelIrp() }.is_null();
        // SAFETY: reads the current thread's APC state; IRQL as above.
        let apcs_disabled = unsafe { KeAreAllApcsDisabled() } != FALSE;
        Self {
            top_level_irp,
            apcs_disabled,
        }
    }

    /// The create must not be held for user mode.
    pub(crate) fn unsafe_to_wait(self) -> bool {
        self.top_level_irp || self.apcs_disabled
    }
}

/// Pre-create (registered for `IRP_MJ_CREATE`). `PASSIVE_LEVEL`, on the creating thread.
pub(crate) unsafe extern "system" fn pre_create(
    data: *mut FLT_CALLBACK_DATA,
    flt_objects: *const FLT_RELATED_OBJECTS,
    _completion_context: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    let Some(state) = state::get() else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    if data.is_null() {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    state.stats.bump(Counter::EventsSeen);
    // SAFETY: the related objects, if given, are valid during the callback.
    let instance = unsafe { flt_objects.as_ref() }.map_or(core::ptr::null_mut(), |o| o.Instance);
    // SAFETY: the Filter Manager passes valid callback data for the running operation.
    match unsafe { report(state, data, instance) } {
        Outcome::Allow => FLT_PREOP_SUCCESS_NO_CALLBACK,
        // Someone else completes it (and may have already): `data` is not touched again.
        Outcome::Pended => FLT_PREOP_PENDING,
        Outcome::Deny(status) => {
            // SAFETY: as above; completing the operation ourselves means setting IoStatus.
            unsafe {
                (*data).IoStatus = IO_STATUS_BLOCK {
                    u: IO_STATUS_BLOCK_0 { Status: status },
                    Information: 0,
                };
            }
            FLT_PREOP_COMPLETE
        }
    }
}

/// What the event takes from the create's parameters (copied out with the skip facts,
/// turned into [`EventFields`] only for a reported create).
#[derive(Clone, Copy)]
struct Parameters {
    desired_access: u32,
    create_disposition: u8,
    share_access: u16,
    file_attributes: u32,
}

/// Reads what the skip rules and the event need out of the callback data.
///
/// # Safety
/// `data` is the running operation's callback data.
unsafe fn read_facts(data: *mut FLT_CALLBACK_DATA) -> Option<(CreateFacts, Parameters)> {
    // SAFETY: valid callback data (caller); Iopb is valid for its lifetime.
    let data_ref = unsafe { &*data };
    // SAFETY: as above.
    let iopb = unsafe { data_ref.Iopb.as_ref() }?;
    // SAFETY: for IRP_MJ_CREATE the Create member of the parameter union is the valid one.
    let create = unsafe { iopb.Parameters.Create };
    // SAFETY: the target file object, if any, is valid during the pre-create.
    let file_object_flags = unsafe { iopb.TargetFileObject.as_ref() }.map_or(0, |fo| fo.Flags);
    // SAFETY: the security context of a create, if any, is valid during the pre-create.
    let desired_access =
        unsafe { create.SecurityContext.as_ref() }.map_or(0, |sc| sc.DesiredAccess);
    let facts = CreateFacts {
        operation_flags: iopb.OperationFlags,
        file_object_flags,
        create_options: create.create_options(),
        requestor_mode: data_ref.RequestorMode,
    };
    let parameters = Parameters {
        desired_access,
        create_disposition: u8::try_from(create.disposition()).unwrap_or(u8::MAX),
        share_access: create.ShareAccess,
        file_attributes: u32::from(create.FileAttributes),
    };
    Some((facts, parameters))
}

/// The event's fields of a reported create: everything but the sequence number and the
/// time.
///
/// # Safety
/// `data` is the running operation's callback data.
unsafe fn event_fields(
    data: *mut FLT_CALLBACK_DATA,
    facts: &CreateFacts,
    parameters: Parameters,
    mut flags: u32,
    volume_name_len: u16,
) -> EventFields {
    if facts.is_directory() {
        flags |= EVENT_FLAG_DIRECTORY;
    }
    if facts.is_kernel_mode() {
        flags |= EVENT_FLAG_KERNEL_MODE;
    }
    // SAFETY: caller's contract.
    let (process_id, thread_id) = unsafe { requestor_ids(data) };
    EventFields {
        flags,
        process_id,
        thread_id,
        desired_access: parameters.desired_access,
        create_options: facts.create_options,
        create_disposition: parameters.create_disposition,
        share_access: parameters.share_access,
        file_attributes: parameters.file_attributes,
        volume_name_len,
        ..EventFields::default()
    }
}

/// The requestor's process and thread ids, asked for only once the create is reported.
///
/// # Safety
/// `data` is the running operation's callback data.
unsafe fn requestor_ids(data: *mut FLT_CALLBACK_DATA) -> (u32, u32) {
    // SAFETY: valid callback data (caller).
    let process_id = unsafe { FltGetRequestorProcessId(data) };
    // SAFETY: as above.
    let thread = unsafe { (*data).Thread };
    let thread_id = if thread.is_null() {
        0
    } else {
        // SAFETY: the operation's thread object.
        unsafe { PsGetThreadId(thread) as usize as u32 }
    };
    (process_id, thread_id)
}

/// Everything after the entry checks. Returns what to do with the create.
///
/// # Safety
/// `data` is the running operation's callback data.
unsafe fn report(
    state: &DriverState,
    data: *mut FLT_CALLBACK_DATA,
    instance: PFLT_INSTANCE,
) -> Outcome {
    // SAFETY: caller's contract.
    let Some((facts, parameters)) = (unsafe { read_facts(data) }) else {
        return Outcome::Allow;
    };
    if skip::always_skipped(&facts).is_some() || state.unloading.load(Ordering::Acquire) {
        state.stats.bump(Counter::EventsSkipped);
        return Outcome::Allow;
    }
    // A cheap early look at the configuration, without a lock (may be a moment stale:
    // then this create simply behaves as if it ran before the change).
    let early = state.config.early();
    if skip::skipped_by_policy(&facts, early.skip).is_some()
        || (!state.connections.any_open() && early.default_allows)
        || parameters.create_disposition > portfilter_protocol::event::MAX_CREATE_DISPOSITION
    {
        state.stats.bump(Counter::EventsSkipped);
        return Outcome::Allow;
    }

    let context = ThreadContext::current();
    let mut flags = 0;
    if context.unsafe_to_wait() {
        flags |= EVENT_FLAG_UNSAFE_CONTEXT;
    }
    let mut volume_name_len = 0;
    let name = if context.top_level_irp {
        // The Filter Manager refuses name queries here (STATUS_FLT_INVALID_NAME_REQUEST).
        None
    } else {
        // SAFETY: caller's contract.
        unsafe { FileName::query(data) }
    };
    let decided = if let Some(name) = &name {
        let parts = name.parts();
        volume_name_len = u16::try_from(parts.volume_units * 2).unwrap_or(0);
        if name.kind() == NameKind::Opened {
            flags |= EVENT_FLAG_NAME_OPENED;
        }
        state
            .config
            .decide(parts.path, || name.extension(parts.path))
    } else {
        flags |= EVENT_FLAG_NAME_UNAVAILABLE;
        state.config.decide_unnamed()
    };
    let Some(settings) =
        decided.filter(|settings| skip::skipped_by_policy(&facts, settings.skip).is_none())
    else {
        state.stats.bump(Counter::EventsSkipped);
        return Outcome::Allow;
    };
    // SAFETY: caller's contract.
    let mut fields = unsafe { event_fields(data, &facts, parameters, flags, volume_name_len) };
    fields.sequence = state.sequence.fetch_add(1, Ordering::Relaxed) + 1;
    let mut now = 0i64;
    // SAFETY: `now` is a valid out pointer.
    unsafe { KeQuerySystemTimePrecise(&raw mut now) };
    fields.timestamp = u64::try_from(now).unwrap_or(0);
    let full: &[u16] = name.as_ref().map_or(&[], |n| n.full());
    let event = EventMessage::build(&fields, full);
    // The name information is not needed while we wait for user mode.
    drop(name);
    let create = Create {
        data,
        instance,
        sequence: fields.sequence,
        requestor: fields.process_id,
        context,
    };
    // SAFETY: caller's contract.
    unsafe { deliver(state, &settings, event, &create) }
}

/// The create being delivered.
struct Create {
    data: *mut FLT_CALLBACK_DATA,
    instance: PFLT_INSTANCE,
    sequence: u64,
    requestor: u32,
    context: ThreadContext,
}

/// Who decides a create that may wait for user mode.
enum Decider {
    /// An asynchronous decider (this connection id): pend the create.
    Asynchronous(u32),
    /// The decider is the requestor's own process: never held.
    Excluded,
    /// A synchronous decider or none: request-reply (or the default).
    Other,
}

fn decider_kind(state: &DriverState, requestor: u32) -> Decider {
    let mut asynchronous = None;
    let visit = state.connections.for_each(
        crate::connections::Role::Decider,
        Some(requestor),
        &state.stats,
        |decider| {
            if decider.asynchronous {
                asynchronous = Some(decider.connection_id);
            }
        },
    );
    match asynchronous {
        Some(id) => Decider::Asynchronous(id),
        None if visit.excluded => Decider::Excluded,
        None => Decider::Other,
    }
}

/// Delivery to the decider and the observers. In an unsafe [`ThreadContext`] nothing
/// waits for user mode: the decider is not asked (default verdict at once, counted as
/// `UnsafeContext`), plain-notify observers get the event only if a request is already
/// pending, the queue takes it as always.
///
/// # Safety
/// `create.data` is the running pre-create's callback data.
unsafe fn deliver(
    state: &DriverState,
    settings: &Settings,
    event: Option<EventMessage>,
    create: &Create,
) -> Outcome {
    let (sequence, requestor, context) = (create.sequence, create.requestor, create.context);
    let stats = &state.stats;
    // It passed the skip rules and filters: reported, whether or not the event could be
    // built (so that events_seen = events_reported + events_skipped always holds; a
    // create whose event had no pool is counted as reported and dropped).
    stats.bump(Counter::EventsReported);
    let Some(mut event) = event else {
        // No pool for the event: nobody can be told; decide as if no decider answered.
        stats.bump(Counter::QueueDropped);
        if settings.observer_delivery == Delivery::Queued {
            // Queued observers learn about it in the next batch's dropped_before.
            state.queue.note_dropped();
        }
        return if state.connections.any_open() {
            Outcome::default_verdict(settings, stats)
        } else {
            Outcome::Allow
        };
    };
    let filter = state.filter();
    let unsafe_to_wait = context.unsafe_to_wait();

    // 1. The decider (the creating thread waits here, at most reply_timeout_ms) — unless
    //    waiting could deadlock.
    let outcome = if unsafe_to_wait {
        stats.bump(Counter::UnsafeContext);
        reply::decide_without_asking(&state.connections, requestor, settings, stats)
    } else {
        match decider_kind(state, requestor) {
            Decider::Asynchronous(connection_id) => {
                // SAFETY: the running pre-create's callback data (caller's contract);
                // after `Pended` nothing here touches it again.
                unsafe {
                    pended::pend(
                        state,
                        create.data,
                        create.instance,
                        event.pended_copy(),
                        sequence,
                        settings,
                        connection_id,
                    )
                }
            }
            Decider::Excluded => Outcome::Allow,
            Decider::Other => reply::decide(
                filter,
                &state.connections,
                requestor,
                &mut event,
                sequence,
                settings,
                stats,
            ),
        }
    };

    // 2. The observers.
    match settings.observer_delivery {
        Delivery::Notify => {
            let notify_ms = if unsafe_to_wait {
                0
            } else {
                settings.notify_timeout_ms
            };
            notify::send_to_observers(
                filter,
                &state.connections,
                requestor,
                event.bytes_mut(),
                notify_ms,
                stats,
            );
        }
        Delivery::Queued => {
            if state.connections.any_observer() {
                match state.queue.push(event) {
                    Push::Queued { was_empty } => {
                        stats.bump(Counter::QueueEnqueued);
                        if was_empty {
                            state.worker.wake();
                        }
                    }
                    Push::Full(event) => {
                        stats.bump(Counter::QueueDropped);
                        drop(event);
                    }
                }
            }
        }
    }
    outcome
}
