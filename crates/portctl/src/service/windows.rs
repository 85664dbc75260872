//! The Service Control Manager side of `portctl service`, through the `windows-service`
//! crate: register, remove, start, stop and query the service, and the dispatcher that
//! runs [`runner`] as the service.
//!
//! **Windows only, and not run by this project** (its build machines are Linux): CI
//! type-checks it for `x86_64-pc-windows-msvc`; `scripts/windows/smoke-test.ps1` runs it
//! in a test VM (install → the service denies a create → uninstall). What it decides is
//! in the platform-independent modules next to it, which are tested on Linux.

use super::config::{DESCRIPTION, DISPLAY_NAME, RECOVERY, Registration, ServiceConfig};
use super::logfile::LogFile;
use super::runner;
use super::scm_error;
use super::state::{self, Control, ControlAction, Exit, Phase, Status, StatusReport};
use crate::exit::Failure;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use windows_service::service::{
    Service, ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceDependency, ServiceErrorControl, ServiceExitCode, ServiceFailureActions,
    ServiceFailureResetPeriod, ServiceInfo, ServiceStartType, ServiceState, ServiceStatus,
    ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

/// A service in its own process.
const SERVICE_TYPE: ServiceType = ServiceType::OWN_PROCESS;
/// How long `start` / `stop` / `uninstall` wait for the service to get there.
const WAIT_FOR_STATE: Duration = Duration::from_secs(60);
/// How often they look.
const POLL: Duration = Duration::from_millis(250);

fn win32_code(error: &windows_service::Error) -> Option<i32> {
    match error {
        windows_service::Error::Winapi(io) => io.raw_os_error(),
        _ => None,
    }
}

fn scm(operation: &str, name: &str, error: &windows_service::Error) -> Failure {
    let detail = match error {
        windows_service::Error::Winapi(io) => io.to_string(),
        other => other.to_string(),
    };
    scm_error::failure(operation, name, win32_code(error), &detail)
}

fn manager(
    access: ServiceManagerAccess,
    operation: &str,
    name: &str,
) -> Result<ServiceManager, Failure> {
    ServiceManager::local_computer(None::<&str>, access).map_err(|e| scm(operation, name, &e))
}

fn open(name: &str, access: ServiceAccess, operation: &str) -> Result<Service, Failure> {
    manager(ServiceManagerAccess::CONNECT, operation, name)?
        .open_service(name, access)
        .map_err(|e| scm(operation, name, &e))
}

/// `service install`: create the service (automatic start, depending on the driver's
/// service, LocalSystem), set its description and recovery actions, then start it.
/// A service that cannot be fully configured is deleted again.
pub fn install(registration: &Registration, program: &str) -> Result<(), Failure> {
    let config = &registration.config;
    let name = config.name.as_str();
    let manager = manager(
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
        "install",
        name,
    )?;
    let info = ServiceInfo {
        name: OsString::from(name),
        display_name: OsString::from(DISPLAY_NAME),
        service_type: SERVICE_TYPE,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: PathBuf::from(program),
        launch_arguments: config
            .launch_arguments()?
            .into_iter()
            .map(OsString::from)
            .collect(),
        dependencies: vec![ServiceDependency::Service(OsString::from(
            &registration.driver_service,
        ))],
        account_name: None,
        account_password: None,
    };
    let service = manager
        .create_service(
            &info,
            ServiceAccess::QUERY_STATUS
                | ServiceAccess::START
                | ServiceAccess::CHANGE_CONFIG
                | ServiceAccess::DELETE,
        )
        .map_err(|e| scm("install", name, &e))?;
    if let Err(failure) = configure(&service, name) {
        if let Err(error) = service.delete() {
            eprintln!(
                "portctl: warning: could not remove the half-installed service {name}: {}",
                scm("delete", name, &error)
            );
        }
        return Err(failure);
    }
    println!("installed service {name}");
    if registration.start {
        start_service(&service, name)?;
    }
    Ok(())
}

/// Description and recovery actions ([`RECOVERY`]).
fn configure(service: &Service, name: &str) -> Result<(), Failure> {
    service
        .set_description(DESCRIPTION)
        .map_err(|e| scm("set the description of", name, &e))?;
    let actions = RECOVERY
        .restart_after
        .iter()
        .map(|delay| ServiceAction {
            action_type: ServiceActionType::Restart,
            delay: *delay,
        })
        .collect();
    service
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(RECOVERY.reset_after),
            reboot_msg: None,
            command: None,
            actions: Some(actions),
        })
        .map_err(|e| scm("set the recovery actions of", name, &e))?;
    service
        .set_failure_actions_on_non_crash_failures(RECOVERY.on_non_crash_failures)
        .map_err(|e| scm("set the recovery actions of", name, &e))
}

/// Polls until `done` holds for the service's state, at most [`WAIT_FOR_STATE`].
fn wait_for(
    service: &Service,
    name: &str,
    what: &str,
    done: impl Fn(ServiceState) -> bool,
) -> Result<ServiceStatus, Failure> {
    let deadline = Instant::now() + WAIT_FOR_STATE;
    loop {
        let status = service.query_status().map_err(|e| scm("query", name, &e))?;
        if done(status.current_state) {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            return Err(Failure::Runtime(format!(
                "service {name} did not {what} within {} s (state: {})",
                WAIT_FOR_STATE.as_secs(),
                state_name(status.current_state)
            )));
        }
        std::thread::sleep(POLL);
    }
}

fn start_service(service: &Service, name: &str) -> Result<(), Failure> {
    match service.start::<&str>(&[]) {
        Ok(()) => {}
        Err(error) if win32_code(&error) == Some(scm_error::ALREADY_RUNNING) => {
            println!("service {name} is already running");
            return Ok(());
        }
        Err(error) => return Err(scm("start", name, &error)),
    }
    let status = wait_for(service, name, "start", |state| {
        state != ServiceState::StartPending
    })?;
    if status.current_state == ServiceState::Running {
        println!("service {name} is running");
        Ok(())
    } else {
        Err(Failure::Runtime(format!(
            "service {name} stopped while starting: {} (see its log file)",
            exit_text(status.exit_code)
        )))
    }
}

fn stop_service(service: &Service, name: &str) -> Result<(), Failure> {
    match service.stop() {
        Ok(_) => {}
        Err(error) if win32_code(&error) == Some(scm_error::NOT_ACTIVE) => {
            println!("service {name} is not running");
            return Ok(());
        }
        Err(error) => return Err(scm("stop", name, &error)),
    }
    let status = wait_for(service, name, "stop", |state| {
        state == ServiceState::Stopped
    })?;
    println!("service {name} stopped: {}", exit_text(status.exit_code));
    Ok(())
}

/// `service start`.
pub fn start(name: &str) -> Result<(), Failure> {
    let service = open(
        name,
        ServiceAccess::QUERY_STATUS | ServiceAccess::START,
        "start",
    )?;
    start_service(&service, name)
}

/// `service stop`: the service answers what it received, disconnects, stops.
pub fn stop(name: &str) -> Result<(), Failure> {
    let service = open(
        name,
        ServiceAccess::QUERY_STATUS | ServiceAccess::STOP,
        "stop",
    )?;
    stop_service(&service, name)
}

/// `service uninstall`: stop it if needed, then delete it.
pub fn uninstall(name: &str) -> Result<(), Failure> {
    let service = open(
        name,
        ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
        "uninstall",
    )?;
    let status = service.query_status().map_err(|e| scm("query", name, &e))?;
    if status.current_state != ServiceState::Stopped {
        stop_service(&service, name)?;
    }
    service.delete().map_err(|e| scm("uninstall", name, &e))?;
    println!("removed service {name}");
    Ok(())
}

fn state_name(state: ServiceState) -> &'static str {
    match state {
        ServiceState::Stopped => "stopped",
        ServiceState::StartPending => "start pending",
        ServiceState::StopPending => "stop pending",
        ServiceState::Running => "running",
        ServiceState::ContinuePending => "continue pending",
        ServiceState::PausePending => "pause pending",
        ServiceState::Paused => "paused",
    }
}

fn exit_text(exit: ServiceExitCode) -> String {
    match exit {
        ServiceExitCode::Win32(0) => Exit::Success.to_string(),
        ServiceExitCode::ServiceSpecific(code) => Exit::ServiceSpecific(code).to_string(),
        ServiceExitCode::Win32(code) => format!("Win32 error {code}"),
    }
}

/// `service status`.
pub fn status(name: &str) -> Result<(), Failure> {
    let service = open(
        name,
        ServiceAccess::QUERY_STATUS | ServiceAccess::QUERY_CONFIG,
        "query",
    )?;
    let status = service.query_status().map_err(|e| scm("query", name, &e))?;
    let config = service.query_config().map_err(|e| scm("query", name, &e))?;
    let report = StatusReport {
        name: name.to_owned(),
        display_name: config.display_name.to_string_lossy().into_owned(),
        state: state_name(status.current_state).to_owned(),
        pid: status.process_id,
        start: match config.start_type {
            ServiceStartType::AutoStart => "automatic",
            ServiceStartType::OnDemand => "manual",
            ServiceStartType::Disabled => "disabled",
            ServiceStartType::SystemStart | ServiceStartType::BootStart => "with the system",
        }
        .to_owned(),
        dependencies: config
            .dependencies
            .iter()
            .map(|d| d.to_system_identifier().to_string_lossy().into_owned())
            .collect(),
        command_line: config.executable_path.display().to_string(),
        last_exit: (status.current_state == ServiceState::Stopped)
            .then(|| exit_text(status.exit_code)),
    };
    print!("{report}");
    Ok(())
}

/// What the dispatcher's service main runs: set once before the dispatcher starts.
static SERVICE: OnceLock<(ServiceConfig, Option<LogFile>)> = OnceLock::new();

/// `service run` (started by the service control manager): logging to the log file,
/// then the dispatcher, which calls `service_main` on its own thread and returns when
/// the service stopped. A log file that cannot be opened does not keep the service from
/// guarding (its diagnostics are then lost; the service control manager still records
/// start, stop and the exit code in the System event log).
pub fn dispatch(config: ServiceConfig) -> Result<(), Failure> {
    let log = match runner::open_log(&config) {
        Ok(log) => log,
        Err(failure) => {
            eprintln!("portctl: {failure}");
            None
        }
    };
    runner::init_logging(log.as_ref());
    let name = config.name.clone();
    if SERVICE.set((config, log)).is_err() {
        return Err(Failure::Runtime(
            "the service was already started".to_owned(),
        ));
    }
    service_dispatcher::start(&name, ffi_service_main).map_err(|e| scm("run", &name, &e))
}

define_windows_service!(ffi_service_main, service_main);

fn service_main(_arguments: Vec<OsString>) {
    let Some((config, log)) = SERVICE.get() else {
        return;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stop_requested = Arc::clone(&stop);
    let handler = move |control: ServiceControl| -> ServiceControlHandlerResult {
        let control = match control {
            ServiceControl::Stop => Control::Stop,
            ServiceControl::Shutdown => Control::Shutdown,
            ServiceControl::Interrogate => Control::Interrogate,
            _ => Control::Other,
        };
        match state::control_action(control) {
            ControlAction::RequestStop => {
                stop_requested.store(true, Ordering::SeqCst);
                ServiceControlHandlerResult::NoError
            }
            ControlAction::Acknowledge => ServiceControlHandlerResult::NoError,
            ControlAction::NotImplemented => ServiceControlHandlerResult::NotImplemented,
        }
    };
    let status_handle = match service_control_handler::register(&config.name, handler) {
        Ok(handle) => handle,
        Err(error) => {
            tracing::error!(
                "cannot register the service control handler: {}",
                scm("run", &config.name, &error)
            );
            return;
        }
    };
    let mut report = |status: &Status| {
        runner::log_status(status);
        if let Err(error) = status_handle.set_service_status(to_windows(status)) {
            tracing::error!(
                "cannot report the service state: {}",
                scm("report", &config.name, &error)
            );
        }
    };
    // The result is logged and reported as the exit code by the runner.
    let _ = runner::run(config, log.as_ref(), &stop, &mut report);
}

fn to_windows(status: &Status) -> ServiceStatus {
    ServiceStatus {
        service_type: SERVICE_TYPE,
        current_state: match status.phase {
            Phase::StartPending => ServiceState::StartPending,
            Phase::Running => ServiceState::Running,
            Phase::StopPending => ServiceState::StopPending,
            Phase::Stopped => ServiceState::Stopped,
        },
        controls_accepted: if status.accepts_stop {
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
        } else {
            ServiceControlAccept::empty()
        },
        exit_code: match status.exit {
            Exit::Success => ServiceExitCode::NO_ERROR,
            Exit::ServiceSpecific(code) => ServiceExitCode::ServiceSpecific(code),
        },
        checkpoint: status.checkpoint,
        wait_hint: status.wait_hint,
        process_id: None,
    }
}
