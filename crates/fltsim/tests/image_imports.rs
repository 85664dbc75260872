//! The image loader's import table keeps up with the bindings: every routine
//! `crates/bindings/src/functions.rs` declares in an `ntoskrnl.exe` or `fltmgr.sys` link
//! block is one a loaded image may import, under that module. A routine added to the
//! bindings (and defined by fltsim) without its line in `src/image/imports.rs` fails here,
//! before any image that imports it is refused.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

use std::collections::BTreeSet;

/// (module, routine) for each `pub fn` of the bindings under a `link(name = …)` block.
fn declared() -> BTreeSet<(String, String)> {
    let text = include_str!("../../bindings/src/functions.rs");
    let mut module: Option<String> = None;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("link(name = \"") {
            module = rest.split('"').next().map(str::to_owned);
        } else if line == "}" {
            module = None;
        } else if let Some(rest) = line.strip_prefix("pub fn ") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if let Some(m) = &module {
                out.insert((m.clone(), name));
            }
        }
    }
    out
}

#[test]
fn every_routine_the_bindings_import_is_provided_to_images_under_its_module() {
    let declared = declared();
    assert!(
        declared.contains(&("fltmgr.sys".to_owned(), "FltSendMessage".to_owned())),
        "the scan of functions.rs found {declared:?}"
    );
    assert!(declared.contains(&("ntoskrnl.exe".to_owned(), "ExAllocatePool2".to_owned())));
    let provided: BTreeSet<(String, String)> = fltsim::image::provided_imports()
        .into_iter()
        .map(|(m, n)| (m.to_ascii_lowercase(), n.to_owned()))
        .collect();
    let missing: Vec<_> = declared.difference(&provided).collect();
    assert!(
        missing.is_empty(),
        "add one line each to crates/fltsim/src/image/imports.rs: {missing:?}"
    );
}
