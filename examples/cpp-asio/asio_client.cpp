// asio_client.cpp - a portfilter client on an I/O completion port, with standalone asio.
//
// Windows only. FilterGetMessage takes an OVERLAPPED and completes through the I/O
// completion port its handle is bound to, so asio can run message reception:
//
//   * the port handle (connected without FLT_PORT_FLAG_SYNC_HANDLE, so it is an overlapped
//     handle) is owned by an asio::windows::stream_handle, which binds it to the
//     io_context's completion port;
//   * N FilterGetMessage calls are outstanding at any time, each with its own message
//     buffer and an asio::windows::overlapped_ptr whose handler runs when that get
//     completes;
//   * a handler prints the event(s) and, when the driver asked for a verdict (request-reply,
//     as the decider), answers with FilterReplyMessage before it posts the next get;
//   * Ctrl-C (SIGINT) or Ctrl-Break (SIGBREAK) cancels every outstanding get with CancelIoEx
//     and the program ends once all of them have completed; so does a disconnect (the
//     driver unloaded or closed the port), which completes the gets with an error.
//
// The protocol comes from include/portfilter_protocol.h only. The protocol version is
// checked first with a Hello command on a second, synchronous connection (role "control",
// FLT_PORT_FLAG_SYNC_HANDLE): the overlapped handle is used for nothing but FilterGetMessage
// and FilterReplyMessage, as in Microsoft's scanner minifilter sample.
//
// Build: see Makefile (x86_64-w64-mingw32-g++ with Debian's libasio-dev) or README.md (MSVC).
// Usage: asio_client [--gets N] [--threads T] [--decide allow|deny] [-n EVENTS] [--port NAME]
//   --gets N      outstanding FilterGetMessage calls (default 4)
//   --threads T   threads running the io_context (default 2)
//   --decide V    connect as the decider and answer every request with V (default: observer)
//   -n EVENTS     stop after this many events (default 0: until Ctrl-C or disconnect)
// Exit status: 0 done, 1 a call failed or the port disconnected, 2 usage, 3 connect failed.

#ifndef _WIN32
#error "asio_client.cpp is a Windows program (FilterGetMessage on an I/O completion port)"
#endif

#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0A00 // Windows 10: the driver needs build 19041 or later anyway
#endif
#define ASIO_STANDALONE
#define ASIO_NO_DEPRECATED

#include <asio.hpp>
#include <windows.h>
#include <fltuser.h>

#include <atomic>
#include <cstdarg>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "portfilter_protocol.h"

#ifndef FLT_PORT_FLAG_SYNC_HANDLE // Windows 8.1+; mingw-w64's fltuser.h lacks it
#define FLT_PORT_FLAG_SYNC_HANDLE 0x00000001
#endif

#if defined(__GNUC__)
#define PF_PRINTF_FORMAT(fmt, first) __attribute__((format(printf, fmt, first)))
#else
#define PF_PRINTF_FORMAT(fmt, first)
#endif

static_assert(sizeof(FILTER_MESSAGE_HEADER) == PF_FILTER_MESSAGE_HEADER_BYTES,
              "FILTER_MESSAGE_HEADER");
static_assert(sizeof(FILTER_REPLY_HEADER) == PF_FILTER_REPLY_HEADER_BYTES, "FILTER_REPLY_HEADER");

namespace {

// A late reply (the driver stopped waiting: reply timeout, or the creating thread gave up)
// is answered with this HRESULT. It is not an error of the client.
constexpr HRESULT kNoWaiterForReply = static_cast<HRESULT>(0x801F0020);

struct Options {
    unsigned gets = 4;
    unsigned threads = 2;
    bool decider = false;
    std::uint32_t verdict = PF_VERDICT_ALLOW;
    std::uint64_t events = 0; // 0: no limit
    std::wstring port = L"\\PortFilterPort";
};

// The Win32 error inside an HRESULT (FACILITY_WIN32), else the HRESULT itself: what asio's
// system category formats.
asio::error_code error_from_hresult(HRESULT hr)
{
    const DWORD code = HRESULT_FACILITY(hr) == FACILITY_WIN32 ? HRESULT_CODE(hr)
                                                              : static_cast<DWORD>(hr);
    return asio::error_code(static_cast<int>(code), asio::system_category());
}

std::string utf8(const std::uint16_t* units, std::size_t count)
{
    if (count == 0) {
        return {};
    }
    const auto* wide = reinterpret_cast<const wchar_t*>(units);
    const int n = WideCharToMultiByte(CP_UTF8, 0, wide, static_cast<int>(count), nullptr, 0,
                                      nullptr, nullptr);
    std::string out(static_cast<std::size_t>(n > 0 ? n : 0), '\0');
    if (n > 0) {
        WideCharToMultiByte(CP_UTF8, 0, wide, static_cast<int>(count), &out[0], n, nullptr,
                            nullptr);
    }
    return out;
}

// Hello on a synchronous control connection: the driver is there and speaks our version.
bool hello(const Options& options)
{
    pf_connect_context ctx{};
    ctx.header.magic = PF_MAGIC;
    ctx.header.version = PF_PROTOCOL_VERSION;
    ctx.header.kind = PF_KIND_CONNECT;
    ctx.role = PF_ROLE_CONTROL;
    HANDLE control = INVALID_HANDLE_VALUE;
    HRESULT hr = FilterConnectCommunicationPort(options.port.c_str(), FLT_PORT_FLAG_SYNC_HANDLE,
                                                &ctx, sizeof ctx, nullptr, &control);
    if (FAILED(hr)) {
        std::printf("connect (control) failed: HRESULT 0x%08lX\n", static_cast<unsigned long>(hr));
        return false;
    }
    alignas(8) pf_header request{}; // the driver refuses command buffers that are not 8-aligned
    request.magic = PF_MAGIC;
    request.version = PF_PROTOCOL_VERSION;
    request.kind = PF_KIND_HELLO;
    alignas(8) pf_hello_reply reply{};
    DWORD got = 0;
    hr = FilterSendMessage(control, &request, PF_COMMAND_REQUEST_BYTES, &reply, sizeof reply, &got);
    CloseHandle(control);
    if (FAILED(hr) || got != PF_HELLO_REPLY_BYTES || reply.header.magic != PF_MAGIC ||
        reply.protocol_version != PF_PROTOCOL_VERSION) {
        std::printf("hello failed: HRESULT 0x%08lX (%lu bytes, protocol %u)\n",
                    static_cast<unsigned long>(hr), static_cast<unsigned long>(got),
                    static_cast<unsigned>(reply.protocol_version));
        return false;
    }
    std::printf("hello: protocol %u, driver %lu.%lu.%lu\n",
                static_cast<unsigned>(reply.protocol_version),
                static_cast<unsigned long>(reply.driver_version >> 24),
                static_cast<unsigned long>((reply.driver_version >> 16) & 0xFF),
                static_cast<unsigned long>(reply.driver_version & 0xFFFF));
    return true;
}

class Client {
public:
    Client(asio::io_context& io, HANDLE port, const Options& options)
        : io_(io), strand_(asio::make_strand(io)), port_(io, port), signals_(strand_),
          options_(options)
    {
        for (unsigned i = 0; i < options_.gets; ++i) {
            slots_.push_back(std::make_unique<Slot>());
        }
    }

    void start()
    {
        signals_.add(SIGINT);
        signals_.add(SIGBREAK);
        signals_.async_wait([this](const asio::error_code& ec, int signal) {
            if (!ec) {
                say("signal %d: cancelling the outstanding gets\n", signal);
                stop_now();
            }
        });
        for (auto& slot : slots_) {
            get(*slot);
        }
    }

    // Closes the port; call after io_context::run() has returned on every thread (then no
    // get is outstanding and no buffer is in the kernel's hands).
    void close()
    {
        asio::error_code ignored;
        port_.close(ignored);
    }

    bool failed() const { return failed_.load(); }
    std::uint64_t events() const { return events_.load(); }
    std::uint64_t replies() const { return replies_.load(); }
    std::uint64_t late_replies() const { return late_replies_.load(); }

private:
    // One outstanding FilterGetMessage: its buffer belongs to the kernel from the call until
    // its completion handler runs.
    struct Slot {
        alignas(8) unsigned char buffer[PF_GET_MESSAGE_BUFFER_BYTES];
    };

    // printf under a lock (handlers run on several threads).
    void say(const char* format, ...) PF_PRINTF_FORMAT(2, 3)
    {
        std::lock_guard<std::mutex> lock(output_);
        va_list args;
        va_start(args, format);
        std::vprintf(format, args);
        va_end(args);
        std::fflush(stdout);
    }

    // Posts a FilterGetMessage for `slot`, unless stopping. Under issue_ so that a get is
    // either issued before stop_now()'s CancelIoEx (and cancelled by it) or not at all.
    void get(Slot& slot)
    {
        std::lock_guard<std::mutex> lock(issue_);
        if (stopping_) {
            return;
        }
        asio::windows::overlapped_ptr op(
            io_, [this, &slot](const asio::error_code& ec, std::size_t bytes) {
                on_message(slot, ec, bytes);
            });
        const HRESULT hr = FilterGetMessage(port_.native_handle(),
                                            reinterpret_cast<PFILTER_MESSAGE_HEADER>(slot.buffer),
                                            sizeof slot.buffer, op.get());
        if (hr == HRESULT_FROM_WIN32(ERROR_IO_PENDING) || SUCCEEDED(hr)) {
            // Started (or already done): the completion arrives through the completion port
            // either way, so the OVERLAPPED now belongs to the kernel and the io_context.
            op.release();
        } else {
            // Failed at once: no completion packet will come; complete it ourselves.
            op.complete(error_from_hresult(hr), 0);
        }
    }

    void on_message(Slot& slot, const asio::error_code& ec, std::size_t bytes)
    {
        if (ec == asio::error::operation_aborted) {
            return; // cancelled by stop_now(): this get is done
        }
        if (ec) {
            // ERROR_INVALID_HANDLE (0x80070006): the port was disconnected (driver unloaded
            // or port closed). Any other error is unexpected here. Either way: stop.
            say("get failed: %s (%d)\n", ec.message().c_str(), ec.value());
            failed_ = true;
            stop();
            return;
        }
        handle(slot, bytes);
        if (options_.events != 0 && events_.load() >= options_.events) {
            stop();
            return;
        }
        get(slot);
    }

    void handle(Slot& slot, std::size_t bytes)
    {
        if (bytes < PF_FILTER_MESSAGE_HEADER_BYTES + PF_HEADER_BYTES || bytes > sizeof slot.buffer) {
            say("short message (%lu bytes)\n", static_cast<unsigned long>(bytes));
            return;
        }
        const auto* message = reinterpret_cast<const FILTER_MESSAGE_HEADER*>(slot.buffer);
        const unsigned char* payload = slot.buffer + PF_FILTER_MESSAGE_HEADER_BYTES;
        const std::size_t room = bytes - PF_FILTER_MESSAGE_HEADER_BYTES;
        const auto* header = reinterpret_cast<const pf_header*>(payload);
        if (header->magic != PF_MAGIC || header->version != PF_PROTOCOL_VERSION) {
            say("unexpected message (magic 0x%04x, version %u)\n", header->magic,
                header->version);
            return;
        }
        if (header->kind == PF_KIND_CREATE_EVENT && room >= PF_CREATE_EVENT_MIN_BYTES) {
            const auto* event = reinterpret_cast<const pf_create_event*>(payload);
            print(event->record, room - PF_HEADER_BYTES);
            ++events_;
            if ((event->record.flags & PF_EVENT_FLAG_REQUEST) && options_.decider) {
                reply(message->MessageId, event->record.sequence);
            }
        } else if (header->kind == PF_KIND_EVENT_BATCH && room >= PF_BATCH_HEADER_BYTES) {
            const auto* batch = reinterpret_cast<const pf_batch_header*>(payload);
            say("batch: %lu event(s), %lu dropped before\n",
                static_cast<unsigned long>(batch->count),
                static_cast<unsigned long>(batch->dropped_before));
            std::size_t offset = PF_BATCH_HEADER_BYTES;
            for (std::uint32_t i = 0; i < batch->count && offset + PF_EVENT_FIXED_BYTES <= room;
                 ++i) {
                const auto* record = reinterpret_cast<const pf_event_record*>(payload + offset);
                if (record->record_len < PF_EVENT_FIXED_BYTES || offset + record->record_len > room) {
                    break; // malformed: never read past the message
                }
                print(*record, record->record_len);
                ++events_;
                offset += record->record_len;
            }
        } else {
            say("unexpected message kind %u (%lu bytes)\n", static_cast<unsigned>(header->kind),
                static_cast<unsigned long>(room));
        }
    }

    void print(const pf_event_record& record, std::size_t available)
    {
        std::size_t name_len = record.name_len;
        if (PF_EVENT_FIXED_BYTES + name_len > available) {
            name_len = 0; // malformed: never read past the message
        }
        const std::string name = utf8(PF_EVENT_NAME(&record), name_len / 2);
        say("event seq=%llu pid=%lu tid=%lu access=0x%08lx flags=0x%02lx name=%s\n",
            static_cast<unsigned long long>(record.sequence),
            static_cast<unsigned long>(record.process_id),
            static_cast<unsigned long>(record.thread_id),
            static_cast<unsigned long>(record.desired_access),
            static_cast<unsigned long>(record.flags), name.c_str());
    }

    // The verdict, exactly FILTER_REPLY_HEADER + pf_verdict (the kernel receives the verdict
    // alone). FilterReplyMessage does not wait for anything: it is fine in a handler.
    void reply(ULONGLONG message_id, std::uint64_t sequence)
    {
        pf_verdict_reply r{};
        r.reply.status = 0;
        r.reply.message_id = message_id;
        r.verdict.header.magic = PF_MAGIC;
        r.verdict.header.version = PF_PROTOCOL_VERSION;
        r.verdict.header.kind = PF_KIND_VERDICT;
        r.verdict.sequence = sequence;
        r.verdict.verdict = options_.verdict;
        r.verdict.status = 0;
        const HRESULT hr = FilterReplyMessage(port_.native_handle(),
                                              reinterpret_cast<PFILTER_REPLY_HEADER>(&r),
                                              PF_VERDICT_REPLY_BYTES);
        if (hr == kNoWaiterForReply) {
            ++late_replies_; // the driver had already applied its default verdict
        } else if (FAILED(hr)) {
            say("reply failed: HRESULT 0x%08lX\n", static_cast<unsigned long>(hr));
        } else {
            ++replies_;
        }
    }

    // From any handler: stop on the strand (the signal_set is not safe to touch from two
    // threads at once).
    void stop()
    {
        asio::post(strand_, [this] { stop_now(); });
    }

    // On the strand. After this no get is issued; CancelIoEx completes every outstanding one
    // with ERROR_OPERATION_ABORTED, and once their handlers and the cancelled signal wait have
    // run, io_context::run() returns on every thread.
    void stop_now()
    {
        {
            std::lock_guard<std::mutex> lock(issue_);
            if (stopping_) {
                return;
            }
            stopping_ = true;
            if (!CancelIoEx(port_.native_handle(), nullptr) && GetLastError() != ERROR_NOT_FOUND) {
                say("CancelIoEx failed: %lu\n", static_cast<unsigned long>(GetLastError()));
            }
        }
        asio::error_code ignored;
        signals_.cancel(ignored);
    }

    asio::io_context& io_;
    asio::strand<asio::io_context::executor_type> strand_;
    asio::windows::stream_handle port_; // owns the port handle; bound to io_'s completion port
    asio::signal_set signals_;
    const Options options_;
    std::vector<std::unique_ptr<Slot>> slots_;
    std::mutex issue_;
    bool stopping_ = false; // under issue_
    std::mutex output_;
    std::atomic<bool> failed_{false};
    std::atomic<std::uint64_t> events_{0};
    std::atomic<std::uint64_t> replies_{0};
    std::atomic<std::uint64_t> late_replies_{0};
};

int usage()
{
    std::fprintf(stderr, "usage: asio_client [--gets N] [--threads T] [--decide allow|deny] "
                         "[-n EVENTS] [--port NAME]\n");
    return 2;
}

bool parse_count(const char* text, unsigned long long max, unsigned long long& out)
{
    char* end = nullptr;
    const unsigned long long value = std::strtoull(text, &end, 10);
    if (end == text || *end != '\0' || value > max) {
        return false;
    }
    out = value;
    return true;
}

} // namespace

int main(int argc, char** argv)
{
    Options options;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const bool has_value = i + 1 < argc;
        unsigned long long n = 0;
        if (arg == "--gets" && has_value && parse_count(argv[++i], 64, n) && n > 0) {
            options.gets = static_cast<unsigned>(n);
        } else if (arg == "--threads" && has_value && parse_count(argv[++i], 64, n) && n > 0) {
            options.threads = static_cast<unsigned>(n);
        } else if (arg == "-n" && has_value && parse_count(argv[++i], ~0ull, n)) {
            options.events = n;
        } else if (arg == "--decide" && has_value) {
            const std::string v = argv[++i];
            if (v != "allow" && v != "deny") {
                return usage();
            }
            options.decider = true;
            options.verdict = v == "deny" ? PF_VERDICT_DENY : PF_VERDICT_ALLOW;
        } else if (arg == "--port" && has_value) {
            const std::string name = argv[++i];
            options.port.assign(name.begin(), name.end()); // ASCII port names
        } else {
            return usage();
        }
    }

    if (!hello(options)) {
        return 3;
    }

    pf_connect_context ctx{};
    ctx.header.magic = PF_MAGIC;
    ctx.header.version = PF_PROTOCOL_VERSION;
    ctx.header.kind = PF_KIND_CONNECT;
    ctx.role = options.decider ? PF_ROLE_DECIDER : PF_ROLE_OBSERVER;
    HANDLE port = INVALID_HANDLE_VALUE;
    // Options 0: an overlapped handle, which FilterGetMessage can complete through a port.
    const HRESULT hr =
        FilterConnectCommunicationPort(options.port.c_str(), 0, &ctx, sizeof ctx, nullptr, &port);
    if (FAILED(hr)) {
        std::printf("connect failed: HRESULT 0x%08lX\n", static_cast<unsigned long>(hr));
        return 3;
    }
    std::printf("connected as %s; %u gets outstanding, %u threads; Ctrl-C stops\n",
                options.decider ? "decider" : "observer", options.gets, options.threads);
    std::fflush(stdout);

    try {
        asio::io_context io(static_cast<int>(options.threads));
        Client client(io, port, options); // owns `port` from here on
        client.start();

        std::vector<std::thread> threads;
        for (unsigned i = 1; i < options.threads; ++i) {
            threads.emplace_back([&io] { io.run(); });
        }
        io.run();
        for (auto& t : threads) {
            t.join();
        }
        client.close();

        std::printf("done: %llu event(s), %llu verdict(s), %llu late\n",
                    static_cast<unsigned long long>(client.events()),
                    static_cast<unsigned long long>(client.replies()),
                    static_cast<unsigned long long>(client.late_replies()));
        return client.failed() ? 1 : 0;
    } catch (const std::exception& e) {
        // Binding the handle to the completion port or installing the signal handlers failed.
        std::printf("error: %s\n", e.what());
        return 1;
    }
}
