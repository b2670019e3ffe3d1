//! The admin's session. The widget's session cookie is `SameSite=Lax` (a
//! customer arriving from a link must see their conversation); an admin's
//! must be `Strict`, so the admin gets a cookie of its own, `triage_admin`,
//! kept in the same Postgres session store. This middleware does for that
//! cookie what tower-sessions' layer does for the widget's, and refuses
//! admin pages and admin server functions without a signed-in admin, and
//! cross-site posts.

use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use tower_sessions::cookie::{Cookie, SameSite};
use tower_sessions::session::Id;
use tower_sessions::{Expiry, Session};

use crate::api::AppError;
use crate::api::filter::encode;
use crate::state::AppState;
use crate::store::sessions::PgSessionStore;

pub const COOKIE: &str = "triage_admin";
/// The session key holding the signed-in admin's id.
pub const ADMIN_ID: &str = "admin_id";
/// Where admin server functions live (`#[server(prefix = ...)]`).
pub const API_PREFIX: &str = "/api/admin/";
pub const LOGIN_PATH: &str = "/admin/login";

/// The admin session of this request (present on every page and server
/// function request; empty when nobody is signed in).
#[derive(Clone)]
pub struct AdminSession(pub Session);

pub async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let is_admin_api = path.starts_with(API_PREFIX);
    let is_admin_page = (path == "/admin" || path.starts_with("/admin/")) && path != LOGIN_PATH;

    if is_admin_api && req.method() == Method::POST && cross_site(req.headers()) {
        return AppError::Forbidden("cross-site request refused".into()).into_response_with_status();
    }
    let id = cookie_value(req.headers()).and_then(|v| Id::from_str(&v).ok());
    let had_cookie = id.is_some();
    let store = Arc::new(PgSessionStore::new(state.pool.clone()));
    let expiry = Expiry::OnInactivity(time::Duration::hours(state.config.admin.session_hours as i64));
    let session = Session::new(id, store, Some(expiry));

    if is_admin_api || is_admin_page {
        let signed_in = match session.get::<uuid::Uuid>(ADMIN_ID).await {
            Ok(id) => id.is_some(),
            Err(e) => {
                tracing::error!(error = %e, "admin session store failed");
                return AppError::Unavailable("Sessions are unavailable; try again shortly.".into())
                    .into_response_with_status();
            }
        };
        if !signed_in {
            if is_admin_api {
                return AppError::Unauthorized.into_response_with_status();
            }
            let next = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/admin");
            return Redirect::to(&format!("{LOGIN_PATH}?next={}", encode(next))).into_response();
        }
    }

    req.extensions_mut().insert(AdminSession(session.clone()));
    let mut res = next.run(req).await;

    if !session.is_modified() {
        return res;
    }
    let secure = state.config.admin.secure_cookies;
    if session.is_empty().await {
        if had_cookie {
            let gone = Cookie::build((COOKIE, "")).path("/").max_age(time::Duration::ZERO).http_only(true);
            append_cookie(&mut res, &gone.build());
        }
        return res;
    }
    if res.status().is_server_error() {
        return res;
    }
    if let Err(e) = session.save().await {
        tracing::error!(error = %e, "could not save the admin session");
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if let Some(id) = session.id() {
        let cookie = Cookie::build((COOKIE, id.to_string()))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(secure)
            .max_age(session.expiry_age());
        append_cookie(&mut res, &cookie.build());
    }
    res
}

/// A browser tells us a request comes from another site: `Sec-Fetch-Site`,
/// or an `Origin` whose host is not ours. (SameSite=Strict already keeps the
/// cookie off such requests; this refuses them outright.)
fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "cross-site";
    }
    let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or(origin);
    origin == "null" || origin_host != host
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_string()))
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_string())
}

fn append_cookie(res: &mut Response, cookie: &Cookie<'_>) {
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        res.headers_mut().append(header::SET_COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cross_site_posts_are_recognised() {
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!cross_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(cross_site(&headers(&[("origin", "https://evil.example"), ("host", "triage.example")])));
        assert!(cross_site(&headers(&[("origin", "null"), ("host", "triage.example")])));
        assert!(!cross_site(&headers(&[("origin", "https://triage.example"), ("host", "triage.example")])));
        // non-browser clients send neither; the session cookie is still required
        assert!(!cross_site(&headers(&[("host", "triage.example")])));
    }

    #[test]
    fn the_admin_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "triage_session=abc; triage_admin=xyz; other=1")]);
        assert_eq!(cookie_value(&h).as_deref(), Some("xyz"));
        assert_eq!(cookie_value(&headers(&[("cookie", "triage_session=abc")])), None);
    }

    #[test]
    fn next_is_encoded() {
        assert_eq!(encode("/admin/requests?tier=budget&x=1"), "/admin/requests%3Ftier%3Dbudget%26x%3D1");
    }
}
