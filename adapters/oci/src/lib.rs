//! OCI adapter for tokenbridge: the OCI Functions "http-stream" protocol ([`fn_server`]) that
//! carries the gateway contract of `tokenbridge-wire`, and OCI Vault secrets read with the
//! function's resource principal ([`vault`], [`signing`]).

#![forbid(unsafe_code)]

pub mod fn_server;
pub mod signing;
pub mod vault;
