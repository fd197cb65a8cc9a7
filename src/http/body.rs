//! Request bodies as DRF reads them: JSON, urlencoded or multipart, into one set of fields.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;

use poem::web::Multipart;
use poem::{FromRequest, Request, RequestBody, http::header};
use poem_openapi::ApiExtractor;
use poem_openapi::ApiExtractorType;
use poem_openapi::ExtractParamOptions;
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::types::Type;

use tokio::time::Instant;

use crate::domain::client::host_of;
use crate::domain::{FieldErrors, Input, RawFields};

use super::client::request_client;
use super::error::ApiError;
use super::memory::{BodyMemory, Room};
use super::server::{BodyDeadline, BodyTimedOut};

/// Django's `DATA_UPLOAD_MAX_MEMORY_SIZE`.
pub const MAX_BODY_BYTES: usize = 2_621_440;

const MEDIA_TYPES: [&str; 3] = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
];

/// The body of a request, read (at most [`MAX_BODY_BYTES`]) and parsed only when the handler
/// asks for it, at the step where DRF would parse it: a bad body never hides a 401, 403 or 404.
/// Handlers that hash read it before they take a place in the hashing queue, so a place is only
/// ever held for a body already in memory. `T` only documents the fields.
pub struct DrfBody<T> {
    body: BoxBody<Bytes, std::io::Error>,
    content_type: String,
    deadline: Instant,
    room: Option<Room>,
    _schema: PhantomData<fn() -> T>,
}

/// A parsed body, holding its bytes' room in the body memory until the request ends.
pub struct Fields {
    fields: RawFields,
    _room: Option<Room>,
}

impl Deref for Fields {
    type Target = RawFields;

    fn deref(&self) -> &RawFields {
        &self.fields
    }
}

impl<T> DrfBody<T> {
    pub async fn fields(self) -> Result<Fields, ApiError> {
        self.fields_within(MAX_BODY_BYTES).await
    }

    /// The fields of a body of at most `limit` bytes (413 beyond, before reading when its
    /// `Content-Length` says so). A body not whole by its deadline gets 408; one that finds no
    /// room in the body memory by then, 503; one hyper cannot decode (a malformed chunk), 400.
    pub async fn fields_within(mut self, limit: usize) -> Result<Fields, ApiError> {
        let mut room = self.room.take();
        let bytes = read(self.body, limit, self.deadline, &mut room).await?;
        Ok(Fields {
            fields: parse(&self.content_type, bytes).await?,
            _room: room,
        })
    }
}

async fn read(
    mut body: BoxBody<Bytes, std::io::Error>,
    limit: usize,
    deadline: Instant,
    room: &mut Option<Room>,
) -> Result<Bytes, ApiError> {
    // hyper's own reading of `Content-Length` (a chunked body has none).
    let declared_length = body
        .size_hint()
        .exact()
        .map_or(0, |length| usize::try_from(length).unwrap_or(usize::MAX));
    if declared_length > limit {
        return Err(ApiError::PayloadTooLarge);
    }
    let mut fit = async |size: usize| match room {
        Some(room) => room.fit(size, deadline).await.map_err(|_| {
            crate::meter::refused(crate::meter::Refusal::BodyBudget);
            ApiError::Unavailable
        }),
        None => Ok(()),
    };
    fit(declared_length).await?;
    let mut data = BytesMut::with_capacity(declared_length);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| match BodyTimedOut::caused(&err) {
            true => ApiError::RequestTimeout,
            false => ApiError::Malformed,
        })?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        let size = data.len() + chunk.len();
        if size > limit {
            return Err(ApiError::PayloadTooLarge);
        }
        fit(size).await?;
        data.extend_from_slice(&chunk);
    }
    Ok(data.freeze())
}

impl<'a, T: Type> ApiExtractor<'a> for DrfBody<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: MEDIA_TYPES
                .iter()
                .map(|content_type| MetaMediaType {
                    content_type,
                    schema: T::schema_ref(),
                })
                .collect(),
            required: false,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        // Latin-1, as WSGI decodes headers: any byte makes a character.
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|value| value.as_bytes().iter().map(|&b| char::from(b)).collect())
            .unwrap_or_default();
        let deadline = request
            .extensions()
            .get::<BodyDeadline>()
            .map_or_else(Instant::now, |deadline| deadline.0);
        let room = request
            .data::<Arc<BodyMemory>>()
            .map(|memory| memory.room(host_of(request_client(request).ip)));
        Ok(Self {
            body: body.take()?.into(),
            content_type,
            deadline,
            room,
            _schema: PhantomData,
        })
    }
}

async fn parse(content_type: &str, bytes: Bytes) -> Result<RawFields, ApiError> {
    if bytes.is_empty() {
        return Ok(RawFields::default());
    }
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media_type.as_str() {
        "application/json" => parse_json(&bytes),
        "application/x-www-form-urlencoded" => Ok(parse_urlencoded(&bytes)),
        "multipart/form-data" => parse_multipart(content_type, bytes).await,
        _ => Err(ApiError::UnsupportedMediaType(content_type.to_owned())),
    }
}

fn parse_json(bytes: &[u8]) -> Result<RawFields, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::Unparsable(format!("JSON parse error - {e}")))?;
    let python_type = match value {
        serde_json::Value::Object(map) => {
            let mut fields = RawFields::default();
            for (name, value) in map {
                fields.insert(name, Input::from_json(value));
            }
            return Ok(fields);
        }
        serde_json::Value::Null => {
            return Err(ApiError::Invalid(FieldErrors::non_field(
                "No data provided",
            )));
        }
        serde_json::Value::Array(_) => "list",
        serde_json::Value::String(_) => "str",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(n) if n.is_f64() => "float",
        serde_json::Value::Number(_) => "int",
    };
    Err(ApiError::Invalid(FieldErrors::non_field(format!(
        "Invalid data. Expected a dictionary, but got {python_type}."
    ))))
}

/// Like Django's `QueryDict`, the last value of a repeated key wins.
fn parse_urlencoded(bytes: &[u8]) -> RawFields {
    let mut fields = RawFields::default();
    for (name, value) in url::form_urlencoded::parse(bytes) {
        fields.insert_form_value(name, value.into_owned());
    }
    fields
}

/// Text parts become fields; file parts are not data (Django puts them in `FILES`).
async fn parse_multipart(content_type: &str, bytes: Bytes) -> Result<RawFields, ApiError> {
    let bad = |e: poem::Error| ApiError::Unparsable(format!("Multipart form parse error - {e}"));
    // poem's multipart reader finds the boundary in the request's Content-Type.
    let request = Request::builder()
        .header(header::CONTENT_TYPE, content_type)
        .finish();
    let mut body = RequestBody::new(poem::Body::from(bytes));
    let mut multipart = <Multipart as FromRequest>::from_request(&request, &mut body)
        .await
        .map_err(bad)?;
    let mut fields = RawFields::default();
    while let Some(part) = multipart.next_field().await.map_err(|e| bad(e.into()))? {
        if part.file_name().is_some() {
            continue;
        }
        let Some(name) = part.name().map(str::to_owned) else {
            continue;
        };
        let value = part.bytes().await.map_err(|e| bad(e.into()))?;
        fields.insert_form_value(name, String::from_utf8_lossy(&value).into_owned());
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shapes_get_drf_messages() {
        assert!(
            matches!(parse_json(b"{\"a\":1}"), Ok(fields) if fields.get("a") == &Input::Text("1".into()))
        );
        let list = parse_json(b"[]").unwrap_err();
        assert!(
            matches!(list, ApiError::Invalid(e) if e == FieldErrors::non_field("Invalid data. Expected a dictionary, but got list."))
        );
        assert!(matches!(
            parse_json(b"null").unwrap_err(),
            ApiError::Invalid(_)
        ));
        assert!(
            matches!(parse_json(b"{").unwrap_err(), ApiError::Unparsable(m) if m.starts_with("JSON parse error - "))
        );
    }

    #[test]
    fn urlencoded_last_value_wins() {
        let fields = parse_urlencoded(b"a=1&a=2&b=%C3%A9");
        assert_eq!(fields.get("a"), &Input::Text("2".into()));
        assert_eq!(fields.get("b"), &Input::Text("é".into()));
    }
}
