//! The organizer sign-in, in front of every organizer page.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::app::{Notice, error_text};
use crate::rpc::{is_organizer, sign_in, sign_up};

/// Shows `children` to signed-in organizers and the sign-in form to anyone
/// else; the data behind these pages is refused to them as well.
#[component]
pub fn OrganizersOnly(children: ChildrenFn) -> impl IntoView {
    let signed_in = Resource::new(|| (), |_| is_organizer());
    let children = StoredValue::new(children);
    view! {
        <Suspense fallback=|| view! { <p>"Checking your sign-in…"</p> }>
            {move || Suspend::new(async move {
                match signed_in.await {
                    Ok(true) => children.with_value(|c| c()).into_any(),
                    _ => view! { <SignIn/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

pub fn reload_page() {
    #[cfg(feature = "hydrate")]
    let _ = window().location().reload();
}

#[component]
fn SignIn() -> impl IntoView {
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let submit = Action::new(move |(new, e, p): &(bool, String, String)| {
        let (new, e, p) = (*new, e.clone(), p.clone());
        async move {
            if new {
                sign_up(e, p).await
            } else {
                sign_in(e, p).await
            }
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(())) = submit.value().get() {
            reload_page();
        }
    });
    let send =
        move |new: bool| submit.dispatch((new, email.get_untracked(), password.get_untracked()));
    view! {
        <Title text="boxoffice: organizers only"/>
        <h1>"Organizers only"</h1>
        <p>"These pages are for event organizers. Sign in with your organizer account, or create one: \
            you run the events you create, and only those. Without an email address, the house \
            organizers' shared password signs you in."</p>
        <form class="form toolbar" on:submit=move |ev| {
            ev.prevent_default();
            send(false);
        }>
            <label>
                "Email"
                <input id="email" type="email" autocomplete="username"
                    on:input=move |ev| email.set(event_target_value(&ev))/>
            </label>
            <label>
                "Password"
                <input id="password" type="password" autocomplete="current-password"
                    on:input=move |ev| password.set(event_target_value(&ev))/>
            </label>
            <button id="sign-in" class="primary" type="submit" disabled=move || submit.pending().get()>"Sign in"</button>
            <button id="sign-up" class="secondary" type="button" disabled=move || submit.pending().get()
                on:click=move |_| { send(true); }>"Create an organizer account"</button>
        </form>
        <p role="status" aria-live="polite">
            {move || match submit.value().get() {
                Some(Err(e)) => Some(view! { <Notice ok=false text=error_text(&e)/> }),
                _ => None,
            }}
        </p>
    }
}
