//! The current configuration, shared by the create path and the commands.
//!
//! The protocol's [`Config`] (about 2 KiB with its filters) lives in one pool allocation,
//! immutable once published. The current block is published through an atomic pointer
//! and read **without a lock**; `SetConfig` builds the new configuration in a fresh
//! allocation, swaps the pointer, and frees the old block only once no reader can still
//! hold it. A create therefore sees one whole configuration, old or new, never a mix, and
//! a create that the path filter drops takes no lock.
//!
//! Readers are tracked by a two-generation rundown ([`ConfigStore::pin`]): a reader adds
//! itself to the counter of the current generation (an interlocked add), checks that the
//! generation did not change meanwhile (else it backs out and retries), then loads the
//! pointer; it leaves with an interlocked subtract. The writer (serialised) swaps the
//! pointer, then moves the generation on, then waits until the *previous* generation's
//! counter drains to zero. Every reader that could have loaded the old pointer registered
//! in the previous generation before the move (all of these operations are sequentially
//! consistent), so once that counter is zero no reader holds the old block; readers
//! arriving meanwhile register in the new generation, so the writer cannot be starved by a
//! stream of creates. A reader holds its pin only for a few plain reads (the filter match,
//! or copying the scalars), never across a wait, and inside a critical region
//! (`KeEnterCriticalRegion`, as a push lock does) so that suspending its thread cannot hold
//! up a `SetConfig`. Unload frees the last block after every callback has returned.
//!
//! The create path's first look (before it queries a name) needs only the skip rules and
//! the default verdict: they are mirrored in one atomic word ([`Early`]), written when the
//! configuration is swapped, and read without any pin — a skipped create takes no
//! interlocked operation at all. That look may be a moment stale (it is then as if the
//! create ran just before the `SetConfig`); a create that goes on re-reads everything from
//! one configuration ([`ConfigStore::decide`]).

use crate::pool::PoolBox;
use crate::skip::SkipPolicy;
use crate::sync::{Event, PushLock};
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use portfilter_bindings::{
    KeEnterCriticalRegion, KeLeaveCriticalRegion, NTSTATUS, STATUS_INSUFFICIENT_RESOURCES,
};
use portfilter_protocol::config::{
    DEFAULT_BATCH_MAX_EVENTS, DEFAULT_NOTIFY_TIMEOUT_MS, DEFAULT_QUEUE_CAPACITY,
    DEFAULT_REPLY_TIMEOUT_MS, DEFAULT_SKIP_FLAGS, SKIP_DIRECTORIES, SKIP_KERNEL_MODE,
};
use portfilter_protocol::{Config, Decision, Delivery};

/// The scalar part of the configuration, copied out for one create (or one batch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    /// How observers receive events.
    pub observer_delivery: Delivery,
    /// Request-reply budget (ms, ≥ 1).
    pub reply_timeout_ms: u32,
    /// Notify / batch send budget (ms, 0 = only if a client already waits).
    pub notify_timeout_ms: u32,
    /// Verdict when the decider does not decide.
    pub default_verdict: Decision,
    /// Configurable skip rules.
    pub skip: SkipPolicy,
    /// Queue capacity (events).
    pub queue_capacity: u32,
    /// Most events per batch.
    pub batch_max_events: u32,
}

impl Settings {
    /// The protocol's defaults (used before a configuration is installed).
    pub(crate) const DEFAULT: Self = Self {
        observer_delivery: Delivery::Queued,
        reply_timeout_ms: DEFAULT_REPLY_TIMEOUT_MS,
        notify_timeout_ms: DEFAULT_NOTIFY_TIMEOUT_MS,
        default_verdict: Decision::Allow,
        skip: skip_policy(DEFAULT_SKIP_FLAGS),
        queue_capacity: DEFAULT_QUEUE_CAPACITY,
        batch_max_events: DEFAULT_BATCH_MAX_EVENTS,
    };

    /// Copies the scalars of `config`.
    pub(crate) fn of(config: &Config) -> Self {
        Self {
            observer_delivery: config.observer_delivery,
            reply_timeout_ms: config.reply_timeout_ms,
            notify_timeout_ms: config.notify_timeout_ms,
            default_verdict: config.default_verdict,
            skip: skip_policy(config.skip_flags),
            queue_capacity: config.queue_capacity,
            batch_max_events: config.batch_max_events,
        }
    }
}

const fn skip_policy(flags: u32) -> SkipPolicy {
    SkipPolicy {
        directories: flags & SKIP_DIRECTORIES != 0,
        kernel_mode: flags & SKIP_KERNEL_MODE != 0,
    }
}

/// What the create path's lock-free first look reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Early {
    /// The configurable skip rules.
    pub skip: SkipPolicy,
    /// The default verdict lets creates through.
    pub default_allows: bool,
}

const EARLY_SKIP_DIRECTORIES: u32 = 1;
const EARLY_SKIP_KERNEL_MODE: u32 = 2;
const EARLY_DEFAULT_DENIES: u32 = 4;

impl Early {
    const fn encode(settings: &Settings) -> u32 {
        let mut word = 0;
        if settings.skip.directories {
            word |= EARLY_SKIP_DIRECTORIES;
        }
        if settings.skip.kernel_mode {
            word |= EARLY_SKIP_KERNEL_MODE;
        }
        if matches!(settings.default_verdict, Decision::Deny) {
            word |= EARLY_DEFAULT_DENIES;
        }
        word
    }

    const fn decode(word: u32) -> Self {
        Self {
            skip: SkipPolicy {
                directories: word & EARLY_SKIP_DIRECTORIES != 0,
                kernel_mode: word & EARLY_SKIP_KERNEL_MODE != 0,
            },
            default_allows: word & EARLY_DEFAULT_DENIES == 0,
        }
    }
}

/// One reader in a generation's counter.
const READER: u32 = 2;
/// A writer waits for this generation's counter to drain (the last reader out signals).
const DRAINING: u32 = 1;

/// The installed configuration.
pub(crate) struct ConfigStore {
    /// The current block (from [`PoolBox::into_raw`]; null before `install_default`).
    current: AtomicPtr<Config>,
    /// The reader generation; a reader registers in `readers[generation & 1]`.
    generation: AtomicU32,
    /// Per generation parity: [`READER`] × readers registered, plus [`DRAINING`].
    readers: [AtomicU32; 2],
    /// Signalled by the last reader out of a draining generation (a notification event).
    drained: Event,
    /// Serialises swaps (install, `SetConfig`, unload).
    swapping: PushLock<()>,
    /// [`Early`] of the current configuration, encoded (written by the swap, read without
    /// a pin).
    early: AtomicU32,
    /// Serialises `SetConfig` commands (queue resize + swap form one step).
    setting: PushLock<()>,
}

/// A reader's hold on the current configuration block; released on drop.
pub(crate) struct Pin<'a> {
    store: &'a ConfigStore,
    counter: &'a AtomicU32,
}

impl Pin<'_> {
    /// The configuration pinned (`None` before one is installed).
    pub(crate) fn config(&self) -> Option<&Config> {
        let current = self.store.current.load(Ordering::SeqCst);
        // SAFETY: a non-null `current` is a live block from `PoolBox::into_raw`; it is
        // freed only after the generation this pin registered in has drained (module
        // documentation), i.e. not while `self` lives; blocks are never written after
        // being published.
        unsafe { current.as_ref() }
    }
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        self.store.unregister(self.counter);
        // SAFETY: pairs with the KeEnterCriticalRegion in `ConfigStore::pin`.
        unsafe { KeLeaveCriticalRegion() };
    }
}

impl ConfigStore {
    /// An empty store; call [`ConfigStore::init`] at its final address, then
    /// [`ConfigStore::install_default`].
    pub(crate) const fn new() -> Self {
        Self {
            current: AtomicPtr::new(core::ptr::null_mut()),
            generation: AtomicU32::new(0),
            readers: [AtomicU32::new(0), AtomicU32::new(0)],
            drained: Event::new(),
            swapping: PushLock::new(()),
            early: AtomicU32::new(Early::encode(&Settings::DEFAULT)),
            setting: PushLock::new(()),
        }
    }

    /// Initialises the locks and the event in place.
    pub(crate) fn init(&self) {
        self.drained.init(false);
        self.swapping.init();
        self.setting.init();
    }

    /// Installs the default configuration.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES`.
    pub(crate) fn install_default(&self) -> Result<(), NTSTATUS> {
        let fresh = new_config().ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        drop(self.replace(fresh));
        Ok(())
    }

    /// Frees the configuration and deletes the locks. Call when no thread uses it.
    pub(crate) fn destroy(&self) {
        let swapping = self.swapping.write();
        let old = self.current.swap(core::ptr::null_mut(), Ordering::SeqCst);
        self.retire_readers();
        drop(swapping);
        // SAFETY: `old` came from `PoolBox::into_raw` in `replace` (or is null) and no
        // reader holds it any more (`retire_readers`).
        drop(unsafe { PoolBox::from_raw(old) });
        self.swapping.delete();
        self.setting.delete();
    }

    /// Registers a reader in the current generation.
    pub(crate) fn pin(&self) -> Pin<'_> {
        // SAFETY: no precondition beyond IRQL <= APC_LEVEL (pre-create and commands run at
        // PASSIVE_LEVEL or APC_LEVEL); left in `Pin::drop`.
        unsafe { KeEnterCriticalRegion() };
        loop {
            let generation = self.generation.load(Ordering::SeqCst);
            let counter = self.counter(generation);
            counter.fetch_add(READER, Ordering::SeqCst);
            if self.generation.load(Ordering::SeqCst) == generation {
                return Pin {
                    store: self,
                    counter,
                };
            }
            // A swap moved the generation on meanwhile: its writer may already have
            // found our old counter drained. Back out and register in the new one.
            self.unregister(counter);
        }
    }

    fn counter(&self, generation: u32) -> &AtomicU32 {
        if generation & 1 == 0 {
            &self.readers[0]
        } else {
            &self.readers[1]
        }
    }

    fn unregister(&self, counter: &AtomicU32) {
        if counter.fetch_sub(READER, Ordering::SeqCst) == READER | DRAINING {
            self.drained.set();
        }
    }

    /// Moves the generation on and waits until no reader of the previous one remains.
    /// Call with `swapping` held, after the pointer swap.
    fn retire_readers(&self) {
        let generation = self.generation.load(Ordering::SeqCst);
        self.generation
            .store(generation.wrapping_add(1), Ordering::SeqCst);
        let counter = self.counter(generation);
        if counter.fetch_or(DRAINING, Ordering::SeqCst) != 0 {
            loop {
                // Clear, then look: a reader leaving after the look signals after the
                // clear, so the wait below cannot miss it.
                self.drained.clear();
                if counter.load(Ordering::SeqCst) == DRAINING {
                    break;
                }
                // Unbounded: a reader holds its pin for a few reads only, never across a
                // wait, and cannot be suspended meanwhile (critical region).
                self.drained.wait(None);
            }
        }
        counter.fetch_and(!DRAINING, Ordering::SeqCst);
    }

    /// The current settings.
    pub(crate) fn settings(&self) -> Settings {
        self.pin().config().map_or(Settings::DEFAULT, Settings::of)
    }

    /// The skip rules and default verdict, without a pin (possibly a moment stale).
    pub(crate) fn early(&self) -> Early {
        // Relaxed: one self-contained word (no pointer, nothing else published with it);
        // a stale value is allowed (see the module documentation).
        Early::decode(self.early.load(Ordering::Relaxed))
    }

    /// The filter decision for a create with this path inside the volume and this
    /// extension (computed only if an extension filter needs it), and when it is reported the settings for the rest of the create, from
    /// one configuration. `None`: filtered out.
    pub(crate) fn decide<'e>(
        &self,
        path_in_volume: &[u16],
        extension: impl FnOnce() -> &'e [u16],
    ) -> Option<Settings> {
        let pin = self.pin();
        match pin.config() {
            Some(config) => config
                .should_report_lazy(path_in_volume, extension)
                .then(|| Settings::of(config)),
            None => Some(Settings::DEFAULT),
        }
    }

    /// As [`ConfigStore::decide`] for a create whose name is unavailable: it matches no
    /// filter, so it is reported only when there is no include filter.
    pub(crate) fn decide_unnamed(&self) -> Option<Settings> {
        let pin = self.pin();
        match pin.config() {
            Some(config) => (!config.filters.has_include()).then(|| Settings::of(config)),
            None => Some(Settings::DEFAULT),
        }
    }

    /// Runs `f` on the current configuration, pinned (keep `f` short: a `SetConfig`
    /// waits for it).
    pub(crate) fn with<R>(&self, f: impl FnOnce(Option<&Config>) -> R) -> R {
        let pin = self.pin();
        f(pin.config())
    }

    /// Swaps in `fresh` and returns the previous configuration (freed by the caller; no
    /// reader holds it any more).
    pub(crate) fn replace(&self, fresh: PoolBox<Config>) -> Option<PoolBox<Config>> {
        let early = Early::encode(&Settings::of(&fresh));
        let swapping = self.swapping.write();
        let old = self.current.swap(fresh.into_raw(), Ordering::SeqCst);
        self.early.store(early, Ordering::Relaxed);
        self.retire_readers();
        drop(swapping);
        // SAFETY: `old` came from `PoolBox::into_raw` here before (or is null), and no
        // reader holds it any more (`retire_readers`).
        unsafe { PoolBox::from_raw(old) }
    }

    /// Takes the `SetConfig` serialisation lock.
    pub(crate) fn begin_set(&self) -> crate::sync::WriteGuard<'_, ()> {
        self.setting.write()
    }
}

/// A default configuration in pool.
pub(crate) fn new_config() -> Option<PoolBox<Config>> {
    PoolBox::new(Config::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoped_check::check_or_abort;

    #[test]
    fn default_settings_match_the_protocol_defaults() {
        assert_eq!(Settings::of(&Config::new()), Settings::DEFAULT);
        let mut c = Config::new();
        c.skip_flags = SKIP_DIRECTORIES;
        let s = Settings::of(&c);
        assert!(s.skip.directories && !s.skip.kernel_mode);
        c.default_verdict = Decision::Deny;
        assert_eq!(Settings::of(&c).default_verdict, Decision::Deny);
    }

    #[test]
    fn early_word_round_trips_every_combination() {
        for word in 0..8 {
            let early = Early::decode(word);
            let mut settings = Settings::DEFAULT;
            settings.skip = early.skip;
            settings.default_verdict = if early.default_allows {
                Decision::Allow
            } else {
                Decision::Deny
            };
            assert_eq!(Early::encode(&settings), word);
        }
        assert!(Early::decode(Early::encode(&Settings::DEFAULT)).default_allows);
    }

    fn store() -> std::boxed::Box<ConfigStore> {
        let store = std::boxed::Box::new(ConfigStore::new());
        store.init();
        store.install_default().expect("pool");
        store
    }

    fn config_with_timeout(ms: u32) -> PoolBox<Config> {
        let mut fresh = new_config().expect("pool");
        fresh.reply_timeout_ms = ms;
        fresh
    }

    /// Holds a pin on the current block, swaps in a new one on another thread, and checks
    /// that the swap waits for that reader but not for one that arrives during the swap.
    fn swap_under_a_reader(store: &ConfigStore, old_ms: u32, new_ms: u32) {
        let swapped = std::sync::atomic::AtomicBool::new(false);
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            let pin = store.pin();
            assert_eq!(pin.config().map(|c| c.reply_timeout_ms), Some(old_ms));
            let generation = store.generation.load(Ordering::SeqCst);
            let swapped = &swapped;
            scope.spawn(move || {
                let old = store.replace(config_with_timeout(new_ms));
                swapped.store(true, Ordering::SeqCst);
                let _ = done.send(old.map(|c| c.reply_timeout_ms));
            });
            // The writer moves the generation on before it waits for the old readers.
            let start = std::time::Instant::now();
            // A failed check aborts (`check_or_abort`): unwinding would join the writer,
            // which may wait for ever for readers that a broken store never lets go.
            while store.generation.load(Ordering::SeqCst) == generation {
                check_or_abort!(start.elapsed().as_secs() < 20, "the swap never started");
                std::thread::yield_now();
            }
            // Whatever the scheduling, the swap cannot return while we hold the old block.
            std::thread::sleep(std::time::Duration::from_millis(50));
            check_or_abort!(!swapped.load(Ordering::SeqCst), "freed under a reader");
            // A reader arriving meanwhile already sees the new block, and is not waited
            // for (it registered in the new generation's counter, not the old one's).
            let late = store.pin();
            let seen = (
                late.config().map(|c| c.reply_timeout_ms),
                pin.config().map(|c| c.reply_timeout_ms),
            );
            check_or_abort!(
                seen == (Some(new_ms), Some(new_ms)),
                "both readers see the new block: {seen:?}, want {new_ms}"
            );
            drop(pin);
            let back = finished.recv_timeout(std::time::Duration::from_secs(20));
            check_or_abort!(
                back == Ok(Some(old_ms)),
                "the old block comes back once its own reader left, with a reader of the \
                 new generation still pinned (generation {generation}): {back:?}"
            );
            drop(late);
        });
        assert!(swapped.load(Ordering::SeqCst));
    }

    #[test]
    fn a_swap_waits_until_the_old_blocks_readers_left() {
        let _machine = fltsim::Machine::boot();
        let store = store();
        // Generations alternate between the two reader counters: check several in a row,
        // so that a mapping that gives two consecutive generations one counter is caught.
        let mut old_ms = DEFAULT_REPLY_TIMEOUT_MS;
        for new_ms in 1..=5 {
            swap_under_a_reader(&store, old_ms, new_ms);
            old_ms = new_ms;
        }
        assert_eq!(store.settings().reply_timeout_ms, 5);
        store.destroy();
    }

    #[test]
    fn readers_leave_no_trace_and_swaps_without_readers_do_not_wait() {
        let _machine = fltsim::Machine::boot();
        let store = store();
        for ms in 1..=5 {
            let settings = store.decide(&[], || &[]).expect("no filter: reported");
            assert_eq!(
                settings.reply_timeout_ms,
                if ms == 1 {
                    DEFAULT_REPLY_TIMEOUT_MS
                } else {
                    ms - 1
                }
            );
            drop(store.replace(config_with_timeout(ms)));
        }
        assert_eq!(store.readers[0].load(Ordering::SeqCst), 0);
        assert_eq!(store.readers[1].load(Ordering::SeqCst), 0);
        assert_eq!(
            fltsim::kernel::context::critical_regions(),
            0,
            "every pin left its region"
        );
        store.destroy();
    }

    #[test]
    fn concurrent_readers_always_see_a_whole_live_configuration() {
        let _machine = fltsim::Machine::boot();
        let store = store();
        let mut first = config_with_timeout(1000);
        first.notify_timeout_ms = 1000;
        drop(store.replace(first));
        let stop = std::sync::atomic::AtomicBool::new(false);
        /// Stops the readers however the scope ends (a panicking writer included).
        struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        std::thread::scope(|scope| {
            let _stop_readers = StopOnDrop(&stop);
            for _ in 0..3 {
                scope.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        store.with(|config| {
                            let config = config.expect("installed");
                            // Each block is written once with both fields equal.
                            assert_eq!(config.reply_timeout_ms, config.notify_timeout_ms);
                        });
                    }
                });
            }
            for ms in 1..300 {
                let mut fresh = config_with_timeout(ms);
                fresh.notify_timeout_ms = ms;
                drop(store.replace(fresh));
            }
        });
        store.destroy();
    }
}
