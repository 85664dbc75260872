//! What the service is: its name, rules file, port, log file, and how it is registered
//! (start type, dependency, recovery actions, the command line the service control
//! manager runs). Pure: built from arguments and an [`Environment`], tested anywhere.

use super::args::{InstallArgs, RunArgs};
use crate::exit::Failure;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default service name.
pub const DEFAULT_NAME: &str = "portfilter-guard";
/// The driver's service name (`driver.inf`: `AddService = portfilter`).
pub const DEFAULT_DRIVER_SERVICE: &str = "portfilter";
/// Shown in services.msc.
pub const DISPLAY_NAME: &str = "portfilter guard (file create decider)";
/// Shown in services.msc.
pub const DESCRIPTION: &str = "Allows or denies file creates reported by the portfilter driver, with the rules in its rules file (portctl guard). Reconnects when the driver is reloaded. Log: see portctl service status.";
/// Longest service name the service control manager accepts.
const MAX_NAME_CHARS: usize = 256;

/// What the service control manager does when the service process dies without
/// reporting "stopped" (a crash, a panic under `panic = "abort"`, a kill): restart it.
///
/// Failure actions run on crashes only, not when the service stops itself with an error
/// (`FailureActionsOnNonCrashFailures` stays off): such a stop — a version mismatch
/// after a driver upgrade, an unreadable rules file, access denied — would fail the same
/// way again, and restarting it would be the retry loop the service must not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Delays before the first, second and every later restart.
    pub restart_after: [Duration; 3],
    /// The failure count goes back to zero after this long without a failure.
    pub reset_after: Duration,
    /// Whether a stop with an error exit code also counts as a failure.
    pub on_non_crash_failures: bool,
}

/// The recovery actions `service install` sets.
pub const RECOVERY: Recovery = Recovery {
    restart_after: [
        Duration::from_secs(5),
        Duration::from_secs(30),
        Duration::from_secs(60),
    ],
    reset_after: Duration::from_secs(24 * 60 * 60),
    on_non_crash_failures: false,
};

// Restart after crashes only (see `Recovery`), never sooner than a second, and with
// delays that do not shrink.
const _: () = {
    let [first, second, later] = RECOVERY.restart_after;
    assert!(!RECOVERY.on_non_crash_failures);
    assert!(first.as_secs() >= 1 && first.as_secs() <= second.as_secs());
    assert!(second.as_secs() <= later.as_secs());
};

/// What the service needs to run (the arguments of `service run`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Service name (as registered).
    pub name: String,
    /// Rules file, absolute.
    pub rules: PathBuf,
    /// The driver's port.
    pub port: String,
    /// Log file; `None`: standard error (console runs only).
    pub log_file: Option<PathBuf>,
    /// Log every decision too.
    pub log_decisions: bool,
}

/// How the service is registered (`service install`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// What it runs.
    pub config: ServiceConfig,
    /// The service it depends on: the driver's.
    pub driver_service: String,
    /// Start it once registered.
    pub start: bool,
}

/// "5 s", "1.5 s".
fn secs(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

/// Where the machine keeps things: the parts of the process environment the
/// configuration depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Environment {
    /// `%ProgramData%` (`C:\ProgramData` on Windows when unset; `None` elsewhere).
    pub program_data: Option<PathBuf>,
    /// The current directory (relative paths are resolved against it).
    pub current_dir: PathBuf,
}

impl Environment {
    /// This process's environment.
    pub fn current() -> Self {
        let program_data = std::env::var_os("ProgramData")
            .map(PathBuf::from)
            .or_else(|| cfg!(windows).then(|| PathBuf::from(r"C:\ProgramData")));
        Self {
            program_data,
            current_dir: std::env::current_dir().unwrap_or_default(),
        }
    }

    /// `%ProgramData%\portfilter\NAME.log`.
    fn default_log_file(&self, name: &str) -> Result<PathBuf, Failure> {
        let base = self
            .program_data
            .as_ref()
            .ok_or_else(|| Failure::Usage("no %ProgramData% here: give --log-file".to_owned()))?;
        Ok(base.join("portfilter").join(format!("{name}.log")))
    }

    fn absolute(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.current_dir.join(path)
        }
    }
}

/// Checks a service name: 1 to 256 characters, no `/` or `\` (the service control
/// manager's rules), and no control characters.
///
/// # Errors
/// [`Failure::Usage`] saying what is wrong.
pub fn check_name(name: &str) -> Result<(), Failure> {
    let bad = |why: &str| Err(Failure::Usage(format!("service name `{name}` {why}")));
    if name.is_empty() {
        return bad("is empty");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return bad("is longer than 256 characters");
    }
    if name.contains(['/', '\\']) {
        return bad("contains `/` or `\\`");
    }
    if name.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    Ok(())
}

/// A path as text for the registered command line (which is UTF-16 on Windows).
fn text(path: &Path, what: &str) -> Result<String, Failure> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| Failure::Usage(format!("{what} {} is not valid Unicode", path.display())))
}

impl ServiceConfig {
    /// The configuration `service run` was given. A service run without `--log-file`
    /// logs to the default file; a console run to standard error.
    ///
    /// # Errors
    /// [`Failure::Usage`] for a bad service name, or no default log file here.
    pub fn for_run(args: &RunArgs, port: &str, env: &Environment) -> Result<Self, Failure> {
        check_name(&args.name)?;
        let log_file = match (&args.log_file, args.console) {
            (Some(path), _) => Some(env.absolute(path)),
            (None, true) => None,
            (None, false) => Some(env.default_log_file(&args.name)?),
        };
        Ok(Self {
            name: args.name.clone(),
            rules: env.absolute(&args.rules),
            port: port.to_owned(),
            log_file,
            log_decisions: args.log_decisions,
        })
    }

    /// The arguments after the program name in the registered command line: `service
    /// run` with every setting spelled out (absolute paths, the port, the log file), so
    /// that `sc qc NAME` shows what the service does.
    ///
    /// # Errors
    /// [`Failure::Usage`] for a path that is not valid Unicode.
    pub fn launch_arguments(&self) -> Result<Vec<String>, Failure> {
        let mut args = vec![
            "service".to_owned(),
            "run".to_owned(),
            "--name".to_owned(),
            self.name.clone(),
            "--rules".to_owned(),
            text(&self.rules, "rules file")?,
            "--port".to_owned(),
            self.port.clone(),
        ];
        if let Some(log) = &self.log_file {
            args.push("--log-file".to_owned());
            args.push(text(log, "log file")?);
        }
        if self.log_decisions {
            args.push("--log-decisions".to_owned());
        }
        Ok(args)
    }
}

impl Registration {
    /// The registration `service install` asked for: paths made absolute, the log file
    /// always named (default `%ProgramData%\portfilter\NAME.log`).
    ///
    /// # Errors
    /// [`Failure::Usage`] for a bad service or driver-service name, a path that is not
    /// valid Unicode, or no default log file here.
    pub fn for_install(args: &InstallArgs, port: &str, env: &Environment) -> Result<Self, Failure> {
        check_name(&args.name)?;
        check_name(&args.driver_service)?;
        if args.name.eq_ignore_ascii_case(&args.driver_service) {
            return Err(Failure::Usage(format!(
                "the service cannot be named like the driver's service `{}`",
                args.driver_service
            )));
        }
        let log_file = match &args.log_file {
            Some(path) => env.absolute(path),
            None => env.default_log_file(&args.name)?,
        };
        let config = ServiceConfig {
            name: args.name.clone(),
            rules: env.absolute(&args.rules),
            port: port.to_owned(),
            log_file: Some(log_file),
            log_decisions: args.log_decisions,
        };
        config.launch_arguments()?;
        Ok(Self {
            config,
            driver_service: args.driver_service.clone(),
            start: !args.no_start,
        })
    }

    /// What is registered, as `key: value` lines (`service install` prints them;
    /// `--dry-run` prints only them). `program` is the portctl.exe the service runs.
    ///
    /// # Errors
    /// [`Failure::Usage`] for a path that is not valid Unicode.
    pub fn describe(&self, program: &str) -> Result<String, Failure> {
        let config = &self.config;
        let [first, second, later] = RECOVERY.restart_after.map(secs);
        let log = config
            .log_file
            .as_ref()
            .map_or_else(|| "standard error".to_owned(), |p| p.display().to_string());
        Ok(format!(
            "service:      {name} ({DISPLAY_NAME})\n\
             description:  {DESCRIPTION}\n\
             command line: {line}\n\
             start:        automatic, after service {driver} (the service control manager starts it first)\n\
             account:      LocalSystem\n\
             recovery:     after a crash, restart after {first}, {second}, then {later} (count reset after {reset} h); none after a stop with an error\n\
             log file:     {log}{decisions}\n",
            name = config.name,
            line = super::command_line::render(program, &config.launch_arguments()?),
            driver = self.driver_service,
            reset = RECOVERY.reset_after.as_secs() / 3600,
            decisions = if config.log_decisions {
                " (with every decision)"
            } else {
                ""
            },
        ))
    }

    /// Warnings about where the service's files are: a service runs as LocalSystem, so
    /// a program or rules file that ordinary users can change is a way to run code as
    /// SYSTEM or to turn the rules off. Flags paths under a user profile or a temporary
    /// folder (a heuristic; the folder's permissions are what count).
    #[must_use]
    pub fn location_warnings(&self, program: &Path) -> Vec<String> {
        let risky = |path: &Path| {
            let lower = path
                .to_string_lossy()
                .to_ascii_lowercase()
                .replace('/', "\\");
            ["\\users\\", "\\temp\\", "\\tmp\\", "\\downloads\\"]
                .iter()
                .any(|part| lower.contains(part))
        };
        let mut warnings = Vec::new();
        for (what, path) in [("program", program), ("rules file", &self.config.rules)] {
            if risky(path) {
                warnings.push(format!(
                    "the service's {what} {} looks user-writable; the service runs as LocalSystem: move it to a folder only administrators can change (e.g. C:\\Program Files\\portfilter)",
                    path.display()
                ));
            }
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::service::args::ServiceCommand;
    use clap::Parser;

    fn env() -> Environment {
        Environment {
            program_data: Some(PathBuf::from("/pd")),
            current_dir: PathBuf::from("/work/dir"),
        }
    }

    fn parse(args: &[&str]) -> (Cli, ServiceCommand) {
        let mut cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let action = match std::mem::replace(&mut cli.command, Command::Ping) {
            Command::Service { action } => action,
            other => panic!("{other:?}"),
        };
        (cli, action)
    }

    fn install(args: &[&str]) -> Result<Registration, Failure> {
        let (cli, action) = parse(args);
        let ServiceCommand::Install(install) = action else {
            panic!("{action:?}")
        };
        Registration::for_install(&install, &cli.port, &env())
    }

    #[test]
    #[cfg(unix)] // Unix absolute paths
    fn install_defaults_name_driver_log_file_and_start() {
        let registration =
            install(&["portctl", "service", "install", "--rules", "r.toml"]).unwrap();
        assert_eq!(
            registration,
            Registration {
                config: ServiceConfig {
                    name: "portfilter-guard".to_owned(),
                    rules: PathBuf::from("/work/dir/r.toml"),
                    port: "\\PortFilterPort".to_owned(),
                    log_file: Some(PathBuf::from("/pd/portfilter/portfilter-guard.log")),
                    log_decisions: false,
                },
                driver_service: "portfilter".to_owned(),
                start: true,
            }
        );
    }

    #[test]
    #[cfg(unix)] // Unix absolute paths
    fn the_registered_command_line_parses_back_to_the_same_configuration() {
        let registration = install(&[
            "portctl",
            "--port",
            "\\OtherPort",
            "service",
            "install",
            "--rules",
            "/etc/pf rules/r.toml",
            "--name",
            "pf-test",
            "--log-file",
            "logs/pf.log",
            "--log-decisions",
            "--no-start",
        ])
        .unwrap();
        assert!(!registration.start);
        let launch = registration.config.launch_arguments().unwrap();
        assert_eq!(launch[..2], ["service", "run"]);
        // What the service control manager starts: program name + these arguments.
        let argv: Vec<&str> = std::iter::once("portctl.exe")
            .chain(launch.iter().map(String::as_str))
            .collect();
        let (cli, action) = parse(&argv);
        let ServiceCommand::Run(run) = action else {
            panic!("{action:?}")
        };
        assert!(!run.console);
        // Another current directory: the registered paths are absolute already.
        let elsewhere = Environment {
            current_dir: PathBuf::from("/somewhere/else"),
            ..env()
        };
        let config = ServiceConfig::for_run(&run, &cli.port, &elsewhere).unwrap();
        assert_eq!(config, registration.config);
        assert_eq!(
            config.log_file,
            Some(PathBuf::from("/work/dir/logs/pf.log"))
        );
    }

    #[test]
    #[cfg(unix)] // Unix absolute paths
    fn a_service_run_logs_to_the_default_file_a_console_run_to_stderr() {
        let run = |args: &[&str]| {
            let (cli, action) = parse(args);
            let ServiceCommand::Run(run) = action else {
                panic!("{action:?}")
            };
            ServiceConfig::for_run(&run, &cli.port, &env())
        };
        let service = run(&["portctl", "service", "run", "--rules", "/r.toml"]).unwrap();
        assert_eq!(
            service.log_file,
            Some(PathBuf::from("/pd/portfilter/portfilter-guard.log"))
        );
        let console = run(&[
            "portctl",
            "service",
            "run",
            "--rules",
            "/r.toml",
            "--console",
        ])
        .unwrap();
        assert_eq!(console.log_file, None);
        // No %ProgramData% (not Windows) and no --log-file: a usage error, not a guess.
        let (cli, action) = parse(&["portctl", "service", "run", "--rules", "/r.toml"]);
        let ServiceCommand::Run(args) = action else {
            panic!()
        };
        let bare = Environment {
            program_data: None,
            ..env()
        };
        let error = ServiceConfig::for_run(&args, &cli.port, &bare).unwrap_err();
        assert_eq!(error.exit_code(), crate::exit::USAGE);
        assert!(error.to_string().contains("--log-file"), "{error}");
    }

    #[test]
    fn bad_names_are_usage_errors() {
        for (args, why) in [
            (vec!["--name", ""], "is empty"),
            (vec!["--name", "a\\b"], "contains `/` or `\\`"),
            (vec!["--name", "a/b"], "contains `/` or `\\`"),
            (vec!["--driver-service", "x\u{7}"], "control character"),
            (
                vec!["--name", "PortFilter"],
                "named like the driver's service",
            ),
        ] {
            let mut argv = vec!["portctl", "service", "install", "--rules", "/r.toml"];
            argv.extend(args);
            let error = install(&argv).expect_err(why);
            assert_eq!(error.exit_code(), crate::exit::USAGE);
            assert!(error.to_string().contains(why), "{error}");
        }
        let long = "x".repeat(257);
        assert!(check_name(&long).is_err());
        assert!(check_name(&"x".repeat(256)).is_ok());
        // Missing --rules is clap's usage error.
        assert!(Cli::try_parse_from(["portctl", "service", "install"]).is_err());
    }

    #[test]
    #[cfg(unix)] // Unix absolute paths
    fn the_description_names_everything_registered() {
        let registration = install(&[
            "portctl",
            "service",
            "install",
            "--rules",
            "/etc/pf/r.toml",
            "--log-decisions",
        ])
        .unwrap();
        let text = registration.describe("/opt/pf/portctl").unwrap();
        assert_eq!(
            text,
            format!(
                "service:      portfilter-guard (portfilter guard (file create decider))\n\
             description:  {DESCRIPTION}\n\
             command line: /opt/pf/portctl service run --name portfilter-guard --rules /etc/pf/r.toml --port \\PortFilterPort --log-file /pd/portfilter/portfilter-guard.log --log-decisions\n\
             start:        automatic, after service portfilter (the service control manager starts it first)\n\
             account:      LocalSystem\n\
             recovery:     after a crash, restart after 5 s, 30 s, then 60 s (count reset after 24 h); none after a stop with an error\n\
             log file:     /pd/portfilter/portfilter-guard.log (with every decision)\n"
            )
        );
        assert!(text.contains("Reconnects when the driver is reloaded"));
    }

    #[test]
    fn the_default_dependency_is_the_service_driver_inf_installs() {
        let inf =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../driver.inf"))
                .expect("driver.inf");
        let names: Vec<&str> = inf
            .lines()
            .filter_map(|line| {
                let (key, value) = line.split_once('=')?;
                (key.trim() == "ServiceName").then(|| value.trim().trim_matches('"'))
            })
            .collect();
        assert_eq!(names, [DEFAULT_DRIVER_SERVICE]);
    }

    #[test]
    fn user_writable_locations_are_flagged() {
        let registration = install(&[
            "portctl",
            "service",
            "install",
            "--rules",
            "C:/Users/ann/Downloads/rules.toml",
        ])
        .unwrap();
        let warnings =
            registration.location_warnings(Path::new(r"C:\Program Files\portfilter\portctl.exe"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("the service's rules file"),
            "{warnings:?}"
        );
        let both = registration
            .location_warnings(Path::new(r"C:\Users\ann\AppData\Local\Temp\portctl.exe"));
        assert_eq!(both.len(), 2, "{both:?}");
    }
}
