/// Hashing: SHA-256 and HMAC-SHA256 from the system's OpenSSL (COpenSSLShim), for SigV4 and the replication
/// wire format. The only Swift code that sees OpenSSL.
public enum Hashing {}
