//! The WebSocket loops of a remote session: the presenter's (the tablet: moves, slide state,
//! pointer, control, admissions, end) and each attendee's (a doctor's browser: follows, and
//! navigates or taps while she has control). Each message is checked (`remote::check`) and
//! relayed (`remote_relay`); where the session stands is kept in the store for late joiners and
//! other hub processes.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use chrono::Utc;
use edetail_bundle::Manifest;
use edetail_protocol::remote::{
    AttendeeMessage, CLOSE_ENDED, CLOSE_FULL, CLOSE_REPLACED, Control, HubMessage, MAX_ATTENDEES, MAX_STATE_BYTES, PresenterMessage, check,
};
use serde_json::{Map, Value};

use crate::http::blocking;
use crate::hub::Hub;
use crate::remote_relay::{Envelope, Outgoing, Relay, To};
use crate::store::{RemoteJoin, RemoteSession};

/// Attendees unseen this long (their hub process marks them seen every `Hub::remote_recheck`)
/// no longer count towards the limit (their process died).
const LIVE_FOR: Duration = Duration::from_secs(45);
/// Pings keep proxies from closing a quiet session.
const PING_EVERY: Duration = Duration::from_secs(20);
/// An attendee may send at most this many messages per second (more are dropped).
const ATTENDEE_RATE: f64 = 10.0;

/// Where a session stands, as `HubMessage::Current` carries it.
#[derive(Debug, Clone)]
struct Position {
    slide: String,
    presentation: String,
    seq: u64,
    control: Control,
    state: Map<String, Value>,
}

impl Position {
    fn parse(text: Option<&str>) -> Option<Position> {
        match serde_json::from_str(text?).ok()? {
            HubMessage::Current { slide, presentation, seq, control, state } => Some(Position { slide, presentation, seq, control, state }),
            _ => None,
        }
    }

    fn message(&self) -> HubMessage {
        HubMessage::Current {
            slide: self.slide.clone(),
            presentation: self.presentation.clone(),
            seq: self.seq,
            control: self.control,
            state: self.state.clone(),
        }
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

async fn send(ws: &mut WebSocket, m: &HubMessage) -> bool {
    match serde_json::to_string(m) {
        Ok(t) => ws.send(Message::Text(t.into())).await.is_ok(),
        Err(_) => false,
    }
}

async fn close(ws: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = ws.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
}

/// Time left until the session expires (at least a millisecond).
fn until_expiry(s: &RemoteSession) -> Duration {
    (s.expires_at - Utc::now()).to_std().unwrap_or(Duration::from_millis(1)).max(Duration::from_millis(1))
}

/// The session as stored now (position, end), `None` when it cannot be read.
async fn reload(hub: &Hub, id: &str) -> Option<RemoteSession> {
    let store = hub.inner().store.clone();
    let sid = id.to_string();
    match blocking(move || store.remote_session(&sid)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(session = %id, error = %e, "remote session unreadable");
            None
        }
    }
}

/// The tablet's socket, until the session ends or the tablet goes.
pub(super) async fn presenter(hub: Hub, session: RemoteSession, manifest: Manifest, mut ws: WebSocket) {
    let relay: Arc<Relay> = hub.inner().remote.clone();
    let id = session.id.clone();
    let mut position = Position::parse(session.position.as_deref());
    // This connection presents the session now, on whichever hub process: an older presenter
    // connection learns it was replaced when it next marks itself seen.
    let me = new_attendee_id();
    {
        let store = hub.inner().store.clone();
        let (sid, presenter) = (id.clone(), me.clone());
        if let Err(e) = blocking(move || store.claim_remote_presenter(&sid, &presenter, now_ms())).await {
            tracing::warn!(session = %id, error = %e, "recording the remote presenter failed");
        }
    }
    let (conn, mut rx) = relay.join_presenter(&id, position.as_ref().map(|p| p.control));
    tracing::info!(session = %id, "remote presenter connected");
    let mut ok = match &position {
        Some(p) => send(&mut ws, &p.message()).await,
        None => true,
    };
    if ok {
        let store = hub.inner().store.clone();
        let (sid, since) = (id.clone(), now_ms() - LIVE_FOR.as_millis() as i64);
        let attendees = blocking(move || store.remote_attendees(&sid, since)).await.unwrap_or_default();
        for a in attendees {
            ok = ok && send(&mut ws, &HubMessage::Joined { attendee: a.attendee_id, waiting: !a.admitted }).await;
        }
    }
    // Where the session stands goes to the store off the relay's path: the latest position,
    // written by one task (a burst of moves is one write), for joiners and other processes.
    let (positions, latest) = tokio::sync::watch::channel::<Option<(String, i64)>>(None);
    tokio::spawn(write_positions(hub.clone(), id.clone(), latest));
    let expiry = tokio::time::sleep(until_expiry(&session));
    tokio::pin!(expiry);
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut recheck = tokio::time::interval(hub.remote_recheck());
    recheck.reset();
    let mut ended = false;
    let mut replaced = false;
    while ok {
        tokio::select! {
            m = ws.recv() => match m {
                Some(Ok(Message::Text(text))) => {
                    match check::<PresenterMessage>(text.as_str()) {
                        Ok(msg) => {
                            ended = on_presenter_message(&hub, &relay, &session, &manifest, &mut position, msg).await;
                            if ended {
                                break;
                            }
                            if let Some(p) = &position
                                && let Ok(text) = serde_json::to_string(&p.message())
                            {
                                positions.send_if_modified(|v| {
                                    let new = Some((text, p.seq as i64));
                                    let changed = *v != new;
                                    *v = new;
                                    changed
                                });
                            }
                        }
                        Err(e) => tracing::debug!(session = %id, error = %e, "presenter message refused"),
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            out = rx.recv() => match out {
                Some(Outgoing::Text(t)) => ok = ws.send(Message::Text(t)).await.is_ok(),
                Some(Outgoing::Close(code)) => {
                    ended = code == CLOSE_ENDED;
                    replaced = code == CLOSE_REPLACED;
                    close(&mut ws, code, "").await;
                    break;
                }
                // An admitted attendee gets the position from here (newer than the store's).
                Some(Outgoing::Joined(attendee)) => {
                    if let Some(p) = &position {
                        relay.publish(Envelope { session: id.clone(), to: To::Attendee(attendee), message: p.message(), close: None }).await;
                    }
                }
                Some(Outgoing::Admitted) | None => {}
            },
            _ = &mut expiry => {
                relay.publish(Envelope { session: id.clone(), to: To::Everyone, message: HubMessage::Ended, close: Some(CLOSE_ENDED) }).await;
                ended = true;
                break;
            }
            _ = ping.tick() => ok = ws.send(Message::Ping(Default::default())).await.is_ok(),
            // Seen; replaced by a newer presenter connection on another process, ended elsewhere
            // (a relay message lost) or its expiry moved: the tablet is told.
            _ = recheck.tick() => {
                let store = hub.inner().store.clone();
                let (sid, presenter) = (id.clone(), me.clone());
                let now = Utc::now();
                let seen = blocking(move || {
                    let current = store.touch_remote_presenter(&sid, &presenter, now.timestamp_millis())?;
                    Ok((current, store.remote_session(&sid)?.is_some_and(|s| s.live_at(now))))
                })
                .await;
                match seen {
                    Ok((_, false)) => {
                        let _ = send(&mut ws, &HubMessage::Ended).await;
                        close(&mut ws, CLOSE_ENDED, "ended").await;
                        ended = true;
                        break;
                    }
                    Ok((false, true)) => {
                        close(&mut ws, CLOSE_REPLACED, "replaced").await;
                        replaced = true;
                        break;
                    }
                    Ok((true, true)) => {}
                    Err(e) => tracing::debug!(session = %id, error = %e, "re-reading the remote session failed"),
                }
            }
        }
    }
    let was_current = relay.leave(&id, conn, None);
    if !replaced {
        let store = hub.inner().store.clone();
        let (sid, presenter) = (id.clone(), me.clone());
        if let Err(e) = blocking(move || store.release_remote_presenter(&sid, &presenter)).await {
            tracing::debug!(session = %id, error = %e, "recording the presenter gone failed");
        }
    }
    if !ended && !replaced && was_current {
        // The tablet dropped: the followers wait for it (the call goes on on the tablet).
        relay
            .publish(Envelope { session: id.clone(), to: To::AllAttendees, message: HubMessage::PresenterReconnecting, close: None })
            .await;
    }
    tracing::info!(session = %id, ended, "remote presenter disconnected");
}

/// Handles one presenter message; `true` when it ended the session.
async fn on_presenter_message(
    hub: &Hub,
    relay: &Arc<Relay>,
    session: &RemoteSession,
    manifest: &Manifest,
    position: &mut Option<Position>,
    msg: PresenterMessage,
) -> bool {
    let id = &session.id;
    let publish = |to: To, message: HubMessage| relay.publish(Envelope { session: id.clone(), to, message, close: None });
    match msg {
        PresenterMessage::Slide { slide, presentation, seq } => {
            if manifest.slide(&slide).is_none() {
                tracing::debug!(session = %id, "presenter moved to a slide the session's bundle lacks; not relayed");
                return false;
            }
            let control = position.as_ref().map(|p| p.control).unwrap_or(Control::Rep);
            // Moves only go forwards: a presenter that restarted its count (an app restarted
            // and resumed the session) is placed after what the session showed.
            let seq = position.as_ref().map_or(seq, |p| seq.max(p.seq + 1));
            let p = Position { slide, presentation, seq, control, state: Map::new() };
            publish(To::Attendees, p.message()).await;
            *position = Some(p);
        }
        PresenterMessage::State { key, value } => {
            let Some(p) = position.as_mut() else { return false };
            let mut state = p.state.clone();
            state.insert(key.clone(), value.clone());
            if Value::Object(state.clone()).to_string().len() > MAX_STATE_BYTES {
                tracing::debug!(session = %id, "slide state over its bound; not relayed");
                return false;
            }
            p.state = state;
            publish(To::Attendees, HubMessage::Presenter { message: PresenterMessage::State { key, value } }).await;
        }
        PresenterMessage::Pointer { at } => {
            publish(To::Attendees, HubMessage::Presenter { message: PresenterMessage::Pointer { at } }).await;
            return false;
        }
        PresenterMessage::Control { to } => {
            if let Some(p) = position.as_mut() {
                p.control = to;
            }
            publish(To::Attendees, HubMessage::Presenter { message: PresenterMessage::Control { to } }).await;
        }
        PresenterMessage::Admit { attendee } => {
            let store = hub.inner().store.clone();
            let (sid, a) = (id.clone(), attendee.clone());
            match blocking(move || store.admit_remote_attendee(&sid, &a)).await {
                Ok(true) => {
                    publish(To::Attendee(attendee.clone()), HubMessage::Admitted).await;
                    if let Some(p) = position.as_ref() {
                        publish(To::Attendee(attendee), p.message()).await;
                    }
                }
                Ok(false) => tracing::debug!(session = %id, "admit: no such attendee"),
                Err(e) => tracing::warn!(session = %id, error = %e, "admit failed"),
            }
            return false;
        }
        PresenterMessage::End => {
            let store = hub.inner().store.clone();
            let sid = id.clone();
            if let Err(e) = blocking(move || store.end_remote_session(&sid, Utc::now())).await {
                tracing::warn!(session = %id, error = %e, "ending the remote session failed");
            }
            relay.publish(Envelope { session: id.clone(), to: To::Everyone, message: HubMessage::Ended, close: Some(CLOSE_ENDED) }).await;
            return true;
        }
    }
    false
}

/// Writes the session's latest position whenever it changes, until the presenter's socket
/// ends (then the last one).
async fn write_positions(hub: Hub, id: String, mut latest: tokio::sync::watch::Receiver<Option<(String, i64)>>) {
    while latest.changed().await.is_ok() {
        let Some((text, seq)) = latest.borrow_and_update().clone() else { continue };
        let store = hub.inner().store.clone();
        let sid = id.clone();
        if let Err(e) = blocking(move || store.set_remote_position(&sid, &text, seq)).await {
            tracing::warn!(session = %id, error = %e, "storing the remote session's position failed");
        }
    }
}

fn new_attendee_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        return uuid::Uuid::new_v4().simple().to_string();
    }
    hex::encode(b)
}

/// Sends the stored position to a joining attendee (kept in `last` to skip the presenter's
/// repetition of it), and that the tablet is away if it is (after it presented). Nothing
/// before the presenter's first move: the presenter answers her joining with the position as
/// soon as it has one.
async fn send_current(hub: &Hub, id: &str, ws: &mut WebSocket, last: &mut Option<String>) -> bool {
    let Some(session) = reload(hub, id).await else { return true };
    let Some(text) = Position::parse(session.position.as_deref()).and_then(|p| serde_json::to_string(&p.message()).ok()) else {
        return true;
    };
    *last = Some(text.clone());
    if ws.send(Message::Text(text.into())).await.is_err() {
        return false;
    }
    let away = session.presenter_id.is_none() || session.presenter_seen_ms < now_ms() - LIVE_FOR.as_millis() as i64;
    !away || send(ws, &HubMessage::PresenterReconnecting).await
}

/// A doctor's browser, until she leaves or the session ends.
pub(super) async fn attendee(hub: Hub, session: RemoteSession, link: String, requested: Option<String>, mut ws: WebSocket) {
    let id = session.id.clone();
    if !session.live_at(Utc::now()) {
        let _ = send(&mut ws, &HubMessage::Ended).await;
        close(&mut ws, CLOSE_ENDED, "ended").await;
        return;
    }
    let relay: Arc<Relay> = hub.inner().remote.clone();
    let attendee = requested.unwrap_or_else(new_attendee_id);
    let store = hub.inner().store.clone();
    let (sid, a, waiting_room) = (id.clone(), attendee.clone(), session.waiting_room);
    let now = now_ms();
    let joined =
        blocking(move || store.join_remote_session(&sid, &a, waiting_room, MAX_ATTENDEES, now, now - LIVE_FOR.as_millis() as i64)).await;
    let admitted = match joined {
        Ok(RemoteJoin::Admitted) => true,
        Ok(RemoteJoin::Waiting) => false,
        Ok(RemoteJoin::Full) => {
            close(&mut ws, CLOSE_FULL, "full").await;
            return;
        }
        Err(e) => {
            tracing::warn!(session = %id, error = %e, "joining a remote session failed");
            close(&mut ws, 1011, "").await;
            return;
        }
    };
    let control = Position::parse(session.position.as_deref()).map(|p| p.control);
    let (conn, mut rx) = relay.join_attendee(&id, &attendee, admitted, control);
    let mut ok = send(&mut ws, &HubMessage::Welcome { attendee: attendee.clone(), recorded: session.recorded }).await;
    let mut last_current = None;
    if ok {
        ok = if admitted { send_current(&hub, &id, &mut ws, &mut last_current).await } else { send(&mut ws, &HubMessage::Waiting).await };
    }

    relay
        .publish(Envelope {
            session: id.clone(),
            to: To::Presenter,
            message: HubMessage::Joined { attendee: attendee.clone(), waiting: !admitted },
            close: None,
        })
        .await;
    let mut admitted = admitted;
    // The hub's rate limiter, keyed by session and attendee (a reconnect does not refill it).
    let rate_key = format!("remote-attendee:{id}:{attendee}");
    let expiry = tokio::time::sleep(until_expiry(&session));
    tokio::pin!(expiry);
    let mut touch = tokio::time::interval(hub.remote_recheck());
    touch.reset();
    let mut ping = tokio::time::interval(PING_EVERY);
    while ok {
        tokio::select! {
            m = ws.recv() => match m {
                Some(Ok(Message::Text(text))) => {
                    if hub.inner().limits.check(&rate_key, ATTENDEE_RATE, ATTENDEE_RATE, std::time::Instant::now()).is_err() {
                        continue;
                    }
                    match check::<AttendeeMessage>(text.as_str()) {
                        // Only an admitted doctor, only while she has control.
                        Ok(msg) if admitted && relay.control(&id) == Some(Control::Hcp) => {
                            relay.publish(Envelope {
                                session: id.clone(),
                                to: To::Presenter,
                                message: HubMessage::Attendee { attendee: attendee.clone(), message: msg },
                                close: None,
                            }).await;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!(session = %id, error = %e, "attendee message refused"),
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            out = rx.recv() => match out {
                Some(Outgoing::Text(t)) => {
                    // The presenter's answer to her joining repeats what the store gave her.
                    if last_current.as_deref() == Some(t.as_str()) {
                        continue;
                    }
                    if t.starts_with(r#"{"type":"current""#) {
                        last_current = Some(t.to_string());
                    }
                    ok = ws.send(Message::Text(t)).await.is_ok();
                }
                Some(Outgoing::Admitted) => {
                    admitted = true;
                    ok = send(&mut ws, &HubMessage::Admitted).await;
                }
                Some(Outgoing::Joined(_)) => {}
                Some(Outgoing::Close(code)) => {
                    close(&mut ws, code, "").await;
                    break;
                }
                None => break,
            },
            _ = &mut expiry => {
                let _ = send(&mut ws, &HubMessage::Ended).await;
                close(&mut ws, CLOSE_ENDED, "ended").await;
                break;
            }
            _ = touch.tick() => {
                // Seen; and the session is still live through her link (an end whose relay
                // message was lost, a moved expiry, a replaced link all close her out here).
                let store = hub.inner().store.clone();
                let (sid, attendees, link) = (id.clone(), vec![attendee.clone()], link.clone());
                let now = Utc::now();
                let live = blocking(move || {
                    store.touch_remote_attendees(&sid, &attendees, now.timestamp_millis())?;
                    Ok(store.remote_session_by_token(&link)?.is_some_and(|s| s.id == sid && s.live_at(now)))
                })
                .await;
                match live {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = send(&mut ws, &HubMessage::Ended).await;
                        close(&mut ws, CLOSE_ENDED, "ended").await;
                        break;
                    }
                    Err(e) => tracing::debug!(session = %id, error = %e, "re-reading the remote session failed"),
                }
            }
            _ = ping.tick() => ok = ws.send(Message::Ping(Default::default())).await.is_ok(),
        }
    }
    if relay.leave(&id, conn, Some(&attendee)) {
        let store = hub.inner().store.clone();
        let (sid, a) = (id.clone(), attendee.clone());
        if let Err(e) = blocking(move || store.leave_remote_session(&sid, &a)).await {
            tracing::debug!(session = %id, error = %e, "marking an attendee gone failed");
        }
        relay.publish(Envelope { session: id.clone(), to: To::Presenter, message: HubMessage::Left { attendee }, close: None }).await;
    }
}
