//! Leptos pages and components, compiled for the server and the browser.
//! Data comes only through the server functions in `crate::api`.

pub mod admin;
pub mod chat;
pub mod markdown;
