//! Misclassification review: the queue, labels, and retraining the
//! embedding classifier's head from the shipped data plus the labels.

use leptos::prelude::*;
use uuid::Uuid;

use super::AppError;
#[cfg(feature = "ssr")]
use super::admin::require_admin;
#[cfg(feature = "ssr")]
use super::types::{AccuracyPoint, ReviewItemView};
use super::types::{RetrainStatus, ReviewPage};

/// Classifications below this confidence are queued for review.
pub const LOW_CONFIDENCE: f32 = 0.6;

/// The state of the one retraining an instance runs at a time.
#[cfg(feature = "ssr")]
pub type RetrainState = std::sync::Arc<std::sync::Mutex<RetrainStatus>>;

#[cfg(feature = "ssr")]
fn retrain_state() -> Result<RetrainState, AppError> {
    Ok(super::state()?.retrain)
}

/// Thumbs-down, escalated or unsure calls, newest first.
#[server(prefix = "/api/admin", endpoint = "review_queue")]
pub async fn review_queue(include_labelled: bool) -> Result<ReviewPage, AppError> {
    use crate::store::labels;

    require_admin().await?;
    let state = super::state()?;
    let (items, accuracy, count) = tokio::try_join!(
        labels::queue(&state.pool, LOW_CONFIDENCE, include_labelled, 100),
        labels::weekly_accuracy(&state.pool),
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM labels").fetch_one(&state.pool),
    )?;
    let retrain = retrain_state()?.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(ReviewPage {
        items: items
            .into_iter()
            .map(|i| ReviewItemView {
                request_id: i.request_id,
                ticket_ref: i.ticket_id.as_ref().map(crate::domain::ticket_ref),
                query: i.query,
                classifier: i.classifier,
                complexity: i.complexity,
                confidence: i.confidence,
                reason: i.reason,
                tier: i.tier,
                model: i.model,
                rating: i.rating,
                comment: i.comment,
                escalated: i.escalated,
                label: i.label,
                created_at: i.created_at,
            })
            .collect(),
        accuracy: accuracy
            .into_iter()
            .map(|a| AccuracyPoint { week: a.week, reviewed: a.reviewed, correct: a.correct })
            .collect(),
        labels: count,
        retrain,
        classifier: state.pipeline.classifier().name().to_string(),
    })
}

/// Sets the complexity a request should have had.
#[server(prefix = "/api/admin", endpoint = "set_label")]
pub async fn set_label(request_id: Uuid, label: String) -> Result<(), AppError> {
    use crate::store::labels;

    let admin = require_admin().await?;
    if !["simple", "medium", "complex"].contains(&label.as_str()) {
        return Err(AppError::BadRequest("label must be simple, medium or complex".into()));
    }
    let state = super::state()?;
    if !labels::set(&state.pool, request_id, &label, admin.id).await? {
        return Err(AppError::NotFound("That request has no stored question to label.".into()));
    }
    Ok(())
}

/// Starts retraining in the background; `review_queue` reports progress.
#[server(prefix = "/api/admin", endpoint = "retrain")]
pub async fn retrain() -> Result<RetrainStatus, AppError> {
    require_admin().await?;
    let state = super::state()?;
    let status = retrain_state()?;
    {
        let mut s = status.lock().map_err(|_| AppError::Internal)?;
        if s.running {
            return Err(AppError::BadRequest("Retraining is already running.".into()));
        }
        *s = RetrainStatus {
            running: true,
            started_at: Some(chrono::Utc::now()),
            message: "Retraining…".into(),
            ..RetrainStatus::default()
        };
    }
    let snapshot = status.lock().map(|s| s.clone()).unwrap_or_default();
    tokio::spawn(async move {
        let result = run_retrain(&state).await;
        if let Ok(mut s) = status.lock() {
            s.running = false;
            s.finished_at = Some(chrono::Utc::now());
            match result {
                Ok(message) => {
                    s.ok = true;
                    s.message = message;
                }
                Err(message) => {
                    s.ok = false;
                    s.message = message;
                }
            }
        }
    });
    Ok(snapshot)
}

/// Shipped examples plus every label (each label counted three times: an
/// admin's correction of a real query should outweigh a synthetic example).
#[cfg(feature = "ssr")]
async fn run_retrain(state: &crate::state::AppState) -> Result<String, String> {
    use crate::domain::Complexity;
    use crate::engine::classify::{embedding::Paths, training};

    let started = std::time::Instant::now();
    let mut set = training::TrainingSet::load(&state.config.classifier.training_data).map_err(|e| e.to_string())?;
    let shipped = set.examples.len();
    let labels = crate::store::labels::all(&state.pool).await.map_err(|e| e.to_string())?;
    for l in &labels {
        let Ok(label) = l.label.parse::<Complexity>() else { continue };
        for _ in 0..3 {
            set.examples.push(training::Example { id: None, query: l.query.clone(), label });
        }
    }
    let paths = Paths::new(&state.config.models_dir);
    let live = state.pipeline.classifier().embedding().cloned();
    let swapped = live.is_some();
    let artifact = tokio::task::spawn_blocking(move || training::retrain(live.as_deref(), &paths, &set))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let how = if swapped {
        "the new head is routing traffic now"
    } else {
        "saved; the running classifier is not the embedding one, so routing is unchanged until it is"
    };
    Ok(format!(
        "Retrained on {shipped} shipped examples and {} labels in {:.0} s ({} examples in all); {how}.",
        labels.len(),
        started.elapsed().as_secs_f64(),
        artifact.examples
    ))
}
