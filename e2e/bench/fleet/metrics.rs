//! Request counters from Prometheus text: the API server's, the controller's
//! own, kube-controller-manager's.
use std::collections::BTreeMap;

/// One sample of a Prometheus text exposition: name, labels, value.
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: f64,
}

fn samples(text: &str) -> impl Iterator<Item = Sample<'_>> {
    text.lines().filter(|l| !l.starts_with('#')).filter_map(sample)
}

fn sample(line: &str) -> Option<Sample<'_>> {
    let (name, rest) = match line.find('{') {
        Some(open) => (&line[..open], &line[open + 1..]),
        None => {
            let (name, value) = line.split_once(' ')?;
            return Some(Sample {
                name,
                labels: Vec::new(),
                value: value.split_whitespace().next()?.parse().ok()?,
            });
        }
    };
    let mut labels = Vec::new();
    let mut rest = rest;
    loop {
        rest = rest.trim_start_matches(',');
        if let Some(after) = rest.strip_prefix('}') {
            let value = after.split_whitespace().next()?.parse().ok()?;
            return Some(Sample { name, labels, value });
        }
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key, value));
        rest = &after[end + 1..];
    }
}

/// Sums `metric` by the values of the labels `by` (a missing label is "").
fn sum_by(text: &str, metric: &str, by: &[&str]) -> BTreeMap<Vec<String>, f64> {
    let mut sums = BTreeMap::new();
    for s in samples(text).filter(|s| s.name == metric) {
        let key = by
            .iter()
            .map(|key| {
                s.labels
                    .iter()
                    .find(|(k, _)| k == key)
                    .map_or("", |(_, v)| v.as_str())
                    .to_string()
            })
            .collect();
        *sums.entry(key).or_insert(0.0) += s.value;
    }
    sums
}

/// Sums `metric` by the values of `by`, joined with spaces (empty values left out).
pub fn requests_by(text: &str, metric: &str, by: &[&str]) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for (values, n) in sum_by(text, metric, by) {
        let key = values
            .into_iter()
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        *sums.entry(key).or_insert(0.0) += n;
    }
    sums
}

/// The API server's resource requests by "VERB resource[/subresource]"
/// (health checks and /metrics, which have no resource, are left out).
pub fn apiserver_requests(text: &str) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for (values, n) in sum_by(text, "apiserver_request_total", &["verb", "resource", "subresource"]) {
        let [verb, resource, sub] = &values[..] else { continue };
        if resource.is_empty() {
            continue;
        }
        let key = if sub.is_empty() {
            format!("{verb} {resource}")
        } else {
            format!("{verb} {resource}/{sub}")
        };
        *sums.entry(key).or_insert(0.0) += n;
    }
    sums
}

/// `after - before`, per key, dropping keys that did not move.
pub fn diff(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d > 0.0)
        .collect()
}
