//! fltsim (being written).
