//! portctl (being written).
fn main() {}
