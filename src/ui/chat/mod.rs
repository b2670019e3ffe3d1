//! The customer chat at `/`: the conversation restored from the session,
//! a message box, and the answer streamed token by token.

mod stream;

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::chat::{load_conversation, new_conversation, send_message};
use crate::api::types::{Conversation, StreamEvent};
use stream::LineDecoder;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Done,
    /// Sent; waiting for the first token.
    Waiting,
    Streaming,
    Failed,
}

/// A message on screen. Text and phase are signals so streaming touches
/// only the message being written.
#[derive(Debug, Clone)]
struct UiMessage {
    key: usize,
    role: &'static str,
    text: RwSignal<String>,
    phase: RwSignal<Phase>,
    /// "simple → budget · local/smollm2-budget", once known.
    meta: RwSignal<Option<String>>,
}

impl UiMessage {
    fn new(key: usize, role: &'static str, text: String, phase: Phase) -> Self {
        UiMessage { key, role, text: RwSignal::new(text), phase: RwSignal::new(phase), meta: RwSignal::new(None) }
    }
}

#[component]
pub fn ChatPage() -> impl IntoView {
    let conversation = Resource::new(|| (), |_| load_conversation());
    view! {
        <Title text="Support · Triage"/>
        <main class="chat-page">
            <Suspense fallback=|| view! { <p class="muted">"Loading your conversation…"</p> }>
                {move || Suspend::new(async move {
                    match conversation.await {
                        Ok(conversation) => view! { <ChatBox conversation/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </main>
    }
}

#[component]
fn ChatBox(conversation: Conversation) -> impl IntoView {
    let next_key = StoredValue::new(conversation.messages.len());
    let initial: Vec<UiMessage> = conversation
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let role = if m.role == "user" { "user" } else { "assistant" };
            let phase = if m.status == "ok" { Phase::Done } else { Phase::Failed };
            UiMessage::new(i, role, m.content, phase)
        })
        .collect();
    let messages = RwSignal::new(initial);
    let ticket_ref = RwSignal::new(conversation.ticket_ref);
    let draft = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let hydrated = RwSignal::new(false);
    let log_ref = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| hydrated.set(true));

    let scroll_to_end = move || {
        if let Some(log) = log_ref.get_untracked() {
            log.set_scroll_top(log.scroll_height());
        }
    };

    let push = move |role: &'static str, text: String, phase: Phase| {
        let key = next_key.get_value();
        next_key.set_value(key + 1);
        let message = UiMessage::new(key, role, text, phase);
        messages.update(|m| m.push(message.clone()));
        message
    };

    let send = move || {
        if busy.get_untracked() {
            return;
        }
        let text = draft.get_untracked();
        if text.trim().is_empty() {
            error.set(Some("Please type a message first.".into()));
            return;
        }
        error.set(None);
        busy.set(true);
        draft.set(String::new());
        push("user", text.clone(), Phase::Done);
        let answer = push("assistant", String::new(), Phase::Waiting);
        scroll_to_end();
        leptos::task::spawn_local(async move {
            match send_message(text.clone()).await {
                Err(e) => {
                    // Nothing was answered: take the bubbles back, keep the text.
                    messages.update(|m| {
                        m.pop();
                        m.pop();
                    });
                    draft.set(text);
                    error.set(Some(e.to_string()));
                }
                Ok(stream) => {
                    use futures::StreamExt;
                    let mut stream = stream.into_inner();
                    let mut lines = LineDecoder::default();
                    let mut finished = false;
                    while let Some(chunk) = stream.next().await {
                        let bytes = match chunk {
                            Ok(bytes) => bytes,
                            Err(e) => {
                                error.set(Some(e.to_string()));
                                break;
                            }
                        };
                        for event in lines.push(&bytes) {
                            finished |= apply(event, &answer, ticket_ref, error);
                        }
                        scroll_to_end();
                    }
                    if !finished {
                        answer.phase.set(Phase::Failed);
                        if error.get_untracked().is_none() {
                            error.set(Some("Connection lost before the answer was complete. Please try again.".into()));
                        }
                    }
                }
            }
            busy.set(false);
        });
    };

    let start_over = move |_| {
        leptos::task::spawn_local(async move {
            if new_conversation().await.is_ok() {
                messages.set(Vec::new());
                ticket_ref.set(None);
                error.set(None);
            }
        });
    };

    view! {
        <section class="chat" aria-label="Support chat" data-hydrated=move || hydrated.get().to_string()>
            <header class="chat-header">
                <div>
                    <h1>"Support"</h1>
                    <p class="muted">"Ask us anything. A person can take over at any time."</p>
                </div>
                <div class="ticket">
                    {move || ticket_ref.get().map(|r| view! {
                        <span class="ticket-ref" title="Quote this reference if you talk to a person">
                            "Ticket " <strong data-testid="ticket-ref">{r}</strong>
                        </span>
                    })}
                    <button class="link" type="button" on:click=start_over disabled=move || busy.get()>
                        "New conversation"
                    </button>
                </div>
            </header>
            <div class="log" node_ref=log_ref aria-live="polite" aria-relevant="additions text" data-testid="chat-log">
                <Show when=move || messages.with(Vec::is_empty)>
                    <p class="empty muted">"Hi! How can we help today?"</p>
                </Show>
                <For each=move || messages.get() key=|m| m.key let:m>
                    <ChatMessage message=m/>
                </For>
            </div>
            {move || error.get().map(|e| view! { <p class="error" role="alert" data-testid="chat-error">{e}</p> })}
            <form class="composer" on:submit=move |ev| {
                ev.prevent_default();
                send();
            }>
                <label class="sr-only" for="chat-input">"Your message"</label>
                <textarea
                    id="chat-input"
                    name="text"
                    rows="2"
                    placeholder="Type your message…"
                    bind:value=draft
                    on:keydown=move |ev| {
                        if ev.key() == "Enter" && !ev.shift_key() {
                            ev.prevent_default();
                            send();
                        }
                    }
                ></textarea>
                <button class="button primary" type="submit" disabled=move || busy.get()>
                    {move || if busy.get() { "Sending…" } else { "Send" }}
                </button>
            </form>
        </section>
    }
}

/// Applies one stream event to the answer bubble. Returns true when the
/// stream has reached its end (done or error).
fn apply(
    event: StreamEvent,
    answer: &UiMessage,
    ticket_ref: RwSignal<Option<String>>,
    error: RwSignal<Option<String>>,
) -> bool {
    match event {
        StreamEvent::Started { ticket_ref: r, complexity, tier, model, .. } => {
            ticket_ref.set(Some(r));
            let route = match (complexity, tier) {
                (Some(c), Some(t)) => format!("{c} → {t} · {model}"),
                _ => model,
            };
            answer.meta.set(Some(route));
            false
        }
        StreamEvent::Delta { text } => {
            answer.phase.set(Phase::Streaming);
            answer.text.update(|t| t.push_str(&text));
            false
        }
        StreamEvent::Done { output_tokens, latency_ms, .. } => {
            answer.phase.set(Phase::Done);
            answer.meta.update(|m| {
                if let Some(m) = m {
                    m.push_str(&format!(" · {output_tokens} tokens · {:.1} s", latency_ms as f64 / 1000.0));
                }
            });
            true
        }
        StreamEvent::Error { message, .. } => {
            answer.phase.set(Phase::Failed);
            error.set(Some(message));
            true
        }
    }
}

#[component]
fn ChatMessage(message: UiMessage) -> impl IntoView {
    let UiMessage { role, text, phase, meta, .. } = message;
    let class = move || {
        let p = match phase.get() {
            Phase::Done => "",
            Phase::Waiting => " waiting",
            Phase::Streaming => " streaming",
            Phase::Failed => " failed",
        };
        format!("message {role}{p}")
    };
    view! {
        <article class=class data-role=role>
            <div class="bubble">
                <Show when=move || phase.get() == Phase::Waiting>
                    <span class="typing" aria-label="The assistant is typing"><i></i><i></i><i></i></span>
                </Show>
                <p class="text">{move || text.get()}</p>
            </div>
            {move || meta.get().map(|m| view! { <p class="meta">{m}</p> })}
        </article>
    }
}
