@testable import AWS
import SystemCalls
import Testing

@Suite struct RetryTests {
    @Test func backoffIsCappedExponential() {
        let policy = RetryPolicy(maxAttempts: 5, baseMilliseconds: 200, capMilliseconds: 5_000)
        #expect((0..<7).map { policy.ceilingMilliseconds(retry: $0) } == [200, 400, 800, 1600, 3200, 5000, 5000])
        var g = SystemRandomNumberGenerator()
        for retry in 0..<7 {
            for _ in 0..<50 {
                #expect((0...policy.ceilingMilliseconds(retry: retry)).contains(policy.delayMilliseconds(retry: retry, using: &g)))
            }
        }
    }

    static let errors: [(AWSError, Bool)] = [
        (.api(action: "X", status: 503, code: "RequestLimitExceeded", message: ""), true),
        (.api(action: "X", status: 400, code: "Throttling", message: ""), true),
        (.api(action: "X", status: 500, code: "InternalError", message: ""), true),
        (.api(action: "X", status: 502, code: "HTTP502", message: ""), true),
        (.transport(action: "X", code: 7, message: "Couldn't connect"), true),
        (.api(action: "X", status: 401, code: "AuthFailure", message: ""), false),
        (.api(action: "X", status: 400, code: "InvalidRouteTableID.NotFound", message: ""), false),
        (.api(action: "X", status: 400, code: "RouteAlreadyExists", message: ""), false),
        (.noCredentials("none"), false),
    ]

    @Test(arguments: errors) func onlyThrottlingServerErrorsAndLostConnectionsAreRetried(_ e: (AWSError, Bool)) {
        #expect(e.0.isRetryable == e.1)
    }

    @Test func runStopsAtMaxAttemptsAndAtTheFirstFinalError() {
        let policy = RetryPolicy(maxAttempts: 3)
        var attempts = 0
        var slept: [Int] = []
        #expect(throws: AWSError.self) {
            try policy.run(sleep: { slept.append($0) }) { () throws(AWSError) -> Int in
                attempts += 1
                throw .api(action: "X", status: 503, code: "RequestLimitExceeded", message: "")
            }
        }
        #expect(attempts == 3 && slept.count == 2)
        attempts = 0
        #expect(throws: AWSError.self) {
            try policy.run(sleep: { _ in }) { () throws(AWSError) -> Int in
                attempts += 1
                throw .api(action: "X", status: 401, code: "AuthFailure", message: "")
            }
        }
        #expect(attempts == 1)
        attempts = 0
        let value = try? policy.run(sleep: { _ in }) { () throws(AWSError) -> Int in
            attempts += 1
            if attempts < 3 { throw .transport(action: "X", code: 28, message: "timeout") }
            return 42
        }
        #expect(value == 42 && attempts == 3)
    }
}

@Suite struct CredentialsTests {
    @Test func sharedCredentialsFileProfiles() {
        let text = """
            # comment
            [default]
            aws_access_key_id = AKIADEFAULT
            aws_secret_access_key = secret1

            [nat]
            aws_access_key_id=AKIANAT
            aws_secret_access_key = secret2 
            aws_session_token = token2
            ; another comment
            [broken]
            aws_access_key_id = AKIAONLY
            """
        #expect(CredentialProvider.parseSharedCredentials(text, profile: "default")
                == AWSCredentials(accessKeyID: "AKIADEFAULT", secretAccessKey: "secret1"))
        #expect(CredentialProvider.parseSharedCredentials(text, profile: "nat")
                == AWSCredentials(accessKeyID: "AKIANAT", secretAccessKey: "secret2", sessionToken: "token2"))
        #expect(CredentialProvider.parseSharedCredentials(text, profile: "broken") == nil)
        #expect(CredentialProvider.parseSharedCredentials(text, profile: "missing") == nil)
    }

    @Test func queryBodyAndHostAreWhatGetsSigned() {
        #expect(QueryClient.formBody([("Action", "CreateRoute"), ("DestinationCidrBlock", "0.0.0.0/0"), ("X", "a b+c")])
                == "Action=CreateRoute&DestinationCidrBlock=0.0.0.0%2F0&X=a%20b%2Bc")
        #expect(QueryClient.hostAndPath("https://ec2.eu-west-1.amazonaws.com") == ("ec2.eu-west-1.amazonaws.com", "/"))
        #expect(QueryClient.hostAndPath("http://127.0.0.1:5000/") == ("127.0.0.1:5000", "/"))
        #expect(QueryClient.hostAndPath("https://vpce.example:443/x") == ("vpce.example", "/x"))
        #expect(EC2Client.filterParameters([EC2Filter("vpc-id", ["vpc-1"]), EC2Filter("tag:Name", ["a", "b"])]).map { "\($0.0)=\($0.1)" }
                == ["Filter.1.Name=vpc-id", "Filter.1.Value.1=vpc-1", "Filter.2.Name=tag:Name", "Filter.2.Value.1=a", "Filter.2.Value.2=b"])
        // AssignPrivateIpAddresses and UnassignPrivateIpAddresses send every address in one call this way.
        #expect(QueryClient.numbered("PrivateIpAddress", ["10.0.0.50", "10.0.0.51", "10.0.0.52"]).map { "\($0.0)=\($0.1)" }
                == ["PrivateIpAddress.1=10.0.0.50", "PrivateIpAddress.2=10.0.0.51", "PrivateIpAddress.3=10.0.0.52"])
    }
}
