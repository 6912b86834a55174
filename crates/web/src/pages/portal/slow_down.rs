//! The page of a client over its budget of anonymous writes (issue #16): in Italian or
//! English, with the minutes to wait and `Retry-After`. The guard counts; this renders.

use askama::Template;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::AppState;
use crate::i18n::Tr;
use crate::pages::{Frame, language, page};

#[derive(Template)]
#[template(path = "portal_slow_down.html")]
struct SlowDownPage {
    tr: Tr,
    frame: Frame,
    minutes: String,
}

/// The 429 page: wait `retry_after_secs` (shown rounded up to minutes).
pub fn slow_down(state: &AppState, headers: &HeaderMap, retry_after_secs: u64) -> Response {
    let tr = language(None, headers);
    let page_ = SlowDownPage {
        tr,
        frame: Frame::new(state, "", None, crate::cookies::random_token()),
        minutes: retry_after_secs.div_ceil(60).max(1).to_string(),
    };
    let mut response = page(StatusCode::TOO_MANY_REQUESTS, &page_);
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs.max(1)),
    );
    response
}
