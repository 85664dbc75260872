//! Guard rules: which creates to allow and which to deny.
//!
//! A rule set is an ordered list of rules and a default action. The first rule whose
//! conditions all hold decides; when none does, the default applies. A rule's conditions
//! are any of: a path pattern (see [`pattern`]), one or more file extensions, one or more
//! process ids. A rule has at least one condition.
//!
//! Rules come from a TOML file ([`RuleSet::from_toml`], format in `docs/portctl.md`) or
//! from command-line flags ([`RuleSet::from_flags`]).

mod file;
pub mod pattern;

use std::collections::BTreeMap;
use std::fmt;

pub use file::RulesError;
pub use pattern::{NameParts, PathPattern, PatternError};

/// What a rule (or the default) does with a create.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let the create proceed.
    Allow,
    /// Fail the create (with `STATUS_ACCESS_DENIED` unless the rule names a status).
    Deny,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        })
    }
}

impl std::str::FromStr for Action {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "allow" => Ok(Self::Allow),
            "deny" => Ok(Self::Deny),
            _ => Err(format!("`{text}` is not an action: use `allow` or `deny`")),
        }
    }
}

/// One rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// An optional label printed with decisions.
    pub name: Option<String>,
    /// What the rule does when it matches.
    pub action: Action,
    /// Path condition.
    pub path: Option<PathPattern>,
    /// Extension condition: the file name ends with `.` + one of these (lower case, no
    /// leading dot). Empty: no extension condition.
    pub extensions: Vec<String>,
    /// Process condition: the requesting process is one of these. Empty: any process.
    pub process_ids: Vec<u32>,
    /// NTSTATUS to fail a denied create with (`None`: the driver's `STATUS_ACCESS_DENIED`).
    pub status: Option<i32>,
    /// The line of the rules file the rule starts on (`None` for rules from flags).
    pub line: Option<usize>,
}

impl Rule {
    /// A rule with this action and no conditions yet (add at least one before use).
    #[must_use]
    pub fn new(action: Action) -> Self {
        Self {
            name: None,
            action,
            path: None,
            extensions: Vec::new(),
            process_ids: Vec::new(),
            status: None,
            line: None,
        }
    }

    /// Whether the rule has at least one condition.
    #[must_use]
    pub fn has_condition(&self) -> bool {
        self.path.is_some() || !self.extensions.is_empty() || !self.process_ids.is_empty()
    }

    fn matches(&self, subject: &Subject<'_>, volumes: &BTreeMap<char, String>) -> bool {
        if !self.process_ids.is_empty() && !self.process_ids.contains(&subject.process_id) {
            return false;
        }
        if !self.extensions.is_empty()
            && !self
                .extensions
                .iter()
                .any(|ext| has_extension(subject.name.file_name, ext))
        {
            return false;
        }
        self.path
            .as_ref()
            .is_none_or(|path| path.matches(&subject.name, |drive| volumes.get(&drive).cloned()))
    }
}

impl fmt::Display for Rule {
    /// `rule "name" (line 7): deny path C:\x\* ext tmp pid 4`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.name {
            write!(f, "\"{name}\" ")?;
        }
        if let Some(line) = self.line {
            write!(f, "(line {line}) ")?;
        }
        write!(f, "{}", self.action)?;
        if let Some(path) = &self.path {
            write!(f, " path {}", path.as_str())?;
        }
        if !self.extensions.is_empty() {
            write!(f, " ext {}", self.extensions.join(","))?;
        }
        if !self.process_ids.is_empty() {
            let pids: Vec<String> = self.process_ids.iter().map(u32::to_string).collect();
            write!(f, " pid {}", pids.join(","))?;
        }
        Ok(())
    }
}

/// Case-insensitive "file name ends with `.ext`" (`ext` already lower case, no dot).
fn has_extension(file_name: &str, ext: &str) -> bool {
    let Some(stem_len) = file_name.len().checked_sub(ext.len() + 1) else {
        return false;
    };
    if !file_name.is_char_boundary(stem_len) {
        return false;
    }
    let tail = &file_name[stem_len..];
    tail.starts_with('.') && tail[1..].to_lowercase() == ext
}

/// Normalises an extension as written by a user (`.TMP` → `tmp`).
///
/// # Errors
/// A message when the extension is empty or contains a path separator.
pub fn normalize_extension(text: &str) -> Result<String, String> {
    let trimmed = text.strip_prefix('.').unwrap_or(text);
    if trimmed.is_empty() {
        return Err("empty extension".to_owned());
    }
    if trimmed.contains(['\\', '/']) {
        return Err(format!("extension `{text}` contains a path separator"));
    }
    Ok(trimmed.to_lowercase())
}

/// What the guard knows about a create when it decides.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The requesting process.
    pub process_id: u32,
    /// The file name, split.
    pub name: NameParts<'a>,
}

/// The outcome of [`RuleSet::decide`].
#[derive(Clone, Copy, Debug)]
pub struct Decision<'r> {
    /// Allow or deny.
    pub action: Action,
    /// The rule that matched (index into [`RuleSet::rules`], rule), or `None` for the
    /// default.
    pub rule: Option<(usize, &'r Rule)>,
}

impl Decision<'_> {
    /// The NTSTATUS to deny with, when the matching rule names one.
    #[must_use]
    pub fn status(&self) -> Option<i32> {
        self.rule.and_then(|(_, rule)| rule.status)
    }
}

impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rule {
            Some((index, rule)) => write!(f, "{} by rule {} {rule}", self.action, index + 1),
            None => write!(f, "{} by default", self.action),
        }
    }
}

/// An ordered rule list with a default action; the first matching rule wins.
#[derive(Clone, Debug)]
pub struct RuleSet {
    /// The action when no rule matches.
    pub default: Action,
    /// The rules, in order.
    pub rules: Vec<Rule>,
    /// Drive letter (upper case) → NT volume name, from the file's `[volumes]` table.
    pub volumes: BTreeMap<char, String>,
}

impl Default for RuleSet {
    /// No rules, allow everything.
    fn default() -> Self {
        Self {
            default: Action::Allow,
            rules: Vec::new(),
            volumes: BTreeMap::new(),
        }
    }
}

/// Rules given as command-line flags.
#[derive(Clone, Debug, Default)]
pub struct FlagRules {
    /// `--allow-pid`: processes always allowed (checked first).
    pub allow_pids: Vec<u32>,
    /// `--deny-path`: path patterns to deny.
    pub deny_paths: Vec<String>,
    /// `--deny-ext`: extensions to deny.
    pub deny_extensions: Vec<String>,
    /// `--default`: the default action.
    pub default: Option<Action>,
}

impl RuleSet {
    /// Parses and validates a TOML rules file. `origin` names the file in error messages.
    ///
    /// # Errors
    /// [`RulesError`] with the line and column of the first problem.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, RulesError> {
        file::parse(text, origin)
    }

    /// Builds a rule set from flags: the allowed pids first, then the denied paths, then
    /// the denied extensions.
    ///
    /// # Errors
    /// [`RulesError`] (without a position) for a bad pattern or extension.
    pub fn from_flags(flags: &FlagRules) -> Result<Self, RulesError> {
        let mut set = Self {
            default: flags.default.unwrap_or(Action::Allow),
            ..Self::default()
        };
        if !flags.allow_pids.is_empty() {
            let mut rule = Rule::new(Action::Allow);
            rule.process_ids.clone_from(&flags.allow_pids);
            set.rules.push(rule);
        }
        for path in &flags.deny_paths {
            let mut rule = Rule::new(Action::Deny);
            rule.path = Some(
                PathPattern::new(path)
                    .map_err(|error| RulesError::flag("--deny-path", error.to_string()))?,
            );
            set.rules.push(rule);
        }
        for ext in &flags.deny_extensions {
            let mut rule = Rule::new(Action::Deny);
            rule.extensions.push(
                normalize_extension(ext).map_err(|error| RulesError::flag("--deny-ext", error))?,
            );
            set.rules.push(rule);
        }
        Ok(set)
    }

    /// Decides a create: the first matching rule, else the default.
    #[must_use]
    pub fn decide(&self, subject: &Subject<'_>) -> Decision<'_> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, rule)| rule.matches(subject, &self.volumes))
            .map_or(
                Decision {
                    action: self.default,
                    rule: None,
                },
                |(index, rule)| Decision {
                    action: rule.action,
                    rule: Some((index, rule)),
                },
            )
    }
}

#[cfg(test)]
mod tests;
