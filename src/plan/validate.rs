//! What the CRD schema cannot check: the spec-only part of the InvalidSpec check.
use super::Invalid;
use super::selector::matches;
use super::surge;
use crate::api::{BlueGreenStrategy, CanaryStrategy, ReleaseSpec, RollingStrategy};

/// A spec that passed validation, with what validation resolved.
pub(super) enum Validated<'a> {
    Rolling {
        bounds: (i32, i32),
    },
    Canary {
        strategy: &'a CanaryStrategy,
        bounds: (i32, i32),
    },
    BlueGreen {
        strategy: &'a BlueGreenStrategy,
    },
}

/// Checks what the CRD schema cannot: the part of the InvalidSpec check that
/// needs nothing but the spec. `controller::check` adds the analyses (templates,
/// args, Secrets) and is what the controller and `kubectl serin lint` call.
pub fn validate(spec: &ReleaseSpec) -> Result<(), Invalid> {
    validated(spec).map(|_| ())
}

/// [`validate`], with what validation resolved.
pub(super) fn validated(spec: &ReleaseSpec) -> Result<Validated<'_>, Invalid> {
    validate_selector(spec)?;
    if let Some(rolling) = &spec.strategy.rolling {
        let bounds = surge::bounds(rolling, spec.replicas).map_err(|e| Invalid::new("spec.strategy.rolling", e))?;
        return Ok(Validated::Rolling { bounds });
    }
    if let Some(canary) = &spec.strategy.canary {
        let surge = RollingStrategy {
            max_surge: canary.max_surge.clone(),
            max_unavailable: canary.max_unavailable.clone(),
            analysis: None,
        };
        let bounds = surge::bounds(&surge, spec.replicas).map_err(|e| Invalid::new("spec.strategy.canary", e))?;
        super::canary::validate(canary, spec.replicas)?;
        return Ok(Validated::Canary {
            strategy: canary,
            bounds,
        });
    }
    match &spec.strategy.blue_green {
        Some(strategy) => Ok(Validated::BlueGreen { strategy }),
        None => Err(Invalid::new(
            "spec.strategy",
            "must set exactly one of rolling, blueGreen or canary",
        )),
    }
}

fn validate_selector(spec: &ReleaseSpec) -> Result<(), Invalid> {
    let selector = &spec.selector;
    if selector.match_labels.as_ref().is_none_or(|l| l.is_empty())
        && selector.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    {
        return Err(Invalid::new(
            "spec.selector",
            "must not be empty; it must select the labels of spec.template",
        ));
    }
    if spec.workload_ref.is_some() && spec.template == Default::default() {
        return Ok(()); // The Deployment's template, checked once the controller reads it.
    }
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    if !matches(selector, &labels) {
        let message = match &spec.workload_ref {
            // The template is the Deployment's (the controller put it in).
            Some(workload) => format!(
                "does not select the pods of Deployment {:?}: its template's labels must match",
                workload.name
            ),
            None => "does not match spec.template.metadata.labels".into(),
        };
        return Err(Invalid::new("spec.selector", message));
    }
    Ok(())
}
