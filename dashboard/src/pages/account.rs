//! A buyer's account: sign in or create one, sign out. Without one, the
//! web app books as a guest (where the deployment allows guests).

use leptos::prelude::*;
use leptos_meta::Title;

use super::sign_in::reload_page;
use crate::app::{Notice, error_text};
use crate::rpc::{buyer_sign_in, buyer_sign_out, buyer_signed_in};

#[component]
pub fn AccountPage() -> impl IntoView {
    let signed_in = Resource::new(|| (), |_| buyer_signed_in());
    view! {
        <Title text="boxoffice: your account"/>
        <h1>"Your account"</h1>
        <Suspense fallback=|| view! { <p>"Checking your sign-in…"</p> }>
            {move || Suspend::new(async move {
                match signed_in.await {
                    Ok(true) => view! { <SignedIn/> }.into_any(),
                    _ => view! { <SignInForm/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn SignedIn() -> impl IntoView {
    view! {
        <p id="account-state">"You are signed in: your holds and tickets belong to your account, on any device."</p>
        <button id="buyer-sign-out" class="secondary" on:click=move |_| {
            leptos::task::spawn_local(async {
                let _ = buyer_sign_out().await;
                reload_page();
            });
        }>"Sign out"</button>
    }
}

#[component]
fn SignInForm() -> impl IntoView {
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let submit = Action::new(move |(new, e, p): &(bool, String, String)| {
        buyer_sign_in(e.clone(), p.clone(), *new)
    });
    Effect::new(move |_| {
        if let Some(Ok(())) = submit.value().get() {
            reload_page();
        }
    });
    let send =
        move |new: bool| submit.dispatch((new, email.get_untracked(), password.get_untracked()));
    view! {
        <p>"Sign in to book with your account, or create one: the seat limit of each event is per \
            account, and your tickets follow you to any device."</p>
        <form class="form toolbar" on:submit=move |ev| {
            ev.prevent_default();
            send(false);
        }>
            <label>
                "Email"
                <input id="buyer-email" type="email" autocomplete="username"
                    on:input=move |ev| email.set(event_target_value(&ev))/>
            </label>
            <label>
                "Password"
                <input id="buyer-password" type="password" autocomplete="current-password"
                    on:input=move |ev| password.set(event_target_value(&ev))/>
            </label>
            <button id="buyer-sign-in" class="primary" type="submit" disabled=move || submit.pending().get()>"Sign in"</button>
            <button id="buyer-sign-up" class="secondary" type="button" disabled=move || submit.pending().get()
                on:click=move |_| { send(true); }>"Create an account"</button>
        </form>
        <p role="status" aria-live="polite">
            {move || match submit.value().get() {
                Some(Err(e)) => Some(view! { <Notice ok=false text=error_text(&e)/> }),
                _ => None,
            }}
        </p>
    }
}
