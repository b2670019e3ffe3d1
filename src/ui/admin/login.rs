//! `/admin/login`: works as a plain HTML form too.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::admin::Login;

#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let next = use_query_map().with_untracked(|q| q.get("next")).unwrap_or_default();
    view! {
        <Title text="Sign in · Triage admin"/>
        <main class="login-page">
            <ActionForm action=login attr:class="login">
                <h1>"Triage admin"</h1>
                <label for="username">"Username"</label>
                <input id="username" name="username" autocomplete="username" required autofocus/>
                <label for="password">"Password"</label>
                <input id="password" name="password" type="password" autocomplete="current-password" required/>
                <input type="hidden" name="next" value=next/>
                {move || login.value().get().and_then(Result::err).map(|e| view! {
                    <p class="error" role="alert" data-testid="login-error">{e.to_string()}</p>
                })}
                <button class="button primary" type="submit" disabled=move || login.pending().get()>
                    {move || if login.pending().get() { "Signing in…" } else { "Sign in" }}
                </button>
            </ActionForm>
        </main>
    }
}
