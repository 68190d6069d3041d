import COpenSSLShim

/// AES-256-GCM (NIST SP 800-38D) through OpenSSL's EVP interface: a 32-byte key, a 12-byte IV that must never
/// repeat under one key, associated data that is authenticated but sent in clear, and a 16-byte tag.
///
/// The key schedule is made once, in `init`; each message only sets its IV. An instance is not thread-safe (it
/// keeps OpenSSL's cipher contexts): one thread uses it.
public final class AEADKey {
    public static let keyLength = 32
    public static let ivLength = 12
    public static let tagLength = 16

    private let context: UnsafeMutableRawPointer

    /// Nil unless `key` is 32 bytes (or if OpenSSL cannot make the contexts).
    public init?(_ key: some Collection<UInt8>) {
        guard key.count == Self.keyLength,
              let context = Array(key).withUnsafeBufferPointer({ tunnat_aead_new($0.baseAddress) }) else { return nil }
        self.context = context
    }

    deinit { tunnat_aead_free(context) }

    /// Appends `plaintext` encrypted, then the tag, to `out` (which may already hold the associated data).
    public func seal(iv: [UInt8], aad: UnsafeRawBufferPointer, plaintext: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        precondition(iv.count == Self.ivLength)
        let start = out.count
        out += repeatElement(0, count: plaintext.count + Self.tagLength)
        let ok = out.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress! + start
            return tunnat_aead_seal(context, iv, aad.baseAddress, aad.count, plaintext.baseAddress, plaintext.count,
                                    base, base + plaintext.count)
        }
        // Sealing cannot fail for valid lengths: a failure means a broken library, not bad input.
        guard ok == 1 else { fatalError("OpenSSL AES-256-GCM sealing failed") }
    }

    /// The plaintext of `sealed` (ciphertext followed by its tag), or nil if the tag does not match.
    public func open(iv: [UInt8], aad: UnsafeRawBufferPointer, sealed: UnsafeRawBufferPointer) -> [UInt8]? {
        precondition(iv.count == Self.ivLength)
        guard sealed.count >= Self.tagLength else { return nil }
        let length = sealed.count - Self.tagLength
        var plain = [UInt8](repeating: 0, count: length)
        let ok = plain.withUnsafeMutableBufferPointer { out in
            tunnat_aead_open(context, iv, aad.baseAddress, aad.count, sealed.baseAddress, length,
                             sealed.baseAddress!.assumingMemoryBound(to: UInt8.self) + length, out.baseAddress)
        }
        return ok == 1 ? plain : nil
    }
}

extension Digest {
    /// HKDF with HMAC-SHA256 (RFC 5869): extract a pseudorandom key from `ikm` with `salt`, then expand it with
    /// `info` to `length` bytes (at most 255 × 32).
    public static func hkdfSHA256(salt: [UInt8], ikm: [UInt8], info: [UInt8], length: Int) -> [UInt8] {
        hkdfExpand(prk: hmacSHA256(key: salt, ikm), info: info, length: length)
    }

    /// HKDF-Expand (RFC 5869 section 2.3) with HMAC-SHA256, for a `prk` already extracted.
    public static func hkdfExpand(prk: [UInt8], info: [UInt8], length: Int) -> [UInt8] {
        precondition(length > 0 && length <= 255 * 32)
        var out: [UInt8] = []
        var block: [UInt8] = []
        var counter: UInt8 = 1
        while out.count < length {
            block = hmacSHA256(key: prk, block + info + [counter])
            out += block
            counter &+= 1
        }
        return Array(out.prefix(length))
    }
}
