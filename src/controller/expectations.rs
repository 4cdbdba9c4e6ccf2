//! What this controller wrote and its caches have not shown yet, per Release.
//!
//! Rounds decide on the watch caches, without reading the Release again. A
//! cache can lag behind this controller's own last write, and a decision on
//! it would repeat that write (a ReplicaSet created twice, answered 409) or
//! undo it (a measurement taken twice, a step walked again). So each write is
//! remembered with the resourceVersion the API server answered, and a round
//! whose caches do not show every remembered write yet plans nothing: the watch
//! event of that write is on its way and reconciles the Release again. This is
//! controller-runtime's "expectations", keyed on resourceVersions, which the
//! API server guarantees to be comparable integers since Kubernetes 1.35
//! (KEP-5504). Where one is not, the round reads the Release from the API
//! server instead, as it did before.
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A Release, by namespace and name.
pub type Key = (String, String);

/// One write the caches must show before the next decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    /// The Release's status, at this resourceVersion or later.
    Release { resource_version: String },
    /// A ReplicaSet created or scaled, at this resourceVersion or later.
    ReplicaSet { name: String, resource_version: String },
    /// A ReplicaSet deleted: gone from the cache.
    Deleted { name: String },
}

/// What the caches hold of the objects a Release's writes touched.
pub trait Cached {
    fn release_version(&self) -> Option<String>;
    /// None when the ReplicaSet is not in the cache.
    fn replica_set_version(&self, name: &str) -> Option<String>;
    /// Gone from the cache, or being deleted (a finalizer may hold it a while).
    fn replica_set_gone(&self, name: &str) -> bool;
}

/// Whether the caches show every write remembered for a Release.
#[derive(Debug, PartialEq, Eq)]
pub enum Caught {
    Up,
    /// A write is not in the cache yet; its watch event will reconcile again.
    Behind {
        waited: Duration,
    },
    /// A resourceVersion is not an integer: read the Release fresh instead.
    NotComparable,
}

#[derive(Default)]
pub struct Expectations {
    pending: Mutex<HashMap<Key, Pending>>,
}

/// The writes not shown yet, each with when it was made: each is given up on
/// [`PATIENCE`] after its own write, not after the round's first.
#[derive(Default)]
struct Pending {
    writes: Vec<(Written, Instant)>,
}

impl Expectations {
    /// Remembers a write; a later write of the same object replaces the earlier.
    pub fn wrote(&self, key: &Key, written: Written) {
        self.wrote_at(key, written, Instant::now());
    }

    fn wrote_at(&self, key: &Key, written: Written, at: Instant) {
        let mut pending = self.lock();
        let entry = pending.entry(key.clone()).or_default();
        entry.writes.retain(|(w, _)| !same_object(w, &written));
        entry.writes.push((written, at));
    }

    /// Checks the caches against what was written for `key`; forgets what they
    /// show, and everything once it has waited longer than [`PATIENCE`] (a
    /// watch that dropped the event relists, and its list is the truth).
    pub fn check(&self, key: &Key, cached: &dyn Cached) -> Caught {
        self.check_at(key, cached, Instant::now())
    }

    fn check_at(&self, key: &Key, cached: &dyn Cached, now: Instant) -> Caught {
        let mut pending = self.lock();
        let Some(entry) = pending.get_mut(key) else {
            return Caught::Up;
        };
        let mut comparable = true;
        entry.writes.retain(|(written, at)| {
            let waited = now.saturating_duration_since(*at);
            match shown(written, cached) {
                Some(shown) => !shown && waited <= PATIENCE,
                None => {
                    comparable = false;
                    false
                }
            }
        });
        if !comparable {
            pending.remove(key);
            return Caught::NotComparable;
        }
        let oldest = entry.writes.iter().map(|(_, at)| *at).min();
        match oldest {
            None => {
                pending.remove(key);
                Caught::Up
            }
            Some(at) => Caught::Behind {
                waited: now.saturating_duration_since(at),
            },
        }
    }

    /// Drops what was remembered for a Release that is gone.
    pub fn forget(&self, key: &Key) {
        self.lock().remove(key);
    }

    /// Releases with writes not yet shown by the caches.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Pending>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (every update is one call on it), so a poisoned lock is still good.
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn same_object(a: &Written, b: &Written) -> bool {
    match (a, b) {
        (Written::Release { .. }, Written::Release { .. }) => true,
        (
            Written::ReplicaSet { name: a, .. } | Written::Deleted { name: a },
            Written::ReplicaSet { name: b, .. } | Written::Deleted { name: b },
        ) => a == b,
        _ => false,
    }
}

/// Whether the cache shows `written`; None when the versions cannot be compared.
fn shown(written: &Written, cached: &dyn Cached) -> Option<bool> {
    match written {
        Written::Release { resource_version } => at_least(cached.release_version(), resource_version),
        Written::ReplicaSet { name, resource_version } => at_least(cached.replica_set_version(name), resource_version),
        Written::Deleted { name } => Some(cached.replica_set_gone(name)),
    }
}

fn at_least(cached: Option<String>, written: &str) -> Option<bool> {
    match cached {
        None => Some(false),
        Some(cached) => compare(&cached, written).map(|o| o != Ordering::Less),
    }
}

/// Orders two resourceVersions as KEP-5504 defines it: positive integers
/// without leading zeros, of any length. None when either is not one.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let valid = |v: &str| !v.is_empty() && !v.starts_with('0') && v.bytes().all(|c| c.is_ascii_digit());
    (valid(a) && valid(b)).then(|| a.len().cmp(&b.len()).then_with(|| a.cmp(b)))
}

/// How long a round waits for the caches to show a write before it decides on
/// them anyway. Watch events arrive in milliseconds; this bounds a dropped one.
pub const PATIENCE: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Default)]
    struct Cache {
        release: Option<String>,
        replica_sets: BTreeMap<String, String>,
    }

    impl Cached for Cache {
        fn release_version(&self) -> Option<String> {
            self.release.clone()
        }
        fn replica_set_version(&self, name: &str) -> Option<String> {
            self.replica_sets.get(name).cloned()
        }
        fn replica_set_gone(&self, name: &str) -> bool {
            !self.replica_sets.contains_key(name)
        }
    }

    fn key() -> Key {
        ("shop".into(), "web".into())
    }

    fn rs(name: &str, version: &str) -> Written {
        Written::ReplicaSet {
            name: name.into(),
            resource_version: version.into(),
        }
    }

    #[test]
    fn resource_versions_compare_as_integers_of_any_length() {
        let cases = [
            ("9", "10", Some(Ordering::Less)),
            ("10", "9", Some(Ordering::Greater)),
            ("123", "123", Some(Ordering::Equal)),
            (
                "99999999999999999999999",
                "100000000000000000000000",
                Some(Ordering::Less),
            ),
            ("", "1", None),
            ("0", "1", None),
            ("01", "1", None),
            ("1a", "1", None),
            ("-1", "1", None),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
        }
    }

    #[test]
    fn a_round_waits_until_the_caches_show_every_write() {
        let expectations = Expectations::default();
        let mut cache = Cache {
            release: Some("100".into()),
            ..Cache::default()
        };
        assert_eq!(expectations.check(&key(), &cache), Caught::Up, "nothing written");

        expectations.wrote(&key(), rs("web-a", "105"));
        expectations.wrote(
            &key(),
            Written::Release {
                resource_version: "106".into(),
            },
        );
        assert!(matches!(expectations.check(&key(), &cache), Caught::Behind { .. }));

        cache.replica_sets.insert("web-a".into(), "105".into());
        assert!(
            matches!(expectations.check(&key(), &cache), Caught::Behind { .. }),
            "the status write is not shown yet"
        );
        cache.release = Some("107".into()); // later than written: shown too
        assert_eq!(expectations.check(&key(), &cache), Caught::Up);
        assert!(expectations.is_empty(), "what the caches show is forgotten");
    }

    #[test]
    fn a_deleted_replica_set_is_shown_by_its_absence() {
        let expectations = Expectations::default();
        let mut cache = Cache::default();
        cache.replica_sets.insert("web-old".into(), "50".into());
        expectations.wrote(&key(), Written::Deleted { name: "web-old".into() });
        assert!(matches!(expectations.check(&key(), &cache), Caught::Behind { .. }));
        cache.replica_sets.clear();
        assert_eq!(expectations.check(&key(), &cache), Caught::Up);
    }

    #[test]
    fn a_later_write_of_the_same_object_replaces_the_earlier() {
        let expectations = Expectations::default();
        let mut cache = Cache::default();
        expectations.wrote(&key(), rs("web-a", "105"));
        expectations.wrote(&key(), rs("web-a", "110"));
        cache.replica_sets.insert("web-a".into(), "105".into());
        assert!(matches!(expectations.check(&key(), &cache), Caught::Behind { .. }));
        cache.replica_sets.insert("web-a".into(), "110".into());
        assert_eq!(expectations.check(&key(), &cache), Caught::Up);
    }

    #[test]
    fn versions_that_are_not_integers_fall_back_to_a_fresh_read() {
        let expectations = Expectations::default();
        let cache = Cache {
            release: Some("abc".into()),
            ..Cache::default()
        };
        expectations.wrote(
            &key(),
            Written::Release {
                resource_version: "abd".into(),
            },
        );
        assert_eq!(expectations.check(&key(), &cache), Caught::NotComparable);
        assert!(expectations.is_empty());
    }

    #[test]
    fn releases_are_kept_apart_and_a_gone_one_is_forgotten() {
        let expectations = Expectations::default();
        let other: Key = ("shop".into(), "api".into());
        expectations.wrote(&key(), rs("web-a", "5"));
        expectations.wrote(&other, rs("api-a", "6"));
        let mut cache = Cache::default();
        cache.replica_sets.insert("web-a".into(), "5".into());
        assert!(matches!(expectations.check(&other, &cache), Caught::Behind { .. }));
        expectations.forget(&key());
        assert_eq!(expectations.len(), 1);
    }

    #[test]
    fn each_write_the_caches_never_show_is_given_up_on_its_own_time() {
        let expectations = Expectations::default();
        let start = Instant::now();
        expectations.wrote_at(&key(), rs("web-a", "5"), start);
        // A later write of the same round waits its own full PATIENCE.
        let late = start + PATIENCE / 2;
        expectations.wrote_at(
            &key(),
            Written::Release {
                resource_version: "6".into(),
            },
            late,
        );
        let cache = Cache::default();
        assert!(matches!(
            expectations.check_at(&key(), &cache, start + PATIENCE / 4),
            Caught::Behind { .. }
        ));
        assert_eq!(
            expectations.check_at(&key(), &cache, start + PATIENCE + Duration::from_millis(1)),
            Caught::Behind {
                waited: PATIENCE / 2 + Duration::from_millis(1)
            },
            "the ReplicaSet is given up on; the status write is not yet"
        );
        assert_eq!(
            expectations.check_at(&key(), &cache, late + PATIENCE + Duration::from_millis(1)),
            Caught::Up
        );
        assert!(expectations.is_empty());
    }
}
