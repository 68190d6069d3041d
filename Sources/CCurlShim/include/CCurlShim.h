// CCurlShim: the HTTP tunnat needs (the EC2 API, IMDSv2, http/https health checks, TLS tcp health checks) from
// libcurl, as plain functions over bytes and numbers, so that Swift sees no curl types and no variadic calls.
#ifndef TUNNAT_CCURLSHIM_H
#define TUNNAT_CCURLSHIM_H

#include <stddef.h>
#include <stdint.h>

/// What one transfer asks for. Strings are NUL-terminated; `headers` holds `header_count` "Name: value" lines.
typedef struct {
    const char *method;             // "GET", "POST", "PUT", ...
    const char *url;
    const char *const *headers;
    size_t header_count;
    const void *body;               // may be NULL when body_length is 0
    size_t body_length;
    long timeout_ms;                // the whole transfer
    long connect_timeout_ms;
    int no_proxy;                   // 1: ignore http_proxy/https_proxy/no_proxy (IMDS, health checks)
    int verify_tls;                 // 0 only when a health check says skipVerify
    const char *ca_file;            // NULL: the system's CA bundle; a path, or PEM text ("-----BEGIN ...")
    size_t max_body;                // a longer response body is cut off and reported as an error
    const char *connect_to;         // NULL, or CURLOPT_CONNECT_TO's "name:port:address:port" (TLS checks name)
} tunnat_http_request;

/// What came back. `body` is malloc'd (free it with tunnat_http_free); `error` is curl's message when the
/// return value is not 0 (CURLE_OK).
typedef struct {
    long status;
    uint8_t *body;
    size_t body_length;
    char error[256];
} tunnat_http_response;

/// Initialises libcurl once (curl_global_init is not thread-safe on older libcurl); call before any transfer.
int tunnat_http_global_init(void);
/// One transfer with curl_easy_perform. Returns the CURLcode: 0 when an HTTP status came back (any status).
int tunnat_http_perform(const tunnat_http_request *request, tunnat_http_response *response);
void tunnat_http_free(tunnat_http_response *response);

/// A TCP (or, with `tls`, TLS) connection for a send/expect health check, through CURLOPT_CONNECT_ONLY:
/// connect to host:port, send `send`, then read until `expect` appears, the peer closes, or time runs out.
/// `server_name` (may be NULL) is the name TLS verifies instead of host. Returns 1 healthy, 0 not;
/// `error` says why not.
int tunnat_tcp_probe(const char *host, int port, int tls, int verify_tls, const char *ca_file,
                     const char *server_name, const char *send, const char *expect, long timeout_ms,
                     char error[256]);

#endif
