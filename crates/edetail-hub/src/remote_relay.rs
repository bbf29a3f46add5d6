//! The relay of remote sessions (`remote`): which sockets of this hub process take part in which session,
//! and the bus that carries a session's messages to every hub process sharing the store (in
//! memory for one process; PostgreSQL `LISTEN`/`NOTIFY` between processes, ADR 0023).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edetail_protocol::remote::{Control, HubMessage, PresenterMessage};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

/// How often a session's sockets read the session again (`Hub::set_remote_recheck`): an end
/// whose relay message was lost, an expiry moved, a replaced link reach them within this.
pub(crate) const RECHECK: Duration = Duration::from_secs(15);

/// The PostgreSQL channel every hub process listens on.
pub const CHANNEL: &str = "edetail_remote";

/// Who in a session a message is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum To {
    Presenter,
    /// Admitted attendees.
    Attendees,
    /// Every attendee, waiting ones too.
    AllAttendees,
    Attendee(String),
    /// The presenter and every attendee.
    Everyone,
}

/// One message of a session on the bus; `close` closes the receiving sockets after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub session: String,
    pub to: To,
    pub message: HubMessage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close: Option<u16>,
}

/// What a socket task receives from the relay.
#[derive(Debug, Clone)]
pub(crate) enum Outgoing {
    /// A message to send as it is (serialised once for every recipient; clones share the bytes).
    Text(axum::extract::ws::Utf8Bytes),
    /// This attendee was admitted (the socket sends `admitted`; the presenter sends the
    /// position after it).
    Admitted,
    /// To the presenter's socket: an admitted attendee joined (it sends her the position, which
    /// may be newer than what the store had when she joined).
    Joined(String),
    /// Close the socket with this code.
    Close(u16),
}

#[derive(Debug)]
struct Peer {
    conn: u64,
    tx: mpsc::UnboundedSender<Outgoing>,
    admitted: bool,
}

#[derive(Debug, Default)]
struct Room {
    presenter: Option<Peer>,
    attendees: HashMap<String, Peer>,
    /// Who navigates, as last relayed (attendees' navigation is dropped while the rep has it).
    control: Option<Control>,
}

/// A session's sockets on this process, and the bus to the others.
#[derive(Debug)]
pub(crate) struct Relay {
    rooms: Mutex<HashMap<String, Room>>,
    next_conn: AtomicU64,
    /// This process on the bus (its own notifications come back and are skipped).
    process: String,
    bus: Mutex<Option<Arc<PgBus>>>,
}

impl Default for Relay {
    fn default() -> Self {
        Relay {
            rooms: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            process: uuid::Uuid::new_v4().simple().to_string(),
            bus: Mutex::new(None),
        }
    }
}

/// A socket's place in a room; leaving is explicit (`Relay::leave`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnId(u64);

impl Relay {
    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<String, Room>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Relays through PostgreSQL at `url` from now on (hub processes sharing one database).
    pub(crate) fn use_postgres(&self, config: tokio_postgres::Config) {
        *self.bus.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(PgBus::new(config)));
    }

    fn pg(&self) -> Option<Arc<PgBus>> {
        self.bus.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes sure this process hears the other processes before a socket joins (a no-op
    /// without PostgreSQL). Waits a few seconds at most: without the bus a session still works
    /// among this process's sockets.
    pub(crate) async fn ready(self: &Arc<Self>) {
        if let Some(bus) = self.pg() {
            bus.ensure(self.clone()).await;
        }
    }

    /// The presenter's socket joins `session`; a presenter socket of this process already there
    /// is replaced (closed with `CLOSE_REPLACED`).
    pub(crate) fn join_presenter(&self, session: &str, control: Option<Control>) -> (ConnId, mpsc::UnboundedReceiver<Outgoing>) {
        self.join(session, None, true, control)
    }

    /// An attendee's socket joins `session` (a socket of the same attendee already here is
    /// replaced: a reconnect that overtook its own disconnect).
    pub(crate) fn join_attendee(
        &self,
        session: &str,
        attendee: &str,
        admitted: bool,
        control: Option<Control>,
    ) -> (ConnId, mpsc::UnboundedReceiver<Outgoing>) {
        self.join(session, Some(attendee), admitted, control)
    }

    fn join(
        &self,
        session: &str,
        attendee: Option<&str>,
        admitted: bool,
        control: Option<Control>,
    ) -> (ConnId, mpsc::UnboundedReceiver<Outgoing>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let mut rooms = self.rooms();
        let room = rooms.entry(session.to_string()).or_default();
        if room.control.is_none() {
            room.control = control;
        }
        let peer = Peer { conn, tx, admitted };
        let old = match attendee {
            None => room.presenter.replace(peer),
            Some(a) => room.attendees.insert(a.to_string(), peer),
        };
        if let Some(old) = old {
            let _ = old.tx.send(Outgoing::Close(edetail_protocol::remote::CLOSE_REPLACED));
        }
        (ConnId(conn), rx)
    }

    /// The socket `conn` left; the room goes when its last socket does. `true` when it was
    /// still the session's presenter or that attendee (not replaced by a newer socket).
    pub(crate) fn leave(&self, session: &str, conn: ConnId, attendee: Option<&str>) -> bool {
        let mut rooms = self.rooms();
        let Some(room) = rooms.get_mut(session) else { return false };
        let current = match attendee {
            None => room.presenter.as_ref().is_some_and(|p| p.conn == conn.0),
            Some(a) => room.attendees.get(a).is_some_and(|p| p.conn == conn.0),
        };
        if current {
            match attendee {
                None => room.presenter = None,
                Some(a) => {
                    room.attendees.remove(a);
                }
            }
        }
        if room.presenter.is_none() && room.attendees.is_empty() {
            rooms.remove(session);
        }
        current
    }

    /// Who navigates in `session`, as this process last heard.
    pub(crate) fn control(&self, session: &str) -> Option<Control> {
        self.rooms().get(session).and_then(|r| r.control)
    }

    /// Sends `env` to its recipients on this process and, with PostgreSQL, on every other
    /// (queued: in order, without waiting for the database).
    pub(crate) async fn publish(self: &Arc<Self>, env: Envelope) {
        self.deliver(&env);
        if let Some(bus) = self.pg() {
            bus.notify(self, &env);
        }
    }

    /// Delivers `env` to this process's sockets.
    pub(crate) fn deliver(&self, env: &Envelope) {
        let mut rooms = self.rooms();
        let Some(room) = rooms.get_mut(&env.session) else { return };
        match &env.message {
            HubMessage::Current { control, .. } | HubMessage::Presenter { message: PresenterMessage::Control { to: control } } => {
                room.control = Some(*control)
            }
            _ => {}
        }
        let text: axum::extract::ws::Utf8Bytes = match serde_json::to_string(&env.message) {
            Ok(t) => t.into(),
            Err(e) => {
                tracing::error!(error = %e, "remote message not serialisable");
                return;
            }
        };
        let send = |p: &Peer| {
            let _ = p.tx.send(Outgoing::Text(text.clone()));
            if let Some(code) = env.close {
                let _ = p.tx.send(Outgoing::Close(code));
            }
        };
        match &env.to {
            To::Presenter => {
                if let Some(p) = &room.presenter {
                    send(p);
                    if let HubMessage::Joined { attendee, waiting: false } = &env.message {
                        let _ = p.tx.send(Outgoing::Joined(attendee.clone()));
                    }
                }
            }
            To::Attendees => room.attendees.values().filter(|p| p.admitted).for_each(send),
            To::AllAttendees => room.attendees.values().for_each(send),
            To::Everyone => room.presenter.iter().chain(room.attendees.values()).for_each(send),
            To::Attendee(a) => {
                if let Some(p) = room.attendees.get_mut(a) {
                    if env.message == HubMessage::Admitted {
                        p.admitted = true;
                        let _ = p.tx.send(Outgoing::Admitted);
                    } else {
                        send(p);
                    }
                }
            }
        }
    }
}

/// A message on the PostgreSQL channel: the process that sent it and the envelope.
#[derive(Debug, Serialize, Deserialize)]
struct Notice {
    from: String,
    env: Envelope,
}

/// One dedicated connection per hub process that `LISTEN`s on [`CHANNEL`] and sends
/// `NOTIFY`s; reconnected with backoff when it breaks (messages for other processes are lost
/// meanwhile, never stored: positions are read from the store on joining).
#[derive(Debug)]
pub(crate) struct PgBus {
    config: tokio_postgres::Config,
    client: tokio::sync::watch::Sender<Option<Arc<tokio_postgres::Client>>>,
    started: std::sync::Once,
    /// Notices to send, in order, by one task (publishing never waits for PostgreSQL).
    outbox: Mutex<Option<mpsc::UnboundedSender<String>>>,
}

impl PgBus {
    fn new(config: tokio_postgres::Config) -> PgBus {
        PgBus { config, client: tokio::sync::watch::channel(None).0, started: std::sync::Once::new(), outbox: Mutex::new(None) }
    }

    /// Starts the listener (once) and waits until it listens, at most 5 s.
    async fn ensure(self: &Arc<Self>, relay: Arc<Relay>) {
        let me = self.clone();
        self.started.call_once(move || {
            let (tx, rx) = mpsc::unbounded_channel();
            *me.outbox.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
            tokio::spawn(me.clone().send_notices(rx));
            tokio::spawn(me.listen(relay));
        });
        let mut rx = self.client.subscribe();
        if tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|c| c.is_some())).await.is_err() {
            tracing::warn!("remote sessions: the PostgreSQL relay is not listening yet; other hub processes are not heard");
        }
    }

    /// Queues `env` for the other processes (sent in order by `send_notices`).
    fn notify(&self, relay: &Relay, env: &Envelope) {
        let payload = match serde_json::to_string(&Notice { from: relay.process.clone(), env: env.clone() }) {
            Ok(p) => p,
            Err(_) => return,
        };
        if let Some(tx) = self.outbox.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = tx.send(payload);
        }
    }

    async fn send_notices(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<String>) {
        while let Some(payload) = rx.recv().await {
            let Some(client) = self.client.borrow().clone() else {
                tracing::warn!("remote sessions: the PostgreSQL relay is down; a message stayed on this process");
                continue;
            };
            if let Err(e) = client.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]).await {
                tracing::warn!(error = %e, "remote sessions: NOTIFY failed");
            }
        }
    }

    /// Keeps one listening connection, forever (reconnecting with backoff up to 30 s).
    async fn listen(self: Arc<Self>, relay: Arc<Relay>) {
        let mut wait = Duration::from_millis(250);
        loop {
            match self.config.connect(NoTls).await {
                Ok((client, mut connection)) => {
                    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
                    let driver = tokio::spawn(async move {
                        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                        while let Some(m) = messages.next().await {
                            match m {
                                Ok(AsyncMessage::Notification(n)) => {
                                    let _ = tx.send(n.payload().to_string());
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    tracing::warn!(error = %e, "remote sessions: the PostgreSQL relay connection failed");
                                    break;
                                }
                            }
                        }
                    });
                    match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                        Ok(()) => {
                            wait = Duration::from_millis(250);
                            self.client.send_replace(Some(Arc::new(client)));
                            while let Some(payload) = rx.recv().await {
                                match serde_json::from_str::<Notice>(&payload) {
                                    Ok(n) if n.from == relay.process => {}
                                    Ok(n) => relay.deliver(&n.env),
                                    Err(e) => tracing::warn!(error = %e, "remote sessions: unreadable relay notice"),
                                }
                            }
                            self.client.send_replace(None);
                        }
                        Err(e) => tracing::warn!(error = %e, "remote sessions: LISTEN failed"),
                    }
                    driver.abort();
                }
                Err(e) => tracing::warn!(error = %e, "remote sessions: cannot reach PostgreSQL for the relay"),
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    }
}
