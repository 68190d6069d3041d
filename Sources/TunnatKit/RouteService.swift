import AWS
import Failover
import Foundation
import Logging
import SystemCalls

/// Builds the failover module from its configuration: the instance's identity (config first, IMDSv2 for the rest),
/// credentials, the EC2 client, and the route manager. `tunnat routes` and `tunnat run` both start it this way.
public enum RouteService {
    public static func makeManager(_ config: FailoverConfiguration, noop: Bool, logger: Logger) throws(FailoverError) -> RouteManager {
        // The SDKs' variables stand in for what the config does not set (an AWSnycast file has no aws section).
        let metadataEndpoint = config.aws.metadataEndpoint ?? Environment.value("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            ?? InstanceMetadataClient.defaultEndpoint
        let endpoint = config.aws.endpoint ?? Environment.value("AWS_ENDPOINT_URL_EC2") ?? Environment.value("AWS_ENDPOINT_URL")
        let imds = InstanceMetadataClient(endpoint: metadataEndpoint)
        var identity = config.aws.identity
        if !identity.missingFields.isEmpty || identity.mac.isEmpty {
            do { identity = try identity.completed(from: imds) } catch {
                guard identity.missingFields.isEmpty else {
                    throw FailoverError("\(error); without the instance metadata service set failover.aws "
                        + identity.missingFields.joined(separator: ", "))
                }
                // Everything needed is configured; only the pool address confirmation goes without IMDS.
            }
        }
        logger.info("this is \(identity)")
        let credentials = CredentialProvider(profile: config.aws.profile, imds: imds)
        do {
            let (found, source) = try credentials.resolve()
            logger.info("AWS credentials: key \(found.accessKeyID) from \(source)")
        } catch {
            throw FailoverError("\(error)")
        }
        let ec2 = EC2Client(region: identity.region, endpoint: endpoint, credentials: credentials,
                            retry: config.aws.retry, timeoutMilliseconds: Int(config.aws.timeoutSeconds) * 1000,
                            onRetry: { error, attempt, delay in
                                logger.warning("\(error); retry \(attempt) in \(delay) ms")
                            })
        return try RouteManager(config: config, identity: identity, ec2: ec2, imds: identity.mac.isEmpty ? nil : imds,
                            noop: noop, logger: logger)
    }
}

extension RouteService {
    /// Runs the route manager on its own thread until SIGINT or SIGTERM (`tunnat routes` without --oneshot).
    public static func runUntilSignalled(_ manager: RouteManager, logger: Logger) throws(FailoverError) {
        try manager.preflight()
        let signals: StopSignal
        let running: NamedThread
        do {
            signals = try StopSignals.install()
            running = try NamedThread("tunnat-routes") { manager.run() }
        } catch {
            throw FailoverError("\(error)")
        }
        while !signals.sleep(milliseconds: -1) {}
        logger.notice("stopping")
        manager.stop()
        running.join()
    }
}
