pub mod broker;
pub mod brokered;
pub mod captured;
pub mod client_hello;
pub mod content_coding;
pub mod counting;
pub mod denial;
pub mod dns;
mod dropped;
pub mod engine;
pub mod explicit;
pub mod hosts;
pub mod http_head;
pub mod limit;
mod over_limit;
pub mod prefixed;
pub mod server;
pub mod sni;
pub mod splice;
pub mod stub;
pub mod transparent;
pub mod upstream;

#[cfg(test)]
mod audit_failure_tests;
