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
    view! {
        <Title text="boxoffice: organizers only"/>
        <h1>"Organizers only"</h1>
        <p>"These pages are for event organizers. Sign in with your organizer account, or create one: \
            you run the events you create, and only those. Without an email address, the house \
            organizers' shared password signs you in."</p>
        <CredentialsForm ids="" sign_up_label="Create an organizer account" submit/>
    }
}

/// Email and password, with a button that signs in and one that opens an
/// account: `submit` gets (open an account?, email, password), and the page
/// reloads once it succeeds. Element ids start with `ids`.
#[component]
pub fn CredentialsForm(
    ids: &'static str,
    sign_up_label: &'static str,
    submit: Action<(bool, String, String), Result<(), ServerFnError>>,
) -> impl IntoView {
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    Effect::new(move |_| {
        if let Some(Ok(())) = submit.value().get() {
            reload_page();
        }
    });
    let send = move |new: bool| {
        submit.dispatch((new, email.get_untracked(), password.get_untracked()));
    };
    view! {
        <form class="form toolbar" on:submit=move |ev| {
            ev.prevent_default();
            send(false);
        }>
            <label>
                "Email"
                <input id=format!("{ids}email") type="email" autocomplete="username"
                    on:input=move |ev| email.set(event_target_value(&ev))/>
            </label>
            <label>
                "Password"
                <input id=format!("{ids}password") type="password" autocomplete="current-password"
                    on:input=move |ev| password.set(event_target_value(&ev))/>
            </label>
            <button id=format!("{ids}sign-in") class="primary" type="submit" disabled=move || submit.pending().get()>"Sign in"</button>
            <button id=format!("{ids}sign-up") class="secondary" type="button" disabled=move || submit.pending().get()
                on:click=move |_| send(true)>{sign_up_label}</button>
        </form>
        <p role="status" aria-live="polite">
            {move || match submit.value().get() {
                Some(Err(e)) => Some(view! { <Notice ok=false text=error_text(&e)/> }),
                _ => None,
            }}
        </p>
    }
}
