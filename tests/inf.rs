//! Structure test of `driver.inf`, the primitive minifilter INF (issue #5).
//!
//! A small INF reader (sections, `key = value` lines, comma fields with quotes, `%strkey%`
//! substitution from `[Strings]`, `;` comments, `\` line continuation, ASCII or UTF-16 LE
//! with BOM) and checks of what Windows and the Filter Manager need: the `[Version]` of a
//! minifilter, the modern driver-store install for builds 25952+ and the downlevel install,
//! the service values, the instance registry values, an altitude inside the range of the
//! chosen load-order group, and names that agree with the driver source.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

// ---------------------------------------------------------------------------------------
// A small INF reader
// ---------------------------------------------------------------------------------------

/// One logical line of a section.
#[derive(Debug, Clone)]
struct Line {
    /// The key before an unquoted `=`, if any (as written, trimmed).
    key: Option<String>,
    /// Comma-separated fields after the `=` (or the whole line), quotes removed and
    /// `%strkey%` tokens replaced.
    fields: Vec<String>,
    /// 1-based physical line number where the logical line starts.
    lineno: usize,
}

impl Line {
    fn field(&self, i: usize) -> &str {
        self.fields.get(i).map_or("", String::as_str)
    }
}

#[derive(Debug)]
struct Section {
    name: String,
    lines: Vec<Line>,
}

#[derive(Debug)]
struct Inf {
    sections: Vec<Section>,
    /// `[Strings]`, keys lower-cased.
    strings: BTreeMap<String, String>,
    /// `%token%` references that `[Strings]` does not define (numeric DIRIDs excluded).
    unresolved: Vec<(usize, String)>,
}

/// Decodes an INF file: UTF-16 LE with a BOM, or 7-bit ASCII.
fn decode(bytes: &[u8]) -> Result<String, String> {
    if let Some(rest) = bytes.strip_prefix(&[0xff, 0xfe]) {
        if rest.len() % 2 != 0 {
            return Err("odd UTF-16 length".into());
        }
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16(&units).map_err(|e| e.to_string());
    }
    if let Some(pos) = bytes.iter().position(|b| !b.is_ascii()) {
        return Err(format!(
            "byte {pos} is not ASCII (and there is no UTF-16 BOM)"
        ));
    }
    Ok(String::from_utf8(bytes.to_vec()).expect("ASCII is UTF-8"))
}

/// Splits one logical line into (key, raw fields) honouring quotes and comments.
/// Raw fields keep `%token%` unreplaced; quoted parts are marked by the tokenizer state.
fn tokenize(line: &str) -> (Option<Vec<Piece>>, Vec<Vec<Piece>>) {
    let mut key: Option<Vec<Piece>> = None;
    let mut fields: Vec<Vec<Piece>> = Vec::new();
    let mut current: Vec<Piece> = Vec::new();
    let mut chars = line.chars().peekable();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    current.push(Piece::Quoted('"'));
                } else {
                    in_quotes = false;
                }
            } else {
                current.push(Piece::Quoted(c));
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            ';' => break,
            '=' if key.is_none() && fields.is_empty() => {
                key = Some(std::mem::take(&mut current));
            }
            ',' => fields.push(std::mem::take(&mut current)),
            _ => current.push(Piece::Plain(c)),
        }
    }
    fields.push(current);
    (key, fields)
}

#[derive(Debug, Clone, Copy)]
enum Piece {
    Plain(char),
    Quoted(char),
}

/// Joins pieces: trims unquoted whitespace at both ends and substitutes `%token%` in
/// unquoted text from `strings` (`%%` is a literal `%`; numeric tokens such as `%13%` are
/// DIRIDs and stay as written).
fn render(
    pieces: &[Piece],
    strings: &BTreeMap<String, String>,
    unresolved: &mut Vec<String>,
) -> String {
    let start = pieces
        .iter()
        .position(|p| !matches!(p, Piece::Plain(c) if c.is_whitespace()))
        .unwrap_or(pieces.len());
    let end = pieces
        .iter()
        .rposition(|p| !matches!(p, Piece::Plain(c) if c.is_whitespace()))
        .map_or(start, |e| e + 1);
    let pieces = &pieces[start..end.max(start)];
    let mut out = String::new();
    let mut i = 0;
    while i < pieces.len() {
        match pieces[i] {
            Piece::Plain('%') => {
                let close = pieces[i + 1..]
                    .iter()
                    .position(|p| matches!(p, Piece::Plain('%')));
                let Some(close) = close else {
                    out.push('%');
                    i += 1;
                    continue;
                };
                let token: String = pieces[i + 1..i + 1 + close]
                    .iter()
                    .map(|p| match p {
                        Piece::Plain(c) | Piece::Quoted(c) => *c,
                    })
                    .collect();
                if token.is_empty() {
                    out.push('%');
                } else if let Some(value) = strings.get(&token.to_ascii_lowercase()) {
                    out.push_str(value);
                } else {
                    if !token.chars().all(|c| c.is_ascii_digit()) {
                        unresolved.push(token.clone());
                    }
                    out.push('%');
                    out.push_str(&token);
                    out.push('%');
                }
                i += close + 2;
                continue;
            }
            Piece::Plain(c) | Piece::Quoted(c) => out.push(c),
        }
        i += 1;
    }
    out
}

impl Inf {
    fn parse(text: &str) -> Result<Self, String> {
        // Physical lines -> logical lines (a trailing unquoted `\` continues the line).
        let mut logical: Vec<(usize, String)> = Vec::new();
        let mut pending: Option<(usize, String)> = None;
        for (i, raw) in text.split('\n').enumerate() {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let (start, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
            let uncommented = strip_comment(raw);
            if let Some(head) = uncommented.trim_end().strip_suffix('\\') {
                acc.push_str(head);
                pending = Some((start, acc));
                continue;
            }
            acc.push_str(raw);
            logical.push((start, acc));
        }
        if let Some(p) = pending {
            logical.push(p);
        }

        // Raw sections.
        let mut raw_sections: Vec<(String, Vec<(usize, String)>)> = Vec::new();
        for (lineno, line) in logical {
            let body = strip_comment(&line).trim().to_owned();
            if body.is_empty() {
                continue;
            }
            if let Some(name) = body.strip_prefix('[') {
                let name = name
                    .strip_suffix(']')
                    .ok_or_else(|| format!("line {lineno}: unterminated section header"))?;
                raw_sections.push((name.trim().to_owned(), Vec::new()));
                continue;
            }
            let Some(section) = raw_sections.last_mut() else {
                return Err(format!("line {lineno}: text before the first section"));
            };
            section.1.push((lineno, line));
        }

        // [Strings] first (its values are literal).
        let mut strings = BTreeMap::new();
        let mut none = Vec::new();
        for (name, lines) in &raw_sections {
            if !name.eq_ignore_ascii_case("Strings") {
                continue;
            }
            for (lineno, line) in lines {
                let (key, fields) = tokenize(line);
                let key =
                    key.ok_or_else(|| format!("line {lineno}: [Strings] needs key = value"))?;
                let key = render(&key, &BTreeMap::new(), &mut none);
                let value = render(&fields[0], &BTreeMap::new(), &mut none);
                strings.insert(key.to_ascii_lowercase(), value);
            }
        }

        let mut unresolved = Vec::new();
        let mut sections = Vec::new();
        for (name, lines) in raw_sections {
            let mut parsed = Vec::new();
            for (lineno, line) in lines {
                let (key, fields) = tokenize(&line);
                let mut missing = Vec::new();
                let key = key.map(|k| render(&k, &strings, &mut missing));
                let fields = fields
                    .iter()
                    .map(|f| render(f, &strings, &mut missing))
                    .collect();
                unresolved.extend(missing.into_iter().map(|t| (lineno, t)));
                parsed.push(Line {
                    key,
                    fields,
                    lineno,
                });
            }
            sections.push(Section {
                name,
                lines: parsed,
            });
        }
        Ok(Self {
            sections,
            strings,
            unresolved,
        })
    }

    fn section(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    fn require(&self, name: &str) -> &Section {
        self.section(name)
            .unwrap_or_else(|| panic!("driver.inf has no [{name}] section"))
    }

    fn string(&self, key: &str) -> Option<&str> {
        self.strings
            .get(&key.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// The part of a physical line before an unquoted `;`.
fn strip_comment(line: &str) -> &str {
    let mut in_quotes = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ';' if !in_quotes => return &line[..i],
            _ => {}
        }
    }
    line
}

impl Section {
    /// Every line with this key (case-insensitive).
    fn all(&self, key: &str) -> Vec<&Line> {
        self.lines
            .iter()
            .filter(|l| {
                l.key
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case(key))
            })
            .collect()
    }

    /// The single line with this key.
    fn entry(&self, key: &str) -> &Line {
        let found = self.all(key);
        assert_eq!(
            found.len(),
            1,
            "[{}] must have exactly one {key} line, has {}",
            self.name,
            found.len()
        );
        found[0]
    }

    /// The value (first field) of the single `key = …` line.
    fn value(&self, key: &str) -> &str {
        self.entry(key).field(0)
    }

    /// Lines without a key (file lists, registry lines).
    fn plain(&self) -> Vec<&Line> {
        self.lines.iter().filter(|l| l.key.is_none()).collect()
    }
}

// ---------------------------------------------------------------------------------------
// Facts the INF must agree with
// ---------------------------------------------------------------------------------------

/// Minifilter load-order groups we consider, with Microsoft's altitude range and the setup
/// class that goes with each (Microsoft's "File System Filter Driver Classes and Class
/// GUIDs" and "Load order groups and altitudes for minifilter drivers").
const GROUPS: [(&str, u32, u32, &str, &str); 4] = [
    (
        "FSFilter Activity Monitor",
        360_000,
        389_999,
        "ActivityMonitor",
        "{b86dff51-a31e-4bac-b3cf-e8cfe75c9fc2}",
    ),
    (
        "FSFilter Anti-Virus",
        320_000,
        329_999,
        "AntiVirus",
        "{b1d1a169-c54f-4379-81db-bee7d88d7454}",
    ),
    (
        "FSFilter Content Screener",
        260_000,
        269_999,
        "ContentScreener",
        "{3e3f0674-c83c-4558-bb26-9820e1eba5c5}",
    ),
    (
        "FSFilter Security Enhancer",
        80_000,
        89_999,
        "SecurityEnhancer",
        "{d02bc3da-0c8e-4945-9bd5-f1883c226c8c}",
    ),
];

/// The group chosen in driver.inf (see its header for why).
const CHOSEN_GROUP: &str = "FSFilter Anti-Virus";

/// The oldest Windows build the driver loads on: Windows 10 version 2004. The driver imports
/// `ExAllocatePool2`, which older builds lack.
const MIN_BUILD: u32 = 19041;
/// From this build on (Windows 11 24H2) a minifilter's service can run from the driver store
/// and the Filter Manager reads the instance values under `Parameters`.
const DRIVER_STORE_BUILD: u32 = 25952;

const MODERN: &str = "DefaultInstall.NT$ARCH$.10.0...25952";
const DOWNLEVEL: &str = "DefaultInstall.NT$ARCH$.10.0...19041";

/// `SERVICE_FILE_SYSTEM_DRIVER`.
const SERVICE_FILE_SYSTEM_DRIVER: &str = "2";
/// `SERVICE_DEMAND_START`.
const SERVICE_DEMAND_START: &str = "3";
/// `SERVICE_ERROR_NORMAL`.
const SERVICE_ERROR_NORMAL: &str = "1";
/// `FLG_ADDREG_TYPE_DWORD`.
const REG_DWORD: u32 = 0x0001_0001;
/// `FLG_ADDREG_TYPE_SZ`.
const REG_SZ: u32 = 0;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The service name: the package name (the Filter Manager knows the filter by it).
fn service_name() -> &'static str {
    env!("CARGO_PKG_NAME")
}

/// The image name: the library's name (cdylib `portfilter.dll`, renamed `.sys`).
fn image_name() -> String {
    format!("{}.sys", env!("CARGO_PKG_NAME").replace('-', "_"))
}

fn load(path: &std::path::Path) -> (Vec<u8>, Inf) {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let text = decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let inf = Inf::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (bytes, inf)
}

fn driver_inf() -> Inf {
    load(&root().join("driver.inf")).1
}

fn parse_u32(s: &str) -> u32 {
    let s = s.trim();
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.unwrap_or_else(|_| panic!("not a number: {s:?}"))
}

/// The section named by `key` in `section` (e.g. `CopyFiles = X`), which must exist.
fn referenced<'a>(inf: &'a Inf, section: &Section, key: &str) -> &'a Section {
    let name = section.value(key);
    inf.section(name).unwrap_or_else(|| {
        panic!(
            "[{}] {key} = {name}, but there is no [{name}] section",
            section.name
        )
    })
}

/// The DIRID `[DestinationDirs]` gives for a file-list section.
fn dirid(inf: &Inf, file_section: &str) -> u32 {
    parse_u32(inf.require("DestinationDirs").value(file_section))
}

/// The files a file-list section names.
fn files(section: &Section) -> Vec<String> {
    section
        .plain()
        .iter()
        .map(|l| l.field(0).to_ascii_lowercase())
        .collect()
}

/// Checks an `AddService` line and the service-install section it names; returns the latter.
fn check_service<'a>(inf: &'a Inf, services: &Section, binary_dirid: u32) -> &'a Section {
    let add = services.entry("AddService");
    assert_eq!(add.field(0), service_name(), "AddService name");
    let flags = add.field(1);
    assert!(
        flags.is_empty() || parse_u32(flags) & !0x2 == 0,
        "unexpected AddService flags {flags}"
    );
    let install = inf
        .section(add.field(2))
        .unwrap_or_else(|| panic!("AddService names a missing section {}", add.field(2)));
    assert_eq!(
        install.value("ServiceType"),
        SERVICE_FILE_SYSTEM_DRIVER,
        "[{}] ServiceType",
        install.name
    );
    assert_eq!(
        install.value("StartType"),
        SERVICE_DEMAND_START,
        "[{}] StartType",
        install.name
    );
    assert_eq!(
        install.value("ErrorControl"),
        SERVICE_ERROR_NORMAL,
        "[{}] ErrorControl",
        install.name
    );
    assert_eq!(
        install.value("LoadOrderGroup"),
        CHOSEN_GROUP,
        "[{}] LoadOrderGroup",
        install.name
    );
    assert!(
        install.value("Dependencies").eq_ignore_ascii_case("FltMgr"),
        "a minifilter depends on FltMgr"
    );
    let binary = install.value("ServiceBinary");
    assert!(
        binary.eq_ignore_ascii_case(&format!("%{binary_dirid}%\\{}", image_name())),
        "[{}] ServiceBinary = {binary}, expected %{binary_dirid}%\\{}",
        install.name,
        image_name()
    );
    assert!(!install.value("DisplayName").is_empty());
    assert!(!install.value("Description").is_empty());
    install
}

/// The instance registry values of one `AddReg` section.
struct Instances {
    supported_features: u32,
    default_instance: String,
    altitude: String,
    flags: u32,
}

/// Reads the `HKR` lines of an `AddReg` section, expecting the values under `prefix`
/// (`"Parameters\\"` for builds 25952+, `""` downlevel).
fn instances(section: &Section, prefix: &str) -> Instances {
    let mut supported_features = None;
    let mut default_instance = None;
    let mut per_instance: BTreeMap<String, (Option<String>, Option<u32>)> = BTreeMap::new();
    let features_key = prefix.trim_end_matches('\\');
    let instances_key = format!("{prefix}Instances");
    for line in section.plain() {
        assert!(
            line.field(0).eq_ignore_ascii_case("HKR"),
            "line {}: only HKR lines expected in [{}]",
            line.lineno,
            section.name
        );
        let (subkey, name, kind, value) =
            (line.field(1), line.field(2), line.field(3), line.field(4));
        let kind = parse_u32(kind);
        if subkey.eq_ignore_ascii_case(features_key) && name == "SupportedFeatures" {
            assert_eq!(kind, REG_DWORD, "SupportedFeatures is a DWORD");
            supported_features = Some(parse_u32(value));
        } else if subkey.eq_ignore_ascii_case(&instances_key) && name == "DefaultInstance" {
            assert_eq!(kind, REG_SZ, "DefaultInstance is a string");
            default_instance = Some(value.to_owned());
        } else if let Some(instance) = subkey.get(instances_key.len() + 1..).filter(|_| {
            subkey.len() > instances_key.len()
                && subkey[..instances_key.len()].eq_ignore_ascii_case(&instances_key)
                && subkey.as_bytes()[instances_key.len()] == b'\\'
        }) {
            let entry = per_instance.entry(instance.to_owned()).or_default();
            match name {
                "Altitude" => {
                    assert_eq!(kind, REG_SZ, "Altitude is a string");
                    entry.0 = Some(value.to_owned());
                }
                "Flags" => {
                    assert_eq!(kind, REG_DWORD, "Flags is a DWORD");
                    entry.1 = Some(parse_u32(value));
                }
                other => panic!("line {}: unexpected instance value {other}", line.lineno),
            }
        } else {
            panic!(
                "line {}: unexpected registry value {subkey}\\{name} in [{}] (expected under {prefix:?})",
                line.lineno, section.name
            );
        }
    }
    let default_instance =
        default_instance.unwrap_or_else(|| panic!("[{}] sets no DefaultInstance", section.name));
    let (altitude, flags) = per_instance
        .remove(&default_instance)
        .unwrap_or_else(|| panic!("DefaultInstance {default_instance:?} has no values"));
    Instances {
        supported_features: supported_features
            .unwrap_or_else(|| panic!("[{}] sets no SupportedFeatures", section.name)),
        default_instance,
        altitude: altitude.expect("instance Altitude"),
        flags: flags.expect("instance Flags"),
    }
}

/// An altitude is a decimal string (digits, optionally a fraction); returns its integer part.
fn altitude_integer(altitude: &str) -> u32 {
    let (int, frac) = altitude.split_once('.').unwrap_or((altitude, ""));
    assert!(
        !int.is_empty()
            && int.chars().all(|c| c.is_ascii_digit())
            && frac.chars().all(|c| c.is_ascii_digit()),
        "altitude {altitude:?} is not a decimal number"
    );
    int.parse().expect("altitude integer part")
}

fn check_instances(inst: &Instances) {
    let (_, low, high, _, _) = GROUPS
        .iter()
        .copied()
        .find(|g| g.0 == CHOSEN_GROUP)
        .expect("chosen group in table");
    let alt = altitude_integer(&inst.altitude);
    assert!(
        (low..=high).contains(&alt),
        "altitude {} outside {CHOSEN_GROUP} ({low}-{high})",
        inst.altitude
    );
    assert!(
        inst.flags <= 3,
        "instance Flags {:#x}: only bits 0 and 1 exist",
        inst.flags
    );
    assert_eq!(
        inst.flags & 1,
        0,
        "automatic attachment must stay on (Flags bit 0 suppresses it)"
    );
    // SUPPORTED_FS_FEATURES_OFFLOAD_READ | _OFFLOAD_WRITE | _QUERY_OPEN | _BYPASS_IO.
    assert_eq!(
        inst.supported_features & !0xf,
        0,
        "unknown SupportedFeatures bits"
    );
    assert!(inst.default_instance.starts_with(service_name()));
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn reader_handles_quotes_tokens_comments_and_continuations() {
    let text = "[Version]\r\nA = \"x;y\" ; comment\r\n[S]\r\nHKR,\"P\\I\\\"%N%,\"Alt\",0,%V%\r\nk = a,\\\r\n    b\r\nf.sys\r\n[Strings]\r\nN = \"inst \"\"1\"\"\"\r\nV = \"42\"\r\n";
    let inf = Inf::parse(text).expect("parse");
    assert_eq!(inf.require("Version").value("A"), "x;y");
    let s = inf.require("S");
    let hkr = s.plain()[0];
    assert_eq!(hkr.fields, ["HKR", "P\\I\\inst \"1\"", "Alt", "0", "42"]);
    assert_eq!(s.entry("k").fields, ["a", "b"]);
    assert_eq!(s.plain()[1].field(0), "f.sys");
    assert!(inf.unresolved.is_empty());

    let bad = Inf::parse("[S]\r\nx = %Missing%, %13%\\a.sys\r\n").expect("parse");
    assert_eq!(bad.unresolved, [(2, "Missing".to_owned())]);
    assert_eq!(bad.require("S").entry("x").field(1), "%13%\\a.sys");

    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain("[V]\r\nk=v\r\n".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let inf = Inf::parse(&decode(&utf16).expect("utf-16")).expect("parse");
    assert_eq!(inf.require("V").value("k"), "v");
    assert!(
        decode(&[b'a', 0xe9]).is_err(),
        "Latin-1 without BOM must be refused"
    );
    assert!(Inf::parse("k = v\r\n").is_err(), "text before a section");
}

#[test]
fn encoding_is_ascii_with_crlf_or_utf16_with_bom() {
    let (bytes, inf) = load(&root().join("driver.inf"));
    if bytes.starts_with(&[0xff, 0xfe]) {
        return; // UTF-16 LE with BOM: decoded above.
    }
    assert!(bytes.is_ascii(), "driver.inf must be 7-bit ASCII");
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && bytes[i - 1] == b'\r', "LF without CR at byte {i}");
        }
    }
    assert!(inf.sections.len() > 10);
}

#[test]
fn version_section_is_a_minifilter_of_the_chosen_group() {
    let inf = driver_inf();
    let version = inf.require("Version");
    assert!(
        version
            .value("Signature")
            .eq_ignore_ascii_case("$Windows NT$")
    );
    let (_, _, _, class, guid) = GROUPS
        .iter()
        .copied()
        .find(|g| g.0 == CHOSEN_GROUP)
        .expect("group");
    assert_eq!(
        version.value("Class"),
        class,
        "Class must match {CHOSEN_GROUP}"
    );
    assert!(
        version.value("ClassGuid").eq_ignore_ascii_case(guid),
        "ClassGuid must match {CHOSEN_GROUP}"
    );
    let provider = version.value("Provider");
    assert!(
        !provider.is_empty() && !provider.to_ascii_lowercase().contains("microsoft"),
        "Provider {provider:?}: our own, not Microsoft"
    );
    let ver = version.entry("DriverVer");
    let date: Vec<&str> = ver.field(0).split('/').collect();
    assert!(
        date.len() == 3
            && date[0].len() == 2
            && date[1].len() == 2
            && date[2].len() == 4
            && date.iter().all(|p| p.chars().all(|c| c.is_ascii_digit())),
        "DriverVer date {:?} is not mm/dd/yyyy",
        ver.field(0)
    );
    let parts: Vec<&str> = ver.field(1).split('.').collect();
    assert!(
        parts.len() == 4 && parts.iter().all(|p| p.parse::<u16>().is_ok()),
        "DriverVer version {:?} is not w.x.y.z",
        ver.field(1)
    );
    assert_eq!(
        version.value("CatalogFile"),
        format!("{}.cat", service_name())
    );
    assert_eq!(version.value("PnpLockdown"), "1");
}

#[test]
fn primitive_driver_rules() {
    let inf = driver_inf();
    assert!(
        inf.section("Manufacturer").is_none(),
        "a primitive driver has no [Manufacturer]"
    );
    for undecorated in [
        "DefaultInstall",
        "DefaultInstall.Services",
        "DefaultUninstall",
    ] {
        assert!(
            inf.section(undecorated).is_none(),
            "[{undecorated}] must be architecture-decorated"
        );
    }
    // A primitive driver may have a [DefaultUninstall] only with LegacyUninstall=1, which
    // builds that support primitive drivers (1903 and later) ignore; every build this INF
    // installs on is one of them, so such a section could never run.
    let uninstall: Vec<&str> = inf
        .sections
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| n.to_ascii_lowercase().starts_with("defaultuninstall"))
        .collect();
    assert!(
        uninstall.is_empty(),
        "no build >= {MIN_BUILD} runs a DefaultUninstall section: {uninstall:?}"
    );
    assert!(
        inf.unresolved.is_empty(),
        "undefined %strkey% tokens: {:?}",
        inf.unresolved
    );
}

#[test]
fn modern_install_keeps_the_binary_in_the_driver_store() {
    let inf = driver_inf();
    let install = inf.require(MODERN);
    assert!(!install.value("OptionDesc").is_empty());
    let copy = referenced(&inf, install, "CopyFiles");
    assert_eq!(
        dirid(&inf, &copy.name),
        13,
        "builds 25952+: DIRID 13 (driver store)"
    );
    assert_eq!(files(copy), [image_name()]);
    let service = check_service(&inf, inf.require(&format!("{MODERN}.Services")), 13);
    let reg = referenced(&inf, service, "AddReg");
    check_instances(&instances(reg, "Parameters\\"));
}

#[test]
fn downlevel_install_copies_to_system32_drivers() {
    let inf = driver_inf();
    let install = inf.require(DOWNLEVEL);
    let copy = referenced(&inf, install, "CopyFiles");
    assert_eq!(
        dirid(&inf, &copy.name),
        12,
        "downlevel: DIRID 12 (system32\\drivers)"
    );
    assert_eq!(files(copy), [image_name()]);
    let service = check_service(&inf, inf.require(&format!("{DOWNLEVEL}.Services")), 12);
    let reg = referenced(&inf, service, "AddReg");
    check_instances(&instances(reg, ""));
}

/// A `TargetOSVersion` decoration: `NT<arch>[.major[.minor[.product[.suite[.build]]]]]`.
#[derive(Debug, PartialEq, Eq)]
struct TargetOs {
    arch: String,
    major: Option<u32>,
    minor: Option<u32>,
    product_type: Option<u32>,
    suite_mask: Option<u32>,
    build: Option<u32>,
}

/// Splits `DefaultInstall.<decoration>[.Services]` into the decoration (`None` when the
/// section is undecorated) and whether it is the `.Services` section.
fn install_decoration(section: &str) -> (Option<TargetOs>, bool) {
    let rest = &section["DefaultInstall".len()..];
    let (rest, services) = if rest.to_ascii_lowercase().ends_with(".services") {
        (&rest[..rest.len() - ".services".len()], true)
    } else {
        (rest, false)
    };
    let Some(decoration) = rest.strip_prefix('.') else {
        assert!(rest.is_empty(), "[{section}]: not a DefaultInstall section");
        return (None, services);
    };
    let mut parts = decoration.split('.');
    let platform = parts.next().unwrap_or_default();
    assert!(
        platform.len() > 2 && platform[..2].eq_ignore_ascii_case("nt"),
        "[{section}]: the decoration must start with NT<architecture>"
    );
    let mut number = || {
        parts.next().filter(|p| !p.is_empty()).map(|p| {
            p.parse::<u32>()
                .unwrap_or_else(|_| panic!("[{section}]: {p:?} is not a number"))
        })
    };
    let target = TargetOs {
        arch: platform[2..].to_owned(),
        major: number(),
        minor: number(),
        product_type: number(),
        suite_mask: number(),
        build: number(),
    };
    assert!(parts.next().is_none(), "[{section}]: too many fields");
    (Some(target), services)
}

/// The install sections (`DefaultInstall…` without `.Services`) with their decorations.
fn install_sections(inf: &Inf) -> Vec<(&str, Option<TargetOs>)> {
    inf.sections
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| n.to_ascii_lowercase().starts_with("defaultinstall"))
        .filter_map(|n| match install_decoration(n) {
            (target, false) => Some((n, target)),
            (_, true) => None,
        })
        .collect()
}

/// The install section Windows picks on `build` (10.0.`build`, amd64): among the sections
/// whose decoration the build satisfies, the one with the highest version; an undecorated
/// section applies to every build.
fn section_for_build<'a>(sections: &[(&'a str, Option<TargetOs>)], build: u32) -> Option<&'a str> {
    sections
        .iter()
        .filter(|(_, t)| {
            t.as_ref()
                .is_none_or(|t| t.build.is_none_or(|b| b <= build))
        })
        .max_by_key(|(_, t)| t.as_ref().map_or(0, |t| t.build.unwrap_or(0)))
        .map(|(name, _)| *name)
}

#[test]
fn decoration_reader_reads_target_os_versions() {
    assert_eq!(
        install_decoration("DefaultInstall.NTamd64.10.0...19041.Services"),
        (
            Some(TargetOs {
                arch: "amd64".into(),
                major: Some(10),
                minor: Some(0),
                product_type: None,
                suite_mask: None,
                build: Some(19041),
            }),
            true
        )
    );
    assert_eq!(install_decoration("DefaultInstall"), (None, false));
    let (target, services) = install_decoration("DefaultInstall.NT$ARCH$");
    assert_eq!(
        target.map(|t| (t.arch, t.build)),
        Some(("$ARCH$".into(), None))
    );
    assert!(!services);
    // The selection model: an undecorated section catches every build the others miss.
    let old = [
        (
            "DefaultInstall.NT$ARCH$",
            install_decoration("DefaultInstall.NT$ARCH$").0,
        ),
        (MODERN, install_decoration(MODERN).0),
    ];
    assert_eq!(
        section_for_build(&old, 18362),
        Some("DefaultInstall.NT$ARCH$")
    );
    assert_eq!(section_for_build(&old, 25952), Some(MODERN));
}

/// Windows 10 1903/1909 must find no install section (the driver needs ExAllocatePool2,
/// build 19041+), so that pnputil refuses the package there instead of installing a driver
/// that cannot load; 19041-25951 get the system32\drivers install, 25952+ the driver store.
#[test]
fn install_sections_need_build_19041_or_later() {
    let inf = driver_inf();
    let sections = install_sections(&inf);
    let mut builds = Vec::new();
    for (name, target) in &sections {
        let target = target
            .as_ref()
            .unwrap_or_else(|| panic!("[{name}] is undecorated: it would apply to every build"));
        assert!(
            target.arch.eq_ignore_ascii_case("$ARCH$"),
            "[{name}]: architecture {:?} (stampinf fills in $ARCH$)",
            target.arch
        );
        assert_eq!(
            (target.major, target.minor),
            (Some(10), Some(0)),
            "[{name}]: Windows 10.0"
        );
        assert_eq!(
            (target.product_type, target.suite_mask),
            (None, None),
            "[{name}]: no product type or suite mask (every edition)"
        );
        let build = target
            .build
            .unwrap_or_else(|| panic!("[{name}] has no build number: it would apply to 1903"));
        assert!(
            build >= MIN_BUILD,
            "[{name}] applies to builds below {MIN_BUILD}"
        );
        builds.push(build);
        let services = inf.require(&format!("{name}.Services"));
        assert!(
            !services.lines.is_empty(),
            "[{name}.Services] installs the service"
        );
    }
    builds.sort_unstable();
    assert_eq!(builds, [MIN_BUILD, DRIVER_STORE_BUILD]);
    // Every .Services section belongs to an install section.
    for section in &inf.sections {
        let lower = section.name.to_ascii_lowercase();
        if lower.starts_with("defaultinstall") && lower.ends_with(".services") {
            let install = &section.name[..section.name.len() - ".services".len()];
            assert!(
                inf.section(install).is_some(),
                "[{}] without [{install}]",
                section.name
            );
        }
    }
    for (build, expected) in [
        (17763, None), // 1809
        (18362, None), // 1903
        (18363, None), // 1909
        (19041, Some(DOWNLEVEL)),
        (19045, Some(DOWNLEVEL)),
        (22631, Some(DOWNLEVEL)),
        (25951, Some(DOWNLEVEL)),
        (25952, Some(MODERN)),
        (26100, Some(MODERN)),
    ] {
        assert_eq!(
            section_for_build(&sections, build),
            expected,
            "install section for build {build}"
        );
    }
}

/// The infverif flags of both Windows build flows (Makefile.toml) enforce /w (driver package
/// isolation) from the build of the driver-store section on, and no earlier: every install
/// section from that build on keeps the binary in the driver store (DIRID 13); the
/// system32\drivers section (DIRID 12), which /w would reject, serves only earlier builds.
#[test]
fn infverif_wbuild_is_the_driver_store_build() {
    let inf = driver_inf();
    let makefile = fs::read_to_string(root().join("Makefile.toml")).expect("Makefile.toml");
    let mut table = "";
    let mut flags = None;
    for line in makefile.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            table = line;
        } else if table == "[env]"
            && let Some(value) = line.strip_prefix("WDK_BUILD_ADDITIONAL_INFVERIF_FLAGS")
        {
            let value = value
                .trim_start()
                .strip_prefix('=')
                .expect("key = value")
                .trim();
            flags = Some(value.trim_matches('"').to_owned());
        }
    }
    let flags = flags.expect("Makefile.toml [env] sets WDK_BUILD_ADDITIONAL_INFVERIF_FLAGS");
    let wbuild: u32 = flags
        .strip_prefix("/wbuild 10.0.")
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("infverif flags {flags:?}: expected /wbuild 10.0.<build>"));
    assert_eq!(wbuild, DRIVER_STORE_BUILD);
    // cargo-wdk (task wdk-build) checks the same way: mode /w and the same /wbuild.
    assert!(
        makefile.contains(&format!(
            "cargo wdk build --target-platform windows --infverif-args \"{flags}\""
        )),
        "the wdk-build task must pass --target-platform windows --infverif-args \"{flags}\""
    );
    for (name, target) in install_sections(&inf) {
        let build = target.and_then(|t| t.build).unwrap_or(0);
        let copy = referenced(&inf, inf.require(name), "CopyFiles");
        let expected = if build >= wbuild { 13 } else { 12 };
        assert_eq!(
            dirid(&inf, &copy.name),
            expected,
            "[{name}] (build {build}; /w enforced from {wbuild})"
        );
    }
}

#[test]
fn both_installs_agree_on_altitude_and_instance() {
    let inf = driver_inf();
    let modern = check_service(&inf, inf.require(&format!("{MODERN}.Services")), 13);
    let downlevel = check_service(&inf, inf.require(&format!("{DOWNLEVEL}.Services")), 12);
    let a = instances(referenced(&inf, modern, "AddReg"), "Parameters\\");
    let b = instances(referenced(&inf, downlevel, "AddReg"), "");
    assert_eq!(a.altitude, b.altitude);
    assert_eq!(a.default_instance, b.default_instance);
    assert_eq!(a.flags, b.flags);
    assert_eq!(a.supported_features, b.supported_features);
}

#[test]
fn source_disks_and_destination_dirs_are_consistent() {
    let inf = driver_inf();
    let names = inf.require("SourceDisksNames");
    let disk = names.lines.first().expect("a source disk");
    assert_eq!(disk.key.as_deref(), Some("1"));
    let sources = inf.require("SourceDisksFiles");
    let listed: Vec<(String, String)> = sources
        .lines
        .iter()
        .map(|l| {
            (
                l.key.clone().unwrap_or_default().to_ascii_lowercase(),
                l.field(0).to_owned(),
            )
        })
        .collect();
    assert_eq!(listed, [(image_name(), "1".to_owned())]);
    for line in &inf.require("DestinationDirs").lines {
        let key = line
            .key
            .as_deref()
            .expect("DestinationDirs lines are key = dirid");
        if key.eq_ignore_ascii_case("DefaultDestDir") {
            continue;
        }
        let section = inf
            .section(key)
            .unwrap_or_else(|| panic!("DestinationDirs names a missing section [{key}]"));
        for file in files(section) {
            assert!(
                listed.iter().any(|(f, _)| *f == file),
                "{file} is not in [SourceDisksFiles]"
            );
        }
    }
}

#[test]
fn names_agree_with_the_driver_source() {
    let inf = driver_inf();
    assert_eq!(image_name(), "portfilter.sys");
    assert_eq!(inf.string("ServiceName"), Some(service_name()));
    assert!(
        inf.string("DefaultInstance")
            .is_some_and(|s| s.starts_with(service_name()))
    );
    // The port the driver creates is the one the INF's description names.
    let description = inf
        .string("ServiceDescription")
        .expect("ServiceDescription");
    assert!(
        description.contains(portfilter::PORT_NAME),
        "ServiceDescription {description:?} does not name the port {}",
        portfilter::PORT_NAME
    );
    // The Windows scripts install and load what the INF declares.
    for script in [
        "scripts/windows/install.ps1",
        "scripts/windows/smoke-test.ps1",
    ] {
        let path = root().join(script);
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{script}: {e}"));
        assert!(
            text.contains(&format!("'{}'", service_name())),
            "{script} does not use the service name '{}'",
            service_name()
        );
        assert!(
            text.contains(&format!("{}.inf", service_name())),
            "{script} does not name {}.inf",
            service_name()
        );
    }
}

#[test]
fn stamped_copy_in_out_matches_driver_inf() {
    let out = std::env::var_os("PORTFILTER_OUT").map_or_else(|| root().join("out"), PathBuf::from);
    let stamped = out.join(format!("{}.inf", service_name()));
    if !stamped.exists() {
        let required = std::env::var("PORTFILTER_REQUIRE_SYS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "PORTFILTER_REQUIRE_SYS=1 but {} is missing: run scripts/build-sys.sh",
            stamped.display()
        );
        eprintln!("*** SKIP: {} not built ***", stamped.display());
        return;
    }
    let source = driver_inf();
    let (_, out) = load(&stamped);
    assert_eq!(source.sections.len(), out.sections.len());
    for (a, b) in source.sections.iter().zip(&out.sections) {
        assert!(!b.name.contains('$') || b.name.eq_ignore_ascii_case("Strings"));
        assert!(
            a.name
                .replace("$ARCH$", "amd64")
                .eq_ignore_ascii_case(&b.name),
            "[{}] became [{}]",
            a.name,
            b.name
        );
        if a.name.eq_ignore_ascii_case("Version") {
            continue; // DriverVer is stamped.
        }
        let render = |s: &Section| -> Vec<(Option<String>, Vec<String>)> {
            s.lines
                .iter()
                .map(|l| (l.key.clone(), l.fields.clone()))
                .collect()
        };
        assert_eq!(render(a), render(b), "[{}] differs", a.name);
    }
}
