//! The connection table: who is connected, in which role, from which process, and the
//! client port of each connection.
//!
//! How several connections are served (documented in docs/driver.md):
//! * at most one **decider** (answers request-reply). A second decider's connect fails with
//!   [`SECOND_DECIDER_STATUS`], while the first stays connected;
//! * up to `MAX_CONNECTIONS - 1` **observers** (plain or queued notify) and **control**
//!   connections (commands only, no events) together, so that a slot is always left for
//!   the decider. One too many gets `STATUS_CONNECTION_COUNT_LIMIT`, the status the Filter
//!   Manager itself uses.
//!
//! Connect and Disconnect change the table under its push lock (exclusive). The create
//! path reads it **without the lock**: each slot has a *gate*, a small rundown protection
//! in one atomic word (bit 0: open for new references; the other bits: references held).
//! Connect writes the slot's client port, role, process id and connection id, then opens
//! the gate with a `Release` store. A sender takes a reference with a compare-exchange
//! that succeeds only while the gate is open (`Acquire`: it then sees the fields that
//! connection published, and those fields cannot change while it holds the reference);
//! it checks the role and the process id (self-exclusion) *after* taking the reference,
//! so the process checked is the one of the port the event goes to — the identity and
//! the port are published, pinned and retired together, as one unit, which is what
//! keeping them "under the same lock" guarantees. The reference is released after
//! `FltSendMessage` returned ([`Connections::for_each`]). Disconnect closes the gate (no
//! new references: every later compare-exchange fails), closes the client port, waits for
//! the references to drain, and only then frees the slot. So a send never reaches a
//! *different* connection that reused the slot. A slot that is not open for the role
//! asked costs the create path two plain loads and no interlocked operation.
//!
//! Closing the client port is what wakes a sender blocked on it, under every reading of
//! the Filter Manager's disconnect (fltmgr wakes senders before calling Disconnect;
//! ReactOS only at `FltCloseClientPort`): the drain waits only after our own close.
//! Unload closes every client port itself ([`Connections::close_all`]) before it stops
//! the worker, and seals the table so that no connect can slip in afterwards.

use crate::MAX_CONNECTIONS;
use crate::stats::{Counter, Stats};
use crate::sync::{Event, PushLock, Wait};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use portfilter_bindings::{
    FltCloseClientPort, NTSTATUS, PFLT_FILTER, PFLT_PORT, STATUS_CONNECTION_COUNT_LIMIT,
    STATUS_FLT_DELETING_OBJECT,
};

/// What a second decider gets from its connect (see the protocol's status contract).
pub(crate) const SECOND_DECIDER_STATUS: NTSTATUS =
    portfilter_protocol::status::STATUS_DECIDER_ALREADY_CONNECTED;

/// A connection's role, from its connect context (the protocol's type).
pub(crate) use portfilter_protocol::Role;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Free,
    Open,
    Closing,
}

#[derive(Clone, Copy)]
struct Slot {
    state: SlotState,
    role: Role,
    /// An asynchronous decider (creates are pended and answered by `VerdictBatch`).
    asynchronous: bool,
    connection_id: u32,
}

const FREE_SLOT: Slot = Slot {
    state: SlotState::Free,
    role: Role::Observer,
    asynchronous: false,
    connection_id: 0,
};

struct Table {
    slots: [Slot; MAX_CONNECTIONS],
    next_connection_id: u32,
    /// Unload closed every connection: no new one is admitted.
    sealed: bool,
}

/// Connection bookkeeping plus the client ports.
pub(crate) struct Connections {
    table: PushLock<Table>,
    /// Client port per slot. The Filter Manager reads these (`FltSendMessage`) and clears
    /// them (`FltCloseClientPort`) through their address; we write one only in Connect,
    /// while its slot is not yet visible to senders.
    ports: [UnsafeCell<PFLT_PORT>; MAX_CONNECTIONS],
    /// Per slot: the rundown word ([`GATE_OPEN`] + [`GATE_REF`] × references held).
    gates: [AtomicU32; MAX_CONNECTIONS],
    /// Per slot: the connection's role ([`role_code`]), published by its gate.
    roles: [AtomicU32; MAX_CONNECTIONS],
    /// Per slot: the connection's process id, published by its gate.
    process_ids: [AtomicU32; MAX_CONNECTIONS],
    /// Per slot: the connection's id, published by its gate.
    connection_ids: [AtomicU32; MAX_CONNECTIONS],
    /// Per slot: an asynchronous decider, published by its gate.
    asynchronous: [AtomicBool; MAX_CONNECTIONS],
    /// Open observer connections (a lock-free hint for the create path).
    observers: AtomicU32,
    /// Signalled when a slot's reference count drops to zero.
    drained: [Event; MAX_CONNECTIONS],
    /// Set once the slot's client port is closed (a notification event, cleared when a
    /// connection takes the slot): a second closer waits on it.
    port_closed: [Event; MAX_CONNECTIONS],
    /// Open connections (a lock-free shortcut for the create path).
    open: AtomicU32,
    /// Per slot: the last notify send to this observer failed (it had no
    /// `FilterGetMessage` pending). Reset when a connection takes the slot.
    stalled: [AtomicBool; MAX_CONNECTIONS],
}

// SAFETY: `table` is guarded by its push lock; `ports` cells follow the protocol above
// (written once per connection before its gate opens, then only by the Filter Manager,
// which synchronises on the port object); the rest are atomics and kernel events.
unsafe impl Sync for Connections {}
// SAFETY: plain data and kernel object pointers.
unsafe impl Send for Connections {}

/// Connection counts for statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Open connections.
    pub connected: u32,
    /// Open decider connections (0 or 1).
    pub deciders: u32,
    /// Open observer connections.
    pub observers: u32,
}

/// A connection's identity, for `Hello`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectionInfo {
    /// Its role.
    pub role: Role,
    /// A number unique for the driver's lifetime (starts at 1).
    pub connection_id: u32,
    /// An asynchronous decider.
    pub asynchronous: bool,
}

impl Connections {
    /// An empty table that still needs [`Connections::init`] at its final address.
    pub(crate) const fn new() -> Self {
        Self {
            table: PushLock::new(Table {
                slots: [FREE_SLOT; MAX_CONNECTIONS],
                next_connection_id: 1,
                sealed: false,
            }),
            ports: [const { UnsafeCell::new(core::ptr::null_mut()) }; MAX_CONNECTIONS],
            gates: [const { AtomicU32::new(0) }; MAX_CONNECTIONS],
            roles: [const { AtomicU32::new(0) }; MAX_CONNECTIONS],
            process_ids: [const { AtomicU32::new(0) }; MAX_CONNECTIONS],
            connection_ids: [const { AtomicU32::new(0) }; MAX_CONNECTIONS],
            asynchronous: [const { AtomicBool::new(false) }; MAX_CONNECTIONS],
            observers: AtomicU32::new(0),
            drained: [const { Event::new() }; MAX_CONNECTIONS],
            port_closed: [const { Event::new() }; MAX_CONNECTIONS],
            open: AtomicU32::new(0),
            stalled: [const { AtomicBool::new(false) }; MAX_CONNECTIONS],
        }
    }

    /// Initialises the lock and events in place.
    pub(crate) fn init(&self) {
        self.table.init();
        for event in self.drained.iter().chain(&self.port_closed) {
            event.init(false);
        }
    }

    /// Deletes the lock. Call when no callback can run any more.
    pub(crate) fn delete(&self) {
        self.table.delete();
    }

    /// Registers a new connection (from the Connect callback) and returns its slot index
    /// and connection id.
    ///
    /// # Errors
    /// [`SECOND_DECIDER_STATUS`] when a decider is already connected;
    /// `STATUS_CONNECTION_COUNT_LIMIT` when the role's share of slots is taken;
    /// `STATUS_FLT_DELETING_OBJECT` once unload closed the connections.
    pub(crate) fn connect(
        &self,
        role: Role,
        asynchronous: bool,
        process_id: u32,
        client_port: PFLT_PORT,
    ) -> Result<(usize, u32), NTSTATUS> {
        let mut table = self.table.write();
        if table.sealed {
            return Err(STATUS_FLT_DELETING_OBJECT);
        }
        let open = |r: Role| {
            table
                .slots
                .iter()
                .filter(|s| s.state == SlotState::Open && s.role == r)
                .count()
        };
        // Non-decider slots still closing count too: otherwise, while an observer's
        // Disconnect drains its senders, a new observer could take the slot kept for the
        // decider. The cost is that an observer reconnecting in that window (at most one
        // send's wake-up) is refused and must retry; the decider never is.
        let non_deciders = table
            .slots
            .iter()
            .filter(|s| s.state != SlotState::Free && s.role != Role::Decider)
            .count();
        match role {
            Role::Decider if open(Role::Decider) > 0 => return Err(SECOND_DECIDER_STATUS),
            Role::Observer | Role::Control if non_deciders >= MAX_CONNECTIONS - 1 => {
                return Err(STATUS_CONNECTION_COUNT_LIMIT);
            }
            _ => {}
        }
        let Some(index) = table.slots.iter().position(|s| s.state == SlotState::Free) else {
            return Err(STATUS_CONNECTION_COUNT_LIMIT);
        };
        let connection_id = table.next_connection_id;
        table.next_connection_id = table.next_connection_id.wrapping_add(1).max(1);
        let (Some(cell), Some(gate), Some(role_cell), Some(pid_cell), Some(id_cell)) = (
            self.ports.get(index),
            self.gates.get(index),
            self.roles.get(index),
            self.process_ids.get(index),
            self.connection_ids.get(index),
        ) else {
            return Err(STATUS_CONNECTION_COUNT_LIMIT);
        };
        // SAFETY: the slot is free: its gate is closed with no reference held (disconnect
        // drained it), so no sender reads the cell, and the Filter Manager no longer uses
        // the old port (closed before the slot was freed).
        unsafe { *cell.get() = client_port };
        // Relaxed: published by the gate's Release store below.
        role_cell.store(role_code(role), Ordering::Relaxed);
        pid_cell.store(process_id, Ordering::Relaxed);
        id_cell.store(connection_id, Ordering::Relaxed);
        if let Some(async_cell) = self.asynchronous.get(index) {
            async_cell.store(asynchronous, Ordering::Relaxed);
        }
        if let Some(slot) = table.slots.get_mut(index) {
            *slot = Slot {
                state: SlotState::Open,
                role,
                asynchronous,
                connection_id,
            };
        }
        if let Some(stalled) = self.stalled.get(index) {
            stalled.store(false, Ordering::Release);
        }
        if let Some(closed) = self.port_closed.get(index) {
            closed.clear();
        }
        if role == Role::Observer {
            self.observers.fetch_add(1, Ordering::AcqRel);
        }
        self.open.fetch_add(1, Ordering::AcqRel);
        // Release: a sender whose compare-exchange reads this value (or a later one in its
        // release sequence) sees the port, role, process and connection id written above.
        gate.store(GATE_OPEN, Ordering::Release);
        Ok((index, connection_id))
    }

    /// How long a notify send to the observer in slot `index` may wait: `timeout_ms`,
    /// or 0 ("only if a request is already pending": sent as the shortest non-zero
    /// timeout, never 0) while its last send failed. So an observer that stopped reading
    /// costs one timeout per stall, not one per message.
    pub(crate) fn notify_wait_ms(&self, index: usize, timeout_ms: u32) -> u32 {
        match self.stalled.get(index) {
            Some(stalled) if stalled.load(Ordering::Acquire) => 0,
            _ => timeout_ms,
        }
    }

    /// Records whether a notify send to the observer in slot `index` was delivered.
    pub(crate) fn record_notify(&self, index: usize, delivered: bool) {
        if let Some(stalled) = self.stalled.get(index) {
            stalled.store(!delivered, Ordering::Release);
        }
    }

    /// Removes a connection (from the Disconnect callback, or from unload): no new sends,
    /// close the client port (which wakes the sends in flight with
    /// `STATUS_PORT_DISCONNECTED`), wait for them to leave, free the slot. If another
    /// thread is already closing the slot, waits until its port is closed, so that a
    /// Disconnect callback never returns before `FltCloseClientPort` ran. Returns whether
    /// this call closed a connection.
    pub(crate) fn disconnect(&self, filter: PFLT_FILTER, index: usize) -> bool {
        let (Some(cell), Some(gate), Some(drained), Some(closed)) = (
            self.ports.get(index),
            self.gates.get(index),
            self.drained.get(index),
            self.port_closed.get(index),
        ) else {
            return false;
        };
        {
            let mut table = self.table.write();
            match table.slots.get_mut(index) {
                Some(slot) if slot.state == SlotState::Open => {
                    slot.state = SlotState::Closing;
                    if slot.role == Role::Observer {
                        self.observers.fetch_sub(1, Ordering::AcqRel);
                    }
                }
                Some(slot) if slot.state == SlotState::Closing => {
                    drop(table);
                    // The other closer's FltCloseClientPort returns promptly; the bounded
                    // slices only guard against a missed wake-up.
                    while closed.wait(Some(10)) == Wait::TimedOut {}
                    return false;
                }
                _ => return false,
            }
            self.open.fetch_sub(1, Ordering::AcqRel);
            drained.clear();
            // No new references from here on: a compare-exchange that read the gate open
            // fails, since this changes the word; one ordered after this sees it closed.
            gate.fetch_and(!GATE_OPEN, Ordering::AcqRel);
        }
        // SAFETY: the cell holds this connection's client port; FltCloseClientPort closes
        // it and sets the cell to null. Sends on it fail with STATUS_PORT_DISCONNECTED.
        unsafe { FltCloseClientPort(filter, cell.get()) };
        closed.set();
        // Every sender that still holds a reference is about to return (its port is
        // closed). The bounded wait only guards against a missed wake-up.
        // Acquire: pairs with the senders' Release decrements, so their last reads of the
        // port cell and the slot's fields happen before the slot is reused.
        while gate.load(Ordering::Acquire) != 0 {
            let _: Wait = drained.wait(Some(10));
        }
        let mut table = self.table.write();
        if let Some(slot) = table.slots.get_mut(index) {
            *slot = FREE_SLOT;
        }
        drop(table);
        crate::log_info!("client disconnected (slot {index})");
        true
    }

    /// Unload: refuses every later connect and closes every connection's client port,
    /// which releases each sender blocked on one (the worker's batch send, creates
    /// waiting for the decider or an observer) under every reading of the Filter
    /// Manager's disconnect. Returns how many connections it closed.
    pub(crate) fn close_all(&self, filter: PFLT_FILTER) -> u32 {
        self.table.write().sealed = true;
        let mut closed = 0;
        for index in 0..MAX_CONNECTIONS {
            if self.disconnect(filter, index) {
                closed += 1;
            }
        }
        closed
    }

    /// The identity of the connection in slot `index`, if open.
    pub(crate) fn info(&self, index: usize) -> Option<ConnectionInfo> {
        let table = self.table.read();
        table
            .slots
            .get(index)
            .filter(|s| s.state == SlotState::Open)
            .map(|s| ConnectionInfo {
                role: s.role,
                connection_id: s.connection_id,
                asynchronous: s.asynchronous,
            })
    }

    /// Whether any connection is open (no lock; a hint that may be stale by the time the
    /// caller acts on it).
    pub(crate) fn any_open(&self) -> bool {
        self.open.load(Ordering::Acquire) != 0
    }

    /// Whether any observer is connected (no lock; a hint, as [`Connections::any_open`]).
    pub(crate) fn any_observer(&self) -> bool {
        self.observers.load(Ordering::Acquire) != 0
    }

    /// Open connections by role.
    pub(crate) fn counts(&self) -> Counts {
        let table = self.table.read();
        let mut counts = Counts::default();
        for slot in table.slots.iter().filter(|s| s.state == SlotState::Open) {
            counts.connected += 1;
            match slot.role {
                Role::Decider => counts.deciders += 1,
                Role::Observer => counts.observers += 1,
                // Counted in `connected` only: they receive no events.
                Role::Control => {}
            }
        }
        counts
    }

    /// Calls `f` for every open connection of `role` whose process is not `requestor`
    /// (self-exclusion; `None`: no exclusion), one at a time, without the table lock.
    /// While `f` runs, the connection's slot is referenced (its port cell stays this
    /// connection's); the reference is taken first and the role and process are checked
    /// under it (the module documentation has the protocol), and it is released right
    /// after `f` returns — a sender never holds a slot while it talks to another
    /// connection, so a disconnect waits at most for the sends *to it*, which the Filter
    /// Manager has already woken. Exclusions are counted as [`Counter::SelfExcluded`].
    pub(crate) fn for_each(
        &self,
        role: Role,
        requestor: Option<u32>,
        stats: &Stats,
        mut f: impl FnMut(&Target),
    ) -> Visit {
        let mut visit = Visit::default();
        let wanted = role_code(role);
        for index in 0..MAX_CONNECTIONS {
            let (Some(gate), Some(role_cell), Some(pid_cell), Some(id_cell), Some(cell)) = (
                self.gates.get(index),
                self.roles.get(index),
                self.process_ids.get(index),
                self.connection_ids.get(index),
                self.ports.get(index),
            ) else {
                continue;
            };
            // A cheap look first (plain loads, possibly stale): skip slots that are closed
            // or hold another role without touching their gate's cache line for writing.
            // A stale look only skips a connection that is opening right now (the create
            // then behaves as if it ran just before the connect) or costs one reference
            // taken and dropped below.
            if gate.load(Ordering::Relaxed) & GATE_OPEN == 0
                || role_cell.load(Ordering::Relaxed) != wanted
            {
                continue;
            }
            if !acquire_gate(gate) {
                continue;
            }
            // Under the reference (Acquire in `acquire_gate`): these are the values the
            // connection that opened the gate published, and they stay its values until
            // we release.
            let target = Target {
                port: cell.get(),
                asynchronous: self
                    .asynchronous
                    .get(index)
                    .is_some_and(|a| a.load(Ordering::Relaxed)),
                process_id: pid_cell.load(Ordering::Relaxed),
                connection_id: id_cell.load(Ordering::Relaxed),
                index,
            };
            if role_cell.load(Ordering::Relaxed) != wanted {
                self.release(index);
                continue;
            }
            if requestor == Some(target.process_id) {
                self.release(index);
                stats.bump(Counter::SelfExcluded);
                visit.excluded = true;
                continue;
            }
            f(&target);
            self.release(index);
            visit.visited += 1;
        }
        visit
    }

    fn release(&self, index: usize) {
        let (Some(gate), Some(drained)) = (self.gates.get(index), self.drained.get(index)) else {
            return;
        };
        // Release: our reads of the port cell and the slot's fields happen before the
        // disconnecting thread's Acquire load that sees the count reach zero.
        let before = gate.fetch_sub(GATE_REF, Ordering::AcqRel);
        if before & !GATE_OPEN == GATE_REF {
            drained.set();
        }
    }
}

/// Gate bit: the slot accepts new references.
const GATE_OPEN: u32 = 1;
/// Gate increment for one reference.
const GATE_REF: u32 = 2;

/// Takes a reference on an open gate; false when it is closed (or the count would
/// overflow, which more than 2^31 concurrent senders cannot reach).
fn acquire_gate(gate: &AtomicU32) -> bool {
    let mut current = gate.load(Ordering::Relaxed);
    loop {
        if current & GATE_OPEN == 0 {
            return false;
        }
        let Some(next) = current.checked_add(GATE_REF) else {
            return false;
        };
        // Acquire on success: synchronises with the connect's Release store that opened
        // the gate (our compare-exchange reads it or a later read-modify-write in its
        // release sequence), so the slot's fields are that connection's.
        match gate.compare_exchange_weak(current, next, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(now) => current = now,
        }
    }
}

/// A role as stored in a slot's atomic (its wire value).
const fn role_code(role: Role) -> u32 {
    role as u32
}

/// One connection handed to [`Connections::for_each`]'s callback.
pub(crate) struct Target {
    /// Its client port cell, for `FltSendMessage` (valid during the callback).
    pub port: *mut PFLT_PORT,
    /// An asynchronous decider.
    pub asynchronous: bool,
    /// The connected process.
    pub process_id: u32,
    /// The connection's id.
    pub connection_id: u32,
    /// Its slot.
    pub index: usize,
}

/// What [`Connections::for_each`] did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Visit {
    /// Connections the callback ran for.
    pub visited: u32,
    /// A connection of the role was left out because it is the requestor's own process.
    pub excluded: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoped_check::check_or_abort;

    /// A slot's gate as the create path and a disconnect use it: the *last* reference
    /// released signals the slot's drain event (what wakes a waiting disconnect at once;
    /// its 10 ms polling only guards against a missed wake-up), an earlier one does not,
    /// and a closed gate takes no new reference.
    #[test]
    fn the_last_reference_released_wakes_the_drain_and_a_closed_gate_takes_none() {
        let _machine = fltsim::Machine::boot();
        let connections = std::boxed::Box::new(Connections::new());
        connections.init();
        let (gate, drained) = (&connections.gates[0], &connections.drained[0]);
        gate.store(GATE_OPEN, Ordering::Release);
        assert!(
            acquire_gate(gate) && acquire_gate(gate),
            "an open gate takes references"
        );
        connections.release(0);
        assert_eq!(
            drained.wait(Some(10)),
            Wait::TimedOut,
            "one reference is still held"
        );
        connections.release(0);
        assert_eq!(
            drained.wait(Some(10)),
            Wait::Signalled,
            "the last one is released"
        );
        assert_eq!(gate.load(Ordering::Acquire), GATE_OPEN);

        // As a disconnect leaves it: closed while a sender holds a reference.
        drained.clear();
        assert!(acquire_gate(gate));
        gate.fetch_and(!GATE_OPEN, Ordering::AcqRel);
        assert!(!acquire_gate(gate), "a closed gate takes no new reference");
        assert_eq!(drained.wait(Some(10)), Wait::TimedOut);
        connections.release(0);
        assert_eq!(drained.wait(Some(10)), Wait::Signalled);
        assert_eq!(gate.load(Ordering::Acquire), 0, "closed and drained");
    }

    /// A disconnect that finds its slot already being closed by another thread (unload's
    /// `close_all` racing the client's own Disconnect) returns only once that thread's
    /// `FltCloseClientPort` ran, and reports that it closed nothing.
    #[test]
    fn a_second_closer_returns_only_after_the_first_closed_the_port() {
        use std::sync::atomic::AtomicBool;
        use std::time::{Duration, Instant};
        let _machine = fltsim::Machine::boot();
        let connections = std::boxed::Box::new(Connections::new());
        connections.init();
        // The first closer is between closing the gate and closing the port.
        if let Some(slot) = connections.table.write().slots.get_mut(0) {
            slot.state = SlotState::Closing;
        }
        let returned = AtomicBool::new(false);
        std::thread::scope(|s| {
            let second = s.spawn(|| {
                let closed = connections.disconnect(core::ptr::null_mut(), 0);
                returned.store(true, Ordering::Release);
                closed
            });
            std::thread::sleep(Duration::from_millis(100));
            // A failed check aborts: unwinding would join `second`, which may wait for ever.
            check_or_abort!(
                !returned.load(Ordering::Acquire),
                "returned before the port was closed"
            );
            connections.port_closed[0].set();
            let deadline = Instant::now() + Duration::from_secs(20);
            while !second.is_finished() {
                check_or_abort!(
                    Instant::now() < deadline,
                    "still waiting after the port closed"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(!second.join().unwrap(), "the second closer closed nothing");
        });
    }
}
