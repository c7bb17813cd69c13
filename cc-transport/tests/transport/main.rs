//! Integration tests of cc-transport against local servers on 127.0.0.1.

mod http;
mod longpoll;
mod server;
mod tls;
mod upgrade;
mod ws;
