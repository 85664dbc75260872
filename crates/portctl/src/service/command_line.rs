//! The command line the service control manager runs, as text: the program and each
//! argument quoted by the rules the Microsoft C runtime (and `CommandLineToArgvW`) uses
//! to split it again — the rules the `windows-service` crate applies when it registers
//! the service. Printed by `service install`; the round trip is tested here.

use std::borrow::Cow;

/// Quotes one argument so that the C runtime reads it back unchanged: arguments without
/// spaces, tabs, newlines or quotes stay as they are; others are put in quotes, with
/// backslashes doubled where they precede a quote (or the closing quote) and each quote
/// escaped.
#[must_use]
pub fn quote(arg: &str) -> Cow<'_, str> {
    let needs_quotes = arg.is_empty() || arg.contains([' ', '\t', '\n', '\u{b}', '"']);
    if !needs_quotes {
        return Cow::Borrowed(arg);
    }
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('"');
    let mut backslashes = 0usize;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.extend(std::iter::repeat_n('\\', backslashes * 2 + 1));
                out.push('"');
                backslashes = 0;
            }
            other => {
                out.extend(std::iter::repeat_n('\\', backslashes));
                out.push(other);
                backslashes = 0;
            }
        }
    }
    out.extend(std::iter::repeat_n('\\', backslashes * 2));
    out.push('"');
    Cow::Owned(out)
}

/// The whole command line: the quoted program, then each quoted argument, separated by
/// one space.
#[must_use]
pub fn render(program: &str, args: &[String]) -> String {
    std::iter::once(quote(program))
        .chain(args.iter().map(|arg| quote(arg)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Splits a command line the way the Microsoft C runtime does for arguments after
    /// the program name (2n backslashes + quote → n backslashes, toggle quoting;
    /// 2n+1 backslashes + quote → n backslashes and a literal quote; `""` inside quotes
    /// → a literal quote; other backslashes are literal). The program name follows
    /// simpler rules (quotes only), which the first word here also satisfies.
    fn split(line: &str) -> Vec<String> {
        let chars: Vec<char> = line.chars().collect();
        let mut args = Vec::new();
        let mut i = 0;
        loop {
            while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
                i += 1;
            }
            if i >= chars.len() {
                return args;
            }
            let mut arg = String::new();
            let mut quoted = false;
            while i < chars.len() {
                let c = chars[i];
                if !quoted && (c == ' ' || c == '\t') {
                    break;
                }
                if c == '\\' {
                    let start = i;
                    while i < chars.len() && chars[i] == '\\' {
                        i += 1;
                    }
                    let n = i - start;
                    if i < chars.len() && chars[i] == '"' {
                        arg.extend(std::iter::repeat_n('\\', n / 2));
                        if n % 2 == 1 {
                            arg.push('"');
                            i += 1;
                        }
                    } else {
                        arg.extend(std::iter::repeat_n('\\', n));
                    }
                    continue;
                }
                if c == '"' {
                    if quoted && chars.get(i + 1) == Some(&'"') {
                        arg.push('"');
                        i += 2;
                        continue;
                    }
                    quoted = !quoted;
                    i += 1;
                    continue;
                }
                arg.push(c);
                i += 1;
            }
            args.push(arg);
        }
    }

    #[test]
    fn plain_arguments_stay_plain_others_are_quoted() {
        assert_eq!(quote(r"C:\ProgramData\x.log"), r"C:\ProgramData\x.log");
        assert_eq!(
            quote(r"C:\Program Files\p.exe"),
            r#""C:\Program Files\p.exe""#
        );
        assert_eq!(quote(""), r#""""#);
        // A trailing backslash inside quotes is doubled, or it would escape the quote.
        assert_eq!(quote(r"C:\my dir\"), r#""C:\my dir\\""#);
        assert_eq!(quote(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(
            render(
                r"C:\Program Files\portfilter\portctl.exe",
                &[
                    "service".into(),
                    "run".into(),
                    r"C:\rules dir\r.toml".into()
                ]
            ),
            r#""C:\Program Files\portfilter\portctl.exe" service run "C:\rules dir\r.toml""#
        );
    }

    #[test]
    fn a_registered_command_line_splits_back_into_its_arguments() {
        let args: Vec<String> = [
            "service",
            "run",
            "--rules",
            r"C:\Users\Ann Lee\rules\",
            "--port",
            r"\PortFilterPort",
            "--log-file",
            r#"C:\odd "quoted" \\dir\\"#,
            "",
        ]
        .map(str::to_owned)
        .to_vec();
        let line = render(r"C:\Program Files\portctl.exe", &args);
        let split = split(&line);
        assert_eq!(split[0], r"C:\Program Files\portctl.exe");
        assert_eq!(split[1..], args[..]);
    }

    proptest! {
        #[test]
        fn any_arguments_survive_the_round_trip(
            args in proptest::collection::vec("[a-z \\\\\"\t]{0,12}", 0..6)
        ) {
            let line = render("portctl.exe", &args);
            prop_assert_eq!(&split(&line)[1..], &args[..]);
        }
    }
}
