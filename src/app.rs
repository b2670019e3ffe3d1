//! The HTML shell and the route table.

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{SsrMode, path};

use crate::ui::admin::alerts::AlertsPage;
use crate::ui::admin::experiments::ExperimentsPage;
use crate::ui::admin::login::LoginPage;
use crate::ui::admin::overview::OverviewPage;
use crate::ui::admin::requests::RequestsPage;
use crate::ui::admin::review::ReviewPage;
use crate::ui::admin::ticket::TicketPage;
use crate::ui::chat::{ChatPage, WidgetPage};

pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/triage.css"/>
        <Title text="Triage"/>
        <Router>
            <Routes fallback=|| view! { <p class="not-found">"Page not found."</p> }>
                // Async: the whole page in the first response, so history
                // and the forms work without JavaScript.
                <Route path=path!("/") view=ChatPage ssr=SsrMode::Async/>
                <Route path=path!("/widget") view=WidgetPage ssr=SsrMode::Async/>
                <Route path=path!("/admin/login") view=LoginPage/>
                <Route path=path!("/admin") view=OverviewPage/>
                <Route path=path!("/admin/requests") view=RequestsPage/>
                <Route path=path!("/admin/tickets/:reference") view=TicketPage/>
                <Route path=path!("/admin/review") view=ReviewPage/>
                <Route path=path!("/admin/experiments") view=ExperimentsPage/>
                <Route path=path!("/admin/alerts") view=AlertsPage/>
            </Routes>
        </Router>
    }
}
