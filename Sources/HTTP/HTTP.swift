/// HTTP: one HTTP(S) exchange, and TCP/TLS probes, over the system's libcurl (CCurlShim). Shared by the AWS client
/// and the health checks; the only Swift code that sees curl.
public enum HTTP {}
