//! The customer chat: at `/` as a page, at `/widget` compact for an iframe
//! (see `public/embed.js`). The conversation is restored from the session;
//! answers stream token by token and render as sanitised markdown.
//!
//! Without JavaScript the page still works: history is server-rendered, and
//! the forms post to plain server functions that redirect back here.

mod stream;

use std::time::Duration;

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos::task::spawn_local;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use uuid::Uuid;

use crate::api::AppError;
use crate::api::chat::{
    NewConversation, RequestHuman, SendMessageForm, give_feedback, load_conversation, new_conversation, request_human,
    send_message,
};
use crate::api::types::{Conversation, StreamEvent};
use crate::ui::markdown;
use stream::LineDecoder;

const DEFAULT_ACCENT: &str = "#2563eb";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Done,
    /// Sent; waiting for the first token.
    Waiting,
    Streaming,
    /// The customer pressed "Stop".
    Stopped,
    Failed,
}

/// A message on screen. Its parts are signals so streaming touches only
/// the message being written.
#[derive(Debug, Clone)]
struct UiMessage {
    key: usize,
    role: &'static str,
    text: RwSignal<String>,
    phase: RwSignal<Phase>,
    at: RwSignal<DateTime<Utc>>,
    /// "simple → budget · local/smollm2-budget", once known.
    meta: RwSignal<Option<String>>,
    /// The stored answer, once saved: feedback needs it.
    id: RwSignal<Option<Uuid>>,
    rating: RwSignal<Option<i16>>,
    comment: RwSignal<Option<String>>,
}

impl UiMessage {
    fn new(key: usize, role: &'static str, text: String, phase: Phase, at: DateTime<Utc>) -> Self {
        UiMessage {
            key,
            role,
            text: RwSignal::new(text),
            phase: RwSignal::new(phase),
            at: RwSignal::new(at),
            meta: RwSignal::new(None),
            id: RwSignal::new(None),
            rating: RwSignal::new(None),
            comment: RwSignal::new(None),
        }
    }
}

/// A line under the conversation: a problem, maybe with a retry.
#[derive(Debug, Clone, PartialEq)]
struct Notice {
    text: String,
    retry: bool,
}

/// Minutes to subtract from UTC for the visitor's clock; 0 (UTC) until the
/// page is hydrated, so server and browser render the same first frame.
#[derive(Clone, Copy)]
struct ClockOffset(RwSignal<i32>);

#[component]
pub fn ChatPage() -> impl IntoView {
    view! {
        <Title text="Support · Triage"/>
        <main class="chat-page">
            <Chat title="Support".to_string() accent=DEFAULT_ACCENT.to_string() embedded=false/>
        </main>
    }
}

/// The chat for an iframe: `?title=…&color=%23rrggbb`.
#[component]
pub fn WidgetPage() -> impl IntoView {
    let query = use_query_map();
    let title = query.with_untracked(|q| q.get("title")).filter(|t| !t.trim().is_empty()).unwrap_or("Support".into());
    let title: String = title.chars().take(60).collect();
    let accent = query.with_untracked(|q| q.get("color")).filter(|c| is_hex_colour(c)).unwrap_or(DEFAULT_ACCENT.into());
    // Escape inside the iframe closes the panel around it (public/embed.js).
    #[cfg(feature = "hydrate")]
    let _ = window_event_listener(leptos::ev::keydown, |ev| {
        if ev.key() == "Escape"
            && let Some(parent) = web_sys::window().and_then(|w| w.parent().ok().flatten())
        {
            let _ = parent.post_message(&wasm_bindgen::JsValue::from_str("triage:close"), "*");
        }
    });
    view! {
        <Title text=title.clone()/>
        <main class="chat-page embedded">
            <Chat title accent embedded=true/>
        </main>
    }
}

/// `#rgb`, `#rrggbb` or `#rrggbbaa`: the only colours put into a style.
fn is_hex_colour(s: &str) -> bool {
    s.len() > 1 && matches!(s.len(), 4 | 7 | 9) && s.starts_with('#') && s[1..].chars().all(|c| c.is_ascii_hexdigit())
}

#[component]
fn Chat(title: String, accent: String, embedded: bool) -> impl IntoView {
    let conversation = Resource::new(|| (), |_| load_conversation());
    let offset = ClockOffset(RwSignal::new(0));
    provide_context(offset);
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading your conversation…"</p> }>
            {
                let (title, accent) = (title.clone(), accent.clone());
                move || {
                    let (title, accent) = (title.clone(), accent.clone());
                    Suspend::new(async move {
                        match conversation.await {
                            Ok(conversation) => view! { <ChatBox conversation title accent embedded/> }.into_any(),
                            Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        }
                    })
                }
            }
        </Suspense>
    }
}

#[component]
fn ChatBox(conversation: Conversation, title: String, accent: String, embedded: bool) -> impl IntoView {
    let ClockOffset(offset) = expect_context::<ClockOffset>();
    let next_key = StoredValue::new(conversation.messages.len());
    let initial: Vec<UiMessage> = conversation
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let role = if m.role == "user" { "user" } else { "assistant" };
            let phase = if m.status == "ok" { Phase::Done } else { Phase::Failed };
            let message = UiMessage::new(i, role, m.content, phase, m.created_at);
            if role == "assistant" {
                message.id.set(Some(m.id));
                message.rating.set(m.rating);
                message.comment.set(m.comment);
            }
            message
        })
        .collect();
    let messages = RwSignal::new(initial);
    let ticket_ref = RwSignal::new(conversation.ticket_ref);
    let escalated = RwSignal::new(conversation.status == "escalated");
    let draft = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let notice = RwSignal::new(conversation.notice.map(|text| Notice { text, retry: false }));
    // seconds until the rate limit lets the customer send again
    let cooldown = RwSignal::new(0u64);
    let stop = StoredValue::new(None::<futures::future::AbortHandle>);
    let hydrated = RwSignal::new(false);
    let log_ref = NodeRef::<leptos::html::Div>::new();
    let input_ref = NodeRef::<leptos::html::Textarea>::new();
    Effect::new(move |_| {
        offset.set(local_clock_offset());
        hydrated.set(true);
    });

    let scroll_to_end = move || {
        if let Some(log) = log_ref.get_untracked() {
            log.set_scroll_top(log.scroll_height());
        }
    };

    let push = move |role: &'static str, text: String, phase: Phase| {
        let key = next_key.get_value();
        next_key.set_value(key + 1);
        let message = UiMessage::new(key, role, text, phase, Utc::now());
        messages.update(|m| m.push(message.clone()));
        message
    };

    // The turn failed before any answer: take both bubbles back and put the
    // text back in the box, so nothing typed is lost.
    let give_back = move |text: String, problem: Notice| {
        messages.update(|m| {
            m.pop();
            m.pop();
        });
        draft.set(text);
        notice.set(Some(problem));
        if let Some(input) = input_ref.get_untracked() {
            let _ = input.focus();
        }
    };

    let start_cooldown = move |seconds: u64| {
        cooldown.set(seconds);
        let handle = StoredValue::new(None::<IntervalHandle>);
        let tick = move || {
            let left = cooldown.get_untracked().saturating_sub(1);
            cooldown.set(left);
            if left == 0 {
                notice.set(None);
                if let Some(h) = handle.get_value() {
                    h.clear();
                }
            }
        };
        if let Ok(h) = set_interval_with_handle(tick, Duration::from_secs(1)) {
            handle.set_value(Some(h));
        }
    };

    let send = move || {
        if busy.get_untracked() || cooldown.get_untracked() > 0 {
            return;
        }
        let text = draft.get_untracked();
        if text.trim().is_empty() {
            notice.set(Some(Notice { text: "Please type a message first.".into(), retry: false }));
            return;
        }
        notice.set(None);
        busy.set(true);
        draft.set(String::new());
        push("user", text.clone(), Phase::Done);
        let answer = push("assistant", String::new(), Phase::Waiting);
        scroll_to_end();
        let (handle, registration) = futures::future::AbortHandle::new_pair();
        stop.set_value(Some(handle));
        spawn_local(async move {
            let turn = async {
                let stream = match send_message(text.clone()).await {
                    Ok(stream) => stream,
                    Err(AppError::RateLimited(seconds)) => {
                        give_back(text.clone(), Notice { text: String::new(), retry: false });
                        start_cooldown(seconds);
                        return;
                    }
                    Err(e) => {
                        let retry = !matches!(e, AppError::BadRequest(_) | AppError::TooManyRequests(_));
                        give_back(text.clone(), Notice { text: e.to_string(), retry });
                        return;
                    }
                };
                use futures::StreamExt;
                let mut stream = stream.into_inner();
                let mut lines = LineDecoder::default();
                let mut end = None;
                while let Some(chunk) = stream.next().await {
                    let Ok(bytes) = chunk else { break };
                    for event in lines.push(&bytes) {
                        if let Some(outcome) = apply(event, &answer, ticket_ref) {
                            end = Some(outcome);
                        }
                    }
                    scroll_to_end();
                }
                match end {
                    Some(Ok(())) => {}
                    // nothing was written: the question goes back in the box
                    Some(Err((message, false))) => give_back(text.clone(), Notice { text: message, retry: true }),
                    Some(Err((message, true))) => {
                        answer.phase.set(Phase::Failed);
                        notice.set(Some(Notice { text: message, retry: false }));
                    }
                    None if answer.text.with_untracked(String::is_empty) => give_back(
                        text.clone(),
                        Notice { text: "Connection lost. Check your connection and try again.".into(), retry: true },
                    ),
                    None => {
                        answer.phase.set(Phase::Failed);
                        notice.set(Some(Notice {
                            text: "Connection lost before the answer was complete.".into(),
                            retry: false,
                        }));
                    }
                }
            };
            if futures::future::Abortable::new(turn, registration).await.is_err() {
                // Stopped: dropping the stream aborts the request, and the
                // server cancels the model.
                answer.phase.set(Phase::Stopped);
            }
            stop.set_value(None);
            busy.set(false);
        });
    };

    let stop_answer = move |_| {
        if let Some(handle) = stop.get_value() {
            handle.abort();
        }
    };

    let start_over = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        spawn_local(async move {
            match new_conversation().await {
                Ok(()) => {
                    messages.set(Vec::new());
                    ticket_ref.set(None);
                    escalated.set(false);
                    notice.set(None);
                }
                Err(e) => notice.set(Some(Notice { text: e.to_string(), retry: false })),
            }
        });
    };

    let ask_for_person = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        spawn_local(async move {
            match request_human().await {
                Ok(reference) => {
                    ticket_ref.set(Some(reference));
                    escalated.set(true);
                }
                Err(e) => notice.set(Some(Notice { text: e.to_string(), retry: false })),
            }
        });
    };

    let section_class = if embedded { "chat embedded" } else { "chat" };
    view! {
        <section
            class=section_class
            style=format!("--accent: {accent}")
            aria-label=title.clone()
            data-hydrated=move || hydrated.get().to_string()
        >
            <header class="chat-header">
                <div>
                    <h1>{title.clone()}</h1>
                    <p class="muted">"Ask us anything. A person can take over at any time."</p>
                </div>
                <div class="ticket">
                    {move || ticket_ref.get().map(|r| view! {
                        <span class="ticket-ref" title="Quote this reference if you talk to a person">
                            "Ticket " <strong data-testid="ticket-ref">{r}</strong>
                        </span>
                    })}
                    <form method="post" action=RequestHuman::PATH on:submit=ask_for_person>
                        <button class="link" type="submit" disabled=move || escalated.get() data-testid="human">
                            {move || if escalated.get() { "Person requested" } else { "Talk to a person" }}
                        </button>
                    </form>
                    <form method="post" action=NewConversation::PATH on:submit=start_over>
                        <button class="link" type="submit" disabled=move || busy.get()>"New conversation"</button>
                    </form>
                </div>
            </header>
            <Show when=move || escalated.get()>
                <p class="handoff" role="status" data-testid="handoff">
                    "We've asked a person to join. They will see this whole conversation"
                    {move || ticket_ref.get().map(|r| format!(" (ticket {r})"))}
                    ". You can keep writing here meanwhile."
                </p>
            </Show>
            <div
                class="log"
                node_ref=log_ref
                aria-live="polite"
                aria-relevant="additions text"
                data-testid="chat-log"
                on:click=copy_code
            >
                <Show when=move || messages.with(Vec::is_empty)>
                    <p class="empty muted">"Hi! How can we help today?"</p>
                </Show>
                <For each=move || messages.get() key=|m| m.key let:m>
                    <ChatMessage message=m/>
                </For>
            </div>
            {move || {
                let waiting = cooldown.get();
                if waiting > 0 {
                    let text = AppError::RateLimited(waiting).to_string();
                    return Some(view! { <p class="error" role="status" data-testid="chat-error">{text}</p> }.into_any());
                }
                notice.get().map(|n| view! {
                    <p class="error" role="alert" data-testid="chat-error">
                        {n.text}
                        {n.retry.then(|| view! {
                            <button class="link retry" type="button" on:click=move |_| send() data-testid="retry">
                                "Try again"
                            </button>
                        })}
                    </p>
                }.into_any())
            }}
            <form class="composer" method="post" action=SendMessageForm::PATH on:submit=move |ev| {
                ev.prevent_default();
                send();
            }>
                <label class="sr-only" for="chat-input">"Your message"</label>
                <textarea
                    id="chat-input"
                    name="text"
                    rows="2"
                    placeholder="Type your message…"
                    node_ref=input_ref
                    bind:value=draft
                    on:keydown=move |ev| {
                        if ev.key() == "Enter" && !ev.shift_key() {
                            ev.prevent_default();
                            send();
                        }
                    }
                ></textarea>
                <Show
                    when=move || busy.get()
                    fallback=move || view! {
                        <button class="button primary" type="submit" disabled=move || { cooldown.get() > 0 } data-testid="send">"Send"</button>
                    }
                >
                    <button class="button" type="button" on:click=stop_answer data-testid="stop">"Stop"</button>
                </Show>
            </form>
        </section>
    }
}

/// Applies one stream event to the answer bubble. At the end of the
/// stream returns `Ok`, or the customer's message and whether part of an
/// answer was shown.
fn apply(
    event: StreamEvent,
    answer: &UiMessage,
    ticket_ref: RwSignal<Option<String>>,
) -> Option<Result<(), (String, bool)>> {
    match event {
        StreamEvent::Started { ticket_ref: r, complexity, tier, model, .. } => {
            ticket_ref.set(Some(r));
            let route = match (complexity, tier) {
                (Some(c), Some(t)) => format!("{c} → {t} · {model}"),
                _ => model,
            };
            answer.meta.set(Some(route));
            None
        }
        StreamEvent::Delta { text } => {
            answer.phase.set(Phase::Streaming);
            answer.text.update(|t| t.push_str(&text));
            None
        }
        StreamEvent::Done { message_id, at, output_tokens, latency_ms, .. } => {
            answer.phase.set(Phase::Done);
            answer.id.set(message_id);
            answer.at.set(at);
            answer.meta.update(|m| {
                if let Some(m) = m {
                    m.push_str(&format!(" · {output_tokens} tokens · {:.1} s", latency_ms as f64 / 1000.0));
                }
            });
            Some(Ok(()))
        }
        StreamEvent::Error { message, partial } => Some(Err((message, partial))),
    }
}

#[component]
fn ChatMessage(message: UiMessage) -> impl IntoView {
    let ClockOffset(offset) = expect_context::<ClockOffset>();
    let UiMessage { role, text, phase, at, meta, id, rating, comment, .. } = message;
    let class = move || {
        let p = match phase.get() {
            Phase::Done => "",
            Phase::Waiting => " waiting",
            Phase::Streaming => " streaming",
            Phase::Stopped => " stopped",
            Phase::Failed => " failed",
        };
        format!("message {role}{p}")
    };
    let body = if role == "assistant" {
        view! { <div class="text md" inner_html=move || markdown::render(&text.get())></div> }.into_any()
    } else {
        view! { <p class="text">{move || text.get()}</p> }.into_any()
    };
    let who = if role == "assistant" { "Assistant" } else { "You" };
    view! {
        <article class=class data-role=role>
            <div class="bubble">
                <Show when=move || phase.get() == Phase::Waiting>
                    <span class="typing" role="img" aria-label="The assistant is typing"><i></i><i></i><i></i></span>
                </Show>
                {body}
            </div>
            <p class="meta">
                <span class="sr-only">{who}", "</span>
                <time
                    datetime=move || at.get().to_rfc3339()
                    title=move || at.get().format("%Y-%m-%d %H:%M UTC").to_string()
                >
                    {move || (at.get() - chrono::Duration::minutes(offset.get() as i64)).format("%H:%M").to_string()}
                </time>
                {move || (phase.get() == Phase::Stopped).then_some(" · stopped")}
                {move || meta.get().map(|m| format!(" · {m}"))}
            </p>
            <Show when=move || role == "assistant" && phase.get() == Phase::Done && id.get().is_some()>
                <Feedback id rating comment/>
            </Show>
        </article>
    }
}

/// Thumbs up or down on one answer, then an optional comment. A customer
/// can change their mind; the last verdict is what is stored.
#[component]
fn Feedback(
    id: RwSignal<Option<Uuid>>,
    rating: RwSignal<Option<i16>>,
    comment: RwSignal<Option<String>>,
) -> impl IntoView {
    let asking = RwSignal::new(false);
    let draft = RwSignal::new(comment.get_untracked().unwrap_or_default());
    let problem = RwSignal::new(None::<String>);
    let comment_ref = NodeRef::<leptos::html::Textarea>::new();

    let rate = move |value: i16| {
        let Some(message_id) = id.get_untracked() else { return };
        let before = rating.get_untracked();
        rating.set(Some(value));
        problem.set(None);
        spawn_local(async move {
            match give_feedback(message_id, value, None).await {
                Ok(()) => {
                    asking.set(true);
                    if let Some(c) = comment_ref.get_untracked() {
                        let _ = c.focus();
                    }
                }
                Err(e) => {
                    rating.set(before);
                    problem.set(Some(e.to_string()));
                }
            }
        });
    };
    let send_comment = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (Some(message_id), Some(value)) = (id.get_untracked(), rating.get_untracked()) else { return };
        let text = draft.get_untracked();
        spawn_local(async move {
            match give_feedback(message_id, value, Some(text.clone())).await {
                Ok(()) => {
                    comment.set(Some(text));
                    asking.set(false);
                }
                Err(e) => problem.set(Some(e.to_string())),
            }
        });
    };
    let thumb = move |value: i16, label: &'static str, testid: &'static str| {
        // feather-style thumbs: an emoji font is not on every machine
        let path = if value > 0 {
            "M14 9V5a3 3 0 0 0-3-3l-4 9v11h11.28a2 2 0 0 0 2-1.7l1.38-9a2 2 0 0 0-2-2.3zM7 22H4a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2h3"
        } else {
            "M10 15v4a3 3 0 0 0 3 3l4-9V2H5.72a2 2 0 0 0-2 1.7l-1.38 9a2 2 0 0 0 2 2.3zm7-13h2.67A2.31 2.31 0 0 1 22 4v7a2.31 2.31 0 0 1-2.33 2H17"
        };
        view! {
            <button
                type="button"
                class="thumb"
                class:chosen=move || rating.get() == Some(value)
                aria-pressed=move || (rating.get() == Some(value)).to_string()
                aria-label=label
                title=label
                data-testid=testid
                on:click=move |_| rate(value)
            >
                <svg viewBox="0 0 24 24" aria-hidden="true"><path d=path/></svg>
            </button>
        }
    };
    view! {
        <div class="feedback">
            {thumb(1, "Helpful", "thumbs-up")}
            {thumb(-1, "Not helpful", "thumbs-down")}
            <Show when=move || asking.get()>
                <form class="comment" on:submit=send_comment>
                    <label class="sr-only" for=move || format!("comment-{}", id.get().unwrap_or_default())>
                        "Tell us more (optional)"
                    </label>
                    <textarea
                        id=move || format!("comment-{}", id.get().unwrap_or_default())
                        rows="2"
                        maxlength="2000"
                        placeholder=move || if rating.get() == Some(-1) { "What was wrong? (optional)" } else { "Anything to add? (optional)" }
                        node_ref=comment_ref
                        bind:value=draft
                        data-testid="feedback-comment"
                    ></textarea>
                    <button class="button" type="submit" data-testid="feedback-send">"Send"</button>
                </form>
            </Show>
            {move || comment.get().filter(|_| !asking.get()).map(|_| view! { <span class="muted">"Thanks for the comment."</span> })}
            {move || problem.get().map(|p| view! { <span class="error" role="alert">{p}</span> })}
        </div>
    }
}

/// Copies a code block when its button is pressed (one listener for the
/// whole log: answers are HTML strings, their buttons have no handlers).
fn copy_code(ev: leptos::ev::MouseEvent) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let Some(target) = ev.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()) else { return };
        let Ok(Some(button)) = target.closest("button[data-copy]") else { return };
        let Some(code) = button.parent_element().and_then(|p| p.query_selector("code").ok().flatten()) else {
            return;
        };
        let text = code.text_content().unwrap_or_default();
        if let Some(window) = web_sys::window() {
            let _ = window.navigator().clipboard().write_text(&text);
        }
        button.set_text_content(Some("Copied"));
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = ev;
}

/// Minutes between UTC and the browser's clock (as `Date.getTimezoneOffset`).
fn local_clock_offset() -> i32 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::new_0().get_timezone_offset() as i32
    }
    #[cfg(not(feature = "hydrate"))]
    0
}

#[cfg(test)]
mod tests {
    use super::is_hex_colour;

    #[test]
    fn only_hex_colours_reach_the_style() {
        for ok in ["#fff", "#0f766e", "#0f766eff"] {
            assert!(is_hex_colour(ok), "{ok}");
        }
        for bad in ["red", "#ggg", "#12", "#fff;background:url(x)", "", "#", "expression(1)"] {
            assert!(!is_hex_colour(bad), "{bad}");
        }
    }
}
