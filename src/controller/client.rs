//! The kube clients of the controller process: every request counted; the
//! controller's own paced by a token bucket, as client-go paces its clients
//! (`--kube-api-qps`, `--kube-api-burst`), so that a fleet's mass rollout
//! queues in the controller instead of flooding the API server. The Lease has
//! a client of its own, never paced: a renewal waiting behind a backlog of
//! reconciles would lose the Lease.
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use kube::Client;

use crate::telemetry::Metrics;

/// How fast the controller's client may send requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pace {
    /// Requests per second, on average.
    pub qps: f32,
    /// Requests sent at once after a quiet spell.
    pub burst: u32,
}

/// The controller's client and the Lease's.
pub struct Clients {
    pub controller: Client,
    pub lease: Client,
}

/// Builds both clients from one configuration. Err when the pace is not positive.
pub fn build(config: kube::Config, metrics: &Metrics, pace: Pace) -> Result<Clients, Box<dyn std::error::Error>> {
    let limiter = Arc::new(RateLimiter::direct(quota(pace)?));
    let controller = kube::client::ClientBuilder::try_from(config.clone())?
        .with_layer(&metrics.count_requests())
        .with_layer(&Paced::layer(limiter))
        .build();
    let lease = kube::client::ClientBuilder::try_from(config)?
        .with_layer(&metrics.count_requests())
        .build();
    Ok(Clients { controller, lease })
}

fn quota(pace: Pace) -> Result<Quota, String> {
    let burst = NonZeroU32::new(pace.burst).ok_or("--kube-api-burst must be at least 1")?;
    if !(pace.qps.is_finite() && pace.qps > 0.0) {
        return Err(format!("--kube-api-qps must be positive, not {}", pace.qps));
    }
    let period = Duration::try_from_secs_f64(1.0 / f64::from(pace.qps)).map_err(|_| "--kube-api-qps is too small")?;
    let quota = Quota::with_period(period).ok_or("--kube-api-qps is too large")?;
    Ok(quota.allow_burst(burst))
}

/// A tower layer that holds each request until the token bucket has a token.
/// It waits in `poll_ready`, which kube's client polls before each request
/// (its Buffer serves every clone of the client), so the pace is the client's.
pub struct Paced<S> {
    inner: S,
    limiter: Arc<DefaultDirectRateLimiter>,
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
    admitted: bool,
}

impl Paced<()> {
    fn layer(limiter: Arc<DefaultDirectRateLimiter>) -> PacedLayer {
        PacedLayer { limiter }
    }
}

pub struct PacedLayer {
    limiter: Arc<DefaultDirectRateLimiter>,
}

impl<S> tower::Layer<S> for PacedLayer {
    type Service = Paced<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Paced {
            inner,
            limiter: self.limiter.clone(),
            waiting: None,
            admitted: false,
        }
    }
}

impl<S, R> tower::Service<R> for Paced<S>
where
    S: tower::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        while !self.admitted {
            if let Some(waiting) = self.waiting.as_mut() {
                ready!(waiting.as_mut().poll(cx));
                self.waiting = None;
            }
            match self.limiter.check() {
                Ok(()) => self.admitted = true,
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.limiter.clock().now());
                    self.waiting = Some(Box::pin(tokio::time::sleep(wait)));
                }
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.admitted = false;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tower::{Layer, Service, ServiceExt};

    use super::*;

    #[test]
    fn a_pace_that_is_not_positive_is_refused_by_flag_name() {
        let refused = |qps: f32, burst: u32| quota(Pace { qps, burst }).unwrap_err();
        assert!(refused(10.0, 0).contains("--kube-api-burst"));
        assert!(refused(0.0, 10).contains("--kube-api-qps"));
        assert!(refused(-1.0, 10).contains("--kube-api-qps"));
        assert!(refused(f32::NAN, 10).contains("--kube-api-qps"));
        assert!(quota(Pace { qps: 0.5, burst: 1 }).is_ok());
    }

    #[tokio::test]
    async fn requests_pass_at_once_up_to_the_burst_then_at_the_pace() {
        let pace = Pace { qps: 50.0, burst: 5 };
        let limiter = Arc::new(RateLimiter::direct(quota(pace).unwrap()));
        let mut service = PacedLayer { limiter }.layer(tower::service_fn(|()| async { Ok::<_, ()>(()) }));
        let started = Instant::now();
        for _ in 0..5 {
            service.ready().await.unwrap().call(()).await.unwrap();
        }
        let burst = started.elapsed();
        for _ in 0..10 {
            service.ready().await.unwrap().call(()).await.unwrap();
        }
        let paced = started.elapsed() - burst;
        // 10 more at 50 per second take 200 ms; the burst takes none of it.
        assert!(burst < Duration::from_millis(50), "burst took {burst:?}");
        assert!(paced >= Duration::from_millis(180), "10 paced requests took {paced:?}");
        assert!(paced < Duration::from_secs(2), "10 paced requests took {paced:?}");
    }
}
