//! The current configuration, shared by the create path and the commands.
//!
//! The protocol's [`Config`] (about 2 KiB with its filters) lives in one pool allocation
//! behind a push lock. The create path takes the lock *shared*, copies the few scalars it
//! needs ([`Settings`]) and runs the filter match in place; `SetConfig` builds the new
//! configuration in a fresh allocation, then swaps the pointer under the lock *exclusive*.
//! A create therefore sees one whole configuration, old or new, never a mix.
//!
//! The create path's first look (before it queries a name) needs only the skip rules and
//! the default verdict: they are mirrored in one atomic word ([`Early`]), written under
//! the exclusive lock whenever the configuration is swapped, and read without any lock —
//! a skipped create takes no lock at all. That look may be a moment stale (it is then as
//! if the create ran just before the `SetConfig`); a create that goes on re-reads
//! everything from one configuration under the shared lock ([`ConfigStore::decide`]).

use crate::pool::PoolBox;
use crate::skip::SkipPolicy;
use crate::sync::PushLock;
use core::sync::atomic::{AtomicU32, Ordering};
use portfilter_bindings::{NTSTATUS, STATUS_INSUFFICIENT_RESOURCES};
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

/// The installed configuration.
pub(crate) struct ConfigStore {
    current: PushLock<Option<PoolBox<Config>>>,
    /// [`Early`] of the current configuration, encoded (written under `current`'s
    /// exclusive lock, read without a lock).
    early: AtomicU32,
    /// Serialises `SetConfig` commands (queue resize + swap form one step).
    setting: PushLock<()>,
}

impl ConfigStore {
    /// An empty store; call [`ConfigStore::init`] at its final address, then
    /// [`ConfigStore::install_default`].
    pub(crate) const fn new() -> Self {
        Self {
            current: PushLock::new(None),
            early: AtomicU32::new(Early::encode(&Settings::DEFAULT)),
            setting: PushLock::new(()),
        }
    }

    /// Initialises the locks in place.
    pub(crate) fn init(&self) {
        self.current.init();
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
        let old = self.current.write().take();
        drop(old);
        self.current.delete();
        self.setting.delete();
    }

    /// The current settings.
    pub(crate) fn settings(&self) -> Settings {
        self.current
            .read()
            .as_deref()
            .map_or(Settings::DEFAULT, Settings::of)
    }

    /// The skip rules and default verdict, without a lock (possibly a moment stale).
    pub(crate) fn early(&self) -> Early {
        // Relaxed: one self-contained word (no pointer, nothing else published with it);
        // a stale value is allowed (see the module documentation).
        Early::decode(self.early.load(Ordering::Relaxed))
    }

    /// The current settings and the filter decision for a create with this path inside
    /// the volume and this extension, from one configuration.
    pub(crate) fn decide(&self, path_in_volume: &[u16], extension: &[u16]) -> (Settings, bool) {
        let current = self.current.read();
        match current.as_deref() {
            Some(config) => (
                Settings::of(config),
                config.should_report(path_in_volume, extension),
            ),
            None => (Settings::DEFAULT, true),
        }
    }

    /// As [`ConfigStore::decide`] for a create whose name is unavailable: it matches no
    /// filter, so it is reported only when there is no include filter.
    pub(crate) fn decide_unnamed(&self) -> (Settings, bool) {
        let current = self.current.read();
        match current.as_deref() {
            Some(config) => (Settings::of(config), !config.filters.has_include()),
            None => (Settings::DEFAULT, true),
        }
    }

    /// Runs `f` on the current configuration under the shared lock (keep `f` short).
    pub(crate) fn with<R>(&self, f: impl FnOnce(Option<&Config>) -> R) -> R {
        let current = self.current.read();
        f(current.as_deref())
    }

    /// Swaps in `fresh` and returns the previous configuration (freed by the caller,
    /// outside the lock).
    pub(crate) fn replace(&self, fresh: PoolBox<Config>) -> Option<PoolBox<Config>> {
        let early = Early::encode(&Settings::of(&fresh));
        let mut current = self.current.write();
        let old = current.replace(fresh);
        self.early.store(early, Ordering::Relaxed);
        drop(current);
        old
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
}
