//! The requests `cancel` sends: one order, a batch of one instrument's orders, a mass cancel of an
//! instrument, and the reads that say what became of orders that left the listing; all paced to the
//! venue's rate.

use std::collections::BTreeMap;
use std::sync::Arc;

use shutdown_core::domain::{Order, OrderStatus};
use shutdown_core::errors::RoleError;
use shutdown_core::node::{CancelAck, MassCancelAck, MassCancelScope, OrderGateway};
use shutdown_core::retry::{Backoff, retry};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::tally::{Fate, Fill, Tally};
use crate::venue::Pacer;

/// What a request needs besides its orders: the venue, the retry policy, the pace, the deadline.
#[derive(Clone)]
pub(super) struct Sender {
    pub orders: Arc<dyn OrderGateway>,
    pub backoff: Backoff,
    pub pacer: Arc<Pacer>,
    pub deadline: Instant,
}

/// The outcome of one order: its client id, its fate (or the error), the requests it took.
pub(super) type Answer = (String, Result<Fate, String>, u32);

impl Sender {
    /// Send one request through the pacer, with retries.
    async fn send<T, F, Fut>(&self, key: &str, call: F) -> (Result<T, RoleError>, u32)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, RoleError>>,
    {
        retry(key, self.backoff, self.deadline, || async {
            if !self.pacer.wait(self.deadline).await {
                return Err(RoleError::Transient(
                    "no rate budget left before the deadline".into(),
                ));
            }
            call().await
        })
        .await
    }

    /// Cancel one order and classify the outcome from the venue's order state.
    pub(super) async fn one(self, id: String) -> Vec<Answer> {
        let (ack, attempts) = self.send(&id, || self.orders.cancel(&id)).await;
        let fate = self.fate(&id, ack).await;
        vec![(id, fate, attempts)]
    }

    /// Cancel orders of one instrument in one request; each answer classified as a single
    /// cancel's. A venue that turns out to have no batch cancel gets them one by one.
    pub(super) async fn batch(self, ids: Vec<String>) -> Vec<Answer> {
        let key = ids.first().cloned().unwrap_or_default();
        let (answers, attempts) = self.send(&key, || self.orders.cancel_batch(&ids)).await;
        let answers = match answers {
            Ok(a) if a.len() == ids.len() => a,
            Ok(a) => {
                let e = format!(
                    "the batch cancel answered {} of {} orders",
                    a.len(),
                    ids.len()
                );
                return (ids.into_iter())
                    .map(|id| (id, Err(e.clone()), attempts))
                    .collect();
            }
            Err(RoleError::Unsupported(_)) => {
                let mut out = Vec::new();
                for id in ids {
                    out.extend(self.clone().one(id).await);
                }
                return out;
            }
            Err(e) => {
                let e = e.to_string();
                return (ids.into_iter())
                    .map(|id| (id, Err(e.clone()), attempts))
                    .collect();
            }
        };
        let mut out = Vec::with_capacity(ids.len());
        for (id, ack) in ids.into_iter().zip(answers) {
            let fate = self.fate(&id, ack).await;
            out.push((id, fate, attempts));
        }
        out
    }

    /// One mass cancel, paced and retried.
    pub(super) async fn mass(&self, scope: &MassCancelScope) -> Result<MassCancelAck, RoleError> {
        self.send("mass-cancel", || self.orders.mass_cancel(scope))
            .await
            .0
    }

    /// What a cancel's answer says of the order; "too late" or "unknown" are looked up in its
    /// state, for the fill.
    async fn fate(&self, id: &str, ack: Result<CancelAck, RoleError>) -> Result<Fate, String> {
        match ack {
            Ok(CancelAck::Cancelled) => Ok(Fate::Cancelled),
            Ok(CancelAck::Pending) => Ok(Fate::Pending),
            Ok(CancelAck::AlreadyFilled | CancelAck::UnknownOrder) => {
                match self.orders.order(id).await {
                    Ok(Some(o)) if o.status == OrderStatus::Filled => {
                        Ok(Fate::Filled(Fill::of(&o)))
                    }
                    Ok(Some(o)) if o.status == OrderStatus::Cancelled => Ok(Fate::Cancelled),
                    Ok(Some(o)) if o.status.is_live() => Ok(Fate::Pending),
                    Ok(_) => Ok(Fate::Unknown),
                    Err(e) => Err(format!(
                        "cancel answered unknown, and the order cannot be read: {e}"
                    )),
                }
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The fate an order's state says, for an order that left the listing.
fn fate_of(o: &Order) -> Fate {
    match o.status {
        OrderStatus::Filled => Fate::Filled(Fill::of(o)),
        s if !s.is_live() => Fate::Cancelled,
        _ => Fate::Unknown,
    }
}

/// Read what became of each order that left the listing without an answer that says how:
/// cancelled, filled, or unknown (not read in time). Where the venue keeps an order history, one
/// request per instrument says it for all of that instrument's orders; the rest are read one by
/// one. Every read is paced and retried as the cancels are, `in_flight` at a time, until the
/// sender's deadline.
pub(super) async fn confirm_gone(
    sender: &Sender,
    gone: Vec<(String, String)>,
    in_flight: usize,
    tally: &mut Tally,
) {
    let mut by_instrument: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, instrument) in gone {
        by_instrument.entry(instrument).or_default().push(id);
    }
    let mut unread = Vec::new();
    let read = |(instrument, ids): (String, Vec<String>)| {
        let sender = sender.clone();
        async move {
            let read = sender
                .send(&instrument, || sender.orders.order_history(&instrument))
                .await
                .0;
            (ids, read)
        }
    };
    let answer = |(ids, read): (Vec<String>, Result<Vec<Order>, RoleError>)| {
        let history: BTreeMap<String, Order> = match read {
            Ok(list) => list.into_iter().map(|o| (o.client_id.clone(), o)).collect(),
            Err(_) => BTreeMap::new(),
        };
        for id in ids {
            match history.get(&id).map(fate_of) {
                Some(Fate::Unknown) | None => unread.push(id),
                Some(fate) => tally.record(id, Ok(fate), 0),
            }
        }
    };
    let unstarted = bounded(by_instrument, in_flight, sender.deadline, read, answer).await;
    unread.extend(unstarted.into_iter().flat_map(|(_, ids)| ids));
    read_one_by_one(sender, unread, in_flight, tally).await;
}

/// Read each order's state, `in_flight` at a time until the sender's deadline.
async fn read_one_by_one(sender: &Sender, ids: Vec<String>, in_flight: usize, tally: &mut Tally) {
    let read = |id: String| {
        let sender = sender.clone();
        async move {
            let state = sender.send(&id, || sender.orders.order(&id)).await.0;
            (id, state)
        }
    };
    let answer = |(id, state): (String, Result<Option<Order>, RoleError>)| {
        let fate = match state {
            Ok(Some(o)) => fate_of(&o),
            _ => Fate::Unknown,
        };
        tally.record(id, Ok(fate), 0);
    };
    let unstarted = bounded(ids, in_flight, sender.deadline, read, answer).await;
    // Not read before the deadline: gone from the listing, fate unknown.
    for id in unstarted {
        tally.record(id, Ok(Fate::Unknown), 0);
    }
}

/// Run `task` on each item, at most `in_flight` at once, starting none at or after `deadline`;
/// `done` takes each answer as it comes (a task that panicked gives none). A large book costs
/// no more memory than a small one. The items never started are returned.
pub(super) async fn bounded<T, R, Fut>(
    items: impl IntoIterator<Item = T>,
    in_flight: usize,
    deadline: Instant,
    mut task: impl FnMut(T) -> Fut,
    mut done: impl FnMut(R),
) -> Vec<T>
where
    Fut: std::future::Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let mut queue = items.into_iter();
    let mut set = JoinSet::new();
    loop {
        while set.len() < in_flight.max(1) && Instant::now() < deadline {
            let Some(item) = queue.next() else { break };
            set.spawn(task(item));
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        if let Ok(answer) = joined {
            done(answer);
        }
    }
    queue.collect()
}
