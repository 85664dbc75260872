//! NTSTATUS values printed with their names.

use portfilter_protocol::status::status_name;

/// Names of statuses outside portfilter's contract table that a create can end with.
const EXTRA: [(u32, &str); 6] = [
    (0xC000_003A, "STATUS_OBJECT_PATH_NOT_FOUND"),
    (0xC000_0033, "STATUS_OBJECT_NAME_INVALID"),
    (0xC000_0001, "STATUS_UNSUCCESSFUL"),
    (0xC000_0008, "STATUS_INVALID_HANDLE"),
    (0xC000_0035, "STATUS_OBJECT_NAME_COLLISION"),
    (0xC000_0043, "STATUS_SHARING_VIOLATION"),
];

/// The `ntstatus.h` name of `status`, if known.
#[must_use]
pub fn name(status: i32) -> Option<&'static str> {
    status_name(status).or_else(|| {
        EXTRA
            .iter()
            .find(|(v, _)| v.cast_signed() == status)
            .map(|(_, n)| *n)
    })
}

/// `0xC0000022 STATUS_ACCESS_DENIED` (or just the number).
#[must_use]
pub fn describe(status: i32) -> String {
    match name(status) {
        Some(n) => format!("{:#010X} {n}", status.cast_unsigned()),
        None => format!("{:#010X}", status.cast_unsigned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_statuses() {
        assert_eq!(describe(0), "0x00000000 STATUS_SUCCESS");
        assert_eq!(
            describe(0xC000_0022_u32.cast_signed()),
            "0xC0000022 STATUS_ACCESS_DENIED"
        );
        assert_eq!(
            describe(0xC000_003A_u32.cast_signed()),
            "0xC000003A STATUS_OBJECT_PATH_NOT_FOUND"
        );
        assert_eq!(describe(0x1234), "0x00001234");
    }
}
