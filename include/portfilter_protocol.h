/*
 * portfilter_protocol.h - the portfilter wire protocol for C and C++ clients.
 *
 * Mirrors the Rust crate portfilter-protocol (crates/protocol); docs/protocol.md is the
 * full contract. crates/protocol/tests/c_header.rs compiles a program against this
 * header and checks every size, offset and constant below against the Rust constants.
 *
 * All fields are little-endian. Every struct is laid out with natural alignment and no
 * implicit padding (no #pragma pack needed); the static assertions below hold on any
 * C11 or C++11 compiler for x86-64 and ARM64 (Windows and Unix ABIs alike).
 * Variable parts (names, filter patterns) follow the fixed structs as UTF-16LE bytes.
 */
#ifndef PORTFILTER_PROTOCOL_H
#define PORTFILTER_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "portfilter_protocol.h: the structs map the little-endian wire format directly"
#endif

#ifdef __cplusplus
#define PF_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
extern "C" {
#else
#define PF_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* ---- common header (every message starts with it) ---------------------------------- */

#define PF_MAGIC 0x4650u            /* bytes 'P','F' */
#define PF_PROTOCOL_VERSION 2u
#define PF_HEADER_BYTES 8u

/* pf_header.kind */
#define PF_KIND_CREATE_EVENT 1u /* kernel -> user: pf_create_event */
#define PF_KIND_EVENT_BATCH 2u  /* kernel -> user: pf_batch_header + records */
#define PF_KIND_VERDICT 3u      /* user -> kernel reply: pf_verdict */
#define PF_KIND_CONNECT 4u      /* connection context: pf_connect_context */
#define PF_KIND_HELLO 16u       /* command: in pf_header, out pf_hello_reply */
#define PF_KIND_GET_STATS 17u   /* command: in pf_header, out pf_stats */
#define PF_KIND_GET_CONFIG 18u  /* command: in pf_header, out pf_config + entries */
#define PF_KIND_SET_CONFIG 19u  /* command: in/out pf_config + entries */

typedef struct pf_header {
    uint16_t magic;    /* PF_MAGIC */
    uint16_t version;  /* PF_PROTOCOL_VERSION */
    uint16_t kind;     /* PF_KIND_* */
    uint16_t reserved; /* 0 */
} pf_header;

/* ---- Filter Manager framing (mirrors FILTER_MESSAGE_HEADER / FILTER_REPLY_HEADER) ---- */

#define PF_FILTER_MESSAGE_HEADER_BYTES 16u
#define PF_FILTER_REPLY_HEADER_BYTES 16u

typedef struct pf_filter_message_header {
    uint32_t reply_length;
    uint32_t padding;
    uint64_t message_id;
} pf_filter_message_header;

typedef struct pf_filter_reply_header {
    int32_t status;
    uint32_t padding;
    uint64_t message_id;
} pf_filter_reply_header;

/* ---- create event ------------------------------------------------------------------- */

#define PF_EVENT_FIXED_BYTES 56u
#define PF_MAX_NAME_BYTES 4096u
#define PF_MAX_NAME_UNITS 2048u
#define PF_MAX_EVENT_BYTES 4152u         /* fixed part + longest name */
#define PF_CREATE_EVENT_MIN_BYTES 64u    /* header + fixed part */
#define PF_CREATE_EVENT_MAX_BYTES 4160u  /* header + largest record */

#define PF_EVENT_FLAG_DIRECTORY 0x01u
#define PF_EVENT_FLAG_KERNEL_MODE 0x02u
#define PF_EVENT_FLAG_NAME_OPENED 0x04u
#define PF_EVENT_FLAG_NAME_TRUNCATED 0x08u
#define PF_EVENT_FLAG_NAME_UNAVAILABLE 0x10u
#define PF_EVENT_FLAG_REQUEST 0x20u /* a pf_verdict is expected */
/* the requestor may hold file-system resources (top-level IRP set or all APCs disabled):
   the driver waited for no client, the default verdict applied at once (version 2) */
#define PF_EVENT_FLAG_UNSAFE_CONTEXT 0x40u
#define PF_EVENT_FLAGS_ALL 0x7Fu
#define PF_CREATE_OPTIONS_MASK 0x00FFFFFFu
#define PF_MAX_CREATE_DISPOSITION 5u

/* Fixed part of an event record; name_len bytes of UTF-16LE follow, then zero padding up
 * to record_len (a multiple of 8). */
typedef struct pf_event_record {
    uint16_t record_len;
    uint16_t name_len;
    uint32_t flags;
    uint64_t sequence;
    uint64_t timestamp; /* 100 ns units since 1601-01-01 UTC */
    uint32_t process_id;
    uint32_t thread_id;
    uint32_t desired_access;
    uint32_t create_options; /* low 24 bits */
    uint8_t create_disposition;
    uint8_t reserved0;
    uint16_t share_access;
    uint32_t file_attributes;
    uint16_t volume_name_len; /* bytes of the name that are the volume */
    uint16_t reserved1;
    uint32_t reserved2;
} pf_event_record;

/* The name of a record (UTF-16LE, 2-byte aligned when the record is 8-aligned). */
#define PF_EVENT_NAME(rec) ((const uint16_t *)((const uint8_t *)(rec) + PF_EVENT_FIXED_BYTES))

typedef struct pf_create_event {
    pf_header header; /* kind PF_KIND_CREATE_EVENT */
    pf_event_record record;
} pf_create_event;

/* ---- event batch -------------------------------------------------------------------- */

#define PF_BATCH_HEADER_BYTES 16u
#define PF_MAX_BATCH_BYTES 65536u
#define PF_MAX_BATCH_EVENTS 1024u

/* count records follow, each record_len bytes. */
typedef struct pf_batch_header {
    pf_header header; /* kind PF_KIND_EVENT_BATCH */
    uint32_t count;
    uint32_t dropped_before; /* events lost (queue full) since the previous batch */
} pf_batch_header;

/* Largest kernel -> user payload, and a FilterGetMessage buffer that takes any message. */
#define PF_MAX_MESSAGE_BYTES 65536u
#define PF_GET_MESSAGE_BUFFER_BYTES 65552u

/* ---- verdict (reply to a request event) --------------------------------------------- */

#define PF_VERDICT_BYTES 24u
#define PF_VERDICT_REPLY_BYTES 40u /* FILTER_REPLY_HEADER + pf_verdict */
#define PF_VERDICT_ALLOW 0u
#define PF_VERDICT_DENY 1u

typedef struct pf_verdict {
    pf_header header; /* kind PF_KIND_VERDICT */
    uint64_t sequence; /* the event's */
    uint32_t verdict;  /* PF_VERDICT_ALLOW / PF_VERDICT_DENY */
    int32_t status;    /* deny: 0 (STATUS_ACCESS_DENIED) or an error NTSTATUS; allow: 0 */
} pf_verdict;

/* What a decider passes to FilterReplyMessage (exactly PF_VERDICT_REPLY_BYTES). */
typedef struct pf_verdict_reply {
    pf_filter_reply_header reply;
    pf_verdict verdict;
} pf_verdict_reply;

/* ---- connection context --------------------------------------------------------------- */

#define PF_CONNECT_CONTEXT_BYTES 16u
#define PF_ROLE_DECIDER 1u
#define PF_ROLE_OBSERVER 2u
#define PF_ROLE_CONTROL 3u  /* commands only, no events */

typedef struct pf_connect_context {
    pf_header header; /* kind PF_KIND_CONNECT */
    uint32_t role;    /* PF_ROLE_* */
    uint32_t flags;   /* 0 */
} pf_connect_context;

/* ---- commands ------------------------------------------------------------------------- */

/*
 * FilterSendMessage(port, in, in_size, out, out_size, &bytes_returned), buffers 8-aligned.
 * Size `out` for the largest answer of the command - PF_HELLO_REPLY_BYTES (Hello),
 * PF_STATS_BYTES (GetStats), PF_CONFIG_MAX_BYTES (GetConfig, SetConfig) - and read
 * bytes_returned only when the call succeeded. On failure, including 0x8007007A
 * (PF_STATUS_BUFFER_TOO_SMALL), whether bytes_returned carries the needed size is
 * disputed (the documentation says it is set on success; one fltmgr delivers it): do not
 * depend on it, and do not retry with it.
 */
#define PF_COMMAND_REQUEST_BYTES 8u /* Hello, GetStats, GetConfig: header only */
#define PF_HELLO_REPLY_BYTES 40u

typedef struct pf_hello_reply {
    pf_header header;        /* kind PF_KIND_HELLO */
    uint32_t driver_version; /* major << 24 | minor << 16 | patch */
    uint16_t protocol_version;
    uint16_t reserved0;
    uint32_t role; /* the caller's connection role */
    uint32_t connection_id;
    uint32_t observer_delivery; /* PF_DELIVERY_* */
    uint32_t reserved1;
    uint64_t reserved2;
} pf_hello_reply;

#define PF_STATS_COUNTERS 21u
#define PF_STATS_RESERVED_SLOTS 11u
#define PF_STATS_BYTES 264u

typedef struct pf_stats {
    pf_header header; /* kind PF_KIND_GET_STATS */
    uint64_t events_seen;
    uint64_t events_reported;
    uint64_t events_skipped;
    uint64_t self_excluded;
    uint64_t requests_sent;
    uint64_t replies_allow;
    uint64_t replies_deny;
    uint64_t reply_timeouts;
    uint64_t reply_bad;
    uint64_t default_verdicts;
    uint64_t notify_sent;
    uint64_t notify_failed;
    uint64_t queue_enqueued;
    uint64_t queue_dropped;
    uint64_t batches_sent;
    uint64_t queue_depth;
    uint64_t queue_high_water;
    uint64_t connected_clients;
    uint64_t deciders;
    uint64_t observers;
    uint64_t unsafe_context; /* creates never held: top-level IRP or APCs disabled */
    uint64_t reserved[11];
} pf_stats;

/* ---- configuration -------------------------------------------------------------------- */

#define PF_CONFIG_FIXED_BYTES 40u
#define PF_CONFIG_MAX_BYTES 2248u
#define PF_FILTER_ENTRY_HEADER_BYTES 4u
#define PF_MAX_FILTERS 16u
#define PF_MAX_FILTER_BYTES 512u
#define PF_MAX_FILTER_TOTAL_BYTES 2048u

#define PF_DELIVERY_NOTIFY 1u
#define PF_DELIVERY_QUEUED 2u
#define PF_SKIP_DIRECTORIES 0x1u
#define PF_SKIP_KERNEL_MODE 0x2u
#define PF_REPLY_TIMEOUT_MS_MIN 1u
#define PF_REPLY_TIMEOUT_MS_MAX 60000u
#define PF_NOTIFY_TIMEOUT_MS_MAX 5000u
#define PF_QUEUE_CAPACITY_MIN 1u
#define PF_QUEUE_CAPACITY_MAX 16384u
#define PF_BATCH_MAX_EVENTS_MIN 1u
#define PF_BATCH_MAX_EVENTS_MAX 1024u

#define PF_FILTER_INCLUDE_PREFIX 1u
#define PF_FILTER_EXCLUDE_PREFIX 2u
#define PF_FILTER_INCLUDE_EXTENSION 3u
#define PF_FILTER_EXCLUDE_EXTENSION 4u

/* filter_count entries follow. */
typedef struct pf_config {
    pf_header header; /* kind PF_KIND_GET_CONFIG or PF_KIND_SET_CONFIG */
    uint32_t observer_delivery;
    uint32_t reply_timeout_ms;
    uint32_t notify_timeout_ms;
    uint32_t default_verdict;
    uint32_t skip_flags;
    uint32_t queue_capacity;
    uint32_t batch_max_events;
    uint32_t filter_count;
} pf_config;

/* len bytes of UTF-16LE pattern follow, then zero padding to a multiple of 8 (entry size
 * PF_FILTER_ENTRY_BYTES(len)). */
typedef struct pf_filter_entry {
    uint16_t kind; /* PF_FILTER_* */
    uint16_t len;
} pf_filter_entry;

#define PF_ROUND_UP8(n) (((n) + 7u) & ~7u)
#define PF_RECORD_BYTES(name_len) PF_ROUND_UP8(PF_EVENT_FIXED_BYTES + (name_len))
#define PF_FILTER_ENTRY_BYTES(len) PF_ROUND_UP8(PF_FILTER_ENTRY_HEADER_BYTES + (len))

/* ---- NTSTATUS contract (docs/protocol.md) -------------------------------------------- */

#define PF_STATUS_NOT_SUPPORTED ((int32_t)0xC00000BBu)          /* unknown command */
#define PF_STATUS_INFO_LENGTH_MISMATCH ((int32_t)0xC0000004u)   /* wrong input size */
#define PF_STATUS_BUFFER_TOO_SMALL ((int32_t)0xC0000023u)       /* output too small (see above) */
#define PF_STATUS_DATATYPE_MISALIGNMENT_ERROR ((int32_t)0xC00002C5u) /* not 8-aligned */
#define PF_STATUS_ACCESS_VIOLATION ((int32_t)0xC0000005u)       /* bad pointer */
#define PF_STATUS_INVALID_PARAMETER ((int32_t)0xC000000Du)      /* bad field */
#define PF_STATUS_REVISION_MISMATCH ((int32_t)0xC0000059u)      /* protocol version */
#define PF_STATUS_SHARING_VIOLATION ((int32_t)0xC0000043u)      /* second decider */
#define PF_STATUS_ACCESS_DENIED ((int32_t)0xC0000022u)          /* default deny status */

/* ---- layout assertions -------------------------------------------------------------- */

PF_STATIC_ASSERT(sizeof(pf_header) == 8, "pf_header");
PF_STATIC_ASSERT(offsetof(pf_header, kind) == 4, "pf_header.kind");
PF_STATIC_ASSERT(offsetof(pf_header, reserved) == 6, "pf_header.reserved");
PF_STATIC_ASSERT(sizeof(pf_filter_message_header) == 16, "pf_filter_message_header");
PF_STATIC_ASSERT(offsetof(pf_filter_message_header, message_id) == 8, "message_id");
PF_STATIC_ASSERT(sizeof(pf_filter_reply_header) == 16, "pf_filter_reply_header");
PF_STATIC_ASSERT(offsetof(pf_filter_reply_header, message_id) == 8, "message_id");
PF_STATIC_ASSERT(sizeof(pf_event_record) == PF_EVENT_FIXED_BYTES, "pf_event_record");
PF_STATIC_ASSERT(offsetof(pf_event_record, sequence) == 8, "sequence");
PF_STATIC_ASSERT(offsetof(pf_event_record, timestamp) == 16, "timestamp");
PF_STATIC_ASSERT(offsetof(pf_event_record, process_id) == 24, "process_id");
PF_STATIC_ASSERT(offsetof(pf_event_record, create_options) == 36, "create_options");
PF_STATIC_ASSERT(offsetof(pf_event_record, create_disposition) == 40, "create_disposition");
PF_STATIC_ASSERT(offsetof(pf_event_record, share_access) == 42, "share_access");
PF_STATIC_ASSERT(offsetof(pf_event_record, file_attributes) == 44, "file_attributes");
PF_STATIC_ASSERT(offsetof(pf_event_record, volume_name_len) == 48, "volume_name_len");
PF_STATIC_ASSERT(offsetof(pf_event_record, reserved2) == 52, "reserved2");
PF_STATIC_ASSERT(sizeof(pf_create_event) == PF_CREATE_EVENT_MIN_BYTES, "pf_create_event");
PF_STATIC_ASSERT(sizeof(pf_batch_header) == PF_BATCH_HEADER_BYTES, "pf_batch_header");
PF_STATIC_ASSERT(offsetof(pf_batch_header, dropped_before) == 12, "dropped_before");
PF_STATIC_ASSERT(sizeof(pf_verdict) == PF_VERDICT_BYTES, "pf_verdict");
PF_STATIC_ASSERT(offsetof(pf_verdict, verdict) == 16, "verdict");
PF_STATIC_ASSERT(offsetof(pf_verdict, status) == 20, "status");
PF_STATIC_ASSERT(sizeof(pf_verdict_reply) == PF_VERDICT_REPLY_BYTES, "pf_verdict_reply");
PF_STATIC_ASSERT(sizeof(pf_connect_context) == PF_CONNECT_CONTEXT_BYTES, "pf_connect_context");
PF_STATIC_ASSERT(sizeof(pf_hello_reply) == PF_HELLO_REPLY_BYTES, "pf_hello_reply");
PF_STATIC_ASSERT(offsetof(pf_hello_reply, role) == 16, "role");
PF_STATIC_ASSERT(offsetof(pf_hello_reply, reserved2) == 32, "reserved2");
PF_STATIC_ASSERT(sizeof(pf_stats) == PF_STATS_BYTES, "pf_stats");
PF_STATIC_ASSERT(offsetof(pf_stats, observers) == 160, "observers");
PF_STATIC_ASSERT(offsetof(pf_stats, unsafe_context) == 168, "unsafe_context");
PF_STATIC_ASSERT(sizeof(pf_config) == PF_CONFIG_FIXED_BYTES, "pf_config");
PF_STATIC_ASSERT(offsetof(pf_config, filter_count) == 36, "filter_count");
PF_STATIC_ASSERT(sizeof(pf_filter_entry) == PF_FILTER_ENTRY_HEADER_BYTES, "pf_filter_entry");
PF_STATIC_ASSERT(PF_CONFIG_MAX_BYTES ==
                     PF_CONFIG_FIXED_BYTES + PF_MAX_FILTER_TOTAL_BYTES + PF_MAX_FILTERS * 10u,
                 "config bound");
PF_STATIC_ASSERT(PF_MAX_EVENT_BYTES == PF_EVENT_FIXED_BYTES + PF_MAX_NAME_BYTES, "event bound");

#ifdef __cplusplus
}
#endif

#endif /* PORTFILTER_PROTOCOL_H */
