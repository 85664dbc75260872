use super::*;
use proptest::prelude::*;

const VOLUME: &str = "\\Device\\HarddiskVolume3";

fn subject(pid: u32, full: &str) -> Subject<'_> {
    Subject {
        process_id: pid,
        name: NameParts::split(full, VOLUME.len()),
    }
}

const EXAMPLE: &str = r#"# the example from docs/portctl.md
default = "allow"

[[rule]]
action = "deny"
path = "C:\\Users\\*\\Downloads\\*.exe"

[[rule]]
name = "no temp files"
action = "deny"
extension = "tmp"
status = 0xC0000043

[[rule]]
action = "allow"
pid = 4242
"#;

#[test]
fn example_file_parses_with_lines() {
    let set = RuleSet::from_toml(EXAMPLE, "rules.toml").unwrap();
    assert_eq!(set.default, Action::Allow);
    assert_eq!(set.rules.len(), 3);
    assert_eq!(set.rules[0].line, Some(4));
    assert_eq!(set.rules[1].line, Some(8));
    assert_eq!(set.rules[1].name.as_deref(), Some("no temp files"));
    assert_eq!(set.rules[1].status, Some(0xC000_0043_u32.cast_signed()));
    assert_eq!(set.rules[2].process_ids, vec![4242]);
}

#[test]
fn first_match_wins() {
    let set = RuleSet::from_toml(EXAMPLE, "rules.toml").unwrap();
    // pid 4242 writing a .tmp: rule 2 (deny) comes before rule 3 (allow).
    let decision = set.decide(&subject(4242, "\\Device\\HarddiskVolume3\\x\\a.TMP"));
    assert_eq!(decision.action, Action::Deny);
    assert_eq!(decision.rule.map(|(index, _)| index), Some(1));
    assert_eq!(decision.status(), Some(0xC000_0043_u32.cast_signed()));
    let download = set.decide(&subject(
        1,
        "\\Device\\HarddiskVolume3\\Users\\bo\\Downloads\\x.exe",
    ));
    assert_eq!(download.action, Action::Deny);
    assert_eq!(download.rule.map(|(index, _)| index), Some(0));
    let other = set.decide(&subject(1, "\\Device\\HarddiskVolume3\\Users\\bo\\x.exe"));
    assert_eq!(other.action, Action::Allow);
    assert!(other.rule.is_none());
    assert_eq!(other.to_string(), "allow by default");
}

#[test]
fn default_deny_with_allow_rule() {
    let set = RuleSet::from_toml(
        "default = \"deny\"\n[[rule]]\naction = \"allow\"\npid = [1, 2]\n",
        "r",
    )
    .unwrap();
    assert_eq!(
        set.decide(&subject(2, "\\Device\\HarddiskVolume3\\a"))
            .action,
        Action::Allow
    );
    assert_eq!(
        set.decide(&subject(3, "\\Device\\HarddiskVolume3\\a"))
            .action,
        Action::Deny
    );
}

#[test]
fn conditions_of_one_rule_must_all_hold() {
    let set = RuleSet::from_toml(
        "[[rule]]\naction = \"deny\"\npath = \"\\\\data\\\\**\"\nextension = [\"log\", \".TXT\"]\npid = 7\n",
        "r",
    )
    .unwrap();
    assert_eq!(set.rules[0].extensions, vec!["log", "txt"]);
    let deny = |pid, name| set.decide(&subject(pid, name)).action == Action::Deny;
    assert!(deny(7, "\\Device\\HarddiskVolume3\\data\\x\\y.txt"));
    assert!(!deny(8, "\\Device\\HarddiskVolume3\\data\\x\\y.txt"));
    assert!(!deny(7, "\\Device\\HarddiskVolume3\\data\\x\\y.bin"));
    assert!(!deny(7, "\\Device\\HarddiskVolume3\\other\\y.txt"));
}

#[test]
fn volume_map_is_used_for_dos_patterns() {
    let text = "[volumes]\n\"C:\" = \"\\\\Device\\\\HarddiskVolume3\"\n\"d\" = \"\\\\Device\\\\HarddiskVolume4\"\n[[rule]]\naction = \"deny\"\npath = \"D:\\\\x\\\\*\"\n";
    let set = RuleSet::from_toml(text, "r").unwrap();
    assert_eq!(
        set.volumes.get(&'D').map(String::as_str),
        Some("\\Device\\HarddiskVolume4")
    );
    assert_eq!(
        set.decide(&subject(1, "\\Device\\HarddiskVolume3\\x\\y"))
            .action,
        Action::Allow
    );
    let on_d = Subject {
        process_id: 1,
        name: NameParts::split("\\Device\\HarddiskVolume4\\x\\y", VOLUME.len()),
    };
    assert_eq!(set.decide(&on_d).action, Action::Deny);
}

fn error_of(text: &str) -> RulesError {
    RuleSet::from_toml(text, "rules.toml").unwrap_err()
}

#[test]
fn errors_point_at_the_line_of_the_problem() {
    // Bad action value, line 5.
    let e = error_of("default = \"allow\"\n\n[[rule]]\npath = \"*.exe\"\naction = \"block\"\n");
    assert_eq!(e.position, Some((5, 10)), "{e}");
    assert!(e.to_string().starts_with("rules.toml:5:10: "), "{e}");
    assert!(e.message.contains("allow"), "{e}");

    // Bad glob, line 3.
    let e = error_of("[[rule]]\naction = \"deny\"\npath = \"\\\\a\\\\[b\"\n");
    assert_eq!(e.line(), Some(3), "{e}");
    assert!(e.message.contains("bad glob"), "{e}");

    // Relative path with directories, line 4.
    let e = error_of("[[rule]]\naction = \"deny\"\n\npath = \"dir\\\\x\"\n");
    assert_eq!(e.line(), Some(4), "{e}");

    // Unknown key, line 3.
    let e = error_of("[[rule]]\naction = \"deny\"\nprocess = \"x.exe\"\n");
    assert_eq!(e.line(), Some(3), "{e}");
    assert!(e.message.contains("process"), "{e}");

    // TOML syntax error, line 2.
    let e = error_of("[[rule]]\naction = deny\n");
    assert_eq!(e.line(), Some(2), "{e}");

    // Rule without condition: reported at the rule's line.
    let e = error_of("default = \"deny\"\n[[rule]]\naction = \"deny\"\n");
    assert_eq!(e.line(), Some(2), "{e}");
    assert!(e.message.contains("no condition"), "{e}");

    // Missing action.
    let e = error_of("[[rule]]\npid = 1\n");
    assert_eq!(e.line(), Some(1), "{e}");
    assert!(e.message.contains("action"), "{e}");

    // Negative pid, line 3.
    let e = error_of("[[rule]]\naction = \"allow\"\npid = -1\n");
    assert_eq!(e.line(), Some(3), "{e}");

    // Status on an allow rule and a status that is not an error code.
    let e = error_of("[[rule]]\naction = \"allow\"\npid = 1\nstatus = 0xC0000022\n");
    assert_eq!(e.line(), Some(4), "{e}");
    let e = error_of("[[rule]]\naction = \"deny\"\npid = 1\nstatus = 5\n");
    assert_eq!(e.line(), Some(4), "{e}");

    // Bad default, line 1; bad drive in [volumes], line 2.
    assert_eq!(error_of("default = \"maybe\"\n").line(), Some(1));
    assert_eq!(
        error_of("[volumes]\n\"CC\" = \"\\\\Device\\\\X\"\n").line(),
        Some(2)
    );
    assert_eq!(
        error_of("[volumes]\n\"C:\" = \"HarddiskVolume3\"\n").line(),
        Some(2)
    );

    // Empty extension.
    let e = error_of("[[rule]]\naction = \"deny\"\n\n\nextension = \".\"\n");
    assert_eq!(e.line(), Some(5), "{e}");
}

#[test]
fn columns_count_characters_not_bytes() {
    let e = error_of("[[rule]]\nname = \"é\"  ; action = \"deny\"\n");
    assert_eq!(e.line(), Some(2), "{e}");
}

#[test]
fn flags_build_rules_in_documented_order() {
    let set = RuleSet::from_flags(&FlagRules {
        allow_pids: vec![10],
        deny_paths: vec!["C:\\secret\\**".to_owned()],
        deny_extensions: vec![".EXE".to_owned()],
        default: Some(Action::Allow),
    })
    .unwrap();
    assert_eq!(set.rules.len(), 3);
    assert_eq!(
        set.decide(&subject(10, "\\Device\\HarddiskVolume3\\secret\\a.exe"))
            .action,
        Action::Allow
    );
    assert_eq!(
        set.decide(&subject(11, "\\Device\\HarddiskVolume3\\secret\\a.txt"))
            .action,
        Action::Deny
    );
    assert_eq!(
        set.decide(&subject(11, "\\Device\\HarddiskVolume3\\pub\\a.exe"))
            .action,
        Action::Deny
    );
    assert_eq!(
        set.decide(&subject(11, "\\Device\\HarddiskVolume3\\pub\\a.txt"))
            .action,
        Action::Allow
    );

    let bad = RuleSet::from_flags(&FlagRules {
        deny_paths: vec!["rel\\x".to_owned()],
        ..FlagRules::default()
    })
    .unwrap_err();
    assert_eq!(bad.origin, "--deny-path");
    assert!(bad.to_string().starts_with("--deny-path: "), "{bad}");
}

#[test]
fn has_extension_is_exact_and_case_insensitive() {
    assert!(has_extension("A.TMP", "tmp"));
    assert!(has_extension("a.tar.gz", "tar.gz"));
    assert!(!has_extension("atmp", "tmp"));
    assert!(!has_extension("tmp", "tmp"));
    assert!(!has_extension("a.xtmp", "tmp"));
    assert!(!has_extension("é", "tmp"));
}

proptest! {
    /// Random text never panics the parser; any error it reports has a valid position.
    #[test]
    fn parser_never_panics(text in "\\PC{0,200}") {
        if let Err(error) = RuleSet::from_toml(&text, "fuzz")
            && let Some((line, column)) = error.position
        {
            prop_assert!(line >= 1 && line <= text.lines().count().max(1) + 1);
            prop_assert!(column >= 1);
        }
    }

    /// A rule set whose first rule denies an extension denies every file with it, whatever
    /// the case, directory or process, and allows the same name with another extension.
    #[test]
    fn extension_rule_matches_any_case_and_directory(
        dirs in proptest::collection::vec("[a-zA-Z0-9 ]{1,8}", 0..4),
        stem in "[a-zA-Z0-9_]{1,8}",
        upper in any::<bool>(),
        pid in any::<u32>(),
    ) {
        let set = RuleSet::from_toml("[[rule]]\naction = \"deny\"\nextension = \"tmp\"\n", "r").unwrap();
        let ext = if upper { "TMP" } else { "tmp" };
        let mut name = VOLUME.to_owned();
        for dir in &dirs {
            name.push('\\');
            name.push_str(dir);
        }
        let denied = format!("{name}\\{stem}.{ext}");
        let allowed = format!("{name}\\{stem}.{ext}x");
        prop_assert_eq!(set.decide(&subject(pid, &denied)).action, Action::Deny);
        prop_assert_eq!(set.decide(&subject(pid, &allowed)).action, Action::Allow);
    }

    /// A literal DOS-form pattern (no wildcards) matches exactly its own path inside the
    /// volume, in any letter case, and not a longer one.
    #[test]
    fn literal_dos_pattern_matches_itself(parts in proptest::collection::vec("[a-zA-Z0-9_.-]{1,8}", 1..5)) {
        let inside = format!("\\{}", parts.join("\\"));
        let pattern = PathPattern::new(&format!("C:{inside}")).unwrap();
        let name = format!("{VOLUME}{}", inside.to_uppercase());
        prop_assert!(pattern.matches(&NameParts::split(&name, VOLUME.len()), |_| None));
        let longer = format!("{name}\\more");
        prop_assert!(!pattern.matches(&NameParts::split(&longer, VOLUME.len()), |_| None));
    }
}

#[test]
fn the_default_flag_decides_what_no_rule_matches() {
    let anything = subject(11, "\\Device\\HarddiskVolume3\\pub\\a.txt");
    for (flag, expected) in [
        (Some(Action::Deny), Action::Deny),
        (Some(Action::Allow), Action::Allow),
        (None, Action::Allow),
    ] {
        let set = RuleSet::from_flags(&FlagRules {
            deny_extensions: vec!["exe".to_owned()],
            default: flag,
            ..FlagRules::default()
        })
        .unwrap();
        assert_eq!(set.default, expected, "--default {flag:?}");
        let decision = set.decide(&anything);
        assert_eq!((decision.action, decision.rule.is_none()), (expected, true));
    }
}

#[test]
fn a_rule_displays_exactly_the_conditions_it_has() {
    let mut rule = Rule::new(Action::Deny);
    rule.name = Some("no temp".to_owned());
    rule.line = Some(7);
    rule.path = Some(PathPattern::new("C:\\x\\*").unwrap());
    rule.extensions = vec!["tmp".to_owned(), "bak".to_owned()];
    rule.process_ids = vec![4, 8];
    assert_eq!(
        rule.to_string(),
        "\"no temp\" (line 7) deny path C:\\x\\* ext tmp,bak pid 4,8"
    );

    let mut path_only = Rule::new(Action::Allow);
    path_only.path = Some(PathPattern::new("*.log").unwrap());
    assert_eq!(path_only.to_string(), "allow path *.log");
    let mut ext_only = Rule::new(Action::Deny);
    ext_only.extensions = vec!["exe".to_owned()];
    assert_eq!(ext_only.to_string(), "deny ext exe");
    let mut pid_only = Rule::new(Action::Allow);
    pid_only.process_ids = vec![4242];
    assert_eq!(pid_only.to_string(), "allow pid 4242");
}
