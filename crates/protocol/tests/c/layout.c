/*
 * Checks include/portfilter_protocol.h from the C side (driven by tests/c_header.rs):
 *   layout  - print every size, offset and constant as key=value lines
 *   event   - read a CreateEvent message (from Rust) on stdin, print its fields
 *   batch   - read an EventBatch on stdin, walk its records, print them
 *   stats   - read a Stats answer on stdin, print the named counters
 *   verdict - write a FILTER_REPLY_HEADER + pf_verdict (for Rust to decode) to stdout
 *   config  - write a SetConfig message with two filters to stdout
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portfilter_protocol.h"

#define SIZE(T) printf("size.%s=%zu\n", #T, sizeof(T))
#define OFF(T, f) printf("off.%s.%s=%zu\n", #T, #f, offsetof(T, f))
#define CONST(c) printf("const.%s=%lld\n", #c, (long long)(c))

static void layout(void) {
    SIZE(pf_header);
    OFF(pf_header, magic);
    OFF(pf_header, version);
    OFF(pf_header, kind);
    OFF(pf_header, reserved);

    SIZE(pf_filter_message_header);
    OFF(pf_filter_message_header, reply_length);
    OFF(pf_filter_message_header, message_id);
    SIZE(pf_filter_reply_header);
    OFF(pf_filter_reply_header, status);
    OFF(pf_filter_reply_header, message_id);

    SIZE(pf_event_record);
    OFF(pf_event_record, record_len);
    OFF(pf_event_record, name_len);
    OFF(pf_event_record, flags);
    OFF(pf_event_record, sequence);
    OFF(pf_event_record, timestamp);
    OFF(pf_event_record, process_id);
    OFF(pf_event_record, thread_id);
    OFF(pf_event_record, desired_access);
    OFF(pf_event_record, create_options);
    OFF(pf_event_record, create_disposition);
    OFF(pf_event_record, reserved0);
    OFF(pf_event_record, share_access);
    OFF(pf_event_record, file_attributes);
    OFF(pf_event_record, volume_name_len);
    OFF(pf_event_record, reserved1);
    OFF(pf_event_record, reserved2);
    SIZE(pf_create_event);
    OFF(pf_create_event, record);

    SIZE(pf_batch_header);
    OFF(pf_batch_header, count);
    OFF(pf_batch_header, dropped_before);

    SIZE(pf_verdict);
    OFF(pf_verdict, sequence);
    OFF(pf_verdict, verdict);
    OFF(pf_verdict, status);
    SIZE(pf_verdict_reply);
    OFF(pf_verdict_reply, verdict);

    SIZE(pf_connect_context);
    OFF(pf_connect_context, role);
    OFF(pf_connect_context, flags);

    SIZE(pf_hello_reply);
    OFF(pf_hello_reply, driver_version);
    OFF(pf_hello_reply, protocol_version);
    OFF(pf_hello_reply, reserved0);
    OFF(pf_hello_reply, role);
    OFF(pf_hello_reply, connection_id);
    OFF(pf_hello_reply, observer_delivery);
    OFF(pf_hello_reply, reserved1);
    OFF(pf_hello_reply, reserved2);

    SIZE(pf_stats);
    OFF(pf_stats, events_seen);
    OFF(pf_stats, events_reported);
    OFF(pf_stats, events_skipped);
    OFF(pf_stats, self_excluded);
    OFF(pf_stats, requests_sent);
    OFF(pf_stats, replies_allow);
    OFF(pf_stats, replies_deny);
    OFF(pf_stats, reply_timeouts);
    OFF(pf_stats, reply_bad);
    OFF(pf_stats, default_verdicts);
    OFF(pf_stats, notify_sent);
    OFF(pf_stats, notify_failed);
    OFF(pf_stats, queue_enqueued);
    OFF(pf_stats, queue_dropped);
    OFF(pf_stats, batches_sent);
    OFF(pf_stats, queue_depth);
    OFF(pf_stats, queue_high_water);
    OFF(pf_stats, connected_clients);
    OFF(pf_stats, deciders);
    OFF(pf_stats, observers);
    OFF(pf_stats, unsafe_context);
    OFF(pf_stats, reserved);

    SIZE(pf_config);
    OFF(pf_config, observer_delivery);
    OFF(pf_config, reply_timeout_ms);
    OFF(pf_config, notify_timeout_ms);
    OFF(pf_config, default_verdict);
    OFF(pf_config, skip_flags);
    OFF(pf_config, queue_capacity);
    OFF(pf_config, batch_max_events);
    OFF(pf_config, filter_count);
    SIZE(pf_filter_entry);
    OFF(pf_filter_entry, kind);
    OFF(pf_filter_entry, len);

    CONST(PF_MAGIC);
    CONST(PF_PROTOCOL_VERSION);
    CONST(PF_HEADER_BYTES);
    CONST(PF_KIND_CREATE_EVENT);
    CONST(PF_KIND_EVENT_BATCH);
    CONST(PF_KIND_VERDICT);
    CONST(PF_KIND_CONNECT);
    CONST(PF_KIND_HELLO);
    CONST(PF_KIND_GET_STATS);
    CONST(PF_KIND_GET_CONFIG);
    CONST(PF_KIND_SET_CONFIG);
    CONST(PF_FILTER_MESSAGE_HEADER_BYTES);
    CONST(PF_FILTER_REPLY_HEADER_BYTES);
    CONST(PF_EVENT_FIXED_BYTES);
    CONST(PF_MAX_NAME_BYTES);
    CONST(PF_MAX_NAME_UNITS);
    CONST(PF_MAX_EVENT_BYTES);
    CONST(PF_CREATE_EVENT_MIN_BYTES);
    CONST(PF_CREATE_EVENT_MAX_BYTES);
    CONST(PF_EVENT_FLAG_DIRECTORY);
    CONST(PF_EVENT_FLAG_KERNEL_MODE);
    CONST(PF_EVENT_FLAG_NAME_OPENED);
    CONST(PF_EVENT_FLAG_NAME_TRUNCATED);
    CONST(PF_EVENT_FLAG_NAME_UNAVAILABLE);
    CONST(PF_EVENT_FLAG_REQUEST);
    CONST(PF_EVENT_FLAG_UNSAFE_CONTEXT);
    CONST(PF_EVENT_FLAGS_ALL);
    CONST(PF_CREATE_OPTIONS_MASK);
    CONST(PF_MAX_CREATE_DISPOSITION);
    CONST(PF_BATCH_HEADER_BYTES);
    CONST(PF_MAX_BATCH_BYTES);
    CONST(PF_MAX_BATCH_EVENTS);
    CONST(PF_MAX_MESSAGE_BYTES);
    CONST(PF_GET_MESSAGE_BUFFER_BYTES);
    CONST(PF_VERDICT_BYTES);
    CONST(PF_VERDICT_REPLY_BYTES);
    CONST(PF_VERDICT_ALLOW);
    CONST(PF_VERDICT_DENY);
    CONST(PF_CONNECT_CONTEXT_BYTES);
    CONST(PF_ROLE_DECIDER);
    CONST(PF_ROLE_OBSERVER);
    CONST(PF_ROLE_CONTROL);
    CONST(PF_COMMAND_REQUEST_BYTES);
    CONST(PF_HELLO_REPLY_BYTES);
    CONST(PF_STATS_COUNTERS);
    CONST(PF_STATS_RESERVED_SLOTS);
    CONST(PF_STATS_BYTES);
    CONST(PF_CONFIG_FIXED_BYTES);
    CONST(PF_CONFIG_MAX_BYTES);
    CONST(PF_FILTER_ENTRY_HEADER_BYTES);
    CONST(PF_MAX_FILTERS);
    CONST(PF_MAX_FILTER_BYTES);
    CONST(PF_MAX_FILTER_TOTAL_BYTES);
    CONST(PF_DELIVERY_NOTIFY);
    CONST(PF_DELIVERY_QUEUED);
    CONST(PF_SKIP_DIRECTORIES);
    CONST(PF_SKIP_KERNEL_MODE);
    CONST(PF_REPLY_TIMEOUT_MS_MIN);
    CONST(PF_REPLY_TIMEOUT_MS_MAX);
    CONST(PF_NOTIFY_TIMEOUT_MS_MAX);
    CONST(PF_QUEUE_CAPACITY_MIN);
    CONST(PF_QUEUE_CAPACITY_MAX);
    CONST(PF_BATCH_MAX_EVENTS_MIN);
    CONST(PF_BATCH_MAX_EVENTS_MAX);
    CONST(PF_FILTER_INCLUDE_PREFIX);
    CONST(PF_FILTER_EXCLUDE_PREFIX);
    CONST(PF_FILTER_INCLUDE_EXTENSION);
    CONST(PF_FILTER_EXCLUDE_EXTENSION);
    CONST(PF_STATUS_NOT_SUPPORTED);
    CONST(PF_STATUS_INFO_LENGTH_MISMATCH);
    CONST(PF_STATUS_BUFFER_TOO_SMALL);
    CONST(PF_STATUS_DATATYPE_MISALIGNMENT_ERROR);
    CONST(PF_STATUS_ACCESS_VIOLATION);
    CONST(PF_STATUS_INVALID_PARAMETER);
    CONST(PF_STATUS_REVISION_MISMATCH);
    CONST(PF_STATUS_SHARING_VIOLATION);
    CONST(PF_STATUS_ACCESS_DENIED);
}

/* 8-aligned input buffer, as a FilterGetMessage buffer would be. */
static uint64_t input[PF_GET_MESSAGE_BUFFER_BYTES / 8];

static size_t read_stdin(void) {
    return fread(input, 1, sizeof input, stdin);
}

static void print_record(const char *prefix, const pf_event_record *rec) {
    const uint16_t *name = PF_EVENT_NAME(rec);
    unsigned i;
    printf("%s.record_len=%u\n", prefix, (unsigned)rec->record_len);
    printf("%s.record_bytes_macro=%u\n", prefix, (unsigned)PF_RECORD_BYTES(rec->name_len));
    printf("%s.name_len=%u\n", prefix, (unsigned)rec->name_len);
    printf("%s.flags=%" PRIu32 "\n", prefix, rec->flags);
    printf("%s.sequence=%" PRIu64 "\n", prefix, rec->sequence);
    printf("%s.timestamp=%" PRIu64 "\n", prefix, rec->timestamp);
    printf("%s.process_id=%" PRIu32 "\n", prefix, rec->process_id);
    printf("%s.thread_id=%" PRIu32 "\n", prefix, rec->thread_id);
    printf("%s.desired_access=%" PRIu32 "\n", prefix, rec->desired_access);
    printf("%s.create_options=%" PRIu32 "\n", prefix, rec->create_options);
    printf("%s.create_disposition=%u\n", prefix, (unsigned)rec->create_disposition);
    printf("%s.share_access=%u\n", prefix, (unsigned)rec->share_access);
    printf("%s.file_attributes=%" PRIu32 "\n", prefix, rec->file_attributes);
    printf("%s.volume_name_len=%u\n", prefix, (unsigned)rec->volume_name_len);
    printf("%s.name=", prefix);
    for (i = 0; i < rec->name_len / 2u; i++) {
        printf("%s%04x", i ? " " : "", (unsigned)name[i]);
    }
    printf("\n");
}

static int event(void) {
    const pf_create_event *msg = (const pf_create_event *)input;
    if (read_stdin() < sizeof *msg) return 2;
    printf("header.magic=%u\nheader.version=%u\nheader.kind=%u\n", (unsigned)msg->header.magic,
           (unsigned)msg->header.version, (unsigned)msg->header.kind);
    print_record("event", &msg->record);
    return 0;
}

static int batch(void) {
    const pf_batch_header *hdr = (const pf_batch_header *)input;
    const uint8_t *p;
    uint32_t i;
    if (read_stdin() < sizeof *hdr) return 2;
    printf("batch.kind=%u\nbatch.count=%" PRIu32 "\nbatch.dropped_before=%" PRIu32 "\n",
           (unsigned)hdr->header.kind, hdr->count, hdr->dropped_before);
    p = (const uint8_t *)(hdr + 1);
    for (i = 0; i < hdr->count; i++) {
        char prefix[32];
        const pf_event_record *rec = (const pf_event_record *)p;
        snprintf(prefix, sizeof prefix, "batch.%" PRIu32, i);
        print_record(prefix, rec);
        p += rec->record_len;
    }
    printf("batch.total=%zu\n", (size_t)(p - (const uint8_t *)input));
    return 0;
}

static int stats(void) {
    const pf_stats *s = (const pf_stats *)input;
    if (read_stdin() < sizeof *s) return 2;
#define COUNTER(f) printf("stats.%s=%" PRIu64 "\n", #f, s->f)
    COUNTER(events_seen);
    COUNTER(events_reported);
    COUNTER(events_skipped);
    COUNTER(self_excluded);
    COUNTER(requests_sent);
    COUNTER(replies_allow);
    COUNTER(replies_deny);
    COUNTER(reply_timeouts);
    COUNTER(reply_bad);
    COUNTER(default_verdicts);
    COUNTER(notify_sent);
    COUNTER(notify_failed);
    COUNTER(queue_enqueued);
    COUNTER(queue_dropped);
    COUNTER(batches_sent);
    COUNTER(queue_depth);
    COUNTER(queue_high_water);
    COUNTER(connected_clients);
    COUNTER(deciders);
    COUNTER(observers);
    COUNTER(unsafe_context);
#undef COUNTER
    return 0;
}

static void fill_header(pf_header *h, uint16_t kind) {
    h->magic = PF_MAGIC;
    h->version = PF_PROTOCOL_VERSION;
    h->kind = kind;
    h->reserved = 0;
}

static int verdict(void) {
    pf_verdict_reply r;
    memset(&r, 0, sizeof r);
    r.reply.status = 0;
    r.reply.message_id = 7;
    fill_header(&r.verdict.header, PF_KIND_VERDICT);
    r.verdict.sequence = 0x1122334455667788ull;
    r.verdict.verdict = PF_VERDICT_DENY;
    r.verdict.status = PF_STATUS_SHARING_VIOLATION;
    return fwrite(&r, 1, PF_VERDICT_REPLY_BYTES, stdout) == PF_VERDICT_REPLY_BYTES ? 0 : 1;
}

static size_t put_filter(uint8_t *at, uint16_t kind, const char *ascii) {
    pf_filter_entry e;
    size_t i, n = strlen(ascii);
    e.kind = kind;
    e.len = (uint16_t)(2 * n);
    memcpy(at, &e, sizeof e);
    for (i = 0; i < n; i++) {
        uint16_t unit = (uint16_t)(unsigned char)ascii[i];
        memcpy(at + sizeof e + 2 * i, &unit, 2);
    }
    return PF_FILTER_ENTRY_BYTES(e.len);
}

static int config(void) {
    static uint64_t out[PF_CONFIG_MAX_BYTES / 8 + 1];
    pf_config *c = (pf_config *)out;
    uint8_t *p = (uint8_t *)(c + 1);
    fill_header(&c->header, PF_KIND_SET_CONFIG);
    c->observer_delivery = PF_DELIVERY_NOTIFY;
    c->reply_timeout_ms = 1500;
    c->notify_timeout_ms = 20;
    c->default_verdict = PF_VERDICT_DENY;
    c->skip_flags = PF_SKIP_DIRECTORIES;
    c->queue_capacity = 64;
    c->batch_max_events = 8;
    c->filter_count = 2;
    p += put_filter(p, PF_FILTER_INCLUDE_PREFIX, "\\Users\\");
    p += put_filter(p, PF_FILTER_EXCLUDE_EXTENSION, "tmp");
    {
        size_t len = (size_t)(p - (uint8_t *)out);
        return fwrite(out, 1, len, stdout) == len ? 0 : 1;
    }
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "layout";
    if (strcmp(mode, "layout") == 0) {
        layout();
        return 0;
    }
    if (strcmp(mode, "event") == 0) return event();
    if (strcmp(mode, "batch") == 0) return batch();
    if (strcmp(mode, "stats") == 0) return stats();
    if (strcmp(mode, "verdict") == 0) return verdict();
    if (strcmp(mode, "config") == 0) return config();
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
