//! Parsing the `create` command's options into a [`CreateSpec`], and a spec into
//! fltsim's [`CreateRequest`].

use fltsim::CreateRequest;
use portfilter_sim_wire::CreateSpec;

/// `FILE_GENERIC_READ`.
pub const FILE_GENERIC_READ: u32 = 0x0012_0089;
/// `FILE_GENERIC_WRITE`.
pub const FILE_GENERIC_WRITE: u32 = 0x0012_0116;
/// `FILE_GENERIC_EXECUTE`.
pub const FILE_GENERIC_EXECUTE: u32 = 0x0012_00A0;
/// `FILE_ALL_ACCESS`.
pub const FILE_ALL_ACCESS: u32 = 0x001F_01FF;
/// `DELETE`.
pub const DELETE: u32 = 0x0001_0000;
/// `FILE_SYNCHRONOUS_IO_NONALERT`, the default create options.
pub const FILE_SYNCHRONOUS_IO_NONALERT: u32 = 0x20;
/// `FILE_ATTRIBUTE_NORMAL`.
pub const FILE_ATTRIBUTE_NORMAL: u32 = 0x80;

fn number(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// A mask given as a number or as `,`/`|`-separated names.
fn mask(s: &str, names: &[(&str, u32)], what: &str) -> Result<u32, String> {
    if let Some(n) = number(s) {
        return Ok(n);
    }
    let mut m = 0;
    for part in s.split([',', '|']).map(str::trim).filter(|p| !p.is_empty()) {
        let lower = part.to_ascii_lowercase();
        let Some((_, v)) = names.iter().find(|(n, _)| *n == lower) else {
            let known: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown {what} '{part}' (use a number or {})",
                known.join(", ")
            ));
        };
        m |= v;
    }
    Ok(m)
}

/// `--access`: a mask, or names: read, write, execute, delete, all.
///
/// # Errors
/// An unknown name.
pub fn parse_access(s: &str) -> Result<u32, String> {
    mask(
        s,
        &[
            ("read", FILE_GENERIC_READ),
            ("write", FILE_GENERIC_WRITE),
            ("execute", FILE_GENERIC_EXECUTE),
            ("delete", DELETE),
            ("all", FILE_ALL_ACCESS),
        ],
        "access",
    )
}

/// `--share`: a mask, or names: none, read, write, delete.
///
/// # Errors
/// An unknown name, or a mask above 0xFFFF.
pub fn parse_share(s: &str) -> Result<u32, String> {
    let m = mask(
        s,
        &[("none", 0), ("read", 1), ("write", 2), ("delete", 4)],
        "share mode",
    )?;
    if m > 0xFFFF {
        return Err(format!("share mask {m:#x} is larger than 16 bits"));
    }
    Ok(m)
}

/// `--disposition`: supersede, open, create, open-if, overwrite, overwrite-if, or 0–5.
///
/// # Errors
/// Anything else.
pub fn parse_disposition(s: &str) -> Result<u32, String> {
    const NAMES: [&str; 6] = [
        "supersede",
        "open",
        "create",
        "open-if",
        "overwrite",
        "overwrite-if",
    ];
    let lower = s.trim().to_ascii_lowercase().replace('_', "-");
    if let Some(i) = NAMES.iter().position(|n| *n == lower) {
        return Ok(u32::try_from(i).unwrap_or(1));
    }
    match number(s) {
        Some(n) if n <= 5 => Ok(n),
        _ => Err(format!(
            "unknown disposition '{s}' (use {} or 0-5)",
            NAMES.join(", ")
        )),
    }
}

/// `--options` / `--attributes`: a number.
///
/// # Errors
/// Not a number.
pub fn parse_number(s: &str) -> Result<u32, String> {
    number(s).ok_or_else(|| format!("'{s}' is not a number (decimal or 0x…)"))
}

/// The fltsim request for a spec.
#[must_use]
pub fn to_request(spec: &CreateSpec) -> CreateRequest {
    let mut r = CreateRequest::new(&spec.path)
        .pid(spec.pid)
        .access(spec.desired_access)
        .share(u16::try_from(spec.share_access).unwrap_or(u16::MAX))
        .disposition(spec.disposition)
        .options(spec.options)
        .attributes(u16::try_from(spec.attributes).unwrap_or(u16::MAX));
    if spec.tid != 0 {
        r = r.tid(u64::from(spec.tid));
    }
    if spec.kernel {
        r = r.kernel_mode();
    }
    if spec.directory {
        r = r.directory();
    }
    if spec.paging_file {
        r = r.paging_file();
    }
    if spec.volume_open {
        r = r.volume_open();
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_names_and_numbers() {
        assert_eq!(parse_access("read").unwrap(), FILE_GENERIC_READ);
        assert_eq!(
            parse_access("read,write").unwrap(),
            FILE_GENERIC_READ | FILE_GENERIC_WRITE
        );
        assert_eq!(parse_access("0x80000000").unwrap(), 0x8000_0000);
        assert_eq!(parse_access("17").unwrap(), 17);
        assert!(
            parse_access("fly")
                .unwrap_err()
                .contains("unknown access 'fly'")
        );
    }

    #[test]
    fn dispositions() {
        assert_eq!(parse_disposition("open").unwrap(), 1);
        assert_eq!(parse_disposition("OVERWRITE_IF").unwrap(), 5);
        assert_eq!(parse_disposition("2").unwrap(), 2);
        assert!(parse_disposition("6").is_err());
        assert!(parse_disposition("maybe").is_err());
    }

    #[test]
    fn share_modes() {
        assert_eq!(parse_share("read|write").unwrap(), 3);
        assert_eq!(parse_share("none").unwrap(), 0);
        assert!(parse_share("0x10000").is_err());
    }

    #[test]
    fn spec_maps_onto_the_fltsim_request() {
        let spec = CreateSpec {
            path: r"C:\x.txt".into(),
            pid: 77,
            tid: 78,
            image: "x.exe".into(),
            kernel: true,
            desired_access: FILE_GENERIC_WRITE,
            share_access: 1,
            disposition: 2,
            options: FILE_SYNCHRONOUS_IO_NONALERT,
            attributes: FILE_ATTRIBUTE_NORMAL,
            directory: true,
            paging_file: true,
            volume_open: false,
        };
        let r = to_request(&spec);
        assert_eq!(r.pid, 77);
        assert_eq!(r.tid, Some(78));
        assert_eq!(r.desired_access, FILE_GENERIC_WRITE);
        assert_eq!(r.share_access, 1);
        assert_eq!(r.disposition, 2);
        assert!(r.paging_file && !r.volume_open);
        assert_ne!(r.requestor_mode, CreateRequest::new("C:\\y").requestor_mode);
        assert_ne!(r.options & 1, 0, "FILE_DIRECTORY_FILE set");
    }
}
