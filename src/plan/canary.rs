//! The canary step machine: where the steps stand, when a step is done, what
//! each ReplicaSet should run now, and promotion, abort and the steady state.
//! `canary_traffic.rs` moves the Services and the route, in the order that
//! keeps traffic safe.
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::canary_traffic::{TrafficPlan, WeightInputs, next_weight};
use super::conditions::{self, PROGRESSING};
use super::deadline::Deadline;
use super::hooks::PostRollout;
use super::judgement::Judgement;
use super::reason::Reason;
use super::round::Round;
use super::routes::{self, active_routes};
use super::{Invalid, RevisionState, Verdict};
use crate::api::validation::duration;
use crate::api::{CanaryStatus, CanaryStep, CanaryStrategy, Phase, Release, SetCanaryScale};

/// Checks what the CRD schema cannot.
pub(super) fn validate(strategy: &CanaryStrategy, replicas: i32) -> Result<(), Invalid> {
    for (index, step) in strategy.steps.iter().enumerate() {
        if let Some(text) = step.pause.as_ref().and_then(|p| p.duration.as_ref()) {
            duration(text)
                .map_err(|e| Invalid::new(format!("spec.strategy.canary.steps[{index}].pause.duration"), e))?;
        }
    }
    routes::validate(strategy)?;
    mirrors_have_canary_pods(strategy, replicas)?;
    if let Some(generic) = strategy.traffic_routing.as_ref().and_then(|t| t.generic.as_ref()) {
        let at = "spec.strategy.canary.trafficRouting.generic";
        generic
            .render(0)
            .map_err(|e| Invalid::new(format!("{at}.patch.template"), e))?;
        generic
            .paths()
            .map_err(|(field, e)| Invalid::new(format!("{at}.weights.{field}"), e))?;
    }
    let starting = strategy.analysis.as_ref().and_then(|a| a.starting_step).unwrap_or(0);
    if usize::try_from(starting).unwrap_or(0) > strategy.steps.len() {
        return Err(Invalid::new(
            "spec.strategy.canary.analysis.startingStep",
            format!("{starting} is past the last of {} steps", strategy.steps.len()),
        ));
    }
    Ok(())
}

/// A mirror is in force only onto canary pods: at a step that runs none while
/// a mirror is in force, the step would wait for a mirror that cannot be had.
fn mirrors_have_canary_pods(strategy: &CanaryStrategy, replicas: i32) -> Result<(), Invalid> {
    if replicas <= 0 || strategy.traffic_routing.is_none() {
        return Ok(());
    }
    for index in 0..strategy.steps.len() {
        let mirror = active_routes(&strategy.steps, index)
            .into_iter()
            .find(|&s| strategy.steps[s].set_mirror_route.is_some());
        if let Some(from) = mirror
            && target(&strategy.steps, index, replicas).canary_pods == 0
        {
            return Err(Invalid::new(
                format!("spec.strategy.canary.steps[{index}]"),
                format!(
                    "runs no canary pod while the mirror of step {from} is in force: set a weight or setCanaryScale first"
                ),
            ));
        }
    }
    Ok(())
}

/// The step the current revision is at, as recorded: 0 for a new revision or a retry.
pub(super) fn resume_index(release: &Release, revision: &str) -> usize {
    let Some(status) = release.status.as_ref() else {
        return 0;
    };
    let retry = status.control.as_ref().is_some_and(|c| c.retry);
    let same = status.canary.as_ref().is_some_and(|c| c.revision == revision);
    if retry || !same {
        return 0;
    }
    status.current_step_index.map_or(0, |i| usize::try_from(i).unwrap_or(0))
}

/// What the steps up to and including `index` ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Target {
    /// Percent of traffic for the canary.
    pub weight: i32,
    /// Canary pods.
    pub canary_pods: i32,
}

/// The weight and canary scale at step `index`; past the last step, everything.
pub(super) fn target(steps: &[CanaryStep], index: usize, replicas: i32) -> Target {
    let replicas = replicas.max(0);
    let Some(done) = steps.get(..=index) else {
        return Target {
            weight: 100,
            canary_pods: replicas,
        };
    };
    let weight = done.iter().rev().find_map(|s| s.set_weight).unwrap_or(0);
    let scale = done.iter().rev().find_map(|s| s.set_canary_scale.as_ref());
    let canary_pods = match scale {
        Some(SetCanaryScale {
            replicas: Some(pods), ..
        }) => (*pods).clamp(0, replicas),
        Some(SetCanaryScale {
            weight: Some(percent), ..
        }) => percent_of(replicas, *percent),
        _ => percent_of(replicas, weight),
    };
    Target { weight, canary_pods }
}

/// `percent` of `replicas`, rounded up: a canary at 1% of 10 pods still runs one.
fn percent_of(replicas: i32, percent: i32) -> i32 {
    let scaled = i64::from(replicas) * i64::from(percent.clamp(0, 100));
    i32::try_from((scaled + 99) / 100).unwrap_or(replicas)
}

fn describe(step: &CanaryStep) -> String {
    if let Some(weight) = step.set_weight {
        format!("setWeight {weight}")
    } else if let Some(pause) = &step.pause {
        match &pause.duration {
            Some(d) => format!("pause {d}"),
            None => "pause".into(),
        }
    } else if step.analysis.is_some() {
        "analysis".into()
    } else if let Some(header) = &step.set_header_route {
        format!("setHeaderRoute {}", header.name)
    } else if let Some(mirror) = &step.set_mirror_route {
        format!("setMirrorRoute {}", mirror.name)
    } else {
        "setCanaryScale".into()
    }
}

impl Round<'_> {
    pub(super) fn decide_canary(&mut self, strategy: &CanaryStrategy, bounds: (i32, i32), retry: bool) {
        if self.blocked_by_traffic() {
            return;
        }
        let in_flight = self
            .status
            .stable_revision
            .as_ref()
            .is_some_and(|s| *s != self.revision);
        if !in_flight {
            return self.canary_steady(strategy);
        }
        self.note_rollout_start(retry);
        let (recorded, index, started) = self.resume_steps(strategy, retry);
        if self.status.failed_revision.is_some() {
            return self.canary_abort(strategy, self.rollback_reason());
        }
        match self.judge_analyses() {
            Judgement::Go => {}
            Judgement::Held => return,
            Judgement::Failed(cause) => {
                self.mark_failed(Reason::AnalysisFailed, cause);
                return self.canary_abort(strategy, Reason::AnalysisFailed);
            }
        }
        if self.spec.paused {
            // A promotion asked for now applies once the rollout resumes.
            let control = self.previous.control.clone().unwrap_or_default();
            self.keep_control = control.promote || control.promote_full;
            return self.paused();
        }
        let (index, started) = self.advance_steps(strategy, index, started);
        if self.route_cannot_be_written(strategy, index) {
            return;
        }
        let target = target(&strategy.steps, index, self.desired());
        if self.canary_deadline(strategy, index, started, target) == Deadline::Exceeded {
            return self.canary_abort(strategy, Reason::ProgressDeadlineExceeded);
        }
        for analysis in [self.analysis, self.gate_analysis].into_iter().flatten() {
            if let Some(due) = analysis.next_due {
                self.requeue_at(due);
            }
        }
        // A weight goes up only once status records the step that allows it, so
        // anyone reading status never sees a route above the recorded step.
        let recorded_step = recorded && self.previous.current_step_index == i32::try_from(index).ok();
        self.canary_toward(strategy, bounds, index, target, recorded_step);
    }

    /// Where the steps of the current revision stand, as recorded (step 0 for a
    /// new revision or a retry), written into status. Returns whether they were
    /// recorded, the step index and when that step started.
    fn resume_steps(&mut self, strategy: &CanaryStrategy, retry: bool) -> (bool, usize, Timestamp) {
        let previous = self.previous;
        let recorded = previous
            .canary
            .as_ref()
            .filter(|c| c.revision == self.revision && !retry);
        let index = recorded
            .and(previous.current_step_index)
            .map_or(0, |i| usize::try_from(i).unwrap_or(0))
            .min(strategy.steps.len());
        // Resuming from spec.paused restarts the step's clock: time spent paused
        // counts neither toward a pause's duration nor toward the deadline.
        let resumed = !self.spec.paused
            && conditions::get(&previous.conditions, PROGRESSING).is_some_and(|c| c.reason == Reason::Paused.as_str());
        let mut started = recorded
            .and_then(|c| c.step_started_at.as_ref())
            .map_or(self.stamp(), |t| t.0);
        if resumed {
            started = self.stamp();
            self.event(
                false,
                Reason::Resumed,
                format!("Rollout of revision {} resumed", self.revision),
            );
        }
        self.status.canary = Some(CanaryStatus {
            revision: self.revision.clone(),
            step_started_at: Some(Time(started)),
            unavailable_since: recorded.and_then(|c| c.unavailable_since.clone()),
            step_analysis: recorded.and_then(|c| c.step_analysis.clone()),
            scale_down_at: self.draining_until(),
        });
        self.status.current_step_index = i32::try_from(index).ok();
        if recorded.is_none() {
            self.status.canary_weight = Some(0);
        }
        (recorded.is_some(), index, started)
    }

    /// Moves past the steps a person promoted and the steps already done, and
    /// records where that leaves the steps. Returns the step index and when it started.
    fn advance_steps(
        &mut self,
        strategy: &CanaryStrategy,
        mut index: usize,
        mut started: Timestamp,
    ) -> (usize, Timestamp) {
        let n = strategy.steps.len();
        let control = self.previous.control.clone().unwrap_or_default();
        if control.promote_full && index < n {
            self.event(
                false,
                Reason::PromotedFull,
                format!("Skipping to promotion of revision {} as requested", self.revision),
            );
            (index, started) = (n, self.stamp());
        } else if control.promote && index < n {
            let note = format!(
                "Step {}/{n} ({}) promoted by request",
                index + 1,
                describe(&strategy.steps[index])
            );
            self.event(false, Reason::StepPromoted, note);
            (index, started) = (index + 1, self.stamp());
        }
        while index < n && self.step_done(strategy, index, started) {
            let note = format!("Step {}/{n} ({}) done", index + 1, describe(&strategy.steps[index]));
            self.event(false, Reason::StepCompleted, note);
            (index, started) = (index + 1, self.stamp());
        }
        self.status.current_step_index = i32::try_from(index).ok();
        if let Some(canary) = self.status.canary.as_mut() {
            canary.step_started_at = Some(Time(started));
            if canary.step_analysis.as_ref().and_then(|a| a.step) != i32::try_from(index).ok() {
                canary.step_analysis = None;
            }
        }
        (index, started)
    }

    /// The progress deadline for the canary pods step `index` asks for. It counts
    /// from when the canary last lacked pods, or from the step's start: a canary
    /// that loses a pod late in a long pause gets the whole deadline to recover.
    fn canary_deadline(
        &mut self,
        strategy: &CanaryStrategy,
        index: usize,
        started: Timestamp,
        target: Target,
    ) -> Deadline {
        let pods = if index < strategy.steps.len() {
            target.canary_pods
        } else {
            self.desired()
        };
        let pending = !self.canary_available(pods);
        let since = self
            .status
            .canary
            .as_ref()
            .and_then(|c| c.unavailable_since.as_ref())
            .map_or(self.stamp(), |t| t.0)
            .max(started);
        if let Some(canary) = self.status.canary.as_mut() {
            canary.unavailable_since = pending.then_some(Time(since));
        }
        self.check_deadline(pending.then(|| self.elapsed_since(since)))
    }

    /// Whether the step at `index` is done, as observed at the start of this round.
    fn step_done(&mut self, strategy: &CanaryStrategy, index: usize, started: Timestamp) -> bool {
        let step = &strategy.steps[index];
        if step.set_weight.is_some() || step.set_canary_scale.is_some() {
            return self.reached(strategy, target(&strategy.steps, index, self.desired()));
        }
        if step.route_name().is_some() {
            // In place, and onto canary pods when the step runs any.
            let target = target(&strategy.steps, index, self.desired());
            let selects = target.canary_pods == 0 || self.traffic.canary_service.as_ref() == Some(&self.revision);
            return self.reached(strategy, target)
                && selects
                && self.traffic.routes.as_deref() == Some(&self.routes_in_force(strategy, index)[..]);
        }
        if let Some(pause) = &step.pause {
            let Some(wait) = pause.duration.as_deref().and_then(|d| duration(d).ok()) else {
                return false; // Until promoted.
            };
            let elapsed = self.elapsed_since(started);
            if elapsed >= wait {
                return true;
            }
            self.requeue_at(wait - elapsed);
            return false;
        }
        self.gate_analysis
            .is_some_and(|a| a.verdict == Verdict::Successful && a.status.step == i32::try_from(index).ok())
    }

    /// The canary runs `pods` available pods, as its ReplicaSet's current spec says.
    fn canary_available(&self, pods: i32) -> bool {
        self.new
            .is_some_and(|c| c.synced && c.replicas == pods && c.available >= pods)
    }

    /// Whether the cluster already carries `target`.
    fn reached(&self, strategy: &CanaryStrategy, target: Target) -> bool {
        if !self.canary_available(target.canary_pods) {
            return false;
        }
        if strategy.traffic_routing.is_some() {
            let selects = self.traffic.canary_service.as_ref() == Some(&self.revision);
            return self.traffic.canary_weight == Some(target.weight) && (target.weight == 0 || selects);
        }
        let stable_share = self.desired() - target.canary_pods;
        let stable = self.stable();
        stable.is_none_or(|s| s.replicas == stable_share)
            && self
                .old
                .iter()
                .filter(|rs| Some(**rs) != stable)
                .all(|rs| rs.replicas == 0)
    }

    /// The previous promotion's drain deadline, while it is still ahead.
    pub(super) fn draining_until(&self) -> Option<Time> {
        self.previous
            .canary
            .as_ref()
            .and_then(|c| c.scale_down_at.clone())
            .filter(|at| at.0 > self.now)
    }

    /// Moves the cluster toward step `index`'s target, and says where it stands.
    fn canary_toward(
        &mut self,
        strategy: &CanaryStrategy,
        bounds: (i32, i32),
        index: usize,
        target: Target,
        may_raise: bool,
    ) {
        let desired = self.desired();
        let promoting = index >= strategy.steps.len();
        let routed = strategy.traffic_routing.is_some();
        let hold_point = promoting && self.takes_all_traffic(routed);
        let post = self.post_rollout(hold_point);
        match &post {
            PostRollout::Failed(cause) => {
                self.mark_failed(Reason::PostRolloutHookFailed, cause.clone());
                return self.canary_abort(strategy, Reason::PostRolloutHookFailed);
            }
            PostRollout::Decided => return,
            PostRollout::Passed | PostRollout::Pending => {}
        }
        let post_pending = post == PostRollout::Pending;
        let mut replicas = if routed {
            self.routed_replicas(target.canary_pods)
        } else {
            self.ratio_replicas(bounds, target.canary_pods)
        };
        if post_pending && !routed && bounds.0 > 0 {
            self.hold_last_stable_pod(&mut replicas);
        }
        let planned = |rs: &RevisionState| {
            replicas
                .iter()
                .find(|(name, _)| name.as_deref() == Some(rs.name.as_str()))
                .map_or(rs.replicas, |(_, count)| *count)
        };
        let planned_stable = self.stable().map_or(0, planned);
        let old_planned_empty = self.old.iter().all(|rs| planned(rs) == 0);
        let canary_available = self.new.map_or(0, |c| c.available);
        let switch_stable = promoting
            && self.new.is_some_and(|c| c.synced)
            && (canary_available >= desired || (!routed && canary_available > 0 && planned_stable == 0));
        let routes = self.routes_to_show(strategy, index, may_raise);
        let plan = self.canary_traffic(routed, promoting, switch_stable, target, may_raise, routes);
        let selected = self.steer(strategy, &plan);
        for (name, count) in replicas {
            self.scale_guarded(name.as_deref(), count, &selected);
        }

        let promoted = switch_stable
            && !post_pending
            && self.canary_available(desired)
            && if routed {
                plan.canary_weight == Some(0)
            } else {
                old_planned_empty
            };
        let weight = if promoted || (post_pending && hold_point) {
            100
        } else if let Some(weight) = plan.canary_weight {
            weight
        } else if self.reached(strategy, target) {
            target.weight
        } else {
            self.status.canary_weight.unwrap_or(0).min(target.weight)
        };
        self.status.canary_weight = Some(weight);
        if promoted {
            return self.canary_promoted(strategy);
        }
        if post_pending && hold_point {
            return self.post_rollout_conditions();
        }
        self.canary_conditions(strategy, index, target);
    }

    /// Every canary pod available and all traffic on them: the stable
    /// Service switched to the canary (with a router), or by the replica ratio.
    fn takes_all_traffic(&self, routed: bool) -> bool {
        let switched =
            self.traffic.stable_service.as_ref() == Some(&self.revision) && self.traffic.canary_weight == Some(0);
        self.canary_available(self.desired()) && (!routed || switched)
    }

    /// Without a router: keeps one pod of the old revisions for the
    /// postRollout hook when this round would take their last.
    fn hold_last_stable_pod(&self, replicas: &mut [(Option<String>, i32)]) {
        let old: Vec<_> = self.old.iter().map(|rs| (rs.name.as_str(), rs.replicas)).collect();
        let planned_old = |name: &Option<String>| old.iter().find(|(n, _)| Some(*n) == name.as_deref()).copied();
        if replicas
            .iter()
            .any(|(name, count)| planned_old(name).is_some() && *count > 0)
        {
            return;
        }
        let newest_running = old
            .iter()
            .rev()
            .find(|(_, count)| *count > 0)
            .map(|(n, _)| n.to_string());
        if let Some(entry) = replicas
            .iter_mut()
            .find(|(name, _)| name.is_some() && *name == newest_running)
        {
            entry.1 = 1;
        }
    }

    /// Where the Services and the route should be after this round; `switch_stable`:
    /// the stable Service moves onto the canary, which takes over.
    fn canary_traffic(
        &self,
        routed: bool,
        promoting: bool,
        switch_stable: bool,
        target: Target,
        may_raise: bool,
        routes: Vec<usize>,
    ) -> TrafficPlan {
        let stable_revision = self.status.stable_revision.clone().unwrap_or_default();
        let canary = self.new;
        let canary_available = canary.map_or(0, |c| c.available);
        // A step that runs no canary pod (a weight back to 0) takes the canary
        // Service back to stable, or its pods could never go.
        let canary_service = if canary_available > 0 && (promoting || target.canary_pods > 0) {
            self.revision.clone()
        } else {
            stable_revision.clone()
        };
        let stable_service = if switch_stable {
            self.revision.clone()
        } else {
            stable_revision
        };
        let selects_canary =
            self.traffic.canary_service.as_ref() == Some(&self.revision) && canary_service == self.revision;
        let weight = WeightInputs {
            promoting,
            switch_stable,
            may_raise,
            selects_canary,
            canary_ready: canary.is_some_and(|c| c.synced) && canary_available >= target.canary_pods.max(1),
            observed: self.traffic.canary_weight,
            target: target.weight,
        };
        TrafficPlan {
            stable_service,
            canary_service,
            canary_weight: routed.then(|| next_weight(&weight)),
            routes: routed.then_some(routes),
        }
    }

    /// Where the canary stands, on its conditions: paused at a pause without a
    /// duration until a person promotes, otherwise stepping.
    fn canary_conditions(&mut self, strategy: &CanaryStrategy, index: usize, target: Target) {
        let n = strategy.steps.len();
        let promoting = index >= n;
        let canary_available = self.new.map_or(0, |c| c.available);
        let step = strategy.steps.get(index);
        let waiting_for_person = step.is_some_and(|s| s.pause.as_ref().is_some_and(|p| p.duration.is_none()));
        let at = if promoting {
            "promotion".to_string()
        } else {
            format!("step {}/{n} ({})", index + 1, step.map(describe).unwrap_or_default())
        };
        let weight = self.status.canary_weight.unwrap_or(0);
        let pods = if promoting { self.desired() } else { target.canary_pods };
        let summary = format!(
            "Canary revision {} at {at}: weight {weight}%, {canary_available} of {pods} canary pods available",
            self.revision
        );
        if waiting_for_person {
            if self.previous.phase != Some(Phase::Paused) {
                self.event(
                    false,
                    Reason::CanaryPauseStep,
                    format!("{summary}; waiting for promotion"),
                );
            }
            let message = format!("{summary}. Paused until promoted");
            self.set_conditions(Phase::Paused, Reason::CanaryPauseStep, message, true, None);
        } else {
            self.set_conditions(Phase::Progressing, Reason::CanaryStep, summary, true, None);
        }
    }

    /// Abort: all traffic to stable first, then the stable revision back to full
    /// size, and only then the canary down.
    fn canary_abort(&mut self, strategy: &CanaryStrategy, why: Reason) {
        let stable = self.status.stable_revision.clone().unwrap_or_default();
        let plan = TrafficPlan {
            stable_service: stable.clone(),
            canary_service: stable,
            canary_weight: strategy.traffic_routing.as_ref().map(|_| 0),
            routes: strategy.traffic_routing.as_ref().map(|_| Vec::new()),
        };
        self.steer(strategy, &plan);
        self.status.canary_weight = Some(0);
        self.roll_back(why);
    }

    /// The canary is the new stable revision: the old one drains, then scales down.
    fn canary_promoted(&mut self, strategy: &CanaryStrategy) {
        self.promote();
        let delay = Duration::from_secs(strategy.scale_down_delay_seconds.max(0) as u64);
        let draining = self.old.iter().any(|rs| rs.replicas > 0);
        let scale_down_at = (draining && strategy.traffic_routing.is_some())
            .then(|| Time(self.stamp().checked_add(delay).unwrap_or(self.now)));
        if scale_down_at.is_some() {
            self.requeue_at(delay);
        }
        self.status.canary = Some(CanaryStatus {
            revision: self.revision.clone(),
            step_started_at: None,
            unavailable_since: None,
            step_analysis: None,
            scale_down_at,
        });
        self.status.current_step_index = i32::try_from(strategy.steps.len()).ok();
        self.status.canary_weight = Some(100);
        self.healthy(
            self.status
                .canary
                .as_ref()
                .and_then(|c| c.scale_down_at.clone())
                .as_ref(),
        );
    }

    /// No canary in flight: the current revision runs every pod and takes all
    /// traffic; older revisions scale down once their drain delay is over.
    fn canary_steady(&mut self, strategy: &CanaryStrategy) {
        let scale_down_at = self.draining_until();
        self.status.canary = Some(CanaryStatus {
            revision: self.revision.clone(),
            step_started_at: None,
            unavailable_since: None,
            step_analysis: None,
            scale_down_at: scale_down_at.clone(),
        });
        self.status.current_step_index = i32::try_from(strategy.steps.len()).ok();
        self.status.canary_weight = Some(100);
        let plan = TrafficPlan {
            stable_service: self.revision.clone(),
            canary_service: self.revision.clone(),
            canary_weight: strategy.traffic_routing.as_ref().map(|_| 0),
            routes: strategy.traffic_routing.as_ref().map(|_| Vec::new()),
        };
        let selected = self.steer(strategy, &plan);
        self.settle_on_current(&selected, scale_down_at.as_ref(), Reason::CanaryStep);
    }
}
