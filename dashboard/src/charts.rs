//! Small live charts.

use leptos::prelude::*;

/// How many samples the live charts keep (about two minutes).
pub const HISTORY: usize = 120;

/// A sparkline of `values` (oldest first), scaled to its own range.
#[component]
pub fn Sparkline(
    #[prop(into)] values: Signal<Vec<f64>>,
    #[prop(into)] label: String,
) -> impl IntoView {
    const W: f64 = 96.0;
    const H: f64 = 28.0;
    let points = move || {
        let v = values.get();
        let max = v.iter().copied().fold(0.0_f64, f64::max).max(1e-9);
        let step = if v.len() > 1 {
            W / (v.len() - 1) as f64
        } else {
            0.0
        };
        v.iter()
            .enumerate()
            .map(|(i, y)| {
                format!(
                    "{:.1},{:.1}",
                    i as f64 * step,
                    H - 2.0 - (y / max) * (H - 4.0)
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    view! {
        <svg class="spark" width=W height=H viewBox=format!("0 0 {W} {H}") role="img" aria-label=label>
            <polyline points=points/>
        </svg>
    }
}

/// Appends to a bounded history (the last `keep` values).
pub fn push_bounded<T>(history: &mut Vec<T>, value: T, keep: usize) {
    history.push(value);
    if history.len() > keep {
        let extra = history.len() - keep;
        history.drain(..extra);
    }
}
