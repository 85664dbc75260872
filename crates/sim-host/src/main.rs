//! portfilter-sim (being written).
fn main() {}
