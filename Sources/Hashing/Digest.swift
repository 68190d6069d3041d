import COpenSSLShim

/// SHA-256 and HMAC-SHA256 through OpenSSL (COpenSSLShim). A failure inside OpenSSL on these one-shot calls
/// means a broken library, so it stops the process rather than signing with garbage.
public enum Digest {
    public static func sha256(_ bytes: some Collection<UInt8>) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        let ok = Array(bytes).withUnsafeBytes { input in
            digest.withUnsafeMutableBufferPointer { tunnat_sha256(input.baseAddress, input.count, $0.baseAddress) }
        }
        guard ok == 1 else { fatalError("OpenSSL SHA-256 failed") }
        return digest
    }

    public static func hmacSHA256(key: [UInt8], _ bytes: some Collection<UInt8>) -> [UInt8] {
        var mac = [UInt8](repeating: 0, count: 32)
        let ok = key.withUnsafeBytes { k in
            Array(bytes).withUnsafeBytes { input in
                mac.withUnsafeMutableBufferPointer {
                    tunnat_hmac_sha256(k.baseAddress, k.count, input.baseAddress, input.count, $0.baseAddress)
                }
            }
        }
        guard ok == 1 else { fatalError("OpenSSL HMAC-SHA256 failed") }
        return mac
    }

    /// Lower-case hex, as SigV4 writes digests.
    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
