//! `POST /v1/analyze`: the faces in one image.

use std::path::Path;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use emotrack::AnalyzedFace;
use emotrack::annotate::Annotator;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::state::{AppState, DetectorOptions};
use crate::telemetry;

/// What an image's analysis answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AnalyzeResponse {
    /// The image's width, in pixels.
    pub width: u32,
    /// The image's height, in pixels.
    pub height: u32,
    /// Every face found, in the JSON shape shared by the CLI, video records and the stream.
    #[schema(value_type = Vec<Object>)]
    pub faces: Vec<AnalyzedFace>,
}

/// Options of `/v1/analyze` besides the detector's.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnnotateOption {
    /// Answer with the annotated image (JPEG: boxes, labels, bars, vibes) instead of JSON.
    #[serde(default)]
    pub annotate: bool,
}

/// Name of the upload in error messages.
const UPLOAD: &str = "the uploaded image";

/// JPEG quality of annotated answers.
const JPEG_QUALITY: u8 = 90;

/// Finds every face in an image and tells its emotions.
///
/// Send the image as the raw body with its type (`image/jpeg`, `image/png`, `image/webp`,
/// `image/gif`, `image/bmp`, `image/tiff`) or as the multipart form field `file`.
#[utoipa::path(
    post,
    path = "/v1/analyze",
    tag = "images",
    params(DetectorOptions, AnnotateOption),
    request_body(content = Vec<u8>, content_type = "image/jpeg", description = "The image (or multipart field `file`)"),
    responses(
        (status = 200, description = "The faces (or, with `annotate=true`, the annotated JPEG)", body = AnalyzeResponse),
        (status = 400, description = "Not an image, a corrupt one, or a bad option", body = ErrorBody),
        (status = 401, description = "Token missing or wrong", body = ErrorBody),
        (status = 413, description = "Body or image above the limits", body = ErrorBody),
        (status = 415, description = "Not an image type", body = ErrorBody),
        (status = 429, description = "Every worker busy", body = ErrorBody),
        (status = 503, description = "Models still loading", body = ErrorBody),
    )
)]
pub async fn analyze(
    State(state): State<AppState>,
    ApiQuery(detector): ApiQuery<DetectorOptions>,
    ApiQuery(options): ApiQuery<AnnotateOption>,
    request: Request,
) -> Result<Response, ApiError> {
    let bytes = image_body(&state, request).await?;
    let analyzer = state.analyzer_for(detector).await?;
    let annotate = options.annotate;
    state
        .run_cpu(move || -> Result<Response, ApiError> {
            let mut image = analyzer.decode(&bytes, Path::new(UPLOAD))?;
            let faces = analyzer.analyze(&image);
            telemetry::frame_analysed(faces.len());
            if !annotate {
                let (width, height) = image.dimensions();
                let body = AnalyzeResponse {
                    width,
                    height,
                    faces,
                };
                return Ok(Json(body).into_response());
            }
            let overlays: Vec<_> = faces.iter().map(AnalyzedFace::overlay).collect();
            Annotator::new().draw(&mut image, &overlays);
            let mut jpeg = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
                .encode_image(&image)
                .map_err(|e| {
                    ApiError::internal(format!("cannot encode the annotated image: {e}"))
                })?;
            Ok(([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response())
        })
        .await?
}

/// The image in a request: the raw body of an image type, or the multipart field `file`.
async fn image_body(state: &AppState, request: Request) -> Result<Bytes, ApiError> {
    let limit = state.config().limits.max_body_bytes;
    let kind = content_type(request.headers());
    match kind.as_str() {
        "multipart/form-data" => {
            let mut form = Multipart::from_request(request, state).await.map_err(|e| {
                ApiError::bad_request(format!("bad multipart form: {}", e.body_text()))
            })?;
            while let Some(field) = form
                .next_field()
                .await
                .map_err(|e| multipart_error(&e, limit))?
            {
                if field.name() == Some("file") {
                    return field.bytes().await.map_err(|e| multipart_error(&e, limit));
                }
            }
            Err(ApiError::bad_request(
                "the form has no field named `file`: send the image as `file` (curl -F file=@photo.jpg)",
            ))
        }
        t if t.starts_with("image/") || t == "application/octet-stream" => {
            read_limited(request.into_body(), limit).await
        }
        "" => Err(ApiError::unsupported_type(format!(
            "no Content-Type: {HOW_TO_SEND}"
        ))),
        other => Err(ApiError::unsupported_type(format!(
            "{other} is not an image type: {HOW_TO_SEND}"
        ))),
    }
}

const HOW_TO_SEND: &str = "send the image with its type (curl -H 'Content-Type: image/jpeg' \
    --data-binary @photo.jpg) or as the form field `file` (curl -F file=@photo.jpg)";

/// The media type without parameters, lowercase.
pub(crate) fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Reads a whole body of at most `limit` bytes; 413 beyond.
pub(crate) async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large(limit))
}

fn too_large(limit: usize) -> ApiError {
    ApiError::too_large(format!(
        "the body is larger than {} MiB, this server's limit (--max-body); send a smaller image",
        limit >> 20
    ))
}

fn multipart_error(e: &axum::extract::multipart::MultipartError, limit: usize) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        too_large(limit)
    } else {
        ApiError::bad_request(format!("bad multipart form: {}", e.body_text()))
    }
}
