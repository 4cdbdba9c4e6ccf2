//! Sharding: `--shards N --shard-index I` splits the Releases between N
//! controllers, each with its own Lease. A Release belongs to exactly one
//! shard, decided by its namespace and name alone:
//!
//! ```text
//! shard = jump_consistent_hash(fnv1a_64("<namespace>/<name>"), N)
//! ```
//!
//! - FNV-1a 64 over the UTF-8 bytes of `namespace/name` (offset basis
//!   0xcbf29ce484222325, prime 0x100000001b3): a few lines in any language,
//!   no seed, no dependence on the platform's hasher.
//! - Jump consistent hash (Lamping and Veach, 2014, arXiv:1406.2294) into N
//!   buckets. Growing N to N+1 moves only the Releases that go to the new
//!   shard, 1/(N+1) of them, and none between the old shards; `hash mod N`
//!   would move N/(N+1) of them. Its one floating-point step is an IEEE 754
//!   double multiply and divide, which every architecture and language computes
//!   alike.
//!
//! A namespace and name never change, so a Release never changes shard while
//! N stays the same.
use kube::runtime::watcher::Event;

/// This controller's share of the Releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// Flags that name no shard.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("--shards must be at least 1")]
    NoShards,
    #[error("--shard-index {index} is not below --shards {count}: shards are numbered 0 to {}", count - 1)]
    IndexOutOfRange { index: u32, count: u32 },
}

impl Shard {
    /// Not sharded: every Release.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        match (index, count) {
            (_, 0) => Err(ShardError::NoShards),
            (index, count) if index >= count => Err(ShardError::IndexOutOfRange { index, count }),
            (index, count) => Ok(Shard { index, count }),
        }
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether the Release `namespace/name` is this shard's.
    pub fn owns(&self, namespace: &str, name: &str) -> bool {
        self.count == 1 || shard_of(namespace, name, self.count) == self.index
    }

    /// Whether a Release (or what the cache keeps of one) is this shard's.
    pub fn owns_release<K: kube::Resource>(&self, release: &K) -> bool {
        let meta = release.meta();
        self.owns(
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default(),
        )
    }

    /// Whether an object serin made for a Release (a ReplicaSet, an analysis
    /// Job) belongs to a Release of this shard, by its controller owner.
    /// Objects without one are no shard's.
    pub fn owns_child<K: kube::Resource>(&self, object: &K) -> bool {
        if self.count == 1 {
            return true;
        }
        let namespace = object.meta().namespace.as_deref().unwrap_or_default();
        object
            .meta()
            .owner_references
            .iter()
            .flatten()
            .find(|owner| owner.controller == Some(true) && owner.kind == "Release")
            .is_some_and(|owner| self.owns(namespace, &owner.name))
    }

    /// This shard's Lease: `base` unsharded (so that an existing install
    /// keeps its Lease), else `<base>-shard-<I>-of-<N>`. N is in the name so
    /// that two controllers that split the Releases differently never share
    /// a Lease.
    pub fn lease_name(&self, base: &str) -> String {
        if self.count == 1 {
            base.to_string()
        } else {
            format!("{base}-shard-{}-of-{}", self.index, self.count)
        }
    }

    /// Every shard of this sharding, this one included.
    pub fn siblings(&self) -> impl Iterator<Item = Shard> + use<> {
        let count = self.count;
        (0..count).map(move |index| Shard { index, count })
    }
}

/// Whether a watch event goes on to this shard's cache: an object event only
/// for an object `owns` accepts; the list markers (`Init`, `InitDone`) and
/// errors always, so that the cache still knows when a list ends.
pub fn keeps<K, E>(event: &Result<Event<K>, E>, owns: impl Fn(&K) -> bool) -> bool {
    match event {
        Ok(Event::Apply(object) | Event::InitApply(object) | Event::Delete(object)) => owns(object),
        Ok(Event::Init | Event::InitDone) | Err(_) => true,
    }
}

/// The shard, of `count`, that the Release `namespace/name` belongs to.
pub fn shard_of(namespace: &str, name: &str, count: u32) -> u32 {
    let mut hash = FNV_OFFSET_BASIS;
    for byte in namespace.bytes().chain([b'/']).chain(name.bytes()) {
        hash = fnv1a_step(hash, byte);
    }
    jump_consistent_hash(hash, count)
}

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a_step(hash: u64, byte: u8) -> u64 {
    (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
}

/// Lamping and Veach's algorithm, as in the paper: a bucket in 0..buckets.
fn jump_consistent_hash(mut key: u64, buckets: u32) -> u32 {
    let (mut bucket, mut next): (i64, i64) = (-1, 0);
    while next < i64::from(buckets) {
        bucket = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        next = ((bucket + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    // 0 <= bucket < buckets <= u32::MAX (0 buckets: 0, which Shard::new refuses).
    bucket.max(0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Release;
    use proptest::prelude::*;

    fn fnv1a_64(bytes: &[u8]) -> u64 {
        bytes
            .iter()
            .fold(FNV_OFFSET_BASIS, |hash, byte| fnv1a_step(hash, *byte))
    }

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        // From the FNV reference (isthe.com/chongo/tech/comp/fnv).
        assert_eq!(fnv1a_64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn jump_hash_matches_the_reference_implementation() {
        // Generated from the paper's C++ code (as in dgryski/go-jump's tests):
        // the bucket of each key for 1, 2, 3, ... buckets.
        let table: [(u64, &[u32]); 4] = [
            (0, &[0; 20]),
            (1, &[0, 0, 0, 0, 0, 0, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 17, 17]),
            (
                0xdeadbeef,
                &[0, 1, 2, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 16, 16, 16],
            ),
            (
                0x0ddc0ffeebadf00d,
                &[0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 15, 15, 15, 15],
            ),
        ];
        for (key, buckets) in table {
            for (n, want) in (1..).zip(buckets) {
                assert_eq!(jump_consistent_hash(key, n), *want, "key {key:#x}, {n} buckets");
            }
        }
    }

    /// Pinned: any change here moves Releases between shards on upgrade. The
    /// values are the function in the module docs, computed independently (a
    /// Python transcription gives the same).
    #[test]
    fn the_shard_of_a_release_is_stable() {
        let table = [
            ("default", "web", 2, 1),
            ("shop", "checkout", 3, 2),
            ("e2e-sharding", "r-000", 2, 1),
            ("é", "ünïcode", 7, 5),
        ];
        for (namespace, name, count, want) in table {
            assert_eq!(shard_of(namespace, name, count), want, "{namespace}/{name} of {count}");
        }
    }

    #[test]
    fn two_shards_split_ten_thousand_releases_evenly() {
        let mut counts = [0u32; 2];
        for i in 0..10_000 {
            let namespace = format!("team-{}", i % 37);
            counts[shard_of(&namespace, &format!("app-{i}"), 2) as usize] += 1;
        }
        println!("10,000 Releases over 2 shards: {counts:?}");
        for count in counts {
            assert!((4_750..=5_250).contains(&count), "{counts:?}: not 50 ± 5 % each");
        }
    }

    /// e2e/tests/sharding.rs asserts 90..=110 each for these 200 names; any
    /// 200 names are within that range with a chance of about 84 %, so the
    /// test's namespace is fixed and its split is known here.
    #[test]
    fn the_e2e_tests_two_hundred_releases_split_within_five_percent() {
        let mut counts = [0u32; 2];
        for i in 0..200 {
            counts[shard_of("e2e-sharding", &format!("web-{i:03}"), 2) as usize] += 1;
        }
        assert_eq!(counts, [95, 105]);
    }

    #[test]
    fn a_third_shard_takes_a_third_of_the_releases_from_the_other_two() {
        let moved = (0..10_000)
            .filter(|i| shard_of("apps", &format!("app-{i}"), 2) != shard_of("apps", &format!("app-{i}"), 3))
            .count();
        println!("2 -> 3 shards moves {moved} of 10,000 Releases");
        assert!((3_000..=3_700).contains(&moved), "{moved}");
    }

    #[test]
    fn list_markers_and_errors_always_reach_the_cache() {
        let event = |e: Event<Release>| Ok::<_, ()>(e);
        let never = |_: &Release| false;
        assert!(keeps(&event(Event::Init), never));
        assert!(keeps(&event(Event::InitDone), never));
        assert!(keeps(&Err::<Event<Release>, _>(()), never));
        let release: Release = serde_json::from_value(serde_json::json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
            "metadata": { "name": "web", "namespace": "default" },
            "spec": { "replicas": 1, "selector": { "matchLabels": { "app": "web" } },
                      "template": { "metadata": { "labels": { "app": "web" } },
                                    "spec": { "containers": [{ "name": "web", "image": "web:1" }] } },
                      "strategy": { "rolling": {} } }
        }))
        .unwrap();
        let home = Shard::new(shard_of("default", "web", 2), 2).unwrap();
        let other = Shard::new(1 - home.index(), 2).unwrap();
        for make in [Event::Apply, Event::InitApply, Event::Delete] {
            assert!(keeps(&event(make(release.clone())), |r| home.owns_release(r)));
            assert!(!keeps(&event(make(release.clone())), |r| other.owns_release(r)));
        }
    }

    #[test]
    fn flags_that_name_no_shard_are_refused() {
        assert_eq!(Shard::new(0, 0), Err(ShardError::NoShards));
        assert_eq!(
            Shard::new(2, 2),
            Err(ShardError::IndexOutOfRange { index: 2, count: 2 })
        );
        assert_eq!(
            Shard::new(2, 2).unwrap_err().to_string(),
            "--shard-index 2 is not below --shards 2: shards are numbered 0 to 1"
        );
        assert_eq!(Shard::new(0, 1), Ok(Shard::ALL));
    }

    #[test]
    fn each_shard_has_a_lease_of_its_own_and_one_shard_keeps_the_old_name() {
        assert_eq!(Shard::ALL.lease_name("serin-controller"), "serin-controller");
        let names: Vec<String> = Shard::new(1, 3)
            .unwrap()
            .siblings()
            .map(|s| s.lease_name("serin-controller"))
            .collect();
        assert_eq!(
            names,
            [
                "serin-controller-shard-0-of-3",
                "serin-controller-shard-1-of-3",
                "serin-controller-shard-2-of-3"
            ]
        );
    }

    #[test]
    fn children_belong_to_the_shard_of_their_controlling_release() {
        let child = |owner_kind: &str, controller: bool| {
            let mut rs = k8s_openapi::api::apps::v1::ReplicaSet::default();
            rs.metadata.namespace = Some("default".into());
            rs.metadata.owner_references = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "serin.dev/v1alpha1".into(),
                kind: owner_kind.into(),
                name: "web".into(),
                uid: "u-1".into(),
                controller: Some(controller),
                ..Default::default()
            }]);
            rs
        };
        let home = Shard::new(shard_of("default", "web", 2), 2).unwrap();
        let other = Shard::new(1 - home.index(), 2).unwrap();
        assert!(home.owns_child(&child("Release", true)));
        assert!(!other.owns_child(&child("Release", true)));
        assert!(!home.owns_child(&child("Release", false)), "not its controller");
        assert!(!home.owns_child(&child("Deployment", true)));
        assert!(
            Shard::ALL.owns_child(&child("Deployment", false)),
            "unsharded: everything"
        );
    }

    proptest! {
        #[test]
        fn every_release_has_exactly_one_shard(namespace in "[a-z0-9-]{1,63}", name in "[a-z0-9.-]{1,253}", count in 1u32..64) {
            let home = shard_of(&namespace, &name, count);
            prop_assert!(home < count);
            let owners = Shard::new(0, count).unwrap().siblings().filter(|s| s.owns(&namespace, &name)).count();
            prop_assert_eq!(owners, 1);
        }

        #[test]
        fn one_more_shard_moves_releases_only_to_the_new_shard(namespace in "[a-z0-9-]{1,63}", name in "[a-z0-9.-]{1,60}", count in 1u32..64) {
            let before = shard_of(&namespace, &name, count);
            let after = shard_of(&namespace, &name, count + 1);
            prop_assert!(after == before || after == count, "{} -> {}", before, after);
        }
    }
}
