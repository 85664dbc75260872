//! fltlib-shim (being written).
