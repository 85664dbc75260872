//! Building a `CreateEvent` message (protocol header + one record) in a pool buffer of
//! exactly the message's size.

use crate::pool::PoolBytes;
use portfilter_protocol::event::{offset, truncate_name};
use portfilter_protocol::{
    EVENT_FLAG_PENDED, EVENT_FLAG_REQUEST, EventFields, HEADER_BYTES, encode_event, record_bytes,
};

/// Size of the `CreateEvent` message for a name of `name` units (after truncation).
pub(crate) fn message_bytes(name: &[u16]) -> usize {
    let (kept, _) = truncate_name(name);
    HEADER_BYTES + record_bytes(kept.len() * 2)
}

/// An encoded `CreateEvent` message in non-paged pool.
pub(crate) struct EventMessage {
    bytes: PoolBytes,
}

impl EventMessage {
    /// Allocates and encodes. `None` when the pool is exhausted or the fields are invalid
    /// (the driver only builds valid fields; the encoder checks anyway).
    pub(crate) fn build(fields: &EventFields, name: &[u16]) -> Option<Self> {
        let mut bytes = PoolBytes::zeroed(message_bytes(name))?;
        match encode_event(fields, name, &mut bytes) {
            Ok(len) if len == bytes.len() => Some(Self { bytes }),
            _ => None,
        }
    }

    /// The whole message (header + record).
    #[cfg(test)]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The message's size.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The whole message, mutable (`FltSendMessage` takes a non-const pointer).
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// A kernel pointer to the message, for `FltSendMessage` (which does not write it).
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.bytes.as_mut_ptr()
    }

    /// The record (without the message header), as batches carry it.
    pub(crate) fn record(&self) -> &[u8] {
        self.bytes.get(HEADER_BYTES..).unwrap_or(&[])
    }

    fn flags_at() -> usize {
        HEADER_BYTES + offset::FLAGS
    }

    /// Sets or clears [`EVENT_FLAG_REQUEST`] (request-reply copy vs notify copy).
    pub(crate) fn set_request(&mut self, request: bool) {
        let at = Self::flags_at();
        if let Some(field) = self.bytes.get_mut(at..at + 4) {
            let mut flags = [0u8; 4];
            flags.copy_from_slice(field);
            let mut value = u32::from_le_bytes(flags);
            if request {
                value |= EVENT_FLAG_REQUEST;
            } else {
                value &= !EVENT_FLAG_REQUEST;
            }
            field.copy_from_slice(&value.to_le_bytes());
        }
    }

    /// A copy flagged [`EVENT_FLAG_PENDED`] (the asynchronous decider's request);
    /// `None` when the pool is exhausted.
    pub(crate) fn pended_copy(&self) -> Option<Self> {
        let mut bytes = PoolBytes::zeroed(self.bytes.len())?;
        bytes.copy_from_slice(&self.bytes);
        let at = Self::flags_at();
        let field = bytes.get_mut(at..at + 4)?;
        let mut flags = [0u8; 4];
        flags.copy_from_slice(field);
        let value = (u32::from_le_bytes(flags) & !EVENT_FLAG_REQUEST) | EVENT_FLAG_PENDED;
        field.copy_from_slice(&value.to_le_bytes());
        Some(Self { bytes })
    }

    /// Gives up the buffer (to the queue).
    pub(crate) fn into_bytes(self) -> PoolBytes {
        self.bytes
    }

    /// Takes back a buffer built by [`EventMessage::build`] (from the queue).
    pub(crate) fn from_bytes(bytes: PoolBytes) -> Self {
        Self { bytes }
    }
}

/// Reads a little-endian u32 at `at` (0 when out of range).
pub(crate) fn read_u32(buf: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    if let Some(src) = buf.get(at..at + 4) {
        raw.copy_from_slice(src);
    }
    u32::from_le_bytes(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portfilter_protocol::decode_event;

    // PoolBytes needs the pool: these tests run under fltsim's allocator.
    #[test]
    fn built_event_decodes_and_request_flag_toggles() {
        let _machine = fltsim::Machine::boot();
        let name: std::vec::Vec<u16> = r"\Device\HarddiskVolume3\a\b.txt".encode_utf16().collect();
        let fields = EventFields {
            sequence: 7,
            process_id: 1234,
            volume_name_len: 46,
            ..EventFields::default()
        };
        let mut event = EventMessage::build(&fields, &name).expect("pool");
        assert_eq!(event.len(), message_bytes(&name));
        assert_eq!(read_u32(event.record(), offset::PROCESS_ID), 1234);
        event.set_request(true);
        let view = decode_event(event.as_bytes()).expect("decodes");
        assert!(view.is_request());
        assert_eq!(view.fields.sequence, 7);
        event.set_request(false);
        assert!(
            !decode_event(event.as_bytes())
                .expect("decodes")
                .is_request()
        );
    }

    /// The asynchronous decider's copy carries the event's own flags, plus PENDED, and is
    /// never a request (it is answered by `VerdictBatch`, not by a reply).
    #[test]
    fn a_pended_copy_keeps_the_events_flags_and_is_flagged_pended_not_request() {
        use portfilter_protocol::{EVENT_FLAG_DIRECTORY, EVENT_FLAG_NAME_OPENED};
        let _machine = fltsim::Machine::boot();
        let name: std::vec::Vec<u16> = r"\Device\HarddiskVolume3\d".encode_utf16().collect();
        let own = EVENT_FLAG_DIRECTORY | EVENT_FLAG_NAME_OPENED;
        let fields = EventFields {
            sequence: 9,
            flags: own,
            volume_name_len: 46,
            ..EventFields::default()
        };
        let mut event = EventMessage::build(&fields, &name).expect("pool");
        for request in [false, true] {
            event.set_request(request);
            let copy = event.pended_copy().expect("pool");
            let view = decode_event(copy.as_bytes()).expect("decodes");
            assert_eq!(
                view.fields.flags,
                own | EVENT_FLAG_PENDED,
                "request {request}"
            );
            assert_eq!(view.fields.sequence, 9);
        }
    }
}
