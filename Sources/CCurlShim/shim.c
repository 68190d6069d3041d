#include "CCurlShim.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <poll.h>

int tunnat_http_global_init(void) {
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 1 : 0;
}

typedef struct {
    uint8_t *data;
    size_t length;
    size_t capacity;
    size_t limit;
    int overflow;
} buffer;

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata) {
    buffer *b = userdata;
    size_t n = size * nmemb;
    if (b->length + n > b->limit) { b->overflow = 1; return 0; }  // makes curl stop with CURLE_WRITE_ERROR
    if (b->length + n > b->capacity) {
        size_t cap = b->capacity ? b->capacity : 4096;
        while (cap < b->length + n) cap *= 2;
        uint8_t *grown = realloc(b->data, cap);
        if (!grown) return 0;
        b->data = grown;
        b->capacity = cap;
    }
    memcpy(b->data + b->length, ptr, n);
    b->length += n;
    return n;
}

static void set_tls(CURL *curl, int verify_tls, const char *ca_file) {
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, verify_tls ? 1L : 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, verify_tls ? 2L : 0L);
    if (ca_file && strncmp(ca_file, "-----BEGIN", 10) == 0) {
        // An inline PEM certificate (AWSnycast's tcp health check `cert`), not a path.
        struct curl_blob blob = { .data = (void *)ca_file, .len = strlen(ca_file), .flags = CURL_BLOB_COPY };
        curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &blob);
    } else if (ca_file && *ca_file) {
        curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file);
    }
}

int tunnat_http_perform(const tunnat_http_request *request, tunnat_http_response *response) {
    memset(response, 0, sizeof *response);
    CURL *curl = curl_easy_init();
    if (!curl) { snprintf(response->error, sizeof response->error, "curl_easy_init failed"); return CURLE_FAILED_INIT; }
    buffer body = { .limit = request->max_body ? request->max_body : (16u << 20) };
    struct curl_slist *headers = NULL, *connect_to = NULL;
    if (request->connect_to) {
        connect_to = curl_slist_append(NULL, request->connect_to);
        curl_easy_setopt(curl, CURLOPT_CONNECT_TO, connect_to);
    }
    // libcurl adds "Expect: 100-continue" to large POSTs; AWS does not need the extra round trip.
    headers = curl_slist_append(headers, "Expect:");
    for (size_t i = 0; i < request->header_count; i++) headers = curl_slist_append(headers, request->headers[i]);

    curl_easy_setopt(curl, CURLOPT_URL, request->url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request->method);
    if (strcmp(request->method, "GET") == 0) {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(request->method, "HEAD") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request->body ? request->body : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)request->body_length);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, request->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, request->connect_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);            // threads: no SIGALRM for DNS timeouts
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, response->error);
    if (request->no_proxy) curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
    set_tls(curl, request->verify_tls, request->ca_file);

    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response->status);
    } else if (body.overflow) {
        snprintf(response->error, sizeof response->error, "response body longer than %zu bytes", body.limit);
    } else if (response->error[0] == 0) {
        snprintf(response->error, sizeof response->error, "%s", curl_easy_strerror(rc));
    }
    response->body = body.data;
    response->body_length = body.length;
    curl_easy_cleanup(curl);
    curl_slist_free_all(headers);
    curl_slist_free_all(connect_to);
    return (int)rc;
}

void tunnat_http_free(tunnat_http_response *response) {
    free(response->body);
    response->body = NULL;
    response->body_length = 0;
}

static long remaining_ms(const struct timespec *deadline) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
    return ms > 0 ? ms : 0;
}

// Waits (at most 50 ms at a time) for the connection's socket to become readable or writable; 0 once the deadline
// has passed. Short waits, because TLS may already hold decrypted data that the socket no longer signals (a TLS 1.3
// session ticket read together with the answer), so curl_easy_recv must be asked again either way.
static int wait_socket(CURL *curl, int for_write, const struct timespec *deadline) {
    curl_socket_t fd;
    if (curl_easy_getinfo(curl, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK || fd == CURL_SOCKET_BAD) return 0;
    struct pollfd p = { .fd = fd, .events = for_write ? POLLOUT : POLLIN };
    long ms = remaining_ms(deadline);
    if (ms == 0) return 0;
    poll(&p, 1, ms < 50 ? (int)ms : 50);
    return 1;
}

int tunnat_tcp_probe(const char *host, int port, int tls, int verify_tls, const char *ca_file,
                     const char *server_name, const char *send, const char *expect, long timeout_ms,
                     char error[256]) {
    error[0] = 0;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) { deadline.tv_sec += 1; deadline.tv_nsec -= 1000000000; }

    CURL *curl = curl_easy_init();
    if (!curl) { snprintf(error, 256, "curl_easy_init failed"); return 0; }
    char url[512];
    const char *name = (tls && server_name && *server_name) ? server_name : host;
    snprintf(url, sizeof url, "%s://%s:%d/", tls ? "https" : "http", name, port);
    struct curl_slist *connect_to = NULL;
    if (name != host) {
        // TLS verifies server_name, while the connection goes to host (CURLOPT_CONNECT_TO "name:port:host:port").
        char mapping[600];
        snprintf(mapping, sizeof mapping, "%s:%d:%s:%d", name, port, host, port);
        connect_to = curl_slist_append(NULL, mapping);
        curl_easy_setopt(curl, CURLOPT_CONNECT_TO, connect_to);
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    set_tls(curl, verify_tls, ca_file);

    int healthy = 0;
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
        if (!error[0]) snprintf(error, 256, "%s", curl_easy_strerror(rc));
        goto done;
    }
    size_t to_send = send ? strlen(send) : 0, sent_total = 0;
    while (sent_total < to_send) {
        size_t sent = 0;
        rc = curl_easy_send(curl, send + sent_total, to_send - sent_total, &sent);
        if (rc == CURLE_AGAIN) {
            if (!wait_socket(curl, 1, &deadline)) { snprintf(error, 256, "timed out sending"); goto done; }
            continue;
        }
        if (rc != CURLE_OK) { snprintf(error, 256, "send: %s", curl_easy_strerror(rc)); goto done; }
        sent_total += sent;
    }
    if (!expect || !*expect) { healthy = 1; goto done; }
    char answer[4096];
    size_t have = 0;
    for (;;) {
        size_t got = 0;
        rc = curl_easy_recv(curl, answer + have, sizeof answer - 1 - have, &got);
        if (rc == CURLE_AGAIN) {
            if (!wait_socket(curl, 0, &deadline)) { snprintf(error, 256, "timed out waiting for '%s'", expect); goto done; }
            continue;
        }
        if (rc != CURLE_OK) { snprintf(error, 256, "receive: %s", curl_easy_strerror(rc)); goto done; }
        have += got;
        answer[have] = 0;
        if (strstr(answer, expect)) { healthy = 1; goto done; }
        if (got == 0 || have == sizeof answer - 1) {
            snprintf(error, 256, "'%s' not in the first %zu bytes of the answer", expect, have);
            goto done;
        }
    }
done:
    curl_easy_cleanup(curl);
    curl_slist_free_all(connect_to);
    return healthy;
}
