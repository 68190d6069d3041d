@testable import AWS
import Testing

@Suite struct XMLTests {
    /// DescribeRouteTables as EC2 answers it (abridged from the EC2 API reference's example).
    static let routeTables = """
        <?xml version="1.0" encoding="UTF-8"?>
        <DescribeRouteTablesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
           <requestId>6f570b0b-9c18-4b07-bdec-73740dcf861aEXAMPLE</requestId>
           <routeTableSet>
              <item>
                 <routeTableId>rtb-1122334455667788a</routeTableId>
                 <vpcId>vpc-1122334455667788a</vpcId>
                 <routeSet>
                    <item><destinationCidrBlock>10.0.0.0/22</destinationCidrBlock><gatewayId>local</gatewayId><state>active</state></item>
                    <item>
                       <destinationCidrBlock>0.0.0.0/0</destinationCidrBlock>
                       <instanceId>i-1a2b3c4d</instanceId>
                       <networkInterfaceId>eni-1a2b3c4d</networkInterfaceId>
                       <state>blackhole</state>
                    </item>
                    <item><destinationIpv6CidrBlock>::/0</destinationIpv6CidrBlock><state>active</state></item>
                 </routeSet>
                 <associationSet>
                    <item><routeTableAssociationId>rtbassoc-1</routeTableAssociationId><main>true</main></item>
                    <item><routeTableAssociationId>rtbassoc-2</routeTableAssociationId><subnetId>subnet-9</subnetId><main>false</main></item>
                 </associationSet>
                 <tagSet><item><key>Name</key><value>private &amp; &lt;a&gt; &#x41;&#66;</value></item></tagSet>
              </item>
           </routeTableSet>
        </DescribeRouteTablesResponse>
        """

    @Test func parsesAnEC2ListingWithEntitiesAndNamespaces() throws {
        let root = try XML.parse(Array(Self.routeTables.utf8))
        #expect(root.name == "DescribeRouteTablesResponse")
        let table = try #require(root.items("routeTableSet").first)
        #expect(table.value("routeTableId") == "rtb-1122334455667788a")
        #expect(table.items("routeSet").count == 3)
        #expect(table.items("tagSet").first?.value("value") == "private & <a> AB")
        #expect(table.items("associationSet").compactMap { $0.value("subnetId") } == ["subnet-9"])
    }

    @Test func anEC2ErrorDocument() throws {
        let text = "<?xml version=\"1.0\"?><Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate</Message></Error></Errors><RequestID>x</RequestID></Response>"
        let root = try XML.parse(Array(text.utf8))
        #expect(root.first("Error")?.value("Code") == "AuthFailure")
    }

    static let malformed = ["", "<a>", "<a></b>", "<a>&bogus;</a>", "<a>x</a><b/>", "text", "<a b=\"unterminated></a>",
                            String(repeating: "<a>", count: 100) + String(repeating: "</a>", count: 100),
                            "<a><![CDATA[never closed</a>"]

    @Test(arguments: malformed) func malformedInputIsAnErrorNotACrash(_ text: String) {
        #expect(throws: XMLError.self) { try XML.parse(Array(text.utf8)) }
    }

    @Test func cdataCommentsAndSelfClosingTags() throws {
        let root = try XML.parse(Array("<a><!-- c --><b/><c><![CDATA[<x> & y]]></c></a>".utf8))
        #expect(root.children.map(\.name) == ["b", "c"] && root.value("c") == "<x> & y")
    }
}
