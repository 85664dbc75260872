//! Delivery of events to user mode: request-reply to the decider ([`reply`]), plain
//! notify to observers ([`notify`]), and queued notify ([`queue`] filled by the create
//! path, drained by the [`worker`] thread into [`batch`]es), and the asynchronous
//! decider's creates: [`pended`] in a cancel-safe queue, their requests sent in batches by
//! the [`requests`] thread.

pub(crate) mod batch;
pub(crate) mod notify;
pub(crate) mod pended;
pub(crate) mod pended_set;
pub(crate) mod queue;
pub(crate) mod reply;
pub(crate) mod requests;
pub(crate) mod worker;
