//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does
//! it: the holder renews the lease; the others take it over once it has not
//! been renewed for a lease duration, measured on their own clock (so clock
//! skew between replicas does not matter). Optimistic concurrency on the
//! Lease's resourceVersion makes sure only one replica wins.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use tokio::sync::watch;

#[derive(Clone, Debug)]
pub struct Timing {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub renew_every: Duration,
    pub retry_every: Duration,
}

impl Timing {
    /// Longest one acquire-or-renew may take: half the renew deadline, so that a leader whose
    /// renewals hang still steps down within the deadline (a renewal starts `renew_every`
    /// after the last success, at most half the deadline with the controller's settings).
    pub fn attempt_timeout(&self) -> Duration {
        (self.renew_deadline / 2).max(Duration::from_millis(500))
    }

    /// Waits for the next round of a Lease loop: `renew_every` after a round that holds what
    /// it wants (the leadership, an agreed view), `retry_every` after one that does not, or
    /// until `stop` changes.
    pub async fn until_next_round(&self, steady: bool, stop: &mut watch::Receiver<bool>) {
        let wait = if steady {
            self.renew_every
        } else {
            self.retry_every
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            renew_every: Duration::from_secs(5),
            retry_every: Duration::from_secs(2),
        }
    }
}

pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    /// What we last saw of the lease and when it last changed, by our clock.
    observed: Option<(String, Instant)>,
}

impl Elector {
    pub fn new(api: Api<Lease>, name: String, identity: String, timing: Timing) -> Self {
        Elector {
            api,
            name,
            identity,
            timing,
            observed: None,
        }
    }

    /// Runs until `stop` turns true, publishing leadership on `leader`.
    /// Releases the lease on the way out when holding it.
    pub async fn run(mut self, leader: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
        let mut last_renewed: Option<Instant> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            // Bounded like client-go's renew (a context with the renew deadline): a request
            // hanging on an API server whose etcd is gone, or on a half-open connection, would
            // otherwise keep this loop from stepping down while another replica, its lease
            // expired, takes over.
            let attempt =
                tokio::time::timeout(self.timing.attempt_timeout(), self.try_acquire_or_renew());
            let held = match attempt.await {
                Ok(Ok(held)) => held,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, lease = %self.name, "leader election: lease update failed");
                    false
                }
                Err(_) => {
                    tracing::warn!(lease = %self.name, "leader election: lease update timed out");
                    false
                }
            };
            let is_leader = *leader.borrow();
            if held {
                last_renewed = Some(Instant::now());
                if !is_leader {
                    tracing::info!(identity = %self.identity, lease = %self.name, "became leader");
                    let _ = leader.send(true);
                }
            } else if is_leader
                && last_renewed.is_none_or(|t| t.elapsed() >= self.timing.renew_deadline)
            {
                tracing::warn!(identity = %self.identity, "lost leadership");
                let _ = leader.send(false);
            }
            let steady = *leader.borrow();
            self.timing.until_next_round(steady, &mut stop).await;
        }
        if *leader.borrow() {
            let _ = leader.send(false);
            match self.release().await {
                Ok(()) => tracing::info!(lease = %self.name, "released the leader lease"),
                Err(e) => tracing::warn!(error = %e, "could not release the leader lease"),
            }
        }
    }

    fn fresh_spec(&self, now: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.timing.lease_duration.as_secs() as i32),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.fresh_spec(now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = format!("{:?}/{:?}", holder, spec.renew_time.as_ref().map(|t| t.0));
        match &self.observed {
            Some((seen, _)) if *seen == record => {}
            _ => self.observed = Some((record, Instant::now())),
        }
        let ours = holder.as_deref() == Some(self.identity.as_str());
        if let (Some(_), false) = (&holder, ours) {
            let duration = spec
                .lease_duration_seconds
                .map(|s| Duration::from_secs(s.max(1) as u64))
                .unwrap_or(self.timing.lease_duration);
            let unchanged_for = self
                .observed
                .as_ref()
                .map(|(_, at)| at.elapsed())
                .unwrap_or_default();
            if unchanged_for < duration {
                return Ok(false);
            }
        }
        let new_spec = if ours {
            LeaseSpec {
                renew_time: Some(MicroTime(now)),
                lease_duration_seconds: Some(self.timing.lease_duration.as_secs() as i32),
                ..spec
            }
        } else {
            self.fresh_spec(now, spec.lease_transitions.unwrap_or(0) + 1)
        };
        lease.spec = Some(new_spec);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Hands the lease back so another replica takes over at once instead of
    /// waiting for it to expire.
    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map(drop)
    }
}
