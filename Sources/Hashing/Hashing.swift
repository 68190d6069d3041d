/// Hashing: SHA-256, HMAC-SHA256, HKDF and AES-256-GCM from the system's OpenSSL (COpenSSLShim), for SigV4 and
/// the replication wire format. The only Swift code that sees OpenSSL.
public enum Hashing {}
