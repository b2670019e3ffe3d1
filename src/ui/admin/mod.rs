//! The admin dashboard. Pages are refused on the server without a signed-in
//! admin (`http::admin_session`); so is every server function they call.

pub mod alerts;
pub mod charts;
pub mod experiments;
pub mod filters;
pub mod login;
pub mod overview;
pub mod requests;
pub mod review;
pub mod ticket;

use leptos::prelude::*;
use leptos_router::components::A;

use crate::api::admin::Logout;

/// "1 call", "3 calls": a count with its noun.
pub fn count(n: impl Into<i64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The navigation bar every admin page starts with.
#[component]
pub fn AdminNav() -> impl IntoView {
    let logout = ServerAction::<Logout>::new();
    view! {
        <nav class="admin-nav" aria-label="Admin">
            <span class="brand">"Triage"</span>
            <A href="/admin" exact=true>"Overview"</A>
            <A href="/admin/requests">"Requests"</A>
            <A href="/admin/review">"Review"</A>
            <A href="/admin/experiments">"Experiments"</A>
            <A href="/admin/alerts">"Alerts"</A>
            <span class="spacer"></span>
            <ActionForm action=logout>
                <button class="link" type="submit" data-testid="logout">"Sign out"</button>
            </ActionForm>
        </nav>
        <alerts::AlertBanner/>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_count_of_one_takes_the_singular() {
        assert_eq!(super::count(1, "call", "calls"), "1 call");
        assert_eq!(super::count(0, "call", "calls"), "0 calls");
        assert_eq!(super::count(3_i32, "try", "tries"), "3 tries");
    }
}
