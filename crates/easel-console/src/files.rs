//! Why this exists: the page shows thumbnails and opens full images. With local storage
//! (the embedded defaults) the console serves the files itself, under the same rule the
//! storage writes by (bucket-relative keys only, nothing outside the bucket folder); with
//! remote storage the page links to the object where the storage can make a link.

use std::sync::Arc;

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
