//! A buyer's account: sign in or create one, sign out. Without one, the
//! web app books as a guest (where the deployment allows guests).

use leptos::prelude::*;
use leptos_meta::Title;

use super::sign_in::{CredentialsForm, reload_page};
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
    let submit = Action::new(move |(new, e, p): &(bool, String, String)| {
        buyer_sign_in(e.clone(), p.clone(), *new)
    });
    view! {
        <p>"Sign in to book with your account, or create one: the seat limit of each event is per \
            account, and your tickets follow you to any device."</p>
        <CredentialsForm ids="buyer-" sign_up_label="Create an account" submit/>
    }
}
