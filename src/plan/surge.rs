//! One round of a rolling update, with the semantics of a Deployment's RollingUpdate:
//! grow the new ReplicaSet within `maxSurge`, shrink the old ones within `maxUnavailable`.
//! The caller applies the output, waits for the cluster to move, then calls again.
//! The rolling strategy (`rolling.rs`) steps through it, and so does a canary
//! without a router (`canary_traffic.rs`), whose replica ratio carries the weight.
use crate::api::{IntOrPercent, RollingStrategy};

/// One ReplicaSet as the rolling step sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pods {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

impl Pods {
    /// Negative counts become 0, and availability is capped at the replicas: status lags
    /// behind a scale-down, and pods being deleted must not count as available.
    fn sanitized(self) -> Self {
        let replicas = self.replicas.max(0);
        Pods {
            replicas,
            available: self.available.clamp(0, replicas),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollingInput {
    /// The release's `spec.replicas` (>= 0).
    pub desired: i32,
    /// Absolute count, as resolved by [`bounds`].
    pub max_surge: i32,
    /// Absolute count, as resolved by [`bounds`]; never 0 together with `max_surge`.
    pub max_unavailable: i32,
    pub new: Pods,
    /// In the order they are scaled down: oldest first.
    pub old: Vec<Pods>,
    /// Replicas the old ReplicaSets keep between them; the new one grows to
    /// `desired - old_floor`. 0 for a full rollout; a canary's stable share otherwise.
    /// A canary that must shrink swaps roles with stable rather than start above its target.
    pub old_floor: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollingOutput {
    pub new_replicas: i32,
    /// Same order and length as [`RollingInput::old`].
    pub old_replicas: Vec<i32>,
}

/// Resolves `maxSurge`/`maxUnavailable` (default 25% each) against `desired` replicas:
/// surge rounds up, unavailable rounds down. If both come out 0, maxUnavailable becomes 1,
/// as for Deployments, so that a rollout can always make progress.
pub fn bounds(strategy: &RollingStrategy, desired: i32) -> Result<(i32, i32), String> {
    let default = IntOrPercent::Percent("25%".into());
    let surge = strategy
        .max_surge
        .as_ref()
        .unwrap_or(&default)
        .resolve(desired, true)
        .map_err(|e| format!("maxSurge: {e}"))?;
    let max_unavailable = strategy.max_unavailable.as_ref().unwrap_or(&default);
    if max_unavailable.percent().is_some_and(|p| p > 100) {
        return Err(crate::api::MAX_UNAVAILABLE_MESSAGE.into());
    }
    let unavailable = max_unavailable
        .resolve(desired, false)
        .map_err(|e| format!("maxUnavailable: {e}"))?;
    Ok(if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    })
}

/// Plans one round: the replicas each ReplicaSet should have next.
///
/// Counts are summed in `i64` so that many large ReplicaSets cannot overflow; every output
/// lies between 0 and an input count, so it fits back into `i32`.
pub fn step(input: &RollingInput) -> RollingOutput {
    let desired = input.desired.max(0);
    let surge = i64::from(input.max_surge.max(0));
    let unavailable = i64::from(input.max_unavailable.max(0));
    let new = input.new.sanitized();
    let mut old: Vec<Pods> = input.old.iter().map(|p| p.sanitized()).collect();

    let old_total: i64 = old.iter().map(|p| i64::from(p.replicas)).sum();
    let total = i64::from(new.replicas) + old_total;
    let old_floor = i64::from(input.old_floor.clamp(0, desired));
    let target = desired - to_i32(old_floor);

    // Grow the new ReplicaSet into whatever room the surge leaves, never past its target.
    let new_replicas = if new.replicas >= target {
        target
    } else {
        let room = (i64::from(desired) + surge - total).max(0);
        new.replicas + to_i32(room.min(i64::from(target - new.replicas)))
    };
    // Old pods above the floor: all that may go this round.
    let mut removable = (old_total - old_floor).max(0);

    let min_available = i64::from(desired) - unavailable;

    // Unhealthy old pods serve nobody, so they go first, but only so many that the floor
    // could still be met if the rest became ready. Both terms use the counts from before
    // this round's scale-up, so the new pods just added do not loosen the cap.
    let new_unavailable = i64::from(new.replicas - new.available);
    let mut budget = total - min_available - new_unavailable;
    for rs in &mut old {
        if budget <= 0 {
            break;
        }
        let cut = budget.min(i64::from(rs.replicas - rs.available)).min(removable);
        rs.replicas -= to_i32(cut);
        budget -= cut;
        removable -= cut;
    }

    // Then take available old pods down to `min_available`. A new ReplicaSet scaled down
    // this round only keeps as many available pods as it keeps replicas.
    let available =
        i64::from(new.available.min(new_replicas)) + old.iter().map(|p| i64::from(p.available)).sum::<i64>();
    let mut budget = available - min_available;
    for rs in &mut old {
        if budget <= 0 {
            break;
        }
        let cut = budget.min(i64::from(rs.replicas)).min(removable);
        rs.replicas -= to_i32(cut);
        budget -= cut;
        removable -= cut;
    }

    RollingOutput {
        new_replicas,
        old_replicas: old.iter().map(|p| p.replicas).collect(),
    }
}

/// Callers only pass values in `0..=i32::MAX`; the clamp makes the cast lossless.
fn to_i32(value: i64) -> i32 {
    value.clamp(0, i64::from(i32::MAX)) as i32
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::api::IntOrPercent::{Int, Percent};

    fn pods(replicas: i32, available: i32) -> Pods {
        Pods { replicas, available }
    }

    #[test]
    fn bounds_resolve_like_a_deployment() {
        let pct = |s: &str| Some(Percent(s.into()));
        let cases = [
            (None, None, 10, Ok((3, 2))),
            (None, None, 4, Ok((1, 1))),
            (None, None, 1, Ok((1, 0))),
            (None, None, 0, Ok((0, 1))),
            (Some(Int(2)), Some(Int(0)), 10, Ok((2, 0))),
            (Some(Int(0)), Some(Int(3)), 10, Ok((0, 3))),
            (pct("25%"), pct("25%"), 10, Ok((3, 2))),
            (pct("50%"), pct("10%"), 5, Ok((3, 0))),
            (pct("100%"), pct("100%"), 7, Ok((7, 7))),
            (Some(Int(0)), Some(Int(0)), 10, Ok((0, 1))),
            (pct("0%"), pct("0%"), 10, Ok((0, 1))),
            (pct("10%"), pct("10%"), 5, Ok((1, 0))),
        ];
        for (max_surge, max_unavailable, desired, want) in cases {
            let strategy = RollingStrategy {
                max_surge,
                max_unavailable,
                ..Default::default()
            };
            assert_eq!(bounds(&strategy, desired), want, "{strategy:?} of {desired}");
        }
    }

    #[test]
    fn bounds_name_the_bad_field() {
        let strategy = RollingStrategy {
            max_surge: Some(Int(-1)),
            ..Default::default()
        };
        assert!(bounds(&strategy, 10).unwrap_err().starts_with("maxSurge"));
        let strategy = RollingStrategy {
            max_unavailable: Some(Percent("x".into())),
            ..Default::default()
        };
        assert!(bounds(&strategy, 10).unwrap_err().starts_with("maxUnavailable"));
    }

    #[test]
    fn step_table() {
        let cases = [
            // Fresh rollout, 25%/25% of 10: surge 3 new pods, drop 2 old ones.
            ("fresh rollout", 10, 3, 2, pods(0, 0), vec![pods(10, 10)], 3, vec![8]),
            // New pods not ready yet: surge into the remaining room, keep the old ones.
            ("new unready", 10, 3, 2, pods(3, 0), vec![pods(8, 8)], 5, vec![8]),
            // New pods ready: drop old down to the availability floor, surge into the room.
            ("new ready", 10, 3, 2, pods(3, 3), vec![pods(8, 8)], 5, vec![5]),
            // Unavailable old pods go even below the floor, but only as many as could not
            // help reach it if they became ready.
            (
                "old all unavailable",
                10,
                3,
                2,
                pods(0, 0),
                vec![pods(10, 0)],
                3,
                vec![8],
            ),
            (
                "unhealthy leftovers",
                10,
                3,
                2,
                pods(10, 10),
                vec![pods(5, 0)],
                10,
                vec![0],
            ),
            (
                "unhealthy oldest first",
                10,
                3,
                2,
                pods(0, 0),
                vec![pods(4, 1), pods(6, 6)],
                3,
                vec![2, 6],
            ),
            (
                "unhealthy, then ready",
                10,
                0,
                2,
                pods(4, 4),
                vec![pods(6, 3)],
                4,
                vec![4],
            ),
            // Desired shrank below the new ReplicaSet.
            ("desired shrank", 4, 1, 1, pods(10, 10), vec![], 4, vec![]),
            (
                "desired shrank, old left",
                4,
                1,
                1,
                pods(10, 10),
                vec![pods(2, 2)],
                4,
                vec![0],
            ),
            // Oldest first when taking available pods.
            (
                "oldest first",
                10,
                0,
                3,
                pods(4, 4),
                vec![pods(2, 2), pods(4, 4)],
                4,
                vec![0, 3],
            ),
            ("zero replicas", 0, 0, 1, pods(0, 0), vec![pods(3, 3)], 0, vec![0]),
            // Finished: a fixed point.
            ("fixed point", 10, 3, 2, pods(10, 10), vec![pods(0, 0)], 10, vec![0]),
            (
                "fixed point, unready",
                10,
                3,
                2,
                pods(10, 4),
                vec![pods(0, 0)],
                10,
                vec![0],
            ),
        ];
        for (name, desired, max_surge, max_unavailable, new, old, want_new, want_old) in cases {
            let input = RollingInput {
                desired,
                max_surge,
                max_unavailable,
                new,
                old,
                old_floor: 0,
            };
            let want = RollingOutput {
                new_replicas: want_new,
                old_replicas: want_old,
            };
            assert_eq!(step(&input), want, "{name}: {input:?}");
        }
    }

    #[test]
    fn step_survives_extreme_counts() {
        let big = pods(i32::MAX, i32::MAX);
        let input = RollingInput {
            desired: i32::MAX,
            max_surge: i32::MAX,
            max_unavailable: i32::MAX,
            new: pods(-5, 7),
            old: vec![big, big, pods(-1, -1)],
            old_floor: 0,
        };
        let out = step(&input);
        assert!(
            out.new_replicas >= 0 && out.old_replicas.iter().all(|r| *r >= 0),
            "{out:?}"
        );
    }

    fn apply(state: &mut RollingInput, out: &RollingOutput) {
        state.new.replicas = out.new_replicas;
        for (rs, replicas) in state.old.iter_mut().zip(&out.old_replicas) {
            rs.replicas = *replicas;
        }
    }

    fn done(state: &RollingInput) -> bool {
        state.new.replicas == state.desired && state.old.iter().all(|rs| rs.replicas == 0)
    }

    fn worst_case_available(new: Pods, old: &[Pods], out: &RollingOutput) -> i64 {
        let rs =
            std::iter::once((new, out.new_replicas)).chain(old.iter().copied().zip(out.old_replicas.iter().copied()));
        rs.map(|(p, r)| i64::from(p.available.min(r))).sum()
    }

    /// Runs rounds until done, with `settle` moving the cluster between rounds. Every round
    /// on a settled cluster shrinks `desired - new + sum(old)` (at most 150 here), so even
    /// settling every other round needs no more than about 300 rounds.
    fn converges(mut state: RollingInput, settle: impl Fn(&mut RollingInput, usize)) -> bool {
        for round in 0..400 {
            if done(&state) {
                let out = step(&state);
                let fixed = out.new_replicas == state.desired && out.old_replicas.iter().all(|r| *r == 0);
                return fixed;
            }
            let out = step(&state);
            apply(&mut state, &out);
            settle(&mut state, round);
        }
        false
    }

    fn rolling_input() -> impl Strategy<Value = RollingInput> {
        let rs = (0..=40i32).prop_flat_map(|replicas| (Just(replicas), 0..=replicas));
        let rs = rs.prop_map(|(replicas, available)| Pods { replicas, available });
        (0..=30i32)
            .prop_flat_map(|desired| {
                let limits = (0..=desired + 2, 0..=desired + 2)
                    .prop_filter("surge and unavailable both 0", |(s, u)| *s > 0 || *u > 0);
                (Just(desired), limits)
            })
            .prop_flat_map(move |(desired, (max_surge, max_unavailable))| {
                (rs.clone(), prop::collection::vec(rs.clone(), 0..=3)).prop_map(move |(new, old)| RollingInput {
                    desired,
                    max_surge,
                    max_unavailable,
                    new,
                    old,
                    old_floor: 0,
                })
            })
    }

    /// A canary's ratio step: the old ReplicaSets keep `old_floor` between them.
    fn canary_input() -> impl Strategy<Value = RollingInput> {
        rolling_input().prop_flat_map(|input| {
            let desired = input.desired;
            // Callers shrink a new ReplicaSet by swapping roles, so it never starts above its target.
            let most = (desired - input.new.replicas).max(0);
            (Just(input), 0..=most).prop_map(|(input, old_floor)| RollingInput { old_floor, ..input })
        })
    }

    proptest! {
        #[test]
        fn old_keeps_its_floor_and_new_stops_at_its_target(input in canary_input()) {
            let out = step(&input);
            let old_before: i32 = input.old.iter().map(|p| p.replicas.max(0)).sum();
            let old_after: i32 = out.old_replicas.iter().sum();
            prop_assert!(old_after >= old_before.min(input.old_floor), "{old_after} < floor {} for {out:?}", input.old_floor);
            let target = input.desired - input.old_floor;
            prop_assert!(out.new_replicas <= target.max(0), "new {} above target {target}", out.new_replicas);
            let before: i64 = std::iter::once(input.new).chain(input.old.iter().copied()).map(|p| i64::from(p.available)).sum();
            let after = worst_case_available(input.new, &input.old, &out);
            let floor = before.min(i64::from(input.desired) - i64::from(input.max_unavailable));
            prop_assert!(after >= floor, "{after} < {floor} for {out:?}");
        }

        #[test]
        fn total_stays_within_surge(input in rolling_input()) {
            let out = step(&input);
            let before: i64 = std::iter::once(input.new)
                .chain(input.old.iter().copied())
                .map(|p| i64::from(p.replicas))
                .sum();
            let after: i64 = i64::from(out.new_replicas)
                + out.old_replicas.iter().map(|r| i64::from(*r)).sum::<i64>();
            let cap = before.max(i64::from(input.desired) + i64::from(input.max_surge));
            prop_assert!(after <= cap, "{after} > {cap} for {out:?}");
            prop_assert_eq!(out.old_replicas.len(), input.old.len());
            prop_assert!(out.new_replicas >= 0);
            prop_assert!(out.old_replicas.iter().all(|r| *r >= 0));
        }

        #[test]
        fn availability_stays_above_floor(input in rolling_input()) {
            let out = step(&input);
            let before: i64 = std::iter::once(input.new)
                .chain(input.old.iter().copied())
                .map(|p| i64::from(p.available))
                .sum();
            let after = worst_case_available(input.new, &input.old, &out);
            let floor = before.min(i64::from(input.desired) - i64::from(input.max_unavailable));
            prop_assert!(after >= floor, "{after} < {floor} for {out:?}");
        }

        #[test]
        fn converges_when_pods_become_ready(input in rolling_input()) {
            let settle = |state: &mut RollingInput, _: usize| {
                for rs in std::iter::once(&mut state.new).chain(&mut state.old) {
                    rs.available = rs.replicas;
                }
            };
            prop_assert!(converges(input, settle));
        }

        #[test]
        fn converges_when_new_pods_are_slow(input in rolling_input()) {
            // Old pods settle at once; new pods reach half availability, then full.
            let settle = |state: &mut RollingInput, round: usize| {
                for rs in &mut state.old {
                    rs.available = rs.replicas;
                }
                let new = &mut state.new;
                new.available = if round.is_multiple_of(2) {
                    new.available.min(new.replicas).max((new.replicas + 1) / 2)
                } else {
                    new.replicas
                };
            };
            prop_assert!(converges(input, settle));
        }
    }
}
