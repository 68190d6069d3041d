// libFuzzer target: the AWS XML reader (AWS/XML.swift) on arbitrary bytes, as an EC2 endpoint (or anything
// between it and us) might answer, and the walks EC2Client makes over the tree it returns (route tables, network
// interfaces, instance status, addresses, error documents, paging tokens).
//
// Checked besides "no crash": a parsed tree is no deeper than the reader's limit.
import CFuzzerDriver
import FuzzSupport
import AWS

func depth(_ e: XMLElement) -> Int { 1 + (e.children.map(depth).max() ?? 0) }

/// What EC2Client reads out of each response (EC2Client.swift), over whatever tree the input gave.
func walk(_ root: XMLElement) {
    var sink = 0
    func use(_ s: String?) { sink &+= s?.utf8.count ?? 0 }
    use(root.first("Error")?.value("Code"))
    use(root.first("Error")?.value("Message"))
    use(root.value("nextToken"))
    for item in root.items("routeTableSet") {
        use(item.value("routeTableId"))
        use(item.value("vpcId"))
        sink &+= item.items("associationSet").filter { $0.value("main") == "true" }.count
        for a in item.items("associationSet") { use(a.value("subnetId")) }
        let tags = Dictionary(item.items("tagSet").map { ($0.value("key") ?? "", $0.value("value") ?? "") },
                              uniquingKeysWith: { a, _ in a })
        sink &+= tags.count
        for r in item.items("routeSet") {
            use(r.value("destinationCidrBlock"))
            use(["gatewayId", "natGatewayId", "vpcPeeringConnectionId", "transitGatewayId"].lazy.compactMap { r.value($0) }.first)
            use(r.value("instanceId"))
            use(r.value("networkInterfaceId"))
            use(r.value("state"))
        }
    }
    for item in root.items("networkInterfaceSet") {
        use(item.value("networkInterfaceId"))
        use(item.child("attachment")?.value("instanceId"))
        for name in ["macAddress", "vpcId", "subnetId", "privateIpAddress", "sourceDestCheck"] { use(item.value(name)) }
        for p in item.items("privateIpAddressesSet") { use(p.value("privateIpAddress")) }
    }
    for item in root.items("instanceStatusSet") {
        use(item.value("instanceId"))
        use(item.child("instanceState")?.value("name"))
        use(item.child("instanceStatus")?.value("status"))
        use(item.child("systemStatus")?.value("status"))
    }
    for item in root.items("addressesSet") {
        for name in ["publicIp", "allocationId", "networkInterfaceId", "privateIpAddress"] { use(item.value(name)) }
    }
    if sink == -1 { print(sink) }
}

/// The process's entry point (SwiftPM links `main` to it): libFuzzer's driver, with the function below.
@_cdecl("fuzz_xml_main")
func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    fuzz_run(argc, argv)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    guard let root = try? XML.parse(bytes) else { return 0 }
    require(depth(root) <= 64, "tree deeper than the reader's limit")
    walk(root)
    return 0
}
