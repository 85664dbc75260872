/*
 * client.c - a minimal portfilter client in C, to show that any fltlib client works.
 *
 * It connects to the driver's port (as an observer, or as the decider with --decide),
 * sends the Hello and GetStats commands, then receives N file-create events and prints
 * them: single events (notify mode, or requests when deciding) and queued batches. As
 * the decider it answers each request with the verdict given on the command line
 * ("none" receives requests and never answers: the driver applies its default verdict
 * after its reply timeout, or at once if this process dies).
 *
 * Build on Linux against the simulator (see Makefile / README.md):
 *   cc -std=c11 -I../../include client.c -L<dir of libfltlib_shim.so> -lfltlib_shim -o client
 * On Windows the same file builds with <fltuser.h> and FltLib.lib (see fltlib_decl.h).
 *
 * Usage: client [-n EVENTS] [--decide allow|deny|none] [--port NAME]
 * Exit status: 0 done, 1 a call failed, 2 usage, 3 connect failed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fltlib_decl.h"
#include "portfilter_protocol.h"

enum decide { OBSERVE, ALLOW, DENY, SILENT };

/* 8-aligned buffers: the driver refuses misaligned command buffers. */
static uint64_t g_message[(PF_GET_MESSAGE_BUFFER_BYTES + 7) / 8];

static int usage(void)
{
    fprintf(stderr, "usage: client [-n EVENTS] [--decide allow|deny|none] [--port NAME]\n");
    return 2;
}

/* Prints a UTF-16LE name as UTF-8 (BMP characters; others as '?'). */
static void print_name(const uint16_t *name, unsigned bytes)
{
    for (unsigned i = 0; i < bytes / 2; i++) {
        uint16_t c = name[i];
        if (c < 0x80) {
            putchar((int)c);
        } else if (c < 0x800) {
            putchar(0xC0 | (c >> 6));
            putchar(0x80 | (c & 0x3F));
        } else if (c >= 0xD800 && c <= 0xDFFF) {
            putchar('?');
        } else {
            putchar(0xE0 | (c >> 12));
            putchar(0x80 | ((c >> 6) & 0x3F));
            putchar(0x80 | (c & 0x3F));
        }
    }
}

static void print_record(const pf_event_record *r, unsigned available)
{
    unsigned name_len = r->name_len;
    if (PF_EVENT_FIXED_BYTES + name_len > available) {
        name_len = 0; /* malformed: never read past the message */
    }
    printf("event seq=%" PRIu64 " pid=%" PRIu32 " tid=%" PRIu32 " access=0x%08" PRIx32
           " disposition=%u flags=0x%02" PRIx32 " name=",
           r->sequence, r->process_id, r->thread_id, r->desired_access,
           (unsigned)r->create_disposition, r->flags);
    print_name(PF_EVENT_NAME(r), name_len);
    putchar('\n');
}

/* A header-only command. `out` holds the command's largest answer (PF_HELLO_REPLY_BYTES,
   PF_STATS_BYTES): *returned is meaningful only when the call succeeds (whether a needed
   size arrives with an error is disputed; see portfilter_protocol.h). */
static HRESULT command(HANDLE port, uint16_t kind, void *out, DWORD out_size, DWORD *returned)
{
    uint64_t in_words[1];
    *returned = 0;
    pf_header *in = (pf_header *)in_words;
    in->magic = PF_MAGIC;
    in->version = PF_PROTOCOL_VERSION;
    in->kind = kind;
    in->reserved = 0;
    return FilterSendMessage(port, in, PF_COMMAND_REQUEST_BYTES, out, out_size, returned);
}

static HRESULT reply(HANDLE port, uint64_t message_id, uint64_t sequence, uint32_t verdict)
{
    pf_verdict_reply r;
    memset(&r, 0, sizeof r);
    r.reply.status = 0;
    r.reply.message_id = message_id;
    r.verdict.header.magic = PF_MAGIC;
    r.verdict.header.version = PF_PROTOCOL_VERSION;
    r.verdict.header.kind = PF_KIND_VERDICT;
    r.verdict.sequence = sequence;
    r.verdict.verdict = verdict;
    r.verdict.status = 0;
    /* Exactly header + verdict: the kernel's ReplyLength is the verdict alone. */
    return FilterReplyMessage(port, (PFILTER_REPLY_HEADER)&r, PF_VERDICT_REPLY_BYTES);
}

int main(int argc, char **argv)
{
    long wanted = 10;
    enum decide decide = OBSERVE;
    const char *port_name = "\\PortFilterPort";

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            wanted = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--decide") == 0 && i + 1 < argc) {
            const char *d = argv[++i];
            decide = strcmp(d, "allow") == 0  ? ALLOW
                     : strcmp(d, "deny") == 0 ? DENY
                     : strcmp(d, "none") == 0 ? SILENT
                                              : OBSERVE;
            if (decide == OBSERVE) {
                return usage();
            }
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port_name = argv[++i];
        } else {
            return usage();
        }
    }
#ifdef _WIN32
    /* The Windows C runtime has no line buffering (_IOLBF means full buffering there) and
     * rejects a size below 2 through its invalid-parameter handler: go unbuffered. */
    setvbuf(stdout, NULL, _IONBF, 0);
#else
    setvbuf(stdout, NULL, _IOLBF, 0);
#endif

    /* The port name as UTF-16 (ASCII names). */
    WCHAR name[256];
    size_t n = strlen(port_name);
    if (n >= sizeof name / sizeof name[0]) {
        return usage();
    }
    for (size_t i = 0; i <= n; i++) {
        name[i] = (WCHAR)(unsigned char)port_name[i];
    }

    pf_connect_context ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.header.magic = PF_MAGIC;
    ctx.header.version = PF_PROTOCOL_VERSION;
    ctx.header.kind = PF_KIND_CONNECT;
    ctx.role = decide == OBSERVE ? PF_ROLE_OBSERVER : PF_ROLE_DECIDER;

    /* A synchronous handle: this program makes one call at a time and passes no OVERLAPPED.
     * Without the flag the handle is an overlapped one, and a call with a NULL OVERLAPPED
     * on it is outside DeviceIoControl's contract. */
    HANDLE port = INVALID_HANDLE_VALUE;
    HRESULT hr = FilterConnectCommunicationPort(name, FLT_PORT_FLAG_SYNC_HANDLE, &ctx, sizeof ctx,
                                                NULL, &port);
    if (FAILED(hr)) {
        printf("connect failed: HRESULT 0x%08" PRIX32 "\n", (uint32_t)hr);
        return 3;
    }
    printf("connected to %s as %s\n", port_name, decide == OBSERVE ? "observer" : "decider");

    uint64_t hello_words[(PF_HELLO_REPLY_BYTES + 7) / 8];
    DWORD got = 0;
    hr = command(port, PF_KIND_HELLO, hello_words, sizeof hello_words, &got);
    if (FAILED(hr) || got != PF_HELLO_REPLY_BYTES) {
        printf("hello failed: HRESULT 0x%08" PRIX32 "\n", (uint32_t)hr);
        CloseHandle(port);
        return 1;
    }
    const pf_hello_reply *hello = (const pf_hello_reply *)hello_words;
    printf("hello: driver %u.%u.%u protocol %u connection %" PRIu32 " role %" PRIu32
           " observer delivery %" PRIu32 "\n",
           (unsigned)(hello->driver_version >> 24), (unsigned)((hello->driver_version >> 16) & 0xFF),
           (unsigned)(hello->driver_version & 0xFFFF), (unsigned)hello->protocol_version,
           hello->connection_id, hello->role, hello->observer_delivery);

    uint64_t stats_words[(PF_STATS_BYTES + 7) / 8];
    hr = command(port, PF_KIND_GET_STATS, stats_words, sizeof stats_words, &got);
    if (FAILED(hr) || got != PF_STATS_BYTES) {
        printf("stats failed: HRESULT 0x%08" PRIX32 "\n", (uint32_t)hr);
        CloseHandle(port);
        return 1;
    }
    const pf_stats *stats = (const pf_stats *)stats_words;
    printf("stats: events_seen=%" PRIu64 " connected_clients=%" PRIu64 " deciders=%" PRIu64
           " observers=%" PRIu64 "\n",
           stats->events_seen, stats->connected_clients, stats->deciders, stats->observers);
    printf("ready\n");

    long seen = 0;
    while (seen < wanted) {
        PFILTER_MESSAGE_HEADER msg = (PFILTER_MESSAGE_HEADER)g_message;
        hr = FilterGetMessage(port, msg, sizeof g_message, NULL);
        if (FAILED(hr)) {
            printf("get failed: HRESULT 0x%08" PRIX32 "\n", (uint32_t)hr);
            CloseHandle(port);
            return 1;
        }
        const uint8_t *payload = (const uint8_t *)g_message + PF_FILTER_MESSAGE_HEADER_BYTES;
        const pf_header *h = (const pf_header *)payload;
        unsigned room = (unsigned)(sizeof g_message - PF_FILTER_MESSAGE_HEADER_BYTES);
        if (h->magic != PF_MAGIC) {
            printf("unexpected message (magic 0x%04x)\n", h->magic);
            continue;
        }
        if (h->kind == PF_KIND_CREATE_EVENT) {
            const pf_create_event *e = (const pf_create_event *)payload;
            print_record(&e->record, room - PF_HEADER_BYTES);
            seen++;
            if ((e->record.flags & PF_EVENT_FLAG_REQUEST) && decide != SILENT) {
                uint32_t v = decide == DENY ? PF_VERDICT_DENY : PF_VERDICT_ALLOW;
                hr = reply(port, msg->MessageId, e->record.sequence, v);
                printf("verdict %s for seq=%" PRIu64 ": HRESULT 0x%08" PRIX32 "\n",
                       v == PF_VERDICT_DENY ? "deny" : "allow", e->record.sequence,
                       (uint32_t)hr);
            }
        } else if (h->kind == PF_KIND_EVENT_BATCH) {
            const pf_batch_header *b = (const pf_batch_header *)payload;
            printf("batch: %" PRIu32 " event(s), %" PRIu32 " dropped before\n", b->count,
                   b->dropped_before);
            unsigned off = PF_BATCH_HEADER_BYTES;
            for (uint32_t i = 0; i < b->count && off + PF_EVENT_FIXED_BYTES <= room; i++) {
                const pf_event_record *r = (const pf_event_record *)(payload + off);
                if (r->record_len < PF_EVENT_FIXED_BYTES || off + r->record_len > room) {
                    break;
                }
                print_record(r, r->record_len);
                seen++;
                off += r->record_len;
            }
        } else {
            printf("unexpected message kind %u\n", h->kind);
        }
    }
    printf("done: %ld event(s)\n", seen);
    CloseHandle(port);
    return 0;
}
