//! `GET /admin/export.csv?<filter>`: the requests view's rows as CSV. The
//! admin middleware refuses it without a session; it checks again here.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::filter::CallFilter;
use crate::http::admin_session::{ADMIN_ID, AdminSession};
use crate::state::AppState;

/// Most rows one export returns.
const MAX_ROWS: i64 = 100_000;

pub async fn export_csv(
    State(state): State<AppState>,
    Extension(AdminSession(session)): Extension<AdminSession>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    if !matches!(session.get::<uuid::Uuid>(ADMIN_ID).await, Ok(Some(_))) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let filter = CallFilter::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let (scope, from, to) = match crate::api::admin::scope(&filter) {
        Ok(s) => s,
        Err(e) => return (e.status(), e.to_string()).into_response(),
    };
    let rows = match crate::store::analytics::export(&state.pool, &scope, MAX_ROWS).await {
        Ok(rows) => rows,
        Err(e) => return crate::api::AppError::from(e).into_response_with_status(),
    };
    let mut out = String::from(
        "time,request_id,ticket,kind,classifier,complexity,confidence,tier,model,provider,input_tokens,output_tokens,cost_usd,latency_ms,ttft_ms,cache,attempt,status,error\n",
    );
    for r in rows {
        let fields = [
            r.created_at.to_rfc3339(),
            r.request_id.to_string(),
            r.ticket_id.as_ref().map(crate::domain::ticket_ref).unwrap_or_default(),
            r.kind,
            r.classifier.unwrap_or_default(),
            r.complexity.unwrap_or_default(),
            r.confidence.map(|c| format!("{c:.3}")).unwrap_or_default(),
            r.tier.unwrap_or_default(),
            r.model,
            r.provider,
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            format!("{:.6}", r.cost_micros as f64 / 1e6),
            r.latency_ms.to_string(),
            r.ttft_ms.map(|t| t.to_string()).unwrap_or_default(),
            r.cache_status,
            r.attempt.to_string(),
            r.status,
            r.error.unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    let name = format!("attachment; filename=\"triage-requests-{from}-{to}.csv\"");
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, name)], out)
        .into_response()
}

/// Quotes a field when needed, and defuses spreadsheet formulas (a value
/// from a model or a customer must not run in the admin's spreadsheet).
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s.parse::<f64>().is_err() {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-0.5"), "-0.5");
        assert_eq!(csv_field("@cmd"), "'@cmd");
    }
}
