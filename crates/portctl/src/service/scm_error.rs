//! What a failed service control manager call means for the user: one line saying what
//! to do, and portctl's exit status. Pure (Win32 codes in, text out).

use crate::exit::Failure;

/// `ERROR_ACCESS_DENIED`.
pub const ACCESS_DENIED: i32 = 5;
/// `ERROR_DEPENDENT_SERVICES_RUNNING`.
pub const DEPENDENT_SERVICES_RUNNING: i32 = 1051;
/// `ERROR_SERVICE_REQUEST_TIMEOUT`.
pub const REQUEST_TIMEOUT: i32 = 1053;
/// `ERROR_SERVICE_ALREADY_RUNNING`.
pub const ALREADY_RUNNING: i32 = 1056;
/// `ERROR_SERVICE_DISABLED`.
pub const DISABLED: i32 = 1058;
/// `ERROR_SERVICE_DOES_NOT_EXIST`.
pub const DOES_NOT_EXIST: i32 = 1060;
/// `ERROR_SERVICE_NOT_ACTIVE`.
pub const NOT_ACTIVE: i32 = 1062;
/// `ERROR_FAILED_SERVICE_CONTROLLER_CONNECT`: `service run` not started by the SCM.
pub const NOT_UNDER_SCM: i32 = 1063;
/// `ERROR_SERVICE_DEPENDENCY_FAIL`.
pub const DEPENDENCY_FAIL: i32 = 1068;
/// `ERROR_SERVICE_MARKED_FOR_DELETE`.
pub const MARKED_FOR_DELETE: i32 = 1072;
/// `ERROR_SERVICE_EXISTS`.
pub const EXISTS: i32 = 1073;
/// `ERROR_SERVICE_DEPENDENCY_DELETED`.
pub const DEPENDENCY_DELETED: i32 = 1075;

/// `operation` on service `name` failed with Win32 error `code` (`None`: not a Win32
/// error; `detail` says what). Access denied is exit 4 (run elevated), `service run`
/// outside the service control manager is a usage error (exit 2), the rest exit 1.
#[must_use]
pub fn failure(operation: &str, name: &str, code: Option<i32>, detail: &str) -> Failure {
    let what = match code {
        Some(ACCESS_DENIED) => {
            return Failure::Denied(format!(
                "{operation} {name}: access denied by the service control manager: run portctl from an elevated prompt (Win32 error {ACCESS_DENIED})"
            ));
        }
        Some(NOT_UNDER_SCM) => {
            return Failure::Usage(format!(
                "`portctl service run` is what the service control manager starts; to run the service's work in this console add --console (or start the service: portctl service start --name {name})"
            ));
        }
        Some(DOES_NOT_EXIST) => {
            format!("service {name} is not installed (portctl service install)")
        }
        Some(EXISTS) => format!(
            "service {name} is already installed (portctl service uninstall --name {name} first, or choose another --name)"
        ),
        Some(MARKED_FOR_DELETE) => format!(
            "service {name} is being deleted: close services.msc and any program that has it open, or restart Windows, then try again"
        ),
        Some(DEPENDENCY_FAIL | DEPENDENCY_DELETED) => format!(
            "service {name} depends on the driver's service, which could not be started: is the driver installed (pnputil /add-driver portfilter.inf /install) and does `fltmc load portfilter` work?"
        ),
        Some(DISABLED) => format!("service {name} is disabled (sc config {name} start= auto)"),
        Some(REQUEST_TIMEOUT) => format!(
            "service {name} did not answer in time: see its log file (portctl service status --name {name})"
        ),
        Some(DEPENDENT_SERVICES_RUNNING) => {
            format!("other services depend on {name}: stop them first")
        }
        _ => format!("{operation} {name} failed: {detail}"),
    };
    Failure::Runtime(match code {
        Some(code) => format!("{what} (Win32 error {code})"),
        None => what,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit;

    #[test]
    fn each_known_error_says_what_to_do() {
        let denied = failure("install", "pg", Some(ACCESS_DENIED), "");
        assert_eq!(denied.exit_code(), exit::ACCESS_DENIED);
        assert!(denied.to_string().contains("elevated"), "{denied}");

        let console = failure("run", "pg", Some(NOT_UNDER_SCM), "");
        assert_eq!(console.exit_code(), exit::USAGE);
        assert!(console.to_string().contains("--console"), "{console}");

        for (code, says) in [
            (DOES_NOT_EXIST, "not installed"),
            (EXISTS, "already installed"),
            (MARKED_FOR_DELETE, "being deleted"),
            (DEPENDENCY_FAIL, "pnputil /add-driver"),
            (DISABLED, "disabled"),
            (REQUEST_TIMEOUT, "log file"),
        ] {
            let error = failure("start", "pg", Some(code), "");
            assert_eq!(error.exit_code(), exit::RUNTIME, "{code}");
            let text = error.to_string();
            assert!(text.contains(says), "{code}: {text}");
            assert!(text.ends_with(&format!("(Win32 error {code})")), "{text}");
        }
        let other = failure("stop", "pg", None, "launch argument contains a nul byte");
        assert_eq!(
            other.to_string(),
            "stop pg failed: launch argument contains a nul byte"
        );
    }
}
