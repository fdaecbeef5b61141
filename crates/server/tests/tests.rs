//! Integration tests of colorize-server: one test binary (STYLE.md), one module per area.

mod api;
mod browser;
mod common;
mod hardening;
mod retention;
mod shutdown;
