/*
 * fltlib_decl.h - the few Windows types and FltLib/kernel32 functions client.c uses.
 *
 * On Windows a client includes <windows.h> and <fltuser.h> and links FltLib.lib; this
 * header exists because Linux has neither. The declarations have the Windows signatures:
 * on Linux they resolve to libfltlib_shim.so (crates/fltlib-shim), which forwards the calls to
 * a running portfilter-sim. Written from the documented signatures (learn.microsoft.com).
 */
#ifndef FLTLIB_DECL_H
#define FLTLIB_DECL_H

#ifdef _WIN32
#include <windows.h>
#include <fltuser.h>
#ifndef FLT_PORT_FLAG_SYNC_HANDLE /* Windows 8.1+; mingw-w64's fltuser.h lacks it */
#define FLT_PORT_FLAG_SYNC_HANDLE 0x00000001
#endif
#else
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WINAPI /* x86-64: one calling convention */

typedef int32_t HRESULT;
typedef int32_t BOOL;
typedef uint32_t DWORD;
typedef uint16_t WORD;
typedef uint16_t WCHAR; /* UTF-16, unlike Linux's 4-byte wchar_t */
typedef const WCHAR *LPCWSTR;
typedef void *HANDLE;
typedef void *LPVOID;
typedef const void *LPCVOID;
typedef DWORD *LPDWORD;
typedef struct _OVERLAPPED OVERLAPPED, *LPOVERLAPPED; /* not used here: synchronous calls */
typedef struct _SECURITY_ATTRIBUTES *LPSECURITY_ATTRIBUTES;

#define S_OK ((HRESULT)0)
#define SUCCEEDED(hr) (((HRESULT)(hr)) >= 0)
#define FAILED(hr) (((HRESULT)(hr)) < 0)
#define INVALID_HANDLE_VALUE ((HANDLE)(intptr_t)-1)
#define FLT_PORT_FLAG_SYNC_HANDLE 0x00000001 /* a synchronous handle (fltUserStructures.h) */

/* fltuserstructures.h: 16 bytes each on x64 (the 64-bit id is 8-aligned). */
typedef struct _FILTER_MESSAGE_HEADER {
    uint32_t ReplyLength;
    uint64_t MessageId;
} FILTER_MESSAGE_HEADER, *PFILTER_MESSAGE_HEADER;

typedef struct _FILTER_REPLY_HEADER {
    int32_t Status; /* NTSTATUS */
    uint64_t MessageId;
} FILTER_REPLY_HEADER, *PFILTER_REPLY_HEADER;

HRESULT WINAPI FilterConnectCommunicationPort(LPCWSTR lpPortName, DWORD dwOptions,
                                              LPCVOID lpContext, WORD wSizeOfContext,
                                              LPSECURITY_ATTRIBUTES lpSecurityAttributes,
                                              HANDLE *hPort);
HRESULT WINAPI FilterGetMessage(HANDLE hPort, PFILTER_MESSAGE_HEADER lpMessageBuffer,
                                DWORD dwMessageBufferSize, LPOVERLAPPED lpOverlapped);
HRESULT WINAPI FilterReplyMessage(HANDLE hPort, PFILTER_REPLY_HEADER lpReplyBuffer,
                                  DWORD dwReplyBufferSize);
HRESULT WINAPI FilterSendMessage(HANDLE hPort, LPVOID lpInBuffer, DWORD dwInBufferSize,
                                 LPVOID lpOutBuffer, DWORD dwOutBufferSize,
                                 LPDWORD lpBytesReturned);
BOOL WINAPI CloseHandle(HANDLE hObject);

#ifdef __cplusplus
}
#endif
#endif /* _WIN32 */

_Static_assert(sizeof(FILTER_MESSAGE_HEADER) == 16, "FILTER_MESSAGE_HEADER");
_Static_assert(sizeof(FILTER_REPLY_HEADER) == 16, "FILTER_REPLY_HEADER");

#endif /* FLTLIB_DECL_H */
