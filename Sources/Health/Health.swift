/// Health: AWSnycast's health checks. Probes (ping on its own ICMP socket, tcp with optional TLS, http/https over
/// HTTP, command through the system layer's runner), rise and fall (`HealthState`, a pure state machine), and a
/// thread per check that keeps its verdict.
///
/// It decides nothing about routes; it only answers "healthy?" (nil until the first verdict).
public enum Health {}
