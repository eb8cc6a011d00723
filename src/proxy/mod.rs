pub mod dns;
pub mod engine;
pub mod explicit;
pub mod http_head;
pub mod server;
pub mod sni;
pub mod stub;
pub mod transparent;
