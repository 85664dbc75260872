//! User-mode client library for portfilter.
//!
//! * [`hresult`]: the fltlib `HRESULT` codes and what they mean.
//! * [`rules`]: guard rules (path globs, extensions, process ids; first match wins).
#![warn(missing_docs)]

pub mod hresult;
pub mod rules;

pub use hresult::Hresult;
