//! The TCP proxy for fault injection: pause, throttle, and per dialing node cut, silence or slow. It lives in
//! `noex-chaos`, whose chaos run drives one in front of each node; the tests use the same one.

pub use noex_chaos::proxy::{Link, Proxy};
