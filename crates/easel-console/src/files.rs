//! Why this exists: the page shows thumbnails and opens full images. With local storage
//! (the embedded defaults) the console serves the files itself, under the same rule the
//! storage writes by (bucket-relative keys only, nothing outside the bucket folder); with
//! remote storage the page links to the object where the storage can make a link.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use easel_config::StorageBackend;
use easel_jobs::storage::local::LocalStorage;

use crate::App;

/// The content type of a stored image, by its extension.
fn content_type(key: &str) -> Option<&'static str> {
    let ext = key.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "webp" => "image/webp",
        "jpg" | "jpeg" => "image/jpeg",
        _ => return None,
    })
}

/// The local folder of the bucket, when storage is local.
pub fn local(app: &App) -> Option<LocalStorage> {
    match &app.console.config.storage {
        StorageBackend::Local { root } => Some(LocalStorage::new(root.join(&app.console.config.bucket))),
        _ => None,
    }
}

/// How long a signed link lives; it is signed again when half of that has passed.
const LINK_TTL: Duration = Duration::from_secs(3600);

/// A link to remote object `key`, signed by the storage and kept until half its life is
/// gone; `None` when the storage gives none. A failure is kept for a minute, so an outage
/// of the storage costs one request per image per minute, not one per refresh.
pub async fn link(app: &App, key: &str) -> Option<String> {
    let links = &app.pictures.links;
    let kept = links.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned();
    if let Some((url, _)) = kept.filter(|(_, renew)| Instant::now() < *renew) {
        return Some(url).filter(|u| !u.is_empty());
    }
    let (url, keep) = match app.console.storage.link(key, LINK_TTL).await {
        Ok(Some(url)) => (url, LINK_TTL / 2),
        Ok(None) => (String::new(), LINK_TTL),
        Err(e) => {
            tracing::warn!("console: no link to {key}: {e}");
            (String::new(), Duration::from_secs(60))
        }
    };
    let mut kept = links.lock().unwrap_or_else(|e| e.into_inner());
    if kept.len() > 4096 {
        kept.clear();
    }
    kept.insert(key.to_owned(), (url.clone(), Instant::now() + keep));
    Some(url).filter(|u| !u.is_empty())
}

/// `GET /console/files/{key}`: an image of local storage.
pub async fn serve(State(app): State<Arc<App>>, Path(key): Path<String>) -> Response {
    let not_found = |why: &str| (StatusCode::NOT_FOUND, why.to_owned()).into_response();
    let Some(store) = local(&app) else {
        return not_found("storage is not local: images are linked where they are stored");
    };
    let (Some(path), Some(kind)) = (store.path_of(&key), content_type(&key)) else {
        return not_found("no such image");
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, kind),
                (header::CACHE_CONTROL, "private, max-age=3600"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => not_found("no such image"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_images_are_served() {
        assert_eq!(content_type("u/j/0.PNG"), Some("image/png"));
        assert_eq!(content_type("u/j/0.webp"), Some("image/webp"));
        assert_eq!(content_type("easel.db"), None);
        assert_eq!(content_type("noext"), None);
    }
}
