//! portfilter wire protocol (being written).
#![no_std]
