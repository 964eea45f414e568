//! `/v1/videos`: video jobs. Upload a video, follow the job, download its outputs.

use std::path::PathBuf;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::error::{ApiError, ErrorBody};
use crate::jobs::{FILES, JobView};
use crate::routes::analyze::content_type;
use crate::state::AppState;

/// Uploads a video and starts its analysis.
///
/// Send the video as the raw body (`video/mp4`, `video/webm`, `video/quicktime`, ... or
/// `application/octet-stream`) or as the multipart form field `file`. It is streamed to disk,
/// never held in memory. The answer's `Location` is the job's URL.
#[utoipa::path(post, path = "/v1/videos", tag = "videos",
    request_body(content = Vec<u8>, content_type = "video/mp4", description = "The video (or multipart field `file`)"),
    responses(
        (status = 202, description = "Job created", body = JobView),
        (status = 401, description = "Token missing or wrong", body = ErrorBody),
        (status = 413, description = "Upload above --max-video", body = ErrorBody),
        (status = 415, description = "Not a video type", body = ErrorBody),
        (status = 429, description = "Too many jobs queued", body = ErrorBody),
        (status = 503, description = "Models still loading", body = ErrorBody)))]
pub async fn create(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let analyzer = state.analyzer()?;
    let jobs = state.jobs();
    jobs.check_room()?;
    let kind = content_type(request.headers());
    let limit = state.config().limits.max_video_bytes;
    let (job, upload) = jobs.create()?;
    let saved = match kind.as_str() {
        "multipart/form-data" => save_multipart(&state, request, &upload, limit).await,
        t if t.starts_with("video/") || t == "application/octet-stream" => {
            save_stream(request.into_body().into_data_stream(), &upload, limit).await
        }
        other => Err(ApiError::unsupported_type(format!(
            "{} is not a video type: send the video with its type (curl -H 'Content-Type: \
             video/mp4' --data-binary @clip.mp4) or as the form field `file` (curl -F \
             file=@clip.mp4)",
            if other.is_empty() {
                "no Content-Type"
            } else {
                other
            }
        ))),
    };
    if let Err(e) = saved {
        let _ = jobs.remove(job.id());
        return Err(e);
    }
    let view = job.view();
    let location = format!("/v1/videos/{}", job.id());
    jobs.start(job, analyzer);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response())
}

/// A job's state, progress, error and (once finished) links to its files.
#[utoipa::path(get, path = "/v1/videos/{id}", tag = "videos",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 404, description = "No such job", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.jobs().get(&id)?.view()))
}

/// Stops a job (if running) and deletes it with its files.
#[utoipa::path(delete, path = "/v1/videos/{id}", tag = "videos",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such job", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.jobs().remove(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Downloads one of a finished job's files.
#[utoipa::path(get, path = "/v1/videos/{id}/{file}", tag = "videos",
    params(("id" = String, Path, description = "The job's id"),
        ("file" = String, Path, description = "`annotated.mp4`, `faces.jsonl`, `tracks.csv` or `timeline.png`")),
    responses(
        (status = 200, description = "The file"),
        (status = 404, description = "No such job or file, or not finished", body = ErrorBody)))]
pub async fn file(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let job = state.jobs().get(&id)?;
    let path = job.dir().join(&name);
    if !FILES.contains(&name.as_str()) || !job.state().is_finished() || !path.is_file() {
        return Err(ApiError::not_found(format!(
            "job {id} has no file {name:?} (yet): its files are {} once it has finished",
            FILES.join(", ")
        )));
    }
    let mime = match name.rsplit('.').next() {
        Some("mp4") => "video/mp4",
        Some("jsonl") => "application/x-ndjson",
        Some("csv") => "text/csv",
        _ => "image/png",
    };
    let response = ServeFile::new_with_mime(
        &path,
        &mime.parse().map_err(|_| ApiError::internal("bad mime"))?,
    )
    .oneshot(request)
    .await
    .map_err(|e| ApiError::internal(format!("cannot read {name}: {e}")))?;
    Ok(response.map(Body::new))
}

/// Writes a body stream to `path`, refusing more than `limit` bytes (the partial file is the
/// caller's to delete).
async fn save_stream<S, E>(mut body: S, path: &PathBuf, limit: u64) -> Result<(), ApiError>
where
    S: Stream<Item = Result<axum::body::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("the upload broke off: {e}")))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(too_large(limit));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
    }
    file.flush()
        .await
        .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
    if size == 0 {
        return Err(ApiError::bad_request("the upload is empty: send a video"));
    }
    Ok(())
}

async fn save_multipart(
    state: &AppState,
    request: Request,
    path: &PathBuf,
    limit: u64,
) -> Result<(), ApiError> {
    let mut form = Multipart::from_request(request, state)
        .await
        .map_err(|e| ApiError::bad_request(format!("bad multipart form: {}", e.body_text())))?;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("bad multipart form: {}", e.body_text())))?
    {
        if field.name() == Some("file") {
            return save_stream(field, path, limit).await;
        }
    }
    Err(ApiError::bad_request(
        "the form has no field named `file`: send the video as `file` (curl -F file=@clip.mp4)",
    ))
}

fn too_large(limit: u64) -> ApiError {
    ApiError::too_large(format!(
        "the video is larger than {} MiB, this server's limit (--max-video); cut it or lower \
         its resolution first",
        limit >> 20
    ))
}
