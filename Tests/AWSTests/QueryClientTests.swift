@testable import AWS
import FakeAWS
import HTTP
import Synchronization
import Testing

/// The Query client against a scripted transport: what it signs and sends, how AWS's answers become errors, and
/// which of them it retries (with the waits it would make, taken from an injected sleep instead of made).
@Suite struct QueryClientTests {
    static let credentials = CredentialProvider(fixed: AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "secret"))
    static let throttled = #"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors></Response>"#
    static let authFailure = #"<Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided access credentials</Message></Error></Errors></Response>"#
    static let routeTables = #"<DescribeRouteTablesResponse><routeTableSet><item><routeTableId>rtb-1</routeTableId><vpcId>vpc-1</vpcId><routeSet><item><destinationCidrBlock>0.0.0.0/0</destinationCidrBlock><networkInterfaceId>eni-1</networkInterfaceId><state>active</state></item></routeSet></item></routeTableSet></DescribeRouteTablesResponse>"#

    final class Waits: Sendable {
        let list = Mutex<[Int]>([])
        var all: [Int] { list.withLock { $0 } }
    }

    func client(_ transport: ScriptedTransport, waits: Waits, attempts: Int = 5) -> EC2Client {
        EC2Client(query: QueryClient(service: "ec2", version: EC2Client.apiVersion, region: "eu-west-1",
                                     endpoint: "http://127.0.0.1:5000/", credentials: Self.credentials,
                                     retry: RetryPolicy(maxAttempts: attempts), transport: transport,
                                     sleep: { ms in waits.list.withLock { $0.append(ms) } }, wallClock: { 1_440_938_160 }))
    }

    @Test func aCallIsASignedFormPostAndItsAnswerIsParsed() throws {
        let transport = ScriptedTransport([.status(200, Self.routeTables)])
        let tables = try client(transport, waits: Waits()).describeRouteTables(filters: [EC2Filter("vpc-id", ["vpc-1"])])
        #expect(tables == [RouteTable(id: "rtb-1", vpcID: "vpc-1", routes: [Route(destination: "0.0.0.0/0", networkInterfaceID: "eni-1")])])
        let request = try #require(transport.requests.first)
        #expect(request.method == "POST")
        #expect(request.url == "http://127.0.0.1:5000/")
        #expect(String(decoding: request.body, as: UTF8.self)
            == "Action=DescribeRouteTables&Version=2016-11-15&Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-1")
        let authorization = try #require(request.headers.first { $0.name == "Authorization" }?.value)
        #expect(authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/ec2/aws4_request"))
    }

    @Test func throttlingAndServerErrorsAreRetriedWithBackoff() throws {
        let transport = ScriptedTransport([.status(400, Self.throttled), .status(503, "Service Unavailable"),
                                           .transportError(code: 28, message: "Operation timed out"),
                                           .status(200, Self.routeTables)])
        let waits = Waits()
        let tables = try client(transport, waits: waits).describeRouteTables(filters: [])
        #expect(tables.count == 1)
        #expect(transport.requests.count == 4)
        #expect(waits.all.count == 3)
        for (retry, wait) in waits.all.enumerated() { #expect(wait <= RetryPolicy().ceilingMilliseconds(retry: retry)) }
    }

    @Test func aFinalErrorIsNotRetriedAndKeepsAWSsCode() {
        let transport = ScriptedTransport([.status(401, Self.authFailure)])
        let waits = Waits()
        #expect(throws: AWSError.api(action: "DeleteRoute", status: 401, code: "AuthFailure",
                                     message: "AWS was not able to validate the provided access credentials")) {
            try client(transport, waits: waits).deleteRoute(table: "rtb-1", cidr: "0.0.0.0/0")
        }
        #expect(transport.requests.count == 1)
        #expect(waits.all.isEmpty)
    }

    @Test func retriesStopAtMaxAttemptsWithTheLastError() {
        let transport = ScriptedTransport(Array(repeating: .status(400, Self.throttled), count: 10))
        let waits = Waits()
        #expect(throws: AWSError.self) { try client(transport, waits: waits, attempts: 3).describeRouteTables(filters: []) }
        #expect(transport.requests.count == 3)
        #expect(waits.all.count == 2)
    }

    @Test func aNonXMLErrorBodyBecomesItsHTTPStatus() {
        let transport = ScriptedTransport([.status(403, "<html>Forbidden")])
        #expect(throws: AWSError.api(action: "DescribeAddresses", status: 403, code: "HTTP403", message: "<html>Forbidden")) {
            try client(transport, waits: Waits()).describeAddresses(filters: [])
        }
    }

    @Test func cloudWatchSpeaksTheSameQueryProtocolUnderItsOwnNameAndVersion() throws {
        let transport = ScriptedTransport([.status(200, "<PutMetricDataResponse/>")])
        let query = QueryClient(service: "monitoring", version: CloudWatchClient.apiVersion, region: "eu-west-1",
                                endpoint: "http://127.0.0.1:5000", credentials: Self.credentials, transport: transport,
                                sleep: { _ in }, wallClock: { 1_440_938_160 })
        try CloudWatchClient(query: query).putMetricData(namespace: "tunnat", [
            MetricDatum(name: "PacketsDropCount", value: 3, unit: "Count", dimensions: [("InstanceId", "i-1")]),
        ])
        let request = try #require(transport.requests.first)
        #expect(String(decoding: request.body, as: UTF8.self) == "Action=PutMetricData&Version=2010-08-01&Namespace=tunnat"
            + "&MetricData.member.1.MetricName=PacketsDropCount&MetricData.member.1.Value=3.0&MetricData.member.1.Unit=Count"
            + "&MetricData.member.1.Dimensions.member.1.Name=InstanceId&MetricData.member.1.Dimensions.member.1.Value=i-1")
        #expect(request.headers.contains { $0.name == "Authorization" && $0.value.contains("/eu-west-1/monitoring/aws4_request") })
    }

    @Test func putMetricDataSendsAtMostAThousandValuesACall() throws {
        let transport = ScriptedTransport(Array(repeating: .status(200, "<PutMetricDataResponse/>"), count: 3))
        let query = QueryClient(service: "monitoring", version: CloudWatchClient.apiVersion, region: "eu-west-1",
                                endpoint: "http://127.0.0.1:5000", credentials: Self.credentials, transport: transport)
        try CloudWatchClient(query: query).putMetricData(namespace: "n", (0..<2001).map {
            MetricDatum(name: "m\($0)", value: 1, unit: "Count")
        })
        #expect(transport.requests.count == 3)
    }
}
