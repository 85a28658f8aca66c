//! The `calls` scenario: concurrent request/reply calls, each caller with one call outstanding.
//!
//! chorus: `call` frames to a module method (default `booking.get` on an event the scenario creates
//! over REST). Peers have no modules, so they answer the nearest equivalent with the same arguments:
//! Socket.IO acknowledges a `call` event from its server script, NATS routes a request to a responder
//! connection of the generator (NATS's own request/reply pattern, two hops through the server), and the
//! raw server echoes the arguments in a `reply`.

use crate::conn::{Conn, Dialer, Incoming, Proto};
use crate::measure::{Phases, Sample, Sampler};
use crate::pubsub::{connect_all, new_histogram};
use anyhow::{anyhow, bail};
use chorus_protocol::{ClientFrame, Codec, ErrorCode, Payload};
use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;
use tokio::task::JoinSet;

/// The calls to make.
pub struct Plan {
    /// Concurrent callers (connections), each with one call in flight.
    pub callers: usize,
    /// `module.method`.
    pub method: String,
    /// Arguments as JSON.
    pub args: String,
}

/// What one target did in the measured window.
pub struct Outcome {
    /// Calls answered with a result.
    pub ops: u64,
    /// Calls answered with an error.
    pub errors: u64,
    /// The first error.
    pub first_error: Option<String>,
    /// The method is unknown to the server (chorus error 2006): nothing was measured.
    pub unknown_method: Option<String>,
    /// Call latency, microseconds.
    pub latency: Histogram<u64>,
    /// Callers whose connection ended.
    pub disconnects: u64,
    /// CPU and memory over the window.
    pub sample: Sample,
}

struct Flow {
    measuring: Cell<bool>,
    ops: Cell<u64>,
    all_ops: Cell<u64>,
    errors: Cell<u64>,
    first_error: RefCell<Option<String>>,
    unknown_method: RefCell<Option<String>>,
    disconnects: Cell<u64>,
    latency: RefCell<Histogram<u64>>,
}

/// The NATS subject a call to `method` is sent to.
fn nats_subject(method: &str) -> String {
    format!("calls.{method}")
}

/// Runs the calls against one target.
pub async fn run(plan: &Plan, dialer: &Dialer, phases: &Phases, sampler: &Sampler) -> anyhow::Result<Outcome> {
    let nats = dialer.proto == Proto::Nats;
    let callers = connect_all(dialer, plan.callers, |i| if nats { vec![inbox(i)] } else { Vec::new() }).await?;
    let mut tasks = JoinSet::new();
    if nats {
        let responder = connect_all(dialer, 1, |_| vec![nats_subject(&plan.method)]).await?;
        for conn in responder {
            tasks.spawn_local(respond(conn));
        }
    }
    let args = match dialer.proto {
        Proto::ChorusWs(Codec::Json) => Payload::from_json(plan.args.clone().into())?,
        _ => Payload::from_msgpack(Payload::from_json(plan.args.clone().into())?.encoded(Codec::MsgPack)?)?,
    };
    let flow = Rc::new(Flow {
        measuring: Cell::new(false),
        ops: Cell::new(0),
        all_ops: Cell::new(0),
        errors: Cell::new(0),
        first_error: RefCell::new(None),
        unknown_method: RefCell::new(None),
        disconnects: Cell::new(0),
        latency: RefCell::new(new_histogram()),
    });
    for (i, conn) in callers.into_iter().enumerate() {
        let call =
            CallSpec { method: plan.method.clone(), args: args.clone(), json: plan.args.clone(), inbox: inbox(i) };
        tasks.spawn_local(caller(conn, flow.clone(), call));
    }
    let counter = || flow.all_ops.get();
    let rate = |r: f64| format!("{} calls/s", crate::report::si(r));
    let stop = || flow.unknown_method.borrow().clone();
    phases.warmup(&counter, &rate, &stop).await;
    flow.measuring.set(true);
    let window = sampler.begin()?;
    phases.measure(&counter, &rate, &stop).await;
    flow.measuring.set(false);
    let sample = sampler.end(window)?;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let flow = Rc::try_unwrap(flow).map_err(|_| anyhow!("tasks still hold the run state"))?;
    Ok(Outcome {
        ops: flow.ops.get(),
        errors: flow.errors.get(),
        first_error: flow.first_error.into_inner(),
        unknown_method: flow.unknown_method.into_inner(),
        latency: flow.latency.into_inner(),
        disconnects: flow.disconnects.get(),
        sample,
    })
}

fn inbox(i: usize) -> String {
    format!("_INBOX.bench.{i}")
}

struct CallSpec {
    method: String,
    args: Payload,
    json: String,
    inbox: String,
}

fn call_frame(conn: &Conn, id: u64, call: &CallSpec) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    match conn.proto() {
        Proto::ChorusWs(_) | Proto::ChorusQuic => {
            return conn.encode(&ClientFrame::Call {
                id: Some(id),
                method: call.method.clone(),
                args: call.args.clone(),
            });
        }
        Proto::SocketIo(events) => {
            let packet = events.call(id, &call.method, &call.json)?;
            conn.frame(packet.as_bytes(), &mut out);
        }
        Proto::Nats => {
            let mut text =
                format!("PUB {} {} {}\r\n", nats_subject(&call.method), call.inbox, call.json.len()).into_bytes();
            text.extend_from_slice(call.json.as_bytes());
            text.extend_from_slice(b"\r\n");
            conn.frame(&text, &mut out);
        }
    }
    Ok(out)
}

/// One caller: call, wait for the answer, repeat.
async fn caller(mut conn: Conn, flow: Rc<Flow>, call: CallSpec) {
    let nats = conn.proto() == Proto::Nats;
    let result = async {
        for id in 1u64.. {
            let frame = call_frame(&conn, id, &call)?;
            let started = Instant::now();
            conn.send(&frame).await?;
            let mut answer: Option<Result<(), (u16, String)>> = None;
            while answer.is_none() {
                conn.fill().await?;
                conn.drain(&mut |m| match m {
                    Incoming::Reply { id: got, .. } if got == id => answer = Some(Ok(())),
                    Incoming::Event { .. } if nats => answer = Some(Ok(())),
                    Incoming::Error { id: Some(got), code, message } if got == id => {
                        answer = Some(Err((code, message)))
                    }
                    Incoming::Error { code, message, .. } => {
                        flow.errors.set(flow.errors.get() + 1);
                        flow.first_error.borrow_mut().get_or_insert_with(|| format!("{code} {message}"));
                    }
                    _ => {}
                })?;
                conn.flush_outbox().await?;
            }
            let took = (started.elapsed().as_micros() as u64).max(1);
            flow.all_ops.set(flow.all_ops.get() + 1);
            match answer {
                Some(Err((code, message))) if code == ErrorCode::UnknownMethod.as_u16() => {
                    flow.unknown_method.borrow_mut().get_or_insert_with(|| {
                        format!(
                            "unknown method {} (error {code}: {message}): this server has no module serving it; \
                             start chorus with the module, or pass --method",
                            call.method
                        )
                    });
                    return Ok(());
                }
                Some(Err((code, message))) if flow.measuring.get() => {
                    flow.errors.set(flow.errors.get() + 1);
                    flow.first_error.borrow_mut().get_or_insert_with(|| format!("{code} {message}"));
                }
                _ if flow.measuring.get() => {
                    flow.ops.set(flow.ops.get() + 1);
                    flow.latency.borrow_mut().saturating_record(took);
                }
                _ => {}
            }
        }
        Ok::<(), anyhow::Error>(())
    };
    if result.await.is_err() {
        flow.disconnects.set(flow.disconnects.get() + 1);
    }
}

/// NATS responder: answers every request with its own arguments, on the request's reply subject.
async fn respond(mut conn: Conn) {
    let mut text = Vec::new();
    let mut framed = Vec::new();
    let result = async {
        loop {
            conn.fill().await?;
            conn.drain(&mut |m| {
                if let Incoming::Event { payload, reply_to: Some(reply) } = m {
                    text.extend_from_slice(b"PUB ");
                    text.extend_from_slice(reply);
                    text.extend_from_slice(format!(" {}\r\n", payload.len()).as_bytes());
                    text.extend_from_slice(payload);
                    text.extend_from_slice(b"\r\n");
                }
            })?;
            conn.take_outbox(&mut framed);
            if !text.is_empty() {
                conn.frame(&text, &mut framed);
                text.clear();
            }
            if !framed.is_empty() {
                conn.send(&framed).await?;
                framed.clear();
            }
        }
    };
    let _: anyhow::Result<()> = result.await;
}

/// An HS256 token for `sub` with `role`, valid for a day.
pub fn mint_token(secret: &str, sub: &str, role: &str) -> anyhow::Result<String> {
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() + 86_400;
    let claims = serde_json::json!({ "sub": sub, "name": sub, "role": role, "exp": exp });
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

/// Creates an event for the calls over the booking module's REST API (`POST /api/events`), returning
/// its id, or `None` when the server does not serve that route (no booking module: HTTP 404).
pub async fn create_event(http: SocketAddr, token: &str, capacity: u32) -> anyhow::Result<Option<u64>> {
    let body = serde_json::json!({ "title": "chorus-bench calls", "seatCapacity": capacity });
    match crate::rest::request(http, "POST", "/api/events", token, Some(&body)).await? {
        (200 | 201, event) => {
            let id = event["id"].as_u64().ok_or_else(|| anyhow!("event without an id: {event}"))?;
            Ok(Some(id))
        }
        (404, _) => Ok(None),
        (status, answer) => bail!("POST /api/events answered {status}: {answer}"),
    }
}
