//! One task per charger connection: reads frames, answers CALLs in order, sends at most one
//! server-initiated CALL at a time and correlates its answer, and is the only writer of its
//! charger's live state.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use chargeops_core::{Charger, CommandError, CommandReply, Registration};
use chargeops_ocpp::schema::{self, Direction};
use chargeops_ocpp::{ErrorCode, Frame, Version};

use crate::ctx::{CallFailure, Ctx};
use crate::metrics::Metrics;
use crate::{Control, Gateway, Mailbox, Route};

struct Pending {
    id: String,
    action: &'static str,
    reply: oneshot::Sender<Result<CommandReply, CommandError>>,
    deadline: Instant,
}

/// A charger that offered no subprotocol we speak: handshake done, close at once (OCPP-J).
pub(crate) async fn refuse_subprotocol(
    gw: Arc<Gateway>,
    charger_id: String,
    mut socket: WebSocket,
    peer: Option<String>,
) {
    Metrics::inc(&gw.metrics.upgrades_rejected_total);
    tracing::warn!(
        charger_id,
        peer,
        "closed connection: no supported OCPP subprotocol offered"
    );
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close_code::PROTOCOL,
            reason: "no supported subprotocol (ocpp1.6, ocpp2.0.1)".into(),
        })))
        .await;
}

/// Takes over an upgraded connection: claims the charger, marks it online, and returns the
/// task that serves it. The setup runs here, at the call, so that what it needs (the whole
/// `Charger`, the peer address) is not kept in the task for the connection's lifetime.
pub(crate) fn run(
    gw: Arc<Gateway>,
    charger: Charger,
    version: Version,
    socket: WebSocket,
    peer: Option<String>,
) -> impl Future<Output = ()> + Send + 'static {
    let Charger {
        id: charger_id,
        station_id,
        registration,
        ..
    } = charger;
    let conn_id = gw.next_conn_id();
    let mailbox = Mailbox::new();
    let route = Route::Mailbox {
        conn_id,
        mailbox: mailbox.clone(),
    };
    if gw.connections.claim(&charger_id, route) {
        tracing::warn!(
            charger_id,
            peer,
            "a newer connection claimed this charger; closing the older one"
        );
    }
    let protocol = match version {
        Version::V16 => chargeops_core::Protocol::Ocpp16,
        Version::V201 => chargeops_core::Protocol::Ocpp201,
    };
    Metrics::inc(&gw.metrics.connections_total);
    Metrics::inc(&gw.metrics.connections_open);
    tracing::info!(
        charger_id,
        peer,
        protocol = version.subprotocol(),
        "charger connected"
    );
    crate::writer::charger_online(
        &gw.live,
        &charger_id,
        &station_id,
        protocol,
        crate::writer::Origin::Local,
    );
    let ctx = Ctx::new(gw, charger_id, station_id, version, registration);
    serve(ctx, socket, Inbox(mailbox), conn_id)
}

/// The receiving end of a connection's mailbox; closes it when the task ends, however it
/// ends.
struct Inbox(Arc<Mailbox>);

impl Drop for Inbox {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The connection's task. It waits, between messages, with little more than the socket and
/// `Ctx`: handling a frame is boxed (allocated while it runs), and one timer serves both the
/// ping and the outstanding command's deadline. A test holds its size down.
// An async block rather than an async fn: an async fn keeps its arguments and the locals they
// are moved into side by side in the task, which would hold the socket and `Ctx` twice.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would store the socket and Ctx twice"
)]
fn serve(
    mut ctx: Ctx,
    mut socket: WebSocket,
    inbox: Inbox,
    conn_id: u64,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        let gw = ctx.gw.clone();
        // Boxed: a command is outstanding seldom, and the task is smaller without one inline.
        let mut pending: Option<Box<Pending>> = None;
        let ping_every = gw.config.ping_interval;
        let mut next_ping = Instant::now() + ping_every;
        let mut last_heard = Instant::now();
        let timer = tokio::time::sleep_until(next_ping);
        tokio::pin!(timer);

        let reason = loop {
            let wake = pending
                .as_ref()
                .map_or(next_ping, |p| p.deadline.min(next_ping));
            if timer.deadline() != wake {
                timer.as_mut().reset(wake);
            }
            tokio::select! {
                msg = socket.recv() => {
                    last_heard = Instant::now();
                    match msg {
                        None => break "closed by charger",
                        Some(Err(e)) => {
                            let text = e.to_string();
                            if text.contains("too long") || text.contains("too big") {
                                tracing::warn!(charger_id = %ctx.charger_id, error = %text, "frame over the size limit; closing");
                                let _ = socket.send(Message::Close(Some(CloseFrame {
                                    code: close_code::SIZE,
                                    reason: "frame too large".into(),
                                }))).await;
                                break "frame too large";
                            }
                            tracing::info!(charger_id = %ctx.charger_id, error = %text, "connection error");
                            break "connection error";
                        }
                        Some(Ok(Message::Text(text))) => {
                            Metrics::inc(&gw.metrics.messages_received_total);
                            let answer = Box::pin(on_text(&mut ctx, &mut pending, text.as_str())).await;
                            drop(text);
                            if let Some(out) = answer
                                && socket.send(Message::Text(out.into())).await.is_err()
                            {
                                break "send failed";
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            Metrics::inc(&gw.metrics.messages_received_total);
                            let out = call_error(&ctx, "-1", ErrorCode::FormatViolation,
                                "OCPP-J uses text frames; binary frame ignored");
                            if socket.send(Message::Text(out.into())).await.is_err() {
                                break "send failed";
                            }
                        }
                        Some(Ok(Message::Close(_))) => break "closed by charger",
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    }
                }
                ctrl = inbox.0.recv(), if pending.is_none() => match ctrl {
                    Control::Command { command, reply } => {
                        match encode_command(&mut ctx, &command) {
                            Ok((id, action, frame)) => {
                                if socket.send(Message::Text(frame.into())).await.is_err() {
                                    let _ = reply.send(Err(CommandError::Closed));
                                    break "send failed";
                                }
                                Metrics::inc(&gw.metrics.messages_sent_total);
                                tracing::info!(charger_id = %ctx.charger_id, action, message_id = %id, "command sent");
                                pending = Some(Box::new(Pending {
                                    id,
                                    action,
                                    reply,
                                    deadline: Instant::now() + gw.config.command_timeout,
                                }));
                            }
                            Err(e) => { let _ = reply.send(Err(e)); }
                        }
                    }
                    Control::Superseded => {
                        let _ = socket.send(Message::Close(Some(CloseFrame {
                            code: close_code::POLICY,
                            reason: "superseded by a newer connection".into(),
                        }))).await;
                        break "superseded";
                    }
                },
                () = &mut timer => {
                    let now = Instant::now();
                    if let Some(p) = pending.take_if(|p| p.deadline <= now) {
                        Metrics::inc(&gw.metrics.commands_timed_out_total);
                        tracing::warn!(charger_id = %ctx.charger_id, action = p.action, message_id = %p.id, "command timed out");
                        let _ = p.reply.send(Err(CommandError::Timeout(gw.config.command_timeout.as_secs())));
                    }
                    if now >= next_ping {
                        next_ping = now + ping_every;
                        if last_heard.elapsed() > ping_every * 3 {
                            break "silent for three ping intervals";
                        }
                        if socket.send(Message::Ping(Default::default())).await.is_err() {
                            break "send failed";
                        }
                    }
                }
            }
        };

        // No more commands: the API is answered `Closed` from here on.
        drop(inbox);
        // Completes the closing handshake (tungstenite queues the answer to the charger's Close
        // frame until the next flush) so the charger sees a clean close.
        let close = futures_util::SinkExt::close(&mut socket);
        let _ = Box::pin(tokio::time::timeout(
            std::time::Duration::from_secs(5),
            close,
        ))
        .await;
        if let Some(p) = pending.take() {
            let _ = p.reply.send(Err(CommandError::Closed));
        }
        Metrics::dec(&gw.metrics.connections_open);
        let charger_id = &ctx.charger_id;
        if gw.connections.remove_if_current(charger_id, conn_id) {
            crate::writer::charger_offline(
                &gw.live,
                charger_id,
                &ctx.station_id,
                crate::writer::Origin::Local,
            );
        }
        tracing::info!(charger_id, reason, "charger disconnected");
    }
}

fn call_error(ctx: &Ctx, id: &str, code: ErrorCode, description: &str) -> String {
    Metrics::inc(&ctx.gw.metrics.call_errors_sent_total);
    chargeops_ocpp::encode_error(
        id,
        code,
        ctx.version,
        description,
        &Value::Object(Default::default()),
    )
}

/// Handles one text frame; returns the frame to send back, if any.
async fn on_text(ctx: &mut Ctx, pending: &mut Option<Box<Pending>>, text: &str) -> Option<String> {
    let started = Instant::now();
    let frame = match chargeops_ocpp::decode(text, ctx.version) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(charger_id = %ctx.charger_id, code = ?e.code, error = %e.description, "malformed frame");
            // The codec knows when the spec wants silence (a broken CALLRESULT, an unknown
            // message type on 1.6) and otherwise gives the CALLERROR to send.
            let answer = e.answer(ctx.version);
            if answer.is_some() {
                Metrics::inc(&ctx.gw.metrics.call_errors_sent_total);
            }
            return answer;
        }
    };
    match frame {
        Frame::Call(call) => {
            // The validator answers NotImplemented for unknown actions and NotSupported for
            // the version's actions we have no handler for.
            let result = match schema::validate(
                ctx.version,
                &call.action,
                Direction::Request,
                &call.payload,
            ) {
                Err(e) => Err((e.code, e.to_string())),
                Ok(()) => dispatch(ctx, &call.action, call.payload).await,
            };
            ctx.gw.metrics.handling.observe(started.elapsed());
            Metrics::inc(&ctx.gw.metrics.messages_sent_total);
            Some(match result {
                Ok(payload) => chargeops_ocpp::encode_result(&call.id, &payload),
                Err((code, description)) => {
                    tracing::warn!(charger_id = %ctx.charger_id, action = %call.action, code = ?code, error = %description, "call answered with error");
                    call_error(ctx, &call.id, code, &description)
                }
            })
        }
        Frame::CallResult(res) => {
            match pending.take_if(|p| p.id == res.id) {
                Some(p) => {
                    let reply = match schema::validate(
                        ctx.version,
                        p.action,
                        Direction::Response,
                        &res.payload,
                    ) {
                        Ok(()) => Ok(CommandReply {
                            status: reply_status(ctx.version, p.action, &res.payload),
                            response: res.payload,
                        }),
                        Err(e) => Err(CommandError::CallError {
                            code: format!("{:?}", e.code),
                            description: format!("invalid {} answer: {e}", p.action),
                        }),
                    };
                    let _ = p.reply.send(reply);
                }
                None => {
                    tracing::warn!(charger_id = %ctx.charger_id, message_id = %res.id, "CALLRESULT for an unknown message id ignored")
                }
            }
            None
        }
        Frame::CallError(err) => {
            match pending.take_if(|p| p.id == err.id) {
                Some(p) => {
                    let _ = p.reply.send(Err(CommandError::CallError {
                        code: err.code,
                        description: err.description,
                    }));
                }
                None => {
                    tracing::warn!(charger_id = %ctx.charger_id, message_id = %err.id, code = %err.code, "CALLERROR for an unknown message id ignored")
                }
            }
            None
        }
    }
}

/// Actions a charger not yet accepted by the operator may send.
fn allowed_before_acceptance(action: &str) -> bool {
    matches!(action, "BootNotification" | "Heartbeat")
}

async fn dispatch(ctx: &mut Ctx, action: &str, payload: Value) -> Result<Value, CallFailure> {
    if ctx.registration != Registration::Accepted && !allowed_before_acceptance(action) {
        // The operator may have accepted the charger since it booted.
        if ctx.refresh_registration().await? != Registration::Accepted {
            return Err((
                ErrorCode::SecurityError,
                "charger is not accepted by the operator yet".to_owned(),
            ));
        }
    }
    match ctx.version {
        Version::V16 => crate::v16::handle(ctx, action, payload).await,
        Version::V201 => crate::v201::handle(ctx, action, payload).await,
    }
}

fn encode_command(
    ctx: &mut Ctx,
    command: &chargeops_core::Command,
) -> Result<(String, &'static str, String), CommandError> {
    let (action, payload) = match ctx.version {
        Version::V16 => crate::v16::command(command)?,
        Version::V201 => crate::v201::command(command)?,
    };
    // Our own payload is checked against the charger's schema, so bad API input (a 30-character
    // id tag for a 1.6 charger, say) is refused here instead of confusing the charger.
    schema::validate(ctx.version, action, Direction::Request, &payload)
        .map_err(|e| CommandError::Invalid(format!("{action} {e}")))?;
    let id = ctx.message_id();
    let frame = chargeops_ocpp::encode_call(&id, action, &payload);
    Ok((id, action, frame))
}

fn reply_status(version: Version, action: &str, payload: &Value) -> String {
    match version {
        Version::V16 => crate::v16::reply_status(action, payload),
        Version::V201 => crate::v201::reply_status(action, payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn future_size<A, B, C, D, F: Future>(_: impl FnOnce(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A connection's task lives as long as the charger is connected, hundreds of thousands
    /// of them: the task must not carry a frame handler's state between frames.
    #[test]
    fn connection_task_stays_small() {
        let size = future_size(serve);
        eprintln!(
            "serve future {size} bytes, WebSocket {} bytes, Ctx {} bytes",
            std::mem::size_of::<WebSocket>(),
            std::mem::size_of::<Ctx>()
        );
        assert!(size <= 1536, "the connection task grew to {size} bytes");
    }
}
