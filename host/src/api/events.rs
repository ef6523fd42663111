//! `GET /api/events`: the event bus as Server-Sent Events, one AVA envelope per `data:` line,
//! optionally filtered to one pipeline (`?pipeline=`). A client reconnecting with
//! `Last-Event-ID` gets what it missed while the events are still buffered.

use super::ApiState;
use super::error::ApiError;
use crate::events::Event;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{self, KeepAlive, Sse};
use futures::Stream;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

/// The SSE stream.
pub async fn sse(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>, ApiError> {
    let pipeline = super::videos::query_param(&q, "pipeline");
    if let Some(p) = &pipeline {
        crate::topology::validate_name("live pipeline", p)?;
    }
    let bus = st.runtime.events().clone();
    let after = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| bus.replay_after(v));
    let (replay, rx) = bus.subscribe(after);
    let keep = move |e: &Event| pipeline.as_deref().is_none_or(|p| e.pipeline() == Some(p));
    let to_sse = {
        let bus = bus.clone();
        move |e: &Arc<Event>| sse::Event::default().id(bus.event_id(e)).data(bus.envelope(e).to_string())
    };
    let replayed: Vec<_> = replay.iter().filter(|e| keep(e)).map(&to_sse).collect();
    let live = futures::stream::unfold(rx, move |mut rx| {
        let keep = keep.clone();
        let to_sse = to_sse.clone();
        async move {
            loop {
                match rx.recv().await {
                    Ok(e) if keep(&e) => return Some((Ok(to_sse(&e)), rx)),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => {
                        return Some((Ok(sse::Event::default().comment(format!("lagged: {n} events dropped"))), rx));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    let stream = futures::StreamExt::chain(futures::stream::iter(replayed.into_iter().map(Ok)), live);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
