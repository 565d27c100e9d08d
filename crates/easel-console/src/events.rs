//! Why this exists: the page updates without reloading. `GET /console/api/events` is a
//! server-sent event stream that sends the picture as a `state` event whenever it changes
//! (checked every [`REFRESH`](crate::REFRESH)), and a comment every 15 s so that proxies
//! keep an idle stream open. Browsers reconnect by themselves when it drops.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};

use crate::App;

/// `GET /console/api/events`.
pub async fn stream(State(app): State<Arc<App>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = stream::unfold((app, None::<String>), |(app, last)| async move {
        loop {
            let picture = crate::snapshot::latest(&app).await;
            let text = serde_json::to_string(picture.as_ref()).unwrap_or_default();
            if last.as_deref() != Some(text.as_str()) {
                let event = Event::default().event("state").data(text.clone());
                return Some((Ok(event), (app, Some(text))));
            }
            tokio::time::sleep(crate::REFRESH).await;
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
