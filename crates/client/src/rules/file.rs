//! The TOML rules file, validated with line-precise errors.

use super::{Action, PathPattern, Rule, RuleSet, normalize_extension};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use toml::Spanned;

/// A problem in a rules file or in rule flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesError {
    /// The file name (or the flag) the problem is in.
    pub origin: String,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
}

impl RulesError {
    pub(super) fn flag(flag: &str, message: String) -> Self {
        Self {
            origin: flag.to_owned(),
            position: None,
            message,
        }
    }

    fn at(
        origin: &str,
        text: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            origin: origin.to_owned(),
            position: span.map(|span| line_col(text, span.start)),
            message: message.into(),
        }
    }

    /// The 1-based line, when known.
    #[must_use]
    pub fn line(&self) -> Option<usize> {
        self.position.map(|(line, _)| line)
    }
}

impl fmt::Display for RulesError {
    /// `rules.toml:7:8: message` (the format compilers use, so editors can jump to it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => write!(f, "{}:{line}:{column}: {}", self.origin, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

impl std::error::Error for RulesError {}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// One value or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            Self::One(value) => vec![value],
            Self::Many(values) => values,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    default: Option<Spanned<String>>,
    #[serde(default)]
    volumes: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<String>,
    action: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    extension: Option<Spanned<OneOrMany<String>>>,
    pid: Option<Spanned<OneOrMany<i64>>>,
    status: Option<Spanned<i64>>,
}

pub(super) fn parse(text: &str, origin: &str) -> Result<RuleSet, RulesError> {
    let raw: RawFile = toml::from_str(text)
        .map_err(|error| RulesError::at(origin, text, error.span(), error.message().trim_end()))?;
    let err =
        |span: Range<usize>, message: String| RulesError::at(origin, text, Some(span), message);

    let default = match raw.default {
        Some(value) => value
            .get_ref()
            .parse::<Action>()
            .map_err(|message| err(value.span(), format!("default: {message}")))?,
        None => Action::Allow,
    };

    let mut volumes = BTreeMap::new();
    for (drive, volume) in raw.volumes {
        let letter = parse_drive(drive.get_ref()).ok_or_else(|| {
            err(
                drive.span(),
                format!(
                    "volumes: `{}` is not a drive (write \"C:\")",
                    drive.get_ref()
                ),
            )
        })?;
        if !volume.get_ref().starts_with('\\') || volume.get_ref().ends_with('\\') {
            return Err(err(
                volume.span(),
                format!(
                    "volumes: `{}` is not an NT volume name (write \"\\\\Device\\\\HarddiskVolume3\")",
                    volume.get_ref()
                ),
            ));
        }
        volumes.insert(letter, volume.into_inner());
    }

    let mut rules = Vec::with_capacity(raw.rule.len());
    for spanned in raw.rule {
        let rule_span = spanned.span();
        let raw_rule = spanned.into_inner();
        let line = line_col(text, rule_span.start).0;
        let Some(action_text) = raw_rule.action else {
            return Err(err(
                rule_span,
                "rule without `action` (write action = \"allow\" or \"deny\")".to_owned(),
            ));
        };
        let action = action_text
            .get_ref()
            .parse::<Action>()
            .map_err(|message| err(action_text.span(), message))?;
        let mut rule = Rule::new(action);
        rule.name = raw_rule.name;
        rule.line = Some(line);
        if let Some(path) = raw_rule.path {
            rule.path = Some(
                PathPattern::new(path.get_ref())
                    .map_err(|error| err(path.span(), error.to_string()))?,
            );
        }
        if let Some(extension) = raw_rule.extension {
            let span = extension.span();
            for ext in extension.into_inner().into_vec() {
                rule.extensions
                    .push(normalize_extension(&ext).map_err(|message| err(span.clone(), message))?);
            }
            if rule.extensions.is_empty() {
                return Err(err(span, "empty extension list".to_owned()));
            }
        }
        if let Some(pid) = raw_rule.pid {
            let span = pid.span();
            for value in pid.into_inner().into_vec() {
                let value = u32::try_from(value).map_err(|_| {
                    err(
                        span.clone(),
                        format!("pid {value} is not a process id (0..=4294967295)"),
                    )
                })?;
                rule.process_ids.push(value);
            }
            if rule.process_ids.is_empty() {
                return Err(err(span, "empty pid list".to_owned()));
            }
        }
        if let Some(status) = raw_rule.status {
            if action != Action::Deny {
                return Err(err(
                    status.span(),
                    "`status` only applies to deny rules".to_owned(),
                ));
            }
            rule.status = Some(parse_status(*status.get_ref()).ok_or_else(|| {
                err(
                    status.span(),
                    format!(
                        "status {:#x} is not an NTSTATUS error (0xC0000000..=0xFFFFFFFF, e.g. 0xC0000022)",
                        status.get_ref()
                    ),
                )
            })?);
        }
        if !rule.has_condition() {
            return Err(err(
                rule_span,
                "rule has no condition: give `path`, `extension` or `pid`".to_owned(),
            ));
        }
        rules.push(rule);
    }

    Ok(RuleSet {
        default,
        rules,
        volumes,
    })
}

/// `"C:"` or `"c"` → `'C'`.
fn parse_drive(text: &str) -> Option<char> {
    let mut chars = text.chars();
    let letter = chars.next()?;
    let rest: String = chars.collect();
    (letter.is_ascii_alphabetic() && (rest.is_empty() || rest == ":"))
        .then(|| letter.to_ascii_uppercase())
}

/// An NTSTATUS error code written as a TOML integer (`0xC0000022`).
fn parse_status(value: i64) -> Option<i32> {
    let value = u32::try_from(value).ok()?;
    (value >= 0xC000_0000).then(|| value.cast_signed())
}
