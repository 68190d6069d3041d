import AWS
import Hashing
import Foundation
import Testing

/// AWS's SigV4 test suite (../shared/testdata/sigv4/v4, Apache-2.0): every case signed in the Authorization
/// header, checked step by step against the suite's canonical request, string to sign and signature.
let suite = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../../shared/testdata/sigv4/v4").standardized.path

struct Vector: CustomTestStringConvertible, Sendable {
    let name: String
    var testDescription: String { name }

    func text(_ file: String) throws -> String {
        try String(contentsOfFile: "\(suite)/\(name)/\(file)", encoding: .utf8)
    }

    /// request.txt: a request line, header lines (a line starting with white space continues the value before),
    /// a blank line, the body.
    func request() throws -> SignableRequest {
        let raw = try text("request.txt")
        let (head, body) = raw.range(of: "\n\n").map { (String(raw[..<$0.lowerBound]), String(raw[$0.upperBound...])) }
            ?? (raw, "")
        var lines = head.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let requestLine = lines.removeFirst()
        let first = requestLine.firstIndex(of: " ")!
        let last = requestLine.range(of: " HTTP/", options: .backwards)!.lowerBound
        let method = String(requestLine[..<first])
        let target = String(requestLine[requestLine.index(after: first)..<last])
        let (path, query) = target.firstIndex(of: "?").map { (String(target[..<$0]), String(target[target.index(after: $0)...])) }
            ?? (target, "")
        var headers: [(name: String, value: String)] = []
        for line in lines where !line.isEmpty {
            if line.first == " " || line.first == "\t" {
                headers[headers.count - 1].value += " " + line.trimmingCharacters(in: .whitespaces)
            } else {
                let colon = line.firstIndex(of: ":")!
                headers.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
            }
        }
        return SignableRequest(method: method, path: path, query: query, headers: headers, body: Array(body.utf8))
    }

    func context() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(try text("context.json").utf8)) as! [String: Any]
    }
}

let vectors: [Vector] = ((try? FileManager.default.contentsOfDirectory(atPath: suite)) ?? [])
    .filter { FileManager.default.fileExists(atPath: "\(suite)/\($0)/header-signature.txt") }
    .sorted().map { Vector(name: $0) }

@Suite struct SigV4Tests {
    @Test func theSuiteIsThere() {
        #expect(vectors.count >= 30, "found \(vectors.count) cases in \(suite)")
    }

    /// Without the suite the table below would run no case at all and pass: say so instead.
    @Test func theAWSTestSuiteIsBesideTheRepository() {
        #expect(vectors.count >= 20, "\(suite) has \(vectors.count) test cases: the SigV4 tests read AWS's suite from ../shared/testdata/sigv4/v4, the project's shared folder checked out beside this repository")
    }

    @Test(arguments: vectors)
    func signsAsTheAWSTestSuiteSays(vector: Vector) throws {
        let context = try vector.context()
        let creds = context["credentials"] as! [String: Any]
        let credentials = AWSCredentials(accessKeyID: creds["access_key_id"] as! String,
                                         secretAccessKey: creds["secret_access_key"] as! String,
                                         sessionToken: creds["token"] as? String)
        var options = SigV4.Options(region: context["region"] as! String, service: context["service"] as! String)
        options.normalizePath = context["normalize"] as? Bool ?? true
        options.signBodyHeader = context["sign_body"] as? Bool ?? false
        options.omitSessionTokenFromSignature = context["omit_session_token"] as? Bool ?? false
        let time = Int(ISO8601DateFormatter().date(from: context["timestamp"] as! String)!.timeIntervalSince1970)

        var request = try vector.request()
        let result = SigV4.sign(&request, credentials: credentials, options: options, time: time)
        #expect(result.canonicalRequest == (try vector.text("header-canonical-request.txt")))
        #expect(result.stringToSign == (try vector.text("header-string-to-sign.txt")))
        #expect(result.signature == (try vector.text("header-signature.txt")).trimmingCharacters(in: .whitespacesAndNewlines))
        let signed = try vector.text("header-signed-request.txt")
        #expect(signed.contains("Authorization:\(result.authorization)"))
        #expect(request.header("Authorization") == result.authorization)
    }

    @Test func aWrongSecretChangesTheSignature() throws {
        var a = SignableRequest(method: "POST", path: "/", headers: [("Host", "ec2.us-east-1.amazonaws.com")],
                                body: Array("Action=DescribeRouteTables&Version=2016-11-15".utf8))
        var b = a
        let options = SigV4.Options(region: "us-east-1", service: "ec2")
        let right = SigV4.sign(&a, credentials: AWSCredentials(accessKeyID: "AKID", secretAccessKey: "right"),
                               options: options, time: 1_440_938_160)
        let wrong = SigV4.sign(&b, credentials: AWSCredentials(accessKeyID: "AKID", secretAccessKey: "wrong"),
                               options: options, time: 1_440_938_160)
        #expect(right.canonicalRequest == wrong.canonicalRequest)
        #expect(right.signature != wrong.signature)
    }

    @Test func credentialsNeverPrintTheirSecrets() {
        let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI",
                                         sessionToken: "FwoGZXIvYXdzE")
        for text in ["\(credentials)", String(describing: credentials), String(reflecting: credentials)] {
            #expect(!text.contains("wJalrXUtnFEMI") && !text.contains("FwoGZXIvYXdzE"), "\(text)")
        }
    }

    @Test func digestsMatchKnownAnswers() {
        // FIPS 180-2 "abc", RFC 4231 test case 2.
        #expect(Digest.hex(Digest.sha256(Array("abc".utf8)))
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Digest.hex(Digest.hmacSHA256(key: Array("Jefe".utf8), Array("what do ya want for nothing?".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }
}
