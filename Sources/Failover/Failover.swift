/// Failover: the route-flipping module, with AWSnycast's model and configuration. It decides, per managed route,
/// whether this instance should hold it (`RouteDecision`, a pure function), and the route manager makes the EC2
/// calls (and moves the pool address) through the AWS client, on the verdicts of the health checks.
///
/// It depends on AWS and Health only. It knows nothing of replication: with an HA group, TunnatKit tells it this
/// node's `RouteRole`. It never touches the packet path, and nothing here logs a secret.
public enum Failover {}
