//! The trace rows a workload plays: the embedded sample of the real file-create trace
//! (crates/sim-host/data/, with its attribution) or a CSV file of the same columns.

use std::path::Path;

/// The embedded sample (2,000 rows; see data/README.md for provenance and licences).
pub const EMBEDDED: &str = include_str!("../../data/file-creates-sample.csv");

/// One create of the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Microseconds since the first row of its source.
    pub t_us: u64,
    /// Creating process id.
    pub pid: u32,
    /// Creating process image.
    pub image: String,
    /// Target path (DOS form).
    pub path: String,
}

#[derive(serde::Deserialize)]
struct Raw {
    t_us: u64,
    pid: u32,
    image: String,
    path: String,
}

/// Parses CSV text with the columns `t_us,pid,tid,image,path,source` (extra columns
/// are ignored).
///
/// # Errors
/// The first malformed row, with its line.
pub fn parse(text: &str) -> Result<Vec<Row>, String> {
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for record in reader.deserialize::<Raw>() {
        let r = record.map_err(|e| format!("trace: {e}"))?;
        rows.push(Row {
            t_us: r.t_us,
            pid: r.pid,
            image: r.image,
            path: r.path,
        });
    }
    if rows.is_empty() {
        return Err("trace: no rows".into());
    }
    Ok(rows)
}

/// The embedded sample, or `file`.
///
/// # Errors
/// Unreadable file or malformed rows.
pub fn load(file: Option<&Path>) -> Result<Vec<Row>, String> {
    match file {
        None => parse(EMBEDDED),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            parse(&text)
        }
    }
}

/// The image's file name (`C:\Windows\system32\svchost.exe` → `svchost.exe`).
#[must_use]
pub fn short_image(image: &str) -> &str {
    image.rsplit(['\\', '/']).next().unwrap_or(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_sample_has_2000_rows_with_wermgr_down_weighted() {
        let rows = load(None).unwrap();
        assert_eq!(rows.len(), 2000);
        let wermgr = rows
            .iter()
            .filter(|r| short_image(&r.image).eq_ignore_ascii_case("wermgr.exe"))
            .count();
        assert_eq!(wermgr, 200);
        assert!(rows.iter().all(|r| !r.path.is_empty()));
    }

    #[test]
    fn malformed_rows_are_reported() {
        let e = parse("t_us,pid,tid,image,path,source\nx,1,,a,b,c\n").unwrap_err();
        assert!(e.starts_with("trace:"), "{e}");
        assert!(parse("t_us,pid,tid,image,path,source\n").is_err());
    }

    #[test]
    fn short_image_names() {
        assert_eq!(
            short_image(r"C:\Windows\system32\svchost.exe"),
            "svchost.exe"
        );
        assert_eq!(short_image("x.exe"), "x.exe");
    }
}
