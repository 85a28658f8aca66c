//! Event booking for chorus (seed 004): events with a seat capacity, bookings and cancellations persisted
//! through the store, and live seat counts on one topic per event, `booking/event/{id}` — reachable three
//! ways: native chorus clients (WebSocket/QUIC topics and `booking.*` calls), a REST API, and the seed's
//! own WebSocket JSON API (`/ws`, `/ws/events/{eventId}`) through the broker's dialect host.
//!
//! No overbooking, on any number of nodes: every seat change is a compare-and-set on the event's seats row
//! in the store, never a process-local lock. Broadcasts carry seat counts only, never a booking or user
//! id. The crate's README documents the APIs, the access rule and the storage layout.
//!
//! Layout:
//! - `service`: the domain operations ([`module`] wires them to the broker);
//! - `seats`: the seats row, its compare-and-set loop and the per-event batching of bookings;
//!   `sequencer`: publishing changes in commit order;
//! - `idempotency`: `Idempotency-Key`; `recovery`: finishing changes a crash interrupted;
//! - `access`: who may see, subscribe to and book which event;
//! - `model`: stored records, JSON views and topic events; `tables`: the storage layout;
//! - `requests`: reading and checking input; `error`: `BookingError` and how it reaches clients;
//! - `rest`, `calls`, `seed_ws`, `demo`: the adapters — REST, native calls, the seed dialect, the demo page.
#![warn(missing_docs)]

mod access;
mod calls;
mod demo;
mod error;
mod idempotency;
mod model;
mod recovery;
mod requests;
mod rest;
mod seats;
mod seed_ws;
mod sequencer;
mod service;
mod tables;
#[cfg(test)]
mod testing;

use async_trait::async_trait;
use chorus_core::dialect::JsonDialect;
use chorus_core::module::{Caller, Context, Module, ModuleError, ModuleInfo};
use chorus_core::protocol::{ErrorCode, Payload};
use service::Bookings;
use std::sync::{Arc, OnceLock};

/// The module's name: calls are `booking.book`, `booking.cancel`, `booking.get`, `booking.list`.
pub const NAME: &str = "booking";
/// The prefix of the module's topics; an event's topic is `booking/event/{id}`.
pub const TOPIC_PREFIX: &str = "booking/event/";

/// The event booking module, ready to hand to `chorus_core::server::start`.
pub fn module() -> Arc<dyn Module> {
    Arc::new(EventBooking::default())
}

/// The module: the broker-facing side of [`Bookings`].
#[derive(Default)]
struct EventBooking {
    bookings: OnceLock<Arc<Bookings>>,
}

impl EventBooking {
    fn init(&self, ctx: &Context) -> &Arc<Bookings> {
        self.bookings.get_or_init(|| Arc::new(Bookings::new(ctx)))
    }

    fn bookings(&self) -> Result<&Arc<Bookings>, ModuleError> {
        self.bookings.get().ok_or_else(|| ModuleError::new(ErrorCode::Internal, "the booking module has not started"))
    }
}

/// The event id of a topic of ours.
fn topic_event(topic: &str) -> Result<u64, ModuleError> {
    let id = topic.strip_prefix(TOPIC_PREFIX).unwrap_or(topic);
    Ok(requests::event_id_text(id)?)
}

#[async_trait]
impl Module for EventBooking {
    fn name(&self) -> &'static str {
        NAME
    }

    fn topic_prefixes(&self) -> Vec<String> {
        vec![TOPIC_PREFIX.to_owned()]
    }

    async fn start(&self, ctx: &Context) -> anyhow::Result<()> {
        let bookings = self.init(ctx).clone();
        let (ctx, shutdown) = (ctx.clone(), ctx.shutdown());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(recovery::SWEEP_INTERVAL);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => match bookings.sweep(&ctx).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(finished = n, "recovery sweep finished interrupted changes"),
                        Err(e) => tracing::warn!(error = %e, "recovery sweep failed; retrying at the next tick"),
                    },
                }
            }
        });
        Ok(())
    }

    async fn authorize(&self, _ctx: &Context, caller: &Caller, topic: &str) -> Result<(), ModuleError> {
        self.bookings()?.visible_event(&caller.identity, topic_event(topic)?).await?;
        Ok(())
    }

    async fn snapshot(&self, _ctx: &Context, _caller: &Caller, topic: &str) -> Result<Option<Payload>, ModuleError> {
        let update = self.bookings()?.snapshot(topic_event(topic)?).await?;
        Payload::from_value(&update).map(Some).map_err(|e| ModuleError::new(ErrorCode::Internal, e.to_string()))
    }

    async fn on_call(
        &self,
        ctx: &Context,
        caller: &Caller,
        method: &str,
        args: Payload,
    ) -> Result<Payload, ModuleError> {
        calls::dispatch(self.bookings()?, ctx, caller, method, args).await
    }

    fn routes(&self, ctx: &Context) -> Option<axum::Router> {
        let bookings = self.init(ctx).clone();
        Some(rest::routes(ctx, bookings).merge(demo::routes()))
    }

    fn dialects(&self) -> Vec<Arc<dyn JsonDialect>> {
        vec![Arc::new(seed_ws::SeedDialect)]
    }

    fn info(&self) -> Option<ModuleInfo> {
        Some(ModuleInfo {
            title: "Event booking (seed 004)",
            readme: "modules/event_booking/README.md",
            demo: Some(demo::PATH),
        })
    }
}
