//! Alert routing: from the alerts rules raise to the notifications sinks send (DESIGN section
//! 4). The router is pure and clock-injected; delivery and its retries live in `crate::sink`.

pub mod dispatch;
pub mod matcher;
pub mod notification;
pub mod router;
