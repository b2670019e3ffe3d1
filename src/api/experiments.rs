//! A/B experiments: create, stop, and read results with significance tests.

use leptos::prelude::*;
use uuid::Uuid;

use super::AppError;
#[cfg(feature = "ssr")]
use super::admin::require_admin;
#[cfg(feature = "ssr")]
use super::types::ArmView;
use super::types::ExperimentView;

/// Every experiment, newest first, with its results so far.
#[server(prefix = "/api/admin", endpoint = "experiments")]
pub async fn experiments() -> Result<Vec<ExperimentView>, AppError> {
    require_admin().await?;
    let state = super::state()?;
    let mut out = Vec::new();
    for e in crate::store::experiments::list(&state.pool).await? {
        out.push(results(&state.pool, e).await?);
    }
    Ok(out)
}

/// Starts an experiment (one may run at a time). Variants: `routing`,
/// `model:<catalog name>`, `tier:<tier>`; `split_b` percent of tickets get B.
#[server(prefix = "/api/admin", endpoint = "create_experiment")]
pub async fn create_experiment(
    name: String,
    variant_a: String,
    variant_b: String,
    split_b: i32,
) -> Result<(), AppError> {
    use crate::engine::experiments::Variant;

    require_admin().await?;
    let state = super::state()?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::BadRequest("Give the experiment a name (up to 100 characters).".into()));
    }
    if !(1..=99).contains(&split_b) {
        return Err(AppError::BadRequest("The split must be between 1 and 99 percent.".into()));
    }
    let mut variants = Vec::new();
    for v in [&variant_a, &variant_b] {
        let variant: Variant = v.parse().map_err(AppError::BadRequest)?;
        if let Variant::Model(m) = &variant
            && state.pipeline.catalog().get(m).is_none()
        {
            return Err(AppError::BadRequest(format!("{m} is not in the model catalog.")));
        }
        variants.push(variant.to_string());
    }
    if variants[0] == variants[1] {
        return Err(AppError::BadRequest("The two variants are the same.".into()));
    }
    match crate::store::experiments::create(&state.pool, name, &variants[0], &variants[1], split_b).await {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(AppError::BadRequest("Another experiment is running; stop it first.".into()));
        }
        Err(e) => return Err(e.into()),
    }
    state.pipeline.experiments().invalidate().await;
    Ok(())
}

#[server(prefix = "/api/admin", endpoint = "stop_experiment")]
pub async fn stop_experiment(id: Uuid) -> Result<(), AppError> {
    require_admin().await?;
    let state = super::state()?;
    if !crate::store::experiments::stop(&state.pool, id).await? {
        return Err(AppError::NotFound("No running experiment with that id.".into()));
    }
    state.pipeline.experiments().invalidate().await;
    Ok(())
}

#[cfg(feature = "ssr")]
async fn results(pool: &sqlx::PgPool, e: crate::store::experiments::Experiment) -> Result<ExperimentView, AppError> {
    use crate::engine::experiments::{Arm, readout};
    use crate::engine::stats::Sample;

    let tickets = crate::store::experiments::ticket_results(pool, e.id).await?;
    let arm = |name: &str| {
        let mine: Vec<_> = tickets.iter().filter(|t| t.variant == name).collect();
        let costs: Vec<f64> = mine.iter().map(|t| t.cost_micros as f64).collect();
        let latencies: Vec<f64> = mine.iter().map(|t| t.latency_ms).filter(|l| l.is_finite()).collect();
        Arm {
            tickets: mine.len() as f64,
            cost: Sample::of(&costs),
            latency_ms: Sample::of(&latencies),
            thumbs_up: mine.iter().map(|t| t.thumbs_up as f64).sum(),
            verdicts: mine.iter().map(|t| t.verdicts as f64).sum(),
        }
    };
    let (a, b) = (arm("A"), arm("B"));
    let r = readout(&a, &b);
    let view = |name: &str, variant: &str, arm: &Arm| ArmView {
        name: name.to_string(),
        variant: variant.to_string(),
        tickets: arm.tickets as i64,
        cost_per_ticket_micros: arm.cost.mean,
        latency_ms: arm.latency_ms.mean,
        thumbs_up_rate: (arm.verdicts > 0.0).then(|| arm.thumbs_up / arm.verdicts),
        verdicts: arm.verdicts as i64,
    };
    Ok(ExperimentView {
        id: e.id,
        a: view("A", &e.variant_a, &a),
        b: view("B", &e.variant_b, &b),
        name: e.name,
        status: e.status,
        split_b: e.split_b,
        created_at: e.created_at,
        cost_p_value: r.cost.map(|t| t.p_value),
        thumbs_p_value: r.thumbs.map(|t| t.p_value),
        readout: r.sentence,
    })
}
